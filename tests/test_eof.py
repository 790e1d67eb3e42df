"""The EOF model: DINEOF gap filling (values on a low-rank field, the mode choice), the EOF
linear inverse model forecast (exact on linear low-rank dynamics), the CLI end to end, the
parameters and the Experiment page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from pydantic import ValidationError

from app.cli import main
from data.synthetic import add_noise, insert_nan, mock_field
from models import registry
from models.eof import EOFMapper, EOFParams, dineof, fit_propagator, temporal_filter

NOISE = 0.01


def low_rank_field(seed: int = 0, n_lat: int = 24, n_lon: int = 30, n_time: int = 100):
    """A rank-3 field ``(n_space, n_time)``: smooth spatial modes × periodic series with
    decreasing amplitudes (3, 2, 1), and its copy with noise and 85 % of the entries missing."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, n_lat), np.linspace(0, 1, n_lon), indexing="ij")
    modes = np.stack([np.sin(np.pi * xx) * np.sin(np.pi * yy), np.cos(2 * np.pi * xx) * yy,
                      np.sin(3 * np.pi * yy) * xx]).reshape(3, -1)
    t = np.arange(n_time)
    series = np.stack([3 * np.sin(2 * np.pi * t / 37), 1.4 * np.cos(2 * np.pi * t / 23),
                       0.5 * np.sin(2 * np.pi * t / 11 + 1)])
    full = modes.T @ series
    gappy = full + NOISE * rng.standard_normal(full.shape)
    gappy[rng.random(full.shape) < 0.85] = np.nan
    return full, gappy


@pytest.fixture(scope="module")
def low_rank_result():
    full, gappy = low_rank_field()
    return full, gappy, dineof(gappy, max_modes=8, cv_fraction=0.05, tol=1e-4, max_iter=500,
                               seed=0)


def test_dineof_reconstructs_a_low_rank_field_and_chooses_its_rank(low_rank_result):
    full, gappy, res = low_rank_result
    assert res.n_modes == 3
    rms = np.sqrt(np.mean(full**2))
    missing = ~np.isfinite(gappy)
    err = np.sqrt(np.mean((res.filled - full)[missing] ** 2))
    assert err < 0.6 * NOISE, (err, rms)  # below the noise: the rank-3 fit averages it out
    assert err / rms < 0.01
    # observations are kept where observed
    seen = np.isfinite(gappy)
    np.testing.assert_allclose(res.filled[seen], gappy[seen])
    # the CV error with the true rank is about the noise
    assert res.cv_rmse[2] == pytest.approx(NOISE, rel=0.3)


def test_dineof_more_modes_are_no_better_on_held_out_data_past_the_true_rank(low_rank_result):
    _, _, res = low_rank_result
    cv = np.asarray(res.cv_rmse)
    assert cv[0] > cv[1] > cv[2]  # each true mode helps a lot
    assert cv[0] > 10 * cv[2]
    assert len(cv) >= 4 and (cv[3:] >= cv[2]).all()  # more modes fit the noise


def test_dineof_is_seeded():
    _, gappy = low_rank_field(seed=1, n_time=60)
    a = dineof(gappy, max_modes=5, seed=3, tol=1e-4)
    b = dineof(gappy, max_modes=5, seed=3, tol=1e-4)
    np.testing.assert_array_equal(a.filled, b.filled)
    assert a.cv_rmse == b.cv_rmse


def test_temporal_filter_smooths_only_between_neighbouring_steps():
    f = temporal_filter(np.array([0, 1, 2, 10, 11]), 0.2, 1)
    np.testing.assert_allclose(f.sum(1), 1.0)  # a constant stays constant
    assert f[2, 3] == 0 and f[0, 2] == 0 and f[3, 4] == pytest.approx(0.2)
    np.testing.assert_allclose(f[1, :3], [0.2, 0.6, 0.2])
    assert temporal_filter(np.arange(4), 0.0, 3) is None


def test_dineof_with_training_columns_fills_sparse_days():
    """Truth columns fix the EOFs: a few per cent observed per day is then enough."""
    rng = np.random.default_rng(4)
    full, _ = low_rank_field(seed=4, n_time=160)
    x = full + NOISE * rng.standard_normal(full.shape)
    x[:, :40][rng.random((full.shape[0], 40)) < 0.97] = np.nan  # days to fill: 3 % observed
    cv_cols = np.arange(160) < 40
    res = dineof(x, max_modes=8, seed=0, cv_columns=cv_cols, tol=1e-4, cv_fraction=0.1)
    err = np.sqrt(np.mean((res.filled[:, :40] - full[:, :40]) ** 2))
    assert res.n_modes >= 3  # few held-out points: the CV may keep a mode or two of noise
    assert err < 0.01 * np.sqrt(np.mean(full**2))


def test_fit_propagator_recovers_a_known_matrix():
    rng = np.random.default_rng(0)
    a = np.array([[0.9, -0.2], [0.2, 0.9]])
    p = np.zeros((2, 50))
    p[:, 0] = [1.0, 0.5]
    for t in range(49):
        p[:, t + 1] = a @ p[:, t] + 0.0 * rng.standard_normal(2)
    np.testing.assert_allclose(fit_propagator(p, np.arange(49), 0.0), a, atol=1e-10)
    shrunk = fit_propagator(p, np.arange(49), 1.0)
    assert np.abs(np.linalg.eigvals(shrunk)).max() < np.abs(np.linalg.eigvals(a)).max()


# ------------------------------------------------------------------------ the forecast LIM


def rotating_task(horizon: int = 6):
    """A forecast task whose truth is a front plus two rotating pairs of modes (periods 20 and
    10 steps): exactly linear dynamics of rank 4, zero mean over the 200 training steps."""
    from data.tasks.forecast import ForecastParams, ForecastTask

    n_time, n_lat, n_lon = 260, 12, 16
    lat = 33 + 0.25 * np.arange(n_lat)
    lon = -65 + 0.25 * np.arange(n_lon)
    yy, xx = np.meshgrid(np.linspace(0, 1, n_lat), np.linspace(0, 1, n_lon), indexing="ij")
    modes = [np.sin(np.pi * xx) * np.sin(2 * np.pi * yy), np.cos(np.pi * xx) * yy,
             np.sin(2 * np.pi * xx) * np.cos(np.pi * yy), xx * (1 - xx) * yy]
    t = np.arange(n_time)[:, None, None]
    field = 0.5 * np.tanh((yy - 0.5) * 4)[None]  # the mean front
    for (m1, m2), period, amp in (((modes[0], modes[1]), 20, 0.2), ((modes[2], modes[3]), 10, 0.1)):
        w = 2 * np.pi * t / period
        field = field + amp * (np.cos(w) * m1 + np.sin(w) * m2)
    field[:, :3, :3] = np.nan  # land corner
    times = pd.date_range("2012-10-01", periods=n_time, freq="D")
    truth = xr.DataArray(field.astype(np.float32), dims=("time", "lat", "lon"),
                         coords={"time": times, "lat": lat, "lon": lon}, name="ssh",
                         attrs={"units": "m"})
    mask = truth.notnull().any("time")
    periods = {"train": (times[0], times[199]), "val": (times[205], times[229]),
               "test": (times[235], times[259])}
    params = ForecastParams(history=1, horizon=horizon)
    return ForecastTask(truth=truth, state=truth, mask=mask, periods=periods, params=params,
                        label="rotating")


def test_lim_reproduces_exactly_linear_low_rank_dynamics():
    task = rotating_task()
    model = EOFMapper(EOFParams(forecast_modes=4, ridge=0.0, residual="drop"), torch.device("cpu"))
    model.fit(task)
    starts = task.sample_times("test")
    pred = model.predict(task, starts)
    truth = task.at_leads(task.truth, starts)
    assert pred.dims == ("time", "lead_time", "lat", "lon")
    assert pred.sizes["lead_time"] == 6 and pred.sizes["time"] == len(starts)
    err = np.nanmax(np.abs(pred.values - truth.values))
    assert err < 1e-5, err
    assert np.isnan(pred.values[:, :, 0, 0]).all()  # land stays NaN
    assert pred.attrs["eof_n_modes"] == 4
    assert pred.attrs["eof_spectral_radius"] == pytest.approx(1.0, abs=1e-5)  # no damping


def test_lim_with_too_few_modes_is_worse_and_persisting_the_residual_helps_at_lead_one():
    task = rotating_task()
    starts = task.sample_times("test")
    truth = task.at_leads(task.truth, starts).values

    def err(**kw):
        model = EOFMapper(EOFParams(ridge=0.0, **kw), torch.device("cpu"))
        model.fit(task)
        return np.sqrt(np.nanmean((model.predict(task, starts).values - truth) ** 2, axis=(0, 2, 3)))

    exact, two, two_persist = err(forecast_modes=4, residual="drop"), err(forecast_modes=2, residual="drop"), \
        err(forecast_modes=2, residual="persist")
    assert (two > 100 * exact).all()
    assert two_persist[0] < two[0]


# ------------------------------------------------------------------- model, params, CLI


def test_registered_for_both_tasks_with_validated_params():
    cls = registry.get("eof")
    assert cls is EOFMapper and not cls.trainable
    assert "eof" in registry.available("interpolation") and "eof" in registry.available("forecast")
    p = EOFParams()
    assert p.name == "eof" and p.train_fields is False and p.residual == "persist"
    for bad in ({"max_modes": 0}, {"cv_fraction": 0.0}, {"cv_fraction": 0.6}, {"tol": 0},
                {"time_filter": 0.5}, {"mean": "median"}, {"residual": "keep"}, {"ridge": -1},
                {"unknown": 1}, {"name": "oi"}):
        with pytest.raises(ValidationError):
            EOFParams(**bad)
    for name, f in EOFParams.model_fields.items():
        assert f.description or name == "name", name


def test_search_space_gives_valid_params():
    class Trial:
        def suggest_int(self, name, low, high, log=False):
            return low

        def suggest_float(self, name, low, high, log=False):
            return high

    values = EOFParams.search_space(Trial())
    assert {"max_modes", "cv_fraction"} <= set(values)
    EOFParams(**values)


def test_memory_estimate_grows_with_the_modes_and_columns():
    from data.tasks.interpolation import build_interpolation_task

    ds = mock_field(n_time=60, n_lat=20, n_lon=24, land=True, seed=1)
    ds["ssh_obs"] = insert_nan(ds["ssh"], 0.9, seed=2)
    task = build_interpolation_task(ds, "ssh", "ssh_obs")

    def total(**kw):
        model = EOFMapper(EOFParams(**kw), torch.device("cpu"))
        return sum(model.memory_estimate(task).values())

    small, large, fine = total(max_modes=5), total(max_modes=50), total(coarsen=1)
    n_ocean = int(task.mask.sum())
    assert large > small and fine > small
    assert fine >= 8 * 6 * n_ocean * len(task.index("test"))  # the matrix on the full grid


def test_predict_interpolation_keeps_attrs_and_land(mock_ds):
    from data.tasks.interpolation import build_interpolation_task

    task = build_interpolation_task(mock_ds, "ssh", "ssh_obs")
    model = EOFMapper(EOFParams(max_modes=6), torch.device("cpu"), seed=1)
    times = task.sample_times("test")
    rec = model.predict(task, times)
    assert rec.dims == ("time", "lat", "lon") and rec.sizes["time"] == len(times)
    ocean = task.mask.values
    assert np.isfinite(rec.values[:, ocean]).all() and np.isnan(rec.values[:, ~ocean]).all()
    assert 1 <= rec.attrs["eof_n_modes"] <= 6
    assert len(rec.attrs["eof_cv_rmse"]) >= rec.attrs["eof_n_modes"]
    assert rec.attrs["eof_train_columns"] == 0  # train_fields is off by default
    # better than the mean map alone on a smooth field
    truth = task.truth.sel(time=times).values
    mean = task.train_mean().values
    assert np.nanmean((rec.values - truth) ** 2) < np.nanmean((mean[None] - truth) ** 2)
    pred = task.prediction_dataset(rec, times)
    assert pred["ssh"].attrs["eof_n_modes"] == rec.attrs["eof_n_modes"]


def _train(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_cli_interpolation_run_ends_done_with_finite_scores(capsys, mock_nc, tmp_path):
    runs = tmp_path / "runs"
    result = _train(capsys, ["train", "--data", str(mock_nc), "--var", "ssh", "--obs", "ssh_obs",
                             "--model", "eof", "--set", "model.max_modes=8",
                             "--runs-dir", str(runs), "--json"])
    assert result["status"] == "done"
    metrics = json.loads((runs / result["run_id"] / "metrics.json").read_text())
    assert np.isfinite(metrics["rmse"]) and metrics["rmse"] > 0 and 0 < metrics["mu"] < 1
    with xr.open_dataset(runs / result["run_id"] / "prediction.nc") as pred:
        assert 1 <= int(pred["ssh"].attrs["eof_n_modes"]) <= 8


def test_cli_forecast_run_ends_done_with_finite_scores(capsys, tmp_path):
    path = tmp_path / "tiny.nc"
    mock_field(n_time=60, n_lat=10, n_lon=12, land=True, seed=5).drop_vars("mask").to_netcdf(path)
    runs = tmp_path / "runs"
    result = _train(capsys, ["train", "--task", "forecast", "--model", "eof", "--data", str(path),
                             "--set", "model.forecast_modes=5", "--runs-dir", str(runs), "--json"])
    assert result["status"] == "done"
    metrics = json.loads((runs / result["run_id"] / "metrics.json").read_text())
    assert len(metrics["rmse_by_lead"]) == 7 and np.isfinite(metrics["rmse_by_lead"]).all()
    assert np.isfinite(metrics["skill_persistence"])


# ------------------------------------------------------------------------------ the page


def test_experiment_page_lists_eof_with_its_widgets(tmp_path: Path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    home = tmp_path / "home"
    monkeypatch.setenv("OCEANLAB_HOME", str(home))
    ds = mock_field(n_time=24, n_lat=12, n_lon=16, land=True, seed=1)
    ds["ssh_obs"] = add_noise(insert_nan(ds["ssh"], 0.9, seed=2), 0.01, seed=3)
    ds = ds.drop_vars("mask")
    ds.attrs.update(oceanlab_truth_var="ssh", oceanlab_obs_var="ssh_obs")
    path = home / "datasets" / "mock.nc"
    path.parent.mkdir(parents=True)
    ds.to_netcdf(path)

    page = Path(__file__).resolve().parents[1] / "app" / "pages" / "2_Experiment.py"
    at = AppTest.from_file(str(page), default_timeout=30).run()
    at.radio(key="exp.source").set_value("path").run()
    at.text_input(key="exp.path").input(str(path.resolve())).run()
    assert not at.exception
    assert "eof" in at.selectbox(key="exp.model").options
    at.selectbox(key="exp.model").set_value("eof").run()
    assert not at.exception
    fields = EOFParams.model_fields
    modes = at.number_input(key="exp.model.eof.max_modes")
    assert modes.value == fields["max_modes"].default
    assert modes.help.startswith(fields["max_modes"].description)
    assert at.checkbox(key="exp.model.eof.train_fields").value is False
    at.selectbox(key="exp.task").set_value("forecast").run()
    assert not at.exception
    assert "eof" in at.selectbox(key="exp.model").options
