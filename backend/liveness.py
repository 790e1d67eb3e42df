"""Honest run status: the worker's side (signals, heartbeat, cancel) and the readers' side.

The process that executes a run (a slot worker, ``python -m app train``, a Dask worker)
holds the run's writer lock (:mod:`backend.record`) and wraps the work in :func:`supervised`:

- SIGTERM (what ``timeout``, ``kill`` and cluster schedulers send) and SIGINT (Ctrl-C) raise
  :class:`RunCancelled` in the main thread, so the run ends ``cancelled`` whatever it was
  doing (Lightning re-raises it after its own clean-up instead of turning it into a
  ``SystemExit``);
- a daemon thread writes ``heartbeat.json`` into the run every :data:`HEARTBEAT_S` seconds and
  turns a ``cancel.request`` file written by another process into :class:`CancelRequested`
  raised in the thread executing the run (main thread or not).

Readers call :func:`refresh`: a ``running`` run whose writer lock is free (its process is
gone: the system drops the lock of a dead process), or, where locks cannot tell, whose
recorded process is gone or whose heartbeat is older than :func:`stale_after_s`, is recorded
as ``failed`` with the reason "worker lost". SIGKILL cannot be caught; this is what catches it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import psutil

from backend import record as records
from backend.store import Run, now_iso

#: Seconds between two heartbeats of a worker.
HEARTBEAT_S = 5.0
#: Seconds between two looks of a worker for a cancel request.
CANCEL_POLL_S = 0.25
#: Tolerance when comparing a process's start time with the recorded one.
_START_TOLERANCE_S = 0.5


class RunCancelled(BaseException):
    """Raised in the worker's main thread by SIGTERM or SIGINT.

    A BaseException, like KeyboardInterrupt, so that ``except Exception`` in library code does
    not swallow it.
    """

    def __init__(self, signum: int):
        self.signum = signum
        self.signame = signal.Signals(signum).name
        super().__init__(f"{self.signame} received")


def stale_after_s() -> float:
    """Age (s) after which a heartbeat counts as lost (``OCEANLAB_STALE_S``, default 60)."""
    try:
        return max(1.0, float(os.environ.get("OCEANLAB_STALE_S", "60")))
    except ValueError:
        return 60.0


def identity(pid: int | None = None) -> dict:
    """Who a process is: pid, start time (so a reused pid is told apart) and host."""
    pid = os.getpid() if pid is None else int(pid)
    try:
        started = psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        started = None
    return {"pid": pid, "started": started, "host": socket.gethostname()}


def _reap(pid: int) -> None:
    """Collect a finished child of this process so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


def process_matches(worker: dict | None) -> bool:
    """True when the process recorded in ``worker`` still runs on this host.

    The recorded start time must match the running process's, so a pid reused by another
    program never counts as the worker (and is never signalled).
    """
    if not isinstance(worker, dict) or not worker.get("pid"):
        return False
    try:
        pid = int(worker["pid"])
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    _reap(pid)
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        started = proc.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return worker.get("started") is None
    recorded = worker.get("started")
    if recorded is None:
        return True
    try:
        return abs(started - float(recorded)) < _START_TOLERANCE_S
    except (TypeError, ValueError):
        return False


def _worker_of(info: dict) -> dict | None:
    worker = info.get("worker")
    if isinstance(worker, dict):
        return worker
    if info.get("pid"):  # records written before the worker identity existed
        return {"pid": info["pid"], "started": None, "host": socket.gethostname()}
    return None


def _age_s(text: object) -> float | None:
    try:
        stamp = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return time.time() - stamp.timestamp()


def lost_reason(run: Run, info: dict) -> str | None:
    """Why the active run ``info`` has no live worker, or None when it may still be alive.

    A queued run waits for a slot worker and is never lost. A running run is lost when its
    writer lock is free (the executing process holds it to the end; the system drops the
    lock of a dead process, SIGKILL included); where locks say nothing (an older run folder,
    a filesystem without locks) the recorded process on this host, else the heartbeat's age
    decides.
    """
    status = info.get("status")
    if status == "queued" and isinstance(info.get("worker"), dict):
        # a run queued by an older OceanLab, which started one process per run
        worker = info["worker"]
        if worker.get("host") == socket.gethostname() and not process_matches(worker):
            return f"its process (pid {worker.get('pid')}) is gone"
        return None
    if status != "running":
        return None
    state = records.lock_state(run.path)
    if state == "held":
        return None
    worker = _worker_of(info)
    same_host = worker is not None and worker.get("host") == socket.gethostname()
    if state == "free" and (same_host or worker is None):
        pid = f" (pid {worker.get('pid')})" if worker else ""
        return f"its process{pid} is gone"
    if state == "unknown" and same_host:
        if process_matches(worker):
            return None
        return f"its process (pid {worker.get('pid')}) is gone"
    beat = run.heartbeat()
    last = None
    if beat is not None:
        try:
            last = time.time() - float(beat.get("unix"))
        except (TypeError, ValueError):
            last = None
    if last is None:
        last = _age_s(info.get("updated") or info.get("created"))
    if last is not None and last > stale_after_s():
        where = f" on {worker.get('host')}" if worker else ""
        return f"no heartbeat from its worker{where} for {last:.0f} s"
    return None


def refresh(run: Run) -> dict:
    """run.json of ``run``, recording ``failed`` ("worker lost") for a running run whose
    worker is gone. Raises RunError when run.json is unreadable.

    The record is written only with the run's writer lock, which a live worker never
    gives up: a reader can take it only from a dead one.
    """
    info = run.info()
    if info.get("status") not in ("queued", "running"):
        return info
    reason = lost_reason(run, info)
    if reason is None:
        return info
    if not records.acquire(run.path, wait_s=0.0):
        return run.info()  # a live process holds it after all (it just started)
    try:
        fresh = run.info()  # the worker may have finished between the two reads
        if fresh.get("status") != info.get("status"):
            return fresh
        record = run.update(status="failed", finished=now_iso(), error_kind="internal",
                            error=f"worker lost: {reason}")
        run.event("end", status="failed", error=record["error"])
        return record
    finally:
        records.release(run.path)


# ------------------------------------------------------------------------ worker side


class CancelRequested(RunCancelled):
    """Raised in the thread executing a run when a ``cancel.request`` appears (by
    :class:`_Watcher`, through ``PyThreadState_SetAsyncExc``: it works in any thread, so a
    run in a Dask worker's thread is cancelled like one in a process's main thread)."""

    def __init__(self) -> None:
        BaseException.__init__(self, "cancel requested")
        self.signum = signal.SIGTERM
        self.signame = "cancel request"


def _raise_in(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Raise ``exc_type`` in the thread ``thread_id`` at its next bytecode (None clears a
    pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None)


class _Watcher(threading.Thread):
    """Beside a run: writes the heartbeat every :data:`HEARTBEAT_S` seconds and polls the
    run's cancel request every :data:`CANCEL_POLL_S` seconds; a request raises
    :class:`CancelRequested` in the thread executing the run, once, while it executes."""

    def __init__(self, run: Run, me: dict, target: int):
        super().__init__(name=f"watch-{run.id}", daemon=True)
        self.run_ = run
        self.me = me
        self.target = target
        self.stop = threading.Event()
        self.guard = threading.Lock()
        self.armed = True
        self.cancel_sent = False

    def beat(self) -> None:
        try:
            self.run_.write_heartbeat({**self.me, "unix": time.time(), "time": now_iso()})
        except OSError:
            pass  # a full or read-only disk must not kill the run; readers will see it stale

    def check_cancel(self) -> None:
        if self.cancel_sent or self.run_.cancel_requested() is None:
            return
        with self.guard:
            if self.armed:
                self.cancel_sent = True
                _raise_in(self.target, CancelRequested)

    def disarm(self) -> None:
        """No cancel from now on (the run is recording its end); clears one in flight."""
        with self.guard:
            self.armed = False
            if self.cancel_sent:
                _raise_in(self.target, None)

    def run(self) -> None:
        next_beat = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_beat:
                self.beat()
                next_beat = now + HEARTBEAT_S
            self.check_cancel()
            self.stop.wait(CANCEL_POLL_S)


class Supervision:
    """State of :func:`supervised`: which stop signal arrived, if any; :meth:`ending`
    stops cancellation while the run records its end."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.watcher: _Watcher | None = None
        self.ended = False

    def handler(self, signum, frame) -> None:
        if self.signum is not None or self.ended:
            return  # the first signal is already ending the run; do not interrupt its record
        self.signum = signum
        raise RunCancelled(signum)

    def ending(self) -> None:
        self.ended = True
        if self.watcher is not None:
            self.watcher.disarm()


@contextmanager
def supervised(run: Run) -> Iterator[Supervision]:
    """Signal handlers, a heartbeat and a cancel watcher around the execution of ``run``.

    Signal handlers can only be installed from the main thread; elsewhere (a Dask worker's
    thread, a test) the watcher alone stops the run on a cancel request.
    """
    state = Supervision()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, state.handler)
    watcher = _Watcher(run, identity(), threading.get_ident())
    state.watcher = watcher
    watcher.beat()
    watcher.start()
    try:
        yield state
    finally:
        state.ending()
        watcher.stop.set()
        watcher.join(timeout=2 * HEARTBEAT_S)
        for sig, old in previous.items():
            signal.signal(sig, old)
