"""Comparing runs (issue 10): leaderboard, config differences, paired bootstrap, the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from app.cli import main
from backend.compare import config_differences, leaderboard, paired_bootstrap
from backend.config import build_config
from backend.runner import execute
from backend.store import Run, RunStore
from oceanlab_errors import RunError

LT_DAYS = (3.0, 6.0, 12.0)


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


@pytest.fixture
def runs(mock_nc, store):
    """Three finished OI runs on the mock data that differ only in model.lt_days."""
    out = []
    for lt in LT_DAYS:
        config = build_config(model="oi", overrides={
            "data.path": str(mock_nc), "data.var": "ssh", "data.obs": "ssh_obs",
            "model.lt_days": lt})
        run = execute(config, store)
        assert run.status == "done", run.info().get("error")
        out.append(run)
    return out


def copy_run(store: RunStore, run: Run, new_id: str, change) -> Run:
    """A copy of ``run``'s folder under ``new_id`` whose prediction.nc is ``change(pred)``."""
    shutil.copytree(run.path, store.root / new_id)
    copy = store.get(new_id)
    copy.write_prediction(change(run.prediction()))
    return copy


def perfect(pred):
    out = pred.copy()
    out["ssh"] = out["truth"].copy()
    return out


def hand_rmse(run: Run) -> float:
    pred = run.prediction()
    ocean = pred["mask"].values != 0
    err = (pred["ssh"].values.astype(float) - pred["truth"].values.astype(float))[:, ocean]
    return float(np.sqrt(np.nanmean(err ** 2)))


def test_leaderboard_flags_the_best_run_of_each_score(runs):
    table = leaderboard(runs)
    metrics = [r.metrics() for r in runs]
    assert list(table["id"]) == [r.id for r in runs]
    assert list(table["task"]) == ["interpolation"] * 3
    assert list(table["model"]) == ["oi"] * 3
    assert list(table["dataset"]) == ["mock.nc"] * 3
    assert table["rmse"].tolist() == pytest.approx([m["rmse"] for m in metrics])
    best_rmse = runs[int(np.argmin([m["rmse"] for m in metrics]))].id
    best_mu = runs[int(np.argmax([m["mu"] for m in metrics]))].id
    assert table.loc[table["rmse_best"], "id"].tolist() == [best_rmse]
    assert table.loc[table["mu_best"], "id"].tolist() == [best_mu]
    assert table.attrs["best"]["rmse"] == best_rmse
    assert table.attrs["best"]["mu"] == best_mu
    # sigma is lower-is-better: the flag follows the registry's direction, not "max"
    best_sigma = runs[int(np.argmin([m["sigma"] for m in metrics]))].id
    assert table.attrs["best"]["sigma"] == best_sigma
    # a null score (no QG constants in the mock data) has no best run
    assert table["physics_residual"].isna().all()
    assert not table["physics_residual_best"].any()
    assert "physics_residual" not in table.attrs["best"]


def test_config_differences_are_only_what_differs(runs):
    assert config_differences(runs) == {"model.lt_days": list(LT_DAYS)}
    assert config_differences(runs[:1]) == {}


def test_bootstrap_of_a_run_against_itself_is_zero(runs):
    out = paired_bootstrap(runs[0], runs[0], n=300)
    assert out["difference"] == 0.0
    assert out["interval"] == [0.0, 0.0]
    assert out["excludes_zero"] is False
    assert out["n_days"] == runs[0].prediction().sizes["time"]


def test_bootstrap_against_a_perfect_prediction(runs, store):
    run = runs[0]
    exact = copy_run(store, run, "perfect", perfect)
    out = paired_bootstrap(run, exact, n=500, seed=1)
    expected = hand_rmse(run)
    assert out["rmse_b"] == 0.0
    assert out["rmse_a"] == pytest.approx(expected, rel=1e-9)
    assert out["difference"] == pytest.approx(expected, rel=1e-9)
    assert out["rmse_a"] == pytest.approx(run.metrics()["rmse"], rel=1e-4)
    lo, hi = out["interval"]
    assert 0 < lo <= out["difference"] <= hi
    assert out["excludes_zero"] is True
    # b − a: the same interval mirrored
    back = paired_bootstrap(exact, run, n=500, seed=1)
    assert back["difference"] == pytest.approx(-expected)
    assert back["interval"] == pytest.approx([-hi, -lo])
    # seeded: the same interval again
    assert paired_bootstrap(run, exact, n=500, seed=1)["interval"] == out["interval"]


def test_bootstrap_interval_by_hand_on_two_days(runs, store):
    """Two test days: the resampled RMSE differences take three values, so the interval's
    ends are the RMSE differences over day 0 alone and day 1 alone."""
    run = runs[0]
    two = copy_run(store, run, "two-days", lambda p: p.isel(time=[0, 1]))
    exact = copy_run(store, run, "two-days-exact", lambda p: perfect(p.isel(time=[0, 1])))
    out = paired_bootstrap(two, exact, n=4000, seed=0)
    pred = two.prediction()
    ocean = pred["mask"].values != 0
    per_day = [float(np.sqrt(np.mean((pred["ssh"].values[t].astype(float)
                                      - pred["truth"].values[t].astype(float))[ocean] ** 2)))
               for t in (0, 1)]
    assert out["interval"] == pytest.approx(sorted(per_day), rel=1e-9)


def test_bootstrap_uses_all_leads_of_a_forecast(runs, store):
    def with_leads(pred, offset):
        out = pred.copy()
        out["ssh"] = xr_stack(pred["ssh"], [pred["ssh"], pred["truth"] + offset])
        out["truth"] = xr_stack(pred["truth"], [pred["truth"], pred["truth"]])
        return out

    a = copy_run(store, runs[0], "fc-a", lambda p: with_leads(p, 0.01))
    b = copy_run(store, runs[0], "fc-b", lambda p: perfect(with_leads(p, 0.0)))
    out = paired_bootstrap(a, b, n=200)
    pred = a.prediction()
    ocean = pred["mask"].values != 0
    err = (pred["ssh"].values - pred["truth"].values).astype(float)[:, :, ocean]
    assert out["difference"] == pytest.approx(float(np.sqrt(np.mean(err ** 2))), rel=1e-6)


def xr_stack(like, fields):
    import xarray as xr

    return xr.concat(fields, dim=pd.Index([1, 2], name="lead_time")).transpose(
        "time", "lead_time", "lat", "lon").assign_attrs(like.attrs)


def test_bootstrap_refuses_different_periods_and_grids(runs, store):
    run = runs[0]
    later = copy_run(store, run, "later",
                     lambda p: p.assign_coords(time=p["time"] + np.timedelta64(1, "D")))
    with pytest.raises(RunError, match="different test period") as exc:
        paired_bootstrap(run, later)
    assert "\n" not in str(exc.value)
    shorter = copy_run(store, run, "shorter", lambda p: p.isel(time=slice(0, 3)))
    with pytest.raises(RunError, match="different test period"):
        paired_bootstrap(run, shorter)
    moved = copy_run(store, run, "moved", lambda p: p.assign_coords(lat=p["lat"] + 1.0))
    with pytest.raises(RunError, match="different grid"):
        paired_bootstrap(run, moved)


def test_cli_compare_json(runs, store, capsys):
    ids = [r.id for r in runs]
    assert main(["compare", *ids[:2], "--runs-dir", str(store.root), "--json",
                 "--bootstrap"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"] == ids[:2]
    assert [row["id"] for row in out["leaderboard"]] == ids[:2]
    rmse = [r.metrics()["rmse"] for r in runs[:2]]
    assert out["best"]["rmse"] == ids[int(np.argmin(rmse))]
    assert out["config_differences"] == {"model.lt_days": list(LT_DAYS[:2])}
    assert out["bootstrap"]["difference"] == pytest.approx(
        paired_bootstrap(runs[0], runs[1])["difference"])
    assert out["leaderboard"][0]["physics_residual"] is None

    assert main(["compare", *ids, "--runs-dir", str(store.root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bootstrap"] is None
    assert out["config_differences"] == {"model.lt_days": list(LT_DAYS)}


def test_cli_compare_text_marks_the_best(runs, store, capsys):
    ids = [r.id for r in runs]
    assert main(["compare", *ids, "--runs-dir", str(store.root)]) == 0
    text = capsys.readouterr().out
    rmse = [r.metrics()["rmse"] for r in runs]
    line = next(ln for ln in text.splitlines() if ln.startswith("RMSE (m)"))
    cells = line.split()[-3:]
    assert [c.endswith("*") for c in cells] == [i == int(np.argmin(rmse)) for i in range(3)]
    assert "model.lt_days: 3.0 | 6.0 | 12.0" in text
    assert all(i in text for i in ids)


def test_cli_compare_errors(runs, store, capsys):
    root = str(store.root)
    assert main(["compare", runs[0].id, "no-such-run", "--runs-dir", root]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-run" in err
    assert main(["compare", *(r.id for r in runs), "--runs-dir", root, "--bootstrap"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "two runs" in err


def test_cli_report_is_one_self_contained_html_file(runs, store, tmp_path, capsys):
    import base64
    import re

    ids = [r.id for r in runs[:2]]
    out = tmp_path / "report.html"
    assert main(["report", *ids, "--out", str(out), "--runs-dir", str(store.root)]) == 0
    text = out.read_text(encoding="utf-8")
    lowered = text.lower()
    assert "http://" not in lowered and "https://" not in lowered
    assert "<script" not in lowered and "<link" not in lowered and "url(" not in lowered
    assert all(i in text for i in ids)
    images = re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 3  # the maps, RMSE over time, the PSD contours and spectra
    assert all(base64.b64decode(i).startswith(b"\x89PNG\r\n\x1a\n") for i in images)
    alts = re.findall(r'<img [^>]*alt="([^"]+)"', text)
    assert alts == ["maps of the runs on the same day", "RMSE over time of every run",
                    "PSD score contours and zonal spectra of every run"]
    assert "<h2>Curves</h2>" in text
    best = runs[int(np.argmin([r.metrics()["rmse"] for r in runs[:2]]))].metrics()["rmse"]
    assert f"<b>{best:.4g}*</b>" in text
    assert "<th>model.lt_days</th><td>3.0</td><td>6.0</td>" in text
    assert "paired bootstrap" in text

    capsys.readouterr()
    assert main(["report", ids[0], "nope", "--out", str(out), "--runs-dir",
                 str(store.root)]) == 2
    assert main(["report", ids[0], "--out", str(tmp_path / "missing" / "r.html"),
                 "--runs-dir", str(store.root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "nope" in err and "missing" in err
