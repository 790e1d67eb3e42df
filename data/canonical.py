"""Open gridded NetCDF into OceanLab's canonical form.

The canonical dataset (ARCHITECTURE.md) has dimensions ``time``, ``lat``, ``lon``; latitude
ascending; longitude monotonic in −180…180 (0…360 kept only when the domain crosses the
antimeridian); float32 data; NaN for land and missing values; an ocean ``mask(lat, lon)``;
units and long names kept from the file.

Coordinates are found whatever they are called, first through CF metadata with cf-xarray
(``axis``, ``standard_name``, ``units``), then through common names. Every problem with the
input raises :class:`~oceanlab_errors.DataError` with a one-line message naming the file.

Data that would be silently wrong are refused or repaired, and the repair is said in
``ds.attrs["oceanlab_notes"]``:

* paths: only regular, readable, non-empty files are opened (a FIFO, a device or a
  directory is refused from its ``stat`` without opening it); truncated classic NetCDF and
  HDF5 files are recognised from their headers, and so is a netCDF-4 file still open for
  writing (its HDF5 superblock says so);
* 2-D (curvilinear) latitude/longitude, as NEMO writes them, are regridded onto a regular
  grid (linear by default, ``regrid=``; :mod:`data.regrid`), said in ``oceanlab_regrid``;
* time steps out of order are sorted, with a note; repeated ones are refused;
* a plain HDF5 file without NetCDF dimensions is refused; so are coordinates with missing
  or impossible values (latitude beyond ±90, longitude beyond −360…720, NaT times), times
  without usable units (numbers, or dates that all fall on 1970-01-01) and, for a glob,
  files on different grids;
* likely undeclared fill values of numeric variables (|x| ≥ 1e15, and values exactly equal
  to a usual sentinel such as −999, −9999 or −32767 that lie far outside the rest of the
  variable) are masked to NaN with a note giving the count;
* text and date-valued variables are never used as fields: they are listed by
  :func:`summarize` with their kind.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import stat
import struct
import warnings
from pathlib import Path

import cf_xarray  # noqa: F401  (registers the .cf accessor)
import numpy as np
import pandas as pd
import xarray as xr

from data.regrid import regrid_curvilinear
from oceanlab_errors import DataError

_COMMON_NAMES = {
    "time": ("time", "t", "time_counter", "date", "valid_time", "ocean_time", "times"),
    "lat": ("lat", "latitude", "nav_lat", "y", "lat_rho", "yt_ocean", "yh", "rlat", "nlat"),
    "lon": ("lon", "longitude", "nav_lon", "x", "lon_rho", "xt_ocean", "xh", "rlon", "nlon"),
}
#: cf-xarray's coordinate key and axis for each canonical coordinate.
_CF_KEYS = {"time": ("time", "T"), "lat": ("latitude", "Y"), "lon": ("longitude", "X")}
#: Values this large are fill values that the file did not declare.
_HUGE = 1e15
#: Usual fill values; masked only where they are exact and far outside the other values.
_SENTINELS = (-999.0, -9999.0, -99999.0, -999999.0, -9999999.0, 999.0, 9999.0, 99999.0,
              999999.0, 9999999.0, -32767.0, -32768.0, 32767.0, -999.9, -9999.9, -99.99,
              -1e10, 1e10, -1e12, 1e12)
#: Usual fill values of packed integers (compared after scale_factor / add_offset).
_PACKED_SENTINELS = (-32767, -32768, 32767, -2147483647, -2147483648, 2147483647,
                     -127, -128, 127, 255, 65535)
#: Attribute of the canonical dataset listing variables that are not numeric fields.
SKIPPED_ATTR = "oceanlab_skipped_vars"
_NOTES_ATTR = "oceanlab_notes"
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)
_EPOCH = np.datetime64("1970-01-01", "ns")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return _one_line(text.splitlines()[0]) if text else type(exc).__name__


# ---------------------------------------------------------------------------- paths
def _check_file(f: Path, pattern: str | None = None) -> None:
    """Refuse anything but a readable, non-empty regular file, without opening it."""
    via = f" (matched by {pattern})" if pattern else ""
    try:
        st = os.stat(f)
    except FileNotFoundError:
        if os.path.islink(f):
            raise DataError(f"{f}: broken symbolic link (its target {os.readlink(f)} does not "
                            f"exist){via}") from None
        raise DataError(f"{f}: no such file") from None
    except PermissionError:
        raise DataError(f"{f}: permission denied (cannot look at this path){via}") from None
    except OSError as exc:  # symlink loop, name too long, I/O error
        raise DataError(f"{f}: cannot be accessed ({exc.strerror or exc}){via}") from None
    mode = st.st_mode
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
        hint = (f", expected a NetCDF file (or a glob such as {f}/*.nc)" if stat.S_ISDIR(mode)
                and not pattern else ", expected a NetCDF file")
        raise DataError(f"{f}: is {kind}, not a regular file{via}{hint}")
    if st.st_size == 0:
        raise DataError(f"{f}: empty file (0 bytes){via}")
    if not os.access(f, os.R_OK):
        raise DataError(f"{f}: permission denied (file not readable){via}")


def _zarr_store(path: str | os.PathLike) -> Path | None:
    """``path`` when it is a Zarr store (a directory named ``*.zarr`` or holding
    ``zarr.json`` / ``.zgroup``), else None."""
    p = Path(path)
    try:
        if not p.is_dir():
            return None
        if p.suffix == ".zarr" or (p / "zarr.json").is_file() or (p / ".zgroup").is_file():
            return p
    except OSError:
        return None
    return None


def _check_store(p: Path) -> None:
    """A Zarr store must be a readable directory with its metadata."""
    if not os.access(p, os.R_OK | os.X_OK):
        raise DataError(f"{p}: permission denied (Zarr store not readable)")
    if not any((p / name).is_file() for name in ("zarr.json", ".zgroup", ".zmetadata")):
        raise DataError(f"{p}: not a Zarr store (no zarr.json or .zgroup inside)")


def _store_files(p: Path) -> list[Path]:
    """The files of a Zarr store, sorted (for its fingerprint)."""
    return sorted(f for f in p.rglob("*") if f.is_file())


def _expand_paths(path: str | os.PathLike) -> list[Path]:
    text = str(path)
    p = Path(text)
    if _zarr_store(p) is not None:
        _check_store(p)
        return [p]
    try:
        is_dir = p.is_dir()
    except OSError:
        is_dir = False
    if is_dir:  # a directory of NetCDF files (daily files, say): all its *.nc, sorted
        if not os.access(p, os.R_OK | os.X_OK):
            raise DataError(f"{p}: permission denied (directory not readable)")
        files = sorted(f for f in p.glob("*.nc") if not f.name.startswith("."))
        if not files:
            raise DataError(f"{p}: is a directory, not a regular file, and neither holds *.nc "
                            f"files nor is a Zarr store")
        for f in files:
            _check_file(f, str(p))
        return files
    if any(ch in text for ch in "*?[") and not Path(text).exists():
        files = sorted(Path(p) for p in glob.glob(text))
        if not files:
            raise DataError(f"{text}: no file matches this pattern")
        for f in files:
            _check_file(f, text)
        return files
    p = Path(text)
    _check_file(p)
    return [p]


# ---------------------------------------------------------------------------- headers
_CDF_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}


def _classic_data_end(fh, version: int) -> int | None:
    """Byte where the data of a classic (CDF-1/2/5) file end, from its header.

    Returns None where the header cannot be followed (then the NetCDF library decides).
    """
    big = version == 5
    count_fmt, count_len = (">Q", 8) if big else (">I", 4)

    def read(n):
        b = fh.read(n)
        if len(b) != n:
            raise EOFError
        return b

    def count():
        return struct.unpack(count_fmt, read(count_len))[0]

    def name():
        n = count()
        read(n + (-n) % 4)

    def attrs():
        tag, n = struct.unpack(">I", read(4))[0], count()
        for _ in range(n if tag else 0):
            name()
            nc_type = struct.unpack(">I", read(4))[0]
            size = count() * _CDF_TYPE_SIZE[nc_type]
            read(size + (-size) % 4)

    fh.seek(4)
    numrecs = count()
    tag, n_dims = struct.unpack(">I", read(4))[0], count()
    dims = []
    for _ in range(n_dims if tag else 0):
        name()
        dims.append(count())
    attrs()
    tag, n_vars = struct.unpack(">I", read(4))[0], count()
    end, rec_last, rec_size, rec_vars = 0, None, 0, 0
    for _ in range(n_vars if tag else 0):
        name()
        ids = [struct.unpack(count_fmt, read(count_len))[0] for _ in range(count())]
        attrs()
        nc_type = struct.unpack(">I", read(4))[0]
        vsize = count() if big else struct.unpack(">I", read(4))[0]
        begin = struct.unpack(">I" if version == 1 else ">Q", read(4 if version == 1 else 8))[0]
        shape = [dims[i] for i in ids]
        is_record = bool(ids) and shape[0] == 0
        nbytes = int(np.prod([s for s in shape[1:]] if is_record else shape, dtype=np.int64))
        nbytes *= _CDF_TYPE_SIZE[nc_type]
        if vsize in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
            return None  # a variable over 4 GiB: sizes are not in the header
        if is_record:
            rec_vars += 1
            rec_size += vsize
            if rec_last is None or begin > rec_last[0]:
                rec_last = (begin, nbytes)
        else:
            end = max(end, begin + nbytes)
    if rec_vars and numrecs not in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF) and numrecs > 0:
        if rec_vars == 1:
            rec_size = rec_last[1]  # a lone record variable is not padded
        end = max(end, rec_last[0] + (numrecs - 1) * rec_size + rec_last[1])
    return end


def _hdf5_end(fh, offset: int) -> int | None:
    """End-of-file address recorded in an HDF5 superblock at ``offset``."""
    fh.seek(offset + 8)
    head = fh.read(40)
    if len(head) < 16:
        return None
    version = head[0]
    if version in (0, 1):
        size_off = head[5]
        pos = 16 + (4 if version == 1 else 0) + 2 * size_off  # skip base, free-space address
    elif version in (2, 3):
        size_off = head[1]
        pos = 4 + 2 * size_off  # skip base, extension address
    else:
        return None
    if size_off not in (4, 8):
        return None
    fh.seek(offset + 8 + pos)
    raw = fh.read(size_off)
    if len(raw) != size_off:
        return None
    end = int.from_bytes(raw, "little")
    return None if end in (2**32 - 1, 2**64 - 1) else offset + end


def _check_header(f: Path) -> None:
    """Refuse files that are not NetCDF / HDF5, or whose header says they are truncated."""
    size = f.stat().st_size
    try:
        with open(f, "rb") as fh:
            magic = fh.read(8)
            end = None
            if magic[:3] == b"CDF" and magic[3:4] in (b"\x01", b"\x02", b"\x05"):
                try:
                    end = _classic_data_end(fh, magic[3])
                except EOFError:
                    raise DataError(f"{f}: truncated file ({size} bytes end inside the NetCDF "
                                    f"header)") from None
                except (KeyError, IndexError, struct.error, ValueError, OverflowError):
                    end = None
            else:
                for offset in (0, 512, 1024, 2048):
                    fh.seek(offset)
                    if fh.read(8) == b"\x89HDF\r\n\x1a\n":
                        _refuse_open_for_writing(f, fh, offset)
                        end = _hdf5_end(fh, offset)
                        break
                else:
                    raise DataError(f"{f}: not a NetCDF file (unrecognised header)")
    except PermissionError:
        raise DataError(f"{f}: permission denied (file not readable)") from None
    except OSError as exc:
        raise DataError(f"{f}: cannot be read ({exc.strerror or exc})") from None
    if end is not None and size < end:
        raise DataError(f"{f}: truncated file ({size} bytes; its header says the data end at "
                        f"byte {end}); it is incomplete: still being written, or cut short by "
                        f"a copy or a download")


def _refuse_open_for_writing(f: Path, fh, offset: int) -> None:
    """An HDF5 superblock of version 2/3 marks a file open for writing (flag bits 0 and 2,
    as netCDF-4 leaves them until the file is closed): its content is not final."""
    fh.seek(offset + 8)
    head = fh.read(4)
    if len(head) == 4 and head[0] in (2, 3) and head[3] & 0x05:
        raise DataError(f"{f}: incomplete file: still being written (its HDF5 header marks it "
                        f"open for writing); wait until the writer closes it (if no program "
                        f"writes it any more, its writer stopped before closing it: "
                        f"'h5clear -s' removes the mark)")


# ---------------------------------------------------------------------------- opening
def _time_coder():
    return xr.coders.CFDatetimeCoder(use_cftime=None)


def _open_zarr(f: Path, chunks) -> xr.Dataset:
    """A Zarr store, lazily (Dask chunks of the store unless ``chunks`` says otherwise)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return xr.open_zarr(f, chunks=chunks if chunks is not None else {},
                                decode_times=_time_coder(), consolidated=None)
    except ImportError:
        raise DataError(f"{f}: is a Zarr store, but the zarr package is not installed "
                        f"(pip install zarr)") from None
    except Exception as exc:  # noqa: BLE001 (zarr raises many kinds for a broken store)
        raise DataError(f"{f}: cannot be read as a Zarr store ({_first_line(exc)})") from None


def _open_one(f: Path, chunks) -> xr.Dataset:
    if _zarr_store(f) is not None:
        return _open_zarr(f, chunks)
    _check_header(f)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return xr.open_dataset(f, chunks=chunks, decode_times=_time_coder())
    except DataError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # netCDF4/HDF5 raise many kinds for corrupt files
        bad = _undecodable_times(f)
        if bad:
            raise DataError(f"{f}: time units {bad[1]!r} of {bad[0]!r} cannot be decoded into "
                            f"dates") from None
        raise DataError(f"{f}: cannot be read as NetCDF ({_first_line(exc)}); is it truncated "
                        f"or corrupt?") from None


def _undecodable_times(f: Path) -> tuple[str, str] | None:
    """(variable, units) of the first variable whose time units xarray cannot decode."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with xr.open_dataset(f, decode_times=False) as probe:
                for v in probe.variables:
                    units = probe[v].attrs.get("units")
                    if not isinstance(units, str) or " since " not in f" {units} ":
                        continue
                    try:
                        xr.decode_cf(probe[[v]].drop_vars([c for c in probe[[v]].coords if c != v]),
                                     decode_times=_time_coder())
                    except Exception:
                        return str(v), units
    except Exception:
        return None
    return None


#: Calendars that agree on every date OceanLab handles (after 1582).
_CALENDAR_GROUP = {"gregorian": "standard", "proleptic_gregorian": "standard",
                   "365_day": "noleap", "366_day": "all_leap"}


def _calendar(t: xr.DataArray) -> str:
    """The calendar of a decoded time coordinate, as its file names it."""
    try:
        index = t.to_index()
    except (ValueError, TypeError):
        index = None
    cal = getattr(index, "calendar", None) if isinstance(index, xr.CFTimeIndex) else None
    cal = cal or t.encoding.get("calendar") or t.attrs.get("calendar") or "standard"
    return str(cal).lower()


def _open_many(files: list[Path], chunks, pattern: str) -> xr.Dataset:
    """Concatenate files along time; they must share one grid, one set of variables and
    one calendar."""
    parts, ref, calendars = [], None, []
    for f in files:
        ds = _open_one(f, chunks or {})
        names = _coord_names(ds, str(f))
        _refuse_phony(ds, names, str(f))
        lat = np.asarray(ds[names["lat"]].values)
        lon = np.asarray(ds[names["lon"]].values)
        grid_vars = {str(v) for v in ds.data_vars if _on_grid(ds[v], ds, names)}
        if ref is None:
            ref = (f, names, lat, lon, grid_vars)
        else:
            f0, names0, lat0, lon0, vars0 = ref
            same = (names == names0 and lat.shape == lat0.shape and lon.shape == lon0.shape
                    and np.allclose(lat, lat0, equal_nan=True)
                    and np.allclose(lon, lon0, equal_nan=True))
            if not same:
                raise DataError(
                    f"{f}: its grid ({_grid_text(lat, lon)}) differs from {f0.name}'s "
                    f"({_grid_text(lat0, lon0)}); all files of {pattern} must share one "
                    f"latitude/longitude grid")
            if grid_vars != vars0:
                extra = min(grid_vars ^ vars0)
                where = f0.name if extra in vars0 else f.name
                raise DataError(f"{f}: files of {pattern} hold different variables "
                                f"({extra!r} is only in {where})")
        tname = names["time"]
        if ds[tname].dtype.kind in "iuf":
            units = ds[tname].attrs.get("units")
            raise DataError(f"{f}: time units {units!r} cannot be decoded into dates" if units
                            else f"{f}: time has no units such as 'days since 2000-01-01'; "
                                 f"cannot make dates")
        if ds[tname].ndim == 0:
            ds = ds.set_coords(tname).expand_dims(tname)
        elif ds[tname].ndim != 1:
            raise DataError(f"{f}: time coordinate {tname!r} has {ds[tname].ndim} dimensions; "
                            f"expected one")
        cal = _calendar(ds[tname])
        if calendars and _CALENDAR_GROUP.get(cal, cal) != _CALENDAR_GROUP.get(calendars[0][1],
                                                                             calendars[0][1]):
            raise DataError(f"{pattern}: mixed calendars across the files: {calendars[0][0]} "
                            f"uses {calendars[0][1]!r}, {f} uses {cal!r}; convert the files to "
                            f"one calendar")
        calendars.append((f, cal))
        parts.append(ds)
    tdim = parts[0][ref[1]["time"]].dims[0]
    if any(p[ref[1]["time"]].dims[0] != tdim for p in parts):
        raise DataError(f"{pattern}: the files store time along different dimensions")

    def first_time(ds):
        values = ds[ref[1]["time"]].values
        return values[0] if values.size else values

    try:
        order = np.argsort([first_time(p) for p in parts], kind="stable")
        parts = [parts[i] for i in order]
    except TypeError:
        pass  # mixed time types: the duplicate / type checks below speak
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return xr.concat(parts, dim=tdim, data_vars="minimal", coords="minimal",
                             compat="override", join="override", combine_attrs="override")
    except Exception as exc:
        if isinstance(exc, MemoryError):
            raise
        raise DataError(f"{pattern}: the files cannot be joined along time "
                        f"({_first_line(exc)})") from None


def _grid_text(lat: np.ndarray, lon: np.ndarray) -> str:
    def rng(a):
        a = np.asarray(a, dtype=np.float64) if np.issubdtype(np.asarray(a).dtype, np.number) else a
        return f"{np.nanmin(a):g}..{np.nanmax(a):g}" if np.size(a) else "empty"
    try:
        return f"{np.size(lat)} lat {rng(lat)} x {np.size(lon)} lon {rng(lon)}"
    except (TypeError, ValueError):
        return f"{np.size(lat)} lat x {np.size(lon)} lon"


def _find_coord(ds: xr.Dataset, kind: str) -> str | None:
    """Name of the variable holding coordinate ``kind`` ("time", "lat", "lon")."""
    coordinate_key, axis = _CF_KEYS[kind]
    try:
        names = ds.cf.coordinates.get(coordinate_key, []) or ds.cf.axes.get(axis, [])
    except Exception:  # cf-xarray chokes on some odd attributes; fall back to names
        names = []
    names = [n for n in names if n in ds.variables]
    # prefer dimension coordinates, then 1-D variables (a date-valued field is not the axis)
    names.sort(key=lambda n: (n not in ds.dims, ds[n].ndim != 1))
    if names:
        return names[0]
    lower = {str(n).lower(): n for n in ds.variables}
    for cand in _COMMON_NAMES[kind]:
        if cand in lower:
            return lower[cand]
    if kind == "time":
        for n in ds.variables:
            if np.issubdtype(ds[n].dtype, np.datetime64) or "since" in str(ds[n].attrs.get("units", "")):
                return n
    return None


def _coord_names(raw: xr.Dataset, label: str) -> dict[str, str]:
    names = {k: _find_coord(raw, k) for k in ("time", "lat", "lon")}
    if names["lat"] is None or names["lon"] is None:
        raise DataError(f"{label}: no latitude/longitude coordinates found "
                        f"(looked for CF axis/standard_name/units and names like lat, lon)")
    if names["time"] is None:
        raise DataError(f"{label}: no time coordinate found")
    if len({names["time"], names["lat"], names["lon"]}) < 3:
        raise DataError(f"{label}: variable {names['lat']!r} is taken for two coordinates")
    for k in ("lat", "lon"):
        n = names[k]
        if raw[n].ndim == 0:
            raise DataError(f"{label}: {k} '{n}' is a single number, not a coordinate axis; "
                            f"expected a 1-D {k} dimension")
        if raw[n].ndim != 1:
            raise DataError(f"{label}: {raw[n].ndim}-D (curvilinear) {k} coordinates '{n}' are "
                            f"regridded only as a 2-D latitude/longitude pair of one file "
                            f"(data.regrid), not here; regrid to a regular lat/lon grid first "
                            f"(e.g. cdo remapbil)")
    dims = {k: raw[names[k]].dims[0] if raw[names[k]].ndim == 1 else None for k in names}
    if dims["lat"] == dims["lon"] or (dims["time"] is not None and dims["time"] in
                                      (dims["lat"], dims["lon"])):
        shared = dims["lat"] if dims["lat"] == dims["lon"] else dims["time"]
        raise DataError(f"{label}: coordinates share the dimension '{shared}' (along-track, "
                        f"station or trajectory data), not a latitude/longitude grid")
    return names


def _refuse_phony(raw: xr.Dataset, names: dict[str, str], label: str) -> None:
    """A plain HDF5 file (no dimension scales) gets made-up ``phony_dim_*`` dimensions."""
    phony = [n for n in names.values() if any(str(d).startswith("phony_dim") for d in raw[n].dims)]
    if phony:
        raise DataError(f"{label}: plain HDF5 file without NetCDF dimensions ('{phony[0]}' has "
                        f"none); write it with netCDF4 or xarray so that coordinates are "
                        f"dimensions")


def _on_grid(da: xr.DataArray, raw: xr.Dataset, names: dict[str, str]) -> bool:
    dims = set(da.dims)
    return raw[names["lat"]].dims[0] in dims and raw[names["lon"]].dims[0] in dims


def _kind(da: xr.DataArray) -> str:
    """``field`` for numbers, else ``text``, ``time`` or ``other`` (never used as a field)."""
    k = da.dtype.kind
    if k in "biuf":
        return "field"
    if k in "SUa":
        return "text"
    if k in "mM":
        return "time"
    if k == "O":
        try:
            sample = da.data.ravel()[:1] if isinstance(da.data, np.ndarray) else \
                np.asarray(da.isel({d: 0 for d in da.dims}).values).ravel()
        except Exception:
            return "other"
        if sample.size and isinstance(sample[0], (str, bytes)):
            return "text"
        if sample.size and hasattr(sample[0], "calendar"):
            return "time"
        return "other"
    return "other"


# ---------------------------------------------------------------------------- coordinates
def _check_coordinates(raw: xr.Dataset, names: dict[str, str], label: str) -> None:
    """Latitude / longitude must be finite numbers in range; time must not be missing."""
    for k, name, lo, hi, what in (("lat", names["lat"], -90.0, 90.0, "latitude"),
                                  ("lon", names["lon"], -360.0, 720.0, "longitude")):
        values = np.asarray(raw[name].values)
        if values.size == 0:
            raise DataError(f"{label}: {what} '{name}' is empty (0 points)")
        if values.dtype.kind not in "iuf":
            raise DataError(f"{label}: {what} '{name}' holds {values.dtype} values, not numbers")
        values = values.astype(np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            raise DataError(f"{label}: {what} '{name}' has {int(bad.sum())} missing or "
                            f"non-finite values (NaN/inf) of {values.size}")
        if values.min() < lo or values.max() > hi:
            raise DataError(f"{label}: {what} '{name}' has values outside {lo:g}..{hi:g} "
                            f"(min {values.min():g}, max {values.max():g})")
    t = raw[names["time"]]
    if t.ndim > 1:
        raise DataError(f"{label}: time coordinate '{names['time']}' has {t.ndim} dimensions; "
                        f"expected one")
    if t.size == 0:
        raise DataError(f"{label}: time '{names['time']}' is empty (0 steps)")


def _to_datetime_index(ds: xr.Dataset, label, units=None) -> xr.Dataset:
    index = ds.indexes.get("time")
    values = np.asarray(ds["time"].values)
    if isinstance(index, xr.CFTimeIndex):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return ds.assign_coords(time=index.to_datetimeindex(time_unit="ns"))
        except Exception:
            try:
                return ds.convert_calendar("standard", align_on="year", use_cftime=False)
            except Exception as exc:
                raise DataError(f"{label}: cannot convert calendar '{index.calendar}' "
                                f"({_first_line(exc)})") from None
    if values.dtype.kind in "iuf":
        if units:
            raise DataError(f"{label}: time units {units!r} cannot be decoded into dates")
        raise DataError(f"{label}: time has no units such as 'days since 2000-01-01'; cannot make dates")
    if values.dtype.kind in "OSU":
        try:
            parsed = pd.to_datetime(pd.Index(values).astype(str), errors="raise")
        except (ValueError, TypeError, OverflowError):
            example = values.ravel()[0] if values.size else ""
            raise DataError(f"{label}: time values are not dates (e.g. {example!r}); expected "
                            f"numbers with units such as 'days since 2000-01-01'") from None
        return ds.assign_coords(time=parsed.values.astype("datetime64[ns]"))
    if values.dtype.kind != "M":
        raise DataError(f"{label}: time holds {values.dtype} values, not dates")
    return ds


def _check_times(ds: xr.Dataset, label: str) -> None:
    values = ds["time"].values.astype("datetime64[ns]")
    nat = np.isnat(values)
    if nat.any():
        raise DataError(f"{label}: time has {int(nat.sum())} missing values (NaT) of "
                        f"{values.size}")
    if values.size > 1:
        if np.all(np.abs(values - _EPOCH) < np.timedelta64(1, "D")):
            raise DataError(f"{label}: all {values.size} dates fall on 1970-01-01; the time "
                            f"values look like counts, not dates: check the time units")
        steps = np.diff(np.unique(values))
        if steps.size and steps.min() < np.timedelta64(1, "m"):
            raise DataError(f"{label}: time steps as short as {pd.Timedelta(steps.min())} "
                            f"(from {pd.Timestamp(values.min())}); the time units are probably "
                            f"wrong (e.g. seconds for days)")


def _normalise_lon(ds: xr.Dataset) -> tuple[xr.Dataset, list[str]]:
    lon = ds["lon"].values.astype(np.float64)
    notes: list[str] = []
    if lon.max() > 180.0 or lon.min() < -180.0:
        wrapped = ((lon + 180.0) % 360.0) - 180.0
        order = np.sort(np.unique(wrapped))
        steps = np.diff(order)
        # Keep 0..360 when the domain crosses the antimeridian (wrapping opens a gap).
        typical = np.median(np.diff(np.sort(lon))) if lon.size > 1 else 0.0
        if (lon.size > 1 and steps.size and steps.max() > 3 * typical
                and order[-1] - order[0] > 180 and lon.max() - lon.min() < 360.0):
            return ds, notes
        ds = ds.assign_coords(lon=wrapped)
        notes.append("lon: 0…360 turned into −180…180")
        repeated = pd.Index(wrapped).duplicated()
        if repeated.any():  # a cyclic column (0 and 360) or a grid spanning more than 360°
            ds = ds.isel(lon=np.flatnonzero(~repeated))
            notes.append(f"lon: dropped {int(repeated.sum())} repeated column(s) (same "
                         f"longitude modulo 360)")
    return ds, notes


# ---------------------------------------------------------------------------- region / period
def _as_region(region, label: str) -> tuple[float, float, float, float]:
    """``(lon0, lon1, lat0, lat1)`` from ``"lon0,lon1,lat0,lat1"`` or four numbers."""
    items = str(region).split(",") if isinstance(region, str) else list(region)
    try:
        lon0, lon1, lat0, lat1 = (float(v) for v in items)
    except (TypeError, ValueError):
        raise DataError(f"{label}: region {region!r} is not four numbers lon0,lon1,lat0,lat1"
                        ) from None
    if not all(np.isfinite([lon0, lon1, lat0, lat1])):
        raise DataError(f"{label}: region {region!r} holds a non-finite number")
    if not (-90 <= lat0 < lat1 <= 90):
        raise DataError(f"{label}: region latitudes {lat0:g}..{lat1:g} must satisfy "
                        f"-90 <= lat0 < lat1 <= 90")
    return lon0, lon1, lat0, lat1


def _as_period(period, label: str) -> tuple[pd.Timestamp, pd.Timestamp, str]:
    """``(first, last, text)``: ``last`` is the end of END's day when END is a date."""
    items = str(period).replace("/", ",").split(",") if isinstance(period, str) else list(period)
    try:
        start, end = (str(v).strip() for v in items)
        first, last = pd.Timestamp(start), pd.Timestamp(end)
    except (TypeError, ValueError):
        raise DataError(f"{label}: period {period!r} is not two dates START,END") from None
    if len(end) <= 10:  # a date: the whole day
        last = last + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
    if last < first:
        raise DataError(f"{label}: period {start},{end} ends before it starts")
    return first, last, f"{start},{end}"


def _cut(ds: xr.Dataset, region, period, label: str) -> tuple[xr.Dataset, list[str]]:
    """Keep the points of ``region`` and the steps of ``period`` (lazily: an ``isel`` on
    the canonical, still unloaded dataset). A region with lon0 > lon1 crosses the
    antimeridian: its longitudes run on past 180 (e.g. 170..190). DataError for a cut that
    keeps nothing, naming the grid's extent or the data's period."""
    notes: list[str] = []
    if region is not None:
        lon0, lon1, lat0, lat1 = _as_region(region, label)
        lat = ds["lat"].values.astype(np.float64)
        lon = ds["lon"].values.astype(np.float64)
        start = ((lon0 + 180.0) % 360.0) - 180.0
        span = lon1 - lon0 if lon1 >= lon0 else lon1 - lon0 + 360.0
        eps = 1e-9
        if span >= 360.0 - eps:
            keep_lon = np.ones(lon.size, dtype=bool)
            shifted = lon
        else:
            offset = (lon - start) % 360.0
            keep_lon = offset <= span + eps
            shifted = start + offset
            shifted = np.where(np.isclose(shifted, lon, rtol=0, atol=1e-9), lon, shifted)
        keep_lat = (lat >= lat0 - eps) & (lat <= lat1 + eps)
        if not keep_lon.any() or not keep_lat.any():
            raise DataError(f"{label}: region lon {lon0:g}..{lon1:g}, lat {lat0:g}..{lat1:g} "
                            f"holds no grid point; the grid covers lon {lon.min():g}.."
                            f"{lon.max():g}, lat {lat.min():g}..{lat.max():g}")
        idx = np.flatnonzero(keep_lon)
        new_lon = shifted[idx]
        order = np.argsort(new_lon, kind="stable")
        ds = ds.isel(lat=np.flatnonzero(keep_lat), lon=idx[order])
        if not np.array_equal(new_lon[order], ds["lon"].values.astype(np.float64)):
            ds = ds.assign_coords(lon=("lon", new_lon[order].astype(ds["lon"].dtype),
                                       ds["lon"].attrs))
        notes.append(f"cut to region lon {lon0:g}..{lon1:g}, lat {lat0:g}..{lat1:g} "
                     f"({ds.sizes['lat']} x {ds.sizes['lon']} of {lat.size} x {lon.size} points)")
        ds.attrs["oceanlab_region"] = f"{lon0:g},{lon1:g},{lat0:g},{lat1:g}"
    if period is not None:
        first, last, text = _as_period(period, label)
        times = pd.DatetimeIndex(ds["time"].values)
        keep = (times >= first) & (times <= last)
        if not keep.any():
            raise DataError(f"{label}: period {text} holds no time step; the data cover "
                            f"{times.min().date()}..{times.max().date()} ({times.size} steps)")
        ds = ds.isel(time=np.flatnonzero(keep))
        notes.append(f"cut to period {text} ({int(keep.sum())} of {times.size} steps)")
        ds.attrs["oceanlab_period"] = text
    return ds, notes


# ---------------------------------------------------------------------------- values
def _compute(*objs):
    """Values of xarray objects (numpy or Dask backed) in one pass."""
    if any(getattr(o, "chunks", None) for o in objs):
        import dask

        return dask.compute(*[o.data for o in objs])
    return [o.values for o in objs]


def _sentinels(da: xr.DataArray, encoding: dict) -> np.ndarray:
    """Candidate fill values in ``da``'s dtype, packed ones decoded like xarray does."""
    dtype = da.dtype
    cands = [np.asarray(s, dtype=dtype) for s in _SENTINELS]
    scale, offset = encoding.get("scale_factor"), encoding.get("add_offset")
    if (scale is not None or offset is not None) and np.dtype(encoding.get("dtype", "f8")).kind in "iu":
        for s in _PACKED_SENTINELS:
            x = np.array([s], dtype=dtype)
            if scale is not None:
                x *= scale
            if offset is not None:
                x += offset
            cands.append(x[0])
    return np.unique(np.asarray(cands, dtype=dtype))


def _mask_fill_values(da: xr.DataArray, name: str, encoding: dict) -> tuple[xr.DataArray, list[str], bool]:
    """Mask undeclared fill values; returns (data, notes, all_nan)."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore")  # all-NaN slices
        return _mask_fill_values_quiet(da, name, encoding)


def _mask_fill_values_quiet(da, name, encoding):
    notes = []
    huge = abs(da) >= _HUGE
    n_huge, lo, hi = _compute(huge.sum(), da.min(), da.max())
    n_huge, lo, hi = int(n_huge), float(lo), float(hi)
    if n_huge:
        da = da.where(~huge)
        notes.append(f"{name}: masked {_points(n_huge)} with |value| >= 1e15 as undeclared "
                     f"fill values")
        lo, hi = map(float, _compute(da.min(), da.max()))
    cands = _sentinels(da, encoding)
    peeled: list[tuple[float, int]] = []
    work = da
    for _ in range(6):  # a few distinct sentinels at most on each side
        hit = [x for x in (lo, hi) if np.isfinite(x) and np.any(cands == x)]
        if not hit:
            break
        for x in dict.fromkeys(hit):
            n = int(_compute((work == x).sum())[0])
            peeled.append((x, n))
            work = work.where(work != x)
        lo, hi = map(float, _compute(work.min(), work.max()))
    if peeled:
        masked = []
        if not np.isfinite(lo):  # nothing but sentinels
            masked = peeled
        else:
            scale = max(hi - lo, abs(lo), abs(hi))
            for x, n in peeled:
                gap = (lo - x) if x < lo else (x - hi)
                if gap > scale:
                    masked.append((x, n))
        for x, n in masked:
            da = da.where(da != x)
            notes.append(f"{name}: masked {_points(n)} equal to {float(x):g} as undeclared fill "
                         f"values (far outside the other values)")
        if not masked:
            lo = float(_compute(da.min())[0])
    all_nan = not np.isfinite(float(lo))
    return da, notes, all_nan


def _points(n: int) -> str:
    return f"{n} point" if n == 1 else f"{n} points"


def _clean_attrs(attrs: dict) -> dict:
    out = {}
    for k, v in attrs.items():
        if isinstance(v, bytes):
            v = v.decode("utf-8", errors="replace")
        out[str(k)] = v
    return out


# ---------------------------------------------------------------------------- public API
def describe_step(step) -> str | None:
    """A time step as people write it: ``1 day``, ``6 hours``, ``30 minutes``, ``1 day 12
    hours``, ``1 month``/``1 year`` for a step of 28–31 / 365–366 days (None for None)."""
    if step is None:
        return None
    try:
        td = pd.Timedelta(step)
    except (TypeError, ValueError):
        return str(step)
    seconds = int(td.total_seconds())
    if seconds <= 0:
        return str(step)
    days = seconds / 86400
    if 28 <= days <= 31 and seconds % 86400 == 0:
        return "1 month"
    if days in (365, 366):
        return "1 year"
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n} {unit}{'s' if n != 1 else ''}")
    return " ".join(parts)


def fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 of the bytes of the file(s) behind ``path`` (a file, a glob, a directory of
    NetCDF files or a Zarr store: every file of the store, by its path inside it)."""
    h = hashlib.sha256()
    files: list[tuple[str, Path]] = []
    for f in _expand_paths(path):
        if _zarr_store(f) is not None:
            files += [(str(g.relative_to(f)), g) for g in _store_files(f)]
        else:
            files.append((f.name, f))
    for name, f in files:
        h.update(name.encode())
        try:
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        except OSError as exc:
            raise DataError(f"{f}: cannot be read ({exc.strerror or exc})") from None
    return "sha256:" + h.hexdigest()


def open_dataset(
    path: str | os.PathLike,
    variables: list[str] | None = None,
    *,
    chunks: dict | None = None,
    region=None,
    period=None,
    regrid: str = "linear",
    regrid_step_deg: float | None = None,
) -> xr.Dataset:
    """Open a NetCDF file, or lazily with Dask a glob of files, a directory of files or a
    Zarr store, in canonical form, cut to ``region`` and ``period`` before anything loads.

    Parameters
    ----------
    path : a file, a glob pattern (``"dir/*.nc"``), a directory (all its ``*.nc``, sorted)
        or a Zarr store (a directory ``*.zarr`` or holding ``zarr.json`` / ``.zgroup``); the
        files of a glob or directory must share one grid and one calendar and are joined
        along time.
    variables : data variables to keep (default: every numeric variable on the lat/lon grid,
        time-varying ones first).
    chunks : Dask chunks (default: eager for one file, file-sized chunks for a glob, the
        store's chunks for Zarr).
    region : ``(lon0, lon1, lat0, lat1)`` or ``"lon0,lon1,lat0,lat1"`` (degrees; lon0 > lon1
        crosses the antimeridian): keep the grid points inside, applied on the lazy dataset
        after the coordinates are canonical and before any value is read.
    period : ``(START, END)`` or ``"START,END"`` (dates, END's day included): keep those
        steps, likewise before any value is read.
    regrid : what to do with 2-D (curvilinear) latitude/longitude: ``linear`` (default) or
        ``nearest`` put the fields on a regular grid of ``regrid_step_deg`` degrees (default:
        the median source spacing), ``none`` refuses (:mod:`data.regrid`).

    Returns
    -------
    Dataset with dims (time, lat, lon), float32 variables, NaN for land/missing, a
    boolean ``mask(lat, lon)`` (True = ocean: finite at some time in the first variable).
    ``attrs["oceanlab_notes"]`` says what was repaired (masked fill values, dropped levels);
    ``attrs["oceanlab_skipped_vars"]`` (JSON) lists gridded variables that are not numbers.

    Raises
    ------
    DataError : the path, the file or its content cannot be used (one line naming the file).
    """
    label = str(path)
    try:
        return _open_dataset(path, variables, chunks, label, region, period,
                             regrid=regrid, regrid_step_deg=regrid_step_deg)
    except DataError as exc:
        raise DataError(_one_line(exc)) from None
    except (MemoryError, KeyboardInterrupt):
        raise
    except (OSError, RuntimeError) as exc:  # HDF5 / netCDF errors while reading the data
        raise DataError(f"{label}: cannot be read ({_first_line(exc)}); is it truncated or "
                        f"corrupt?") from exc
    except Exception as exc:  # anything else about the content: still one line for the user
        raise DataError(f"{label}: cannot be used ({type(exc).__name__}: "
                        f"{_first_line(exc)})") from exc


def _open_dataset(path, variables, chunks, label, region=None, period=None, *,
                  regrid="linear", regrid_step_deg=None) -> xr.Dataset:
    files = _expand_paths(path)
    if len(files) == 1:
        raw = _open_one(files[0], chunks)
    else:
        raw = _open_many(files, chunks, label)
    # 2-D (curvilinear) latitude/longitude: onto a regular grid, or refused (data/regrid.py)
    raw = regrid_curvilinear(raw, label, regrid, regrid_step_deg)

    names = _coord_names(raw, label)
    _refuse_phony(raw, names, label)
    _check_coordinates(raw, names, label)
    time_units = raw[names["time"]].attrs.get("units")
    if raw[names["time"]].ndim == 0:  # one map with a scalar time
        raw = raw.set_coords(names["time"]).expand_dims(names["time"])
    encodings = {str(v): dict(raw[v].encoding) for v in raw.data_vars}
    # Classify the variables on the grid before renaming.
    kinds = {str(v): _kind(raw[v]) for v in raw.data_vars
             if v not in names.values() and _on_grid(raw[v], raw, names)}
    # Rename the coordinates' dimensions and variables to canonical names.
    rename = {}
    for k, n in names.items():
        dim = raw[n].dims[0]
        if dim != k:
            rename[dim] = k
        if n != k and n != dim:
            rename[n] = k
    clash = [k for k in rename.values() if k in raw.variables and k not in rename]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "rename does not create an index": set below
        raw = raw.drop_vars(clash).rename(rename)
    raw = raw.set_coords([k for k in ("time", "lat", "lon") if k in raw.data_vars])
    for k in ("time", "lat", "lon"):
        if k not in raw.indexes:
            raw = raw.set_xindex(k)
    kinds = {rename.get(v, v): kind for v, kind in kinds.items()}

    numeric = [v for v, kind in kinds.items() if kind == "field" and v != "mask"]
    numeric.sort(key=lambda v: "time" not in raw[v].dims)  # time-varying fields first
    skipped = {v: kind for v, kind in kinds.items() if kind != "field"}
    available = ", ".join(numeric) or "none"
    if variables is not None:
        for v in variables:
            if v not in raw.data_vars:
                raise DataError(f"{label}: unknown variable {v!r}; available: {available}")
            if v not in kinds:
                raise DataError(f"{label}: variable {v!r} is not on the latitude/longitude "
                                f"grid (dims {tuple(map(str, raw[v].dims))}); gridded "
                                f"variables: {available}")
            if kinds[v] != "field":
                raise DataError(f"{label}: variable {v!r} holds {kinds[v]} values "
                                f"({raw[v].dtype}), not numbers; numeric variables: {available}")
        grid_vars = list(dict.fromkeys(variables))
    else:
        grid_vars = numeric
    if not grid_vars:
        extra = f" (only non-numeric: {', '.join(skipped)})" if skipped else ""
        raise DataError(f"{label}: no numeric variable on a latitude/longitude grid{extra}")

    ds = raw[grid_vars]
    ds = _to_datetime_index(ds, label, time_units)
    _check_times(ds, label)
    # Extra dimensions (depth, level, member): squeeze singletons, else take the first.
    notes = [n for n in str(raw.attrs.get(_NOTES_ATTR, "")).split("; ") if n]
    notes += [f"renamed {old} → {new}" for old, new in rename.items()]
    for v in grid_vars:
        da = ds[v]
        if "time" not in da.dims:
            da = da.expand_dims(time=ds["time"].values)
        for d in [d for d in da.dims if d not in ("time", "lat", "lon")]:
            if da.sizes[d] > 1:
                notes.append(f"{v}: took {d}[0] of {da.sizes[d]}")
            da = da.isel({d: 0}, drop=True)
        ds[v] = da.transpose("time", "lat", "lon")
    ds = ds.drop_vars([c for c in ds.coords if c not in ("time", "lat", "lon")])
    ds = ds.drop_dims([d for d in ds.dims if d not in ("time", "lat", "lon")], errors="ignore")

    for k in ("time", "lat"):
        index = pd.Index(ds[k].values)
        if index.has_duplicates:
            raise DataError(f"{label}: repeated {k} values (e.g. {index[index.duplicated()][0]})")
    if pd.Index(ds["lon"].values).has_duplicates:
        index = pd.Index(ds["lon"].values)
        raise DataError(f"{label}: repeated lon values (e.g. {index[index.duplicated()][0]})")
    ds, lon_notes = _normalise_lon(ds)
    notes += lon_notes
    if not pd.Index(ds["time"].values).is_monotonic_increasing:
        notes.append("time: the steps were not in order in the file; sorted")
    unsorted = [k for k in ("time", "lat", "lon") if not ds.indexes[k].is_monotonic_increasing]
    for k, what in (("lat", "latitude stored north to south: flipped to south to north"),
                    ("lon", "longitude not in increasing order: sorted west to east")):
        if k in unsorted:
            notes.append(f"{k}: {what}")
    if unsorted:  # (an isel of every chunk otherwise: daily files are usually in order)
        ds = ds.sortby(unsorted)
    # the cut, on the lazy dataset: nothing has been read but coordinates
    ds, cut_notes = _cut(ds, region, period, label)
    cut_attrs = {k: ds.attrs[k] for k in ("oceanlab_region", "oceanlab_period") if k in ds.attrs}
    notes += cut_notes

    empty = []
    for v in grid_vars:
        da = ds[v]
        attrs = dict(da.attrs)
        if da.dtype.kind != "f":
            da = da.astype(np.float32)
        da, fill_notes, all_nan = _mask_fill_values(da, v, encodings.get(v, {}))
        notes += fill_notes
        if all_nan:
            empty.append((v, fill_notes))
        da = da.astype(np.float32)
        da.attrs = {k: attrs[k] for k in ("units", "long_name", "standard_name",
                                          "oceanlab_regrid") if k in attrs}
        ds[v] = da
    if empty and (variables is not None or len(empty) == len(grid_vars)):
        v, fill_notes = empty[0]
        why = f"; {fill_notes[-1]}" if fill_notes else ""
        raise DataError(f"{label}: variable {v!r} is NaN everywhere (all-NaN field){why}")
    for v, _ in empty:  # default selection: drop empty variables, keep the others
        ds = ds.drop_vars(v)
        grid_vars.remove(v)
        notes.append(f"{v}: dropped (NaN everywhere)")
    first = ds[grid_vars[0]]
    mask = first.notnull().any("time").compute()
    ds["mask"] = mask.assign_attrs(long_name="ocean mask (True = ocean)")
    ds.attrs = _clean_attrs(raw.attrs)
    ds.attrs["source_path"] = label
    ds.attrs.update(cut_attrs)
    if notes:
        ds.attrs[_NOTES_ATTR] = "; ".join(dict.fromkeys(notes))
    else:
        ds.attrs.pop(_NOTES_ATTR, None)
    if skipped:
        ds.attrs[SKIPPED_ATTR] = json.dumps(skipped)
    else:
        ds.attrs.pop(SKIPPED_ATTR, None)
    return ds


def skipped_variables(ds: xr.Dataset) -> dict[str, str]:
    """Gridded variables of the file left out of ``ds`` because they are not numbers
    (name → kind: ``text``, ``time`` or ``other``)."""
    try:
        value = json.loads(ds.attrs.get(SKIPPED_ATTR, "{}"))
    except (TypeError, ValueError):
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def summarize(ds: xr.Dataset) -> dict:
    """What ``python -m app inspect`` reports: variables, grid, time range, ocean fraction.

    Each variable has a ``kind``: ``field`` for the numeric fields of ``ds``; gridded
    variables of the file that are not numbers are listed too, with kind ``text``,
    ``time`` or ``other``, and are never used as fields.
    """
    lat, lon = ds["lat"].values, ds["lon"].values
    times = pd.DatetimeIndex(ds["time"].values)
    step = pd.Series(times).diff().median() if len(times) > 1 else None
    mask = ds["mask"].values
    variables = {
        str(v): {"kind": "field", "dims": list(map(str, ds[v].dims)), "shape": list(ds[v].shape),
                 "units": ds[v].attrs.get("units"), "long_name": ds[v].attrs.get("long_name")}
        for v in ds.data_vars if v != "mask"
    }
    for v, kind in skipped_variables(ds).items():
        if v not in variables:
            variables[v] = {"kind": kind, "dims": [], "shape": [], "units": None,
                            "long_name": f"{kind} variable (not used as a field)"}
    return {
        "path": ds.attrs.get("source_path"),
        "variables": variables,
        "grid": {
            "n_lat": int(lat.size), "n_lon": int(lon.size),
            "lat_range": [float(lat.min()), float(lat.max())],
            "lon_range": [float(lon.min()), float(lon.max())],
            "dlat_deg": round(float(np.median(np.diff(lat))), 6) if lat.size > 1 else None,
            "dlon_deg": round(float(np.median(np.diff(lon))), 6) if lon.size > 1 else None,
        },
        "time": {
            "n_time": len(times),
            "start": str(times[0].date()) if len(times) else None,
            "end": str(times[-1].date()) if len(times) else None,
            "step": str(step) if step is not None else None,
            "step_text": describe_step(step),
        },
        "ocean_fraction": float(mask.mean()),
        "notes": ds.attrs.get(_NOTES_ATTR),
    }
