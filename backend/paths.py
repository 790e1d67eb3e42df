"""Where OceanLab writes: the workspace (``OCEANLAB_HOME``, default ``./workspace``)."""

from __future__ import annotations

import os
from pathlib import Path

BUILTIN_NAME = "osse_gulfstream_seed{seed}.nc"


def home() -> Path:
    """The workspace folder holding ``datasets/``, ``runs/`` and ``cache/``."""
    return Path(os.environ.get("OCEANLAB_HOME", "workspace")).expanduser().resolve()


def runs_dir(override: str | os.PathLike | None = None) -> Path:
    return Path(override).expanduser().resolve() if override else home() / "runs"


def datasets_dir() -> Path:
    return home() / "datasets"


def cache_dir() -> Path:
    return home() / "cache"


def builtin_dataset_path(seed: int = 0) -> Path:
    return datasets_dir() / BUILTIN_NAME.format(seed=seed)


def ensure_builtin_dataset(seed: int = 0) -> Path:
    """Path of the built-in OSSE file, generating it first if it is missing."""
    path = builtin_dataset_path(seed)
    if not path.exists():
        from data.osse import generate_osse

        path.parent.mkdir(parents=True, exist_ok=True)
        generate_osse(path, seed=seed)
    return path
