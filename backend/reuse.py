"""Reuse of finished runs: the key of everything that determines a run's result.

Two submissions give the same result when their task, model, parameters, training settings
(the seed among them), data (the file's fingerprint, not its name) and code are the same.
:func:`reuse_key` hashes exactly that; ``train`` and ``submit`` look for a finished run
with the key (:func:`find_finished`) and return it instead of computing it again, unless
``--force``. The config's ``limits`` and ``backend`` sections (memory limits, executor,
slots) change where and whether a run executes, not its result, so they are left out.

The code version is a hash of the science code (``data/``, ``models/``, ``metrics/`` and
the runner): any edit there makes earlier runs non-reusable, which is the safe side.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

from backend.store import RunStore

_ROOT = Path(__file__).resolve().parent.parent
#: Folders and files whose source decides a run's result.
CODE_PARTS = ("data", "models", "metrics", "backend/runner.py", "backend/config.py")
#: Config sections that do not change a run's result.
NOT_IN_KEY = ("limits", "backend")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``<oceanlab version>+<hash of the science code's sources>`` when this process first
    asked (the code it runs)."""
    return current_code_version()


def current_code_version() -> str:
    """:func:`code_version` of the files on disk now (a few milliseconds)."""
    import importlib.metadata as md

    h = hashlib.sha256()
    for part in CODE_PARTS:
        path = _ROOT / part
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            if "__pycache__" in f.parts or not f.is_file():
                continue
            h.update(str(f.relative_to(_ROOT)).encode())
            h.update(f.read_bytes())
    try:
        version = md.version("oceanlab")
    except md.PackageNotFoundError:
        version = "0"
    return f"{version}+{h.hexdigest()[:12]}"


_FINGERPRINTS: dict[tuple, str] = {}


def data_fingerprint(path: str | os.PathLike) -> str:
    """:func:`data.canonical.fingerprint` of ``path``, remembered per (path, size,
    modification time, inode) within the process (the dashboard hashes a file once)."""
    from data.canonical import _expand_paths, fingerprint

    try:
        stats = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns, f.stat().st_ino)
                      for f in _expand_paths(path))
    except OSError:
        stats = None
    if stats is not None and stats in _FINGERPRINTS:
        return _FINGERPRINTS[stats]
    value = fingerprint(path)
    if stats is not None:
        _FINGERPRINTS[stats] = value
    return value


def _obs_fingerprints(obs) -> list[str]:
    """Fingerprints of the along-track files named by ``data.obs`` (none for variables)."""
    from data.alongtrack import is_track_spec, parse_obs_spec
    from oceanlab_errors import OceanLabError

    out = []
    for spec in [obs] if isinstance(obs, str) else list(obs or []):
        if isinstance(spec, str) and is_track_spec(spec):
            try:
                out.append(data_fingerprint(parse_obs_spec(spec)[0]))
            except (OceanLabError, OSError):
                out.append(f"unreadable:{spec}")  # the run itself will say why
    return out


def reuse_key(config: dict, fingerprint: str, code: str | None = None) -> str:
    """The key of a run's result: config (without :data:`NOT_IN_KEY`), data, code."""
    cfg = {k: v for k, v in config.items() if k not in NOT_IN_KEY}
    data = dict(cfg.get("data") or {})
    data.pop("path", None)  # the fingerprint identifies the data, wherever the file lies
    obs_files = _obs_fingerprints(data.get("obs"))
    if obs_files:  # along-track observation files: their content, too
        data["obs_fingerprints"] = obs_files
    cfg["data"] = data
    blob = json.dumps({"config": cfg, "data": fingerprint, "code": code or code_version()},
                      sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def find_finished(store: RunStore, key: str):
    """The newest ``done`` run of ``store`` with ``key`` (a :class:`backend.store.Run`),
    or None."""
    from oceanlab_errors import RunError

    for run in store.runs():
        try:
            info = run.info()
        except RunError:
            continue
        if info.get("status") == "done" and info.get("reuse_key") == key:
            return run
    return None
