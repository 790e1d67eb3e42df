"""The backend of issue 9: one writer per run, the queue with slots, cancel, reuse, the data
cache and the events log.

Slot workers are real detached processes where the test is about processes (slots, cancel
of a running run, a killed worker); elsewhere :func:`backend.jobs.worker_loop` runs in the
test's own process, which is the same code without the start-up time.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.cli import main
from backend import jobs, liveness
from backend import record as records
from backend.cache import DataCache
from backend.config import build_config, parse_set
from backend.record import RunRecord, RunStatus
from backend.reuse import reuse_key
from backend.store import RunStore
from oceanlab_errors import RunError

REPO = Path(__file__).resolve().parent.parent
ENDLESS_UNET = ["model.window=3", "model.base_channels=4", "model.depth=1", "train.patch_size=16",
                "train.batch_size=4", "train.steps_per_epoch=20", "train.epochs=100000"]


def wait_for(predicate, timeout: float = 60.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")


def oi_config(data: Path, **extra):
    return build_config(model="oi", overrides={
        "data.path": str(data), "data.var": "ssh", "data.obs": "ssh_obs",
        "model.lt_days": 3.0, **extra})


def unet_config(data: Path, extra: list[str]):
    return build_config(model="unet", overrides={
        "data.path": str(data), "data.var": "ssh", "data.obs": "ssh_obs", **parse_set(extra)})


# ------------------------------------------------------------------ the typed record


def test_record_is_typed_and_refuses_what_readers_could_not_read(tmp_path: Path):
    store = RunStore(tmp_path / "runs")
    run = store.create({"model": {"name": "oi"}})
    rec = run.record()
    assert isinstance(rec, RunRecord) and rec.status is RunStatus.queued and rec.active
    assert rec.experiment().model.name == "oi"  # the config, typed by its model
    run.update(progress={"stage": "solve", "done": 3, "total": 12, "unit": "days"})
    assert run.record().progress.fraction == pytest.approx(0.25)
    with pytest.raises(RunError, match="status"):
        run.update(status="finished-ish")
    assert run.info()["status"] == "queued"  # the refused write changed nothing
    run.update(some_future_field={"kept": True})  # unknown keys survive a round trip
    assert run.record().model_dump()["some_future_field"] == {"kept": True}


def _increment(run_dir: str, n: int) -> None:
    from backend.store import Run

    run = Run(Path(run_dir))
    for _ in range(n):
        run.modify(lambda info: info.update(counter=info.get("counter", 0) + 1))


def _read_many(run_dir: str, stop_after: float, out) -> None:
    from backend.store import Run

    run = Run(Path(run_dir))
    bad = reads = 0
    deadline = time.monotonic() + stop_after
    while time.monotonic() < deadline:
        try:
            run.record()
            reads += 1
        except RunError:
            bad += 1
    out.put((reads, bad))


def test_many_concurrent_writers_and_readers_lose_and_tear_nothing(tmp_path: Path):
    store = RunStore(tmp_path / "runs")
    run = store.create({"model": {"name": "oi"}})
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    writers = [ctx.Process(target=_increment, args=(str(run.path), 40)) for _ in range(4)]
    readers = [ctx.Process(target=_read_many, args=(str(run.path), 4.0, out)) for _ in range(2)]
    for p in writers + readers:
        p.start()
    for p in writers + readers:
        p.join(60)
        assert p.exitcode == 0
    assert run.info()["counter"] == 160  # no update lost
    for _ in readers:
        reads, bad = out.get(timeout=5)
        assert reads > 0 and bad == 0  # no torn read


def test_only_the_executing_process_writes_its_record(tmp_path: Path):
    store = RunStore(tmp_path / "runs")
    run = store.create({"model": {"name": "oi"}})
    holder = subprocess.Popen(
        [sys.executable, "-c",
         ("import sys, time; from pathlib import Path; from backend import record;"
          f"record.acquire(Path({str(run.path)!r})); print('held', flush=True); time.sleep(30)")],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunError, match="being executed by another process"), \
                records.writer(run.path, wait_s=0.2):
            pass
        with pytest.raises(RunError):
            run.update(status="failed")
        assert records.lock_state(run.path) == "held" and jobs.is_alive(run)
    finally:
        holder.kill()
        holder.wait()
    # the system drops the lock of a dead process: writing is possible again
    wait_for(lambda: records.lock_state(run.path) == "free", timeout=5)
    run.update(status="cancelled")
    assert run.info()["status"] == "cancelled"


def test_events_log_skips_an_unfinished_last_line(tmp_path: Path):
    store = RunStore(tmp_path / "runs")
    run = store.create({"model": {"name": "oi"}})
    run.event("stage", stage="load")
    run.event("epoch", epoch=1, train_loss=0.5)
    with open(run.path / records.EVENTS_FILE, "ab") as fh:
        fh.write(b'{"kind": "epoch", "epo')  # a writer in the middle of its line
    events = run.events()
    assert [e["kind"] for e in events] == ["stage", "epoch"]
    assert events[1]["train_loss"] == 0.5 and run.events(since=1)[0]["epoch"] == 1


# ------------------------------------------------------------------ the queue


def test_queue_runs_in_order_and_reports_positions(tmp_path: Path, mock_nc: Path):
    store = RunStore(tmp_path / "runs")
    subs = [jobs.submit(oi_config(mock_nc, **{"model.lt_days": 2.0 + k}), store,
                        start_workers=False) for k in range(3)]
    assert [s.position for s in subs] == [1, 2, 3]
    assert jobs.queue_positions(store) == {s.run.id: k + 1 for k, s in enumerate(subs)}
    active = jobs.active_runs(store)
    assert [a.id for a in active] == [s.run.id for s in subs]
    assert all(a.status == "queued" and a.elapsed_s is not None for a in active)

    assert jobs.worker_loop(store.root, slot=0, n_slots=1, idle_s=0.3) == 3
    infos = [s.run.info() for s in subs]
    assert [i["status"] for i in infos] == ["done"] * 3
    starts = [i["started_unix"] for i in infos]
    assert starts == sorted(starts)  # first in, first out
    for a, b in itertools.pairwise(infos):
        assert a["finished_unix"] <= b["started_unix"]  # one slot: one at a time
    assert jobs.queue_positions(store) == {} and jobs.active_runs(store) == []
    kinds = [e["kind"] for e in subs[0].run.events()]
    assert kinds[:4] == ["queued", "claimed", "start", "stage"] and kinds[-1] == "end"
    solve = [e for e in subs[0].run.events() if e["kind"] == "progress"]
    assert solve and solve[-1]["done"] == solve[-1]["total"]  # the OI reported its days


def test_a_slot_is_taken_by_one_worker_only(tmp_path: Path):
    store = RunStore(tmp_path / "runs")
    lock = store.root / jobs.SLOTS_DIR / "slot-0.lock"
    lock.parent.mkdir(parents=True)
    fd = records.try_lock_file(lock)
    try:
        assert jobs.worker_loop(store.root, slot=0, n_slots=1, idle_s=0.1) == 0
        assert jobs.ensure_workers(store, 1) == 0  # slot 0 has its worker
    finally:
        records.unlock_file(fd)


@pytest.mark.slow
def test_slots_bound_the_runs_executing_at_once(tmp_path: Path, mock_nc: Path):
    """Two slots (two real worker processes: NetCDF and HDF5 are not thread-safe, so workers
    are processes), four runs: never more than two run at once."""
    store = RunStore(tmp_path / "runs")
    subs = [jobs.submit(oi_config(mock_nc, **{"model.lt_days": 2.0 + k}), store,
                        start_workers=False) for k in range(4)]
    assert jobs.ensure_workers(store, 2) == 2
    wait_for(lambda: all(s.run.info()["status"] == "done" for s in subs), timeout=240)
    infos = [s.run.info() for s in subs]
    spans = [(i["started_unix"], i["finished_unix"]) for i in infos]
    for t0, _ in spans:
        assert sum(a <= t0 < b for a, b in spans) <= 2
    assert 1 <= len({i["worker"]["pid"] for i in infos}) <= 2


def test_slots_setting(monkeypatch, mock_nc: Path):
    monkeypatch.setenv("OCEANLAB_SLOTS", "3")
    assert jobs.slots() == 3
    assert jobs.slots(oi_config(mock_nc, **{"backend.slots": 2})) == 2
    monkeypatch.setenv("OCEANLAB_SLOTS", "zero")
    with pytest.raises(RunError, match="OCEANLAB_SLOTS"):
        jobs.slots()
    monkeypatch.delenv("OCEANLAB_SLOTS")
    assert jobs.slots() == 1  # no GPU here


def test_cancel_while_queued_never_starts(tmp_path: Path, mock_nc: Path):
    store = RunStore(tmp_path / "runs")
    first = jobs.submit(oi_config(mock_nc), store, start_workers=False)
    second = jobs.submit(oi_config(mock_nc, **{"model.lt_days": 5.0}), store, start_workers=False)
    assert jobs.cancel(first.run) is True
    info = first.run.info()
    assert info["status"] == "cancelled" and info["error"] == "cancelled before it started"
    assert jobs.queue_positions(store) == {second.run.id: 1}  # it moved up
    assert jobs.worker_loop(store.root, 0, 1, idle_s=0.3) == 1
    assert first.run.info().get("started") is None  # never started
    assert second.run.info()["status"] == "done"
    assert jobs.cancel(first.run) is False


def test_cancel_while_running_in_a_thread(tmp_path: Path, mock_nc: Path):
    """A run executing outside the main thread (as in a Dask worker) is cancelled through
    the watcher, not a signal."""
    store = RunStore(tmp_path / "runs")
    sub = jobs.submit(unet_config(mock_nc, ENDLESS_UNET), store, start_workers=False)
    worker = threading.Thread(target=jobs.worker_loop, args=(store.root, 0, 1, 0.3))
    worker.start()
    wait_for(lambda: (sub.run.info().get("progress") or {}).get("epoch", 0) >= 1, timeout=120)
    assert jobs.is_alive(sub.run)
    t0 = time.monotonic()
    assert jobs.cancel(sub.run, wait_s=30) is True
    info = sub.run.info()
    assert info["status"] == "cancelled" and info["error"] == "cancelled by the user"
    assert time.monotonic() - t0 < 30
    worker.join(60)
    assert not worker.is_alive()
    assert sub.run.events()[-1]["kind"] == "end"


@pytest.mark.slow
def test_real_slot_worker_cancel_and_kill(tmp_path: Path, mock_nc: Path):
    """Through real detached workers: cancel a running run, and a worker killed with SIGKILL
    leaves its run ``failed`` (worker lost), never ``running``."""
    store = RunStore(tmp_path / "runs")
    sub = jobs.submit(unet_config(mock_nc, ENDLESS_UNET), store)
    assert sub.started_workers == 1 and sub.status == "queued"
    wait_for(lambda: (sub.run.info().get("progress") or {}).get("epoch", 0) >= 1, timeout=120)
    assert main(["cancel", sub.run.id, "--runs-dir", str(store.root)]) == 0
    assert sub.run.info()["status"] == "cancelled"

    victim = jobs.submit(unet_config(mock_nc, ENDLESS_UNET + ["train.seed=1"]), store)
    wait_for(lambda: victim.run.info().get("status") == "running", timeout=60)
    pid = victim.run.info()["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not jobs.is_alive(victim.run), timeout=30)
    info = liveness.refresh(victim.run)
    assert info["status"] == "failed" and info["error"].startswith("worker lost")
    assert str(pid) in info["error"]


# ------------------------------------------------------------------ reuse


def test_train_reuses_a_finished_run_unless_forced(tmp_path: Path, mock_nc: Path, capsys):
    runs = tmp_path / "runs"
    args = ["train", "--data", str(mock_nc), "--var", "ssh", "--obs", "ssh_obs",
            "--set", "model.lt_days=3", "--runs-dir", str(runs), "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["reused"] is False and first["status"] == "done"
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["reused"] is True and again["run_id"] == first["run_id"]
    assert again["metrics"] == first["metrics"]
    assert main([*args, "--force"]) == 0
    forced = json.loads(capsys.readouterr().out)
    assert forced["reused"] is False and forced["run_id"] != first["run_id"]
    # another seed, another key; the memory limit does not change the result: same key
    assert main([*args, "--seed", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["reused"] is False
    assert main([*args, "--set", "limits.max_memory_gb=4"]) == 0
    assert json.loads(capsys.readouterr().out)["reused"] is True
    # submit says so too, at once
    assert main(["submit", *args[1:]]) == 0
    sub = json.loads(capsys.readouterr().out)
    assert sub == {"run_id": first["run_id"] if sub["run_id"] == first["run_id"]
                   else forced["run_id"], "status": "done", "reused": True,
                   "position": None, "path": sub["path"]}


def test_reuse_key_follows_data_and_code(mock_nc: Path, tmp_path: Path):
    cfg = oi_config(mock_nc).to_dict()
    key = reuse_key(cfg, "sha256:a", "1+x")
    assert reuse_key(cfg, "sha256:a", "1+x") == key
    assert reuse_key(cfg, "sha256:b", "1+x") != key  # other data
    assert reuse_key(cfg, "sha256:a", "1+y") != key  # other code
    moved = {**cfg, "data": {**cfg["data"], "path": "/elsewhere/same.nc"}}
    assert reuse_key(moved, "sha256:a", "1+x") == key  # the same file elsewhere
    other = {**cfg, "train": {**cfg["train"], "seed": 7}}
    assert reuse_key(other, "sha256:a", "1+x") != key


def test_submit_json_and_queue_through_the_cli(tmp_path: Path, mock_nc: Path, capsys,
                                               monkeypatch):
    monkeypatch.setattr(jobs, "ensure_workers", lambda store, n: 0)
    runs = tmp_path / "runs"
    base = ["submit", "--data", str(mock_nc), "--var", "ssh", "--obs", "ssh_obs",
            "--runs-dir", str(runs), "--json"]
    assert main(base) == 0
    a = json.loads(capsys.readouterr().out)
    assert main([*base, "--seed", "2"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert (a["status"], a["position"], a["reused"]) == ("queued", 1, False)
    assert (b["status"], b["position"]) == ("queued", 2)
    assert main(["runs", "--runs-dir", str(runs), "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert (rows[a["run_id"]]["position"], rows[b["run_id"]]["position"]) == (1, 2)
    assert main(["runs", "--runs-dir", str(runs)]) == 0
    assert "position" in capsys.readouterr().out.splitlines()[0]
    assert main(["cancel", a["run_id"], "--runs-dir", str(runs), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "cancelled"
    assert jobs.queue_positions(RunStore(runs)) == {b["run_id"]: 1}
    assert main(["submit", "--executor", "dask", "--runs-dir", str(runs)]) == 2
    assert "--scheduler" in capsys.readouterr().err


# ------------------------------------------------------------------ data cache


def test_a_worker_keeps_loaded_data_between_jobs(tmp_path: Path, mock_nc: Path):
    store = RunStore(tmp_path / "runs")
    cache = DataCache()
    from backend import runner

    runs = []
    for lt in (2.0, 4.0):  # other model parameters, same data and preprocessing
        sub = jobs.submit(oi_config(mock_nc, **{"model.lt_days": lt}), store, start_workers=False)
        assert jobs.claim_next(store).id == sub.run.id
        try:
            jobs._execute_claimed(sub.run, runner, cache)
        finally:
            records.release(sub.run.path)
        runs.append(sub.run)
    other = jobs.submit(oi_config(mock_nc, **{"data.obs_noise": 0.05, "data.obs": "simulation"}),
                        store, start_workers=False)
    assert jobs.claim_next(store).id == other.run.id
    try:
        jobs._execute_claimed(other.run, runner, cache)
    finally:
        records.release(other.run.path)
    assert [r.info()["cache"]["data"] for r in runs] == ["miss", "hit"]
    assert other.run.info()["cache"]["data"] == "miss"  # other preprocessing, other entry
    assert (cache.hits, cache.misses) == (1, 2)
    # a cached task gives the same scores as a fresh one
    fresh = runner.execute(oi_config(mock_nc, **{"model.lt_days": 4.0}), store)
    assert fresh.metrics()["rmse"] == pytest.approx(runs[1].metrics()["rmse"], rel=1e-6)


def test_a_cached_task_keeps_its_tensors_on_the_device_between_runs(tmp_path: Path,
                                                                    mock_nc: Path):
    """The second UNet run on the same data in one worker finds the normalised tensors
    built by the first (and a run's predict reuses what its fit uploaded), with the same
    result as a run without any cache."""
    from backend import runner
    from data.torch_data import TaskTensors

    store = RunStore(tmp_path / "runs")
    cache = DataCache()
    small = ["model.window=3", "model.base_channels=4", "model.depth=1", "train.patch_size=16",
             "train.batch_size=4", "train.steps_per_epoch=2", "train.epochs=2"]
    built = []
    original = TaskTensors.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    TaskTensors.__init__ = counting
    try:
        first = runner.execute(unet_config(mock_nc, small), store, data_cache=cache)
        assert len(built) == 1  # fit uploaded, predict reused
        second = runner.execute(unet_config(mock_nc, [*small, "train.seed=1"]), store,
                                data_cache=cache)
        assert len(built) == 1  # the second run found them on the device
        assert second.info()["cache"]["data"] == "hit"
        fresh = runner.execute(unet_config(mock_nc, [*small, "train.seed=1"]), store)
        assert len(built) == 2  # no cache: built again
    finally:
        TaskTensors.__init__ = original
    assert first.info()["status"] == second.info()["status"] == "done"
    assert fresh.metrics()["rmse"] == pytest.approx(second.metrics()["rmse"], rel=1e-6)
