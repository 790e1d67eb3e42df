"""``python -m app tune``: an Optuna search on the validation period, then one ordinary run.

The OI search space is given here (``OIParams.search_space`` monkeypatched), so these tests
do not depend on the space models/oi.py declares; the ranges are small so each trial is fast.
"""

from __future__ import annotations

import json
import math
from typing import Literal

import pandas as pd
import pytest
import yaml

from app.cli import main
from models import registry
from models.base import Mapper, ModelParams
from models.oi import OIMapper, OIParams

BOUNDS = {"lx_deg": (0.5, 2.0), "ly_deg": (0.5, 2.0), "lt_days": (1.0, 4.0), "noise": (0.01, 0.1)}


def _space(cls, trial) -> dict:
    return {k: trial.suggest_float(k, lo, hi, log=True) for k, (lo, hi) in BOUNDS.items()}


@pytest.fixture
def oi_space(monkeypatch):
    monkeypatch.setattr(OIParams, "search_space", classmethod(_space))


@pytest.fixture
def predicted(monkeypatch):
    """Every call of OI's predict, as the list of times it was asked for."""
    calls: list[pd.DatetimeIndex] = []
    original = OIMapper.predict

    def spy(self, task, times):
        calls.append(pd.DatetimeIndex(times))
        return original(self, task, times)

    monkeypatch.setattr(OIMapper, "predict", spy)
    return calls


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def data_flags(mock_nc):
    return ["--data", mock_nc, "--var", "ssh", "--obs", "ssh_obs"]


def tune(capsys, mock_nc, runs, *extra):
    code, out, err = run_cli(capsys, "tune", "--task", "interpolation", "--model", "oi",
                             *data_flags(mock_nc), "--runs-dir", runs, "--json", *extra)
    return code, (json.loads(out) if out.strip() else None), err


def test_tune_searches_on_val_and_runs_the_best_like_train(capsys, oi_space, predicted,
                                                            mock_nc, tmp_path):
    from backend.config import build_config
    from backend.runner import build_task

    runs = tmp_path / "runs"
    code, result, err = tune(capsys, mock_nc, runs, "--trials", 4)
    assert code == 0, err
    assert set(result) >= {"run_id", "status", "metrics", "best_params", "best_value", "metric",
                           "n_trials", "error"}
    assert result["status"] == "done" and result["error"] is None
    assert result["metric"] == "rmse" and result["direction"] == "minimize"
    assert result["n_trials"] == 4 and result["n_failed"] == 0
    assert set(result["best_params"]) == set(BOUNDS)
    for k, (lo, hi) in BOUNDS.items():
        assert lo <= result["best_params"][k] <= hi

    run_dir = runs / result["run_id"]
    study = json.loads((run_dir / "tuning.json").read_text())
    assert study["n_trials"] == 4 and len(study["trials"]) == 4
    assert study["metric"] == "rmse" and study["direction"] == "minimize" and study["split"] == "val"
    values = [t["value"] for t in study["trials"]]
    assert all(t["state"] == "COMPLETE" and math.isfinite(t["value"]) for t in study["trials"])
    assert [t["number"] for t in study["trials"]] == [0, 1, 2, 3]
    assert all(t["duration_s"] >= 0 and set(t["params"]) == set(BOUNDS) for t in study["trials"])
    assert study["best_value"] == min(values) == result["best_value"]
    best = study["trials"][values.index(min(values))]
    assert best["params"] == study["best_params"] == result["best_params"]
    assert set(study["distributions"]) == set(BOUNDS)
    table = pd.read_csv(run_dir / "tuning.csv")
    assert len(table) == 4 and list(table["value"]) == pytest.approx(values, rel=1e-15)
    assert {"number", "state", "value", "duration_s", *BOUNDS} <= set(table.columns)

    # The final run is an ordinary run of the best config, with the study summarised.
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "done"
    assert info["tuned"] == {"metric": "rmse", "direction": "minimize",
                             "best_value": result["best_value"], "n_trials": 4}
    assert {k: info["config"]["model"][k] for k in BOUNDS} == result["best_params"]
    assert json.loads((run_dir / "metrics.json").read_text()) == result["metrics"]
    assert (run_dir / "prediction.nc").exists() and (run_dir / "diagnostics.nc").exists()

    # The search predicted only the validation period; the test period once, in the final run.
    config = build_config(base={"data": {"path": str(mock_nc), "var": "ssh", "obs": "ssh_obs"}})
    task = build_task(config)
    val, test = task.sample_times("val"), task.sample_times("test")
    assert len(predicted) == 5
    assert all(times.equals(val) for times in predicted[:4])
    assert predicted[4].equals(test)
    assert not any(times.isin(test).any() for times in predicted[:4])

    # train with the best parameters gives the same numbers.
    cfg = tmp_path / "best.yaml"
    cfg.write_text(yaml.safe_dump({"model": result["best_params"]}))
    code, out, err = run_cli(capsys, "train", "--task", "interpolation", "--model", "oi",
                             "--config", cfg, *data_flags(mock_nc), "--runs-dir", runs, "--json")
    assert code == 0, err
    assert json.loads(out)["metrics"] == result["metrics"]


def test_same_seed_same_search(capsys, oi_space, mock_nc, tmp_path):
    runs = tmp_path / "runs"
    first = [tune(capsys, mock_nc, runs, "--trials", 3, "--seed", 5)[1] for _ in range(2)]
    assert first[0]["run_id"] != first[1]["run_id"]
    assert first[0]["best_params"] == first[1]["best_params"]
    assert first[0]["best_value"] == first[1]["best_value"]
    studies = [json.loads((runs / r["run_id"] / "tuning.json").read_text()) for r in first]
    assert ([t["params"] for t in studies[0]["trials"]]
            == [t["params"] for t in studies[1]["trials"]])
    assert [t["value"] for t in studies[0]["trials"]] == [t["value"] for t in studies[1]["trials"]]
    # another seed draws other parameters
    code, other, _ = tune(capsys, mock_nc, runs, "--trials", 1, "--seed", 6)
    assert code == 0
    other_study = json.loads((runs / other["run_id"] / "tuning.json").read_text())
    assert other_study["trials"][0]["params"] != studies[0]["trials"][0]["params"]


def test_failed_trials_are_recorded_and_a_higher_is_better_score_is_maximised(
        capsys, monkeypatch, mock_nc, tmp_path):
    def space(cls, trial):  # every other trial draws an invalid noise: a failed trial
        values = _space(cls, trial)
        if trial.number % 2 == 1:
            values["noise"] = -1.0
        return values

    monkeypatch.setattr(OIParams, "search_space", classmethod(space))
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, "tune", "--model", "oi", *data_flags(mock_nc), "--runs-dir",
                             runs, "--trials", 4, "--metric", "mu")
    assert code == 0, err
    assert err == ""
    assert out.startswith("tuned oi: 4 trials (2 failed), best validation mu = ")
    run_id = next(line.split()[1].rstrip(":") for line in out.splitlines()
                  if line.startswith("run "))
    study = json.loads((runs / run_id / "tuning.json").read_text())
    assert study["direction"] == "maximize" and study["n_failed"] == 2
    states = [t["state"] for t in study["trials"]]
    assert states == ["COMPLETE", "FAIL", "COMPLETE", "FAIL"]
    failed = study["trials"][1]
    assert failed["value"] is None and failed["params"]["noise"] == -1.0
    assert "model.noise" in failed["error"]
    values = [t["value"] for t in study["trials"] if t["state"] == "COMPLETE"]
    assert study["best_value"] == max(values)
    assert json.loads((runs / run_id / "run.json").read_text())["tuned"]["metric"] == "mu"


def _one_error_line(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], lines[0]


def test_all_trials_failing_is_one_line_and_writes_no_run(capsys, monkeypatch, mock_nc, tmp_path):
    monkeypatch.setattr(OIParams, "search_space",
                        classmethod(lambda cls, trial: {"noise": -trial.suggest_float("n", 1, 2)}))
    runs = tmp_path / "runs"
    code, out, err = tune(capsys, mock_nc, runs, "--trials", 2)
    assert code == 2 and out is None
    _one_error_line(err, "all 2 trials failed", "model.noise")
    assert not runs.exists() or not any(runs.iterdir())


@pytest.fixture
def model_without_space(monkeypatch):
    class NoSpaceParams(ModelParams):
        name: Literal["nospace"] = "nospace"

    class NoSpace(Mapper):
        name = "nospace"
        Params = NoSpaceParams
        tasks = ("interpolation",)

        def predict(self, task, times):  # pragma: no cover - never reached
            raise AssertionError

    registry._load_builtin()
    monkeypatch.setitem(registry._REGISTRY, "nospace", NoSpace)


@pytest.mark.parametrize("argv, words", [
    (["--model", "nospace"], ["model 'nospace' declares no search space for tuning"]),
    (["--task", "forecast", "--model", "persistence"],
     ["model 'persistence' declares no search space for tuning", "forecast"]),
    (["--model", "oi", "--trials", "0"], ["--trials", ">= 1"]),
    (["--model", "oi", "--metric", "nope"], ["--metric 'nope'", "rmse"]),
    (["--model", "oi", "--metric", "rmse_by_lead"], ["--metric 'rmse_by_lead'"]),
    (["--model", "oi", "--timeout", "0"], ["--timeout", "> 0"]),
    (["--model", "oi", "--data", "{missing}"], ["missing.nc: no such file"]),
], ids=["params-without-space", "persistence", "zero-trials", "unknown-metric",
        "per-lead-metric", "zero-timeout", "missing-data"])
def test_bad_input_is_one_line_exit_2(capsys, oi_space, model_without_space, mock_nc, tmp_path,
                                      argv, words):
    argv = [a.replace("{missing}", str(tmp_path / "missing.nc")) for a in argv]
    flags = ["--data", mock_nc] if "--data" not in argv else []
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, "tune", *flags, *argv, "--runs-dir", runs, "--json")
    assert code == 2 and out == ""
    _one_error_line(err, *words)
    assert not runs.exists() or not any(runs.iterdir())


def test_a_metric_the_task_does_not_score_is_refused(capsys, oi_space, mock_nc, tmp_path):
    code, out, err = tune(capsys, mock_nc, tmp_path / "runs", "--trials", 2, "--metric", "acc")
    assert code == 2 and out is None
    _one_error_line(err, "--metric 'acc'", "interpolation task does not score it", "rmse")


def test_timeout_stops_starting_trials(capsys, oi_space, mock_nc, tmp_path):
    code, result, err = tune(capsys, mock_nc, tmp_path / "runs", "--trials", 5,
                             "--timeout", "0.001")
    assert code == 0, err
    assert result["n_trials"] == 1 and result["status"] == "done"


def test_the_declared_oi_space_is_usable():
    """models/oi.py's own search space draws valid OI parameters."""
    import optuna

    from backend.config import build_config
    from backend.tuning import check_search_space, has_search_space, with_model_params

    assert has_search_space(OIParams)
    config = build_config(model="oi")
    check_search_space(config)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    space = OIParams.search_space(trial)
    assert {"lx_deg", "ly_deg", "lt_days", "noise"} <= set(space)
    tuned = with_model_params(config, space)
    assert all(getattr(tuned.model, k) == v for k, v in space.items())


def test_grid_sweeps_every_value_once_even_without_a_search_space(capsys, mock_nc, tmp_path):
    """``--grid``: every combination once (the latent-size sweep of the autoencoder); each
    trial's validation score is the one ``evaluate`` gives for those values."""
    from backend.config import build_config
    from backend.runner import build_task
    from backend.tuning import evaluate

    runs = tmp_path / "runs"
    code, result, err = tune(capsys, mock_nc, runs, "--grid", "lx_deg=0.5,1.0,2.0",
                             "--grid", "model.lt_days=2,4")
    assert code == 0, err
    assert result["n_trials"] == 6 and result["n_failed"] == 0
    study = json.loads((runs / result["run_id"] / "tuning.json").read_text())
    assert study["sampler"] == "grid"
    assert study["grid"] == {"lx_deg": [0.5, 1.0, 2.0], "lt_days": [2, 4]}
    tried = sorted((t["params"]["lx_deg"], t["params"]["lt_days"]) for t in study["trials"])
    assert tried == [(0.5, 2), (0.5, 4), (1.0, 2), (1.0, 4), (2.0, 2), (2.0, 4)]
    values = {(t["params"]["lx_deg"], t["params"]["lt_days"]): t["value"] for t in study["trials"]}
    assert study["best_value"] == min(values.values())
    # the value of one grid point, recomputed outside the search
    config = build_config(base={"data": {"path": str(mock_nc), "var": "ssh", "obs": "ssh_obs"},
                                "model": {"name": "oi", "lx_deg": 2.0, "lt_days": 2}})
    scores = evaluate(config, build_task(config), None, "x")
    assert values[(2.0, 2)] == pytest.approx(scores["rmse"], rel=1e-6)
    # --trials caps the grid
    code, result, err = tune(capsys, mock_nc, tmp_path / "runs2", "--grid", "lx_deg=0.5,1.0,2.0",
                             "--trials", 2)
    assert code == 0, err and result["n_trials"] == 2


@pytest.mark.parametrize("argv, words", [
    (["--grid", "nope=1,2"], ["--grid nope", "not a parameter of model 'oi'"]),
    (["--grid", "lx_deg=-1,2"], ["lx_deg"]),
    (["--grid", "lx_deg=1,1"], ["--grid lx_deg", "twice"]),
    (["--grid", "lx_deg"], ["FIELD=V1,V2"]),
    (["--grid", "lx_deg=1,2", "--grid", "lx_deg=3"], ["--grid lx_deg", "given twice"]),
], ids=["unknown-field", "invalid-value", "repeated-value", "no-values", "field-twice"])
def test_bad_grid_is_one_line_exit_2(capsys, mock_nc, tmp_path, argv, words):
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, "tune", "--data", mock_nc, "--model", "oi", *argv,
                             "--runs-dir", runs, "--json")
    assert code == 2 and out == ""
    _one_error_line(err, *words)
    assert not runs.exists() or not any(runs.iterdir())
