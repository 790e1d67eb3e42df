"""Every kind of bad command line is one line on stderr and a fixed exit code; nothing is written.

The catalogue below runs in-process through :func:`app.cli.main` (fast); a few of its cases
also run as real ``python -m app`` processes to prove no traceback reaches a terminal. None of
these tests trains a model: every case is refused before a run would start.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import app.cli as cli
from app.cli import main
from models import registry

REPO = Path(__file__).resolve().parent.parent


def _permissions_enforced() -> bool:
    """False where file modes are not enforced (root with CAP_DAC_OVERRIDE, Windows)."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe"
        probe.write_text("x")
        probe.chmod(0)
        try:
            probe.read_text()
        except PermissionError:
            return True
        finally:
            probe.chmod(0o644)
    return False


PERMISSIONS_ENFORCED = os.name == "posix" and _permissions_enforced()
#: As root, file modes are enforced for a child that drops the capabilities that bypass them.
SETPRIV = shutil.which("setpriv")
DROP_DAC = [SETPRIV, "--bounding-set", "-dac_override,-dac_read_search"] if SETPRIV else None
BIG = str(2**64)


def _case(argv, *words, files=None, code=2, id=None):
    """One bad command line: ``argv`` (``{tmp}`` the test folder, ``{nc}`` a good NetCDF file,
    ``{file}`` a plain text file, ``{runs}`` a run store holding one finished run, ``{cfg}``
    the config file written from ``files["cfg.yaml"]``), the exit code and the words its one
    stderr line must contain."""
    return pytest.param(argv, words, files or {}, code, id=id)


# fmt: off
CATALOGUE = [
    # -- argparse: types, choices, unknown flags, missing arguments -------------------------
    _case([], "required: command", "train", "generate", id="no-command"),
    _case(["frobnicate"], "invalid choice: 'frobnicate'", "train", id="unknown-command"),
    _case(["train", "--epochs", "abc"], "argument --epochs: invalid int value: 'abc'", id="epochs-abc"),
    _case(["train", "--epochs", "2.5"], "argument --epochs: invalid int value: '2.5'", id="epochs-float"),
    _case(["train", "--epochs", "0"], "argument --epochs", ">= 1", "'0'", id="epochs-0"),
    _case(["train", "--epochs", "-3"], "argument --epochs", ">= 1", id="epochs-negative"),
    _case(["train", "--device", "tpu"], "argument --device", "'tpu'", "'auto', 'cpu', 'cuda'", id="device-tpu"),
    _case(["generate", "--device", "gpu"], "argument --device", "'auto', 'cpu', 'cuda'", id="generate-device"),
    _case(["train", "--bogus"], "unrecognized arguments: --bogus", id="unknown-flag"),
    _case(["config", "--data", "x.nc"], "unrecognized arguments: --data", id="config-has-no-data-flag"),
    _case(["train", "--seed", "-1"], "argument --seed", "2**63-1", "'-1'", id="seed-negative"),
    _case(["train", "--seed", BIG], "argument --seed", "2**63-1", id="seed-65-bits"),
    _case(["generate", "--seed", str(2**63)], "argument --seed", "2**63-1", id="generate-seed-64-bits"),
    _case(["generate", "--seed", "x"], "argument --seed: invalid int value: 'x'", id="generate-seed-text"),
    _case(["generate", "--noise", "-0.1"], "argument --noise", "must be a finite number >= 0", id="generate-noise-negative"),
    _case(["generate", "--noise", "nan"], "argument --noise", "must be a finite number >= 0", id="generate-noise-nan"),
    _case(["generate", "--swot-noise", "x"], "argument --swot-noise", "not a number", id="generate-swot-noise-text"),
    _case(["generate", "--cloud-cover", "1"], "argument --cloud-cover", "fraction from 0 to below 1", id="generate-cloud-cover"),
    _case(["train", "--data", ""], "argument --data", "must not be empty", id="data-empty"),
    _case(["train", "--var", ""], "argument --var", "must not be empty", id="var-empty"),
    _case(["train", "--obs", "  "], "argument --obs", "must not be empty", id="obs-blank"),
    _case(["config", "--model", ""], "argument --model", "must not be empty", id="model-empty"),
    _case(["config", "--config", ""], "argument --config", "must not be empty", id="config-empty"),
    _case(["runs", "--runs-dir", ""], "argument --runs-dir", "must not be empty", id="runs-dir-empty"),
    _case(["generate", "--out", ""], "argument --out", "must not be empty", id="out-empty"),
    _case(["dashboard", "--port", "70000"], "argument --port", "1 to 65535", id="port-range"),
    _case(["inspect"], "required: file", id="inspect-no-file"),
    _case(["train", "--set"], "argument --set: expected one argument", id="set-no-value"),

    # -- --set: sections, fields, types, ranges, non-finite numbers --------------------------
    _case(["config", "--set", "data.obs_noise=.inf"], "data.obs_noise", "finite", id="set-inf"),
    _case(["config", "--set", "model.lx_deg=nan"], "model.lx_deg", "finite", id="set-nan-text"),
    _case(["config", "--set", "model.lt_days=-.inf"], "model.lt_days", "finite", id="set-minus-inf"),
    _case(["config", "--model", "unet", "--set", "model.lr=.nan"], "train.lr", "finite", id="set-unet-nan"),
    _case(["config", "--model", "unet", "--set", "train.lr=.inf"], "train.lr", "finite", id="set-train-inf"),
    _case(["config", "--set", "limits.max_memory_gb=.inf"], "limits.max_memory_gb", "finite", id="limits-inf"),
    _case(["config", "--set", "limits.max_memory_gb=-1"], "limits.max_memory_gb", "greater than 0",
          id="limits-negative"),
    _case(["config", "--set", "train.seed=-5"], "train.seed", id="set-seed-negative"),
    _case(["config", "--set", f"data.obs_seed={BIG}"], "data.obs_seed", "2**63-1", id="set-obs-seed-big"),
    _case(["config", "--set", "train.epochs=0"], "train.epochs", id="set-epochs-0"),
    _case(["config", "--set", "train.epochs=abc"], "train.epochs", "integer", "'abc'", id="set-epochs-text"),
    _case(["config", "--set", "train.epochs=true"], "train.epochs", "expected a number", id="set-epochs-bool"),
    _case(["config", "--set", "task.gap_days=99999999999999999999"], "task.gap_days", id="set-gap-huge"),
    _case(["config", "--set", "train.device=tpu"], "train.device", "'auto', 'cpu' or 'cuda'", id="set-device"),
    _case(["config", "--set", "bogus.x=1"], "--set bogus.x", "data, task, model, train, limits",
          id="set-unknown-section"),
    _case(["config", "--set", "train.bogus=1"], "train.bogus", "epochs, seed, device", id="set-unknown-field"),
    _case(["config", "--set", "model.bogus=1"], "not a parameter of model 'oi'", "lx_deg", id="set-unknown-param"),
    _case(["config", "--set", "nodot=1"], "--set nodot", "section.field", id="set-no-section"),
    _case(["config", "--set", "model.lx_deg"], "model.lx_deg", "section.field=value", id="set-no-equals"),
    _case(["config", "--set", "data.var=''"], "data.var", "must not be empty", id="set-var-empty"),
    _case(["config", "--set", "data.path=''"], "data.path", "must not be empty", id="set-path-empty"),
    _case(["config", "--model", "oi", "--set", "model.name=unet"], "--model oi", "--set model.name=unet",
          id="model-contradicts-set"),
    _case(["config", "--set", "model.name=[1, 2]"], "model.name", "choose one of: ", "oi", "unet", id="model-name-list"),
    _case(["config", "--model", "gpt"], "unknown model 'gpt'; choose one of: ",
          ", ".join(registry.available()), id="unknown-model"),
    _case(["config", "--task", "forecasting"], "unknown task 'forecasting'", "interpolation, ",
          "forecast", "downscaling", id="unknown-task"),
    _case(["config", "--task", "forecast", "--model", "oi"], "model 'oi' does not support the "
          "forecast task", "models for forecast: ", id="invalid-pair"),
    _case(["train", "--epochs", "3", "--set", "train.epochs=5"], "--epochs 3", "train.epochs=5",
          id="flag-contradicts-set"),

    # -- --config files of the wrong shape, unreadable, not YAML -----------------------------
    _case(["config", "--config", "{cfg}"], "cfg.yaml", "'model'", "mapping", "int 5",
          files={"cfg.yaml": "model: 5\n"}, id="file-model-int"),
    _case(["config", "--config", "{cfg}"], "cfg.yaml", "'data'", "mapping", "list",
          files={"cfg.yaml": "data: [1, 2]\n"}, id="file-data-list"),
    _case(["config", "--config", "{cfg}"], "cfg.yaml", "'train'", "mapping", "'x'",
          files={"cfg.yaml": 'train: "x"\n'}, id="file-train-text"),
    _case(["config", "--config", "{cfg}"], "cfg.yaml", "expected a mapping of sections", "list",
          files={"cfg.yaml": "- a\n- b\n"}, id="file-top-list"),
    _case(["config", "--config", "{cfg}"], "cfg.yaml", "unknown config section 'oops'", "limits",
          files={"cfg.yaml": "oops: 1\n"}, id="file-unknown-section"),
    _case(["config", "--config", "{cfg}"], "cfg.yaml", "not valid YAML",
          files={"cfg.yaml": "model: [unclosed\n"}, id="file-bad-yaml"),
    _case(["config", "--config", "{cfg}"], "cfg.yaml", "not UTF-8",
          files={"cfg.yaml": b"\xff\xfe\x00m\x00o\x00d\x00e\x00l\x00"}, id="file-not-utf8"),
    _case(["config", "--config", "{cfg}"], "model.lx_deg", "finite",
          files={"cfg.yaml": "model: {name: oi, lx_deg: .inf}\n"}, id="file-inf"),
    _case(["config", "--config", "{cfg}"], "limits.max_memory_gb", "finite",
          files={"cfg.yaml": "limits: {max_memory_gb: .nan}\n"}, id="file-limits-nan"),
    _case(["config", "--config", "{cfg}"], "train.epochs",
          files={"cfg.yaml": "train: {epochs: 0}\n"}, id="file-epochs-0"),
    _case(["config", "--model", "oi", "--config", "{cfg}"], "--model oi", "model.name: unet", "cfg.yaml",
          files={"cfg.yaml": "model: {name: unet}\n"}, id="file-contradicts-model"),
    _case(["config", "--config", "{tmp}"], "is a directory", id="config-is-directory"),
    _case(["config", "--config", "{tmp}/missing.yaml"], "missing.yaml", "no such config file", id="config-missing"),

    # -- files and folders: a file where a folder is meant, folders that cannot be made -----
    _case(["train", "--data", "{nc}", "--runs-dir", "{file}"], "--runs-dir", "notes.txt", "is a file",
          id="runs-dir-is-file"),
    _case(["train", "--data", "{nc}", "--runs-dir", "{file}/runs"], "--runs-dir", "cannot create",
          id="runs-dir-under-file"),
    _case(["runs", "--runs-dir", "{file}"], "--runs-dir", "is a file", id="runs-list-dir-is-file"),
    _case(["generate", "--out", "{tmp}"], "--out", "is a directory", id="out-is-directory"),
    _case(["generate", "--out", "/dev/null"], "--out", "not a regular file", id="out-device"),
    _case(["generate", "--out", "{file}/osse.nc"], "--out", "osse.nc", "notes.txt is a file", id="out-under-file"),
    _case(["generate", "--out", "{file}/sub/osse.nc"], "--out", "cannot create", id="out-parent-uncreatable"),
    # a folder without NetCDF files (a folder of daily files opens as one dataset)
    _case(["train", "--data", "{runs}", "--runs-dir", "{runs}"], "is a directory", id="data-is-directory"),
    _case(["train", "--data", "{tmp}/nothing.nc", "--runs-dir", "{runs}"], "nothing.nc: no such file",
          id="data-missing"),
    _case(["inspect", "{tmp}/nothing.nc"], "nothing.nc: no such file", id="inspect-missing"),
    _case(["inspect", "{file}"], "notes.txt", "not a NetCDF file", id="inspect-text-file"),
    _case(["train", "--data", "/dev/null", "--runs-dir", "{runs}"], "/dev/null", "not a regular file",
          id="data-device"),
    _case(["train", "--data", "{nc}", "--model", "oi", "--set", "data.obs_noise=.inf", "--runs-dir", "{runs}"],
          "data.obs_noise", "finite", id="train-inf-no-run"),
]
# fmt: on


@pytest.fixture
def scene(tmp_path, workspace, mock_nc):
    """The test folder with a good NetCDF file, a text file and a run store holding one
    finished run (also in the workspace's default run store)."""
    (tmp_path / "notes.txt").write_text("not a NetCDF file\n")
    for root in (tmp_path / "runs", workspace / "runs"):
        run = root / "20240101-000000-oi-abcd"
        run.mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"id": run.name, "status": "done",
                                                  "config": {"model": {"name": "oi"}}}))
        (run / "metrics.json").write_text(json.dumps({"rmse": 0.03}))
    return {"tmp": str(tmp_path), "nc": str(mock_nc), "file": str(tmp_path / "notes.txt"),
            "runs": str(tmp_path / "runs"), "cfg": str(tmp_path / "cfg.yaml")}


def _tree(path: Path) -> dict[str, str]:
    """Every file and folder under ``path`` with a digest of its content."""
    out = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def _expect_one_error_line(code, out, err, expected_code, words, prefix="error: "):
    assert code == expected_code, (code, err)
    assert out == "", out
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    line = err.rstrip("\n")
    assert line.startswith(prefix), line
    for word in words:
        assert word in line, (word, line)
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, words, files, code", CATALOGUE)
def test_bad_command_line_is_one_line(capsys, tmp_path, scene, argv, words, files, code):
    for name, content in files.items():
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    argv = [a.format(**scene) for a in argv]
    before = _tree(tmp_path)
    result = main(argv)
    out, err = capsys.readouterr()
    _expect_one_error_line(result, out, err, code, words)
    # nothing was written: no run folder, no log, the earlier runs untouched
    assert _tree(tmp_path) == before


def test_catalogue_is_large_enough():
    assert len(CATALOGUE) >= 30


# -- cases that need a particular machine state ------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not PERMISSIONS_ENFORCED and DROP_DAC is None,
                    reason="file modes are not enforced here (root without setpriv)")
@pytest.mark.parametrize("argv, words", [
    (["train", "--data", "{nc}", "--runs-dir", "{ro}/runs"], ["--runs-dir", "cannot create", "ermission"]),
    (["train", "--data", "{nc}", "--runs-dir", "{ro}"], ["--runs-dir", "cannot write", "ermission"]),
    (["generate", "--out", "{ro}/osse.nc"], ["--out", "cannot write", "ermission"]),
    (["config", "--config", "{secret}"], ["secret.yaml", "cannot read", "ermission"]),
    (["inspect", "{secret}"], ["secret.yaml", "ermission"]),
    (["train", "--data", "{secret}", "--runs-dir", "{runs}"], ["secret.yaml", "cannot read"]),
])
def test_permission_denied_is_one_line(capsys, tmp_path, scene, argv, words):
    ro = tmp_path / "readonly"
    ro.mkdir()
    secret = tmp_path / "secret.yaml"
    secret.write_text("model: {name: oi}\n")
    secret.chmod(0)
    ro.chmod(0o555)
    try:
        before = _tree(tmp_path / "runs")
        argv = [a.format(ro=ro, secret=secret, **scene) for a in argv]
        if PERMISSIONS_ENFORCED:
            code = main(argv)
            out, err = capsys.readouterr()
        else:  # root: run the command in a child without the capabilities that bypass modes
            proc = subprocess.run([*DROP_DAC, sys.executable, "-m", "app", *argv], cwd=REPO,
                                  capture_output=True, text=True, timeout=120)
            code, out, err = proc.returncode, proc.stdout, proc.stderr
        _expect_one_error_line(code, out, err, 2, words)
        assert list(ro.iterdir()) == []
        assert _tree(tmp_path / "runs") == before
    finally:
        ro.chmod(0o755)
        secret.chmod(0o644)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")
def test_runs_dir_that_cannot_be_created(capsys, scene):
    code = main(["train", "--data", scene["nc"], "--runs-dir", "/proc/oceanlab-no-such/runs"])
    out, err = capsys.readouterr()
    _expect_one_error_line(code, out, err, 2, ["--runs-dir", "/proc/oceanlab-no-such/runs", "cannot create"])


def test_workspace_that_is_a_file(capsys, tmp_path, monkeypatch, mock_nc):
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    monkeypatch.setenv("OCEANLAB_HOME", str(home))
    code = main(["train", "--data", str(mock_nc)])
    out, err = capsys.readouterr()
    _expect_one_error_line(code, out, err, 2, ["runs folder", "home-is-a-file", "cannot create"])
    code = main(["train"])  # the built-in dataset would be generated there
    out, err = capsys.readouterr()
    _expect_one_error_line(code, out, err, 2, ["datasets folder", "home-is-a-file", "cannot create"])


# -- what is accepted ------------------------------------------------------------------------------
@pytest.mark.parametrize("text, model", [
    ("model: unet\n", "unet"),                  # a plain name is the section {name: unet}
    ("model: {name: oi}\ndata:\ntrain: {}\n", "oi"),  # empty sections are the defaults
    ("", "oi"),                                 # an empty file is the defaults
])
def test_config_file_shapes_that_are_accepted(capsys, tmp_path, text, model):
    import yaml

    cfg = tmp_path / "ok.yaml"
    cfg.write_text(text)
    assert main(["config", "--config", str(cfg)]) == 0
    out, err = capsys.readouterr()
    assert err == "" and yaml.safe_load(out)["model"]["name"] == model


def test_same_value_twice_is_not_a_contradiction(capsys):
    assert main(["config", "--model", "unet", "--set", "model.name=unet"]) == 0
    assert capsys.readouterr().err == ""


def test_help_still_works(capsys):
    assert main(["--help"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("usage:") and "train" in out and err == ""
    assert main(["train", "--help"]) == 0
    out, _ = capsys.readouterr()
    assert "--runs-dir" in out and "--set" in out


# -- bugs, interrupts and OS errors that escape a command ------------------------------------------
def _log_path(line: str) -> Path:
    match = re.search(r"\(details in (.+)\)$", line)
    assert match, line
    return Path(match.group(1))


def test_internal_error_is_one_line_and_logged(capsys, monkeypatch, workspace):
    def boom(args):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(cli, "_cmd_config", boom)
    code = main(["config", "--model", "oi"])
    out, err = capsys.readouterr()
    _expect_one_error_line(code, out, err, 1, ["internal error: RuntimeError: boom (details in "],
                           prefix="internal error: ")
    log = _log_path(err.strip())
    assert log.is_file() and log.parent == workspace / "logs" and log.name.startswith("cli-")
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: boom" in text
    assert "in boom" in text and "config --model oi" in text


def test_internal_error_log_falls_back_to_temp_folder(capsys, monkeypatch, tmp_path):
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    monkeypatch.setenv("OCEANLAB_HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()

    def boom(args):
        raise ValueError("bad state")

    monkeypatch.setattr(cli, "_cmd_runs", boom)
    code = main(["runs"])
    out, err = capsys.readouterr()
    _expect_one_error_line(code, out, err, 1, ["internal error: ValueError: bad state"], prefix="internal error: ")
    log = _log_path(err.strip())
    assert log.parent == tmp_path / "tmp" / "oceanlab-logs"
    assert "ValueError: bad state" in log.read_text()


def test_interrupt_is_one_line_exit_130(capsys, monkeypatch):
    def stop(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_config", stop)
    assert main(["config"]) == 130
    out, err = capsys.readouterr()
    assert out == "" and err == "interrupted\n"


def test_os_error_escaping_a_command_is_one_line_exit_2(capsys, monkeypatch):
    def denied(args):
        raise PermissionError(13, "Permission denied", "/somewhere/run.json")

    monkeypatch.setattr(cli, "_cmd_runs", denied)
    code = main(["runs"])
    out, err = capsys.readouterr()
    _expect_one_error_line(code, out, err, 2, ["error: /somewhere/run.json: Permission denied"])


def test_user_text_with_line_breaks_stays_one_line(capsys):
    code = main(["config", "--model", "g\npt"])
    out, err = capsys.readouterr()
    _expect_one_error_line(code, out, err, 2, ["unknown model", "g\\npt"])


# -- real processes: nothing but one line reaches a terminal ----------------------------------------
@pytest.mark.parametrize("argv, words", [
    ([], ["required: command"]),
    (["train", "--epochs", "abc"], ["argument --epochs: invalid int value: 'abc'"]),
    (["train", "--device", "tpu"], ["'auto', 'cpu', 'cuda'"]),
    (["config", "--config", "{cfg}"], ["cfg.yaml", "'model'", "mapping"]),
    (["train", "--data", "{nc}", "--runs-dir", "{file}"], ["--runs-dir", "is a file"]),
])
def test_real_process_prints_one_line(tmp_path, scene, workspace, argv, words):
    (tmp_path / "cfg.yaml").write_text("model: 5\n")
    before = _tree(tmp_path)
    env = {**os.environ, "OCEANLAB_HOME": str(workspace), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "app", *[a.format(**scene) for a in argv]],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    _expect_one_error_line(proc.returncode, proc.stdout, proc.stderr, 2, words)
    assert _tree(tmp_path) == before
