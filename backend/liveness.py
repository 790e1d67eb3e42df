"""Honest run status: the worker's side (signals, heartbeat) and the readers' side.

The process that executes a run (a dashboard worker or ``python -m app train``) wraps the
work in :func:`supervised`:

- SIGTERM (what ``timeout``, ``kill`` and cluster schedulers send) and SIGINT (Ctrl-C) raise
  :class:`RunCancelled` in the main thread, so the run ends ``cancelled`` whatever it was
  doing (Lightning re-raises it after its own clean-up instead of turning it into a
  ``SystemExit``);
- a daemon thread writes ``heartbeat.json`` into the run every :data:`HEARTBEAT_S` seconds and
  turns a ``cancel.request`` file written by another process into a SIGTERM to itself.

Readers call :func:`refresh`: a ``queued``/``running`` run whose worker process is gone (same
host: the recorded pid no longer runs, or now belongs to another process started at another
time) or whose heartbeat is older than :func:`stale_after_s` (any host) is recorded as
``failed`` with the reason "worker lost". SIGKILL cannot be caught; this is what catches it.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import psutil

from backend.store import ACTIVE, Run, now_iso

#: Seconds between two heartbeats of a worker.
HEARTBEAT_S = 5.0
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
    """Why the active run ``info`` has no live worker, or None when it may still be alive."""
    worker = _worker_of(info)
    if worker is not None and worker.get("host") == socket.gethostname():
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
    """run.json of ``run``, recording ``failed`` ("worker lost") for an active run whose
    worker is gone. Raises RunError when run.json is unreadable."""
    info = run.info()
    if info.get("status") not in ACTIVE:
        return info
    reason = lost_reason(run, info)
    if reason is None:
        return info
    fresh = run.info()  # the worker may have finished between the two reads
    if fresh.get("status") not in ACTIVE:
        return fresh
    return run.update(status="failed", finished=now_iso(), error_kind="internal",
                      error=f"worker lost: {reason}")


# ------------------------------------------------------------------------ worker side


class _Heartbeat(threading.Thread):
    def __init__(self, run: Run, me: dict):
        super().__init__(name=f"heartbeat-{run.id}", daemon=True)
        self.run_ = run
        self.me = me
        self.stop = threading.Event()
        self.cancel_sent = False

    def beat(self, check_cancel: bool = True) -> None:
        try:
            self.run_.write_heartbeat({**self.me, "unix": time.time(), "time": now_iso()})
        except OSError:
            pass  # a full or read-only disk must not kill the run; readers will see it stale
        if check_cancel and not self.cancel_sent and self.run_.cancel_requested() is not None:
            self.cancel_sent = True
            os.kill(os.getpid(), signal.SIGTERM)

    def run(self) -> None:
        while not self.stop.is_set():
            self.beat()
            self.stop.wait(HEARTBEAT_S)


class Supervision:
    """State of :func:`supervised`: which stop signal arrived, if any."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def handler(self, signum, frame) -> None:  # noqa: ARG002 (signal handler signature)
        if self.signum is not None:
            return  # the first signal is already ending the run; do not interrupt its record
        self.signum = signum
        raise RunCancelled(signum)


@contextmanager
def supervised(run: Run) -> Iterator[Supervision]:
    """Signal handlers and a heartbeat thread around the execution of ``run``.

    Signal handlers can only be installed from the main thread; elsewhere (a test calling
    the runner from a thread) only the heartbeat runs.
    """
    state = Supervision()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, state.handler)
    beat = _Heartbeat(run, identity())
    beat.beat(check_cancel=False)
    beat.start()
    try:
        yield state
    finally:
        beat.stop.set()
        beat.join(timeout=2 * HEARTBEAT_S)
        for sig, old in previous.items():
            signal.signal(sig, old)

