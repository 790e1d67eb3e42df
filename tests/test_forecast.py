"""Forecasting: the task's samples, the scores, persistence, climatology, UNet and ConvLSTM.

Values are checked against hand-derived ones; the no-future test changes the field after a
start date and checks that the start's forecast does not move.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from app.cli import main
from data.synthetic import mock_field
from data.tasks import TaskContext, get_task
from metrics.forecast import DAYS_PER_YEAR, day_of_year_climatology, score_forecast
from models import registry
from models.trainer import TrainSettings
from oceanlab_errors import DataError

ForecastTask = get_task("forecast")
DATA = SimpleNamespace(var="ssh", obs=None, obs_noise=0.0, obs_seed=0)
DIMS4 = ("time", "lead_time", "lat", "lon")
TINY_TRAIN = TrainSettings(epochs=1, steps_per_epoch=2, batch_size=2, patch_size=8, seed=0)


def forecast_task(ds: xr.Dataset, context: TaskContext | None = None, **params):
    return ForecastTask.build(ds, DATA, ForecastTask.Params(**params), label="test data",
                              context=context)


def make_model(name: str, **params):
    cls = registry.get(name)
    return cls(cls.Params(**params), device=torch.device("cpu"), seed=0)


def field_da(values: np.ndarray, times, lat=None, lon=None) -> xr.DataArray:
    n_lat, n_lon = values.shape[-2:]
    lat = np.arange(n_lat, dtype=float) if lat is None else lat
    lon = np.arange(n_lon, dtype=float) if lon is None else lon
    return xr.DataArray(values.astype(np.float32), dims=("time", "lat", "lon"),
                        coords={"time": pd.DatetimeIndex(times), "lat": lat, "lon": lon},
                        name="ssh", attrs={"units": "m"})


def yearly_ds(n: int = 65, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    times = pd.date_range("1950-01-01", periods=n, freq="YS")
    return field_da(rng.normal(size=(n, 3, 4)), times, lat=30.0 + np.arange(3),
                    lon=-60.0 + np.arange(4)).to_dataset()


def expected_starts(task, split: str) -> np.ndarray:
    """Starts t whose targets t+1…t+H are all in ``split`` and inputs t−history+1… ≥ 0."""
    p = task.params
    idx = set(task.index(split).tolist())
    n = task.truth.sizes["time"]
    starts = [t for t in range(n) if t - p.history + 1 >= 0
              and all(t + h in idx for h in range(1, p.horizon + 1))]
    return np.array(starts[::p.start_stride] if split == "test" else starts, dtype=int)


# ----------------------------------------------------------------------------- samples


def test_sample_index_on_a_65_step_yearly_series():
    task = forecast_task(yearly_ds())  # defaults: history 5, horizon 7
    # automatic split of 65 steps: gap 6, train 0…36, val 43…50, test 57…64
    assert task.index("train")[[0, -1]].tolist() == [0, 36]
    assert task.index("val")[[0, -1]].tolist() == [43, 50]
    assert task.index("test")[[0, -1]].tolist() == [57, 64]
    assert task.sample_index("train").tolist() == list(range(4, 30))
    assert task.sample_index("val").tolist() == [42, 43]  # the start may precede its split
    assert task.sample_index("test").tolist() == [56, 57]
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(task.sample_index(split), expected_starts(task, split))
    # leads count steps of the data: lead h of the start 1950+56 is the year 1950+56+h
    starts = task.sample_times("test")
    truth = task.at_leads(task.truth, starts)
    assert truth.sizes["lead_time"] == 7 and "time steps" in truth["lead_time"].attrs["units"]
    assert pd.DatetimeIndex(truth["valid_time"].values[0]).year.tolist() == list(range(2007, 2014))
    np.testing.assert_array_equal(truth.values[1, 2], task.truth.values[57 + 3])
    # and it forecasts end to end
    pred = make_model("persistence").predict(task, starts)
    metrics, _ = task.score(task.prediction_dataset(pred, starts))
    assert len(metrics["rmse_by_lead"]) == 7 and metrics["skill_persistence_by_lead"] == [0.0] * 7


def test_sample_index_on_daily_data_with_stride():
    ds = mock_field(n_time=60, n_lat=6, n_lon=8, seed=0)
    task = forecast_task(ds, history=3, horizon=4, start_stride=2)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(task.sample_index(split), expected_starts(task, split))
    test = task.index("test")
    assert task.sample_index("test").tolist() == list(range(test[0] - 1, test[-1] - 4 + 1, 2))
    assert task.at_leads(task.truth, task.sample_times("test"))["lead_time"].attrs["units"] == "days"
    io = task.network_io()
    assert io.in_offsets == (-2, -1, 0) and io.out_offsets == (1, 2, 3, 4) and io.base_channel == 2
    rollout = forecast_task(ds, history=3, horizon=4, mode="rollout").network_io()
    assert rollout.out_offsets == (1,) and rollout.rollout == 4


def test_too_short_a_split_is_one_clear_error():
    with pytest.raises(DataError, match="too few for a forecast of 30 steps"):
        forecast_task(mock_field(n_time=60, n_lat=6, n_lon=8), horizon=30)


# ------------------------------------------------------------------------------ scores


def _cube(values: np.ndarray, lat=(0.0, 1.0)) -> xr.DataArray:
    """(time, lead_time, lat, lon) with 2 starts, 3 leads, 2 × 2 points unless given."""
    return xr.DataArray(values, dims=DIMS4, coords={
        "time": pd.date_range("2000-01-01", periods=values.shape[0]),
        "lead_time": np.arange(1, values.shape[1] + 1), "lat": np.asarray(lat),
        "lon": np.arange(values.shape[3], dtype=float)})


@pytest.fixture
def cube():
    rng = np.random.default_rng(0)
    return _cube(rng.normal(size=(2, 3, 2, 2)))


def test_score_perfect_forecast(cube):
    metrics, diag = score_forecast(cube, cube, persistence=cube + 1.0, climatology=cube * 0.0)
    assert metrics["rmse_by_lead"] == [0.0] * 3
    assert metrics["skill_persistence_by_lead"] == [1.0] * 3
    assert metrics["skill_climatology_by_lead"] == [1.0] * 3
    np.testing.assert_allclose(metrics["acc_by_lead"], 1.0, rtol=1e-12)
    assert metrics["rmse"] == 0.0 and metrics["acc"] == pytest.approx(1.0)
    np.testing.assert_allclose(diag["rmse_persistence"], 1.0)


def test_score_constant_errors_give_known_values(cube):
    # forecast off by 0.5, persistence by 1, climatology by 2: MSEs 0.25, 1, 4
    metrics, _ = score_forecast(cube + 0.5, cube, persistence=cube + 1.0, climatology=cube - 2.0)
    np.testing.assert_allclose(metrics["rmse_by_lead"], 0.5, rtol=1e-6)
    np.testing.assert_allclose(metrics["skill_persistence_by_lead"], 1 - 0.25 / 1, rtol=1e-6)
    np.testing.assert_allclose(metrics["skill_climatology_by_lead"], 1 - 0.25 / 4, rtol=1e-6)
    assert metrics["skill_persistence"] == pytest.approx(0.75)
    # persistence against itself has skill 0
    metrics, _ = score_forecast(cube + 1.0, cube, persistence=cube + 1.0, climatology=cube - 2.0)
    assert metrics["skill_persistence_by_lead"] == [0.0] * 3


def test_score_acc_of_known_anomaly_patterns():
    # truth anomaly a = (1, 1, -1, -1)/… ; forecast anomaly a + b with b ⟂ a, |b| = |a|:
    # ACC = a·(a+b) / (|a| |a+b|) = 1/√2; the forecast −a gives −1
    a = np.array([[1.0, 1.0], [-1.0, -1.0]])
    b = np.array([[1.0, -1.0], [1.0, -1.0]])
    clim = _cube(np.full((2, 3, 2, 2), 5.0))
    truth = clim + a
    m, _ = score_forecast(clim + a + b, truth, persistence=clim, climatology=clim)
    np.testing.assert_allclose(m["acc_by_lead"], 1 / np.sqrt(2), rtol=1e-9)
    m, _ = score_forecast(clim - a, truth, persistence=clim, climatology=clim)
    np.testing.assert_allclose(m["acc_by_lead"], -1.0, rtol=1e-9)
    # climatology as a forecast: no anomaly, ACC undefined, said in the notes
    m, _ = score_forecast(clim, truth, persistence=clim + 1, climatology=clim)
    assert m["acc"] is None and "acc" in m["notes"]


def test_score_area_weights_and_mask():
    # grid spanning 60° of latitude: cos(lat) weights; error 1 at lat 0, error 0 at lat 60
    lat = (0.0, 60.0)
    truth = _cube(np.zeros((2, 3, 2, 2)), lat=lat)
    err = np.zeros((2, 3, 2, 2))
    err[:, :, 0, :] = 1.0
    fc = truth + err
    m, diag = score_forecast(fc, truth, persistence=truth + 2.0, climatology=truth + 2.0)
    mse = 1.0 / (1.0 + np.cos(np.deg2rad(60.0)))  # = 2/3
    np.testing.assert_allclose(m["rmse_by_lead"], np.sqrt(mse), rtol=1e-6)
    assert diag.attrs["area_weighting"] == "cos(latitude)"
    # a masked point (and NaN) is left out
    mask = xr.DataArray([[True, True], [False, False]], dims=("lat", "lon"),
                        coords={"lat": list(lat), "lon": [0.0, 1.0]})
    m, _ = score_forecast(fc, truth, persistence=truth + 2.0, climatology=truth + 2.0, mask=mask)
    np.testing.assert_allclose(m["rmse_by_lead"], 1.0, rtol=1e-6)


def test_score_refuses_wrong_dimensions(cube):
    with pytest.raises(DataError, match="expected"):
        score_forecast(cube.isel(lead_time=0), cube, persistence=cube, climatology=cube)


# ------------------------------------------------------------------------- climatology


def test_day_of_year_climatology_by_hand():
    # three training days (day of year 0, 10, 30) of a 1-point field, sigma 10 days
    train = field_da(np.array([1.0, 2.0, 4.0]).reshape(3, 1, 1),
                     pd.to_datetime(["2001-01-01", "2001-01-11", "2001-01-31"]))
    out_times = pd.to_datetime(["2005-01-11", "2005-12-27"])  # day of year 10 and 360
    clim = day_of_year_climatology(train, out_times, window_days=10.0)
    w = np.exp(-0.5 * (np.array([10.0, 0.0, 20.0]) / 10.0) ** 2)
    expected_10 = (w @ [1.0, 2.0, 4.0]) / w.sum()
    d = DAYS_PER_YEAR - 360 + np.array([0.0, 10.0, 30.0])  # across the new year: 5.24…
    w = np.exp(-0.5 * (d / 10.0) ** 2)
    expected_360 = (w @ [1.0, 2.0, 4.0]) / w.sum()
    np.testing.assert_allclose(clim.values[:, 0, 0], [expected_10, expected_360], rtol=1e-6)
    # a NaN training value is skipped, not propagated
    train[1] = np.nan
    clim = day_of_year_climatology(train, out_times[:1], window_days=10.0)
    w = np.exp(-0.5 * (np.array([10.0, 20.0]) / 10.0) ** 2)
    np.testing.assert_allclose(clim.values[0, 0, 0], (w @ [1.0, 4.0]) / w.sum(), rtol=1e-6)


def test_day_of_year_climatology_damps_harmonics_like_a_gaussian():
    # two whole years of x = cos(ωτ) + 0.5 sin(2ωτ), τ the day of the year; a Gaussian of
    # standard deviation σ multiplies harmonic k by exp(−(kωσ)²/2)
    times = pd.date_range("2001-01-01", "2002-12-31", freq="D")
    omega = 2 * np.pi / DAYS_PER_YEAR
    tau = (times.day_of_year - 1).to_numpy(float)
    x = np.cos(omega * tau) + 0.5 * np.sin(2 * omega * tau)
    train = field_da(np.broadcast_to(x[:, None, None], (len(x), 1, 2)).copy(), times)
    out = pd.date_range("2010-01-01", periods=12, freq="MS") + pd.Timedelta(days=14)
    sigma = 15.0
    clim = day_of_year_climatology(train, out, window_days=sigma)
    t = (out.day_of_year - 1).to_numpy(float)
    g1, g2 = np.exp(-0.5 * (omega * sigma) ** 2), np.exp(-0.5 * (2 * omega * sigma) ** 2)
    expected = g1 * np.cos(omega * t) + 0.5 * g2 * np.sin(2 * omega * t)
    np.testing.assert_allclose(clim.values[:, 0, 0], expected, atol=2e-3)
    assert not np.allclose(clim.values[:, 0, 0], np.cos(omega * t) + 0.5 * np.sin(2 * omega * t),
                           atol=2e-2)  # the smoothing shows


def test_climatology_model_on_yearly_data_is_the_training_mean():
    task = forecast_task(yearly_ds(), history=2, horizon=3)
    model = make_model("climatology")
    model.fit(task, TINY_TRAIN)
    starts = task.sample_times("test")
    pred = model.predict(task, starts)
    assert pred.dims == DIMS4 and pred.sizes["lead_time"] == 3
    train_mean = task.truth.isel(time=task.index("train")).mean("time").values
    np.testing.assert_allclose(pred.values, np.broadcast_to(train_mean, pred.shape), rtol=1e-5)


def test_climatology_model_on_daily_harmonics():
    times = pd.date_range("2001-01-01", "2003-12-31", freq="D")
    omega = 2 * np.pi / DAYS_PER_YEAR
    tau = (times.day_of_year - 1).to_numpy(float)
    x = 2.0 * np.cos(omega * tau) - np.sin(2 * omega * tau)
    ds = field_da(np.broadcast_to(x[:, None, None], (len(x), 2, 3)).copy(), times).to_dataset()
    task = forecast_task(ds, train_period="2001-01-01/2002-12-31",
                         val_period="2003-01-10/2003-02-28", test_period="2003-03-10/2003-12-31",
                         history=2, horizon=5, start_stride=30)
    for window, params in ((15.0, {}), (30.0, {"window_days": 30.0})):
        model = make_model("climatology", **params)
        starts = task.sample_times("test")
        pred = model.predict(task, starts)  # predict without fit works too
        valid = pd.DatetimeIndex(task.at_leads(task.truth, starts)["valid_time"].values.ravel())
        t = (valid.day_of_year - 1).to_numpy(float)
        g1 = np.exp(-0.5 * (omega * window) ** 2)
        g2 = np.exp(-0.5 * (2 * omega * window) ** 2)
        expected = (2.0 * g1 * np.cos(omega * t) - g2 * np.sin(2 * omega * t)).reshape(
            len(starts), 5)
        np.testing.assert_allclose(pred.values[:, :, 1, 2], expected, atol=3e-3)


def test_climatology_model_uses_the_task_window_by_default():
    ds = mock_field(n_time=60, n_lat=6, n_lon=8, seed=0)
    task = forecast_task(ds, climatology_window_days=4.0)
    starts = task.sample_times("test")
    pred = make_model("climatology").predict(task, starts)
    expected = task.at_leads(task.climatology(), starts)
    np.testing.assert_allclose(pred.values, expected.values, rtol=1e-6)


# ------------------------------------------------------------------------ persistence


def test_persistence_holds_the_initial_state():
    ds = mock_field(n_time=60, n_lat=10, n_lon=12, land=True, seed=3)
    task = forecast_task(ds)
    starts = task.sample_times("test")
    pred = make_model("persistence").predict(task, starts)
    assert pred.dims == DIMS4 and pred.sizes["lead_time"] == 7
    initial = task.truth.sel(time=starts).values
    for h in range(7):
        np.testing.assert_array_equal(pred.values[:, h], initial)
    assert np.isnan(pred.values[:, :, ~task.mask.values]).all()
    metrics, _ = task.score(task.prediction_dataset(pred, starts))
    assert metrics["skill_persistence_by_lead"] == [0.0] * 7


# ----------------------------------------------------------------------------- networks


def test_convlstm_reads_channel_blocks_as_a_sequence():
    from models.convlstm import ConvLSTMNet

    net = ConvLSTMNet(steps=3, c_step=2, c_out=4, base=4, hidden=4, depth=1)
    seen = []
    net.stem.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    # channel k holds the value k: blocks [field t0 t1 t2 | mask t0 t1 t2]
    x = torch.arange(6, dtype=torch.float32)[None, :, None, None].expand(2, 6, 5, 7).clone()
    y = net(x)
    assert y.shape == (2, 4, 5, 7)
    stem_in = seen[0].view(3, 2, 2, 6, 8)  # (steps, batch, c_step, padded H, W)
    for t in range(3):
        assert stem_in[t, :, :, :5, :7].amax(dim=(-1, -2)).tolist() == [[t, 3 + t]] * 2


@pytest.mark.parametrize("mode", ["direct", "rollout"])
def test_untrained_convlstm_is_persistence(mode):
    # its head starts at zero: the increment over the last state is 0
    task = forecast_task(mock_field(n_time=60, n_lat=10, n_lon=12, land=True, seed=0),
                         history=3, horizon=4, mode=mode)
    starts = task.sample_times("test")
    pred = make_model("convlstm", base_channels=4, hidden_channels=4).predict(task, starts)
    ref = make_model("persistence").predict(task, starts)
    np.testing.assert_allclose(pred.values, ref.values, atol=1e-5)


CASES = [
    ("unet", "direct", {"base_channels": 4, "depth": 2}),
    ("unet", "rollout", {"base_channels": 4, "depth": 2}),
    ("convlstm", "direct", {"base_channels": 4, "hidden_channels": 4, "depth": 1}),
    ("convlstm", "rollout", {"base_channels": 4, "hidden_channels": 4, "depth": 1}),
    ("persistence", "direct", {}),
    ("climatology", "direct", {}),
]


@pytest.mark.parametrize(("name", "mode", "params"), CASES,
                         ids=[f"{n}-{m}" for n, m, _ in CASES])
def test_no_future_information_reaches_a_forecast(name, mode, params):
    ds = mock_field(n_time=60, n_lat=12, n_lon=16, land=True, seed=2)
    task = forecast_task(ds, history=3, horizon=4, mode=mode)
    model = make_model(name, **params)
    model.fit(task, TINY_TRAIN)
    starts = task.sample_times("test")
    before = model.predict(task, starts)
    k = 2
    t0 = int(task.sample_index("test")[k])
    changed = task.truth.copy()
    rng = np.random.default_rng(0)
    changed.values[t0 + 1:] += rng.normal(0.0, 1.0, changed.values[t0 + 1:].shape).astype(np.float32)
    task.truth = task.state = changed
    after = model.predict(task, starts)
    np.testing.assert_allclose(after.values[:k + 1], before.values[:k + 1], atol=1e-6)
    if name != "climatology":  # the test can see a change: later starts do move
        assert not np.allclose(after.values[k + 1:], before.values[k + 1:], equal_nan=True)
    if name in ("unet", "convlstm"):
        assert model.state_dict() is not None and len(model.state_dict()) > 2


# ----------------------------------------------------------------------- initialisation


def _interpolation_prediction(task, offset: float = 1.0, lat_shift: float = 0.0) -> xr.Dataset:
    rec = (task.truth + offset).assign_coords(lat=task.truth["lat"] + lat_shift)
    ds = xr.Dataset({"ssh": rec})
    ds.attrs.update(oceanlab_reconstruction_var="ssh", oceanlab_task="interpolation")
    return ds


def test_init_run_replaces_the_test_state_by_the_reconstruction():
    ds = mock_field(n_time=60, n_lat=8, n_lon=10, land=True, seed=4)
    plain = forecast_task(ds, history=3, horizon=4)
    asked = []

    def run_prediction(run_id):
        asked.append(run_id)
        return _interpolation_prediction(plain)

    task = forecast_task(ds, TaskContext(run_prediction=run_prediction), history=3, horizon=4,
                         init_run="run-1")
    assert asked == ["run-1"]
    test, train = task.index("test"), task.index("train")
    ocean = task.mask.values
    np.testing.assert_allclose(task.state.values[test][:, ocean],
                               task.truth.values[test][:, ocean] + 1.0, rtol=1e-6)
    np.testing.assert_array_equal(task.state.values[train], task.truth.values[train])
    # test starts only use the reconstruction: their inputs lie inside the test period
    assert task.sample_index("test")[0] == test[0] + 3 - 1
    starts = task.sample_times("test")
    pred = make_model("persistence").predict(task, starts)
    np.testing.assert_allclose(pred.values[:, 0][:, ocean],
                               task.truth.sel(time=starts).values[:, ocean] + 1.0, rtol=1e-6)
    ds_pred = task.prediction_dataset(pred, starts)
    assert ds_pred.attrs["oceanlab_init_run"] == "run-1"
    metrics, _ = task.score(ds_pred)
    assert metrics["skill_persistence_by_lead"] == [0.0] * 4


def test_init_run_refuses_another_grid_or_task_or_no_store():
    ds = mock_field(n_time=60, n_lat=8, n_lon=10, seed=4)
    plain = forecast_task(ds, history=3, horizon=4)
    shifted = TaskContext(run_prediction=lambda rid: _interpolation_prediction(plain, lat_shift=0.5))
    with pytest.raises(DataError, match="another lat grid"):
        forecast_task(ds, shifted, history=3, horizon=4, init_run="run-1")
    other = _interpolation_prediction(plain)
    other.attrs["oceanlab_task"] = "forecast"
    with pytest.raises(DataError, match="needs an interpolation run"):
        forecast_task(ds, TaskContext(run_prediction=lambda rid: other), init_run="run-1")
    with pytest.raises(DataError, match="needs the run store"):
        forecast_task(ds, None, init_run="run-1")


# -------------------------------------------------------------------------------- CLI


def test_cli_trains_a_persistence_forecast(capsys, tmp_path):
    path = tmp_path / "tiny.nc"
    mock_field(n_time=60, n_lat=10, n_lon=12, land=True, seed=5).drop_vars("mask").to_netcdf(path)
    runs = tmp_path / "runs"
    code = main(["train", "--task", "forecast", "--model", "persistence", "--data", str(path),
                 "--runs-dir", str(runs), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "done", result
    saved = json.loads((runs / result["run_id"] / "metrics.json").read_text())
    for key in ("rmse", "skill_persistence", "skill_climatology", "acc"):
        assert len(saved[f"{key}_by_lead"]) == 7
        assert saved[key] == pytest.approx(np.mean(saved[f"{key}_by_lead"]))
    assert saved["skill_persistence_by_lead"] == [0.0] * 7
    assert all(0 < r for r in saved["rmse_by_lead"])
    assert saved["rmse_by_lead"] == sorted(saved["rmse_by_lead"])  # drifting eddies drift away
    pred = xr.open_dataset(runs / result["run_id"] / "prediction.nc")
    assert pred["ssh"].dims == DIMS4 and pred.attrs["oceanlab_task"] == "forecast"
    pred.close()


def test_cli_trains_a_tiny_convlstm(capsys, tmp_path):
    path = tmp_path / "tiny.nc"
    mock_field(n_time=60, n_lat=10, n_lon=12, seed=6).drop_vars("mask").to_netcdf(path)
    code = main(["train", "--task", "forecast", "--model", "convlstm", "--data", str(path),
                 "--runs-dir", str(tmp_path / "runs"), "--json", "--epochs", "1",
                 "--set", "model.base_channels=4", "--set", "model.hidden_channels=4",
                 "--set", "task.mode=rollout", "--set", "task.horizon=3",
                 "--set", "train.steps_per_epoch=2", "--set", "train.batch_size=2",
                 "--set", "train.patch_size=8"])
    out, err = capsys.readouterr()
    assert code == 0, err
    metrics = json.loads(out)["metrics"]
    assert len(metrics["rmse_by_lead"]) == 3 and all(np.isfinite(metrics["rmse_by_lead"]))
    assert "convlstm" in registry.available("forecast")
    assert "convlstm" not in registry.available("interpolation")
