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
from backend import record as records
from backend.cache import DataCache, task_key
from backend.config import ExperimentConfig
from backend.device import choose_device, describe
from backend.liveness import CancelRequested, RunCancelled, identity, supervised
from backend.reuse import code_version, data_fingerprint, reuse_key
from backend.store import Run, RunStore, now_iso
from data.canonical import open_dataset
from data.physics import resolve_physics
from data.regrid import apply_mdt, data_provenance
from data.tasks import Task, TaskContext, get_task
from models import registry
from oceanlab_errors import ConfigError, OceanLabError, RunError

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
def _cached_open(path: str, mtime: float, region: tuple | None = None,
                 period: tuple | None = None, regrid: str = "linear",
                 regrid_step_deg: float | None = None) -> xr.Dataset:
    return open_dataset(path, region=region, period=period, regrid=regrid,
                        regrid_step_deg=regrid_step_deg)


def load_dataset(path: str | Path, region=None, period=None, regrid: str = "linear",
                 regrid_step_deg: float | None = None) -> xr.Dataset:
    """Canonical dataset cut to ``region`` / ``period`` (``data.region``, ``data.period``:
    cut lazily before anything loads), cached per (path, modification time, cut) within a
    process."""
    p = Path(path)
    mtime = p.stat().st_mtime if p.exists() else 0.0
    return _cached_open(str(p), mtime, tuple(region) if region is not None else None,
                        tuple(period) if period is not None else None, regrid, regrid_step_deg)


def build_task(config: ExperimentConfig, path: Path | None = None,
               store: RunStore | None = None) -> Task:
    """The task a config describes, on the data at ``path`` (default: the config's file).

    ``store`` lets a task read a finished run (a forecast initialised from an interpolation
    run's reconstruction); it defaults to the workspace's run store.
    """
    path = path or resolve_data_path(config)
    ds = load_dataset(path, config.data.region, config.data.period, config.data.regrid,
                      config.data.regrid_step_deg)
    obs = config.data.obs
    ds = apply_mdt(ds, config.data.var, config.data.mdt, str(path),
                   also=[obs] if isinstance(obs, str) else list(obs or []))
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


def _record_end(run: Run, t0: float, timings: dict, supervision=None, **fields) -> None:
    if supervision is not None:
        supervision.ending()  # no cancel from now on: the end is being recorded
    timings["total_s"] = round(time.perf_counter() - t0, 3)
    run.update(finished=now_iso(), finished_unix=time.time(), timings=timings, **fields)
    run.event("end", status=fields.get("status"), error=fields.get("error"),
              seconds=timings["total_s"])


class Reporter:
    """The progress function given to a model: each row becomes an event of the run's
    ``events.jsonl``; the latest state goes into ``run.json`` at most every
    :attr:`min_interval_s` seconds (every epoch and every stage change at once), with the
    time left estimated from the rate of the current stage."""

    min_interval_s = 0.5

    def __init__(self, run: Run):
        self.run = run
        self.rows: list[dict] = []
        #: The latest epoch's fields, kept in the progress of later stages.
        self.epoch_fields: dict = {}
        self.stage: str | None = None
        self.stage_started = time.time()
        self.last_write = 0.0

    def stage_begins(self, stage: str, **fields) -> None:
        self.stage = stage
        self.stage_started = time.time()
        self.run.event("stage", stage=stage, **fields)
        self.write({**self.epoch_fields, "stage": stage, **fields}, force=True)

    def write(self, progress: dict, force: bool = False) -> None:
        now = time.time()
        if not force and now - self.last_write < self.min_interval_s:
            return
        self.last_write = now
        self.run.update(progress={**progress, "stage_started": self.stage_started})

    def __call__(self, row: dict) -> None:
        row = {k: (float(v) if isinstance(v, np.floating) else v) for k, v in row.items()}
        if "epoch" in row:  # an epoch of training: history.csv and the loss curve
            self.rows.append(row)
            self.run.write_history(pd.DataFrame(self.rows))
            self.run.event("epoch", **row)
            if self.stage != "fit":
                self.stage, self.stage_started = "fit", time.time()
            progress = {k: row[k] for k in ("epoch", "epochs", "train_loss", "val_loss")
                        if k in row}
            self.epoch_fields = dict(progress)
            progress["stage"] = "fit"
            eta = _eta(self.stage_started, row.get("epoch"), row.get("epochs"))
            self.write({**progress, "eta_s": eta}, force=True)
            return
        stage = str(row.get("stage") or self.stage or "work")
        if stage != self.stage:
            self.stage, self.stage_started = stage, time.time()
            force = True
        else:
            force = row.get("done") == row.get("total")
        self.run.event("progress", **row)
        eta = _eta(self.stage_started, row.get("done"), row.get("total"))
        self.write({**self.epoch_fields, **row, "stage": stage, "eta_s": eta}, force=force)


def _eta(started: float, done, total) -> float | None:
    """Seconds left at the rate since ``started`` (None before any progress)."""
    try:
        done, total = float(done), float(total)
    except (TypeError, ValueError):
        return None
    if done <= 0 or total <= 0:
        return None
    elapsed = time.time() - started
    return round(max(0.0, elapsed / done * (total - done)), 1)


def execute(config: ExperimentConfig, store: RunStore, run: Run | None = None,
            executor: str = "local", data_cache: DataCache | None = None) -> Run:
    """Run ``config`` and record everything in ``run`` (a new run folder if None).

    This process is the run's one writer: it holds the run's writer lock from start to end
    (:mod:`backend.record`). Never raises for a failing or stopped experiment: the run ends
    ``done``, ``failed`` (with the error and, for bugs, the traceback in run.json) or
    ``cancelled`` (a cancel request, SIGTERM or SIGINT, see :mod:`backend.liveness`). A
    worker killed with SIGKILL cannot record anything; its lock is dropped and readers
    record it as lost. ``data_cache`` keeps built tasks between runs of a long-lived worker.
    Returns the run.
    """
    run = run or store.create(config.to_dict(), status="queued")
    if not records.acquire(run.path, wait_s=records.LOCK_WAIT_S):
        raise RunError(f"run {run.id} is already being executed by another process")
    try:
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        with supervised(run) as supervision:
            try:
                run.update(status="running", started=now_iso(), started_unix=time.time(),
                           pid=os.getpid(), worker=identity(), versions=package_versions(),
                           executor=executor, code_version=code_version(),
                           progress={"stage": "start"})
                run.event("start", executor=executor, worker=identity())
                if run.cancel_requested() is not None:
                    raise RunCancelled(signal.SIGTERM)
                end = _execute(config, run, timings, data_cache)
                _record_end(run, t0, timings, supervision, status="done", **end)
            except RunCancelled as exc:
                why = ("cancelled by the user" if isinstance(exc, CancelRequested)
                       else f"cancelled ({exc} by the worker)")
                _record_end(run, t0, timings, supervision, status="cancelled", error=why)
            except KeyboardInterrupt:
                _record_end(run, t0, timings, supervision, status="cancelled",
                            error="cancelled (interrupted, Ctrl-C)")
            except SystemExit as exc:  # a library called sys.exit (Lightning does on Ctrl-C)
                if supervision.signum is not None:
                    name = signal.Signals(supervision.signum).name
                    _record_end(run, t0, timings, supervision, status="cancelled",
                                error=f"cancelled ({name} received)")
                else:
                    _record_end(run, t0, timings, supervision, status="failed",
                                error_kind="internal",
                                error=f"the worker exited during the run (SystemExit {exc.code!r})",
                                traceback=traceback.format_exc())
            except OceanLabError as exc:
                _record_end(run, t0, timings, supervision, status="failed", error=str(exc),
                            error_kind="input")
            except MemoryError:
                _record_end(run, t0, timings, supervision, status="failed", error_kind="input",
                            error="out of memory: the run needs more memory than this machine "
                                  "has; use a smaller region, period or batch, or lower "
                                  "limits.max_memory_gb so that such runs are refused before "
                                  "they start")
            except BaseException as exc:  # noqa: BLE001 (a bug, not bad input: keep the traceback)
                _record_end(run, t0, timings, supervision, status="failed", error_kind="internal",
                            error=f"{type(exc).__name__}: {exc}".strip().splitlines()[0],
                            traceback=traceback.format_exc())
    finally:
        records.release(run.path)
    return run


def _execute(config: ExperimentConfig, run: Run, timings: dict,
             data_cache: DataCache | None) -> dict:
    """Everything of a run up to its end; returns the fields of the ``done`` record."""
    torch.manual_seed(config.train.seed)
    np.random.seed(config.train.seed % 2**32)
    reporter = Reporter(run)
    reporter.stage_begins("load")
    device = choose_device(config.train.device)
    path = resolve_data_path(config)
    run.update(device=describe(device))
    estimate = resources.check_before_loading(config, path)
    fp = data_fingerprint(path)
    cut = {k: getattr(config.data, k) for k in ("region", "period")
           if getattr(config.data, k) is not None}
    run.update(data={"path": str(path), "fingerprint": fp, **cut},
               reuse_key=reuse_key(config.to_dict(), fp),
               memory={"limit_bytes": resources.limit_bytes(config), "estimate_bytes": estimate})

    tic = time.perf_counter()
    store = RunStore(run.path.parent)
    if data_cache is not None:
        key = task_key(fp, config.to_dict()["data"], config.to_dict()["task"])
        task, hit = data_cache.get_or_build(key, lambda: build_task(config, path, store),
                                            resources.limit_bytes(config))
    else:
        task, hit = build_task(config, path, store), False
    timings["load_s"] = round(time.perf_counter() - tic, 3)
    observations = getattr(task, "observations", None)
    if observations:  # along-track files: missions used and held out, samples per mission
        run.update(data={**(run.info().get("data") or {}), "observations": observations})
    provenance = data_provenance(getattr(task, "truth", None))
    if provenance:  # regridded curvilinear file, ADT turned into anomalies
        run.modify(lambda info: info.setdefault("data", {}).update(provenance))
    run.update(cache={"data": "hit" if hit else ("miss" if data_cache is not None else "off")})

    model_cls = registry.get(config.model.name)
    if not model_cls.supports(task.kind):
        raise ConfigError(f"model {config.model.name!r} does not support the {task.kind} task; "
                          f"models for {task.kind}: {', '.join(registry.available(task.kind))}")
    model = model_cls(config.model, device=device, seed=config.train.seed)
    model.configure(config.train)
    estimate = resources.check_model(config, model, task, str(path))
    run.update(memory={"limit_bytes": resources.limit_bytes(config), "estimate_bytes": estimate})
    model.progress = reporter

    reporter.stage_begins("fit")
    tic = time.perf_counter()
    history = model.fit(task, config.train, progress=reporter, log_dir=run.path)
    timings["fit_s"] = round(time.perf_counter() - tic, 3)
    if history is None or not len(history):
        history = pd.DataFrame(columns=["epoch", "train_loss", "val_loss"])
    run.write_history(history)

    reporter.stage_begins("predict")
    tic = time.perf_counter()
    test_times = task.sample_times("test")
    rec = model.predict(task, test_times)
    timings["predict_s"] = round(time.perf_counter() - tic, 3)
    pred = task.prediction_dataset(rec, test_times)
    run.write_prediction(pred)
    weights = model.state_dict()
    if weights:
        run.write_weights(weights)
    info = getattr(model, "execution_info", None)
    run.update(execution=info() if callable(info) else None)

    reporter.stage_begins("score")
    tic = time.perf_counter()
    scores, diagnostics = task.score(pred)
    scores, diagnostics = add_physics_scores(task, pred, scores, diagnostics)
    timings["score_s"] = round(time.perf_counter() - tic, 3)
    run.write_metrics(scores)
    run.write_diagnostics(diagnostics)
    return {"periods": {k: [str(a.date()), str(b.date())] for k, (a, b) in task.periods.items()},
            "progress": {**{k: v for k, v in (run.info().get("progress") or {}).items()
                            if k in ("epoch", "epochs", "train_loss", "val_loss")},
                         "stage": "done", "done": 1, "total": 1, "eta_s": 0}}
