"""Forecasting: from the last ``history`` states of the field, predict the next ``horizon``.

Every count is in time steps of the data (days for daily data, months for monthly means,
years for yearly maps), and so are leads. A forecast starts at each step ``t`` of a split
whose targets ``t+1 … t+horizon`` all lie in that split; its inputs are the states
``t−history+1 … t``, which may precede the split (the past is known when forecasting), but
never follow ``t``. Predictions are stored WeatherBench-style as ``(time, lead_time, lat,
lon)`` with ``time`` the start (the last input step) and ``lead_time`` 1 … horizon.

The initial condition is the true field (perfect initialisation) or, with
``task.init_run=RUN_ID``, the reconstruction of a finished interpolation run over its test
period: the realistic chain from satellite tracks to forecast. Training always uses the true
field.

Scores (:func:`metrics.forecast.score_forecast`): RMSE, MSE skill against persistence and
against a day-of-year climatology of the training split, and anomaly correlation, per lead
and averaged over leads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field, field_validator

from data.errors import DataError
from data.tasks.base import (
    NetworkIO,
    Task,
    TaskContext,
    TaskParams,
    split_periods,
    truth_field,
)
from data.tasks.registry import register_task


class ForecastParams(TaskParams):
    name: Literal["forecast"] = "forecast"
    history: int = Field(5, ge=1, le=366, description="time steps of the past given as input")
    horizon: int = Field(7, ge=1, le=366, description="time steps forecast ahead (leads 1…horizon)")
    mode: Literal["direct", "rollout"] = Field(
        "direct", description="direct: all leads at once; rollout: one step ahead, fed back")
    init_run: str | None = Field(
        None, description="id of a finished interpolation run whose reconstruction is the "
                          "initial condition over the test period (default: the true field)")
    start_stride: int = Field(1, ge=1, le=10_000, description="time steps between two test "
                                                             "forecast starts")
    climatology_window_days: float = Field(
        15.0, gt=0, le=366, description="half-width (days) of the Gaussian day-of-year "
                                        "smoothing of the climatology")

    @field_validator("init_run")
    @classmethod
    def _run_id(cls, value: str | None) -> str | None:
        if value is not None:
            import re

            if not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", value) or set(value) <= {"."}:
                raise ValueError("a run id has only letters, digits, '.', '_' and '-'")
        return value


def _step_description(times: pd.DatetimeIndex) -> tuple[str, pd.Timedelta | None]:
    """Units of one step (``"days"`` for daily data) and the median step."""
    if len(times) < 2:
        return "time steps", None
    step = pd.Series(times).diff().median()
    if abs(step - pd.Timedelta(days=1)) < pd.Timedelta(hours=1):
        return "days", step
    return f"time steps of the data (median step {step})", step


@register_task("forecast")
@dataclass
class ForecastTask(Task):
    """Forecast ``truth`` ``horizon`` steps ahead from its last ``history`` steps.

    Attributes
    ----------
    truth : DataArray (time, lat, lon) float32, NaN on land.
    state : the inputs: the truth, with the test period replaced by an interpolation run's
        reconstruction when ``params.init_run`` is set.
    mask, periods, params, label : see :class:`data.tasks.Task`.
    """

    Params: ClassVar[type[TaskParams]] = ForecastParams
    headline_scores: ClassVar[tuple[str, ...]] = ("rmse", "skill_persistence",
                                                  "skill_climatology", "acc")

    truth: xr.DataArray
    state: xr.DataArray
    mask: xr.DataArray
    periods: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=dict)
    params: ForecastParams = field(default_factory=ForecastParams)
    label: str = ""

    @classmethod
    def build(cls, ds: xr.Dataset, data: Any, params: TaskParams, *, label: str = "",
              context: TaskContext | None = None) -> ForecastTask:
        p: ForecastParams = params  # type: ignore[assignment]
        label = label or str(ds.attrs.get("source_path", "dataset"))
        truth, mask = truth_field(ds, getattr(data, "var", None), p, label, "forecast")
        periods = split_periods(ds, p, label)
        task = cls(truth=truth, state=truth, mask=mask.load(), periods=periods, params=p,
                   label=label)
        if p.init_run:
            task.state = task._initial_state(p.init_run, context)
        for split in ("train", "val", "test"):
            if task.sample_index(split).size == 0:
                n = len(task.index(split))
                raise DataError(
                    f"{label}: the {split} period has {n} time step{'s' if n != 1 else ''}, too "
                    f"few for a forecast of {p.horizon} steps after {p.history} steps of history "
                    f"(lower task.horizon or task.history, or lengthen the period)")
        return task

    def _initial_state(self, run_id: str, context: TaskContext | None) -> xr.DataArray:
        """The truth with the test period replaced by run ``run_id``'s reconstruction."""
        return self.with_run_test_period(self.truth, run_id, context, option="init_run",
                                         noun="forecast", advice="forecast on")

    # -- samples --------------------------------------------------------------------------
    def sample_index(self, split: str) -> np.ndarray:
        """Start positions ``t`` whose targets ``t+1 … t+horizon`` lie in ``split`` and whose
        inputs ``t−history+1 … t`` lie in the record (and, with ``init_run``, inside the
        test period for test starts); test starts every ``start_stride`` steps."""
        p = self.params
        idx = self.index(split)
        if idx.size == 0:
            return idx
        first, last = int(idx[0]), int(idx[-1])
        lo = max(first - 1, p.history - 1)
        if split == "test" and p.init_run:
            lo = max(lo, first + p.history - 1)  # inputs from the reconstruction only
        starts = np.arange(lo, last - p.horizon + 1)
        if split == "test":
            starts = starts[::p.start_stride]
        return starts

    def leads(self) -> np.ndarray:
        return np.arange(1, self.params.horizon + 1)

    def network_io(self, window: int | None = None) -> NetworkIO:
        """The last ``history`` states → the next ``horizon`` (direct) or the next one,
        rolled out ``horizon`` times; increments over the last state (persistence)."""
        p = self.params
        in_offsets = tuple(range(-(p.history - 1), 1))
        out = tuple(range(1, p.horizon + 1)) if p.mode == "direct" else (1,)
        return NetworkIO(sources=[self.state], masks=[False], in_offsets=in_offsets,
                         out_offsets=out, base_channel=p.history - 1,
                         rollout=p.horizon if p.mode == "rollout" else 1)

    # -- predictions ----------------------------------------------------------------------
    def _lead_coord(self) -> xr.DataArray:
        units, step = _step_description(pd.DatetimeIndex(self.truth["time"].values))
        attrs = {"long_name": "forecast lead", "units": units}
        if step is not None:
            attrs["step"] = str(step)
        return xr.DataArray(self.leads(), dims="lead_time", attrs=attrs)

    def wrap(self, values: np.ndarray, times: pd.DatetimeIndex) -> xr.DataArray:
        """``(n_starts, horizon, lat, lon)`` → DataArray ``(time, lead_time, lat, lon)``."""
        values = np.where(self.mask.values[None, None], values, np.nan).astype(np.float32)
        return xr.DataArray(
            values, dims=("time", "lead_time", "lat", "lon"),
            coords={"time": pd.DatetimeIndex(times).values, "lead_time": self._lead_coord(),
                    "lat": self.truth["lat"].values, "lon": self.truth["lon"].values},
            name=self.truth.name, attrs=dict(self.truth.attrs))

    def at_leads(self, da: xr.DataArray, starts: pd.DatetimeIndex) -> xr.DataArray:
        """``da`` (time, lat, lon) at the valid times of each start and lead, as
        ``(time=start, lead_time, lat, lon)``."""
        all_times = pd.DatetimeIndex(self.truth["time"].values)
        pos = all_times.get_indexer(pd.DatetimeIndex(starts))
        if (pos < 0).any():
            raise DataError(f"{self.label}: forecast starts outside the record")
        idx = pos[:, None] + self.leads()[None, :]
        values = np.asarray(da.transpose("time", "lat", "lon").values)[idx]
        out = self.wrap(values, pd.DatetimeIndex(starts))
        return out.assign_coords(valid_time=(("time", "lead_time"), all_times.values[idx]))

    def climatology(self) -> xr.DataArray:
        """Day-of-year climatology of the training split, smoothed in time, at every step."""
        from metrics.forecast import day_of_year_climatology

        train = self.truth.isel(time=self.index("train"))
        return day_of_year_climatology(train, pd.DatetimeIndex(self.truth["time"].values),
                                       self.params.climatology_window_days).where(self.mask)

    def prediction_dataset(self, rec: xr.DataArray, times: pd.DatetimeIndex) -> xr.Dataset:
        """Forecast, ``truth`` at the valid times, the ``initial`` state of each start and the
        ``climatology`` at the valid times, all ``(time, lead_time, lat, lon)`` but
        ``initial`` ``(time, lat, lon)``; ``mask``."""
        starts = pd.DatetimeIndex(times)
        name = str(self.truth.name)
        truth = self.at_leads(self.truth, starts)
        ds = xr.Dataset({
            name: rec.astype(np.float32).assign_attrs(
                {**self.truth.attrs, "long_name": f"forecast of {name}"}),
            "truth": truth.drop_vars("valid_time").assign_attrs(self.truth.attrs),
            "initial": self.state.sel(time=starts).astype(np.float32).assign_attrs(
                long_name="initial condition (last input step)"),
            "climatology": self.at_leads(self.climatology(), starts).drop_vars("valid_time")
            .assign_attrs(long_name="day-of-year climatology of the training split"),
            "mask": self.mask.astype(np.int8).assign_attrs(long_name="ocean mask (1 = ocean)"),
        })
        ds = ds.assign_coords(valid_time=truth["valid_time"])
        ds.attrs.update({"oceanlab_reconstruction_var": name, "oceanlab_task": "forecast",
                         "oceanlab_forecast_mode": self.params.mode,
                         "oceanlab_init_run": self.params.init_run or "",
                         "Conventions": "CF-1.8"})
        return ds

    def score(self, pred: xr.Dataset) -> tuple[dict, xr.Dataset]:
        """Per-lead RMSE, skills against persistence and climatology, and ACC, weighted as
        ``task.area_weighting`` says (recorded in ``metrics.json`` as ``area_weighting``)."""
        from metrics.forecast import score_forecast

        name = pred.attrs.get("oceanlab_reconstruction_var", str(self.truth.name))
        persistence = pred["initial"].expand_dims(lead_time=pred["lead_time"].values, axis=1)
        weighting = self.area_weighting(pred["truth"]["lat"])
        scores, diagnostics = score_forecast(
            pred[name], pred["truth"], persistence=persistence,
            climatology=pred["climatology"], mask=pred["mask"].astype(bool),
            area_weighting=weighting)
        scores["area_weighting"] = weighting
        return scores, diagnostics
