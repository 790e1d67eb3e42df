"""Placeholder: filled in by issue 8 (pinn)."""
