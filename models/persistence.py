"""Persistence: the forecast that holds the initial state for every lead.

The reference every forecast skill is measured against (``skill_persistence`` in
:mod:`metrics.forecast`): ``f(t, h) = x(t)`` for every lead ``h``, ``x`` the task's input
field (``task.state``: the truth, or an interpolation run's reconstruction with
``task.init_run``) at the start ``t``. Nothing is learned and nothing after ``t`` is read.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from data.tasks import Task
from models.base import Mapper, ModelParams
from models.registry import register
from oceanlab_errors import DataError


class PersistenceParams(ModelParams):
    """Persistence has no parameter."""

    name: Literal["persistence"] = "persistence"


@register("persistence")
class Persistence(Mapper):
    """``f(t, h) = state(t)``: the initial state held constant over the leads."""

    Params = PersistenceParams
    tasks = ("forecast",)

    def predict(self, task: Task, times: pd.DatetimeIndex) -> xr.DataArray:
        """``(time=start, lead_time, lat, lon)``: ``task.state`` at each start, repeated over
        the ``task.params.horizon`` leads (truth units, NaN on land)."""
        starts = pd.DatetimeIndex(times)
        all_times = pd.DatetimeIndex(task.state["time"].values)
        pos = all_times.get_indexer(starts)
        if (pos < 0).any():
            raise DataError(f"{task.label}: forecast starts outside the record")
        state = np.asarray(task.state.transpose("time", "lat", "lon").values)[pos]
        horizon = task.params.horizon  # type: ignore[attr-defined]
        values = np.repeat(state[:, None], horizon, axis=1)
        self.report("predict", len(starts), len(starts), "starts")  # one step: all at once
        return task.wrap(values, starts)
