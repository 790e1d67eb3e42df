"""Every model without epochs reports its progress through ``Mapper.report`` (issue 9): the
OI the days solved, the PINN the windows fitted, DINEOF its mode search and sweeps, the
cheap references one complete step. A report only observes: the predictions are the same
with and without it."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from data.synthetic import add_noise, insert_nan, mock_field
from data.tasks import InterpolationTask
from models.oi import DEFAULT_MAX_BATCH_BYTES, OIMapper, OIParams, optimal_interpolation

CPU = torch.device("cpu")


def _stages(rows: list[dict]) -> list[dict]:
    """The stage rows (``Mapper.report``'s), without the epoch rows."""
    return [r for r in rows if "stage" in r]


def _check_stage(rows: list[dict], stage: str, unit: str, total: int) -> list[int]:
    """The ``done`` values of ``stage``'s rows, after checking their shape: the unit and
    total given, non-decreasing from 0 up to ``total`` at the end."""
    mine = [r for r in rows if r["stage"] == stage]
    assert mine, f"no {stage!r} rows in {rows}"
    for r in mine:
        assert set(r) == {"stage", "done", "total", "unit"}
        assert r["unit"] == unit and r["total"] == total
        assert all(isinstance(r[k], int) for k in ("done", "total"))
    done = [r["done"] for r in mine]
    assert done[0] == 0 and done[-1] == total, done
    assert all(b >= a for a, b in itertools.pairwise(done)), done
    assert all(0 <= d <= total for d in done)
    return done


# ------------------------------------------------------------------------------------ OI


def _oi_task(n_time: int = 24) -> InterpolationTask:
    ds = mock_field(n_time=n_time, n_lat=12, n_lon=14, land=True, seed=5)
    truth = ds["ssh"]
    obs = add_noise(insert_nan(truth, 0.9, seed=6), 0.01, seed=7)
    t = pd.DatetimeIndex(ds.time.values)
    return InterpolationTask(truth=truth, obs=obs, mask=ds["mask"],
                             periods={"train": (t[0], t[7]), "val": (t[8], t[9]),
                                      "test": (t[10], t[n_time - 1])})


@pytest.mark.parametrize("block_days", [1, 3])
def test_oi_reports_the_days_solved(block_days):
    task = _oi_task()
    times = pd.DatetimeIndex(task.times("test"))
    params = OIParams(block_days=block_days)
    quiet = OIMapper(params, CPU).predict(task, times)

    model = OIMapper(params, CPU)
    rows: list[dict] = []
    model.progress = rows.append
    assert model.fit(task, None) is None
    pred = model.predict(task, times)

    np.testing.assert_array_equal(pred.values, quiet.values)
    assert {r["stage"] for r in rows} == {"solve"}
    done = _check_stage(rows, "solve", "days", len(times))
    # one report per system of days (and the first): intermediate counts, not just 0 and all
    assert len(done) == 1 + math.ceil(len(times) / block_days)
    assert len(set(done)) == len(done)


def _sparse_obs(n_time: int = 14):
    """Observations on the first 4 days only: with ``lt_days=1`` the later days' windows
    hold none (their systems are empty)."""
    ds = mock_field(n_time, 9, 11, step_deg=0.25, n_eddies=1, seed=3)
    obs = insert_nan(ds["ssh"], 0.7, seed=4)
    obs[4:] = np.nan
    return obs


@pytest.mark.parametrize("max_batch_bytes", [1, DEFAULT_MAX_BATCH_BYTES])
def test_optimal_interpolation_progress_counts_every_day_once(max_batch_bytes):
    """One system per batch (budget 1 byte) or all in one; empty systems count too."""
    obs = _sparse_obs()
    times = obs.time.values
    kw = {"lx_deg": 0.5, "ly_deg": 0.5, "lt_days": 1.0, "noise": 0.1,
          "max_batch_bytes": max_batch_bytes}
    calls: list[tuple[int, int]] = []
    got = optimal_interpolation(obs, times, obs.lat, obs.lon,
                                progress=lambda d, t: calls.append((d, t)), **kw)
    want = optimal_interpolation(obs, times, obs.lat, obs.lon, **kw)
    np.testing.assert_array_equal(got.values, want.values)
    assert {t for _, t in calls} == {len(times)}
    done = [d for d, _ in calls]
    assert done[0] == 0 and done[-1] == len(times)
    assert all(b > a for a, b in itertools.pairwise(done)), done  # one day per system, each once
    assert len(done) == 1 + len(times)


def test_optimal_interpolation_without_any_observation_reports_zero_then_all():
    obs = _sparse_obs() * np.nan
    calls: list[tuple[int, int]] = []
    optimal_interpolation(obs, obs.time.values[:5], obs.lat, obs.lon, noise=0.1,
                          progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 5), (5, 5)]


# ---------------------------------------------------------------------------------- PINN


def test_pinn_interpolation_reports_windows_and_keeps_its_steps():
    from models.pinn import PINNMapper, PINNParams
    from tests.test_pinn import TINY, _dataset, _task

    task = _task(_dataset(n_time=40))
    times = task.times("test")[:7]
    params = PINNParams(steps=3, window_days=2, stride_days=3, physics_weight=0.1, **TINY)
    quiet = PINNMapper(params, CPU, seed=0).predict(task, times)

    model = PINNMapper(params, CPU, seed=0)
    rows: list[dict] = []
    model.progress = rows.append
    assert model.fit(task, None, progress=rows.append) is None
    pred = model.predict(task, times)

    np.testing.assert_array_equal(pred.values, quiet.values)
    n_windows = math.ceil(len(times) / params.stride_days)  # chunks of stride_days days
    stages = _stages(rows)
    assert {r["stage"] for r in stages} == {"fit windows"}
    assert _check_stage(stages, "fit windows", "windows", n_windows) == [0, n_windows]
    # the optimiser's steps still come as epoch rows, between the two
    epochs = [r for r in rows if "epoch" in r]
    assert epochs and epochs[-1]["epoch"] == epochs[-1]["epochs"] == params.steps
    first, last = rows.index(stages[0]), rows.index(stages[-1])
    assert all(first < rows.index(r) < last for r in epochs)


def test_pinn_forecast_reports_one_window_per_start():
    from data.tasks import get_task
    from models.pinn import PINNMapper, PINNParams
    from tests.test_forecast import DATA
    from tests.test_pinn import TINY, _dataset

    forecast = get_task("forecast")
    task = forecast.build(_dataset(n_time=40), DATA,
                          forecast.Params(history=2, horizon=2, start_stride=3), label="tiny")
    starts = pd.DatetimeIndex(task.sample_times("test"))
    assert len(starts) >= 2
    params = PINNParams(steps=2, physics_weight=0, **TINY)
    quiet = PINNMapper(params, CPU, seed=0).predict(task, starts)

    model = PINNMapper(params, CPU, seed=0)
    rows: list[dict] = []
    model.progress = rows.append
    pred = model.predict(task, starts)

    np.testing.assert_array_equal(pred.values, quiet.values)
    assert _check_stage(_stages(rows), "fit windows", "windows", len(starts)) == \
        [0, len(starts)]


# ----------------------------------------------------------------------------------- EOF


def test_dineof_reports_the_mode_search_then_the_sweeps(mock_ds):
    from data.tasks.interpolation import build_interpolation_task
    from models.eof import EOFMapper, EOFParams

    task = build_interpolation_task(mock_ds, "ssh", "ssh_obs")
    times = task.sample_times("test")
    params = EOFParams(max_modes=6, max_iter=120)
    quiet = EOFMapper(params, CPU, seed=1).predict(task, times)

    model = EOFMapper(params, CPU, seed=1)
    rows: list[dict] = []
    model.progress = rows.append
    model.fit(task)
    pred = model.predict(task, times)

    np.testing.assert_array_equal(pred.values, quiet.values)
    assert [r["stage"] for r in rows] == sorted((r["stage"] for r in rows),
                                                 key=["cross-validate", "reconstruct"].index)
    tried = _check_stage(rows, "cross-validate", "modes", params.max_modes)
    assert len(tried) >= 3  # 0, then one per mode count tried (and the total)
    sweeps = _check_stage(rows, "reconstruct", "sweeps", params.max_iter)
    assert len(sweeps) <= params.max_iter // max(1, params.max_iter // 100) + 3


def test_dineof_without_held_out_points_reports_the_modes_fitted():
    from models.eof import dineof

    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 3)) @ rng.standard_normal((3, 20))
    x[rng.random(x.shape) < 0.5] = np.nan
    calls: list[tuple] = []
    res = dineof(x, max_modes=4, cv_fraction=1e-6, tol=1e-3, max_iter=50,
                 progress=lambda *a: calls.append(a))
    assert res.n_cv == 0 and res.n_modes == 4
    rows = [dict(zip(("stage", "done", "total", "unit"), c)) for c in calls]
    assert _check_stage(rows, "reconstruct", "modes", 4) == [0, 1, 2, 3, 4]
    quiet = dineof(x, max_modes=4, cv_fraction=1e-6, tol=1e-3, max_iter=50)
    np.testing.assert_array_equal(res.filled, quiet.filled)


def test_eof_forecast_reports_its_leads():
    from models.eof import EOFMapper, EOFParams
    from tests.test_eof import rotating_task

    task = rotating_task(horizon=4)
    model = EOFMapper(EOFParams(forecast_modes=4), CPU)
    rows: list[dict] = []
    model.progress = rows.append
    model.fit(task)
    starts = task.sample_times("test")
    pred = model.predict(task, starts)
    assert _check_stage(rows, "forecast", "leads", 4) == [0, 1, 2, 3, 4]
    quiet = EOFMapper(EOFParams(forecast_modes=4), CPU)
    quiet.fit(task)
    np.testing.assert_array_equal(pred.values, quiet.predict(task, starts).values)


# ------------------------------------------------------------------ the cheap references


@pytest.mark.parametrize("name", ["persistence", "climatology"])
def test_forecast_references_report_one_complete_step(name):
    from tests.test_forecast import forecast_task, make_model

    task = forecast_task(mock_field(n_time=60, n_lat=10, n_lon=12, land=True, seed=3))
    starts = task.sample_times("test")
    quiet = make_model(name)
    quiet.fit(task, None)
    model = make_model(name)
    rows: list[dict] = []
    model.progress = rows.append
    model.fit(task, None)
    pred = model.predict(task, starts)
    assert rows == [{"stage": "predict", "done": len(starts), "total": len(starts),
                     "unit": "starts"}]
    np.testing.assert_array_equal(pred.values, quiet.predict(task, starts).values)


def test_bicubic_reports_one_complete_step():
    from models.bicubic import BicubicMapper, BicubicParams
    from tests.test_downscaling import _task

    task = _task(mock_field(n_time=30, n_lat=24, n_lon=28, land=True, seed=2))
    times = task.sample_times("test")
    model = BicubicMapper(BicubicParams(), CPU)
    rows: list[dict] = []
    model.progress = rows.append
    pred = model.predict(task, times)
    assert rows == [{"stage": "predict", "done": len(times), "total": len(times),
                     "unit": "times"}]
    quiet = BicubicMapper(BicubicParams(), CPU).predict(task, times)
    np.testing.assert_array_equal(pred.values, quiet.values)


# --------------------------------------------------------------------------- autoencoder


def test_linear_autoencoder_reports_its_iterations():
    from models.autoencoder import fit_linear_autoencoder

    rng = np.random.default_rng(0)
    fields = rng.standard_normal((40, 3)) @ rng.standard_normal((3, 64))
    fields = fields.reshape(40, 8, 8) + 0.01 * rng.standard_normal((40, 8, 8))
    calls: list[tuple[int, int]] = []
    net, mean = fit_linear_autoencoder(fields, 3, iterations=30, seed=1,
                                       progress=lambda d, t: calls.append((d, t)))
    quiet, quiet_mean = fit_linear_autoencoder(fields, 3, iterations=30, seed=1)
    assert {t for _, t in calls} == {30}
    done = [d for d, _ in calls]
    assert done[0] == 0 and done[-1] == 30 and len(done) > 3
    assert all(b >= a for a, b in itertools.pairwise(done))
    np.testing.assert_array_equal(mean, quiet_mean)
    for a, b in zip(net.parameters(), quiet.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
