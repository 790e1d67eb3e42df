"""Memory estimates: refuse a run that will not fit before it loads or trains anything.

Two checks, both against ``limits.max_memory_gb`` (default: half of this machine's memory):

1. :func:`check_before_loading` reads only the file's metadata (dimension sizes) and estimates
   the fields the task will hold in memory (truth, observations and the temporaries of
   loading them).
2. :func:`check_model` runs once the task is built and asks the model
   (:meth:`models.base.Mapper.memory_estimate`) what fitting and predicting need on that
   task: the optimal interpolation its covariance matrices, a network its tensors, batches
   and activations.

The estimates are upper-bound approximations (bytes of the arrays that live at the peak);
``bench/bench_memory.py`` prints them beside the measured peak.
"""

from __future__ import annotations

import glob as globlib
import os
from pathlib import Path

import numpy as np

from oceanlab_errors import ResourceError

GB = 1024**3
#: Bytes of the float32 arrays the loader and the task hold per point of the field, beyond
#: the field itself: observations, the ocean mask, NaN-masking temporaries and scoring.
FIELD_COPIES = 6


def limit_bytes(config) -> int:
    """``limits.max_memory_gb`` of ``config`` in bytes (default: half of the machine)."""
    from backend.config import max_memory_bytes

    return max_memory_bytes(config)


def _gb(n: float) -> str:
    return f"{n / GB:.2f} GB" if n < 10 * GB else f"{n / GB:.0f} GB"


def _largest_grid_shape(ds) -> tuple[int, int, int] | None:
    """(n_time, n_y, n_x) of the largest variable with at least two dimensions."""
    best = None
    for v in ds.data_vars.values():
        if v.ndim < 2 or v.dtype.kind not in "fiu":
            continue
        sizes = list(v.shape)
        n_x, n_y = sizes[-1], sizes[-2]
        n_t = int(np.prod(sizes[:-2])) if v.ndim > 2 else 1
        if best is None or n_t * n_y * n_x > np.prod(best):
            best = (n_t, n_y, n_x)
    return best


def peek_shape(path: str | os.PathLike, region=None,
               period=None) -> tuple[int, int, int] | None:
    """Grid size of the file (glob, directory of files, Zarr store) from its metadata
    alone, after the ``region`` / ``period`` cut (``data.region``, ``data.period``); None
    when it cannot tell.

    For several files the time steps of every file are added up and the grid of the first
    is used. Nothing is loaded: xarray opens lazily and only dimension sizes (and, for a
    cut, coordinates) are read.
    """
    import xarray as xr

    from data.canonical import _zarr_store

    text = str(path)
    p = Path(text)
    if _zarr_store(p) is not None:
        files = [text]
    elif p.is_dir():
        files = sorted(str(f) for f in p.glob("*.nc") if not f.name.startswith("."))
    else:
        files = sorted(globlib.glob(text)) if any(c in text for c in "*?[") else [text]
        files = [f for f in files if Path(f).is_file()]
    if not files:
        return None
    total_t, grid = 0, None
    for f in files:
        try:
            if _zarr_store(f) is not None:
                ds = xr.open_zarr(f, decode_times=period is not None, chunks=None)
            else:
                ds = xr.open_dataset(f, decode_times=period is not None,
                                     decode_cf=period is not None)
            with ds:
                shape = _largest_grid_shape(ds)
                if shape is not None and (region is not None or period is not None):
                    shape = _cut_shape(ds, shape, region, period, grid)
        except Exception:  # noqa: BLE001 (unreadable: the loader reports it, naming the file)
            return None
        if shape is None:
            return None
        total_t += shape[0]
        grid = grid or shape[1:]
    return (total_t, *grid)


def _cut_shape(ds, shape, region, period, grid) -> tuple[int, int, int] | None:
    """``shape`` (time, lat, lon) of one file of ``ds`` after the cut (``grid``: the cut
    grid of an earlier file, reused)."""
    import pandas as pd

    from data.canonical import _as_period, _as_region, _find_coord

    n_t, n_y, n_x = shape
    if period is not None:
        name = _find_coord(ds, "time")
        if name is None:
            return None
        first, last, _ = _as_period(period, "")
        times = pd.DatetimeIndex(np.atleast_1d(np.asarray(ds[name].values)))
        n_t = int(((times >= first) & (times <= last)).sum())
    if region is not None and grid is None:
        lat_name, lon_name = _find_coord(ds, "lat"), _find_coord(ds, "lon")
        if lat_name is None or lon_name is None or ds[lat_name].ndim != 1:
            return None
        lon0, lon1, lat0, lat1 = _as_region(region, "")
        lat = np.asarray(ds[lat_name].values, dtype=np.float64)
        lon = np.asarray(ds[lon_name].values, dtype=np.float64)
        span = lon1 - lon0 if lon1 >= lon0 else lon1 - lon0 + 360.0
        n_y = int(((lat >= lat0) & (lat <= lat1)).sum())
        n_x = lon.size if span >= 360 else int((((lon - lon0) % 360.0) <= span + 1e-9).sum())
    elif grid is not None:
        n_y, n_x = grid
    return n_t, n_y, n_x


def data_bytes(shape: tuple[int, int, int]) -> int:
    """Memory of the fields of a task of ``shape`` = (time, lat, lon)."""
    n = int(np.prod(shape))
    return 4 * n * FIELD_COPIES


def check(parts: dict[str, int], limit: int, label: str) -> None:
    """ResourceError (one line) when the sum of ``parts`` exceeds ``limit`` bytes."""
    total = sum(parts.values())
    if total <= limit:
        return
    detail = ", ".join(f"{k} {_gb(v)}" for k, v in parts.items() if v)
    raise ResourceError(
        f"{label}: estimated memory {_gb(total)} ({detail}) exceeds limits.max_memory_gb = "
        f"{_gb(limit)}; choose a smaller region or period, smaller batches or patches, or "
        f"raise the limit with --set limits.max_memory_gb=N")


def check_before_loading(config, path: str | os.PathLike) -> dict[str, int]:
    """Estimate what loading ``path`` for ``config`` needs (after its ``data.region`` /
    ``data.period`` cut); ResourceError if over the limit.

    Returns the estimate's parts in bytes (empty when the shape cannot be read: the loader
    then reports the problem).
    """
    data = getattr(config, "data", None)
    shape = peek_shape(path, getattr(data, "region", None), getattr(data, "period", None))
    if shape is None:
        return {}
    parts = {"fields": data_bytes(shape)}
    check(parts, limit_bytes(config), f"{path} ({shape[0]} x {shape[1]} x {shape[2]})")
    return parts


def check_model(config, model, task, label: str) -> dict[str, int]:
    """Estimate the task's fields plus what ``model`` needs on it; ResourceError if over."""
    shape = tuple(int(s) for s in task.truth.shape)
    parts = {"fields": data_bytes(shape)}
    parts.update(model.memory_estimate(task))
    check(parts, limit_bytes(config), f"{label} with model {config.model.name!r}")
    return parts
