"""Area weighting by cos(latitude) (``task.area_weighting``): the scores against hand
computations, the ``auto`` rule, and the option recorded from the config to metrics.json."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from backend.config import build_config, parse_set
from data.osse import OSSE_LAT
from data.synthetic import insert_nan, mock_field
from data.tasks import build_interpolation_task, get_task
from metrics.diagnostics import mapping_diagnostics
from metrics.forecast import score_forecast
from metrics.mapping import score_mapping
from metrics.weighting import AREA_WEIGHT_SPAN_DEG, resolve_area_weighting
from oceanlab_errors import ConfigError

LAT = np.array([0.0, 30.0, 60.0, 75.0])   # a 75° span: auto weights
LON = np.arange(8, dtype=float)
W = np.cos(np.deg2rad(LAT))
E = np.array([0.0, 0.05, 0.3, 0.5])       # error concentrated at high latitudes
R = np.array([1.0, 0.8, 0.5, 0.4])        # truth, by latitude
GROWTH = np.array([1.0, 1.5, 2.0, 3.0])   # error growth in time (σ ≠ 0)


def _fields():
    """ref(t, lat, lon) = R(lat), rec = ref + E(lat) · GROWTH(t): every longitude alike."""
    times = pd.date_range("2012-10-22", periods=GROWTH.size, freq="D")
    ref = np.broadcast_to(R[None, :, None], (GROWTH.size, LAT.size, LON.size)).copy()
    err = GROWTH[:, None, None] * E[None, :, None] * np.ones((1, 1, LON.size))
    coords = {"time": times, "lat": LAT, "lon": LON}
    dims = ("time", "lat", "lon")
    ref_da = xr.DataArray(ref, dims=dims, coords=coords, attrs={"units": "m"})
    return ref_da + err, ref_da


def _mean(x, weights):
    """Mean over latitude (every longitude holds the same value)."""
    return np.sum(weights * x, axis=-1) / np.sum(weights)


@pytest.mark.parametrize("option, weights", [("cos(latitude)", W), ("none", np.ones(4))])
def test_rmse_mu_sigma_and_rmse_t_match_the_hand_formulas(option, weights):
    rec, ref = _fields()
    scores = score_mapping(rec, ref, area_weighting=option)
    sq = (GROWTH[:, None] * E[None, :]) ** 2                    # (time, lat)
    mse = np.mean(_mean(sq, weights))                           # every time has all points
    rmse = np.sqrt(mse)
    ms_ref = _mean(R**2, weights)
    rmse_t = np.sqrt(_mean(sq, weights))
    score_t = 1 - rmse_t / np.sqrt(ms_ref)
    assert scores["rmse"] == pytest.approx(rmse, rel=1e-12)
    assert scores["mu"] == pytest.approx(1 - rmse / np.sqrt(ms_ref), rel=1e-12)
    assert scores["sigma"] == pytest.approx(np.std(score_t), rel=1e-9)
    # the truth does not vary in time: µ of the anomaly is undefined either way
    assert scores["mu_anomaly"] is None
    diag = mapping_diagnostics(rec, ref, area_weighting=option)
    np.testing.assert_allclose(diag["rmse_t"].values, rmse_t, rtol=1e-12)
    assert diag.attrs["area_weighting"] == option


def test_weighting_lowers_an_error_concentrated_at_high_latitudes():
    rec, ref = _fields()
    weighted = score_mapping(rec, ref, area_weighting="cos(latitude)")
    plain = score_mapping(rec, ref, area_weighting="none")
    # by hand: Σ_j w_j E_j² / Σ_j w_j against the plain mean of E_j², times mean(GROWTH²)
    g2 = np.mean(GROWTH**2)
    assert weighted["rmse"] == pytest.approx(np.sqrt(g2 * np.sum(W * E**2) / np.sum(W)))
    assert plain["rmse"] == pytest.approx(np.sqrt(g2 * np.mean(E**2)))
    assert weighted["rmse"] < 0.8 * plain["rmse"]
    # auto on this 75° grid is the weighted value; none is the default, bit for bit
    auto = score_mapping(rec, ref, area_weighting="auto")
    assert auto["rmse"] == weighted["rmse"] and auto["mu"] == weighted["mu"]
    default = score_mapping(rec, ref)
    assert {k: v for k, v in default.items() if k != "notes"} == \
        {k: v for k, v in plain.items() if k != "notes"}
    # spectral scores do not depend on the option (λ is computed per latitude row)
    for key in ("lambda_x_deg", "lambda_t_days"):
        assert weighted[key] == plain[key]


def test_forecast_scores_follow_the_option_by_hand():
    # 2 starts, 2 leads; errors 0.2 at lat 0 and 1.0 at lat 60; persistence errs by 2 everywhere
    lat = np.array([0.0, 60.0])
    shape = (2, 2, 2, 3)
    dims = ("time", "lead_time", "lat", "lon")
    coords = {"time": pd.date_range("2000-01-01", periods=2), "lead_time": [1, 2],
              "lat": lat, "lon": np.arange(3.0)}
    truth = xr.DataArray(np.zeros(shape), dims=dims, coords=coords)
    err = np.zeros(shape)
    err[:, :, 0, :] = 0.2
    err[:, :, 1, :] = 1.0
    fc = truth + err
    w = np.cos(np.deg2rad(lat))
    for option, weights in (("cos(latitude)", w), ("none", np.ones(2)), ("auto", w)):
        m, diag = score_forecast(fc, truth, persistence=truth + 2.0, climatology=truth + 2.0,
                                 area_weighting=option)
        mse = np.sum(weights * np.array([0.04, 1.0])) / np.sum(weights)
        np.testing.assert_allclose(m["rmse_by_lead"], np.sqrt(mse), rtol=1e-6)
        np.testing.assert_allclose(m["skill_persistence_by_lead"], 1 - mse / 4.0, rtol=1e-6)
        assert diag.attrs["area_weighting"] == ("none" if option == "none" else "cos(latitude)")


def test_auto_resolves_by_the_latitude_span():
    assert float(OSSE_LAT.max() - OSSE_LAT.min()) < AREA_WEIGHT_SPAN_DEG
    assert resolve_area_weighting("auto", OSSE_LAT) == "none"          # built-in, 9.9°
    assert resolve_area_weighting("auto", np.array([33.0, 43.0])) == "none"  # the challenge
    assert resolve_area_weighting("auto", np.linspace(10.0, 70.0, 7)) == "cos(latitude)"
    assert resolve_area_weighting("auto", np.array([0.0, 15.0])) == "none"  # more than 15°
    assert resolve_area_weighting("none", np.linspace(10.0, 70.0, 7)) == "none"
    assert resolve_area_weighting("cos(latitude)", OSSE_LAT) == "cos(latitude)"
    assert resolve_area_weighting(None, OSSE_LAT) == "none"
    with pytest.raises(ValueError, match="expected one of"):
        resolve_area_weighting("cosine", OSSE_LAT)


@pytest.mark.parametrize("task, model", [("interpolation", "oi"), ("forecast", "persistence"),
                                         ("downscaling", "bicubic")])
def test_the_task_parameter_round_trips_through_the_config(task, model):
    assert build_config(task, model).task.area_weighting == "auto"
    sets = parse_set(["task.area_weighting=cos(latitude)"])
    config = build_config(task, model, overrides=sets)
    assert config.task.area_weighting == "cos(latitude)"
    again = build_config(task, model, base=config.to_dict())
    assert again.task.area_weighting == "cos(latitude)"
    assert build_config(task, model, overrides=parse_set(["task.area_weighting=none"])) \
        .task.area_weighting == "none"
    field = get_task(task).Params.model_fields["area_weighting"]
    assert "15°" in field.description
    with pytest.raises(ConfigError, match="area_weighting"):
        build_config(task, model, overrides={"task.area_weighting": "cosine"})


def _wide_ds() -> xr.Dataset:
    """40 days on a 60° span of latitude (10…70°N, 4° cells), with an observation variable."""
    ds = mock_field(n_time=40, n_lat=16, n_lon=12, lat0=10.0, step_deg=4.0, radius_deg=10.0,
                    seed=3)
    ds["ssh_obs"] = insert_nan(ds["ssh"], 0.7, seed=4)
    return ds


def _task_scores(ds, option):
    params = get_task("interpolation").Params(area_weighting=option)
    task = build_interpolation_task(ds, "ssh", "ssh_obs", params=params)
    times = task.times("test")
    truth = task.truth.sel(time=times)
    rec = truth + 0.1 * np.sin(np.deg2rad(truth["lat"])) ** 4  # error grows with latitude
    pred = task.prediction_dataset(rec, times)
    scores, diag = task.score(pred)
    ocean = pred["mask"].values.astype(bool)
    err2 = ((pred["ssh"] - pred["truth"]) ** 2).values
    lat_w = np.broadcast_to(np.cos(np.deg2rad(pred["lat"].values))[:, None], ocean.shape)
    return scores, diag, err2, lat_w, ocean


def test_interpolation_scores_record_the_resolved_weighting():
    ds = _wide_ds()
    scores, diag, err2, w, ocean = _task_scores(ds, "auto")
    assert scores["area_weighting"] == diag.attrs["area_weighting"] == "cos(latitude)"
    ok = np.isfinite(err2) & ocean[None]
    wt = np.broadcast_to(w[None], err2.shape)
    hand = np.sqrt(np.sum(wt[ok] * err2[ok]) / np.sum(wt[ok]))
    assert scores["rmse"] == pytest.approx(hand, rel=1e-5)
    plain, diag_p, *_ = _task_scores(ds, "none")
    assert plain["area_weighting"] == diag_p.attrs["area_weighting"] == "none"
    assert plain["rmse"] == pytest.approx(np.sqrt(np.mean(err2[ok])), rel=1e-5)
    assert plain["rmse"] > scores["rmse"]
    # on a narrow grid (the mock's 4.75°) auto is none
    narrow = mock_field(n_time=40, n_lat=20, n_lon=12, seed=3)
    narrow["ssh_obs"] = insert_nan(narrow["ssh"], 0.7, seed=4)
    assert _task_scores(narrow, "auto")[0]["area_weighting"] == "none"


def test_a_forecast_run_records_it_in_metrics_json(tmp_path):
    from backend.runner import execute
    from backend.store import RunStore

    path = tmp_path / "wide.nc"
    _wide_ds().drop_vars(["mask", "ssh_obs"]).to_netcdf(path)
    store = RunStore(tmp_path / "runs")
    for option, expected in (("auto", "cos(latitude)"), ("none", "none")):
        config = build_config("forecast", "persistence", overrides={
            "data.path": str(path), "data.var": "ssh", "task.history": 1, "task.horizon": 2,
            "task.gap_days": 1, **parse_set([f"task.area_weighting={option}"])})
        run = execute(config, store)
        assert run.status == "done", run.info().get("error")
        assert run.info()["config"]["task"]["area_weighting"] == option
        metrics = json.loads((run.path / "metrics.json").read_text())
        assert metrics["area_weighting"] == expected
        assert run.diagnostics().attrs["area_weighting"] == expected
        pred = run.prediction()
        err2 = ((pred["ssh"] - pred["truth"]) ** 2).values  # (start, lead, lat, lon)
        w = np.cos(np.deg2rad(pred["lat"].values)) if expected != "none" else np.ones(16)
        wt = np.broadcast_to(w[None, None, :, None], err2.shape)
        ok = np.isfinite(err2)
        for lead in range(2):
            sel = ok[:, lead]
            hand = np.sqrt(np.sum(wt[:, lead][sel] * err2[:, lead][sel]) / np.sum(wt[:, lead][sel]))
            assert metrics["rmse_by_lead"][lead] == pytest.approx(hand, rel=1e-5)


def test_evaluate_command_takes_and_records_the_option(tmp_path, capsys):
    from app.cli import main

    ds = _wide_ds().drop_vars(["mask", "ssh_obs"])
    ref, pred = tmp_path / "ref.nc", tmp_path / "pred.nc"
    ds.to_netcdf(ref)
    (ds + 0.1 * np.sin(np.deg2rad(ds["lat"])) ** 4).rename(ssh="rec").to_netcdf(pred)
    values = {}
    for option in ("auto", "none", "cos(latitude)"):
        code = main(["evaluate", "--ref", str(ref), "--pred", str(pred), "--json",
                     "--area-weighting", option])
        out = json.loads(capsys.readouterr().out)
        assert code == 0
        values[option] = out
    assert values["auto"]["area_weighting"] == "cos(latitude)"
    assert values["none"]["area_weighting"] == "none"
    assert values["auto"]["rmse"] == values["cos(latitude)"]["rmse"] < values["none"]["rmse"]
    assert "area_weighting" not in values["auto"]["scores"]
    # text output says it; --import records it in metrics.json and the config
    code = main(["evaluate", "--ref", str(ref), "--pred", str(pred), "--area-weighting", "none",
                 "--import", "--runs-dir", str(tmp_path / "runs")])
    text = capsys.readouterr().out
    assert code == 0 and "area weighting: none" in text
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert json.loads((run_dir / "metrics.json").read_text())["area_weighting"] == "none"
    assert json.loads((run_dir / "run.json").read_text())["config"]["task"]["area_weighting"] \
        == "none"
    with xr.open_dataset(run_dir / "diagnostics.nc") as diag:
        assert diag.attrs["area_weighting"] == "none"
