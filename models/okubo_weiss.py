"""The Okubo–Weiss detector as a segmentation baseline (no training).

Its classes are :func:`data.eddies.mask_over_time` with ``method="okubo_weiss"`` applied to
the task's input SSH (the truth, or an interpolation run's reconstruction) with the task's
thresholds (``task.ow_threshold``, ``task.pixel_min``, ``task.min_abs_lat``).
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
import xarray as xr

from models.base import Mapper, ModelParams
from models.registry import register


class OkuboWeissParams(ModelParams):
    name: Literal["okubo_weiss"] = "okubo_weiss"


def detector_classes(task, times: pd.DatetimeIndex, method: str, mapper: Mapper) -> xr.DataArray:
    """The task's input SSH at ``times`` classified by detector ``method`` (the task's
    thresholds), wrapped as the task's prediction."""
    from data.eddies import mask_over_time

    times = pd.DatetimeIndex(times)
    ssh = task.inputs.sel(time=times)
    masks = mask_over_time(ssh, method, task.params)
    mapper.report("detect", len(times), len(times), "maps")
    return task.wrap(masks.values, times)


@register("okubo_weiss")
class OkuboWeissMapper(Mapper):
    """Eddies where the Okubo–Weiss parameter W < −ow_threshold · σ_W (no training)."""

    Params = OkuboWeissParams
    tasks = ("segmentation",)
    trainable = False

    def predict(self, task, times: pd.DatetimeIndex) -> xr.DataArray:
        return detector_classes(task, times, "okubo_weiss", self)
