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
``diagnostics.nc``
    what the pages draw, computed once by the task's scoring (RMSE over time, the PSD
    score, per-lead curves of a forecast, …).
``model.safetensors``
    weights of learned models.
``lightning/metrics.csv``, ``tensorboard/``, ``checkpoints/best.ckpt``
    Lightning's CSV and TensorBoard logs (``tensorboard --logdir workspace/runs``) and the
    best checkpoint on the validation loss, for learned models.
``history.csv``
    one row per epoch (epoch, train_loss, val_loss, …).
``events.jsonl``
    one JSON object per line, appended as the run goes: its stages, each epoch, progress
    steps of methods without epochs, the end (see :mod:`backend.record`).
``heartbeat.json``
    written every few seconds by the process executing the run (pid, host, time); readers
    use it and the recorded worker identity to tell a live run from a lost one.
``writer.lock``
    the run's writer lock: only the process holding it writes ``run.json``
    (:mod:`backend.record`); the process executing the run holds it to the end.
``cancel.request``
    written by another process to ask the worker to stop; the worker polls it.

Every file is written to a temporary name in the same folder and renamed, so another process
(the dashboard) reading while a worker writes sees either the old or the new file, never half.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend import record as records
from backend.record import RunRecord, append_event, parse_record, read_events
from oceanlab_errors import RunError

if TYPE_CHECKING:  # imported where used: a slot worker claims runs before loading them
    import pandas as pd
    import xarray as xr

STATUSES = ("queued", "running", "done", "failed", "cancelled")
RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
PREDICTION_FILE = "prediction.nc"
WEIGHTS_FILE = "model.safetensors"
HISTORY_FILE = "history.csv"
DIAGNOSTICS_FILE = "diagnostics.nc"
HEARTBEAT_FILE = "heartbeat.json"
CANCEL_FILE = "cancel.request"
ACTIVE = ("queued", "running")
#: Run ids: letters, digits, dot, dash and underscore only (no path separators, no "..").
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")


def check_run_id(run_id: object) -> str:
    """``run_id`` if it is a valid run id, else RunError (one line, no filesystem access)."""
    text = str(run_id) if run_id is not None else ""
    if not RUN_ID_PATTERN.fullmatch(text) or set(text) <= {"."}:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise RunError(f"invalid run id {shown!r}: use only letters, digits, '.', '_' and '-'")
    return text


#: Longest user-given run name and tag (characters).
NAME_MAX = 80
TAG_MAX = 32
#: A tag: letters, digits, spaces and ``. _ + - :`` (no comma: tags are listed with commas).
TAG_PATTERN = re.compile(r"[\w.+:-](?:[\w .+:-]*[\w.+:-])?")


def check_name(name: object) -> str | None:
    """A user-given run name, stripped; None for an empty one (no name). RunError for a
    name that is not text, is longer than :data:`NAME_MAX` or holds control characters."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise RunError(f"a run name must be text, got {type(name).__name__}")
    name = " ".join(name.split())  # tabs and line breaks become single spaces
    if not name.isprintable():
        raise RunError(f"a run name may not hold control characters: {name!r}")
    if len(name) > NAME_MAX:
        raise RunError(f"a run name has at most {NAME_MAX} characters (got {len(name)})")
    return name or None


def check_tag(tag: object) -> str:
    """A tag, stripped: 1 to :data:`TAG_MAX` letters, digits, spaces or ``. _ + - :``."""
    if not isinstance(tag, str):
        raise RunError(f"a tag must be text, got {type(tag).__name__}")
    tag = " ".join(tag.split())
    if not tag or len(tag) > TAG_MAX or not TAG_PATTERN.fullmatch(tag):
        raise RunError(f"invalid tag {tag!r}: 1 to {TAG_MAX} letters, digits, spaces or "
                       ". _ + - : (no comma)")
    return tag


def _file_mode() -> int:
    """Mode of new run files: what the umask allows, and always readable by the group."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o666 & ~umask) | 0o640


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _file_mode())  # mkstemp creates 0600; run files are for the group too
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
    """The JSON object in ``path``; RunError (one line) for anything else on disk."""
    try:
        content = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except UnicodeDecodeError:
        raise RunError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise RunError(f"{path}: JSON nested too deeply") from None
    except OSError as exc:
        raise RunError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(content, dict):
        raise RunError(f"{path}: expected a JSON object, found {type(content).__name__}")
    return content


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
        """run.json as a dict; RunError when it is missing or not a run record."""
        info = _json_load(self.path / RUN_FILE)
        for key in ("config", "timings", "progress", "data", "worker"):
            if info.get(key) is not None and not isinstance(info[key], dict):
                raise RunError(f"{self.path / RUN_FILE}: {key!r} is a "
                               f"{type(info[key]).__name__}, expected an object")
        for key in ("model", "task", "data", "train"):
            section = (info.get("config") or {}).get(key)
            if section is not None and not isinstance(section, dict):
                raise RunError(f"{self.path / RUN_FILE}: config.{key} is a "
                               f"{type(section).__name__}, expected an object")
        if not isinstance(info.get("status", ""), str):
            raise RunError(f"{self.path / RUN_FILE}: status is not a string")
        return info

    def record(self) -> RunRecord:
        """run.json as the typed :class:`backend.record.RunRecord`; RunError when it is
        missing or not a run record."""
        return parse_record(self.info(), self.path / RUN_FILE)

    def update(self, **fields: Any) -> dict:
        """Merge ``fields`` into run.json (read, update, check, atomic rewrite) as its one
        writer: under the run's writer lock, which the executing process holds for the
        whole run (:mod:`backend.record`); RunError when another live process holds it."""
        return self.modify(lambda info: info.update(fields))

    def modify(self, change) -> dict:
        """Apply ``change(info)`` (a function editing the dict in place) to run.json under
        the writer lock, check the result is a run record, and write it atomically."""
        with records.writer(self.path):
            info = self.info() if (self.path / RUN_FILE).exists() else {"id": self.id}
            change(info)
            info["updated"] = now_iso()
            parse_record(info, self.path / RUN_FILE)  # never write a record readers refuse
            atomic_write_json(self.path / RUN_FILE, info)
        return info

    # -- events ---------------------------------------------------------------------------
    def event(self, kind: str, **fields: Any) -> None:
        """Append one event (``{"kind", "time", "unix", …}``) to ``events.jsonl``."""
        import time as _time

        append_event(self.path, {"kind": kind, "time": now_iso(), "unix": round(_time.time(), 3),
                                 **fields})

    def events(self, since: int = 0) -> list[dict]:
        return read_events(self.path, since)

    @property
    def status(self) -> str:
        return self.info().get("status", "unknown")

    # -- name and tags ----------------------------------------------------------------------
    def label(self, *, name: Any = ..., add: tuple | list = (), remove: tuple | list = (),
              tags: list | None = None) -> dict:
        """Rename the run (``name``; None or "" removes the name) and change its tags
        (``add``/``remove``, or the whole list ``tags``) in run.json; returns the new record.
        Nothing else is touched. RunError for an invalid name or tag, or while the run is
        executing (its worker holds the writer lock: label it when it has ended)."""
        new_name = check_name(name) if name is not ... else ...
        added = [check_tag(t) for t in add]
        removed = {check_tag(t) for t in remove}
        whole = None if tags is None else [check_tag(t) for t in tags]

        def change(info: dict) -> None:
            if new_name is not ...:
                if new_name is None:
                    info.pop("name", None)
                else:
                    info["name"] = new_name
            current = whole if whole is not None else [
                t for t in info.get("tags") or [] if isinstance(t, str)]
            out: list[str] = []
            for t in [*current, *added]:
                if t not in removed and t not in out:
                    out.append(t)
            info["tags"] = out

        return self.modify(change)

    # -- results ------------------------------------------------------------------------
    def metrics(self) -> dict:
        p = self.path / METRICS_FILE
        return _json_load(p) if p.exists() else {}

    # -- liveness -----------------------------------------------------------------------
    def write_heartbeat(self, payload: dict) -> None:
        atomic_write_json(self.path / HEARTBEAT_FILE, payload)

    def heartbeat(self) -> dict | None:
        """The last heartbeat of the worker, or None when there is none (or it is unreadable)."""
        try:
            return _json_load(self.path / HEARTBEAT_FILE)
        except RunError:
            return None

    def request_cancel(self, reason: str = "cancelled by the user") -> None:
        """Ask the worker to stop (it polls for this file); never touches run.json."""
        atomic_write_json(self.path / CANCEL_FILE, {"time": now_iso(), "reason": reason})

    def cancel_requested(self) -> dict | None:
        try:
            return _json_load(self.path / CANCEL_FILE)
        except RunError:
            return None

    def write_metrics(self, metrics: dict) -> None:
        atomic_write_json(self.path / METRICS_FILE, metrics)

    def history(self) -> pd.DataFrame:
        import pandas as pd

        p = self.path / HISTORY_FILE
        if not p.exists():
            return pd.DataFrame()
        try:
            return pd.read_csv(p)
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            return pd.DataFrame()

    def write_history(self, history: pd.DataFrame) -> None:
        atomic_write_bytes(self.path / HISTORY_FILE, history.to_csv(index=False).encode())

    def _write_netcdf(self, ds: xr.Dataset, name: str) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.path)
        os.close(fd)
        try:
            encoding = {v: {"zlib": True, "complevel": 4} for v in ds.data_vars
                        if ds[v].dtype.kind == "f" and ds[v].ndim > 0}
            ds.to_netcdf(tmp, encoding=encoding)
            os.chmod(tmp, _file_mode())
            os.replace(tmp, self.path / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def write_prediction(self, ds: xr.Dataset) -> None:
        self._write_netcdf(ds, PREDICTION_FILE)

    def write_diagnostics(self, ds: xr.Dataset) -> None:
        self._write_netcdf(ds, DIAGNOSTICS_FILE)

    def diagnostics(self) -> xr.Dataset | None:
        """diagnostics.nc loaded, or None when the run has none (older runs)."""
        import xarray as xr

        p = self.path / DIAGNOSTICS_FILE
        if not p.exists():
            return None
        try:
            with xr.open_dataset(p) as ds:
                return ds.load()
        except (OSError, ValueError) as exc:
            raise RunError(f"{p}: cannot be read ({exc})") from None

    def prediction(self) -> xr.Dataset:
        import xarray as xr

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
        model = str((config.get("model") or {}).get("name", "run"))
        chosen = run_id is not None
        # A generated id has 16 random bits per second and model: two runs made in the same
        # second can collide (about one in 65,536), so a generated id is drawn again.
        for _ in range(1 if chosen else 20):
            if not chosen:
                run_id = new_run_id(re.sub(r"[^A-Za-z0-9._-]", "_", model) or "run")
            path = self.path_of(run_id)
            try:
                path.mkdir(parents=True, exist_ok=False)
                break
            except FileExistsError:
                continue
            except OSError as exc:
                raise RunError(f"{self.root}: cannot create a run folder here "
                               f"({exc.strerror or exc})") from None
        else:
            raise RunError(f"run {run_id!r} already exists in {self.root}")
        run = Run(path)
        run.update(id=run_id, status=status, config=config, created=now_iso())
        return run

    def path_of(self, run_id: str) -> Path:
        """The folder of ``run_id``, checked: a valid id whose folder lies inside the store."""
        run_id = check_run_id(run_id)
        path = self.root / run_id
        root = self.root.resolve()
        if path.is_symlink() or path.resolve().parent != root:
            raise RunError(f"run {run_id!r} is not a folder of the run store {self.root}")
        return path

    def get(self, run_id: str) -> Run:
        path = self.path_of(run_id)
        if not (path / RUN_FILE).is_file():
            raise RunError(f"no run {run_id!r} in {self.root}")
        return Run(path)

    def runs(self) -> list[Run]:
        """Runs newest first: every folder with a valid id holding a run.json (readable or not)."""
        if not self.root.is_dir():
            return []
        found = [Run(p) for p in self.root.iterdir()
                 if RUN_ID_PATTERN.fullmatch(p.name) and not p.is_symlink()
                 and (p / RUN_FILE).is_file()]
        return sorted(found, key=lambda r: r.id, reverse=True)

    def table(self) -> pd.DataFrame:
        """One row per run: id, status, task, model, created, duration and scores.

        A run whose files cannot be read is a row with status ``unreadable`` and the reason
        in ``error``; a queued/running run whose worker is gone is recorded as failed first
        (see :func:`backend.liveness.refresh`).
        """
        import pandas as pd

        from backend.liveness import refresh

        rows = []
        for run in self.runs():
            try:
                info = refresh(run)
                metrics = run.metrics()
            except RunError as exc:
                rows.append({"id": run.id, "status": "unreadable", "error": str(exc)})
                continue
            cfg = info.get("config") or {}
            row = {
                "id": run.id,
                "status": info.get("status"),
                "task": (cfg.get("task") or {}).get("name"),
                "model": (cfg.get("model") or {}).get("name"),
                "created": info.get("created"),
                "seconds": (info.get("timings") or {}).get("total_s"),
            }
            name = info.get("name")
            if isinstance(name, str) and name:
                row["name"] = name
            tags = [t for t in info.get("tags") or [] if isinstance(t, str)]
            if tags:
                row["tags"] = ", ".join(tags)
            data = (info.get("data") or {}).get("path") or (cfg.get("data") or {}).get("path")
            row["data"] = Path(str(data)).name if data else "built-in"
            try:
                from backend.config import summarize

                row["settings"] = summarize(cfg)
            except Exception:  # noqa: BLE001 (a config of another version: no summary)
                row["settings"] = None
            if info.get("status") in ("failed", "cancelled") and info.get("error"):
                row["error"] = str(info["error"])
            row.update({k: v for k, v in metrics.items()
                        if k not in row and not isinstance(v, dict | list)})
            rows.append(row)
        return pd.DataFrame(rows)

    def delete(self, run_id: str) -> None:
        """Delete one run folder (a valid id inside the store, holding a run.json).

        A run being executed (its worker holds the run's writer lock, or it is recorded
        running and its worker is alive) is refused (RunError: cancel it first), so that a
        worker never loses the folder it writes to. A queued run leaves the queue (workers
        skip a deleted entry); an unreadable run can be deleted."""
        run = self.get(run_id)
        try:
            status = run.info().get("status")
        except RunError:
            status = None  # damaged: deleting it is how the user gets rid of it
        if status == "running":
            from backend.liveness import refresh

            try:
                status = refresh(run).get("status")  # a lost worker's run is failed now
            except RunError:
                status = None
        if status == "running" or records.lock_state_file(
                run.path / records.LOCK_FILE) == "held":
            raise RunError(f"run {run_id} is {status or 'being executed'}: cancel it first "
                           f"(python -m app cancel {run_id})")
        shutil.rmtree(run.path)
