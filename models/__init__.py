"""Model room: torch networks, classical baselines and the Lightning module that trains them.

Models never read files and know nothing about runs. Each model registers itself in
:mod:`models.registry` under a short name.
"""
