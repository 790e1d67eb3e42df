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


def peek_shape(path: str | os.PathLike) -> tuple[int, int, int] | None:
    """Grid size of the file (or glob) from its metadata alone; None when it cannot tell.

    For a glob the time steps of every file are added up and the grid of the first is used.
    Nothing is loaded: xarray opens lazily and only dimension sizes are read.
    """
    import xarray as xr

    text = str(path)
    files = sorted(globlib.glob(text)) if any(c in text for c in "*?[") else [text]
    files = [f for f in files if Path(f).is_file()]
    if not files:
        return None
    total_t, grid = 0, None
    for f in files:
        try:
            with xr.open_dataset(f, decode_times=False, decode_cf=False) as ds:
                shape = _largest_grid_shape(ds)
        except Exception:  # unreadable: the loader reports it properly, with the file name
            return None
        if shape is None:
            return None
        total_t += shape[0]
        grid = grid or shape[1:]
    return (total_t, *grid)


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
    """Estimate what loading ``path`` for ``config`` needs; ResourceError if over the limit.

    Returns the estimate's parts in bytes (empty when the shape cannot be read: the loader
    then reports the problem).
    """
    shape = peek_shape(path)
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
