"""The segmentation task (issue 12): targets, inputs from an interpolation run, the detector
baselines, the UNet's segmentation head and losses, scores and the CLI."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from app.cli import main
from data.eddies import mask_over_time
from data.tasks import TaskContext, get_task
from metrics.scores import SCORES
from models import registry
from models.losses import cross_entropy, dice_loss
from models.trainer import TrainSettings
from oceanlab_errors import DataError

DATA = SimpleNamespace(var="ssh", obs=None, obs_noise=0.0, obs_seed=0)
KM_PER_DEG = 6371.0 * np.pi / 180
KEYS = ("iou_cyclonic", "iou_anticyclonic", "dice_mean", "eddy_precision", "eddy_recall",
        "eddy_f1")


def eddy_ds(n_time: int = 40, seed: int = 0) -> xr.Dataset:
    """Drifting Gaussian highs and lows (σ 40–60 km, 0.1–0.3 m) on a 0.1° grid, with a
    land corner; canonical (time, lat, lon) float32."""
    rng = np.random.default_rng(seed)
    lat = np.arange(34.0, 38.0, 0.1)
    lon = np.arange(-66.0, -61.2, 0.1)
    x, y = np.meshgrid(lon, lat)
    eddies = [(rng.uniform(-65, -62), rng.uniform(35, 37), rng.choice([-1, 1]) *
               rng.uniform(0.1, 0.3), rng.uniform(40, 60), rng.uniform(-0.05, 0.05))
              for _ in range(5)]
    maps = []
    for t in range(n_time):
        ssh = np.zeros_like(x)
        for lo, la, amp, sigma, drift in eddies:
            dx = (x - lo - drift * t) * KM_PER_DEG * np.cos(np.deg2rad(la))
            dy = (y - la) * KM_PER_DEG
            ssh += amp * np.exp(-(dx**2 + dy**2) / (2 * sigma**2))
        maps.append(ssh)
    values = np.asarray(maps, np.float32)
    values[:, :4, :5] = np.nan
    times = pd.date_range("2020-01-01", periods=n_time, freq="D")
    ssh = xr.DataArray(values, dims=("time", "lat", "lon"),
                       coords={"time": times, "lat": lat, "lon": lon},
                       attrs={"units": "m", "long_name": "sea surface height"})
    return xr.Dataset({"ssh": ssh}, attrs={"oceanlab_truth_var": "ssh"})


def seg_task(ds, context=None, **params):
    cls = get_task("segmentation")
    return cls.build(ds, DATA, cls.Params(**params), label="eddies", context=context)


def make_model(name: str, **params):
    cls = registry.get(name)
    return cls(cls.Params(**params), device=torch.device("cpu"), seed=0)


def test_task_targets_are_the_reference_masks_of_the_truth():
    ds = eddy_ds()
    task = seg_task(ds, highpass_km=0)
    ref = mask_over_time(ds["ssh"], "contour", task.params)
    ocean = task.mask.values
    np.testing.assert_array_equal(task.truth.values[:, ocean], ref.values[:, ocean])
    assert np.isnan(task.truth.values[:, ~ocean]).all()
    assert set(np.unique(ref.values)) == {0, 1, 2}
    assert task.inputs is task.ssh
    io = task.network_io()
    assert io.in_channels == 2 and io.base_channel is None and io.scales is not None
    assert set(registry.available("segmentation")) >= {"unet", "okubo_weiss", "contour"}
    ow = seg_task(ds, reference="okubo_weiss")
    assert not np.array_equal(ow.truth.values, task.truth.values)


def test_contour_model_on_the_truth_scores_one_and_okubo_weiss_less():
    task = seg_task(eddy_ds())
    times = task.sample_times("test")
    for name in ("contour", "okubo_weiss"):
        rec = make_model(name).predict(task, times)
        assert rec.dtype == np.int8 and rec.dims == ("time", "lat", "lon")
        pred = task.prediction_dataset(rec, times)
        assert pred.attrs["oceanlab_reconstruction_var"] == "classes"
        assert {"classes", "truth", "input", "truth_ssh", "mask"} <= set(pred.data_vars)
        scores, diag = task.score(pred)
        for key in KEYS:
            assert key in scores and key in SCORES
        if name == "contour":
            assert all(scores[k] == 1.0 for k in KEYS)
            assert scores["radius_error_km"] == 0.0 and scores["amplitude_error_m"] == 0.0
        else:
            assert 0 < scores["dice_mean"] < 1
        assert "iou_t_cyclonic" in diag
    extra, maps = task.physics_scores(pred)
    assert extra == {"notes": {}} and not maps.data_vars


def interpolation_prediction(task, offset=0.0, lat_shift=0.0, kind="interpolation"):
    rec = (task.ssh + offset).assign_coords(lat=task.ssh["lat"] + lat_shift)
    ds = xr.Dataset({"ssh": rec, "truth": task.ssh})
    ds.attrs.update(oceanlab_reconstruction_var="ssh", oceanlab_task=kind)
    return ds


def test_input_run_replaces_the_test_inputs_only():
    ds = eddy_ds()
    base = seg_task(ds)
    smooth = base.ssh * 0.5
    other = xr.Dataset({"ssh": smooth, "truth": base.ssh},
                       attrs={"oceanlab_reconstruction_var": "ssh",
                              "oceanlab_task": "interpolation"})
    task = seg_task(ds, TaskContext(run_prediction=lambda rid: other), input_run="run-1")
    test = task.index("test")
    train = task.index("train")
    ocean = task.mask.values
    np.testing.assert_allclose(task.inputs.values[test][:, ocean], smooth.values[test][:, ocean])
    np.testing.assert_array_equal(task.inputs.values[train], task.ssh.values[train])
    np.testing.assert_array_equal(task.truth.values[:, ocean], base.truth.values[:, ocean])
    rec = make_model("contour").predict(task, task.sample_times("test"))
    pred = task.prediction_dataset(rec, task.sample_times("test"))
    assert pred.attrs["oceanlab_input_run"] == "run-1"
    scores, _ = task.score(pred)
    assert scores["eddy_f1"] < 1.0 or scores["amplitude_error_m"] > 0
    with pytest.raises(DataError, match="another lat grid"):
        seg_task(ds, TaskContext(run_prediction=lambda rid: interpolation_prediction(
            base, lat_shift=0.5)), input_run="run-1")
    with pytest.raises(DataError, match="needs an interpolation run"):
        seg_task(ds, TaskContext(run_prediction=lambda rid: interpolation_prediction(
            base, kind="forecast")), input_run="run-1")
    with pytest.raises(DataError, match="needs the run store"):
        seg_task(ds, None, input_run="run-1")


def test_class_losses():
    target = torch.zeros(1, 1, 4, 4)
    target[0, 0, :2, :2] = 1
    target[0, 0, 2:, 2:] = 2
    weight = torch.ones_like(target)
    perfect = torch.nn.functional.one_hot(target[:, 0].long(), 3).permute(0, 3, 1, 2) * 20.0
    assert float(cross_entropy(perfect, target, weight)) < 1e-6
    assert float(dice_loss(perfect, target, weight)) < 1e-3
    flat = torch.zeros(1, 3, 4, 4)
    assert float(cross_entropy(flat, target, weight)) == pytest.approx(np.log(3), rel=1e-5)
    assert float(dice_loss(flat, target, weight)) > 0.3
    with pytest.raises(ValueError, match="one output channel per class"):
        cross_entropy(torch.zeros(1, 1, 4, 4), target, weight)


def test_unet_learns_the_classes_a_little():
    task = seg_task(eddy_ds(n_time=60))
    model = make_model("unet", base_channels=8, depth=2)
    settings = TrainSettings(epochs=3, batch_size=4, patch_size=32, steps_per_epoch=6,
                             device="cpu")
    model.configure(settings)
    history = model.fit(task, settings)
    assert len(history) == 3 and np.isfinite(history["train_loss"]).all()
    assert model.net.head.out_channels == 3
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    rec = model.predict(task, task.sample_times("test"))
    assert rec.dtype == np.int8 and set(np.unique(rec.values)) <= {0, 1, 2}
    # targets are classes and outputs logits: no normalisation of either
    assert model.norm.mean == 0.0 and model.norm.std == 1.0
    field_model = make_model("unet", base_channels=8, depth=2)
    assert field_model._n_classes == 0  # field tasks keep one output per target


def test_cli_segmentation_runs(capsys, tmp_path):
    path = tmp_path / "eddies.nc"
    eddy_ds(n_time=40).to_netcdf(path)
    runs = tmp_path / "runs"
    common = ["--data", str(path), "--runs-dir", str(runs), "--json"]
    code = main(["train", "--task", "segmentation", "--model", "okubo_weiss", *common])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "done", result
    for key in KEYS:
        assert key in result["metrics"]
    assert "physics_residual" not in result["metrics"]
    code = main(["train", "--task", "segmentation", "--model", "unet", *common, "--epochs", "1",
                 "--set", "model.base_channels=4", "--set", "model.depth=1",
                 "--set", "train.steps_per_epoch=2", "--set", "train.batch_size=2",
                 "--set", "train.patch_size=16", "--set", "train.loss=[{name: dice}]"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "done", result
    pred = xr.open_dataset(runs / result["run_id"] / "prediction.nc")
    assert pred["classes"].dtype == np.int8 and pred.attrs["oceanlab_task"] == "segmentation"
    pred.close()
    # the chain: a finished interpolation run's reconstruction as the test input
    code = main(["train", "--task", "interpolation", "--model", "oi", *common,
                 "--obs", "simulation"])
    out, err = capsys.readouterr()
    assert code == 0, err
    interp = json.loads(out)
    assert interp["status"] == "done", interp
    code = main(["train", "--task", "segmentation", "--model", "contour", *common,
                 "--set", f"task.input_run={interp['run_id']}"])
    out, err = capsys.readouterr()
    assert code == 0, err
    chained = json.loads(out)
    assert chained["status"] == "done", chained
    assert 0 <= chained["metrics"]["eddy_f1"] < 1
    pred = xr.open_dataset(runs / chained["run_id"] / "prediction.nc")
    assert pred.attrs["oceanlab_input_run"] == interp["run_id"]
    pred.close()
