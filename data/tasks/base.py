"""What every task shares: typed parameters, the time split, the network's view of the data.

A task (interpolation, forecast, downscaling, …) turns a canonical dataset into

- its truth ``(time, lat, lon)`` and ocean ``mask``, with train / validation / test periods
  separated by gaps (:func:`split_periods`; every count is in time steps of the data, so a
  yearly series splits as readily as a daily one);
- the sample times of each split (the days to reconstruct, or the forecast start dates);
- :class:`NetworkIO`: what a network sees and predicts, so that one trainer
  (:mod:`models.trainer`) fits any network to any task;
- the prediction dataset saved as ``prediction.nc`` and its scores and diagnostics, with
  the physics residual of the prediction and of the truth (:meth:`Task.physics_scores`).

A new task is one file with a ``@register_task("name")`` class (see :mod:`data.tasks`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, field_validator

from data.physics import QGPhysics
from oceanlab_errors import DataError

#: Values this large are fill values that the file did not declare (see data.canonical).
_HUGE = 1e15
SPLITS = ("train", "val", "test")


def _check_text(value: str | None) -> str | None:
    if value is not None and (not value.strip() or "\x00" in value):
        raise ValueError("must not be empty (leave it out, or null, for the default)")
    return value


class TaskParams(BaseModel):
    """Parameters every task has: the time split and the area weighting of the scores.
    Subclasses narrow ``name`` to a Literal."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    name: str = ""
    test_period: str | None = Field(
        None, description="'YYYY-MM-DD/YYYY-MM-DD'; default: from the file, else automatic")
    val_period: str | None = Field(None, description="'YYYY-MM-DD/YYYY-MM-DD' or automatic")
    train_period: str | None = Field(None, description="'YYYY-MM-DD/YYYY-MM-DD' or automatic")
    gap_days: int = Field(
        7, ge=0, le=36_500,
        description="time steps left out between automatic splits so they are not correlated")
    min_days: int = Field(10, ge=3, le=10_000_000, description="fewest time steps the task accepts")
    area_weighting: Literal["auto", "none", "cos(latitude)"] = Field(
        "auto", description="spatial means of the scores (RMSE, µ, σ, RMSE over time, forecast "
                            "RMSE/skill/ACC) weighted by cell area, cos(latitude): auto = "
                            "cos(latitude) when the grid spans more than 15° of latitude, "
                            "else none (plain means, as the data challenge); the run records "
                            "the value used")

    _texts = field_validator("test_period", "val_period", "train_period")(_check_text)


@dataclass
class TaskContext:
    """What a task may need from outside the data room (given by the backend).

    ``run_prediction(run_id)`` opens the ``prediction.nc`` of a finished run (for a forecast
    initialised from an interpolation run); None where no run store is at hand.
    """

    run_prediction: Callable[[str], xr.Dataset] | None = None


@dataclass
class NetworkIO:
    """What a network sees and predicts for a task, in time steps around a sample time t.

    Attributes
    ----------
    sources : input fields ``(time, lat, lon)`` on the truth's grid and time axis, in the
        truth's units (NaN = not available). Each gives one channel per input offset (zero
        where NaN after normalisation with the truth's statistics) and, if its ``masks``
        entry is True, one more channel per offset with 1 where it is available.
    masks : per source, whether to add its availability channels.
    in_offsets : time offsets of the inputs relative to t (steps outside the record are 0).
    out_offsets : time offsets of the targets (the truth at t + offset), one output channel
        each.
    base_channel : if set, the network predicts an increment over this input channel (for
        example the last state of a forecast, the interpolated coarse field, or a static
        mean field).
    rollout : steps of an autoregressive forecast at prediction time (the network is then
        trained one step ahead, ``out_offsets == (1,)``, and fed its own output).
    scales : per source, ``(offset, scale)`` for ``z = (x − offset) / scale``, or None (the
        default for every source) for the truth's normalisation. A source in other units
        (SST beside SSH) or already an anomaly brings its own.
    static : time-invariant input fields ``(lat, lon)`` in the truth's units (normalised like
        the truth, zero where NaN), one channel each, after all the time blocks (channel
        ``in_channels − len(static) + k`` is ``static[k]``).
    clean : per source, ``(field, noise)``: the noise-free field the source observes, in the
        source's units (NaN where it must not be used) and the standard deviation of its
        observation noise; lets training draw new observations of the same truth with
        another step's sampling pattern (see :class:`data.torch_data.RandomPatchBatches`).
    """

    sources: list[xr.DataArray]
    masks: list[bool]
    in_offsets: tuple[int, ...]
    out_offsets: tuple[int, ...] = (0,)
    base_channel: int | None = None
    rollout: int = 1
    scales: list[tuple[float, float] | None] | None = None
    static: list[xr.DataArray] = field(default_factory=list)
    #: per source, the noise-free field it samples (NaN where it may not be used, e.g.
    #: outside the training period) and the noise of one sample, for training with
    #: resampled observations (``train.resample_obs``); None where a source has none
    clean: list[tuple[xr.DataArray, float] | None] | None = None

    @property
    def channels_per_step(self) -> int:
        return len(self.sources) + sum(self.masks)

    @property
    def in_channels(self) -> int:
        return self.channels_per_step * len(self.in_offsets) + len(self.static)

    def scale_of(self, k: int) -> tuple[float, float] | None:
        """``(offset, scale)`` of source ``k``, or None for the truth's normalisation."""
        return None if self.scales is None else self.scales[k]

    @property
    def out_channels(self) -> int:
        return len(self.out_offsets)


class Task(ABC):
    """A task on one canonical grid (see the module docstring).

    Attributes every task sets: ``truth`` (time, lat, lon) float32 NaN on land, ``mask``
    (lat, lon) bool True on ocean, ``periods`` ``{"train"|"val"|"test": (first, last)}``
    inclusive Timestamps, ``params`` (its :class:`TaskParams`) and ``label`` (the data's
    name, for messages).
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[TaskParams]] = TaskParams
    #: The scores shown first in tables (keys of :data:`metrics.scores.SCORES`).
    headline_scores: ClassVar[tuple[str, ...]] = ("rmse",)
    #: Augmentations a network's training may use when ``train.flips`` / ``train.transposes``
    #: are left at their default (null): "flips", "transposes".
    augmentations: ClassVar[tuple[str, ...]] = ("flips", "transposes")
    #: Default share of training samples with resampled observations (``train.resample_obs``).
    resample_obs: ClassVar[float] = 0.0

    truth: xr.DataArray
    mask: xr.DataArray
    periods: dict[str, tuple[pd.Timestamp, pd.Timestamp]]
    #: The data's quasi-geostrophic constants (:func:`data.physics.resolve_physics`, set by
    #: the backend from the file's attributes and ``data.physics``), or None with the reason
    #: in ``physics_note``.
    physics: QGPhysics | None = None
    physics_note: str = "the task was built without the data's quasi-geostrophic constants"

    @property
    def kind(self) -> str:
        return self.name

    # -- time ---------------------------------------------------------------------------
    def times(self, split: str) -> pd.DatetimeIndex:
        """The time steps of ``split`` ("train", "val" or "test")."""
        start, end = self.periods[split]
        t = pd.DatetimeIndex(self.truth["time"].values)
        return t[(t >= start) & (t <= end)]

    def with_run_test_period(self, field: xr.DataArray, run_id: str,
                             context: TaskContext | None, *, option: str, noun: str,
                             advice: str) -> xr.DataArray:
        """``field`` with its test period replaced by interpolation run ``run_id``'s
        reconstruction (a forecast's initial states, a segmentation's input maps): the
        realistic chain from observations to the task. ``option`` (``init_run``) and
        ``noun``/``advice`` name the task in messages; the result's attribute
        ``oceanlab_<option>`` records the run. DataError when the run store is not at hand,
        or the run is not an interpolation, lacks its reconstruction, is on another grid or
        does not cover the test period."""
        if context is None or context.run_prediction is None:
            raise DataError(f"{self.label}: task.{option}={run_id} needs the run store")
        pred = context.run_prediction(run_id)
        if pred.attrs.get("oceanlab_task", "interpolation") != "interpolation":
            raise DataError(f"run {run_id} is a {pred.attrs.get('oceanlab_task')} run; "
                            f"task.{option} needs an interpolation run")
        name = pred.attrs.get("oceanlab_reconstruction_var", str(field.name))
        if name not in pred:
            raise DataError(f"run {run_id}: its prediction.nc has no variable {name!r}")
        rec = pred[name]
        for dim in ("lat", "lon"):
            mine, theirs = field[dim].values, rec[dim].values
            if mine.shape != theirs.shape or not np.allclose(mine, theirs, atol=1e-6):
                raise DataError(f"run {run_id}: its reconstruction is on another {dim} grid "
                                f"than {self.label}; {advice} the data it was made from")
        rec_times = pd.DatetimeIndex(rec["time"].values)
        test = self.times("test")
        missing = test.difference(rec_times)
        if len(missing):
            raise DataError(f"run {run_id}: its reconstruction covers {rec_times[0].date()}…"
                            f"{rec_times[-1].date()}, not the {noun}'s test period "
                            f"{test[0].date()}…{test[-1].date()}; use the same periods")
        out = field.copy()
        out.loc[{"time": test}] = rec.sel(time=test).transpose("time", "lat", "lon").values
        out.attrs = dict(field.attrs, **{f"oceanlab_{option}": run_id})
        return out.where(self.mask)

    def index(self, split: str) -> np.ndarray:
        """Integer positions along ``time`` of ``split``."""
        t = pd.DatetimeIndex(self.truth["time"].values)
        start, end = self.periods[split]
        return np.flatnonzero((t >= start) & (t <= end))

    def sample_index(self, split: str) -> np.ndarray:
        """Positions along ``time`` of the samples of ``split`` (default: every step)."""
        return self.index(split)

    def sample_times(self, split: str) -> pd.DatetimeIndex:
        """Times of the samples of ``split``: what ``predict`` is asked for."""
        return pd.DatetimeIndex(self.truth["time"].values[self.sample_index(split)])

    # -- what subclasses provide --------------------------------------------------------
    @classmethod
    @abstractmethod
    def build(cls, ds: xr.Dataset, data: Any, params: TaskParams, *, label: str = "",
              context: TaskContext | None = None) -> Task:
        """The task on canonical dataset ``ds``; ``data`` has ``var``, ``obs``, ``obs_noise``,
        ``obs_seed`` (the config's data section). DataError for unusable data."""

    @abstractmethod
    def network_io(self, window: int | None = None) -> NetworkIO:
        """What a network sees and predicts (``window``: the model's input length in steps,
        for tasks whose inputs are a window of steps; None for the task's default)."""

    def wrap(self, values: np.ndarray, times: pd.DatetimeIndex) -> xr.DataArray:
        """A network's output ``(n_samples, n_out, lat, lon)`` (truth units) as the task's
        prediction DataArray; default: one output per sample, ``(time, lat, lon)``."""
        values = np.where(self.mask.values[None], values[:, 0], np.nan).astype(np.float32)
        return xr.DataArray(
            values, dims=("time", "lat", "lon"),
            coords={"time": times.values, "lat": self.truth["lat"].values,
                    "lon": self.truth["lon"].values},
            name=self.truth.name, attrs=dict(self.truth.attrs))

    @abstractmethod
    def prediction_dataset(self, rec: xr.DataArray, times: pd.DatetimeIndex) -> xr.Dataset:
        """What ``prediction.nc`` holds: the prediction named like the truth, ``truth`` and
        the inputs on the same coordinates, ``mask``; attribute
        ``oceanlab_reconstruction_var`` names the prediction."""

    @abstractmethod
    def score(self, pred: xr.Dataset) -> tuple[dict, xr.Dataset]:
        """Scores (``metrics.json``: keys of :data:`metrics.scores.SCORES`, plus ``notes`` and
        ``area_weighting``, the resolved :meth:`area_weighting`) and diagnostics
        (``diagnostics.nc``, attribute ``area_weighting``) of a prediction dataset."""

    def area_weighting(self, lat: xr.DataArray | None = None) -> str:
        """The area weighting of this task's scores, resolved on ``lat`` (default: the
        truth's latitudes): ``"none"`` or ``"cos(latitude)"`` (see
        :mod:`metrics.weighting`; ``task.area_weighting`` ``auto`` weights when the grid
        spans more than 15° of latitude). What ``metrics.json`` records as ``area_weighting``.
        """
        from metrics.weighting import resolve_area_weighting

        option = getattr(getattr(self, "params", None), "area_weighting", "auto")
        return resolve_area_weighting(option, self.truth["lat"] if lat is None else lat)

    def physics_scores(self, pred: xr.Dataset) -> tuple[dict, xr.Dataset]:
        """The QG potential-vorticity residual of the prediction and of the truth over the
        same times (:func:`metrics.physics.score_physics`), for every task and method.

        Reads the prediction (named by ``oceanlab_reconstruction_var``) and ``truth`` of
        ``pred``, ``(time, lat, lon)`` or a forecast's ``(time, lead_time, lat, lon)``, on the
        ocean of ``pred["mask"]``, with :attr:`physics` (None: both scores are null with
        :attr:`physics_note` as the reason).

        Returns
        -------
        scores : ``physics_residual``, ``physics_residual_truth`` (float or None) and
            ``notes`` ``{key: reason}`` for the None ones, to merge into ``metrics.json``.
        diagnostics : ``physics_residual_map(lat, lon)`` (and ``_truth``) for
            ``diagnostics.nc``, when computable.
        """
        from metrics.physics import score_physics

        name = pred.attrs.get("oceanlab_reconstruction_var", str(self.truth.name))
        mask = pred["mask"].astype(bool) if "mask" in pred else self.mask
        return score_physics(pred[name], pred.get("truth"), self.physics, mask, note=self.physics_note)


# ------------------------------------------------------------------------ shared helpers


def field_names(ds: xr.Dataset) -> list[str]:
    """Numeric variables on the (time, lat, lon) grid, without the mask."""
    return [str(v) for v in ds.data_vars
            if v != "mask" and ds[v].dtype.kind in "biuf" and {"lat", "lon"} <= set(ds[v].dims)]


def check_field_var(ds: xr.Dataset, name, what: str, fields: list[str], label: str) -> None:
    """DataError unless ``name`` is one of the numeric grid variables ``fields``."""
    available = ", ".join(fields) or "none"
    if name in fields:
        return
    if name is not None and name in ds.data_vars and name != "mask":
        da = ds[name]
        if da.dtype.kind not in "biuf":
            raise DataError(f"{label}: {what} {name!r} holds {da.dtype} values, not numbers; "
                            f"numeric variables: {available}")
        raise DataError(f"{label}: {what} {name!r} is not on the latitude/longitude grid (dims "
                        f"{tuple(map(str, da.dims))}); gridded variables: {available}")
    from data.canonical import skipped_variables

    skipped = skipped_variables(ds)
    if name in skipped:
        raise DataError(f"{label}: {what} {name!r} holds {skipped[name]} values, not numbers; "
                        f"numeric variables: {available}")
    word = "unknown variable" if what == "variable" else f"unknown {what}"
    raise DataError(f"{label}: {word} {name!r}; available: {available}")


def refuse_fill_values(da: xr.DataArray, name: str, label: str) -> None:
    """Scores of a field holding undeclared fill values (|x| >= 1e15) would be absurd."""
    with np.errstate(invalid="ignore"):
        peak = float(np.nanmax(np.abs(np.asarray(da.values))))
    if peak >= _HUGE:
        raise DataError(f"{label}: variable {name!r} holds values up to {peak:.3g}, undeclared "
                        f"fill values; mask them (or open the file with "
                        f"data.canonical.open_dataset)")


def truth_field(ds: xr.Dataset, var: str | None, params: TaskParams, label: str,
                task: str) -> tuple[xr.DataArray, xr.DataArray]:
    """The field to learn (float32, loaded) and its ocean mask, after every check that
    does not depend on the task: a numeric grid variable, at least ``params.min_days``
    steps and 2 points along lat and lon, not all NaN, no undeclared fill values."""
    fields = field_names(ds)
    default = ds.attrs.get("oceanlab_truth_var")
    var = var or (default if default in fields else None) or (fields[0] if fields else None)
    check_field_var(ds, var, "variable", fields, label)
    n = ds.sizes["time"]
    if n < params.min_days:
        raise DataError(f"{label}: only {n} time step{'s' if n != 1 else ''}; the {task} "
                        f"task needs at least {params.min_days}")
    for dim, what in (("lat", "latitude"), ("lon", "longitude")):
        if ds.sizes[dim] < 2:
            raise DataError(f"{label}: the grid has only {ds.sizes[dim]} {what}; the "
                            f"{task} task needs at least 2 points along lat and lon")
    truth = ds[var].astype(np.float32).load()
    truth.name = var
    mask = truth.notnull().any("time").rename("mask")
    if not bool(mask.any()):
        raise DataError(f"{label}: variable {var!r} is NaN everywhere (all-NaN field)")
    refuse_fill_values(truth, var, label)
    return truth, mask


def parse_period(text: str, what: str, label: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    start, sep, end = str(text).partition("/")
    try:
        first, last = pd.Timestamp(start), pd.Timestamp(end if sep else start)
    except ValueError:
        raise DataError(f"{label}: {what} period {text!r} is not 'YYYY-MM-DD/YYYY-MM-DD'") from None
    if last < first:
        raise DataError(f"{label}: {what} period {text!r} ends before it starts")
    return first, last


def auto_periods(
    times: pd.DatetimeIndex, gap_days: int = 7
) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    """Chronological train (70 %) / validation (15 %) / test (15 %) split with gaps.

    The gap (in time steps) shrinks on short records so that every split keeps at least one
    step; with fewer than 3 steps there is nothing to split.
    """
    n = len(times)
    gap = min(gap_days, max(0, (n - 3) // 10))
    usable = n - 2 * gap
    n_test = max(1, round(0.15 * usable))
    n_val = max(1, round(0.15 * usable))
    n_train = usable - n_test - n_val
    i_val = n_train + gap
    i_test = i_val + n_val + gap
    return {
        "train": (times[0], times[n_train - 1]),
        "val": (times[i_val], times[i_val + n_val - 1]),
        "test": (times[i_test], times[n - 1]),
    }


def split_periods(ds: xr.Dataset, params: TaskParams,
                  label: str) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    """Train / val / test periods: given ones, else the file's ``oceanlab_*_period``
    attributes, else :func:`auto_periods`. DataError for an empty or overlapping period."""
    times = pd.DatetimeIndex(ds["time"].values)
    auto = auto_periods(times, params.gap_days)
    periods = {}
    for name in SPLITS:
        text = getattr(params, f"{name}_period") or ds.attrs.get(f"oceanlab_{name}_period")
        periods[name] = parse_period(text, name, label) if text else auto[name]
    index = {}
    for name in SPLITS:
        first, last = periods[name]
        index[name] = np.flatnonzero((times >= first) & (times <= last))
        if index[name].size == 0:
            raise DataError(f"{label}: the {name} period {first.date()}/{last.date()} holds no "
                            f"time step (data cover {times[0].date()}/{times[-1].date()})")
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        if np.intersect1d(index[a], index[b]).size:
            raise DataError(f"{label}: the {a} and {b} periods overlap")
    return periods


def base_prediction_dataset(task: Task, rec: xr.DataArray, times: pd.DatetimeIndex,
                            **inputs: xr.DataArray) -> xr.Dataset:
    """Prediction named like the truth, ``truth`` at the same times, ``inputs``, ``mask``."""
    name = str(task.truth.name)
    truth = task.truth.sel(time=times)
    ds = xr.Dataset(
        {
            # the method's own attributes (e.g. the OI's estimated noise ratio) are kept
            name: rec.astype(np.float32).assign_attrs(
                {**truth.attrs, **{k: v for k, v in rec.attrs.items() if k not in truth.attrs},
                 "long_name": f"{task.name} prediction of {name}"}),
            "truth": truth.assign_attrs(truth.attrs),
            **{k: v.astype(np.float32) for k, v in inputs.items()},
            "mask": task.mask.astype(np.int8).assign_attrs(long_name="ocean mask (1 = ocean)"),
        }
    )
    ds.attrs.update({"oceanlab_reconstruction_var": name, "oceanlab_task": task.name,
                     "Conventions": "CF-1.8"})
    return ds


__all__ = [
    "SPLITS",
    "NetworkIO",
    "Task",
    "TaskContext",
    "TaskParams",
    "auto_periods",
    "base_prediction_dataset",
    "check_field_var",
    "field_names",
    "parse_period",
    "refuse_fill_values",
    "split_periods",
    "truth_field",
]
