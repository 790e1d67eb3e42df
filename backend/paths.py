"""Where OceanLab writes, the workspace (``OCEANLAB_HOME``, default ``./workspace``), and
where the dashboard may read: the data roots (``OCEANLAB_DATA_ROOTS``).
"""

from __future__ import annotations

import glob
import os
import stat
from pathlib import Path

from oceanlab_errors import DataError

BUILTIN_NAME = "osse_gulfstream_seed{seed}.nc"
#: Environment variable listing the folders whose files a dashboard user may open.
DATA_ROOTS_ENV = "OCEANLAB_DATA_ROOTS"
_GLOB_CHARS = "*?["


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


def builtin_is_current(path: Path) -> bool:
    """Whether the built-in OSSE file at ``path`` exists and was made by the current recipe
    (its ``oceanlab_osse_version`` attribute; a file from an older OceanLab is outdated)."""
    if not path.is_file():
        return False
    from data.osse import OSSE_VERSION

    try:
        import netCDF4

        with netCDF4.Dataset(path) as nc:
            version = int(getattr(nc, "oceanlab_osse_version", 1))
    except (OSError, ValueError, TypeError):
        return False
    return version >= OSSE_VERSION


def ensure_builtin_dataset(seed: int = 0) -> Path:
    """Path of the built-in OSSE file, generating it first if it is missing or was made by
    an older recipe (then it is replaced atomically)."""
    path = builtin_dataset_path(seed)
    if not builtin_is_current(path):
        from data.osse import generate_osse

        path.parent.mkdir(parents=True, exist_ok=True)
        generate_osse(path, seed=seed)
    return path


# --------------------------------------------------------------------------- data roots


def data_roots() -> list[Path]:
    """Folders under which a path typed in the dashboard may point.

    ``OCEANLAB_DATA_ROOTS`` holds them, separated by ``os.pathsep`` (``:`` on Linux); empty
    entries are ignored and relative ones are taken from the current folder. Unset or empty:
    the workspace's ``datasets/`` folder. Each root is resolved (symbolic links followed), so
    comparisons with resolved file paths are exact.
    """
    entries = [e.strip() for e in os.environ.get(DATA_ROOTS_ENV, "").split(os.pathsep)]
    entries = [e for e in entries if e]
    if not entries:
        return [datasets_dir().resolve()]
    roots: list[Path] = []
    for entry in entries:
        try:
            root = Path(entry).expanduser().resolve()
        except (OSError, RuntimeError, ValueError):  # no home for ~user, NUL byte, loop
            continue
        if root not in roots:
            roots.append(root)
    return roots


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def _regular_file(path: Path) -> Path | None:
    """``path`` resolved when it is an existing, readable regular file, else None."""
    try:
        resolved = path.resolve(strict=True)
        if not stat.S_ISREG(resolved.stat().st_mode):  # FIFO, device, socket, directory
            return None
    except (OSError, RuntimeError, ValueError):  # missing, loop, NUL byte, name too long
        return None
    return resolved if os.access(resolved, os.R_OK) else None


def _glob_prefix(pattern: Path) -> Path:
    """The leading components of ``pattern`` that hold no glob character."""
    parts: list[str] = []
    for part in pattern.parts:
        if any(ch in part for ch in _GLOB_CHARS):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def check_user_path(text: str | None) -> str:
    """The dataset path typed by a dashboard user, once it is known to be safe to open.

    Accepted: a regular, readable file (or a glob whose every match is one) that lies, after
    symbolic links and ``..`` are resolved, under one of :func:`data_roots`, or the built-in
    OSSE file. A glob must also start under a root (its leading folders without ``*?[``).
    Directories, FIFOs, devices and sockets are refused. Every refusal has the same message,
    which does not tell whether the file exists.

    Parameters
    ----------
    text : what the user typed (surrounding blanks ignored; ``~`` is the home folder).

    Returns
    -------
    The resolved absolute path of a file, or, for a glob, the pattern as typed made absolute
    (not normalised, so that it matches exactly the files checked here).

    Raises
    ------
    DataError : ``"PATH: not an accessible dataset under the data roots (ROOTS)"``, or
        ``"no dataset path given …"`` for an empty text.
    """
    raw = str(text or "").strip()
    roots = data_roots()
    shown = ", ".join(str(r) for r in roots) or "none configured"
    if not raw:
        raise DataError(f"no dataset path given: type a NetCDF file or glob under the data "
                        f"roots ({shown})")
    named = raw if raw.isprintable() else repr(raw)  # a NUL or control character: quoted
    refused = DataError(f"{named}: not an accessible dataset under the data roots ({shown})")
    try:
        typed = Path(raw).expanduser()
        if "\x00" in raw:
            raise ValueError("NUL byte")
        typed = typed if typed.is_absolute() else Path.cwd() / typed
    except (OSError, RuntimeError, ValueError):
        raise refused from None
    if any(ch in raw for ch in _GLOB_CHARS):
        try:
            prefix = _glob_prefix(typed).resolve()
        except (OSError, RuntimeError, ValueError):
            raise refused from None
        if not _inside(prefix, roots):
            raise refused
        matches = [_regular_file(Path(m)) for m in glob.glob(str(typed))]
        if not matches or any(m is None or not _inside(m, roots) for m in matches):
            raise refused
        return str(typed)
    resolved = _regular_file(typed)
    if resolved is None:
        raise refused
    if _inside(resolved, roots) or resolved == _regular_file(builtin_dataset_path()):
        return str(resolved)
    raise refused
