"""Open gridded NetCDF into OceanLab's canonical form.

The canonical dataset (ARCHITECTURE.md) has dimensions ``time``, ``lat``, ``lon``; latitude
ascending; longitude monotonic in −180…180 (0…360 kept only when the domain crosses the
antimeridian); float32 data; NaN for land and missing values; an ocean ``mask(lat, lon)``;
units and long names kept from the file.

Coordinates are found whatever they are called, first through CF metadata with cf-xarray
(``axis``, ``standard_name``, ``units``), then through common names. Every problem with the
input raises :class:`~data.errors.DataError` with a one-line message naming the file.
"""

from __future__ import annotations

import glob
import hashlib
import os
import warnings
from pathlib import Path

import cf_xarray  # noqa: F401  (registers the .cf accessor)
import numpy as np
import pandas as pd
import xarray as xr

from data.errors import DataError

_COMMON_NAMES = {
    "time": ("time", "t", "time_counter", "date", "valid_time", "ocean_time", "times"),
    "lat": ("lat", "latitude", "nav_lat", "y", "lat_rho", "yt_ocean", "yh", "rlat", "nlat"),
    "lon": ("lon", "longitude", "nav_lon", "x", "lon_rho", "xt_ocean", "xh", "rlon", "nlon"),
}
#: cf-xarray's coordinate key and axis for each canonical coordinate.
_CF_KEYS = {"time": ("time", "T"), "lat": ("latitude", "Y"), "lon": ("longitude", "X")}
#: Values this large are fill values that the file did not declare.
_HUGE = 1e15


def _expand_paths(path: str | os.PathLike) -> list[Path]:
    text = str(path)
    if any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(text))
        if not files:
            raise DataError(f"{text}: no file matches this pattern")
        return files
    p = Path(text)
    if not p.exists():
        raise DataError(f"{p}: no such file")
    if p.is_dir():
        raise DataError(f"{p}: is a directory, expected a NetCDF file (or a glob such as {p}/*.nc)")
    return [p]


def _open_raw(files: list[Path], chunks) -> xr.Dataset:
    label = files[0] if len(files) == 1 else f"{files[0].parent}/{{{len(files)} files}}"
    for f in files:
        with open(f, "rb") as fh:
            magic = fh.read(8)
        if not (magic.startswith(b"CDF") or magic.startswith(b"\x89HDF")):
            raise DataError(f"{f}: not a NetCDF file (unrecognised header)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            time_coder = xr.coders.CFDatetimeCoder(use_cftime=None)
            if len(files) == 1:
                return xr.open_dataset(files[0], chunks=chunks, decode_times=time_coder)
            return xr.open_mfdataset(
                files, combine="by_coords", chunks=chunks or {}, decode_times=time_coder
            )
    except DataError:
        raise
    except Exception as exc:  # netCDF4/h5py raise many kinds for corrupt files
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{label}: cannot be read as NetCDF ({msg}); is it truncated?") from None


def _find_coord(ds: xr.Dataset, kind: str) -> str | None:
    """Name of the variable holding coordinate ``kind`` ("time", "lat", "lon")."""
    coordinate_key, axis = _CF_KEYS[kind]
    try:
        names = ds.cf.coordinates.get(coordinate_key, []) or ds.cf.axes.get(axis, [])
    except Exception:  # cf-xarray chokes on some odd attributes; fall back to names
        names = []
    names = [n for n in names if n in ds.variables]
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


def _to_datetime_index(ds: xr.Dataset, label) -> xr.Dataset:
    index = ds.indexes.get("time")
    if index is None or isinstance(index, pd.DatetimeIndex):
        return ds
    if isinstance(index, xr.CFTimeIndex):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return ds.assign_coords(time=index.to_datetimeindex(time_unit="ns"))
        except Exception:
            try:
                return ds.convert_calendar("standard", align_on="year", use_cftime=False)
            except Exception as exc:
                raise DataError(f"{label}: cannot convert calendar '{index.calendar}' ({exc})") from None
    if np.issubdtype(np.asarray(index).dtype, np.number):
        raise DataError(f"{label}: time has no units such as 'days since 2000-01-01'; cannot make dates")
    return ds


def _normalise_lon(ds: xr.Dataset) -> xr.Dataset:
    lon = ds["lon"].values
    if lon.max() > 180.0:
        wrapped = ((lon + 180.0) % 360.0) - 180.0
        order = np.sort(wrapped)
        steps = np.diff(order)
        # Keep 0..360 when the domain crosses the antimeridian (wrapping opens a gap).
        typical = np.median(np.diff(np.sort(lon))) if lon.size > 1 else 0.0
        if lon.size > 1 and steps.max() > 3 * typical and order[-1] - order[0] > 180:
            return ds
        ds = ds.assign_coords(lon=wrapped)
    return ds


def fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 of the bytes of the file(s) behind ``path`` (a file or a glob)."""
    h = hashlib.sha256()
    for f in _expand_paths(path):
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return "sha256:" + h.hexdigest()


def open_dataset(
    path: str | os.PathLike,
    variables: list[str] | None = None,
    *,
    chunks: dict | None = None,
) -> xr.Dataset:
    """Open a NetCDF file, or a glob of files lazily with Dask, in canonical form.

    Parameters
    ----------
    path : a file, or a glob pattern (``"dir/*.nc"``) opened with ``open_mfdataset``.
    variables : data variables to keep (default: every variable on the time/lat/lon grid).
    chunks : Dask chunks (default: eager for one file, file-sized chunks for a glob).

    Returns
    -------
    Dataset with dims (time, lat, lon), float32 variables, NaN for land/missing, a
    boolean ``mask(lat, lon)`` (True = ocean: finite at some time in the first variable).

    Raises
    ------
    DataError : the path, the file or its content cannot be used (message names the file).
    """
    files = _expand_paths(path)
    label = str(path)
    raw = _open_raw(files, chunks)

    names = {k: _find_coord(raw, k) for k in ("time", "lat", "lon")}
    if names["lat"] is None or names["lon"] is None:
        raise DataError(f"{label}: no latitude/longitude coordinates found "
                        f"(looked for CF axis/standard_name/units and names like lat, lon)")
    if names["time"] is None:
        raise DataError(f"{label}: no time coordinate found")
    for k in ("lat", "lon"):
        if raw[names[k]].ndim != 1:
            raise DataError(f"{label}: 2-D (curvilinear) {k} coordinates '{names[k]}' are not "
                            f"supported yet; regrid to a regular lat/lon grid first")
    # Rename the coordinates' dimensions and variables to canonical names.
    rename = {}
    for k, n in names.items():
        dim = raw[n].dims[0] if raw[n].ndim == 1 else n
        if dim != k:
            rename[dim] = k
        if n != k and n != dim:
            rename[n] = k
    clash = [k for k in rename.values() if k in raw.variables and k not in rename]
    raw = raw.drop_vars(clash).rename(rename)
    raw = raw.set_coords([k for k in ("time", "lat", "lon") if k in raw.data_vars])

    grid_vars = [v for v in raw.data_vars if {"lat", "lon"} <= set(raw[v].dims)]
    if variables is not None:
        missing = [v for v in variables if v not in raw.data_vars]
        if missing:
            raise DataError(f"{label}: unknown variable {missing[0]!r}; "
                            f"available: {', '.join(map(str, grid_vars)) or 'none'}")
        grid_vars = list(variables)
    if not grid_vars:
        raise DataError(f"{label}: no variable on a latitude/longitude grid")

    ds = raw[grid_vars]
    ds = _to_datetime_index(ds, label)
    # Extra dimensions (depth, level, member): squeeze singletons, else take the first.
    notes = []
    for v in grid_vars:
        da = ds[v]
        if "time" not in da.dims:
            da = da.expand_dims(time=ds["time"].values) if "time" in ds.dims else da
        for d in [d for d in da.dims if d not in ("time", "lat", "lon")]:
            if da.sizes[d] > 1:
                notes.append(f"{v}: took {d}[0] of {da.sizes[d]}")
            da = da.isel({d: 0}, drop=True)
        ds[v] = da.transpose("time", "lat", "lon")
    ds = ds.drop_vars([c for c in ds.coords if c not in ("time", "lat", "lon")])
    ds = ds.drop_dims([d for d in ds.dims if d not in ("time", "lat", "lon")], errors="ignore")

    for k in ("time", "lat", "lon"):
        values = ds[k].values
        if pd.Index(values).has_duplicates:
            raise DataError(f"{label}: repeated {k} values (e.g. {pd.Index(values)[pd.Index(values).duplicated()][0]})")
    ds = _normalise_lon(ds)
    ds = ds.sortby(["time", "lat", "lon"])

    for v in grid_vars:
        da = ds[v]
        attrs = dict(da.attrs)
        if not np.issubdtype(da.dtype, np.floating):
            da = da.astype(np.float32)
        da = da.where(abs(da) < _HUGE).astype(np.float32)
        da.attrs = {k: attrs[k] for k in ("units", "long_name", "standard_name") if k in attrs}
        ds[v] = da
    first = ds[grid_vars[0]]
    mask = first.notnull().any("time").compute()
    if not bool(mask.any()):
        raise DataError(f"{label}: variable {grid_vars[0]!r} is NaN everywhere (all-NaN field)")
    ds["mask"] = mask.assign_attrs(long_name="ocean mask (True = ocean)")
    ds.attrs = {k: v for k, v in raw.attrs.items()}
    ds.attrs["source_path"] = label
    if notes:
        ds.attrs["oceanlab_notes"] = "; ".join(notes)
    return ds


def summarize(ds: xr.Dataset) -> dict:
    """What ``python -m app inspect`` reports: variables, grid, time range, ocean fraction."""
    lat, lon = ds["lat"].values, ds["lon"].values
    times = pd.DatetimeIndex(ds["time"].values)
    step = pd.Series(times).diff().median() if len(times) > 1 else None
    mask = ds["mask"].values
    return {
        "path": ds.attrs.get("source_path"),
        "variables": {
            str(v): {"dims": list(ds[v].dims), "shape": list(ds[v].shape),
                     "units": ds[v].attrs.get("units"), "long_name": ds[v].attrs.get("long_name")}
            for v in ds.data_vars if v != "mask"
        },
        "grid": {
            "n_lat": int(lat.size), "n_lon": int(lon.size),
            "lat_range": [float(lat.min()), float(lat.max())],
            "lon_range": [float(lon.min()), float(lon.max())],
            "dlat_deg": round(float(np.median(np.diff(lat))), 6) if lat.size > 1 else None,
            "dlon_deg": round(float(np.median(np.diff(lon))), 6) if lon.size > 1 else None,
        },
        "time": {
            "n_time": int(len(times)),
            "start": str(times[0].date()) if len(times) else None,
            "end": str(times[-1].date()) if len(times) else None,
            "step": str(step) if step is not None else None,
        },
        "ocean_fraction": float(mask.mean()),
    }
