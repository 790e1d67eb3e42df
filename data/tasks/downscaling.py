"""Downscaling (super-resolution): recover the fine field from its block means.

The coarse field is the truth averaged over blocks of ``factor × factor`` grid cells
(NaN-aware, so coastal blocks average their ocean cells; partial blocks at the grid's far
edges average what they hold). The reference method is bicubic interpolation of the coarse
field back to the fine grid (torch's ``interpolate(mode="bicubic", align_corners=False)``,
whose sample positions are exactly the block centres); learned models get that
interpolated field as input and predict an increment over it. Scores are the mapping
scores on the fine grid (:func:`metrics.score_mapping`) plus the RMSE of bicubic
interpolation and the gain over it, ``rmse_gain_bicubic = 1 − RMSE / RMSE_bicubic``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
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


class DownscalingParams(TaskParams):
    name: Literal["downscaling"] = "downscaling"
    factor: int = Field(4, ge=2, le=64, description="block size (grid cells) of the coarse field")


def coarsen(truth: xr.DataArray, factor: int) -> xr.DataArray:
    """Block means ``(time, lat_coarse, lon_coarse)`` of ``truth`` over ``factor²`` cells,
    with the coarse cells' centre coordinates."""
    coarse = truth.coarsen(lat=factor, lon=factor, boundary="pad").mean()
    return coarse.rename(lat="lat_coarse", lon="lon_coarse").astype(np.float32)


def _fill_nearest(values: np.ndarray) -> np.ndarray:
    """NaN cells of each 2-D map take the value of the nearest finite cell."""
    out = values.copy()
    for k in range(values.shape[0]):
        nan = ~np.isfinite(values[k])
        if nan.all():
            out[k] = 0.0
        elif nan.any():
            _, (ii, jj) = ndimage.distance_transform_edt(nan, return_indices=True)
            out[k] = values[k][ii, jj]
    return out


def bicubic_upsample(coarse: xr.DataArray, factor: int, like: xr.DataArray) -> xr.DataArray:
    """Bicubic interpolation of ``coarse`` (time, lat_coarse, lon_coarse) onto the grid of
    ``like`` (time, lat, lon); land of ``like`` stays NaN."""
    values = _fill_nearest(np.asarray(coarse.values, dtype=np.float32))
    x = torch.from_numpy(values)[:, None]
    up = F.interpolate(x, scale_factor=factor, mode="bicubic", align_corners=False)[:, 0]
    n_lat, n_lon = like.sizes["lat"], like.sizes["lon"]
    up = up[:, :n_lat, :n_lon].numpy()
    out = xr.DataArray(up, dims=("time", "lat", "lon"),
                       coords={"time": coarse["time"].values, "lat": like["lat"].values,
                               "lon": like["lon"].values},
                       name=like.name, attrs=dict(like.attrs))
    return out.where(like.notnull().any("time")).astype(np.float32)


@register_task("downscaling")
@dataclass
class DownscalingTask(Task):
    """Recover ``truth`` from ``coarse`` (its ``factor``-block means).

    Attributes
    ----------
    truth : (time, lat, lon) float32, NaN on land.
    coarse : (time, lat_coarse, lon_coarse) block means.
    bicubic : (time, lat, lon) the coarse field interpolated back (the baseline and the
        networks' input).
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
        p: DownscalingParams = params  # type: ignore[assignment]
        label = label or str(ds.attrs.get("source_path", "dataset"))
        truth, mask = truth_field(ds, getattr(data, "var", None), p, label, "downscaling")
        for dim in ("lat", "lon"):
            if truth.sizes[dim] < 2 * p.factor:
                raise DataError(f"{label}: {truth.sizes[dim]} points along {dim} are too few to "
                                f"coarsen by task.factor={p.factor} (need at least "
                                f"{2 * p.factor})")
        periods = split_periods(ds, p, label)
        coarse = coarsen(truth, p.factor)
        return cls(truth=truth, coarse=coarse, bicubic=bicubic_upsample(coarse, p.factor, truth),
                   mask=mask.load(), periods=periods, params=p, label=label)

    def network_io(self, window: int | None = None) -> NetworkIO:
        """The bicubic field of the same step → the fine field, as an increment over it."""
        return NetworkIO(sources=[self.bicubic], masks=[False], in_offsets=(0,),
                         out_offsets=(0,), base_channel=0)

    def prediction_dataset(self, rec: xr.DataArray, times: pd.DatetimeIndex) -> xr.Dataset:
        """Output, ``truth``, ``bicubic`` (fine grid) and ``coarse`` (coarse grid), ``mask``."""
        ds = base_prediction_dataset(self, rec, times, bicubic=self.bicubic.sel(time=times))
        ds["coarse"] = self.coarse.sel(time=times).assign_attrs(
            long_name=f"block means over {self.params.factor}x{self.params.factor} cells",
            units=self.truth.attrs.get("units", ""))
        ds.attrs["oceanlab_downscaling_factor"] = self.params.factor
        return ds

    def score(self, pred: xr.Dataset) -> tuple[dict, xr.Dataset]:
        """Mapping scores on the fine grid, the RMSE of bicubic and the gain over it."""
        from metrics.diagnostics import mapping_diagnostics
        from metrics.mapping import rmse_over_time, score_mapping

        name = pred.attrs.get("oceanlab_reconstruction_var", str(self.truth.name))
        mask = pred["mask"].astype(bool)
        scores = score_mapping(pred[name], pred["truth"], mask)
        reference = score_mapping(pred["bicubic"], pred["truth"], mask)
        rmse, rmse_b = scores.get("rmse"), reference.get("rmse")
        scores["rmse_bicubic"] = rmse_b
        if rmse is not None and rmse_b:
            scores["rmse_gain_bicubic"] = 1.0 - rmse / rmse_b
        else:
            scores["rmse_gain_bicubic"] = None
            scores["notes"]["rmse_gain_bicubic"] = "the RMSE of bicubic interpolation is 0 or missing"
        diagnostics = mapping_diagnostics(pred[name], pred["truth"], mask)
        diagnostics["rmse_t_bicubic"] = rmse_over_time(pred["bicubic"], pred["truth"], mask)
        return scores, diagnostics
