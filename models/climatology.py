"""Climatology: the day-of-year mean of the training split, at each forecast's valid times.

``f(t, h) = c(t + h)`` with ``c`` :func:`metrics.forecast.day_of_year_climatology` of the
training split's truth: a Gaussian-kernel average over the day of the year (standard
deviation ``window_days``, circular over the year), so it works for daily, monthly or
yearly steps alike (with yearly steps it is the training mean). It is the second reference
of the forecast scores (``skill_climatology``). It ignores the initial state, so persistence
and learned models beat it at short leads; at leads beyond the field's decorrelation time it
is the forecast to beat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import torch
import xarray as xr
from pydantic import Field

from data.tasks import Task
from models.base import Mapper, ModelParams, ProgressFn
from models.registry import register

if TYPE_CHECKING:
    from pathlib import Path

    from models.trainer import TrainSettings


class ClimatologyParams(ModelParams):
    name: Literal["climatology"] = "climatology"
    window_days: float | None = Field(
        None, gt=0, le=366, description="standard deviation (days) of the Gaussian day-of-year "
                                        "smoothing (default: task.climatology_window_days)")


@register("climatology")
class Climatology(Mapper):
    """``f(t, h) = c(t + h)``: the smoothed day-of-year climatology of the training split."""

    Params = ClimatologyParams
    tasks = ("forecast",)

    def __init__(self, params: ModelParams, device: torch.device, seed: int = 0):
        super().__init__(params, device, seed)
        self._clim: xr.DataArray | None = None

    def fit(self, task: Task, settings: TrainSettings | None = None,
            progress: ProgressFn | None = None, log_dir: str | Path | None = None) -> None:
        """Compute the climatology from the training split once and keep it for
        :meth:`predict` (later changes to the record outside that split do not reach it).
        Nothing is trained: returns no history."""
        self._clim = self.climatology(task)

    def climatology(self, task: Task) -> xr.DataArray:
        """``c`` at every step of the record ``(time, lat, lon)``, NaN on land, from the
        training split's truth only."""
        p: ClimatologyParams = self.params  # type: ignore[assignment]
        if p.window_days is None:
            return task.climatology()  # type: ignore[attr-defined]
        from metrics.forecast import day_of_year_climatology

        train = task.truth.isel(time=task.index("train"))
        return day_of_year_climatology(train, pd.DatetimeIndex(task.truth["time"].values),
                                       p.window_days).where(task.mask)

    def predict(self, task: Task, times: pd.DatetimeIndex) -> xr.DataArray:
        """``(time=start, lead_time, lat, lon)``: the climatology at each valid time (the one
        :meth:`fit` computed, else computed now)."""
        starts = pd.DatetimeIndex(times)
        clim = self._clim
        if clim is None or not np.array_equal(clim["time"].values, task.truth["time"].values):
            clim = self.climatology(task)
        out = task.at_leads(clim, starts)  # type: ignore[attr-defined]
        self.report("predict", len(starts), len(starts), "starts")  # one step: all at once
        return out.drop_vars("valid_time")
