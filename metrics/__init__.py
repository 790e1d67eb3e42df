"""Metrics room: scores computed on xarray objects (see ../shared/SCIENCE.md)."""
