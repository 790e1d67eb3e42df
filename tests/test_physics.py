"""The QG potential-vorticity residual (metrics.physics): values against exact solutions and
a hand computation, masking, null scores with reasons, forecasts, every run's metrics.json
and the Results page's residual map and tuning plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from streamlit.testing.v1 import AppTest

from backend.store import Run, RunStore
from data.physics import EARTH_RADIUS_M, QGPhysics, grid_spacing_m
from data.synthetic import insert_nan, mock_field
from metrics.physics import (
    EDGE,
    evaluate,
    physics_residual,
    physics_residual_map,
    score_physics,
)

PHYS = QGPhysics(f0=9e-5, beta=1.7e-11, Ld=35e3, g=9.81)
DAY = 86400.0
APP = Path(__file__).resolve().parents[1] / "app"


# --------------------------------------------------------------------------- helpers


def grid(n_lat: int = 40, n_lon: int = 48, step: float = 0.1, lat0: float = 35.0):
    lat = lat0 + step * np.arange(n_lat)
    lon = -65.0 + step * np.arange(n_lon)
    dx, dy = grid_spacing_m(lat, lon)
    return lat, lon, dx * np.arange(n_lon)[None, :], dy * np.arange(n_lat)[:, None], dx, dy


def as_field(eta: np.ndarray, lat, lon, start: str = "2012-10-01") -> xr.DataArray:
    times = pd.date_range(start, periods=eta.shape[0], freq="D")
    return xr.DataArray(eta, dims=("time", "lat", "lon"),
                        coords={"time": times, "lat": lat, "lon": lon}, attrs={"units": "m"})


def discrete_omega(k: float, l: float, dx: float, dy: float, U: float = 0.0) -> float:
    """Frequency of a Rossby wave in a uniform zonal flow ``U`` that solves the *discrete*
    equation (centred differences in x, y and t) exactly: with k̃ = sin(k dx)/dx,
    K̃² = k̃² + l̃², the centred ∂t of cos(θ − ωt) gives sin(ω Δt)/Δt, and
    sin(ω Δt)/Δt = −k̃ (β − U K̃²) / (K̃² + Ld⁻²)."""
    kt, lt = math.sin(k * dx) / dx, math.sin(l * dy) / dy
    k2 = kt**2 + lt**2
    w = -kt * (PHYS.beta - U * k2) / (k2 + PHYS.Ld**-2)
    assert abs(w * DAY) < 1
    return math.asin(w * DAY) / DAY


def rossby(x, y, t, A, k, l, omega) -> np.ndarray:
    """SSH (m) of a wave of streamfunction amplitude ``A`` (m² s⁻¹)."""
    psi = A * np.cos(k * x[None] + l * y[None] - omega * t[:, None, None])
    return psi * PHYS.f0 / PHYS.g


def hand_residual(eta: np.ndarray, dt: float, dx: float, dy: float, p=PHYS):
    """R and J written out with shifted slices, NaN wherever a centred difference would
    leave the array: an independent implementation of the score's definition."""
    def d(f, h, axis):
        out = np.full_like(f, np.nan)
        n = f.shape[axis]
        lo = [slice(None)] * f.ndim
        hi = [slice(None)] * f.ndim
        mid = [slice(None)] * f.ndim
        lo[axis], hi[axis], mid[axis] = slice(0, n - 2), slice(2, n), slice(1, n - 1)
        out[tuple(mid)] = (f[tuple(hi)] - f[tuple(lo)]) / (2 * h)
        return out

    psi = eta * p.g / p.f0
    q = d(d(psi, dx, 2), dx, 2) + d(d(psi, dy, 1), dy, 1) - psi / p.Ld**2
    jac = d(psi, dx, 2) * d(q, dy, 1) - d(psi, dy, 1) * d(q, dx, 2)
    return d(q, dt, 0) + jac + p.beta * d(psi, dx, 2), jac


# --------------------------------------------------------------------------- exact solutions


def test_rossby_wave_in_a_mean_flow_has_no_residual_but_advection():
    """ψ = −U y + A cos(kx + ly − ωt) solves the nonlinear equation (its J is not zero:
    the wave is advected by U and the mean PV gradient U/Ld² by the wave)."""
    lat, lon, x, y, dx, dy = grid()
    t = np.arange(12) * DAY
    k, l, U, A = 2 * np.pi / 200e3, 2 * np.pi / 300e3, 0.3, 1e4
    omega = discrete_omega(k, l, dx, dy, U)
    eta = rossby(x, y, t, A, k, l, omega) + (-U * y * PHYS.f0 / PHYS.g)[None]
    out = evaluate(as_field(eta, lat, lon), PHYS)
    assert out.rms_advection > 1e-13  # J = A k̃ U K̃² sin θ: not small
    assert out.score.value < 1e-7
    assert out.n_points == 10 * (40 - 2 * EDGE) * (48 - 2 * EDGE)
    # the same wave at the continuous dispersion relation: only discretisation error
    k2 = k**2 + l**2
    omega_c = -k * (PHYS.beta - U * k2) / (k2 + PHYS.Ld**-2)
    eta_c = rossby(x, y, t, A, k, l, omega_c) + (-U * y * PHYS.f0 / PHYS.g)[None]
    assert 1e-4 < physics_residual(as_field(eta_c, lat, lon), PHYS).value < 0.5
    # the wave frozen in time: R = J + β ∂ψ/∂x, the ratio is about 1
    frozen = np.repeat(eta[:1], len(t), axis=0)
    assert physics_residual(as_field(frozen, lat, lon), PHYS).value == pytest.approx(1.0, abs=0.1)


def test_two_free_rossby_waves_residual_is_their_interaction():
    """Each free wave solves the linear equation, so R = J(ψ, q) of the pair: ratio 1."""
    lat, lon, x, y, dx, dy = grid()
    t = np.arange(10) * DAY
    waves = [(2 * np.pi / 250e3, 2 * np.pi / 400e3, 2e4), (2 * np.pi / 150e3, -2 * np.pi / 180e3, 1e4)]
    eta = sum(rossby(x, y, t, A, k, l, discrete_omega(k, l, dx, dy)) for k, l, A in waves)
    out = evaluate(as_field(eta, lat, lon), PHYS)
    assert out.rms_advection > 0
    assert out.score.value == pytest.approx(1.0, abs=1e-6)
    one = rossby(x, y, t, 2e4, waves[0][0], waves[0][1],
                 discrete_omega(waves[0][0], waves[0][1], dx, dy))
    single = evaluate(as_field(one, lat, lon), PHYS)
    assert single.rms_residual < 1e-9 * PHYS.beta * 2e4 * waves[0][0]  # vs the β term


# --------------------------------------------------------------------------- hand computation


def test_matches_a_hand_computation_on_a_random_field_with_land():
    rng = np.random.default_rng(4)
    lat, lon, *_ = grid(14, 16, step=0.25)
    dx, dy = grid_spacing_m(lat, lon)
    eta = rng.normal(0.0, 0.1, (7, 14, 16))
    ocean = np.ones((14, 16), bool)
    ocean[:4, :5] = False  # land corner
    ocean[9, 10] = False  # an island of one cell
    rec = as_field(np.where(ocean, eta, 123.0), lat, lon)  # garbage on land
    r, j = hand_residual(np.where(ocean, eta, np.nan), DAY, dx, dy)
    ok = np.isfinite(r)
    expected = math.sqrt(np.mean(r[ok] ** 2) / np.mean(j[ok] ** 2))
    mask = xr.DataArray(ocean, dims=("lat", "lon"))
    out = evaluate(rec, PHYS, mask)
    assert out.score.value == pytest.approx(expected, rel=1e-10)
    assert out.n_points == int(ok.sum()) > 0
    # land and every point whose stencil touches land are out of the map
    per_point = ok.sum(axis=0)
    sum_sq = np.where(ok, r, 0.0) ** 2
    expected_map = np.where(per_point > 0, np.sqrt(sum_sq.sum(axis=0) / np.maximum(per_point, 1)),
                            np.nan) / math.sqrt(np.mean(j[ok] ** 2))
    np.testing.assert_allclose(out.map.values, expected_map, rtol=1e-5)
    assert np.isnan(out.map.values[9, 10]) and np.isnan(out.map.values[9, 7])
    assert np.isnan(out.map.values[:EDGE]).all() and np.isnan(out.map.values[:, -EDGE:]).all()
    # the land garbage never counts: NaN there gives the same score, no mask a different one
    assert physics_residual(rec.where(mask), PHYS).value == pytest.approx(expected, rel=1e-12)
    assert physics_residual(rec, PHYS).value != pytest.approx(expected, rel=1e-3)
    np.testing.assert_allclose(physics_residual_map(rec, PHYS, ocean).values, out.map.values)


def test_time_from_the_coordinate_and_float32_input():
    rng = np.random.default_rng(1)
    lat, lon, *_ = grid(12, 12)
    dx, dy = grid_spacing_m(lat, lon)
    eta = rng.normal(0.0, 0.1, (5, 12, 12))
    two_daily = as_field(eta, lat, lon).assign_coords(
        time=pd.date_range("2012-10-01", periods=5, freq="2D"))
    r, j = hand_residual(eta, 2 * DAY, dx, dy)
    ok = np.isfinite(r)
    expected = math.sqrt(np.mean(r[ok] ** 2) / np.mean(j[ok] ** 2))
    assert physics_residual(two_daily, PHYS).value == pytest.approx(expected, rel=1e-10)
    as32 = physics_residual(two_daily.astype(np.float32), PHYS).value
    assert as32 == pytest.approx(physics_residual(two_daily.astype(np.float32).astype(float),
                                                  PHYS).value, rel=1e-12)


# --------------------------------------------------------------------------- null with a reason


def test_null_scores_say_why():
    rng = np.random.default_rng(2)
    lat, lon, *_ = grid(12, 12)
    field = as_field(rng.normal(0, 0.1, (6, 12, 12)), lat, lon)
    none = physics_residual(field, None, note="the data has no quasi-geostrophic constants")
    assert none.value is None and "quasi-geostrophic" in none.reason
    assert physics_residual(field, None).reason  # a default reason
    short = physics_residual(field.isel(time=[0, 1]), PHYS)
    assert short.value is None and "at least 3" in short.reason
    irregular = physics_residual(field.isel(time=[0, 1, 3, 4]), PHYS)
    assert irregular.value is None and "irregular" in irregular.reason
    small = physics_residual(field.isel(lat=slice(0, 6), lon=slice(0, 6)), PHYS)
    assert small.value is None and "no valid interior point" in small.reason
    uniform = as_field(np.broadcast_to(0.01 * np.arange(6.0)[:, None, None], (6, 12, 12)).copy(),
                       lat, lon)
    flat = physics_residual(uniform, PHYS)
    assert flat.value is None and "zero" in flat.reason
    with pytest.raises(Exception, match="at least 3"):
        physics_residual_map(field.isel(time=[0, 1]), PHYS)
    for score in (none, short, irregular, small, flat):
        assert score.units == "1" and "\n" not in score.reason


def test_score_physics_entries_and_diagnostics():
    rng = np.random.default_rng(3)
    lat, lon, *_ = grid(12, 14)
    truth = as_field(rng.normal(0, 0.1, (6, 12, 14)), lat, lon)
    scores, diag = score_physics(truth + 0.01, truth, PHYS)
    assert scores["physics_residual"] == pytest.approx(physics_residual(truth + 0.01, PHYS).value)
    assert scores["physics_residual_truth"] == pytest.approx(physics_residual(truth, PHYS).value)
    assert scores["notes"] == {}
    assert diag["physics_residual_map"].dims == ("lat", "lon")
    assert "physics_residual_map_truth" in diag
    scores, diag = score_physics(truth, truth, None, note="no constants here")
    assert scores == {"physics_residual": None, "physics_residual_truth": None,
                      "notes": {"physics_residual": "no constants here",
                                "physics_residual_truth": "no constants here"}}
    assert not diag.data_vars and diag.attrs["physics_residual_unavailable"] == "no constants here"


# --------------------------------------------------------------------------- forecast layout


def _forecast(truth: xr.DataArray, horizon: int) -> xr.DataArray:
    """(time=start, lead_time, lat, lon) with leads 1…horizon of ``truth``."""
    n = truth.sizes["time"] - horizon
    idx = np.arange(n)[:, None] + np.arange(1, horizon + 1)[None, :]
    times = truth["time"].values
    return xr.DataArray(
        truth.values[idx], dims=("time", "lead_time", "lat", "lon"),
        coords={"time": times[:n], "lead_time": np.arange(1, horizon + 1),
                "lat": truth["lat"].values, "lon": truth["lon"].values,
                "valid_time": (("time", "lead_time"), times[idx])})


def test_forecast_is_evaluated_along_leads_per_start():
    rng = np.random.default_rng(5)
    lat, lon, *_ = grid(12, 14)
    dx, dy = grid_spacing_m(lat, lon)
    truth = as_field(rng.normal(0, 0.1, (12, 12, 14)), lat, lon)
    fc = _forecast(truth, 4)
    sr = sj = 0.0
    count = 0
    for s in range(fc.sizes["time"]):
        r, j = hand_residual(truth.values[s + 1:s + 5], DAY, dx, dy)
        ok = np.isfinite(r)
        sr, sj, count = sr + np.sum(r[ok] ** 2), sj + np.sum(j[ok] ** 2), count + ok.sum()
    out = evaluate(fc, PHYS)
    assert out.score.value == pytest.approx(math.sqrt(sr / sj), rel=1e-10)
    assert out.n_points == count
    assert out.map.dims == ("lat", "lon")
    # leads counted in steps with the step in the attributes work too
    no_valid = fc.drop_vars("valid_time").assign_coords(
        lead_time=("lead_time", fc["lead_time"].values, {"step": "1 days"}))
    assert physics_residual(no_valid, PHYS).value == pytest.approx(out.score.value, rel=1e-12)
    short = physics_residual(_forecast(truth, 2), PHYS)
    assert short.value is None and "lead" in short.reason
    unknown = physics_residual(fc.drop_vars("valid_time"), PHYS)
    assert unknown.value is None and "lead" in unknown.reason


def test_every_task_reports_both_scores():
    from backend.config import DataConfig
    from data.physics import resolve_physics
    from data.tasks import get_task

    ds = mock_field(n_time=40, n_lat=20, n_lon=24, land=True, seed=1)
    ds.attrs.update(qg_f0=PHYS.f0, qg_beta=PHYS.beta, qg_Ld=PHYS.Ld, qg_g=PHYS.g)
    for name, params in (("interpolation", {}), ("forecast", {"history": 2, "horizon": 4}),
                         ("downscaling", {"factor": 2})):
        cls = get_task(name)
        task = cls.build(ds, DataConfig(obs="simulation"), cls.Params(**params), label="mock")
        times = task.sample_times("test")
        if name == "forecast":
            target = task.at_leads(task.truth, times).drop_vars("valid_time")
        else:
            target = task.truth.sel(time=times)
        pred = task.prediction_dataset(target, times)
        scores, diag = task.physics_scores(pred)
        assert scores["physics_residual"] is None and "constants" in scores["notes"][
            "physics_residual"], name  # the task was built without the backend's physics
        task.physics, task.physics_note = resolve_physics(ds.attrs)
        scores, diag = task.physics_scores(pred)
        assert scores["notes"] == {}, name
        # the prediction is the truth: the same residual
        assert scores["physics_residual"] == pytest.approx(scores["physics_residual_truth"]), name
        assert diag["physics_residual_map"].shape == (20, 24), name


# --------------------------------------------------------------------------- end to end


def qg_dataset(n_days: int = 40, n: int = 48, spacing: float = 12.5e3, seed: int = 0) -> xr.Dataset:
    """An OSSE-like file: the QG model (data.qg) on a small periodic square, daily SSH on a
    lat/lon grid whose spacing is the model's, with the ``qg_*`` attributes the built-in OSSE
    writes and gappy observations."""
    from data.qg import QGParams, run_qg

    p = QGParams(n=n, length=n * spacing, spinup_days=30, dt=7200.0)
    eta, _, _ = run_qg(n_days, seed=seed, params=p, device="cpu")
    lat_c = 38.0
    dlat = np.degrees(spacing / EARTH_RADIUS_M)
    dlon = np.degrees(spacing / (EARTH_RADIUS_M * np.cos(np.radians(lat_c))))
    lat = lat_c + dlat * (np.arange(n) - (n - 1) / 2)
    lon = -60.0 + dlon * (np.arange(n) - (n - 1) / 2)
    ssh = as_field(eta.astype(np.float32), lat, lon)
    ds = xr.Dataset({"ssh": ssh, "ssh_obs": insert_nan(ssh, 0.9, seed=seed + 1)})
    ds.attrs.update({f"qg_{k}": getattr(p, k) for k in ("f0", "beta", "Ld", "g")})
    ds.attrs.update(oceanlab_truth_var="ssh", oceanlab_obs_var="ssh_obs")
    return ds


@pytest.fixture(scope="module")
def qg_ds() -> xr.Dataset:
    return qg_dataset()


def test_qg_truth_is_more_consistent_than_the_truth_shuffled_in_time(qg_ds: xr.Dataset):
    from data.physics import resolve_physics

    physics, _ = resolve_physics(qg_ds.attrs)
    truth = qg_ds["ssh"]
    floor = physics_residual(truth, physics).value
    order = np.random.default_rng(0).permutation(truth.sizes["time"])
    shuffled = physics_residual(truth.copy(data=truth.values[order]), physics).value
    frozen = physics_residual(truth.copy(data=np.repeat(truth.values[:1], 40, axis=0)),
                              physics).value
    assert 0.3 < floor < 0.9  # forcing, drag, filter and daily sampling are not in R
    assert floor < frozen < shuffled
    assert shuffled > 1.2 * floor


def test_every_run_writes_both_scores_and_the_map(qg_ds: xr.Dataset, tmp_path: Path, capsys,
                                                  mock_nc: Path):
    from app.cli import main

    path = tmp_path / "qg.nc"
    qg_ds.to_netcdf(path)
    runs = tmp_path / "runs"
    assert main(["train", "--data", str(path), "--model", "oi", "--runs-dir", str(runs),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    run_dir = runs / result["run_id"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert isinstance(metrics["physics_residual"], float)
    assert isinstance(metrics["physics_residual_truth"], float)
    assert "physics_residual" not in metrics["notes"]
    assert list(metrics)[-1] == "notes"
    pred = xr.open_dataset(run_dir / "prediction.nc")
    from data.physics import resolve_physics

    physics, _ = resolve_physics(qg_ds.attrs)
    mask = pred["mask"].astype(bool)
    assert metrics["physics_residual"] == pytest.approx(
        physics_residual(pred["ssh"], physics, mask).value, rel=1e-6)
    assert metrics["physics_residual_truth"] == pytest.approx(
        physics_residual(pred["truth"], physics, mask).value, rel=1e-6)
    with xr.open_dataset(run_dir / "diagnostics.nc") as diag:
        assert diag["physics_residual_map"].dims == ("lat", "lon")
        assert "rmse_t" in diag  # the task's own diagnostics are kept
    # a file without the constants: null with the reason, the run still done
    assert main(["train", "--data", str(mock_nc), "--obs", "ssh_obs", "--model", "oi",
                 "--runs-dir", str(runs), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "done"
    metrics = json.loads((runs / result["run_id"] / "metrics.json").read_text())
    assert metrics["physics_residual"] is None and metrics["physics_residual_truth"] is None
    assert "qg_f0" in metrics["notes"]["physics_residual"]


def test_the_score_registry_knows_both_keys():
    from metrics.scores import SCORES

    assert SCORES["physics_residual"].better == "lower"
    assert SCORES["physics_residual"].unit == "1"
    assert SCORES["physics_residual_truth"].better is None  # a reference, not a target
    assert SCORES["physics_residual_truth"].description


# --------------------------------------------------------------------------- Results page


def page() -> AppTest:
    return AppTest.from_file(str(APP / "pages" / "3_Results.py"), default_timeout=30)


def texts(elements) -> str:
    return "\n".join(str(e.value).replace("\\", "") for e in elements)


def _run(store: RunStore, run_id: str, *, physics: bool = True, tuning: pd.DataFrame | None = None,
         tuned: dict | None = None, task_name: str = "interpolation") -> Run:
    """A finished run on mock data (with the QG constants): prediction, metrics.json and
    diagnostics.nc as backend.runner writes them."""
    from backend.config import DataConfig
    from backend.runner import add_physics_scores
    from data.physics import resolve_physics
    from data.synthetic import add_noise
    from data.tasks import get_task

    ds = mock_field(n_time=40, n_lat=16, n_lon=18, land=True, seed=1)
    ds.attrs.update(qg_f0=PHYS.f0, qg_beta=PHYS.beta, qg_Ld=PHYS.Ld)
    cls = get_task(task_name)
    params = {"history": 2, "horizon": 4} if task_name == "forecast" else {}
    task = cls.build(ds, DataConfig(obs="simulation"), cls.Params(**params), label="mock.nc")
    times = task.sample_times("test")
    if task_name == "forecast":
        target = task.at_leads(task.truth, times).drop_vars("valid_time")
    else:
        target = task.truth.sel(time=times)
    pred = task.prediction_dataset(add_noise(target, 0.01, seed=3), times)
    scores, diag = task.score(pred)
    if physics:
        task.physics, task.physics_note = resolve_physics(ds.attrs)
        scores, diag = add_physics_scores(task, pred, scores, diag)
    config = {"data": {"path": "mock.nc"}, "task": {"name": task_name, **params},
              "model": {"name": "autoencoder"}, "train": {"seed": 0, "device": "cpu"}}
    run = store.create(config, run_id=run_id, status="running")
    run.write_prediction(pred)
    run.write_metrics(scores)
    run.write_diagnostics(diag)
    if tuning is not None:
        tuning.to_csv(run.path / "tuning.csv", index=False)
    run.update(status="done", timings={"total_s": 1.0}, device="cpu",
               **({"tuned": tuned} if tuned else {}))
    return run


@pytest.fixture
def store(workspace: Path) -> RunStore:
    return RunStore(workspace / "runs")


def test_results_page_shows_the_residual_map_and_the_floor(store: RunStore):
    run = _run(store, "20240101-000000-autoencoder-aaaa")
    metrics = run.metrics()
    at = page().run()
    assert not at.exception and not at.error
    assert "Physics residual" in texts(at.subheader)
    shown = texts(at.markdown)
    assert f"{metrics['physics_residual']:.4g}" in shown
    assert f"{metrics['physics_residual_truth']:.4g}" in shown
    table = at.dataframe[0].value.set_index("key")
    assert table.loc["physics_residual", "better"] == "↓ lower"
    assert "physics_residual_truth" in table.index
    assert "Tuning" not in texts(at.subheader)  # no tuning.csv: no section


def test_results_page_residual_of_a_forecast_run(store: RunStore):
    run = _run(store, "20240101-000000-autoencoder-ffff", task_name="forecast")
    metrics = run.metrics()
    assert isinstance(metrics["physics_residual"], float)
    assert run.diagnostics()["physics_residual_map"].dims == ("lat", "lon")
    at = page().run()
    assert not at.exception and not at.error
    assert "Physics residual" in texts(at.subheader)
    assert f"{metrics['physics_residual']:.4g}" in texts(at.markdown)


def test_results_page_without_physics_and_without_constants(store: RunStore):
    _run(store, "20240101-000000-autoencoder-aaaa", physics=False)
    at = page().run()
    assert not at.exception and not at.error
    assert "No physics residual recorded" in texts(at.caption)
    run = _run(store, "20240102-000000-autoencoder-bbbb")
    metrics = run.metrics()
    metrics.update(physics_residual=None, physics_residual_truth=None,
                   notes={**metrics["notes"], "physics_residual": "no qg_f0 in this file"})
    run.write_metrics(metrics)
    (run.path / "diagnostics.nc").unlink()
    at = page().run()
    assert not at.exception and not at.error
    assert "no qg_f0 in this file" in texts(at.info)


def test_results_page_plots_the_tuning_metric_against_each_parameter(store: RunStore):
    table = pd.DataFrame({
        "number": range(6), "state": ["COMPLETE"] * 5 + ["FAIL"],
        "value": [0.09, 0.06, 0.05, 0.052, 0.055, None], "duration_s": [1.0] * 6,
        "latent": [2, 4, 8, 16, 32, 64], "activation": ["relu", "gelu"] * 3,
        "error": [None] * 5 + ["out of memory"]})
    _run(store, "20240101-000000-autoencoder-aaaa", tuning=table,
         tuned={"metric": "rmse", "direction": "minimize", "best_value": 0.05, "n_trials": 6})
    at = page().run()
    assert not at.exception and not at.error
    assert "Tuning" in texts(at.subheader)
    caption = texts(at.caption)
    assert "6 trials" in caption and "1 failed" in caption and "rmse" in caption
    trials = at.dataframe[-1].value
    assert list(trials["latent"]) == [2, 4, 8, 16, 32, 64]


def test_results_page_with_a_damaged_tuning_file(store: RunStore):
    run = _run(store, "20240101-000000-autoencoder-aaaa", tuning=pd.DataFrame({"a": [1]}))
    at = page().run()
    assert not at.exception and not at.error
    assert "no trial" in texts(at.info)
    (run.path / "tuning.csv").write_bytes(b"\xff\xfe\x00binary")
    at = page().run()
    assert not at.exception
