"""The closed-contour detector as a segmentation baseline (no training).

Its classes are :func:`data.eddies.mask_over_time` with ``method="contour"`` applied to the
task's input SSH with the task's thresholds. On the true SSH with ``task.reference:
contour`` it reproduces the targets (scores of 1: a check, not a result); with
``task.input_run`` it measures how well the eddies survive the interpolation.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
import xarray as xr

from models.base import Mapper, ModelParams
from models.okubo_weiss import detector_classes
from models.registry import register


class ContourParams(ModelParams):
    name: Literal["contour"] = "contour"


@register("contour")
class ContourMapper(Mapper):
    """Eddies inside closed SSH contours around one extremum (no training)."""

    Params = ContourParams
    tasks = ("segmentation",)
    trainable = False

    def predict(self, task, times: pd.DatetimeIndex) -> xr.DataArray:
        return detector_classes(task, times, "contour", self)
