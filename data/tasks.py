"""Tasks: what goes in, what must come out, and how time is split.

An :class:`InterpolationTask` holds the truth, the observations and the ocean mask on one
canonical grid, with train / validation / test periods separated by gaps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr


@dataclass
class InterpolationTask:
    """Reconstruct ``truth`` from ``obs``.

    Attributes
    ----------
    truth : DataArray (time, lat, lon) float32, NaN on land.
    obs : DataArray (time, lat, lon) float32, NaN where nothing was observed that day.
    mask : DataArray (lat, lon) bool, True on ocean.
    periods : ``{"train"|"val"|"test": (first_day, last_day)}``, inclusive Timestamps.
    """

    truth: xr.DataArray
    obs: xr.DataArray
    mask: xr.DataArray
    periods: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=dict)
    kind: str = "interpolation"

    def times(self, split: str) -> pd.DatetimeIndex:
        """The time steps of ``split`` ("train", "val" or "test")."""
        start, end = self.periods[split]
        t = pd.DatetimeIndex(self.truth["time"].values)
        return t[(t >= start) & (t <= end)]

    def index(self, split: str) -> np.ndarray:
        """Integer positions along ``time`` of ``split``."""
        t = pd.DatetimeIndex(self.truth["time"].values)
        start, end = self.periods[split]
        return np.flatnonzero((t >= start) & (t <= end))
