"""Comparing saved runs (issue 10): a leaderboard, the config fields that differ, and whether
an RMSE difference between two runs is real (a paired bootstrap over test days).

No streamlit here: the CLI (``python -m app compare``), the Compare page and reports use
these functions. Runs are :class:`backend.store.Run` objects (``RunStore.get``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metrics.scores import SCORES, ordered_keys
from metrics.scores import info as score_info
from oceanlab_errors import ConfigError, RunError

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from backend.store import Run

#: Leaderboard columns that describe a run (the score columns follow).
ID_COLUMNS = ("id", "name", "task", "model", "dataset")
#: Variables of prediction.nc that are inputs or references, never the reconstruction
#: (the one list: the pages and the animation read it through reconstruction_name).
NOT_PREDICTION = ("truth", "obs", "mask", "initial", "climatology", "bicubic", "coarse")
#: Coverage of the bootstrap interval.
LEVEL = 0.95


# -- leaderboard --------------------------------------------------------------------------------
def _describe(run: Run) -> tuple[dict, dict]:
    """The id columns of ``run`` and its scalar scores (metrics.json, without notes)."""
    info = run.info()
    cfg = info.get("config") or {}
    data = (info.get("data") or {}).get("path") or (cfg.get("data") or {}).get("path")
    row: dict[str, Any] = {
        "id": run.id,
        "name": info.get("name") if isinstance(info.get("name"), str) else None,
        "task": (cfg.get("task") or {}).get("name") or "interpolation",
        "model": (cfg.get("model") or {}).get("name"),
        "dataset": Path(str(data)).name if data else "built-in",
    }
    metrics = run.metrics()
    scores = {k: metrics[k] for k in ordered_keys(metrics)
              if metrics[k] is None
              or (isinstance(metrics[k], int | float) and not isinstance(metrics[k], bool))}
    return row, scores


def _best(key: str, values: dict[str, Any]) -> list[str]:
    """Run ids holding the best finite value of score ``key`` (all of them on a tie); empty
    when the score has no direction or no run has a value."""
    better = score_info(key).better
    finite = {rid: float(v) for rid, v in values.items()
              if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}
    if better is None or not finite:
        return []
    target = min(finite.values()) if better == "lower" else max(finite.values())
    return [rid for rid, v in finite.items() if v == target]


def leaderboard(runs: list[Run]) -> pd.DataFrame:
    """One row per run: ``id``, ``name`` (None when the run has none), ``task``, ``model``,
    ``dataset``, then every scalar score of the runs' metrics.json (in :data:`SCORES`
    order, unknown keys after; NaN where a run lacks it) and for each score ``KEY_best``:
    True on the run(s) with the best value by the score's direction (all False for a
    score without one, such as a bias).

    ``df.attrs["scores"]`` lists the score columns and ``df.attrs["best"]`` maps each
    score with a best run to the first such run id.
    """
    import pandas as pd

    rows, scores = [], {}
    for run in runs:
        row, s = _describe(run)
        rows.append(row)
        scores[run.id] = s
    keys: list[str] = []
    for s in scores.values():
        keys += [k for k in s if k not in keys]
    keys = [k for k in SCORES if k in keys] + [k for k in keys if k not in SCORES]
    best: dict[str, str] = {}
    for row in rows:
        for k in keys:
            v = scores[row["id"]].get(k)
            row[k] = float(v) if isinstance(v, int | float) else np.nan
    for k in keys:
        winners = _best(k, {row["id"]: scores[row["id"]].get(k) for row in rows})
        for row in rows:
            row[f"{k}_best"] = row["id"] in winners
        if winners:
            best[k] = winners[0]
    columns = [*ID_COLUMNS, *keys, *(f"{k}_best" for k in keys)]
    table = pd.DataFrame(rows, columns=columns)
    table.attrs["scores"] = keys
    table.attrs["best"] = best
    return table


def run_title(run: Run) -> str:
    """A run's id, with its user-given name when it has one (``ID · name``): the label of
    its maps and curves on the Compare page and in reports."""
    try:
        name = run.info().get("name")
    except RunError:  # damaged run.json: the id alone
        name = None
    return f"{run.id} · {name}" if isinstance(name, str) and name else run.id


def data_units(runs: list[Run]) -> str:
    """The data's units (the ``units`` of ``truth`` in the first prediction.nc that has them,
    read without loading the fields), or "" when none says."""
    import xarray as xr

    from backend.store import PREDICTION_FILE

    for run in runs:
        path = run.path / PREDICTION_FILE
        if not path.is_file():
            continue
        try:
            with xr.open_dataset(path) as ds:
                units = ds["truth"].attrs.get("units") if "truth" in ds else None
        except (OSError, ValueError, RuntimeError):
            continue
        if isinstance(units, str) and units.strip():
            return units.strip()
    return ""


def best_runs(table: pd.DataFrame) -> dict[str, str]:
    """``{score: run id}`` of a :func:`leaderboard` (the first best run of each score)."""
    return dict(table.attrs.get("best") or {})


# -- config differences -------------------------------------------------------------------------
def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """``{"model": {"lt_days": 3}}`` → ``{"model.lt_days": 3}``; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def config_differences(runs: list[Run]) -> dict[str, list]:
    """``{dotted field: [value of each run]}`` for the config fields whose values differ
    between ``runs`` (None where a run's config has no such field), in the order the fields
    first appear."""
    flats = [flatten(run.info().get("config") or {}) for run in runs]
    keys: list[str] = []
    for flat in flats:
        keys += [k for k in flat if k not in keys]
    out: dict[str, list] = {}
    for key in keys:
        values = [flat.get(key) for flat in flats]
        if any(not _same(values[0], v) for v in values[1:]):
            out[key] = values
    return out


# -- paired bootstrap ------------------------------------------------------------------------------
def reconstruction_name(pred: xr.Dataset) -> str:
    """The reconstruction variable of a prediction dataset (attribute
    ``oceanlab_reconstruction_var``, else the first variable that is no input)."""
    name = pred.attrs.get("oceanlab_reconstruction_var")
    if name in pred.data_vars:
        return str(name)
    others = [str(v) for v in pred.data_vars if v not in NOT_PREDICTION]
    if not others:
        raise RunError("prediction.nc holds no reconstruction variable")
    return others[0]


def _fields(run: Run) -> tuple[xr.DataArray, xr.DataArray, np.ndarray]:
    """Reconstruction, truth (float64, same dims) and the ocean mask ``(lat, lon)`` of a run."""
    pred = run.prediction()
    try:
        name = reconstruction_name(pred)
    except RunError as exc:
        raise RunError(f"run {run.id}: {exc}") from None
    if "truth" not in pred:
        raise RunError(f"run {run.id}: prediction.nc holds no 'truth' variable")
    rec, truth = pred[name].astype("float64"), pred["truth"].astype("float64")
    if "time" not in truth.dims:
        raise RunError(f"run {run.id}: prediction.nc has no time dimension to resample")
    if rec.dims != truth.dims or rec.shape != truth.shape:
        raise RunError(f"run {run.id}: reconstruction {dict(rec.sizes)} and truth "
                       f"{dict(truth.sizes)} differ in shape")
    if "mask" in pred:
        mask = pred["mask"].fillna(0) != 0
    else:
        mask = truth.notnull().any([d for d in truth.dims if d not in ("lat", "lon")])
    return rec, truth, mask


def _same_coords(a: xr.DataArray, b: xr.DataArray) -> str | None:
    """What differs between the period/grid of ``a`` and ``b`` (None when nothing)."""
    if a.dims != b.dims:
        return f"dimensions {a.dims} vs {b.dims}"
    for dim in a.dims:
        ca = a[dim].values if dim in a.coords else np.arange(a.sizes[dim])
        cb = b[dim].values if dim in b.coords else np.arange(b.sizes[dim])
        if ca.shape != cb.shape or not (
                np.array_equal(ca, cb) if ca.dtype.kind not in "fc" else np.allclose(ca, cb)):
            what = {"time": "test period", "lat": "grid", "lon": "grid"}.get(dim, dim)
            if dim == "time" and len(ca) and len(cb):
                return (f"test period {str(ca[0])[:10]}..{str(ca[-1])[:10]} ({len(ca)} days) vs "
                        f"{str(cb[0])[:10]}..{str(cb[-1])[:10]} ({len(cb)} days)")
            return f"{what} ({dim}: {len(ca)} vs {len(cb)} values"\
                   f"{'' if len(ca) != len(cb) else ', different coordinates'})"
    return None


def paired_bootstrap(run_a: Run, run_b: Run, n: int = 2000, seed: int = 0) -> dict:
    """The RMSE difference ``a − b`` over the test days, with a paired bootstrap over days.

    Each run's squared error (reconstruction − truth, over the ocean mask of both runs and
    points finite in both reconstructions) is summed per test day (for a forecast, over all
    its leads). The RMSE over a set of days is ``sqrt(sum of sums / number of points)``.
    ``n`` times the days are drawn with replacement (the same days for both runs: paired),
    each run's RMSE is recomputed over them and their difference taken; the interval is the
    2.5 and 97.5 percentiles of those differences.

    Returns ``{"run_a", "run_b", "score": "rmse", "rmse_a", "rmse_b", "difference",
    "interval": [low, high], "level": 0.95, "excludes_zero", "n_days", "n", "seed"}``.

    Raises RunError (one line) when the runs differ in test period, grid or truth, or a
    prediction is missing; ConfigError for ``n < 1``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"bootstrap resamples: a whole number >= 1 (got {n!r})")
    rec_a, truth_a, mask_a = _fields(run_a)
    rec_b, truth_b, mask_b = _fields(run_b)
    why = _same_coords(truth_a, truth_b)
    if why is not None:
        raise RunError(f"runs {run_a.id} and {run_b.id} cannot be compared day by day: "
                       f"different {why}")
    ta, tb = truth_a.values, truth_b.values
    if not np.allclose(ta, tb, equal_nan=True, rtol=1e-6, atol=1e-6):
        raise RunError(f"runs {run_a.id} and {run_b.id} cannot be compared day by day: "
                       "their truths differ (different data on the same grid and period)")
    mask = (np.asarray(mask_a.transpose(*[d for d in truth_a.dims if d in mask_a.dims]))
            & np.asarray(mask_b.transpose(*[d for d in truth_a.dims if d in mask_b.dims])))
    ra, rb = rec_a.values, rec_b.values
    # Broadcast the (lat, lon) mask over the leading dimensions (time, lead_time, …).
    mask_full = np.broadcast_to(mask, ta.shape)
    valid = mask_full & np.isfinite(ta) & np.isfinite(ra) & np.isfinite(rb)
    time_axis = truth_a.dims.index("time")
    other = tuple(i for i in range(ta.ndim) if i != time_axis)
    sq_a = np.where(valid, (ra - ta) ** 2, 0.0).sum(axis=other)
    sq_b = np.where(valid, (rb - ta) ** 2, 0.0).sum(axis=other)
    count = valid.sum(axis=other).astype("float64")
    if count.sum() == 0:
        raise RunError(f"runs {run_a.id} and {run_b.id}: no ocean point with values in both")

    def rmse(sq, cnt):
        return np.sqrt(sq / cnt)

    rmse_a = float(rmse(sq_a.sum(), count.sum()))
    rmse_b = float(rmse(sq_b.sum(), count.sum()))
    n_days = len(count)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_days, size=(n, n_days))
    cnt = count[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        diffs = rmse(sq_a[idx].sum(axis=1), cnt) - rmse(sq_b[idx].sum(axis=1), cnt)
    diffs = diffs[np.isfinite(diffs)]  # a resample of days without any valid point
    lo, hi = (float(x) for x in np.percentile(diffs, [50 * (1 - LEVEL), 100 - 50 * (1 - LEVEL)]))
    return {
        "run_a": run_a.id,
        "run_b": run_b.id,
        "score": "rmse",
        "rmse_a": rmse_a,
        "rmse_b": rmse_b,
        "difference": rmse_a - rmse_b,
        "interval": [lo, hi],
        "level": LEVEL,
        "excludes_zero": bool(lo > 0 or hi < 0),
        "n_days": n_days,
        "n": n,
        "seed": seed,
    }
