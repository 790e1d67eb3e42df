"""Run one experiment end to end and record it in the run store.

``execute`` is what both the CLI (in its own process) and the dashboard's worker processes
(:mod:`backend.jobs`) call: load data, build the task, fit, predict the test period, score
(the task's scores plus the physics residual of every method), and write every file of the
run folder. A failure is recorded in ``run.json`` and never
touches another run.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import signal
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from backend import paths, resources
from backend.config import ExperimentConfig
from backend.device import choose_device, describe
from backend.liveness import RunCancelled, identity, supervised
from backend.store import Run, RunStore, now_iso
from data.canonical import fingerprint, open_dataset
from oceanlab_errors import ConfigError, OceanLabError
from data.physics import resolve_physics
from data.tasks import Task, TaskContext, get_task
from models import registry

log = logging.getLogger(__name__)


def package_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("torch", "lightning", "numpy", "xarray", "netCDF4", "xrft", "oceanlab"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def resolve_data_path(config: ExperimentConfig) -> Path:
    """The file behind ``config.data.path`` (the built-in OSSE, generated if needed, when empty)."""
    if config.data.path:
        return Path(config.data.path)
    return paths.ensure_builtin_dataset()


@functools.lru_cache(maxsize=4)
def _cached_open(path: str, mtime: float) -> xr.Dataset:
    return open_dataset(path)


def load_dataset(path: str | Path) -> xr.Dataset:
    """Canonical dataset, cached per (path, modification time) within a process."""
    p = Path(path)
    mtime = p.stat().st_mtime if p.exists() else 0.0
    return _cached_open(str(p), mtime)


def build_task(config: ExperimentConfig, path: Path | None = None,
               store: RunStore | None = None) -> Task:
    """The task a config describes, on the data at ``path`` (default: the config's file).

    ``store`` lets a task read a finished run (a forecast initialised from an interpolation
    run's reconstruction); it defaults to the workspace's run store.
    """
    path = path or resolve_data_path(config)
    ds = load_dataset(path)
    store = store or RunStore(paths.runs_dir())

    def run_prediction(run_id: str) -> xr.Dataset:
        run = store.get(run_id)
        status = run.info().get("status")
        if status != "done":
            raise ConfigError(f"run {run_id} is {status}, not done: its prediction cannot be used")
        return run.prediction()

    task_cls = get_task(config.task.name)
    task = task_cls.build(ds, config.data, config.task, label=str(path),
                          context=TaskContext(run_prediction=run_prediction))
    override = config.data.physics.model_dump() if config.data.physics is not None else None
    task.physics, task.physics_note = resolve_physics(ds.attrs, override)
    return task


def add_physics_scores(task: Task, pred: xr.Dataset, scores: dict,
                       diagnostics: xr.Dataset) -> tuple[dict, xr.Dataset]:
    """``scores`` and ``diagnostics`` of ``task.score`` with the physics residual of every
    method added (:meth:`data.tasks.base.Task.physics_scores`): ``physics_residual`` and
    ``physics_residual_truth`` (None with a reason in ``notes`` when not computable) and
    ``physics_residual_map`` in ``diagnostics.nc``."""
    extra, maps = task.physics_scores(pred)
    notes = dict(scores.get("notes") or {})
    notes.update(extra.pop("notes", {}))
    scores = {**{k: v for k, v in scores.items() if k != "notes"}, **extra, "notes": notes}
    if maps.data_vars or maps.attrs:
        diagnostics = diagnostics.copy()
        for name, da in maps.data_vars.items():
            diagnostics[name] = da
        diagnostics.attrs.update(maps.attrs)
    return scores, diagnostics


def _record_end(run: Run, t0: float, timings: dict, **fields) -> None:
    timings["total_s"] = round(time.perf_counter() - t0, 3)
    run.update(finished=now_iso(), timings=timings, **fields)


def execute(config: ExperimentConfig, store: RunStore, run: Run | None = None) -> Run:
    """Run ``config`` and record everything in ``run`` (a new run folder if None).

    Never raises for a failing or stopped experiment: the run ends ``done``, ``failed`` (with
    the error and, for bugs, the traceback in run.json) or ``cancelled`` (SIGTERM or SIGINT,
    see :mod:`backend.liveness`). A worker killed with SIGKILL cannot record anything; its
    heartbeat stops and readers record it as lost. Returns the run.
    """
    run = run or store.create(config.to_dict())
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    with supervised(run) as supervision:
        try:
            run.update(status="running", started=now_iso(), pid=os.getpid(), worker=identity(),
                       versions=package_versions())
            if run.cancel_requested() is not None:
                raise RunCancelled(signal.SIGTERM)
            _execute(config, run, timings, t0)
        except RunCancelled as exc:
            _record_end(run, t0, timings, status="cancelled", error=f"cancelled ({exc} by the worker)")
        except KeyboardInterrupt:
            _record_end(run, t0, timings, status="cancelled", error="cancelled (interrupted, Ctrl-C)")
        except SystemExit as exc:  # a library called sys.exit (Lightning does on Ctrl-C)
            if supervision.signum is not None:
                name = signal.Signals(supervision.signum).name
                _record_end(run, t0, timings, status="cancelled", error=f"cancelled ({name} received)")
            else:
                _record_end(run, t0, timings, status="failed", error_kind="internal",
                            error=f"the worker exited during the run (SystemExit {exc.code!r})",
                            traceback=traceback.format_exc())
        except OceanLabError as exc:
            _record_end(run, t0, timings, status="failed", error=str(exc), error_kind="input")
        except MemoryError:
            _record_end(run, t0, timings, status="failed", error_kind="input",
                        error="out of memory: the run needs more memory than this machine has; "
                              "use a smaller region, period or batch, or lower limits.max_memory_gb "
                              "so that such runs are refused before they start")
        except BaseException as exc:  # a bug, not bad input: keep the traceback for the report
            _record_end(run, t0, timings, status="failed", error_kind="internal",
                        error=f"{type(exc).__name__}: {exc}".strip().splitlines()[0],
                        traceback=traceback.format_exc())
    return run


def _execute(config: ExperimentConfig, run: Run, timings: dict, t0: float) -> None:
    torch.manual_seed(config.train.seed)
    np.random.seed(config.train.seed % 2**32)
    device = choose_device(config.train.device)
    path = resolve_data_path(config)
    run.update(device=describe(device))
    estimate = resources.check_before_loading(config, path)
    run.update(data={"path": str(path), "fingerprint": fingerprint(path)},
               memory={"limit_bytes": resources.limit_bytes(config), "estimate_bytes": estimate})

    tic = time.perf_counter()
    task = build_task(config, path, RunStore(run.path.parent))
    timings["load_s"] = round(time.perf_counter() - tic, 3)

    model_cls = registry.get(config.model.name)
    if not model_cls.supports(task.kind):
        raise ConfigError(f"model {config.model.name!r} does not support the {task.kind} task; "
                          f"models for {task.kind}: {', '.join(registry.available(task.kind))}")
    model = model_cls(config.model, device=device, seed=config.train.seed)
    model.configure(config.train)
    estimate = resources.check_model(config, model, task, str(path))
    run.update(memory={"limit_bytes": resources.limit_bytes(config), "estimate_bytes": estimate})

    rows: list[dict] = []

    def progress(row: dict) -> None:
        rows.append(row)
        run.write_history(pd.DataFrame(rows))
        run.update(progress={k: row[k] for k in ("epoch", "epochs") if k in row})

    tic = time.perf_counter()
    history = model.fit(task, config.train, progress=progress, log_dir=run.path)
    timings["fit_s"] = round(time.perf_counter() - tic, 3)
    if history is None or not len(history):
        history = pd.DataFrame(columns=["epoch", "train_loss", "val_loss"])
    run.write_history(history)

    tic = time.perf_counter()
    test_times = task.sample_times("test")
    rec = model.predict(task, test_times)
    timings["predict_s"] = round(time.perf_counter() - tic, 3)
    pred = task.prediction_dataset(rec, test_times)
    run.write_prediction(pred)
    weights = model.state_dict()
    if weights:
        run.write_weights(weights)

    tic = time.perf_counter()
    scores, diagnostics = task.score(pred)
    scores, diagnostics = add_physics_scores(task, pred, scores, diagnostics)
    timings["score_s"] = round(time.perf_counter() - tic, 3)
    run.write_metrics(scores)
    run.write_diagnostics(diagnostics)
    _record_end(run, t0, timings, status="done",
                periods={k: [str(a.date()), str(b.date())] for k, (a, b) in task.periods.items()})
