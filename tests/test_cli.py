"""The command line end to end: config, inspect, train (OI and a tiny UNet), runs, errors."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import xarray as xr
import yaml
from safetensors.torch import load_file

from app.cli import main

SCORE_KEYS = {"rmse", "mu", "sigma", "lambda_x_deg", "lambda_x_km", "lambda_t_days"}
TINY_UNET = ["--set", "model.window=3", "--set", "model.base_channels=4", "--set", "model.depth=2",
             "--set", "model.patch_size=12", "--set", "model.steps_per_epoch=3", "--set", "model.batch_size=4"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_config_prints_defaults_as_yaml(capsys):
    code, out, _ = run_cli(capsys, "config", "--task", "interpolation", "--model", "oi")
    assert code == 0
    cfg = yaml.safe_load(out)
    assert cfg["model"] == {"name": "oi", "lx_deg": 1.0, "ly_deg": 1.0, "lt_days": 7.0,
                            "noise": "auto", "remove_mean": True, "mean": "train",
                            "superobs": 0.25, "superobs_days": 1.0, "block_days": 3,
                            "max_obs": 6000, "precision": "float64"}
    assert cfg["task"]["name"] == "interpolation" and cfg["train"]["device"] == "auto"
    code, out, _ = run_cli(capsys, "config", "--model", "oi", "--set", "model.lt_days=5")
    assert yaml.safe_load(out)["model"]["lt_days"] == 5


def test_inspect_json(capsys, mock_nc):
    code, out, _ = run_cli(capsys, "inspect", str(mock_nc), "--json")
    info = json.loads(out)
    assert code == 0
    assert info["grid"]["n_lat"] == 20 and info["time"]["n_time"] == 60
    assert set(info["variables"]) == {"ssh", "ssh_obs"}


def test_train_oi_writes_a_complete_run(capsys, mock_nc, tmp_path):
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, "train", "--data", str(mock_nc), "--var", "ssh", "--obs", "ssh_obs",
                             "--task", "interpolation", "--model", "oi", "--set", "model.lx_deg=0.75",
                             "--runs-dir", str(runs), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "done"
    assert SCORE_KEYS <= set(result["metrics"])
    run_dir = runs / result["run_id"]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["id"] == result["run_id"] and info["status"] == "done"
    assert info["config"]["model"]["lx_deg"] == 0.75
    assert info["data"]["fingerprint"].startswith("sha256:")
    assert info["device"].startswith("cpu") and "torch" in info["versions"]
    assert info["timings"]["total_s"] > 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics == result["metrics"]
    pred = xr.open_dataset(run_dir / "prediction.nc")
    assert {"ssh", "truth", "obs", "mask"} <= set(pred.data_vars)
    # the scores in metrics.json are those of the saved prediction
    err2 = ((pred["ssh"] - pred["truth"]) ** 2).where(pred["mask"] == 1)
    assert metrics["rmse"] == pytest.approx(float(np.sqrt(err2.mean())), rel=1e-5)
    assert 0 < metrics["mu"] < 1
    assert (run_dir / "history.csv").exists()


def test_train_tiny_unet_saves_weights_and_history(capsys, mock_nc, tmp_path):
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, "train", "--data", str(mock_nc), "--obs", "ssh_obs", "--model", "unet",
                             "--epochs", "2", "--seed", "3", "--device", "cpu", "--runs-dir", str(runs),
                             "--json", *TINY_UNET)
    assert code == 0, err
    result = json.loads(out)
    run_dir = runs / result["run_id"]
    weights = load_file(run_dir / "model.safetensors")
    assert "head.weight" in weights and "norm.std" in weights
    history = (run_dir / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch") and len(history) == 3
    assert json.loads((run_dir / "run.json").read_text())["config"]["train"]["seed"] == 3


def test_runs_lists_saved_runs(capsys, mock_nc, tmp_path):
    runs = tmp_path / "runs"
    run_cli(capsys, "train", "--data", str(mock_nc), "--obs", "ssh_obs", "--model", "oi",
            "--runs-dir", str(runs), "--json")
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", str(runs), "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 1 and rows[0]["status"] == "done" and rows[0]["model"] == "oi"
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", str(runs))
    assert "oi" in out and "done" in out


def test_runs_columns_are_the_headline_scores_of_the_tasks_present(capsys, tmp_path):
    from backend.store import RunStore
    from metrics.scores import SCORES
    from tests.test_app_pages import make_run, make_task_run

    store = RunStore(tmp_path / "runs")
    forecast = make_task_run(store, "20240102-000000-persistence-ffff", "forecast")
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", str(store.root))
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["id", "status", "task", "model", "rmse", "skill_persistence",
                              "skill_climatology", "acc", "seconds"]
    metrics = forecast.metrics()
    values = dict(zip(header.split(), row.split(), strict=True))
    assert values["task"] == "forecast" and values["model"] == "persistence"
    for key in ("rmse", "skill_persistence", "skill_climatology", "acc"):
        assert values[key] == f"{metrics[key]:.4g}"
    assert "by_lead" not in out  # per-lead lists are curves, not columns

    make_run(store, "20240101-000000-oi-aaaa", model="oi")  # an interpolation run beside it
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", str(store.root))
    columns = out.splitlines()[0].split()
    scores = columns[4:-1]
    assert set(scores) == {"rmse", "mu", "sigma", "lambda_x_deg", "lambda_t_days",
                           "skill_persistence", "skill_climatology", "acc"}
    assert scores == [k for k in SCORES if k in scores]  # in the score registry's order


def _tree_digest(path):
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("argv, message", [
    (["inspect", "{tmp}/nothing.nc"], "nothing.nc: no such file"),
    (["inspect", "{tmp}/runs"], "is a directory"),  # no NetCDF file in it
    (["train", "--data", "{tmp}/nothing.nc", "--model", "oi"], "no such file"),
    (["train", "--data", "{nc}", "--model", "oi", "--set", "model.bogus=1"], "not a parameter of model 'oi'"),
    (["train", "--data", "{nc}", "--model", "oi", "--set", "model.lx_deg=-2"], "model.lx_deg"),
    (["train", "--data", "{nc}", "--model", "gpt", "--obs", "ssh_obs"], "unknown model 'gpt'"),
    (["train", "--data", "{nc}", "--model", "oi", "--var", "sst"], "unknown variable 'sst'"),
    (["train", "--data", "{nc}", "--model", "oi", "--obs", "ssh_obs", "--set", "task.min_days=100"],
     "only 60 time steps"),
    (["train", "--data", "{nc}", "--task", "forecasting", "--model", "oi"], "unknown task 'forecasting'"),
    (["train", "--data", "{nc}", "--task", "forecast", "--model", "oi"],
     "model 'oi' does not support the forecast task; models for forecast:"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, mock_nc, tmp_path, argv, message):
    runs = tmp_path / "runs"
    # an earlier good run must survive a failing one untouched
    run_cli(capsys, "train", "--data", str(mock_nc), "--obs", "ssh_obs", "--model", "oi", "--runs-dir", str(runs))
    good = next(runs.iterdir())
    before = _tree_digest(good)
    argv = [a.format(tmp=tmp_path, nc=mock_nc) for a in argv]
    if argv[0] == "train":
        argv += ["--runs-dir", str(runs)]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert "Traceback" not in err
    assert _tree_digest(good) == before
    assert json.loads((good / "run.json").read_text())["status"] == "done"


def test_config_has_a_limits_section(capsys):
    code, out, _ = run_cli(capsys, "config", "--model", "oi")
    assert code == 0 and yaml.safe_load(out)["limits"] == {"max_memory_gb": None}
    code, out, _ = run_cli(capsys, "config", "--model", "oi", "--set", "limits.max_memory_gb=2.5")
    assert code == 0 and yaml.safe_load(out)["limits"]["max_memory_gb"] == 2.5


def test_max_memory_bytes_is_the_limit_or_half_the_machine():
    from backend.config import build_config, max_memory_bytes, physical_memory_bytes

    assert max_memory_bytes(build_config(overrides={"limits.max_memory_gb": 2.5})) == int(2.5 * 2**30)
    assert max_memory_bytes(build_config()) == physical_memory_bytes() // 2 > 0


def test_a_bug_inside_a_run_is_one_line_exit_1(capsys, mock_nc, tmp_path, monkeypatch):
    import backend.runner

    def broken(*args, **kwargs):
        raise RuntimeError("broken task")

    monkeypatch.setattr(backend.runner, "build_task", broken)
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, "train", "--data", str(mock_nc), "--model", "oi", "--runs-dir", str(runs))
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("internal error: RuntimeError: broken task (details in ")
    run_json = next(runs.iterdir()) / "run.json"
    assert str(run_json) in lines[0]
    info = json.loads(run_json.read_text())
    assert info["status"] == "failed" and info["error_kind"] == "internal"
    assert "Traceback" in info["traceback"] and "Traceback" not in err


def test_generate_if_missing_replaces_an_outdated_builtin_file(workspace, monkeypatch):
    """A built-in OSSE made by an older recipe is regenerated; a current one is kept."""
    import netCDF4

    import data.osse
    from app.cli import main
    from backend import paths

    calls = []

    def fake_generate(out, **kwargs):
        calls.append(kwargs)
        with netCDF4.Dataset(out, "w") as nc:
            nc.oceanlab_osse_version = data.osse.OSSE_VERSION
        return out

    monkeypatch.setattr(data.osse, "generate_osse", fake_generate)
    path = paths.builtin_dataset_path(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with netCDF4.Dataset(path, "w") as nc:  # an issue-2 file: no version attribute
        nc.title = "old"
    assert not paths.builtin_is_current(path)
    assert main(["generate", "--if-missing", "--noise", "0", "--cloud-cover", "0.25"]) == 0
    assert len(calls) == 1 and calls[0]["noise_std"] == 0.0 and calls[0]["cloud_cover"] == 0.25
    assert paths.builtin_is_current(path)
    assert main(["generate", "--if-missing"]) == 0
    assert len(calls) == 1
