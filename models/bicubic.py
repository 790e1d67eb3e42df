"""Bicubic interpolation of the coarse field: the reference method of downscaling.

No training: the prediction is the task's own bicubic field (Keys' cubic convolution of
the block means, :func:`data.tasks.downscaling.bicubic_upsample`), so that its scores are
those of the baseline against which ``rmse_gain_bicubic`` is measured (0 for this model).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from models.base import Mapper, ModelParams
from models.registry import register


class BicubicParams(ModelParams):
    name: Literal["bicubic"] = "bicubic"


@register("bicubic")
class BicubicMapper(Mapper):
    """The coarse field interpolated back onto the fine grid (no parameters, no training)."""

    Params = BicubicParams
    tasks = ("downscaling",)
    trainable = False

    def predict(self, task, times: pd.DatetimeIndex) -> xr.DataArray:
        """``task.bicubic`` at ``times``: ``(time, lat, lon)`` float32 on the truth's grid,
        named and attributed like the truth, NaN on land (:meth:`data.tasks.Task.wrap`)."""
        times = pd.DatetimeIndex(times)
        values = task.bicubic.transpose("time", "lat", "lon").sel(time=times).values
        self.report("predict", len(times), len(times), "times")  # one step: all at once
        return task.wrap(np.asarray(values, dtype=np.float32)[:, None], times)
