"""Metrics room: scores computed on xarray objects (see ../shared/SCIENCE.md).

Mapping scores of the SSH data challenge live in :mod:`metrics.mapping`
(:func:`score_mapping` and the :data:`MAPPING_METRICS` registry); currents derived from
SSH in :mod:`metrics.currents`; the QG potential-vorticity residual (``physics_residual``) in
:mod:`metrics.physics`.
"""

from metrics.currents import geostrophic_velocity, relative_vorticity
from metrics.mapping import (
    MAPPING_METRICS,
    SCORE_KEYS,
    MappingMetric,
    Score,
    ScoreUnavailable,
    psd_score,
    psd_score_contour,
    resolved_scales,
    rmse_over_time,
    score_mapping,
)
from metrics.physics import physics_residual, physics_residual_map

__all__ = [
    "MAPPING_METRICS",
    "SCORE_KEYS",
    "MappingMetric",
    "Score",
    "ScoreUnavailable",
    "geostrophic_velocity",
    "physics_residual",
    "physics_residual_map",
    "psd_score",
    "psd_score_contour",
    "relative_vorticity",
    "resolved_scales",
    "rmse_over_time",
    "score_mapping",
]
