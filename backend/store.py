"""The run store: one folder per run, written atomically, readable without OceanLab.

Layout of ``<runs_dir>/<run_id>/``:

``run.json``
    id, status (queued / running / done / failed / cancelled), the full config, data
    fingerprint, device, package versions, timings, progress, error text when failed.
``metrics.json``
    the scores (see :func:`metrics.score_mapping`), with ``notes`` for null ones.
``prediction.nc``
    the reconstruction over the test period (named like the truth variable) with ``truth``,
    ``obs`` and ``mask`` on the same grid.
``model.safetensors``
    weights of learned models.
``history.csv``
    one row per epoch (epoch, train_loss, val_loss, …).

Every file is written to a temporary name in the same folder and renamed, so another process
(the dashboard) reading while a worker writes sees either the old or the new file, never half.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from data.errors import RunError

STATUSES = ("queued", "running", "done", "failed", "cancelled")
RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
PREDICTION_FILE = "prediction.nc"
WEIGHTS_FILE = "model.safetensors"
HISTORY_FILE = "history.csv"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def _json_load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}: not valid JSON ({exc.msg})") from None


def new_run_id(model: str) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{model}-{secrets.token_hex(2)}"


@dataclass
class Run:
    """A run folder; methods read and write its files atomically."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    # -- run.json -----------------------------------------------------------------------
    def info(self) -> dict:
        return _json_load(self.path / RUN_FILE)

    def update(self, **fields: Any) -> dict:
        """Merge ``fields`` into run.json (read, update, atomic rewrite)."""
        info = self.info() if (self.path / RUN_FILE).exists() else {"id": self.id}
        info.update(fields)
        info["updated"] = now_iso()
        atomic_write_json(self.path / RUN_FILE, info)
        return info

    @property
    def status(self) -> str:
        return self.info().get("status", "unknown")

    # -- results ------------------------------------------------------------------------
    def metrics(self) -> dict:
        p = self.path / METRICS_FILE
        return _json_load(p) if p.exists() else {}

    def write_metrics(self, metrics: dict) -> None:
        atomic_write_json(self.path / METRICS_FILE, metrics)

    def history(self) -> pd.DataFrame:
        p = self.path / HISTORY_FILE
        if not p.exists():
            return pd.DataFrame()
        try:
            return pd.read_csv(p)
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            return pd.DataFrame()

    def write_history(self, history: pd.DataFrame) -> None:
        atomic_write_bytes(self.path / HISTORY_FILE, history.to_csv(index=False).encode())

    def write_prediction(self, ds: xr.Dataset) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".prediction.", suffix=".nc.tmp", dir=self.path)
        os.close(fd)
        try:
            encoding = {v: {"zlib": True, "complevel": 4} for v in ds.data_vars
                        if ds[v].dtype.kind == "f"}
            ds.to_netcdf(tmp, encoding=encoding)
            os.replace(tmp, self.path / PREDICTION_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def prediction(self) -> xr.Dataset:
        p = self.path / PREDICTION_FILE
        if not p.exists():
            raise RunError(f"{p}: missing (run status: {self.status})")
        with xr.open_dataset(p) as ds:
            return ds.load()

    def write_weights(self, tensors: dict) -> None:
        from safetensors.torch import save

        cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        atomic_write_bytes(self.path / WEIGHTS_FILE, save(cpu))

    def weights(self) -> dict:
        from safetensors.torch import load_file

        return load_file(self.path / WEIGHTS_FILE)


class RunStore:
    """All runs under one folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def create(self, config: dict, run_id: str | None = None, status: str = "queued") -> Run:
        """Make a new run folder with a run.json holding ``config`` and ``status``."""
        run_id = run_id or new_run_id(str(config.get("model", {}).get("name", "run")))
        path = self.root / run_id
        path.mkdir(parents=True, exist_ok=False)
        run = Run(path)
        run.update(id=run_id, status=status, config=config, created=now_iso())
        return run

    def get(self, run_id: str) -> Run:
        path = self.root / run_id
        if not (path / RUN_FILE).exists():
            raise RunError(f"no run {run_id!r} in {self.root}")
        return Run(path)

    def runs(self) -> list[Run]:
        """Runs newest first; folders without a readable run.json are skipped."""
        if not self.root.is_dir():
            return []
        found = [Run(p) for p in self.root.iterdir() if (p / RUN_FILE).is_file()]
        return sorted(found, key=lambda r: r.id, reverse=True)

    def table(self) -> pd.DataFrame:
        """One row per run: id, status, task, model, created, duration and scores."""
        rows = []
        for run in self.runs():
            try:
                info = run.info()
                metrics = run.metrics()
            except RunError as exc:
                rows.append({"id": run.id, "status": "unreadable", "error": str(exc)})
                continue
            cfg = info.get("config", {})
            row = {
                "id": run.id,
                "status": info.get("status"),
                "task": cfg.get("task", {}).get("name"),
                "model": cfg.get("model", {}).get("name"),
                "created": info.get("created"),
                "seconds": (info.get("timings") or {}).get("total_s"),
            }
            row.update({k: v for k, v in metrics.items() if not isinstance(v, dict | list)})
            rows.append(row)
        return pd.DataFrame(rows)

    def delete(self, run_id: str) -> None:
        shutil.rmtree(self.get(run_id).path)
