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


#: Values this large are fill values that the file did not declare (see data.canonical).
_HUGE = 1e15


def _fields(ds: xr.Dataset) -> list[str]:
    """Numeric variables on the (time, lat, lon) grid, without the mask."""
    return [str(v) for v in ds.data_vars
            if v != "mask" and ds[v].dtype.kind in "biuf" and {"lat", "lon"} <= set(ds[v].dims)]


def _check_field_var(ds: xr.Dataset, name, what: str, fields: list[str], label: str) -> None:
    from data.errors import DataError

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
    skipped = {}
    try:
        from data.canonical import skipped_variables

        skipped = skipped_variables(ds)
    except ImportError:  # pragma: no cover
        pass
    if name in skipped:
        raise DataError(f"{label}: {what} {name!r} holds {skipped[name]} values, not numbers; "
                        f"numeric variables: {available}")
    word = "unknown variable" if what == "variable" else f"unknown {what}"
    raise DataError(f"{label}: {word} {name!r}; available: {available}")


def _refuse_fill_values(da: xr.DataArray, name: str, label: str) -> None:
    """Scores of a field holding undeclared fill values (|x| >= 1e15) would be absurd."""
    from data.errors import DataError

    with np.errstate(invalid="ignore"):
        peak = float(np.nanmax(np.abs(np.asarray(da.values))))
    if peak >= _HUGE:
        raise DataError(f"{label}: variable {name!r} holds values up to {peak:.3g}, undeclared "
                        f"fill values; mask them (or open the file with "
                        f"data.canonical.open_dataset)")


def _parse_period(text: str, what: str, label: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    from data.errors import DataError

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
    label: str = "",
) -> InterpolationTask:
    """Turn a canonical dataset into an :class:`InterpolationTask`.

    Parameters
    ----------
    ds : canonical dataset (see :func:`data.canonical.open_dataset`).
    var : variable to reconstruct; default ``ds.attrs["oceanlab_truth_var"]`` or the first.
    obs : observation variable, or ``"simulation"`` to sample ``var`` along nadir tracks with
        ``obs_noise`` and ``obs_seed``; default ``ds.attrs["oceanlab_obs_var"]`` or simulation.
    test_period, val_period, train_period : ``"YYYY-MM-DD/YYYY-MM-DD"``; missing ones come from
        the file's ``oceanlab_*_period`` attributes, else from :func:`auto_periods`.

    Raises
    ------
    DataError : unknown, non-numeric or off-grid variable; observations that are the truth
        itself (``obs == var``) or a copy of it; fewer than ``min_days`` time steps or fewer
        than 2 points along lat or lon; undeclared fill values (|x| >= 1e15) in the truth or
        the observations; empty or overlapping periods.
    """
    from data.errors import DataError

    label = label or str(ds.attrs.get("source_path", "dataset"))
    fields = _fields(ds)
    default = ds.attrs.get("oceanlab_truth_var")
    var = var or (default if default in fields else None) or (fields[0] if fields else None)
    _check_field_var(ds, var, "variable", fields, label)
    obs = obs or ds.attrs.get("oceanlab_obs_var") or "simulation"
    if obs == var:
        raise DataError(f"{label}: the observation variable {obs!r} is the variable to "
                        f"reconstruct itself; choose another observation variable or "
                        f"'simulation'")
    n = ds.sizes["time"]
    if n < min_days:
        raise DataError(f"{label}: only {n} time step{'s' if n != 1 else ''}; the interpolation "
                        f"task needs at least {min_days}")
    for dim, what in (("lat", "latitude"), ("lon", "longitude")):
        if ds.sizes[dim] < 2:
            raise DataError(f"{label}: the grid has only {ds.sizes[dim]} {what}; the "
                            f"interpolation task needs at least 2 points along lat and lon")
    truth = ds[var].astype(np.float32)
    mask = truth.notnull().any("time").rename("mask")
    if not bool(mask.any()):
        raise DataError(f"{label}: variable {var!r} is NaN everywhere (all-NaN field)")
    _refuse_fill_values(truth, var, label)
    if obs == "simulation":
        from data.tracks import sample_along_tracks

        try:
            obs_da = sample_along_tracks(truth.load(), noise_std=obs_noise, seed=obs_seed)
        except DataError as exc:
            raise DataError(f"{label}: cannot simulate observations of {var!r} ({exc})") from None
    elif obs in ds.data_vars and obs != "mask":
        _check_field_var(ds, obs, "observation variable", fields, label)
        obs_da = ds[obs].astype(np.float32)
    else:
        raise DataError(f"{label}: unknown observation variable {obs!r}; use one of "
                        f"{', '.join(f for f in fields if f != var) or '(none)'} or 'simulation'")
    if not bool(obs_da.notnull().any()):
        raise DataError(f"{label}: observation variable {obs!r} has no valid value")
    if obs != "simulation":
        _refuse_fill_values(obs_da, obs, label)
        if obs_da.shape == truth.shape and np.array_equal(np.asarray(obs_da.values),
                                                          np.asarray(truth.values), equal_nan=True):
            raise DataError(f"{label}: observation variable {obs!r} is identical to {var!r} "
                            f"(a copy of the truth); choose real observations or 'simulation'")

    times = pd.DatetimeIndex(ds["time"].values)
    auto = auto_periods(times, gap_days)
    periods = {}
    for name, given in (("train", train_period), ("val", val_period), ("test", test_period)):
        text = given or ds.attrs.get(f"oceanlab_{name}_period")
        periods[name] = _parse_period(text, name, label) if text else auto[name]
    task = InterpolationTask(truth=truth.load(), obs=obs_da.load(), mask=mask.load(), periods=periods)
    for name in ("train", "val", "test"):
        if len(task.times(name)) == 0:
            first, last = periods[name]
            raise DataError(f"{label}: the {name} period {first.date()}/{last.date()} holds no time step "
                            f"(data cover {times[0].date()}/{times[-1].date()})")
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        if np.intersect1d(task.index(a), task.index(b)).size:
            raise DataError(f"{label}: the {a} and {b} periods overlap")
    task.truth.name = var
    task.obs.name = obs if obs != "simulation" else f"{var}_obs"
    return task
