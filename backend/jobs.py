"""Jobs out of the page: each experiment runs in its own worker process.

:func:`submit` writes a run folder with status ``queued`` and the config, then starts
``python -m app worker RUN_DIR`` detached from the caller. The worker (:func:`run_queued`)
executes it and writes progress into the run store, which the dashboard polls: the page
never holds the only copy of a result and stays responsive while a model trains.

Stopping a run is a request, not a second writer: :func:`cancel` writes ``cancel.request``
into the run (the worker's heartbeat thread turns it into a SIGTERM to itself) and signals
the worker directly only after checking that the recorded pid still belongs to the process
that started the run (:func:`backend.liveness.process_matches`). Only when no such worker
exists does :func:`cancel` record the end of the run itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from backend.config import ExperimentConfig
from backend.liveness import identity, process_matches, refresh
from backend.store import ACTIVE, RUN_FILE, Run, RunStore, now_iso
from oceanlab_errors import OceanLabError, RunError

_REPO = Path(__file__).resolve().parent.parent
#: Seconds :func:`cancel` waits for a signalled worker to record its end.
CANCEL_WAIT_S = 10.0


def submit(config: ExperimentConfig, store: RunStore) -> Run:
    """Queue ``config`` as a new run and start its worker process; returns at once."""
    run = store.create(config.to_dict(), status="queued")
    try:
        with open(run.path / "worker.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "app", "worker", str(run.path)],
                cwd=_REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
    except OSError as exc:
        run.update(status="failed", finished=now_iso(), error_kind="internal",
                   error=f"the worker process could not be started ({exc})")
        return run
    run.update(pid=proc.pid, worker=identity(proc.pid))
    return run


def run_queued(run_dir: Path) -> Run:
    """Execute the queued run in ``run_dir`` (the worker process's entry point).

    A run.json whose config is not valid ends ``failed`` with the reason (never stays
    ``queued``); a run that was cancelled while queued ends ``cancelled`` without starting.
    """
    from backend.runner import execute

    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise RunError(f"{run_dir}: not a run folder (no {RUN_FILE})")
    run = Run(run_dir)
    info = run.info()
    if info.get("status") != "queued":
        return run  # cancelled while queued, or started twice: nothing to do
    if run.cancel_requested() is not None:
        run.update(status="cancelled", finished=now_iso(), error="cancelled before it started")
        return run
    try:
        config = ExperimentConfig(**(info.get("config") or {}))
    except (ValidationError, OceanLabError, TypeError) as exc:
        first = str(exc).strip().splitlines()
        detail = "; ".join(line.strip() for line in first[:3])
        run.update(status="failed", finished=now_iso(), error_kind="input",
                   error=f"invalid config in {run.path / RUN_FILE}: {detail}")
        return run
    return execute(config, RunStore(run.path.parent), run)


def cancel(run: Run, wait_s: float = CANCEL_WAIT_S) -> bool:
    """Stop a queued or running job; False when it had already ended.

    Writes the cancel request, signals the worker (SIGTERM, the worker records
    ``cancelled`` itself) only when the recorded pid is provably that worker, and records
    ``cancelled`` here only when no live worker is left to do it.
    """
    info = run.info()
    if info.get("status") not in ACTIVE:
        return False
    run.request_cancel()
    worker = info.get("worker")
    if process_matches(worker):
        try:
            os.kill(int(worker["pid"]), signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and process_matches(worker):
            if run.info().get("status") not in ACTIVE:
                return True
            time.sleep(0.1)
    if run.info().get("status") in ACTIVE and not process_matches(worker):
        run.update(status="cancelled", finished=now_iso(), error="cancelled by the user")
    return True


def is_alive(run: Run) -> bool:
    """Whether the worker process recorded in a run still runs (start time checked)."""
    try:
        return process_matches(run.info().get("worker"))
    except RunError:
        return False


def mark_if_lost(run: Run) -> bool:
    """Record ``failed`` ("worker lost") for an active run without a live worker; True if it did."""
    try:
        before = run.info().get("status")
        return before in ACTIVE and refresh(run).get("status") == "failed"
    except RunError:
        return False
