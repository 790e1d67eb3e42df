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


def uploads_dir() -> Path:
    """Where files uploaded in the dashboard are stored, under generated names; a path in
    it is accepted like one under the data roots (nothing else writes there)."""
    return home() / "uploads"


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
    roots = [*roots, uploads_dir().resolve()]  # the dashboard's own uploads
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


# --------------------------------------------------------------------------- uploads

#: Environment variable: the largest file the dashboard accepts as an upload (MB, 2**20 B).
UPLOAD_MAX_ENV = "OCEANLAB_UPLOAD_MAX_MB"
#: Default upload limit (MB); Streamlit's own ``server.maxUploadSize`` is set to the same.
UPLOAD_MAX_MB = 1024
#: First bytes of the files an upload may be: NetCDF classic/64-bit/CDF5, and HDF5 (NetCDF-4).
_NETCDF_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")


def upload_limit_mb() -> int:
    """The upload limit in MB: ``OCEANLAB_UPLOAD_MAX_MB`` (a positive whole number), else
    :data:`UPLOAD_MAX_MB`."""
    text = os.environ.get(UPLOAD_MAX_ENV, "").strip()
    try:
        value = int(text) if text else UPLOAD_MAX_MB
    except ValueError:
        value = UPLOAD_MAX_MB
    return value if value > 0 else UPLOAD_MAX_MB


def save_upload(fileobj, name: str, limit_mb: int | None = None) -> Path:
    """Store an uploaded file in :func:`uploads_dir` under a generated name and return it.

    The name is ``upload-<first 16 hex digits of its SHA-256>.nc``: the user's file name is
    never used as a path (only in messages), and the same file uploaded twice is stored
    once. The bytes are copied in blocks, counting: more than ``limit_mb`` MB (default
    :func:`upload_limit_mb`) is refused whatever size the browser announced, as is a file
    that is not NetCDF or HDF5 by its first bytes. Nothing is left behind by a refusal.

    Raises
    ------
    DataError : ``"NAME: ..."`` (one line) for a file over the limit, empty, or not NetCDF.
    """
    import hashlib
    import tempfile

    shown = (name if str(name).isprintable() else repr(name)) or "upload"
    limit = (limit_mb or upload_limit_mb()) * 2**20
    folder = uploads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=folder)
    digest, size, head = hashlib.sha256(), 0, b""
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                block = fileobj.read(1 << 20)
                if not block:
                    break
                size += len(block)
                if size > limit:
                    raise DataError(f"{shown}: larger than the upload limit of "
                                    f"{limit // 2**20} MB ({UPLOAD_MAX_ENV}); put the file "
                                    f"under a data root and type its path instead")
                if len(head) < 8:
                    head += block[: 8 - len(head)]
                digest.update(block)
                out.write(block)
        if size == 0:
            raise DataError(f"{shown}: the uploaded file is empty")
        if not head.startswith(_NETCDF_MAGIC):
            raise DataError(f"{shown}: not a NetCDF or HDF5 file (its first bytes are "
                            f"{head[:4]!r})")
        target = folder / f"upload-{digest.hexdigest()[:16]}.nc"
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        return target.resolve()
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
