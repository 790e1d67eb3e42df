"""Eddy segmentation: from an SSH map, the class of every cell (0 background, 1 cyclonic,
2 anticyclonic).

Targets are the reference masks of a detector (:mod:`data.eddies`: ``task.reference``,
closed contours by default) run on the *true* SSH with the thresholds of this task's
parameters. Inputs are the true SSH maps or, with ``task.input_run=RUN_ID``, over the test
period the reconstruction of a finished interpolation run (the chain from satellite tracks
to eddies; training always sees the truth). Networks see two channels: the SSH and its
departure from the training period's mean map, each normalised by its own statistics.

``truth`` is the reference class mask (float32 0/1/2, NaN on land) so that the shared
trainer's targets are the classes; ``ssh`` the true SSH and ``inputs`` the input SSH.
``prediction.nc`` holds ``classes`` (the prediction, int8), ``truth`` (reference classes),
``input`` (the input SSH), ``truth_ssh`` and ``mask``. Scores: :mod:`metrics.eddies`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field, field_validator

from data.eddies import EddyParams, mask_over_time
from data.tasks.base import (
    NetworkIO,
    Task,
    TaskContext,
    TaskParams,
    split_periods,
    truth_field,
)
from data.tasks.registry import register_task
from oceanlab_errors import DataError


class SegmentationParams(TaskParams, EddyParams):
    name: Literal["segmentation"] = "segmentation"
    reference: Literal["contour", "okubo_weiss"] = Field(
        "contour", description="detector whose masks on the true SSH are the targets")
    input_run: str | None = Field(
        None, description="id of a finished interpolation run whose reconstruction is the "
                          "input over the test period (default: the true SSH)")
    match_km: float = Field(50.0, gt=0, le=10_000.0,
                            description="object scores: eddies match when their centroids are "
                                        "closer than this (km)")

    @field_validator("input_run")
    @classmethod
    def _run_id(cls, value: str | None) -> str | None:
        if value is not None and (not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", value)
                                  or set(value) <= {"."}):
            raise ValueError("a run id has only letters, digits, '.', '_' and '-'")
        return value


@register_task("segmentation")
@dataclass
class SegmentationTask(Task):
    """Classify every cell of an SSH map as background, cyclonic or anticyclonic eddy.

    Attributes
    ----------
    truth : reference classes (time, lat, lon) float32 0/1/2, NaN on land.
    ssh : the true SSH (time, lat, lon) float32.
    inputs : the input SSH: ``ssh``, with the test period replaced by an interpolation
        run's reconstruction when ``params.input_run`` is set.
    mask, periods, params, label : see :class:`data.tasks.Task`.
    """

    Params: ClassVar[type[TaskParams]] = SegmentationParams
    headline_scores: ClassVar[tuple[str, ...]] = ("dice_mean", "eddy_f1", "iou_cyclonic",
                                                  "iou_anticyclonic")
    #: Classes a network predicts (one output channel each; the prediction is the argmax).
    n_classes: ClassVar[int] = 3

    truth: xr.DataArray
    ssh: xr.DataArray
    inputs: xr.DataArray
    mask: xr.DataArray
    periods: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=dict)
    params: SegmentationParams = field(default_factory=SegmentationParams)
    label: str = ""

    @classmethod
    def build(cls, ds: xr.Dataset, data: Any, params: TaskParams, *, label: str = "",
              context: TaskContext | None = None) -> SegmentationTask:
        p: SegmentationParams = params  # type: ignore[assignment]
        label = label or str(ds.attrs.get("source_path", "dataset"))
        ssh, mask = truth_field(ds, getattr(data, "var", None), p, label, "segmentation")
        ssh = ssh.transpose("time", "lat", "lon")
        for dim in ("lat", "lon"):
            if ssh.sizes[dim] < 8:
                raise DataError(f"{label}: {ssh.sizes[dim]} points along {dim} are too few "
                                f"to detect eddies (need at least 8)")
        periods = split_periods(ds, p, label)
        classes = mask_over_time(ssh, p.reference, p)
        truth = classes.astype(np.float32).where(mask)
        truth.name = "eddy_class"
        truth.attrs = dict(classes.attrs)
        task = cls(truth=truth, ssh=ssh, inputs=ssh, mask=mask.load(), periods=periods,
                   params=p, label=label)
        if p.input_run:
            task.inputs = task._input_from_run(p.input_run, context)
        return task

    def _input_from_run(self, run_id: str, context: TaskContext | None) -> xr.DataArray:
        """The true SSH with the test period replaced by run ``run_id``'s reconstruction."""
        return self.with_run_test_period(self.ssh, run_id, context, option="input_run",
                                         noun="segmentation", advice="segment")

    # -- what a network sees --------------------------------------------------------------
    def network_io(self, window: int | None = None) -> NetworkIO:
        """The input SSH and its departure from the training period's mean map (each with
        its own normalisation) → one logit per class at the same step."""
        train = self.ssh.isel(time=self.index("train"))
        mean_map = train.mean("time")
        anomaly = self.inputs - mean_map
        scales = []
        for da in (self.inputs.isel(time=self.index("train")),
                   anomaly.isel(time=self.index("train"))):
            v = np.asarray(da.values)
            v = v[np.isfinite(v)]
            scales.append((float(v.mean()) if v.size else 0.0,
                           float(v.std()) if v.size and v.std() > 0 else 1.0))
        return NetworkIO(sources=[self.inputs, anomaly], masks=[False, False],
                         in_offsets=(0,), out_offsets=(0,), scales=scales)

    def wrap(self, values: np.ndarray, times: pd.DatetimeIndex) -> xr.DataArray:
        """Class scores ``(n, n_classes, lat, lon)`` (argmax taken) or classes ``(n, 1, lat,
        lon)`` / ``(n, lat, lon)`` → ``classes`` (time, lat, lon) int8, 0 on land."""
        values = np.asarray(values)
        if values.ndim == 4 and values.shape[1] > 1:
            classes = np.argmax(values, axis=1)
        else:
            classes = np.rint(values.reshape(values.shape[0], *values.shape[-2:]))
        classes = np.where(self.mask.values[None], classes, 0).astype(np.int8)
        return xr.DataArray(
            classes, dims=("time", "lat", "lon"),
            coords={"time": pd.DatetimeIndex(times).values, "lat": self.truth["lat"].values,
                    "lon": self.truth["lon"].values},
            name="classes",
            attrs={"long_name": "predicted eddy class: 0 background, 1 cyclonic, "
                                "2 anticyclonic",
                   "flag_values": np.array([0, 1, 2], dtype=np.int8),
                   "flag_meanings": "background cyclonic anticyclonic"})

    def prediction_dataset(self, rec: xr.DataArray, times: pd.DatetimeIndex) -> xr.Dataset:
        times = pd.DatetimeIndex(times)
        ref = self.truth.sel(time=times).fillna(0).astype(np.int8)
        ref.attrs = dict(self.truth.attrs, long_name=f"reference eddy class "
                                                     f"({self.params.reference} on the truth)")
        units = self.ssh.attrs.get("units")
        extra = {"units": units} if units else {}
        ds = xr.Dataset({
            "classes": rec.astype(np.int8),
            "truth": ref,
            "input": self.inputs.sel(time=times).astype(np.float32).assign_attrs(
                long_name="input SSH", **extra),
            "truth_ssh": self.ssh.sel(time=times).astype(np.float32).assign_attrs(
                long_name="true SSH", **extra),
            "mask": self.mask.astype(np.int8).assign_attrs(long_name="ocean mask (1 = ocean)"),
        })
        ds.attrs.update({"oceanlab_reconstruction_var": "classes",
                         "oceanlab_task": "segmentation",
                         "oceanlab_reference": self.params.reference,
                         "oceanlab_input_run": self.params.input_run or "",
                         "Conventions": "CF-1.8"})
        return ds

    def score(self, pred: xr.Dataset) -> tuple[dict, xr.Dataset]:
        """Pixel and object scores (:func:`metrics.eddies.score_segmentation`)."""
        from metrics.currents import metres_per_unit
        from metrics.eddies import score_segmentation

        def metres(name: str) -> xr.DataArray | None:
            if name not in pred:
                return None
            return pred[name] * metres_per_unit(pred[name].attrs.get("units"))

        scores, diag = score_segmentation(
            pred["classes"], pred["truth"], pred["mask"].astype(bool), metres("input"),
            metres("truth_ssh"), match_km=self.params.match_km, pixel_min=self.params.pixel_min)
        scores["area_weighting"] = "none"
        return scores, diag

    def physics_scores(self, pred: xr.Dataset) -> tuple[dict, xr.Dataset]:
        """No QG residual: the prediction is a class mask, not a field."""
        return {"notes": {}}, xr.Dataset()
