"""Downscaling: block means, bicubic geometry, the bicubic model, scores, a UNet, the CLI."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from app.cli import main
from data.errors import DataError
from data.synthetic import mock_field
from data.tasks.downscaling import (
    DownscalingParams,
    DownscalingTask,
    bicubic_upsample,
    coarsen,
)
from models.bicubic import BicubicMapper, BicubicParams
from models.trainer import TrainSettings
from models.unet import UNetMapper, UNetParams

DATA = SimpleNamespace(var=None)


def _grid(values: np.ndarray, step: float = 0.25) -> xr.DataArray:
    n_time, n_lat, n_lon = values.shape
    return xr.DataArray(
        values.astype(np.float32), dims=("time", "lat", "lon"), name="ssh",
        coords={"time": pd.date_range("2012-10-01", periods=n_time),
                "lat": 30.0 + step * np.arange(n_lat), "lon": -60.0 + step * np.arange(n_lon)},
        attrs={"units": "m"})


def _task(ds: xr.Dataset, factor: int = 4, **kw) -> DownscalingTask:
    return DownscalingTask.build(ds, DATA, DownscalingParams(factor=factor, **kw), label="tiny.nc")


# ----------------------------------------------------------------------- block means


def test_block_means_equal_hand_computed_means_with_coast_and_partial_blocks():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(2, 10, 9))
    values[:, 0:2, 0:3] = np.nan      # coastal block (0, 0): 10 ocean cells of 16
    values[:, 4:8, 4:8] = np.nan      # block (1, 1) all land
    values[1, 9, 8] = np.nan          # a missing value in the corner partial block
    truth = _grid(values)
    coarse = coarsen(truth, 4)
    assert coarse.dims == ("time", "lat_coarse", "lon_coarse") and coarse.shape == (2, 3, 3)
    v = truth.values.astype(np.float64)
    for t in range(2):
        assert coarse.values[t, 0, 0] == pytest.approx(np.nanmean(v[t, 0:4, 0:4]), rel=1e-6)
        assert np.count_nonzero(np.isfinite(v[t, 0:4, 0:4])) == 10
        assert np.isnan(coarse.values[t, 1, 1])
        assert coarse.values[t, 0, 1] == pytest.approx(v[t, 0:4, 4:8].mean(), rel=1e-6)
        # partial blocks at the far edges: 2 rows, 1 column, 2 x 1 cells
        assert coarse.values[t, 2, 0] == pytest.approx(v[t, 8:10, 0:4].mean(), rel=1e-6)
        assert coarse.values[t, 0, 2] == pytest.approx(v[t, 0:4, 8:9].mean(), rel=1e-6)
    assert coarse.values[0, 2, 2] == pytest.approx(v[0, 8:10, 8].mean(), rel=1e-6)
    assert coarse.values[1, 2, 2] == pytest.approx(v[1, 8, 8], rel=1e-6)
    # coordinates: the mean of each block's cell coordinates
    np.testing.assert_allclose(coarse["lat_coarse"], [30.375, 31.375, 32.125])
    np.testing.assert_allclose(coarse["lon_coarse"], [-59.625, -58.625, -58.0])
    assert coarse.attrs["units"] == "m"


@pytest.mark.parametrize("shape, factor", [((40, 36), 4), ((42, 37), 4), ((27, 31), 3),
                                           ((8, 9), 4)])
def test_bicubic_reproduces_a_linear_field(shape, factor):
    """Block means of a linear field are its values at the block centres; Keys' cubic
    convolution with its boundary condition gives the field back, edges included."""
    lat = 30.0 + 0.1 * np.arange(shape[0])
    lon = -60.0 + 0.1 * np.arange(shape[1])
    field = 2.0 * (lat[:, None] - 30.0) - 0.5 * (lon[None, :] + 60.0) + 0.3
    truth = _grid(np.stack([field, -field]), step=0.1)
    up = bicubic_upsample(coarsen(truth, factor), factor, truth)
    assert up.dims == ("time", "lat", "lon") and up.shape == truth.shape
    np.testing.assert_allclose(up.values, truth.values, atol=2e-5)


def test_bicubic_keeps_land_nan_and_fills_ocean_next_to_it():
    ds = mock_field(n_time=12, n_lat=20, n_lon=24, land=True, seed=3)
    task = _task(ds)
    land = ~ds["mask"].values
    assert np.isnan(task.bicubic.values[:, land]).all()
    assert np.isfinite(task.bicubic.values[:, ~land]).all()
    # block (4, 0) (rows 16-19, columns 0-3) is all land: NaN in the coarse field
    assert np.isnan(task.coarse.values[:, 4, 0]).all()
    # land (rows 15-19, columns 0-5: blocks (3-4, 0-1)) changes no value three blocks away,
    # beyond the kernel's reach of two coarse samples
    sea = _task(mock_field(n_time=12, n_lat=20, n_lon=24, land=False, seed=3))
    np.testing.assert_array_equal(task.truth.values[:, ~land], sea.truth.values[:, ~land])
    far = np.zeros((20, 24), dtype=bool)
    far[0:4, :] = True
    far[:, 16:] = True
    np.testing.assert_allclose(task.bicubic.values[:, far], sea.bicubic.values[:, far], atol=1e-7)
    assert not np.allclose(task.bicubic.values[:, 12:16, 6:8], sea.bicubic.values[:, 12:16, 6:8])


def test_a_block_missing_at_one_time_takes_its_nearest_neighbour():
    values = np.tile(np.arange(12.0)[None, None, :], (3, 12, 1))  # depends on lon only
    values[1, 4:8, 4:8] = np.nan  # block (1, 1) missing at time 1 only
    truth = _grid(values)
    coarse = coarsen(truth, 4)
    assert np.isnan(coarse.values[1, 1, 1]) and np.isfinite(coarse.values[[0, 2], 1, 1]).all()
    up = bicubic_upsample(coarse, 4, truth)
    assert np.isfinite(up.values).all()  # the cells are ocean at other times
    # the missing coarse cell took the value of one of its four nearest neighbours
    matches = []
    for i, j in ((0, 1), (2, 1), (1, 0), (1, 2)):
        filled = coarse.copy()
        filled[1, 1, 1] = coarse.values[1, i, j]
        matches.append(np.allclose(bicubic_upsample(filled, 4, truth).values[1], up.values[1]))
    assert any(matches)


# ----------------------------------------------------------------------- task and scores


def test_bicubic_model_is_the_task_bicubic_with_gain_zero():
    task = _task(mock_field(n_time=30, n_lat=24, n_lon=28, land=True, seed=2))
    times = task.sample_times("test")
    pred = BicubicMapper(BicubicParams(), torch.device("cpu")).predict(task, times)
    assert pred.dims == ("time", "lat", "lon") and pred.name == "ssh"
    assert pred.attrs["units"] == "m"
    xr.testing.assert_equal(pred.reset_coords(drop=True),
                            task.bicubic.sel(time=times).reset_coords(drop=True))
    scores, diagnostics = task.score(task.prediction_dataset(pred, times))
    assert scores["rmse_gain_bicubic"] == 0.0
    assert scores["rmse"] == pytest.approx(scores["rmse_bicubic"]) and scores["rmse"] > 0
    assert "rmse_t_bicubic" in diagnostics


def test_a_perfect_prediction_has_rmse_zero_and_gain_one():
    task = _task(mock_field(n_time=30, n_lat=24, n_lon=28, seed=2))
    times = task.sample_times("test")
    pred = task.wrap(task.truth.sel(time=times).values[:, None], times)
    scores, _ = task.score(task.prediction_dataset(pred, times))
    assert scores["rmse"] == 0.0
    assert scores["rmse_gain_bicubic"] == 1.0
    assert scores["rmse_bicubic"] > 0


def test_prediction_dataset_holds_coarse_bicubic_and_truth():
    task = _task(mock_field(n_time=30, n_lat=22, n_lon=26, seed=2))
    times = task.sample_times("test")
    ds = task.prediction_dataset(task.wrap(task.bicubic.sel(time=times).values[:, None], times),
                                 times)
    assert ds["coarse"].dims == ("time", "lat_coarse", "lon_coarse")
    assert ds["coarse"].shape == (len(times), 6, 7)
    assert ds["bicubic"].dims == ds["truth"].dims == ("time", "lat", "lon")
    assert ds.attrs["oceanlab_downscaling_factor"] == 4
    np.testing.assert_allclose(ds["coarse"]["lat_coarse"][:2], ds["lat"][:8].values.reshape(2, 4)
                               .mean(1))


def test_a_grid_too_small_for_the_factor_is_refused():
    ds = mock_field(n_time=20, n_lat=7, n_lon=20, seed=0)
    with pytest.raises(DataError) as err:
        _task(ds)
    message = str(err.value)
    assert "\n" not in message and "tiny.nc" in message
    assert "task.factor=4" in message and "7 points along latitude" in message
    _task(ds, factor=3)  # two blocks of 3 fit


@pytest.mark.slow
def test_a_tiny_unet_beats_bicubic():
    """Eddies of about two coarse cells: bicubic blurs them, a small UNet learns more."""
    ds = mock_field(n_time=60, n_lat=32, n_lon=32, radius_deg=0.6, n_eddies=20, seed=4)
    task = _task(ds)
    torch.manual_seed(0)
    model = UNetMapper(UNetParams(base_channels=8, depth=2), torch.device("cpu"), seed=0)
    history = model.fit(task, TrainSettings(epochs=20, batch_size=8, patch_size=32,
                                            steps_per_epoch=8, device="cpu"))
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    times = task.sample_times("test")
    scores, _ = task.score(task.prediction_dataset(model.predict(task, times), times))
    assert scores["rmse"] < scores["rmse_bicubic"]
    assert scores["rmse_gain_bicubic"] > 0.1


# ----------------------------------------------------------------------- command line


def test_cli_bicubic_end_to_end(tmp_path, capsys):
    path = tmp_path / "tiny.nc"
    mock_field(n_time=30, n_lat=16, n_lon=20, land=True, seed=5).drop_vars("mask").to_netcdf(path)
    runs = tmp_path / "runs"
    code = main(["train", "--task", "downscaling", "--model", "bicubic", "--data", str(path),
                 "--runs-dir", str(runs), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "done"
    run = runs / result["run_id"]
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("rmse", "mu", "sigma", "lambda_x_deg", "lambda_t_days", "rmse_bicubic",
                "rmse_gain_bicubic"):
        assert key in metrics
    assert metrics["rmse_gain_bicubic"] == 0.0 and metrics["rmse"] > 0
    with xr.open_dataset(run / "prediction.nc") as pred:
        assert {"ssh", "coarse", "bicubic", "truth", "mask"} <= set(pred.data_vars)
        assert pred["coarse"].dims == ("time", "lat_coarse", "lon_coarse")
        assert pred["coarse"].shape[1:] == (4, 5)


def test_cli_refuses_a_grid_too_small_in_one_line(tmp_path, capsys):
    path = tmp_path / "narrow.nc"
    mock_field(n_time=20, n_lat=6, n_lon=20, seed=0).drop_vars("mask").to_netcdf(path)
    code = main(["train", "--task", "downscaling", "--model", "bicubic", "--data", str(path),
                 "--runs-dir", str(tmp_path / "runs")])
    _out, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "narrow.nc" in lines[0] and "task.factor=4" in lines[0]
