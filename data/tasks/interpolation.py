"""Interpolation (gap filling): reconstruct the full field from gappy observations.

Observations come from one or several variables of the file (merged: the mean where several
observe a cell) or are simulated along the ground tracks of four nadir altimeters
(:mod:`data.tracks`), or read from along-track files (``PATH_OR_GLOB[:VARIABLE]``,
:mod:`data.alongtrack`: cut to the grid's box and period, converted to the field's units and
gridded by time step; missions named in ``data.holdout`` are not inputs but score the
reconstruction over the test period, :func:`metrics.alongtrack.alongtrack_scores`).
Extra inputs (``data.aux``, e.g. SST) are given to learned models as more channels. Scores
are the SSH mapping data challenge's (:func:`metrics.score_mapping`); diagnostics the RMSE
over time and the PSD score.

What a network sees (:meth:`InterpolationTask.network_io`): a centred window of observations
and their masks and of each extra input (with its mask when it has gaps); by default
(``task.background: train_mean``) the observations as departures from the time-mean of the
training period's truth (a mean dynamic topography), which is also a static input channel
and the base the network's output is added to, so that the network learns the eddies, not
the mean front; extra inputs likewise as departures from their own training-period mean.
Half of the training samples (``train.resample_obs``) see the training truth through another
day's track pattern with fresh noise. No flips or transposes by default: a β-plane and a mean current are not
symmetric under them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field

from data.tasks.base import (
    NetworkIO,
    Task,
    TaskContext,
    TaskParams,
    auto_periods,  # noqa: F401  (re-exported: data.tasks.auto_periods)
    base_prediction_dataset,
    check_field_var,
    field_names,
    refuse_fill_values,
    split_periods,
    truth_field,
)
from data.tasks.registry import register_task
from oceanlab_errors import DataError

#: Input window (time steps, centred) of networks that do not choose one.
DEFAULT_WINDOW = 29


class InterpolationParams(TaskParams):
    name: Literal["interpolation"] = "interpolation"
    background: Literal["train_mean", "none"] = Field(
        "train_mean", description="learned models: map departures from the time-mean of the "
                                  "training period's truth (train_mean), or the raw field (none)")


@register_task("interpolation")
@dataclass
class InterpolationTask(Task):
    """Reconstruct ``truth`` from ``obs``.

    Attributes
    ----------
    truth : DataArray (time, lat, lon) float32, NaN on land.
    obs : DataArray (time, lat, lon) float32, NaN where nothing was observed that step.
    mask : DataArray (lat, lon) bool, True on ocean.
    periods : ``{"train"|"val"|"test": (first_day, last_day)}``, inclusive Timestamps.
    """

    Params: ClassVar[type[TaskParams]] = InterpolationParams
    headline_scores: ClassVar[tuple[str, ...]] = ("rmse", "mu", "sigma", "lambda_x_deg",
                                                  "lambda_t_days")
    augmentations: ClassVar[tuple[str, ...]] = ()
    #: half of the training samples see their truth through another day's tracks (on the
    #: built-in OSSE this cut the validation MSE by 10 %; it curbs over-fitting)
    resample_obs: ClassVar[float] = 0.5

    truth: xr.DataArray
    obs: xr.DataArray
    mask: xr.DataArray
    periods: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=dict)
    params: TaskParams = field(default_factory=InterpolationParams)
    label: str = ""
    #: extra inputs (time, lat, lon) of learned models, in their own units
    aux: list[xr.DataArray] = field(default_factory=list)
    #: along-track observations (``data.obs`` given as files): the samples per cell
    #: ``(time, lat, lon)`` behind ``obs`` (None for gridded or simulated observations)
    obs_count: xr.DataArray | None = None
    #: samples of the held-out missions (``data.holdout``) over the test period, as
    #: :func:`data.alongtrack.read_tracks` returns them; scored in :meth:`score`
    heldout_tracks: xr.Dataset | None = None
    #: what was done with along-track observations (recorded in run.json's ``data``)
    observations: dict | None = None

    def train_mean(self) -> xr.DataArray:
        """Time-mean ``(lat, lon)`` of the truth over the training period (NaN on land)."""
        return self.truth.isel(time=self.index("train")).mean("time")

    @classmethod
    def build(cls, ds: xr.Dataset, data: Any, params: TaskParams, *, label: str = "",
              context: TaskContext | None = None) -> InterpolationTask:
        d = data
        return build_interpolation_task(
            ds, d.var, d.obs, obs_noise=d.obs_noise, obs_seed=d.obs_seed, params=params,
            label=label, aux=getattr(d, "aux", None), holdout=getattr(d, "holdout", None))

    def network_io(self, window: int | None = None) -> NetworkIO:
        """A centred window of observations (and extra inputs) with their masks → the field
        at its centre (see the module docstring)."""
        window = window or DEFAULT_WINDOW
        half = window // 2
        sources, masks, scales = [self.obs], [True], [None]
        static = []
        if getattr(self.params, "background", "none") == "train_mean":
            mean = self.train_mean()
            spread = float((self.truth.isel(time=self.index("train")) - mean).std())
            sources[0] = self.obs - mean
            scales[0] = (0.0, spread if spread > 0 else 1.0)
            static = [mean]
        for extra in self.aux:
            gappy = not bool(extra.notnull().all())
            if static:  # like the observations: departures from its training-period mean map
                extra = extra - extra.isel(time=self.index("train")).mean("time")
            train = extra.isel(time=self.index("train")).values
            train = train[np.isfinite(train)]
            std = float(train.std()) if train.size else 1.0
            sources.append(extra)
            masks.append(gappy)
            scales.append((float(train.mean()) if train.size else 0.0, std if std > 0 else 1.0))
        # the truth of the training period, transformed like the observations: what
        # resampled observations are drawn from (never another period's truth)
        clean = self.truth.where(self.truth["time"].isin(self.times("train")))
        if static:
            clean = clean - static[0]
        noise = float(self.obs.attrs.get("noise_std", 0.0) or 0.0)
        io = NetworkIO(sources=sources, masks=masks, in_offsets=tuple(range(-half, half + 1)),
                       out_offsets=(0,), scales=scales, static=static,
                       clean=[(clean, noise)] + [None] * (len(sources) - 1))
        if static:
            io.base_channel = io.in_channels - 1
        return io

    def prediction_dataset(self, rec: xr.DataArray, times: pd.DatetimeIndex) -> xr.Dataset:
        """Reconstruction, ``truth``, ``obs`` and ``mask`` over ``times``."""
        return base_prediction_dataset(self, rec, times, obs=self.obs.sel(time=times))

    def score(self, pred: xr.Dataset) -> tuple[dict, xr.Dataset]:
        """The mapping scores (:func:`metrics.score_mapping`) and their diagnostics, with
        the spatial means weighted as ``task.area_weighting`` says (the resolved value is
        ``metrics.json``'s ``area_weighting``)."""
        from metrics.diagnostics import mapping_diagnostics
        from metrics.mapping import score_mapping

        name = pred.attrs.get("oceanlab_reconstruction_var", str(self.truth.name))
        mask = pred["mask"].astype(bool)
        weighting = self.area_weighting(pred["truth"]["lat"])
        scores = score_mapping(pred[name], pred["truth"], mask, area_weighting=weighting)
        scores["area_weighting"] = weighting
        if self.heldout_tracks is not None and self.heldout_tracks.sizes.get("obs", 0):
            scores = _add_alongtrack_scores(scores, pred[name], self.heldout_tracks)
        return (scores, mapping_diagnostics(pred[name], pred["truth"], mask,
                                            area_weighting=weighting))


def build_interpolation_task(
    ds: xr.Dataset,
    var: str | None = None,
    obs: str | None = None,
    *,
    obs_noise: float = 0.02,
    obs_seed: int = 0,
    test_period: str | None = None,
    val_period: str | None = None,
    train_period: str | None = None,
    gap_days: int = 7,
    min_days: int = 10,
    params: TaskParams | None = None,
    label: str = "",
    aux: str | list[str] | None = None,
    holdout: str | list[str] | None = None,
) -> InterpolationTask:
    """Turn a canonical dataset into an :class:`InterpolationTask`.

    Parameters
    ----------
    ds : canonical dataset (see :func:`data.canonical.open_dataset`).
    var : variable to reconstruct; default ``ds.attrs["oceanlab_truth_var"]`` or the first.
    obs : observation variable, or ``"simulation"`` to sample ``var`` along nadir tracks with
        ``obs_noise`` and ``obs_seed``, or along-track files ``PATH_OR_GLOB[:VARIABLE]``
        (:func:`data.alongtrack.read_tracks`, cut to the grid's region and period, converted
        to ``var``'s units and gridded by time step with :func:`data.alongtrack.grid_tracks`),
        or a list of these merged by :func:`data.tracks.merge_observations`; default
        ``ds.attrs["oceanlab_obs_var"]`` or simulation.
    holdout : mission name(s) of the along-track files whose samples are not inputs but
        kept (over the test period) as ``task.heldout_tracks`` for independent scoring.
    aux : extra input variable(s) of learned models (on the same grid and times).
    test_period, val_period, train_period, gap_days, min_days : the split (see
        :class:`data.tasks.base.TaskParams`), or ``params`` holding them.

    Raises
    ------
    DataError : unknown, non-numeric or off-grid variable; observations that are the truth
        itself (``obs == var``) or a copy of it; fewer than ``min_days`` time steps or fewer
        than 2 points along lat or lon; undeclared fill values (|x| >= 1e15) in the truth or
        the observations; empty or overlapping periods.
    """
    if params is None:
        params = InterpolationParams(test_period=test_period, val_period=val_period,
                                     train_period=train_period, gap_days=gap_days,
                                     min_days=min_days)
    label = label or str(ds.attrs.get("source_path", "dataset"))
    fields = field_names(ds)
    default_var = ds.attrs.get("oceanlab_truth_var")
    var = var or (default_var if default_var in fields else None) or (fields[0] if fields else None)
    obs = obs or ds.attrs.get("oceanlab_obs_var") or "simulation"
    names = [obs] if isinstance(obs, str) else list(obs)
    if var in names:
        raise DataError(f"{label}: the observation variable {var!r} is the variable to "
                        f"reconstruct itself; choose another observation variable or "
                        f"'simulation'")
    if "simulation" in names and len(names) > 1:
        raise DataError(f"{label}: 'simulation' cannot be merged with observation variables "
                        f"({', '.join(names)}); give one or the other")
    truth, mask = truth_field(ds, var, params, label, "interpolation")
    specs = [n for n in names if n not in ds.data_vars and _is_track_spec(n)]
    holdouts = [holdout] if isinstance(holdout, str) else list(holdout or [])
    if holdouts and not specs:
        raise DataError(f"{label}: data.holdout ({', '.join(holdouts)}) needs along-track "
                        f"observation files as data.obs (PATH_OR_GLOB[:VARIABLE])")
    tracks = _read_track_specs(specs, truth, holdouts) if specs else None
    parts = [_observation(ds, name, var, truth, fields, label, obs_noise, obs_seed)
             for name in names if name not in specs]
    if tracks is not None:
        parts.append(tracks[0])
    if len(parts) == 1:
        obs_da = parts[0]
    else:
        from data.tracks import merge_observations

        obs_da = merge_observations(*parts)
    extras = []
    for name in ([aux] if isinstance(aux, str) else list(aux or [])):
        if name == var or name in names:
            raise DataError(f"{label}: extra input {name!r} is also the variable to reconstruct "
                            f"or an observation variable; choose another")
        check_field_var(ds, name, "extra input variable", fields, label)
        extra = ds[name].astype(np.float32)
        if extra.sizes.get("time") != truth.sizes["time"]:
            raise DataError(f"{label}: extra input {name!r} has no time axis like {var!r}")
        refuse_fill_values(extra, name, label)
        if not bool(extra.notnull().any()):
            raise DataError(f"{label}: extra input {name!r} has no valid value")
        extras.append(extra.transpose("time", "lat", "lon").load())
    periods = split_periods(ds, params, label)
    task = InterpolationTask(truth=truth, obs=obs_da.load(), mask=mask.load(), periods=periods,
                             params=params, label=label, aux=extras)
    task.obs.name = ("+".join(names) if len(names) > 1 else
                     (obs if obs != "simulation" else f"{var}_obs"))
    if tracks is not None:
        if len(names) == 1:
            task.obs.name = f"{var}_obs"
        _, task.obs_count, held, task.observations = tracks
        if held is not None:
            from data.alongtrack import time_bins

            k = time_bins(held["time"].values, truth["time"].values)
            in_test = (k >= 0) & np.isin(k, task.index("test"))
            task.heldout_tracks = held.isel(obs=np.flatnonzero(in_test))
            task.observations["heldout_test_samples"] = int(in_test.sum())
    return task


def _is_track_spec(name: str) -> bool:
    from data.alongtrack import is_track_spec

    return is_track_spec(name)


def _read_track_specs(specs: list[str], truth: xr.DataArray, holdouts: list[str]):
    """Along-track files → (gridded input obs, sample counts, held-out samples or None,
    record of what was done)."""
    from data.alongtrack import _edges, grid_tracks, read_tracks

    lat = np.asarray(truth["lat"].values, np.float64)
    lon = np.asarray(truth["lon"].values, np.float64)
    times = np.asarray(truth["time"].values).astype("datetime64[ns]")
    lat_e = _edges(lat, 1.0)
    lon_e = _edges(lon, 1.0)
    t_e = _edges(times.astype(np.int64), 86_400 * 10**9)
    period = (pd.Timestamp(int(t_e[0])), pd.Timestamp(int(t_e[-1])))
    units = truth.attrs.get("units")
    read = [read_tracks(s, lon_range=(lon_e[0], lon_e[-1]), lat_range=(lat_e[0], lat_e[-1]),
                        period=period, target_units=units) for s in specs]
    tracks = read[0] if len(read) == 1 else xr.concat(read, dim="obs")
    if len(read) > 1:
        order = np.argsort(tracks["time"].values, kind="stable")
        tracks = tracks.isel(obs=order)
        tracks.attrs["files"] = json.dumps([f for r in read for f in json.loads(r.attrs["files"])])
    sources = ", ".join(specs)
    missions = np.asarray(tracks["mission"].values).astype(str)
    found = list(dict.fromkeys(missions.tolist()))
    lower = {m.lower(): m for m in found}
    unknown = [h for h in holdouts if h.lower() not in lower]
    if unknown:
        raise DataError(f"{sources}: held-out mission(s) {', '.join(map(repr, unknown))} not in "
                        f"the along-track files; missions found: {', '.join(found)}")
    held_names = [lower[h.lower()] for h in holdouts]
    used = [m for m in found if m not in held_names]
    if not used:
        raise DataError(f"{sources}: every mission ({', '.join(found)}) is held out; keep at "
                        f"least one as input")
    is_held = np.isin(missions, held_names)
    inputs = tracks.isel(obs=np.flatnonzero(~is_held))
    held = tracks.isel(obs=np.flatnonzero(is_held)) if held_names else None
    mean, count = grid_tracks(inputs, truth)
    n_gridded = int(count.sum())
    if not n_gridded:
        raise DataError(f"{sources}: no along-track observation of the input missions "
                        f"({', '.join(used)}) falls on the grid of the field")
    per_mission = {m: int((missions == m).sum()) for m in found}
    record = {"source": sources, "variable": tracks.attrs.get("variable"),
              "units": tracks["value"].attrs.get("units"), "missions": used,
              "heldout": held_names, "samples": per_mission, "n_samples": n_gridded}
    obs = mean.astype(np.float32)
    obs.attrs = {
        "long_name": "along-track observations, binned to the grid by time step",
        "description": (f"{tracks.attrs.get('variable')} of {sources} (missions "
                        f"{', '.join(used)}), mean of the samples in each grid cell and time "
                        f"step; NaN where nothing was observed"),
        "missions": ", ".join(used),
        "n_samples": n_gridded,
        "counts": json.dumps({m: per_mission[m] for m in used}),
    }
    if held_names:
        obs.attrs["heldout_missions"] = ", ".join(held_names)
    if units:
        obs.attrs["units"] = units
    return obs, count, held, record


def _add_alongtrack_scores(scores: dict, rec: xr.DataArray, tracks: xr.Dataset) -> dict:
    """``scores`` with :func:`metrics.alongtrack.alongtrack_scores` of the held-out
    missions merged in (unchanged while that module is absent)."""
    try:
        from metrics.alongtrack import alongtrack_scores
    except ImportError:
        return scores
    extra = dict(alongtrack_scores(rec, tracks) or {})
    notes = {**(scores.get("notes") or {}), **(extra.pop("notes", None) or {})}
    out = {**scores, **extra}
    if notes:
        out["notes"] = notes
    return out


def _observation(ds: xr.Dataset, obs: str, var: str, truth: xr.DataArray, fields: list[str],
                 label: str, obs_noise: float, obs_seed: int) -> xr.DataArray:
    """One observation variable of ``ds`` (checked), or simulated nadir observations."""
    if obs == "simulation":
        from data.tracks import sample_along_tracks

        try:
            return sample_along_tracks(truth, noise_std=obs_noise, seed=obs_seed)
        except DataError as exc:
            raise DataError(f"{label}: cannot simulate observations of {var!r} ({exc})") from None
    if obs in ds.data_vars and obs != "mask":
        check_field_var(ds, obs, "observation variable", fields, label)
        obs_da = ds[obs].astype(np.float32)
    else:
        raise DataError(f"{label}: unknown observation variable {obs!r}; use one of "
                        f"{', '.join(f for f in fields if f != var) or '(none)'} or 'simulation', or "
                        f"along-track files as PATH_OR_GLOB[:VARIABLE]")
    if not bool(obs_da.notnull().any()):
        raise DataError(f"{label}: observation variable {obs!r} has no valid value")
    refuse_fill_values(obs_da, obs, label)
    if obs_da.shape == truth.shape and np.array_equal(np.asarray(obs_da.values),
                                                      np.asarray(truth.values), equal_nan=True):
        raise DataError(f"{label}: observation variable {obs!r} is identical to {var!r} "
                        f"(a copy of the truth); choose real observations or 'simulation'")
    return obs_da
