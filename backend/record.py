"""The typed run record (``run.json``), its single writer, and the events log.

One record per run, read and written only through this module:

- :class:`RunRecord` is what ``run.json`` holds, typed (status is a :class:`RunStatus`,
  progress a :class:`Progress`, the experiment's config validates into the typed
  :class:`backend.config.ExperimentConfig` of its task and model with
  :meth:`RunRecord.experiment`). Unknown keys written by older or newer OceanLab versions
  are kept, so a record survives a round trip through any version.
- **One writer.** Whoever writes a run's record holds the run's writer lock (an exclusive
  ``flock`` on ``writer.lock`` in the run folder). The process executing a run takes it when
  it starts and keeps it to the end, so while a run executes nobody else can write its
  record: a cancel is a request file the worker reads (:meth:`backend.store.Run.request_cancel`).
  Another process gets the lock only before the run starts (cancelling a queued run) or
  after its worker died (the operating system drops the lock of a dead process, SIGKILL
  included), which is when readers record a lost worker. Writes are atomic renames, and
  because they are serialised by the lock no update is lost either.
- **Events.** ``events.jsonl`` is appended to, one JSON object per line (a stage, an epoch,
  a progress step, the end), by the same writer; pages follow it for live curves. Readers
  skip a last line still being written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from oceanlab_errors import RunError

if TYPE_CHECKING:
    from backend.config import ExperimentConfig

RUN_FILE = "run.json"
EVENTS_FILE = "events.jsonl"
LOCK_FILE = "writer.lock"
#: Seconds a process waits for the writer lock of a run that another process holds briefly
#: (a reader recording a lost worker, a cancel of a queued run) before giving up.
LOCK_WAIT_S = 5.0


class RunStatus(str, Enum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def active(self) -> bool:
        return self in (RunStatus.queued, RunStatus.running)

    def __str__(self) -> str:  # "done", not "RunStatus.done", in messages
        return self.value


class Progress(BaseModel):
    """The latest progress of a run: a stage (``load``, ``fit``, ``solve``, …), how much of
    it is done, and for training the epoch and losses."""

    model_config = ConfigDict(extra="allow")

    stage: str | None = None
    done: float | None = None
    total: float | None = None
    unit: str | None = None
    epoch: int | None = None
    epochs: int | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    #: Unix time the current stage started (for the rate, hence the time left).
    stage_started: float | None = None
    #: Estimated seconds left in the current stage (from its rate so far).
    eta_s: float | None = None

    @property
    def fraction(self) -> float | None:
        """Share done of the current stage: its done/total, else the epochs."""
        if self.done is not None and self.total:
            return min(1.0, max(0.0, self.done / self.total))
        if self.epoch is not None and self.epochs:
            return min(1.0, max(0.0, self.epoch / self.epochs))
        return None


class RunRecord(BaseModel):
    """What ``run.json`` holds. Only :attr:`id` and :attr:`status` are required."""

    model_config = ConfigDict(extra="allow", validate_assignment=False)

    id: str
    status: RunStatus
    config: dict[str, Any] = Field(default_factory=dict)
    created: str | None = None
    updated: str | None = None
    started: str | None = None
    finished: str | None = None
    #: Unix time the run entered the queue (queue order), and when it started/finished.
    queued_unix: float | None = None
    started_unix: float | None = None
    finished_unix: float | None = None
    device: str | None = None
    #: What executed the run: precision, compilation, strategy (see models' execution_info).
    execution: dict[str, Any] | None = None
    executor: str | None = None
    data: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    progress: Progress | None = None
    worker: dict[str, Any] | None = None
    pid: int | None = None
    error: str | None = None
    error_kind: str | None = None
    traceback: str | None = None
    #: Key of everything that determines the result (see :mod:`backend.reuse`).
    reuse_key: str | None = None
    code_version: str | None = None
    cache: dict[str, Any] | None = None
    #: A user-given name and tags (``python -m app rename`` / ``tag``, the Compare page).
    name: str | None = None
    tags: list[str] = Field(default_factory=list)

    @field_validator("config", "timings", "data", "worker", "memory", "versions", mode="before")
    @classmethod
    def _object(cls, value: Any, info) -> Any:
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{info.field_name!r} is a {type(value).__name__}, expected an object")
        return value

    @field_validator("progress", mode="before")
    @classmethod
    def _progress(cls, value: Any) -> Any:
        return value if isinstance(value, dict | Progress) else None

    @property
    def active(self) -> bool:
        return self.status.active

    def experiment(self) -> ExperimentConfig:
        """The config as the typed object of its task and model (ConfigError if invalid)."""
        from backend.config import ExperimentConfig

        try:
            return ExperimentConfig(**self.config)
        except ValidationError as exc:
            from oceanlab_errors import ConfigError

            lines = [ln.strip() for ln in str(exc).strip().splitlines()[:3]]
            raise ConfigError(f"invalid config in run {self.id}: {'; '.join(lines)}") from None

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_none=False)


def parse_record(obj: dict, where: Path) -> RunRecord:
    """``obj`` (a run.json's content) as a record; RunError naming ``where`` if it is not one."""
    try:
        return RunRecord.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ())) or "record"
        raise RunError(f"{where}: {loc}: {first.get('msg')}") from None


# ----------------------------------------------------------------------------- the lock

_held_lock = threading.Lock()
#: run folder (resolved) → (file descriptor holding the flock, thread-reentrancy count)
_HELD: dict[str, list] = {}


def _key(run_dir: Path) -> str:
    return str(Path(run_dir).resolve())


def holds_lock(run_dir: Path) -> bool:
    """Whether this process holds the writer lock of ``run_dir``."""
    with _held_lock:
        return _key(run_dir) in _HELD


def _try_flock(path: Path) -> int | None:
    """An open fd holding an exclusive flock on ``path``, or None when another holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o664)
    except OSError as exc:
        raise RunError(f"{path}: cannot open the run's writer lock ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP):  # a filesystem without locks
            return -1
        raise RunError(f"{path}: cannot lock ({exc.strerror or exc})") from None


def acquire(run_dir: Path, wait_s: float = 0.0) -> bool:
    """Take the writer lock of ``run_dir`` for this process (re-entrant); False when another
    process holds it for longer than ``wait_s`` seconds."""
    key = _key(run_dir)
    with _held_lock:
        if key in _HELD:
            _HELD[key][1] += 1
            return True
    deadline = time.monotonic() + wait_s
    while True:
        fd = _try_flock(Path(run_dir) / LOCK_FILE)
        if fd is not None:
            with _held_lock:
                _HELD[key] = [fd, 1]
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def release(run_dir: Path) -> None:
    key = _key(run_dir)
    with _held_lock:
        entry = _HELD.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _HELD[key]
    if entry[0] >= 0:
        with contextlib.suppress(OSError):
            fcntl.flock(entry[0], fcntl.LOCK_UN)
        os.close(entry[0])


@contextlib.contextmanager
def writer(run_dir: Path, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the writer lock of ``run_dir`` for the block; RunError when a live process
    (the run's worker) holds it."""
    if not acquire(run_dir, wait_s):
        raise RunError(f"run {Path(run_dir).name} is being executed by another process, "
                       f"which alone writes its record; ask it to stop with cancel")
    try:
        yield
    finally:
        release(run_dir)


def lock_state_file(path: Path) -> str:
    """``"held"``, ``"free"`` or ``"unknown"`` (no such file, or no locks on this
    filesystem) for the lock file ``path``."""
    path = Path(path)
    if not path.exists():
        return "unknown"
    fd = _try_flock(path)
    if fd is None:
        return "held"
    if fd < 0:
        return "unknown"
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    return "free"


def try_lock_file(path: Path) -> int | None:
    """An fd holding an exclusive lock on ``path`` (kept until :func:`unlock_file`), or None
    when another process holds it."""
    return _try_flock(Path(path))


def unlock_file(fd: int) -> None:
    if fd is not None and fd >= 0:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def lock_state(run_dir: Path) -> str:
    """``"held"`` when a process (this one included) holds the writer lock of ``run_dir``,
    ``"free"`` when none does, ``"unknown"`` on a filesystem without locks (or when the
    run folder predates the lock: no ``writer.lock``)."""
    if holds_lock(run_dir):
        return "held"
    return lock_state_file(Path(run_dir) / LOCK_FILE)


# ----------------------------------------------------------------------------- events


def append_event(run_dir: Path, event: dict) -> None:
    """Append one JSON line to the run's events log (one ``write`` of the whole line, so
    concurrent readers see whole lines or a partial last one, which they skip)."""
    line = (json.dumps(event, default=str, separators=(",", ":")) + "\n").encode()
    fd = os.open(Path(run_dir) / EVENTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o664)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_events(run_dir: Path, since: int = 0) -> list[dict]:
    """The events of a run from line ``since`` on (an unfinished last line is left out)."""
    path = Path(run_dir) / EVENTS_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise RunError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    lines = data.split(b"\n")[:-1]  # the part after the last newline is unfinished
    out = []
    for raw in lines[since:]:
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out
