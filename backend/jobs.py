"""Jobs out of the page: each experiment runs in its own worker process.

:func:`submit` writes a run folder with status ``queued`` and the config, then starts
``python -m app worker RUN_DIR`` detached from the caller. The worker (:func:`run_queued`)
executes it and writes progress into the run store, which the dashboard polls: the page
never holds the only copy of a result and stays responsive while a model trains.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from backend.config import ExperimentConfig
from backend.store import Run, RunStore, now_iso

_REPO = Path(__file__).resolve().parent.parent


def submit(config: ExperimentConfig, store: RunStore) -> Run:
    """Queue ``config`` as a new run and start its worker process; returns at once."""
    run = store.create(config.to_dict(), status="queued")
    log = open(run.path / "worker.log", "wb")  # noqa: SIM115 (handed to the child)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "worker", str(run.path)],
        cwd=_REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=env, start_new_session=True,
    )
    log.close()
    run.update(pid=proc.pid)
    return run


def run_queued(run_dir: Path) -> Run:
    """Execute the queued run in ``run_dir`` (the worker process's entry point)."""
    from backend.runner import execute

    run = Run(Path(run_dir))
    info = run.info()
    if info.get("status") != "queued":
        return run
    config = ExperimentConfig(**info["config"])
    return execute(config, RunStore(run.path.parent), run)


def cancel(run: Run) -> bool:
    """Stop a queued or running job; marks it ``cancelled``. False when already finished."""
    info = run.info()
    if info.get("status") not in ("queued", "running"):
        return False
    pid = info.get("pid")
    if pid:
        try:
            os.killpg(os.getpgid(int(pid)), signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    run.update(status="cancelled", finished=now_iso(), error="cancelled by the user")
    return True


def is_alive(run: Run) -> bool:
    """Whether the worker process of a queued/running run still exists.

    A worker that exited stays a zombie (still "alive" to ``os.kill(pid, 0)``) until its
    parent reaps it, so a worker started by this process is reaped first.
    """
    pid = run.info().get("pid")
    if not pid:
        return False
    try:
        done, _ = os.waitpid(int(pid), os.WNOHANG)
        if done:
            return False
    except ChildProcessError:  # not our child (another server, or the CLI): just probe it
        pass
    except OSError:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def mark_if_lost(run: Run) -> bool:
    """Mark a queued/running run whose worker has died as ``failed``; True if it did."""
    info = run.info()
    if info.get("status") in ("queued", "running") and info.get("pid") and not is_alive(run):
        run.update(status="failed", finished=now_iso(), error_kind="internal",
                   error="the worker process ended without finishing the run (killed or crashed; "
                         "see worker.log in the run folder)")
        return True
    return False
