"""Honest run status and a store that survives what is on disk (issue 5, §2 and §3).

Real worker processes are started and stopped with SIGTERM, SIGINT and SIGKILL; run ids that
try to leave the store are refused by the store, the CLI and (in test_dashboard_security)
the Results page; run folders with malformed files show as unreadable rows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.cli import main
from backend import jobs, liveness
from backend.config import build_config, parse_set
from backend.runner import execute
from backend.store import RunStore, check_run_id
from oceanlab_errors import RunError

REPO = Path(__file__).resolve().parent.parent
#: A UNet small enough to start at once and slow enough (many epochs) to be stopped mid-way.
ENDLESS_UNET = ["model.window=3", "model.base_channels=4", "model.depth=1", "model.patch_size=16",
                "model.batch_size=4", "model.steps_per_epoch=20", "train.epochs=100000"]


def wait_for(predicate, timeout: float = 60.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")


# --------------------------------------------------------------------------- run ids


TRAVERSAL_IDS = ["..", ".", "../outside", "../../etc", "a/b", "/etc", "x\\..\\y", "", " ",
                 "run id", "run\x00", "ünïcode", "a" * 200, "~root", "$HOME", "*", "run;rm"]


@pytest.mark.parametrize("bad", TRAVERSAL_IDS)
def test_store_refuses_ids_outside_the_pattern(tmp_path: Path, bad: str):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "run.json").write_text('{"id": "outside", "status": "done"}')
    store = RunStore(tmp_path / "runs")
    store.create({"model": {"name": "oi"}})
    for call in (store.get, store.delete, store.path_of):
        with pytest.raises(RunError, match="invalid run id") as info:
            call(bad)
        assert "\n" not in str(info.value)
    with pytest.raises(RunError):
        store.create({"model": {"name": "oi"}}, run_id=bad)
    assert (outside / "run.json").exists()  # nothing outside the store was touched


def test_store_refuses_a_symlinked_run_folder(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "run.json").write_text('{"id": "x", "status": "done"}')
    store = RunStore(tmp_path / "runs")
    store.root.mkdir()
    (store.root / "link").symlink_to(outside)
    with pytest.raises(RunError, match="not a folder of the run store"):
        store.delete("link")
    assert (outside / "run.json").exists()
    assert [r.id for r in store.runs()] == []


def test_a_generated_id_that_collides_is_drawn_again(tmp_path: Path, monkeypatch):
    """Two runs of one model made in the same second may draw the same 4 hex digits."""
    from backend import store as store_module

    draws = iter(["abcd", "abcd", "abcd", "ef01"])
    monkeypatch.setattr(store_module.secrets, "token_hex", lambda n: next(draws))
    monkeypatch.setattr(store_module, "datetime", _FrozenClock)
    store = RunStore(tmp_path / "runs")
    first = store.create({"model": {"name": "oi"}})
    second = store.create({"model": {"name": "oi"}})
    assert first.id == "20261130-120000-oi-abcd"
    assert second.id == "20261130-120000-oi-ef01"
    with pytest.raises(RunError, match="already exists"):
        store.create({"model": {"name": "oi"}}, run_id=first.id)


class _FrozenClock:
    @staticmethod
    def now(tz=None):
        from datetime import datetime
        return datetime(2026, 11, 30, 12, 0, 0, tzinfo=tz)


def test_valid_ids_pass():
    for good in ("20261130-120000-oi-ab12", "my.run_2", "A-b.c_d"):
        assert check_run_id(good) == good


def test_cli_worker_refuses_a_folder_that_is_not_a_run(tmp_path: Path, capsys):
    code = main(["worker", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2 and err.startswith("error: ") and "not a run folder" in err
    assert len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------- malformed files


UNREADABLE = {
    "run.json is a list": ("run.json", b"[1, 2, 3]", "expected a JSON object"),
    "run.json is not UTF-8": ("run.json", b'{"id": "\xff\xfe"}', "not UTF-8"),
    "run.json is empty": ("run.json", b"", "not valid JSON"),
    "run.json is truncated": ("run.json", b'{"id": "x", "status": "do', "not valid JSON"),
    "config is a string": ("run.json", b'{"id": "x", "status": "done", "config": "oi"}',
                           "'config' is a str"),
    "config.model is a list": ("run.json", b'{"status": "done", "config": {"model": [1]}}',
                               "config.model is a list"),
    "status is a number": ("run.json", b'{"id": "x", "status": 3}', "status is not a string"),
    "timings is a string": ("run.json", b'{"status": "done", "timings": "fast"}',
                            "'timings' is a str"),
    "metrics.json is a list": ("metrics.json", b"[0.1, 0.2]", "expected a JSON object"),
    "metrics.json is not UTF-8": ("metrics.json", b"\x80\x81", "not UTF-8"),
    "deeply nested": ("run.json", b"[" * 100_000 + b"]" * 100_000, "run.json"),
}


@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_malformed_run_files_are_unreadable_rows(tmp_path: Path, capsys, case: str):
    name, content, why = UNREADABLE[case]
    store = RunStore(tmp_path / "runs")
    good = store.create({"model": {"name": "oi"}, "task": {"name": "interpolation"}}, status="done")
    good.write_metrics({"rmse": 0.05, "mu": 0.8})
    bad = store.create({"model": {"name": "oi"}}, status="done")
    (bad.path / name).write_bytes(content)

    table = store.table().set_index("id")
    assert table.loc[bad.id, "status"] == "unreadable"
    assert why in table.loc[bad.id, "error"] and "\n" not in table.loc[bad.id, "error"]
    assert table.loc[good.id, "status"] == "done" and table.loc[good.id, "mu"] == 0.8

    assert main(["runs", "--runs-dir", str(store.root), "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[bad.id]["status"] == "unreadable" and rows[good.id]["mu"] == 0.8
    assert main(["runs", "--runs-dir", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert bad.id in out and "unreadable" in out and good.id in out


def test_folders_that_are_not_runs_are_ignored(tmp_path: Path):
    store = RunStore(tmp_path / "runs")
    good = store.create({"model": {"name": "oi"}}, status="done")
    (store.root / "no-run-json").mkdir()
    (store.root / "bad name!").mkdir()
    (store.root / "bad name!" / "run.json").write_text("{}")
    (store.root / "stray-file.txt").write_text("x")
    (store.root / "dir-run-json").mkdir()
    (store.root / "dir-run-json" / "run.json").mkdir()
    assert [r.id for r in store.runs()] == [good.id]


def test_run_files_are_readable_by_the_group(tmp_path: Path):
    old = os.umask(0o077)  # the strictest usual umask: files would be 0600
    try:
        run = RunStore(tmp_path / "runs").create({"model": {"name": "oi"}})
        run.write_metrics({"rmse": 1.0})
    finally:
        os.umask(old)
    for name in ("run.json", "metrics.json"):
        mode = (run.path / name).stat().st_mode
        assert mode & 0o040, f"{name} is {oct(mode)}"


# ------------------------------------------------------------------ status and workers


def _queued_run(store: RunStore, data: Path, extra: list[str]):
    config = build_config(model="unet", overrides={
        "data.path": str(data), "data.var": "ssh", "data.obs": "ssh_obs",
        **parse_set(extra)})
    return config


@pytest.mark.slow
@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, "cancelled"), (signal.SIGINT, "cancelled"),
                                         (signal.SIGKILL, "failed")])
def test_worker_stopped_by_a_signal_never_stays_running(tmp_path: Path, mock_nc: Path, sig, status):
    store = RunStore(tmp_path / "runs")
    run = jobs.submit(_queued_run(store, mock_nc, ENDLESS_UNET), store).run
    # Stop it in the middle of Lightning's training loop: after the first epochs are logged.
    wait_for(lambda: (run.info().get("progress") or {}).get("epoch", 0) >= 2, timeout=120)
    assert run.info()["status"] == "running"
    pid = run.info()["pid"]  # the slot worker executing it
    os.kill(pid, sig)
    wait_for(lambda: not jobs.is_alive(run), timeout=30)
    info = liveness.refresh(run)
    assert info["status"] == status, info
    if sig == signal.SIGKILL:
        assert info["error"].startswith("worker lost") and str(pid) in info["error"]
        assert json.loads((run.path / "run.json").read_text())["status"] == "failed"  # recorded
    else:
        assert signal.Signals(sig).name in info["error"] or "interrupted" in info["error"]
        assert "traceback" not in info
    assert RunStore(store.root).table().set_index("id").loc[run.id, "status"] == status


@pytest.mark.slow
def test_cli_train_ended_by_sigterm_is_cancelled(tmp_path: Path, mock_nc: Path):
    runs = tmp_path / "runs"
    args = [sys.executable, "-m", "app", "train", "--model", "unet", "--data", str(mock_nc),
            "--var", "ssh", "--obs", "ssh_obs", "--runs-dir", str(runs)]
    for item in ENDLESS_UNET:
        args += ["--set", item]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OCEANLAB_HOME": str(tmp_path / "ws")})
    try:
        def training():
            found = list(runs.glob("*/run.json"))
            return found and (json.loads(found[0].read_text()).get("progress") or {}).get("epoch", 0) >= 1
        wait_for(training, timeout=120)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    info = json.loads(next(runs.glob("*/run.json")).read_text())
    assert info["status"] == "cancelled" and "SIGTERM" in info["error"]
    assert "Traceback" not in err
    assert proc.returncode == 128 + signal.SIGTERM


def test_invalid_config_in_run_json_fails_instead_of_staying_queued(tmp_path: Path):
    store = RunStore(tmp_path / "runs")
    run = store.create({"model": {"name": "unet", "window": "wide"}, "train": {"epochs": -1}})
    out = jobs.run_queued(run.path)
    info = out.info()
    assert info["status"] == "failed" and info["error_kind"] == "input"
    assert info["error"].startswith(f"invalid config in {run.path / 'run.json'}")
    assert "\n" not in info["error"]


def test_invalid_config_through_a_real_worker_process(tmp_path: Path):
    store = RunStore(tmp_path / "runs")
    run = store.create({"model": {"name": "no-such-model"}})
    proc = subprocess.run([sys.executable, "-m", "app", "worker", str(run.path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr
    info = run.info()
    assert info["status"] == "failed" and "no-such-model" in info["error"]


def test_cancel_before_the_worker_starts(tmp_path: Path):
    store = RunStore(tmp_path / "runs")
    run = store.create({"model": {"name": "oi"}})
    assert jobs.cancel(run) is True
    assert run.info()["status"] == "cancelled"
    assert jobs.run_queued(run.path).info()["status"] == "cancelled"
    assert jobs.cancel(run) is False  # already ended


def test_cli_cancel(tmp_path: Path, capsys):
    """``python -m app cancel RUN_ID``: a queued run ends cancelled (exit 0, JSON with the
    status before and after); an ended or unknown run is one line and exit 2."""
    runs = tmp_path / "runs"
    store = RunStore(runs)
    run = store.create({"model": {"name": "oi"}})
    assert main(["cancel", run.id, "--runs-dir", str(runs), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"run_id": run.id, "status": "cancelled", "was": "queued"}
    assert run.info()["status"] == "cancelled" and err == ""
    assert main(["cancel", run.id, "--runs-dir", str(runs)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("error: ") and "already ended (cancelled)" in err
    assert main(["cancel", "20240101-000000-oi-abcd", "--runs-dir", str(runs)]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "no run '20240101-000000-oi-abcd'" in err
    assert main(["cancel", "../../etc", "--runs-dir", str(runs)]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_cli_cancel_stops_a_running_worker(tmp_path: Path, mock_nc: Path, capsys):
    runs = tmp_path / "runs"
    store = RunStore(runs)
    run = jobs.submit(_queued_run(store, mock_nc, ENDLESS_UNET), store).run
    wait_for(lambda: (run.info().get("progress") or {}).get("epoch", 0) >= 1, timeout=120)
    assert main(["cancel", run.id, "--runs-dir", str(runs)]) == 0
    assert f"{run.id}: running → cancelled" in capsys.readouterr().out
    assert run.info()["error"] == "cancelled by the user"
    wait_for(lambda: not jobs.is_alive(run), timeout=30)


def test_cancel_never_signals_a_process_that_reused_the_pid(tmp_path: Path):
    """A stale run record whose pid now belongs to another program: that program survives,
    and the run is recorded as lost (its writer lock is free: no worker executes it)."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                 start_new_session=True)
    try:
        store = RunStore(tmp_path / "runs")
        run = store.create({"model": {"name": "oi"}}, status="running")
        me = liveness.identity(bystander.pid)
        # Same pid and host, but the worker that wrote this started at another time.
        run.update(pid=bystander.pid, worker={**me, "started": me["started"] - 3600.0})
        assert jobs.is_alive(run) is False
        assert jobs.cancel(run, wait_s=1.0) is False  # nothing to cancel: it is lost
        time.sleep(0.3)
        assert bystander.poll() is None, "the bystander was signalled"
        info = run.info()
        assert info["status"] == "failed" and info["error"].startswith("worker lost")
        # a record from before writer locks: the recorded process identity decides
        lost = store.create({"model": {"name": "oi"}}, status="running")
        lost.update(worker={**me, "started": me["started"] - 3600.0})
        (lost.path / "writer.lock").unlink()
        assert liveness.refresh(lost)["status"] == "failed"
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_cancel_reaches_the_real_worker(tmp_path: Path, mock_nc: Path):
    store = RunStore(tmp_path / "runs")
    run = jobs.submit(_queued_run(store, mock_nc, ENDLESS_UNET), store).run
    wait_for(lambda: (run.info().get("progress") or {}).get("epoch", 0) >= 1, timeout=120)
    assert jobs.cancel(run, wait_s=60) is True
    info = run.info()
    assert info["status"] == "cancelled" and info["error"] == "cancelled by the user"
    wait_for(lambda: not jobs.is_alive(run), timeout=30)


def test_stale_heartbeat_on_another_host_is_lost(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OCEANLAB_STALE_S", "5")
    store = RunStore(tmp_path / "runs")
    run = store.create({"model": {"name": "oi"}}, status="running")
    run.update(worker={"pid": 12345, "started": 1.0, "host": "another-node"})
    run.write_heartbeat({"pid": 12345, "host": "another-node", "unix": time.time()})
    assert liveness.refresh(run)["status"] == "running"  # fresh heartbeat: alive
    run.write_heartbeat({"pid": 12345, "host": "another-node", "unix": time.time() - 30})
    info = liveness.refresh(run)
    assert info["status"] == "failed" and "no heartbeat" in info["error"]
    assert "another-node" in info["error"]


def test_a_queued_run_waits_for_a_worker_however_long(tmp_path: Path, monkeypatch):
    """The queue lives in the store: a queued run is never 'lost' for want of a worker; the
    next worker started (by a submit, the dashboard) executes it."""
    monkeypatch.setenv("OCEANLAB_STALE_S", "5")
    store = RunStore(tmp_path / "runs")
    run = store.create({"model": {"name": "oi"}})
    info = run.info()
    info["created"] = info["updated"] = "2020-01-01T00:00:00+00:00"
    (run.path / "run.json").write_text(json.dumps(info))
    assert store.table().set_index("id").loc[run.id, "status"] == "queued"


def test_heartbeat_is_written_while_running(tmp_path: Path, mock_nc: Path):
    store = RunStore(tmp_path / "runs")
    config = build_config(model="oi", overrides={"data.path": str(mock_nc), "data.var": "ssh",
                                                 "data.obs": "ssh_obs"})
    run = execute(config, store)
    assert run.info()["status"] == "done"
    beat = run.heartbeat()
    assert beat["pid"] == os.getpid() and abs(beat["unix"] - time.time()) < 120
    assert run.info()["worker"]["pid"] == os.getpid()


def test_memory_limit_refuses_before_loading(tmp_path: Path, mock_nc: Path, capsys):
    runs = tmp_path / "runs"
    code = main(["train", "--data", str(mock_nc), "--var", "ssh", "--obs", "ssh_obs", "--model", "oi",
                 "--set", "limits.max_memory_gb=0.000001", "--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "exceeds limits.max_memory_gb" in err
    assert len(err.strip().splitlines()) == 1
    info = json.loads(next(runs.glob("*/run.json")).read_text())
    assert info["status"] == "failed" and info["error_kind"] == "input"
    assert "load_s" not in info["timings"]  # refused before loading
