"""Jobs out of the page: a queue in the run store, executed by long-lived slot workers.

Submitting (the dashboard's Launch, ``python -m app submit``) writes a run folder with
status ``queued`` and an entry in the store's queue folder ``.queue/`` (its name sorts by
submission time), then makes sure the slot workers run (:func:`ensure_workers`) and
returns at once. Nothing is kept in memory: the queue lives in the store, so it survives a
restart of the dashboard, and any process (page, tab, terminal) sees the same queue.

Slot workers (``python -m app worker --slot K``, detached, one per slot: :func:`slots`) each
take the oldest queued run they can claim, execute it, and go on; a worker left without work
for :func:`idle_exit_s` seconds exits. At most ``slots`` runs execute at once; the others wait
in order. Claiming a run is taking its writer lock (:mod:`backend.record`), which the worker
keeps until the run has ended: no two workers execute one run, and a queued run cancelled at
the same moment is either cancelled or started, never both. A worker keeps loaded,
normalised data between its jobs (:mod:`backend.cache`) and its threads are the machine's
cores divided among the slots.

Stopping a run is a request, not a second writer: :func:`cancel` writes ``cancel.request``;
the executing worker sees it within a quarter of a second and ends the run ``cancelled``
(:mod:`backend.liveness`). A queued run nobody has claimed is cancelled by :func:`cancel`
itself, under the run's writer lock, and never starts.

Before queueing, :func:`submit` looks for a finished run with the same result key
(:mod:`backend.reuse`) and returns it instead (``reused``), unless ``force``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from backend import record as records
from backend.liveness import identity, refresh
from backend.store import ACTIVE, RUN_FILE, Run, RunStore, atomic_write_json, now_iso
from oceanlab_errors import OceanLabError, RunError

if TYPE_CHECKING:  # the config imports every model (torch): not needed to claim a run
    from backend.config import ExperimentConfig

log = logging.getLogger(__name__)

_REPO = Path(__file__).resolve().parent.parent
#: Seconds :func:`cancel` waits for the worker of a running run to record its end.
CANCEL_WAIT_S = 10.0
QUEUE_DIR = ".queue"
SLOTS_DIR = ".slots"
#: Seconds between two looks of an idle slot worker at the queue.
POLL_S = 0.2


# ----------------------------------------------------------------------------- settings

def slots(config: ExperimentConfig | None = None) -> int:
    """Runs executed at once: ``backend.slots`` of the config, else ``OCEANLAB_SLOTS``, else
    one per GPU (one on a CPU-only machine)."""
    if config is not None and config.backend.slots:
        return int(config.backend.slots)
    env = os.environ.get("OCEANLAB_SLOTS", "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            raise RunError(f"OCEANLAB_SLOTS={env!r}: expected a whole number >= 1") from None
        if value < 1:
            raise RunError(f"OCEANLAB_SLOTS={env!r}: expected a whole number >= 1")
        return value
    try:
        import torch

        return max(1, torch.cuda.device_count())
    except Exception:  # noqa: BLE001 (no torch, broken driver: one slot)
        return 1


def idle_exit_s() -> float:
    """Seconds an idle slot worker waits for work before it exits
    (``OCEANLAB_WORKER_IDLE_S``, default 1800)."""
    try:
        return max(1.0, float(os.environ.get("OCEANLAB_WORKER_IDLE_S", "1800")))
    except ValueError:
        return 1800.0


# ----------------------------------------------------------------------------- queue

def _queue_dir(store: RunStore) -> Path:
    return store.root / QUEUE_DIR


def _enqueue(store: RunStore, run: Run) -> None:
    q = _queue_dir(store)
    q.mkdir(parents=True, exist_ok=True)
    (q / f"{time.time_ns():020d}-{run.id}").touch()


def _dequeue(store: RunStore, run_id: str) -> None:
    q = _queue_dir(store)
    for entry in q.glob(f"*-{run_id}") if q.is_dir() else []:
        if entry.name.split("-", 1)[1] == run_id:
            entry.unlink(missing_ok=True)


def _entries(store: RunStore) -> list[tuple[str, Path]]:
    """Queue entries in order: ``(run_id, entry)``."""
    q = _queue_dir(store)
    if not q.is_dir():
        return []
    out = []
    for entry in sorted(q.iterdir()):
        stamp, _, run_id = entry.name.partition("-")
        if stamp.isdigit() and run_id:
            out.append((run_id, entry))
    return out


def queue_positions(store: RunStore) -> dict[str, int]:
    """``{run_id: position}`` (1 = next to start) of the runs waiting in the queue."""
    out: dict[str, int] = {}
    for run_id, _ in _entries(store):
        try:
            if store.get(run_id).info().get("status") == "queued":
                out[run_id] = len(out) + 1
        except RunError:
            continue
    return out


def running_count(store: RunStore) -> int:
    n = 0
    for run in store.runs():
        try:
            n += refresh(run).get("status") == "running"
        except RunError:
            continue
    return n


@dataclass
class Submission:
    run: Run
    reused: bool = False
    position: int | None = None
    started_workers: int = 0

    @property
    def status(self) -> str:
        return self.run.info().get("status", "unknown")


def find_reusable(config: ExperimentConfig, store: RunStore) -> Run | None:
    """A finished run whose result ``config`` would reproduce, or None (also when the data
    cannot be fingerprinted yet, e.g. the built-in dataset before its first generation)."""
    from backend import paths
    from backend.reuse import current_code_version, data_fingerprint, find_finished, reuse_key

    path = Path(config.data.path) if config.data.path else paths.builtin_dataset_path()
    try:
        if not config.data.path and not paths.builtin_is_current(path):
            return None
        fp = data_fingerprint(path)
    except (OceanLabError, OSError):
        return None
    # the code on disk: what a worker will run (workers restart when it changes)
    return find_finished(store, reuse_key(config.to_dict(), fp, current_code_version()))


def submit(config: ExperimentConfig, store: RunStore, force: bool = False,
           start_workers: bool = True, labels: dict | None = None) -> Submission:
    """Queue ``config`` and return at once (a finished identical run instead, unless
    ``force``). The local executor's slot workers are started when none runs; the Dask
    executor sends the run to the cluster of ``config.backend.scheduler``. ``labels``
    (``name``, ``tags``, checked by the caller) go into a new run's record; a reused run
    keeps its own."""
    if not force:
        done = find_reusable(config, store)
        if done is not None:
            return Submission(done, reused=True)
    run = store.create(config.to_dict(), status="queued")
    run.update(queued_unix=time.time(), executor=config.backend.executor, **(labels or {}))
    run.event("queued", executor=config.backend.executor)
    if config.backend.executor == "dask":
        from backend.executors import dask_submit

        dask_submit(run.path, config.backend.scheduler)
        return Submission(run)
    _enqueue(store, run)
    started = ensure_workers(store, slots(config)) if start_workers else 0
    return Submission(run, position=queue_positions(store).get(run.id), started_workers=started)


# ----------------------------------------------------------------------------- workers

def _slot_lock(store: RunStore, slot: int) -> Path:
    return store.root / SLOTS_DIR / f"slot-{slot}.lock"


def worker_status(store: RunStore) -> list[dict]:
    """The slot workers of ``store`` that run now (their ``slot-K.json``)."""
    out = []
    d = store.root / SLOTS_DIR
    for info_file in sorted(d.glob("slot-*.json")) if d.is_dir() else []:
        lock = info_file.with_suffix(".lock")
        if records.lock_state_file(lock) != "held":
            continue
        try:
            out.append(json.loads(info_file.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return out


def ensure_workers(store: RunStore, n: int) -> int:
    """Start a detached slot worker for each of slots ``0..n-1`` that has none; returns how
    many were started."""
    (store.root / SLOTS_DIR).mkdir(parents=True, exist_ok=True)
    started = 0
    for slot in range(n):
        if records.lock_state_file(_slot_lock(store, slot)) == "held":
            continue
        log_path = store.root / SLOTS_DIR / f"slot-{slot}.log"
        env = dict(os.environ)
        env["OCEANLAB_SLOTS_TOTAL"] = str(n)
        try:
            with open(log_path, "ab") as log_file:
                subprocess.Popen(
                    [sys.executable, "-m", "app", "worker", "--slot", str(slot),
                     "--slots", str(n), "--runs-dir", str(store.root)],
                    cwd=_REPO, stdout=log_file, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        except OSError as exc:
            raise RunError(f"cannot start a worker process ({exc.strerror or exc})") from None
        started += 1
    return started


def _thread_budget(n_slots: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, n_slots))


def claim_next(store: RunStore) -> Run | None:
    """Claim the oldest queued run (its writer lock, kept by the caller until the run has
    ended: release with :func:`backend.record.release`); None when there is none."""
    for run_id, entry in _entries(store):
        try:
            run = store.get(run_id)
        except RunError:
            entry.unlink(missing_ok=True)  # deleted while queued
            continue
        try:
            if run.info().get("status") != "queued":
                entry.unlink(missing_ok=True)
                continue
        except RunError:
            entry.unlink(missing_ok=True)
            continue
        if not records.acquire(run.path, wait_s=0.0):
            continue  # being cancelled, or claimed by another worker this instant
        try:
            if run.info().get("status") == "queued":
                entry.unlink(missing_ok=True)
                return run
        except RunError:
            pass
        entry.unlink(missing_ok=True)
        records.release(run.path)
    return None


def worker_loop(root: Path, slot: int, n_slots: int, idle_s: float | None = None) -> int:
    """The body of a slot worker: claim and execute queued runs until idle for ``idle_s``
    seconds. Returns the number of runs executed (0 at once when the slot is taken)."""
    store = RunStore(root)
    lock = _slot_lock(store, slot)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = records.try_lock_file(lock)
    if fd is None:
        return 0  # another worker has this slot
    idle_s = idle_exit_s() if idle_s is None else idle_s
    atomic_write_json(lock.with_suffix(".json"), {
        "slot": slot, "slots": n_slots, "pid": os.getpid(), "started": now_iso()})
    from backend.reuse import code_version, current_code_version

    version = code_version()
    runner = cache = None
    # Import torch and the models while waiting, so that the first run starts at once; the
    # claim path needs none of them (a page sees its run claimed within POLL_S either way).
    threading.Thread(target=_warm_imports, name="warm-imports", daemon=True).start()
    done = 0
    last = time.monotonic()
    try:
        while True:
            if _entries(store) and current_code_version() != version:
                # OceanLab was updated since this worker started: run new jobs with the new
                # code (the same worker, re-executed; the slot lock is released by exec).
                records.unlock_file(fd)
                fd = None
                os.execv(sys.executable, [sys.executable, "-m", "app", "worker", "--slot",
                                          str(slot), "--slots", str(n_slots), "--runs-dir",
                                          str(root)])
            run = claim_next(store)
            if run is None:
                if time.monotonic() - last > idle_s or not store.root.is_dir():
                    break  # idle for long, or the run store was removed
                time.sleep(POLL_S)
                continue
            try:
                # The first progress a page sees, before the heavy imports of a new worker.
                run.update(status="running", started=now_iso(), started_unix=time.time(),
                           pid=os.getpid(), worker=identity(),
                           progress={"stage": "start"})
                run.event("claimed", slot=slot, worker=identity())
                if runner is None:
                    runner, cache = _prepare_worker(slot, n_slots)
                _execute_claimed(run, runner, cache)
            finally:
                records.release(run.path)
            done += 1
            last = time.monotonic()
    finally:
        records.unlock_file(fd)
    return done


def _warm_imports() -> None:
    try:
        import backend.runner  # noqa: F401
    except Exception as exc:  # noqa: BLE001 (the real import, at the first run, reports it)
        log.warning("warming up the worker's imports failed: %s", exc)


def _prepare_worker(slot: int, n_slots: int):
    """The heavy imports of a slot worker, its threads and its GPU; ``(runner, cache)``."""
    import torch

    from backend import runner  # torch, Lightning, the models
    from backend.cache import CACHE

    if threading.current_thread() is threading.main_thread():
        # A slot worker process. (Worker loops in threads of one process, as in the tests,
        # leave the process's settings alone: changing torch's thread pool while another
        # thread computes in it can crash the process.)
        torch.set_num_threads(_thread_budget(n_slots))
        if torch.cuda.device_count() > 1 and n_slots == torch.cuda.device_count():
            torch.cuda.set_device(slot)
    return runner, CACHE


def _execute_claimed(run: Run, runner, cache) -> None:
    """Execute a run this process has claimed (writer lock held)."""
    from pydantic import ValidationError

    from backend.config import ExperimentConfig

    info = run.info()
    if run.cancel_requested() is not None:
        run.update(status="cancelled", finished=now_iso(), error="cancelled before it started")
        run.event("end", status="cancelled", error="cancelled before it started")
        return
    try:
        config = ExperimentConfig(**(info.get("config") or {}))
    except (ValidationError, OceanLabError, TypeError) as exc:
        detail = "; ".join(line.strip() for line in str(exc).strip().splitlines()[:3])
        run.update(status="failed", finished=now_iso(), error_kind="input",
                   error=f"invalid config in {run.path / RUN_FILE}: {detail}")
        run.event("end", status="failed")
        return
    runner.execute(config, RunStore(run.path.parent), run,
                   executor=info.get("executor") or "local", data_cache=cache)


def run_queued(run_dir: Path, executor: str = "local") -> Run:
    """Execute the queued run in ``run_dir`` in this process (``python -m app worker
    RUN_DIR``, a Dask task). Safe from any thread. A run that is not queued (cancelled,
    started elsewhere) is left alone; a config that is not valid ends ``failed``."""
    from backend import runner
    from backend.cache import CACHE

    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise RunError(f"{run_dir}: not a run folder (no {RUN_FILE})")
    run = Run(run_dir)
    if not records.acquire(run.path, wait_s=records.LOCK_WAIT_S):
        return run  # another process executes it
    try:
        if run.info().get("status") != "queued":
            return run
        _dequeue(RunStore(run_dir.parent), run.id)
        if executor != "local" and not run.info().get("executor"):
            run.update(executor=executor)
        _execute_claimed(run, runner, CACHE)
    finally:
        records.release(run.path)
    return run


# ----------------------------------------------------------------------------- cancel

def cancel(run: Run, wait_s: float = CANCEL_WAIT_S) -> bool:
    """Stop a queued or running run; False when it had already ended.

    Writes the cancel request. A queued run that no worker has claimed is recorded
    ``cancelled`` here at once (under its writer lock) and leaves the queue without
    starting; a running run's worker sees the request and records the end itself — this
    waits up to ``wait_s`` seconds for it.
    """
    info = refresh(run)
    if info.get("status") not in ACTIVE:
        return False
    run.request_cancel()
    if records.acquire(run.path, wait_s=0.0):  # no worker executes it
        try:
            status = run.info().get("status")
            if status in ACTIVE:
                run.update(status="cancelled", finished=now_iso(),
                           error="cancelled before it started" if status == "queued"
                           else "cancelled by the user")
                run.event("end", status="cancelled")
        finally:
            records.release(run.path)
        _dequeue(RunStore(run.path.parent), run.id)
        return True
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if refresh(run).get("status") not in ACTIVE:
                break
        except RunError:
            break
        time.sleep(0.1)
    return True


# ----------------------------------------------------------------------------- readers

def is_alive(run: Run) -> bool:
    """Whether a process holds the run's writer lock (executes it) now."""
    return records.lock_state(run.path) == "held"


def mark_if_lost(run: Run) -> bool:
    """Record ``failed`` ("worker lost") for a running run without a live worker; True if it did."""
    try:
        before = run.info().get("status")
        return before in ACTIVE and refresh(run).get("status") == "failed"
    except RunError:
        return False


@dataclass
class ActiveRun:
    """A queued or running run as the pages list it."""

    id: str
    status: str
    model: str
    task: str
    position: int | None
    elapsed_s: float | None
    progress: dict
    executor: str | None


def active_runs(store: RunStore) -> list[ActiveRun]:
    """Every queued and running run of ``store``, whoever launched it: running first (oldest
    first), then queued in queue order."""
    positions = queue_positions(store)
    now = time.time()
    out = []
    for run in store.runs():
        try:
            info = refresh(run)
        except RunError:
            continue
        status = info.get("status")
        if status not in ACTIVE:
            continue
        cfg = info.get("config") or {}
        started = info.get("started_unix") if status == "running" else info.get("queued_unix")
        out.append(ActiveRun(
            id=run.id, status=status, model=str((cfg.get("model") or {}).get("name", "?")),
            task=str((cfg.get("task") or {}).get("name", "")),
            position=positions.get(run.id),
            elapsed_s=(now - float(started)) if isinstance(started, int | float) else None,
            progress=info.get("progress") if isinstance(info.get("progress"), dict) else {},
            executor=info.get("executor")))
    out.sort(key=lambda a: (a.status != "running",
                            a.position if a.position is not None else 10**9,
                            -(a.elapsed_s or 0)))
    return out
