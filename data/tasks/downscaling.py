"""Downscaling (super-resolution): recover the fine field from its block means.

Coarse field
    The truth averaged over blocks of ``factor × factor`` grid cells, starting at the first
    latitude and longitude (:func:`coarsen`). Means are NaN-aware: a coastal block averages
    its ocean cells, a block with no finite cell is NaN, and a partial block at the far edge
    of a grid whose size is not a multiple of ``factor`` averages the cells it holds. The
    coarse coordinates ``lat_coarse`` and ``lon_coarse`` are the means of the coordinates
    of each block's cells (for a partial block, of the cells it holds).

Reference: bicubic interpolation (:func:`bicubic_upsample`)
    Keys' cubic convolution (``a = −1/2``, the kernel of MATLAB's ``imresize`` and of
    Pillow) applied separably along lat and lon, with each coarse value placed at the
    centre of its block in grid-index space: fine cell ``i`` sits at coarse position
    ``(i − (factor − 1)/2) / factor``. The values the kernel needs beyond the first and
    last full blocks come from Keys' boundary condition, the quadratic through the three
    nearest coarse samples, where a partial last block counts as a sample at the centre of
    the cells it holds. The block mean of a linear field is its value at the block centre,
    and this kernel and boundary condition reproduce linear fields, so a linear field comes
    back exactly, edges and partial blocks included (test_downscaling checks it). torch's
    ``interpolate(mode="bicubic")`` uses ``a = −3/4`` and clamps at the border, which does
    not, so it is not used. Coarse cells that are NaN (land blocks, missing values) take
    the value of the nearest finite coarse cell before interpolating; fine land cells stay
    NaN.

Networks get the bicubic field and predict an increment over it. Scores are the mapping
scores on the fine grid (:func:`metrics.score_mapping`) plus the RMSE of bicubic
interpolation and the gain over it, ``rmse_gain_bicubic = 1 − RMSE / RMSE_bicubic`` (0 for
bicubic itself, 1 for a perfect prediction).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field
from scipy import ndimage

from data.errors import DataError
from data.tasks.base import (
    NetworkIO,
    Task,
    TaskContext,
    TaskParams,
    base_prediction_dataset,
    split_periods,
    truth_field,
)
from data.tasks.registry import register_task

#: Bytes of float32 fine-grid values processed at once (coarsening and interpolation run
#: over chunks of time steps, so that temporaries stay small on big grids).
CHUNK_BYTES = 1 << 25


class DownscalingParams(TaskParams):
    name: Literal["downscaling"] = "downscaling"
    factor: int = Field(4, ge=2, le=64, description="block size (grid cells) of the coarse field")


def _time_chunks(n_time: int, n_points: int) -> list[slice]:
    step = max(1, CHUNK_BYTES // max(1, 4 * n_points))
    return [slice(k, min(n_time, k + step)) for k in range(0, n_time, step)]


def _block_means(values: np.ndarray, factor: int) -> np.ndarray:
    """NaN-aware means of ``factor × factor`` blocks over the last two axes of ``values``
    (partial blocks at the far edges average what they hold; empty blocks are NaN)."""
    *lead, n_lat, n_lon = values.shape
    n_lat_c, n_lon_c = -(-n_lat // factor), -(-n_lon // factor)
    pad = [(0, 0)] * len(lead) + [(0, n_lat_c * factor - n_lat), (0, n_lon_c * factor - n_lon)]
    v = np.pad(np.asarray(values, dtype=np.float64), pad, constant_values=np.nan)
    v = v.reshape(*lead, n_lat_c, factor, n_lon_c, factor)
    finite = np.isfinite(v)
    total = np.where(finite, v, 0.0).sum(axis=(-3, -1))
    count = finite.sum(axis=(-3, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _coord_means(coord: np.ndarray, factor: int) -> np.ndarray:
    """Mean coordinate of each block's cells along one axis (partial last block included)."""
    n = coord.size
    return np.array([coord[k:k + factor].mean() for k in range(0, n, factor)], dtype=np.float64)


def coarsen(truth: xr.DataArray, factor: int) -> xr.DataArray:
    """Block means of ``truth`` (time, lat, lon) over ``factor × factor`` cells.

    Returns
    -------
    DataArray ``(time, lat_coarse, lon_coarse)`` float32, in the truth's units: the mean of
    the finite cells of each block (NaN where a block has none; a partial block at the far
    edge averages the cells it holds). ``lat_coarse``/``lon_coarse`` are the means of the
    block cells' coordinates.
    """
    truth = truth.transpose("time", "lat", "lon")
    n_time, n_lat, n_lon = truth.shape
    n_lat_c, n_lon_c = -(-n_lat // factor), -(-n_lon // factor)
    out = np.empty((n_time, n_lat_c, n_lon_c), dtype=np.float32)
    values = truth.values
    for chunk in _time_chunks(n_time, n_lat * n_lon):
        out[chunk] = _block_means(values[chunk], factor)
    coords = {"time": truth["time"].values}
    for dim in ("lat", "lon"):
        attrs = {k: v for k, v in truth[dim].attrs.items()
                 if k in ("units", "standard_name", "axis")}
        attrs["long_name"] = (f"{'latitude' if dim == 'lat' else 'longitude'} of the block "
                              f"centre (mean over the block's cells)")
        coords[f"{dim}_coarse"] = (f"{dim}_coarse", _coord_means(truth[dim].values, factor), attrs)
    attrs = {k: v for k, v in truth.attrs.items() if k in ("units", "standard_name")}
    attrs["long_name"] = f"block means over {factor}x{factor} cells"
    return xr.DataArray(out, dims=("time", "lat_coarse", "lon_coarse"), coords=coords,
                        name="coarse", attrs=attrs)


def _fill_nearest(values: np.ndarray) -> np.ndarray:
    """NaN cells of each 2-D map ``values[k]`` take the value of the nearest finite cell
    (in place on a float copy; all-NaN maps become 0).

    The nearest-cell indices are computed once for the cells that are NaN at every step
    (land) and again only for steps with other NaN cells, so a year of maps with a fixed
    coastline costs one distance transform.
    """
    out = np.array(values, dtype=np.float32, copy=True)
    nan = ~np.isfinite(out)
    if not nan.any():
        return out
    always = nan.all(axis=0)
    static = None
    if always.any() and not always.all():
        _, static = ndimage.distance_transform_edt(always, return_indices=True)
    for k in range(out.shape[0]):
        nan_k = nan[k]
        if not nan_k.any():
            continue
        if nan_k.all():
            out[k] = 0.0
        elif static is not None and np.array_equal(nan_k, always):
            out[k] = out[k][static[0], static[1]]
        else:
            _, (ii, jj) = ndimage.distance_transform_edt(nan_k, return_indices=True)
            out[k] = out[k][ii, jj]
    return out


def _lagrange(nodes: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Weights ``(len(at), len(nodes))`` of the polynomial through ``nodes`` evaluated at
    ``at`` (quadratic for three nodes, linear for two)."""
    w = np.ones((at.size, nodes.size))
    for j, xj in enumerate(nodes):
        for k, xk in enumerate(nodes):
            if k != j:
                w[:, j] *= (at - xk) / (xj - xk)
    return w


@dataclass(frozen=True)
class _AxisPlan:
    """Cubic convolution along one axis (see :func:`bicubic_upsample`).

    The coarse samples of full blocks sit at integer positions ``0 … n_full − 1`` of a
    uniform coarse-index axis, on which fine cell ``i`` is at ``(i − (factor − 1)/2) /
    factor``. Values at the integer positions the kernel needs beyond them (two before,
    the rest after) come from the quadratic through the three nearest samples (Keys'
    boundary condition), where a partial last block is a sample at its own centre.
    """

    n_full: int
    low: np.ndarray   # (2, k) weights on the first k samples -> positions -2, -1
    high: np.ndarray  # (n_high, k) weights on the last k samples -> n_full, n_full + 1, …
    taps: np.ndarray  # (n_fine, 4) indices into the padded axis (position + 2)
    weights: np.ndarray  # (n_fine, 4) Keys (a = -1/2) weights

    @classmethod
    def build(cls, n_fine: int, factor: int) -> _AxisPlan:
        n_full, rest = divmod(n_fine, factor)
        nodes = np.arange(n_full, dtype=np.float64)
        if rest:  # the partial block's centre, in units of full blocks
            nodes = np.append(nodes, n_full - (factor - rest) / (2.0 * factor))
        k = min(3, nodes.size)
        s = (np.arange(n_fine) - (factor - 1) / 2.0) / factor
        k0 = np.floor(s)
        t = s - k0
        weights = np.stack([((-0.5 * t + 1.0) * t - 0.5) * t,
                            (1.5 * t - 2.5) * t * t + 1.0,
                            ((-1.5 * t + 2.0) * t + 0.5) * t,
                            (0.5 * t - 0.5) * t * t], axis=1)
        taps = k0[:, None].astype(np.int64) + np.arange(-1, 3)[None, :]
        top = int(taps.max())
        low = _lagrange(nodes[:k], np.array([-2.0, -1.0]))
        high = _lagrange(nodes[-k:], np.arange(n_full, max(top, n_full) + 1, dtype=np.float64))
        return cls(n_full=n_full, low=low, high=high, taps=taps + 2, weights=weights)

    def pad(self, values: np.ndarray, axis: int) -> np.ndarray:
        """The full-block samples of ``axis`` with the ghost values around them."""
        v = np.moveaxis(values, axis, 0)
        k = self.low.shape[1]
        low = np.tensordot(self.low, v[:k], axes=1)
        high = np.tensordot(self.high, v[v.shape[0] - k:], axes=1)
        return np.moveaxis(np.concatenate([low, v[:self.n_full], high]), 0, axis)


def bicubic_upsample(coarse: xr.DataArray, factor: int, like: xr.DataArray) -> xr.DataArray:
    """Bicubic interpolation of ``coarse`` (time, lat_coarse, lon_coarse), block means by
    ``factor`` of a field on the grid of ``like`` (time, lat, lon), back onto that grid.

    See the module docstring for the kernel and the geometry. Returns a float32 DataArray
    named and attributed like ``like``, on its coordinates, NaN where ``like`` is NaN at
    every time (land).
    """
    like = like.transpose("time", "lat", "lon")
    n_lat, n_lon = like.sizes["lat"], like.sizes["lon"]
    filled = _fill_nearest(np.asarray(coarse.transpose("time", "lat_coarse", "lon_coarse").values))
    py, px = _AxisPlan.build(n_lat, factor), _AxisPlan.build(n_lon, factor)
    out = np.empty((filled.shape[0], n_lat, n_lon), dtype=np.float32)
    for chunk in _time_chunks(filled.shape[0], n_lat * n_lon):
        c = py.pad(filled[chunk].astype(np.float64), 1)
        rows = sum(py.weights[None, :, a, None] * c[:, py.taps[:, a], :] for a in range(4))
        rows = px.pad(rows, 2)
        out[chunk] = sum(px.weights[None, None, :, a] * rows[:, :, px.taps[:, a]]
                         for a in range(4))
    ocean = like.notnull().any("time").values
    out[:, ~ocean] = np.nan
    return xr.DataArray(out, dims=("time", "lat", "lon"),
                        coords={"time": coarse["time"].values, "lat": like["lat"].values,
                                "lon": like["lon"].values},
                        name=like.name, attrs=dict(like.attrs))


@register_task("downscaling")
@dataclass
class DownscalingTask(Task):
    """Recover ``truth`` from ``coarse`` (its ``factor``-block means).

    Attributes
    ----------
    truth : (time, lat, lon) float32, NaN on land.
    coarse : (time, lat_coarse, lon_coarse) float32 block means (see :func:`coarsen`).
    bicubic : (time, lat, lon) float32, the coarse field interpolated back onto the fine
        grid (:func:`bicubic_upsample`): the baseline and the networks' base.
    mask : (lat, lon) bool, True on ocean.
    """

    Params: ClassVar[type[TaskParams]] = DownscalingParams
    headline_scores: ClassVar[tuple[str, ...]] = ("rmse", "rmse_gain_bicubic", "mu",
                                                  "lambda_x_deg")

    truth: xr.DataArray
    coarse: xr.DataArray
    bicubic: xr.DataArray
    mask: xr.DataArray
    periods: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=dict)
    params: DownscalingParams = field(default_factory=DownscalingParams)
    label: str = ""

    @classmethod
    def build(cls, ds: xr.Dataset, data: Any, params: TaskParams, *, label: str = "",
              context: TaskContext | None = None) -> DownscalingTask:
        """Coarsen the truth of ``ds`` by ``params.factor`` and interpolate it back.

        Raises
        ------
        DataError : the checks of :func:`data.tasks.base.truth_field`, fewer than
            ``2 × factor`` points along lat or lon, empty or overlapping periods.
        """
        p: DownscalingParams = params  # type: ignore[assignment]
        label = label or str(ds.attrs.get("source_path", "dataset"))
        truth, mask = truth_field(ds, getattr(data, "var", None), p, label, "downscaling")
        truth = truth.transpose("time", "lat", "lon")
        for dim, what in (("lat", "latitude"), ("lon", "longitude")):
            if truth.sizes[dim] < 2 * p.factor:
                raise DataError(f"{label}: {truth.sizes[dim]} points along {what} are too few "
                                f"to coarsen by task.factor={p.factor} (need at least "
                                f"{2 * p.factor}, two blocks)")
        periods = split_periods(ds, p, label)
        coarse = coarsen(truth, p.factor)
        return cls(truth=truth, coarse=coarse, bicubic=bicubic_upsample(coarse, p.factor, truth),
                   mask=mask.load(), periods=periods, params=p, label=label)

    def network_io(self, window: int | None = None) -> NetworkIO:
        """The bicubic field of the same step → the fine field, as an increment over it."""
        return NetworkIO(sources=[self.bicubic], masks=[False], in_offsets=(0,),
                         out_offsets=(0,), base_channel=0)

    def prediction_dataset(self, rec: xr.DataArray, times: pd.DatetimeIndex) -> xr.Dataset:
        """Output, ``truth``, ``bicubic`` (fine grid), ``coarse`` (on ``lat_coarse``,
        ``lon_coarse``), ``mask``; attribute ``oceanlab_downscaling_factor``."""
        units = self.truth.attrs.get("units")
        bicubic = self.bicubic.sel(time=times).assign_attrs(
            long_name="bicubic interpolation of the coarse field", **({"units": units} if units else {}))
        ds = base_prediction_dataset(self, rec, times, bicubic=bicubic)
        ds["coarse"] = self.coarse.sel(time=times)
        ds.attrs["oceanlab_downscaling_factor"] = self.params.factor
        return ds

    def score(self, pred: xr.Dataset) -> tuple[dict, xr.Dataset]:
        """Mapping scores on the fine grid, the RMSE of bicubic and the gain over it, with
        the spatial means weighted as ``task.area_weighting`` says (recorded in
        ``metrics.json`` as ``area_weighting``)."""
        from metrics.diagnostics import mapping_diagnostics
        from metrics.mapping import RMSE, prepare_fields, rmse_over_time, score_mapping

        name = pred.attrs.get("oceanlab_reconstruction_var", str(self.truth.name))
        mask = pred["mask"].astype(bool)
        weighting = self.area_weighting(pred["truth"]["lat"])
        scores = score_mapping(pred[name], pred["truth"], mask, area_weighting=weighting)
        reference = RMSE().compute_fields(prepare_fields(
            pred["bicubic"], pred["truth"], mask, area_weighting=weighting))["rmse"]
        rmse, rmse_b = scores.get("rmse"), reference.value
        scores["rmse_bicubic"] = rmse_b
        if rmse_b is None:
            scores["notes"]["rmse_bicubic"] = reference.reason
        if rmse is not None and rmse_b:
            scores["rmse_gain_bicubic"] = 1.0 - rmse / rmse_b
        else:
            scores["rmse_gain_bicubic"] = None
            scores["notes"]["rmse_gain_bicubic"] = (
                "the RMSE of bicubic interpolation is 0 or missing" if not rmse_b
                else "the prediction's RMSE is missing")
        scores["area_weighting"] = weighting
        diagnostics = mapping_diagnostics(pred[name], pred["truth"], mask,
                                          area_weighting=weighting)
        diagnostics["rmse_t_bicubic"] = rmse_over_time(pred["bicubic"], pred["truth"], mask,
                                                       area_weighting=weighting)
        return scores, diagnostics
