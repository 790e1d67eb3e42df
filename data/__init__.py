"""Data room: ingestion into the canonical form, the built-in OSSE, tasks and torch datasets.

Never imports from ``app`` or ``backend``.
"""
