"""Sharing runs between workspaces: ``export`` ended runs to one zip file, ``import`` it
into another run store (``python -m app export`` / ``import``).

**The archive** (standard zip, deflate) holds ``manifest.json`` at the top and one folder
per run, ``<run_id>/…``, with every file of the run folder except:

* the transient files of a live run: ``writer.lock``, ``heartbeat.json``,
  ``cancel.request``;
* worker logs (``*.log`` at the top of the run folder; slot workers log to
  ``<runs>/.slots/``, which is not a run);
* hidden files (names starting with ``.``: temporary files of atomic writes) and symbolic
  links (never followed);
* ``checkpoints/`` (Lightning's resumable checkpoints, the largest files of a learned run)
  unless asked for (``--with-checkpoints``): the weights the run predicts with are
  ``model.safetensors``, which is always exported, as are predictions, diagnostics,
  scores, config, history, events and Lightning/TensorBoard logs.

``manifest.json`` holds the format (:data:`FORMAT`, :data:`FORMAT_VERSION`), the OceanLab
version that wrote it, the time, and for each run its id, status and every file with its
size and sha256. Only ended runs (done, failed, cancelled) are exported.

**An import** never overwrites anything and never writes outside the store:

* every entry name is checked before anything is written: no absolute path, no ``..`` or
  empty part, no backslash, no symbolic link or other special entry, the first part a run
  id (:data:`backend.store.RUN_ID_PATTERN`, not starting with ``.``), only stored or
  deflated entries, every entry listed in the manifest with its size and every listed file
  present;
* the archive is refused when its files add up to more than :func:`max_import_bytes`
  (default 20 GiB, ``OCEANLAB_IMPORT_MAX_BYTES``) or more than the free disk space, and an
  entry over 1 MiB that is compressed more than :data:`MAX_RATIO` times (a zip bomb);
* the runs are extracted into a temporary folder inside the store, each file checked
  against its sha256 in the manifest; their ``run.json`` gets ``imported_from: {id,
  archive, time, oceanlab_version}`` (through :meth:`backend.store.Run.update`, under the
  run's writer lock) and each run folder is then renamed into place. Any failure removes
  the temporary folder (and runs already moved in by this import), so a failed import
  leaves nothing behind;
* a run whose id is already in the store is **skipped when it is identical** (the same
  files, and the same record apart from ``id``, ``updated`` and ``imported_from``; the run
  with that id, or a run imported earlier from that id, is compared) — importing an archive
  twice adds nothing — and otherwise **imported under a new id**
  (``<id>-imp<hex>``), its original id kept in ``imported_from``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from backend.record import LOCK_FILE, RUN_FILE
from backend.store import (
    CANCEL_FILE,
    HEARTBEAT_FILE,
    Run,
    RunStore,
    _file_mode,
    check_run_id,
    now_iso,
)
from oceanlab_errors import ConfigError, DataError, RunError

FORMAT = "oceanlab-runs"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ENDED = ("done", "failed", "cancelled")
#: Files of a run folder never exported (see the module docstring).
TRANSIENT = frozenset({LOCK_FILE, HEARTBEAT_FILE, CANCEL_FILE})
CHECKPOINTS_DIR = "checkpoints"
#: Default limit on the total uncompressed size of an imported archive (20 GiB).
DEFAULT_MAX_BYTES = 20 * 1024 ** 3
MAX_BYTES_ENV = "OCEANLAB_IMPORT_MAX_BYTES"
#: An entry larger than :data:`RATIO_MIN_BYTES` may be at most this many times its
#: compressed size (deflate reaches about 1000: only crafted data comes near).
MAX_RATIO = 200
RATIO_MIN_BYTES = 1024 ** 2
MAX_MANIFEST_BYTES = 64 * 1024 ** 2
MAX_ENTRIES = 200_000
#: Keys of run.json left out when telling whether two runs are the same run.
_VOLATILE_KEYS = ("id", "updated", "imported_from")
_CHUNK = 1024 ** 2


def oceanlab_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("oceanlab")
    except PackageNotFoundError:
        return None


def max_import_bytes() -> int:
    """The limit on the uncompressed size of an archive: ``$OCEANLAB_IMPORT_MAX_BYTES``
    (a whole number of bytes > 0) or 20 GiB."""
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{MAX_BYTES_ENV}={text!r}: expected a whole number of bytes > 0")
    return value


def _size_text(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"  # pragma: no cover


# ----------------------------------------------------------------------------- export


def exported_files(run: Run, with_checkpoints: bool = False) -> list[str]:
    """Paths (POSIX, relative to the run folder, sorted) of the files an export holds."""
    out = []
    root = run.path
    for folder, dirs, files in os.walk(root, followlinks=False):
        rel_folder = Path(folder).relative_to(root)
        keep = []
        for d in dirs:
            p = Path(folder) / d
            if d.startswith(".") or p.is_symlink():
                continue
            if rel_folder == Path(".") and d == CHECKPOINTS_DIR and not with_checkpoints:
                continue
            keep.append(d)
        dirs[:] = keep
        for name in files:
            p = Path(folder) / name
            if name.startswith(".") or p.is_symlink() or not p.is_file():
                continue
            if rel_folder == Path(".") and (name in TRANSIENT or name.endswith(".log")):
                continue
            out.append((rel_folder / name).as_posix())
    return sorted(out)


@dataclass
class ExportResult:
    archive: Path
    runs: list[dict]
    bytes: int


def export_runs(store: RunStore, run_ids: list[str], out: str | os.PathLike,
                with_checkpoints: bool = False) -> ExportResult:
    """Write the ended runs ``run_ids`` of ``store`` to the zip file ``out`` (written to a
    temporary name beside it, then renamed). RunError (one line) for an unknown, active or
    repeated run."""
    from backend.liveness import refresh

    if not run_ids:
        raise RunError("give at least one run id to export")
    seen: set[str] = set()
    runs: list[tuple[Run, dict]] = []
    for run_id in run_ids:
        if run_id in seen:
            raise RunError(f"run {run_id} is given twice")
        seen.add(run_id)
        run = store.get(run_id)
        info = refresh(run)  # a running run whose worker is gone is recorded failed first
        status = info.get("status")
        if status not in ENDED:
            raise RunError(f"run {run_id} is {status}: only ended runs (done, failed, "
                           f"cancelled) can be exported; wait for it or cancel it")
        runs.append((run, info))

    out = Path(out)
    manifest_runs = []
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    total = 0
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6,
                             allowZip64=True) as zf:
            for run, info in runs:
                files = []
                for rel in exported_files(run, with_checkpoints):
                    src = run.path / rel
                    digest = hashlib.sha256()
                    size = 0
                    zinfo = zipfile.ZipInfo.from_file(src, f"{run.id}/{rel}",
                                                      strict_timestamps=False)
                    zinfo.compress_type = zipfile.ZIP_DEFLATED
                    zinfo.external_attr = (stat.S_IFREG | 0o644) << 16
                    with open(src, "rb") as fh, zf.open(zinfo, "w", force_zip64=True) as dst:
                        while chunk := fh.read(_CHUNK):
                            digest.update(chunk)
                            dst.write(chunk)
                            size += len(chunk)
                    files.append({"path": rel, "size": size, "sha256": digest.hexdigest()})
                    total += size
                manifest_runs.append({"id": run.id, "status": info.get("status"),
                                      "model": ((info.get("config") or {}).get("model")
                                                or {}).get("name"),
                                      "files": files})
            manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                        "oceanlab_version": oceanlab_version(), "created": now_iso(),
                        "runs": manifest_runs}
            zf.writestr(MANIFEST, json.dumps(manifest, indent=2) + "\n")
        os.chmod(tmp, _file_mode())
        os.replace(tmp, out)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        where = exc.filename or out
        raise RunError(f"{where}: cannot export ({exc.strerror or exc})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ExportResult(out, manifest_runs, total)


# ----------------------------------------------------------------------------- import


@dataclass
class ImportResult:
    #: ``{"run_id", "original_id"}`` per run added to the store.
    imported: list[dict] = field(default_factory=list)
    #: ``{"original_id", "run_id", "reason"}`` per run already in the store.
    skipped: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"imported": self.imported, "skipped": self.skipped}


def _entry_parts(name: str, label: str) -> tuple[str, ...]:
    """The parts of a zip entry name, refused (DataError) when it could leave a folder."""
    shown = name if len(name) <= 80 else name[:77] + "..."
    if not name or "\x00" in name or "\\" in name:
        raise DataError(f"{label}: entry {shown!r}: refused (empty, NUL or backslash in the name)")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"{label}: entry {shown!r}: refused (an absolute path)")
    parts = tuple(name.rstrip("/").split("/"))
    if any(p in ("", ".", "..") for p in parts):
        raise DataError(f"{label}: entry {shown!r}: refused ('..', '.' or an empty part "
                        f"would leave the run folder)")
    return parts


def _read_manifest(zf: zipfile.ZipFile, label: str) -> dict:
    try:
        info = zf.getinfo(MANIFEST)
    except KeyError:
        raise DataError(f"{label}: no {MANIFEST}: not an archive written by "
                        f"'python -m app export'") from None
    if info.file_size > MAX_MANIFEST_BYTES:
        raise DataError(f"{label}: {MANIFEST} is {_size_text(info.file_size)}, over the "
                        f"{_size_text(MAX_MANIFEST_BYTES)} a manifest may have")
    try:
        manifest = json.loads(zf.read(info).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise DataError(f"{label}: {MANIFEST} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{label}: {MANIFEST} is not an OceanLab runs manifest "
                        f"(format {FORMAT!r} expected)")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DataError(f"{label}: {MANIFEST}: format_version must be a whole number >= 1")
    if version > FORMAT_VERSION:
        raise DataError(f"{label}: written by a newer OceanLab ({manifest.get('oceanlab_version')}, "
                        f"archive format {version}; this one reads up to {FORMAT_VERSION}): "
                        f"update OceanLab to import it")
    runs = manifest.get("runs")
    if not isinstance(runs, list) or not runs:
        raise DataError(f"{label}: {MANIFEST} lists no runs")
    ids: set[str] = set()
    for entry in runs:
        if not isinstance(entry, dict) or not isinstance(entry.get("files"), list):
            raise DataError(f"{label}: {MANIFEST}: each run needs an id and a list of files")
        run_id = entry.get("id")
        _check_archive_run_id(run_id, label)
        if run_id in ids:
            raise DataError(f"{label}: {MANIFEST} lists run {run_id} twice")
        ids.add(run_id)
        paths = set()
        for f in entry["files"]:
            ok = (isinstance(f, dict) and isinstance(f.get("path"), str)
                  and isinstance(f.get("size"), int) and not isinstance(f.get("size"), bool)
                  and f["size"] >= 0 and isinstance(f.get("sha256"), str)
                  and len(f["sha256"]) == 64)
            if not ok:
                raise DataError(f"{label}: {MANIFEST}: run {run_id}: each file needs a path, "
                                f"a size and a sha256")
            _entry_parts(f"{run_id}/{f['path']}", label)
            if f["path"] in paths:
                raise DataError(f"{label}: {MANIFEST}: run {run_id} lists {f['path']} twice")
            paths.add(f["path"])
        if RUN_FILE not in paths:
            raise DataError(f"{label}: run {run_id} has no {RUN_FILE}")
    return manifest


def _check_archive_run_id(run_id: object, label: str) -> str:
    try:
        text = check_run_id(run_id)
    except RunError as exc:
        raise DataError(f"{label}: {exc}") from None
    if text.startswith("."):
        raise DataError(f"{label}: run id {text!r} starts with '.', which the store keeps "
                        f"for its own folders")
    return text


def _check_entries(zf: zipfile.ZipFile, manifest: dict, label: str) -> int:
    """Check every entry of the archive against the rules (module docstring); returns the
    total uncompressed size of the listed files."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise DataError(f"{label}: {len(infos)} entries, more than the {MAX_ENTRIES} allowed")
    listed = {f"{r['id']}/{f['path']}": f for r in manifest["runs"] for f in r["files"]}
    names: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        parts = _entry_parts(name, label)
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise DataError(f"{label}: entry {name!r} is a symbolic link: refused")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise DataError(f"{label}: entry {name!r} is not a regular file: refused")
        if info.flag_bits & 0x1:
            raise DataError(f"{label}: entry {name!r} is encrypted: refused")
        if name in names:
            raise DataError(f"{label}: entry {name!r} appears twice: refused")
        names.add(name)
        if info.is_dir():
            if len(parts) >= 1:
                _check_archive_run_id(parts[0], label)
            continue
        if name == MANIFEST:
            continue
        if len(parts) < 2:
            raise DataError(f"{label}: entry {name!r} lies outside a run folder: refused")
        _check_archive_run_id(parts[0], label)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise DataError(f"{label}: entry {name!r}: compression method "
                            f"{info.compress_type} refused (stored or deflate only)")
        expected = listed.get(name)
        if expected is None:
            raise DataError(f"{label}: entry {name!r} is not listed in {MANIFEST}: refused")
        if info.file_size != expected["size"]:
            raise DataError(f"{label}: entry {name!r} is {info.file_size} bytes, "
                            f"{MANIFEST} says {expected['size']}: refused")
        if (info.file_size > RATIO_MIN_BYTES
                and info.file_size > MAX_RATIO * max(info.compress_size, 1)):
            raise DataError(f"{label}: entry {name!r} expands {info.file_size} bytes from "
                            f"{info.compress_size} (over {MAX_RATIO}:1, a zip bomb?): refused")
        total += info.file_size
    missing = sorted(set(listed) - names)
    if missing:
        raise DataError(f"{label}: {MANIFEST} lists {missing[0]}, which the archive lacks"
                        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return total


def _run_fingerprint_from_files(files: dict[str, str], record: dict) -> str:
    """Identity of a run: its files' sha256 (run.json apart) and its record less the keys
    that an import or a rename-free update changes."""
    body = {k: v for k, v in record.items() if k not in _VOLATILE_KEYS}
    h = hashlib.sha256()
    for path in sorted(files):
        if path != RUN_FILE:
            h.update(f"{path}\0{files[path]}\n".encode())
    h.update(json.dumps(body, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _existing_fingerprint(run: Run, paths: list[str]) -> str | None:
    """The fingerprint of an existing run over ``paths`` (the files of the archived run),
    or None when it does not hold exactly those files or cannot be read."""
    try:
        have = exported_files(run, with_checkpoints=True)
        wanted = set(paths)
        # Checkpoints are optional in an export: compare them only when the archive has them.
        if not any(p.startswith(CHECKPOINTS_DIR + "/") for p in wanted):
            have = [p for p in have if not p.startswith(CHECKPOINTS_DIR + "/")]
        if set(have) != wanted:
            return None
        files = {p: _sha256_file(run.path / p) for p in have if p != RUN_FILE}
        return _run_fingerprint_from_files(files, run.info())
    except (OSError, RunError):
        return None


def _candidates(store: RunStore, original_id: str) -> list[Run]:
    """Runs of ``store`` that may be the archived run: the one with its id and those
    imported from that id."""
    out = []
    for run in store.runs():
        if run.id == original_id:
            out.append(run)
            continue
        try:
            origin = run.info().get("imported_from")
        except RunError:
            continue
        if isinstance(origin, dict) and origin.get("id") == original_id:
            out.append(run)
    return out


def _new_id(store: RunStore, original_id: str, taken: set[str]) -> str:
    base = original_id[:110]
    for _ in range(100):
        candidate = f"{base}-imp{secrets.token_hex(3)}"
        if candidate not in taken and not (store.root / candidate).exists():
            return candidate
    raise RunError(f"{store.root}: cannot find a free id for run {original_id}")  # pragma: no cover


def _extract_run(zf: zipfile.ZipFile, run_entry: dict, dest: Path, label: str) -> None:
    """Extract the files of one run into the new folder ``dest``, checking each sha256."""
    mode = _file_mode()
    dest.mkdir()
    for f in run_entry["files"]:
        name = f"{run_entry['id']}/{f['path']}"
        target = dest.joinpath(*PurePosixPath(f["path"]).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                     mode)
        with os.fdopen(fd, "wb") as out, zf.open(name) as src:
            while chunk := src.read(_CHUNK):
                size += len(chunk)
                if size > f["size"]:
                    raise DataError(f"{label}: entry {name!r} holds more than its declared "
                                    f"{f['size']} bytes: refused")
                digest.update(chunk)
                out.write(chunk)
        if size != f["size"] or digest.hexdigest() != f["sha256"]:
            raise DataError(f"{label}: {name} does not match its sha256 in {MANIFEST} "
                            f"(the archive was altered or damaged): nothing imported")


def import_runs(store: RunStore, archive: str | os.PathLike) -> ImportResult:
    """Import the runs of ``archive`` (written by :func:`export_runs`) into ``store``; see
    the module docstring for what is refused, skipped and renamed. DataError (one line) for
    an archive that is refused, RunError when the store cannot be written. Nothing is left
    in the store when it fails."""
    archive = Path(archive)
    label = str(archive)
    if not archive.exists():
        raise DataError(f"{label}: no such file")
    if not archive.is_file():
        raise DataError(f"{label}: not a file, expected a zip archive")
    root = store.root
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"{root}: cannot create the runs folder ({exc.strerror or exc})") from None
    limit = max_import_bytes()
    result = ImportResult()
    staging: Path | None = None
    moved: list[Path] = []
    try:
        with zipfile.ZipFile(archive) as zf:
            manifest = _read_manifest(zf, label)
            total = _check_entries(zf, manifest, label)
            if total > limit:
                raise DataError(f"{label}: its files add up to {_size_text(total)}, over the "
                                f"import limit of {_size_text(limit)} ({MAX_BYTES_ENV})")
            free = shutil.disk_usage(root).free
            if total > free:
                raise DataError(f"{label}: its files add up to {_size_text(total)}, more than "
                                f"the {_size_text(free)} free in {root}")
            # Decide, from the manifest, which runs are already here and which need new ids.
            plan: list[tuple[dict, str]] = []
            taken: set[str] = set()
            for run_entry in manifest["runs"]:
                original = run_entry["id"]
                files = {f["path"]: f["sha256"] for f in run_entry["files"]}
                record = _archived_record(zf, run_entry, label)
                if record.get("status") not in ENDED:
                    raise DataError(f"{label}: run {original} is {record.get('status')!r} in "
                                    f"its {RUN_FILE}: only ended runs can be imported")
                fingerprint = _run_fingerprint_from_files(files, record)
                same = next((r for r in _candidates(store, original)
                             if _existing_fingerprint(r, list(files)) == fingerprint), None)
                if same is not None:
                    result.skipped.append({"original_id": original, "run_id": same.id,
                                           "reason": "an identical run is already in the store"})
                    continue
                dest_id = original
                if (root / original).exists() or original in taken:
                    dest_id = _new_id(store, original, taken)
                taken.add(dest_id)
                plan.append((run_entry, dest_id))
            if not plan:
                return result
            staging = Path(tempfile.mkdtemp(prefix=".import-", dir=root))
            for run_entry, dest_id in plan:
                _extract_run(zf, run_entry, staging / dest_id, label)
        stamp = now_iso()
        for run_entry, dest_id in plan:
            run = Run(staging / dest_id)
            run.info()  # RunError naming the file when run.json is not a record
            run.update(id=dest_id, imported_from={
                "id": run_entry["id"], "archive": archive.name, "time": stamp,
                "oceanlab_version": manifest.get("oceanlab_version")})
        for run_entry, dest_id in plan:
            final = root / dest_id
            try:
                final.mkdir()  # reserve the id: a folder made meanwhile is never replaced
            except FileExistsError:
                raise RunError(f"run {dest_id} appeared in {root} during the import; "
                               f"nothing imported, try again") from None
            moved.append(final)
            os.rename(staging / dest_id, final)  # replaces only the empty reserved folder
            result.imported.append({"run_id": dest_id, "original_id": run_entry["id"]})
        moved = []
        return result
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DataError(f"{label}: not a readable zip archive ({exc})") from None
    except NotImplementedError as exc:
        raise DataError(f"{label}: {exc}") from None
    except OSError as exc:
        raise RunError(f"{exc.filename or root}: cannot import ({exc.strerror or exc})") from None
    finally:
        for path in moved:  # a failure after some runs were moved in: take them out again
            shutil.rmtree(path, ignore_errors=True)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _archived_record(zf: zipfile.ZipFile, run_entry: dict, label: str) -> dict:
    """The run.json of an archived run (read from the archive, sha256 checked)."""
    f = next(f for f in run_entry["files"] if f["path"] == RUN_FILE)
    if f["size"] > MAX_MANIFEST_BYTES:
        raise DataError(f"{label}: run {run_entry['id']}: {RUN_FILE} is {_size_text(f['size'])}: refused")
    data = zf.read(f"{run_entry['id']}/{RUN_FILE}")
    if hashlib.sha256(data).hexdigest() != f["sha256"]:
        raise DataError(f"{label}: {run_entry['id']}/{RUN_FILE} does not match its sha256 in "
                        f"{MANIFEST} (the archive was altered or damaged): nothing imported")
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise DataError(f"{label}: {run_entry['id']}/{RUN_FILE} is not valid JSON") from None
    if not isinstance(record, dict):
        raise DataError(f"{label}: {run_entry['id']}/{RUN_FILE} is not a JSON object")
    return record

