"""Along-track (L3) altimetry files: point observations read, cut and gridded.

The files hold 1-D series along one dimension: ``time``, ``latitude``/``longitude`` (or
``lat``/``lon``) and a value such as ``sla_unfiltered``/``sla_filtered`` — the layout of the
2021a OSE data challenge's observation files and of the usual L3 products (one file per
mission or per day). :func:`read_tracks` reads one file or a glob of them, keeps each
sample's mission (the file's ``mission``/``platform`` attribute, else the mission code of a
DUACS file name such as ``dt_global_c2_phy_l3_…``, else the file name without its dates:
``j3_20170101.nc`` → ``j3``), cuts every file
to a region and period before loading its values, drops fill values and converts the
values to the target units (cm → m and so on). :func:`grid_tracks` bins the samples onto a
``(time, lat, lon)`` grid: the mean of the samples in each cell and time step, and their
count.

A track spec is ``PATH_OR_GLOB[:VARIABLE]`` (:func:`parse_obs_spec`); without a variable
the one obvious candidate of the files is taken. Every problem is a
:class:`~oceanlab_errors.DataError` on one line that names the file(s).
"""

from __future__ import annotations

import glob
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from oceanlab_errors import DataError

#: Names of the coordinates, tried in order (then CF ``standard_name``).
_COORD_NAMES = {
    "time": ("time", "t", "date", "time_counter", "juld"),
    "lat": ("latitude", "lat", "nav_lat", "y"),
    "lon": ("longitude", "lon", "nav_lon", "x"),
}
_STANDARD_NAMES = {"time": ("time",), "lat": ("latitude",), "lon": ("longitude",)}
#: Variables that are observations (preferred when a file holds several numeric variables).
_OBS_NAMES = re.compile(r"^(sla|ssh|ssha|adt|sea_surface_height|sea_level|zos|value|obs)"
                        r"(_(unfiltered|filtered|obs))?$", re.IGNORECASE)
_OBS_STANDARD_NAMES = ("sea_surface_height_above_sea_level",
                       "sea_surface_height_above_geoid",
                       "sea_surface_height_above_reference_ellipsoid")
_TRACK_SUFFIXES = (".nc", ".nc4", ".netcdf", ".zarr", ".cdf", ".h5")
_GLOB_CHARS = "*?["
#: DUACS L3 file names: ``dt_<region>_<mission>_phy_l3_…`` / ``nrt_…``.
_DUACS_NAME = re.compile(r"^(?:dt|nrt)_[a-z]+_([a-z0-9]+(?:-?[a-z0-9]+)?)_phy_",
                         re.IGNORECASE)
_METRES = ("m", "metre", "metres", "meter", "meters")
_HUGE = 1e15


# ---------------------------------------------------------------------------- specs
def is_track_spec(text: str) -> bool:
    """Whether ``text`` names along-track files rather than a variable of the dataset.

    True when it holds a path separator or a glob character, ends (before an optional
    ``:VARIABLE``) in ``.nc``/``.nc4``/``.zarr``…, or is an existing path.
    """
    if not isinstance(text, str) or not text.strip():
        return False
    text = text.strip()
    if os.sep in text or "/" in text or any(ch in text for ch in _GLOB_CHARS):
        return True
    pattern, _ = parse_obs_spec(text)
    if pattern.lower().endswith(_TRACK_SUFFIXES):
        return True
    return os.path.exists(text) or os.path.exists(pattern)


def parse_obs_spec(text: str) -> tuple[str, str | None]:
    """``"PATH_OR_GLOB[:VARIABLE]"`` → ``(pattern, variable or None)``.

    The text after the last ``:`` is a variable when it looks like one (letters, digits,
    ``_``, ``-``, ``.``; no path separator) and the whole text is not an existing path (so
    ``C:\\data`` or a file whose name holds a colon stay paths).
    """
    text = str(text).strip()
    if ":" in text and not os.path.exists(text):
        head, tail = text.rsplit(":", 1)
        if head and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", tail) and "/" not in tail:
            return head, tail
    return text, None


def _expand(pattern: str) -> list[Path]:
    from data.canonical import _check_file

    if any(ch in pattern for ch in _GLOB_CHARS) and not Path(pattern).exists():
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern)))
        if not files:
            raise DataError(f"{pattern}: no file matches this pattern")
        for f in files:
            _check_file(f, pattern)
        return files
    p = Path(os.path.expanduser(pattern))
    _check_file(p)
    return [p]


# ---------------------------------------------------------------------------- one file
def _open(f: Path) -> xr.Dataset:
    from data.canonical import _check_header, _first_line

    _check_header(f)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return xr.open_dataset(f, decode_times=True)
    except Exception as exc:  # noqa: BLE001  (netCDF4/HDF5 raise many kinds)
        raise DataError(f"{f}: cannot be read as NetCDF ({_first_line(exc)}); is it truncated "
                        f"or corrupt?") from None


def _find_coord(ds: xr.Dataset, key: str) -> str | None:
    names = {str(v).lower(): str(v) for v in ds.variables}
    for n in _COORD_NAMES[key]:
        if n in names:
            return names[n]
    for v in ds.variables:
        if str(ds[v].attrs.get("standard_name", "")).lower() in _STANDARD_NAMES[key]:
            return str(v)
    return None


def _coords(ds: xr.Dataset, f: Path) -> tuple[str, str, str, str]:
    """(time, lat, lon names, the dimension of the series)."""
    found = {k: _find_coord(ds, k) for k in ("time", "lat", "lon")}
    missing = [k for k, v in found.items() if v is None]
    if missing:
        raise DataError(f"{f}: no {'/'.join(missing)} variable; along-track files need 1-D "
                        f"time, latitude and longitude series")
    t, la, lo = found["time"], found["lat"], found["lon"]
    dims = {ds[n].dims for n in (t, la, lo)}
    if len(dims) != 1 or len(next(iter(dims))) != 1:
        raise DataError(f"{f}: time, latitude and longitude are not 1-D series along one "
                        f"dimension ({', '.join(f'{n}{ds[n].dims}' for n in (t, la, lo))}); "
                        f"is this a gridded file? (give it as --data)")
    if ds[t].dtype.kind != "M":
        units = ds[t].attrs.get("units")
        raise DataError(f"{f}: time {t!r} cannot be decoded into dates "
                        f"({'units ' + repr(units) if units else 'no units'})")
    return t, la, lo, ds[t].dims[0]


def _candidates(ds: xr.Dataset, dim: str, skip: set[str]) -> list[str]:
    return [str(v) for v in ds.data_vars
            if v not in skip and ds[v].dims == (dim,) and ds[v].dtype.kind in "fiu"
            and "flag" not in str(v).lower()]


def _choose_variable(ds: xr.Dataset, f: Path, dim: str, skip: set[str], spec: str) -> str:
    cands = _candidates(ds, dim, skip)
    if len(cands) == 1:
        return cands[0]
    preferred = [v for v in cands if _OBS_NAMES.match(v)
                 or ds[v].attrs.get("standard_name") in _OBS_STANDARD_NAMES]
    if len(preferred) == 1:
        return preferred[0]
    if not cands:
        raise DataError(f"{f}: no numeric variable along {dim!r} besides time, latitude and "
                        f"longitude; nothing to use as observations")
    listed = preferred or cands
    raise DataError(f"{f}: several candidate observation variables ({', '.join(listed)}); "
                    f"choose one with {spec}:{listed[0]}")


def _conversion(src: str | None, target: str | None, f: Path, var: str) -> float:
    """Factor turning values in ``src`` units into ``target`` units."""
    from metrics.currents import metres_per_unit

    if not src or not target:
        return 1.0
    a, b = str(src).strip(), str(target).strip()
    if a.lower() == b.lower():
        return 1.0

    def per_metre(u: str) -> float | None:
        if u.lower() in _METRES:
            return 1.0
        value = metres_per_unit(u)
        return value if value != 1.0 else None

    pa, pb = per_metre(a), per_metre(b)
    if pa is None or pb is None:
        raise DataError(f"{f}: units of {var!r} are {a!r}, the target field's are {b!r}; "
                        f"cannot convert one into the other")
    return pa / pb


def _mission(ds: xr.Dataset, f: Path) -> str:
    for key in ("mission", "platform", "Mission", "Platform", "satellite"):
        value = ds.attrs.get(key)
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if isinstance(value, str) and value.strip():
            return value.strip()
    m = _DUACS_NAME.match(f.name)
    if m:
        return m.group(1)
    # one file per day: the name without its dates (``j3_20170101.nc`` → ``j3``)
    name = re.sub(r"\d{4}-?\d{2}-?\d{2}(T\d{2,6})?", "", f.stem).strip("_-. ")
    name = re.sub(r"[_-]{2,}", "_", name)
    return name or f.stem


def _in_lon(lon: np.ndarray, lon_range) -> np.ndarray:
    lo, hi = float(lon_range[0]), float(lon_range[1])
    if hi - lo >= 360:
        return np.ones(lon.shape, bool)
    return np.mod(lon - lo, 360.0) <= (hi - lo)


def _read_one(f: Path, spec: str, variable: str | None, lon_range, lat_range, period,
              target_units: str | None) -> tuple[dict | None, str, str | None]:
    """Samples of one file in the region and period: (columns or None, variable, units)."""
    with _open(f) as ds:
        t, la, lo, dim = _coords(ds, f)
        skip = {t, la, lo}
        if variable is None:
            var = _choose_variable(ds, f, dim, skip, spec)
        else:
            var = variable
            if var not in ds.data_vars:
                cands = _candidates(ds, dim, skip)
                raise DataError(f"{f}: no variable {var!r}; candidates: "
                                f"{', '.join(cands) or 'none'}")
            if ds[var].dims != (dim,):
                raise DataError(f"{f}: variable {var!r} has dims {ds[var].dims}, not the "
                                f"series dimension ({dim!r})")
            if ds[var].dtype.kind not in "fiu":
                raise DataError(f"{f}: variable {var!r} holds {ds[var].dtype} values, not "
                                f"numbers")
        units = ds[var].attrs.get("units")
        factor = _conversion(units, target_units, f, var)
        time = np.asarray(ds[t].values).astype("datetime64[ns]")
        keep = ~np.isnat(time)
        if period is not None:
            start, end = (np.datetime64(pd.Timestamp(p), "ns") for p in period)
            keep &= (time >= start) & (time <= end)
        if not keep.any():
            return None, var, units
        lat = np.asarray(ds[la].values, dtype=np.float64)
        lon = np.asarray(ds[lo].values, dtype=np.float64)
        keep &= np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90)
        if lat_range is not None:
            keep &= (lat >= float(lat_range[0])) & (lat <= float(lat_range[1]))
        if lon_range is not None:
            keep &= _in_lon(lon, lon_range)
        idx = np.flatnonzero(keep)
        if not idx.size:
            return None, var, units
        # only the span of the samples kept is read (one contiguous slice: far faster than
        # scattered indices in NetCDF/HDF5), then the samples are picked in memory
        first = int(idx[0])
        span = ds[var][{dim: slice(first, int(idx[-1]) + 1)}].values
        value = np.asarray(span, dtype=np.float64)[idx - first]
        ok = np.isfinite(value) & (np.abs(value) < _HUGE)
        idx, value = idx[ok], value[ok]
        if not idx.size:
            return None, var, units
        return ({"time": time[idx], "lat": lat[idx], "lon": (np.mod(lon[idx] + 180.0, 360.0)
                                                             - 180.0),
                 "value": value * factor,
                 "mission": np.full(idx.size, _mission(ds, f)),
                 "long_name": ds[var].attrs.get("long_name", var)}, var, units)


# ---------------------------------------------------------------------------- public API
def read_tracks(
    spec: str,
    variable: str | None = None,
    *,
    lon_range=None,
    lat_range=None,
    period=None,
    target_units: str | None = None,
    label: str | None = None,
) -> xr.Dataset:
    """Read along-track observations from one file or a glob of files.

    Parameters
    ----------
    spec : ``PATH_OR_GLOB[:VARIABLE]`` (:func:`parse_obs_spec`).
    variable : the value variable (overrides the spec's); default: the one obvious
        candidate (the only numeric series, or the only one named like ``sla``/``ssh``/
        ``adt``…).
    lon_range, lat_range : ``(min, max)`` degrees, inclusive; longitudes in any convention
        (compared modulo 360).
    period : ``(start, end)``, inclusive (anything :class:`pandas.Timestamp` reads).
    target_units : units to convert the values to (from the variable's ``units``).
    label : the name used in messages (default: the pattern).

    Returns
    -------
    Dataset with one dim ``obs`` sorted by time: data var ``value`` (float64; attrs
    ``units``, ``long_name``, ``source_variable``), coords ``time`` (datetime64[ns]), ``lat``,
    ``lon`` (−180…180), ``mission`` (str: the file's ``mission``/``platform`` attribute, a
    DUACS name's mission code, else the file name without dates); attrs ``files`` (JSON
    list of the paths), ``variable``, ``missions`` (comma-separated), ``source``. Without
    ``target_units`` the values are in the first file's units.

    Raises
    ------
    DataError : no such file; no or several candidate variables; no time/lat/lon series;
        units that cannot be converted (both named); no observation in the region/period.
    """
    pattern, spec_var = parse_obs_spec(spec)
    variable = variable or spec_var
    label = label or pattern
    files = _expand(pattern)
    parts, chosen, units, long_name = [], None, None, None
    for f in files:
        # without target units, later files are converted to the first file's units
        cols, var, u = _read_one(f, pattern, variable or chosen, lon_range, lat_range, period,
                                 target_units or units)
        if chosen is None:
            chosen, units = var, u
        if cols is not None:
            long_name = long_name or cols.pop("long_name")
            cols.pop("long_name", None)
            parts.append(cols)
    if not parts:
        where = []
        if lon_range is not None and lat_range is not None:
            where.append(f"lon {float(lon_range[0]):g}..{float(lon_range[1]):g}, lat "
                         f"{float(lat_range[0]):g}..{float(lat_range[1]):g}")
        if period is not None:
            where.append(f"{pd.Timestamp(period[0])} to {pd.Timestamp(period[1])}")
        named = str(files[0]) if len(files) == 1 else f"{label} ({len(files)} files)"
        raise DataError(f"{named}: no observation of {chosen!r} in the region/period"
                        f"{' (' + '; '.join(where) + ')' if where else ''}")
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(cat["time"], kind="stable")
    cat = {k: v[order] for k, v in cat.items()}
    missions = list(dict.fromkeys(cat["mission"].tolist()))
    out_units = target_units if (target_units and units) else units
    attrs = {"long_name": str(long_name or chosen), "source_variable": str(chosen)}
    if out_units:
        attrs["units"] = str(out_units)
    return xr.Dataset(
        {"value": ("obs", cat["value"].astype(np.float64), attrs)},
        coords={"time": ("obs", cat["time"].astype("datetime64[ns]")),
                "lat": ("obs", cat["lat"]), "lon": ("obs", cat["lon"]),
                "mission": ("obs", cat["mission"].astype(str))},
        attrs={"files": json.dumps([str(f) for f in files]), "variable": str(chosen),
               "missions": ", ".join(missions), "source": label},
    )


def _edges(centres: np.ndarray, default_step) -> np.ndarray:
    """Cell edges: mid-points between centres, half a step beyond the ends."""
    c = np.asarray(centres)
    if c.size == 1:
        return np.array([c[0] - default_step / 2, c[0] + default_step / 2])
    mid = c[:-1] + (c[1:] - c[:-1]) / 2
    return np.concatenate([[c[0] - (c[1] - c[0]) / 2], mid, [c[-1] + (c[-1] - c[-2]) / 2]])


def _bin(values: np.ndarray, centres: np.ndarray, default_step) -> np.ndarray:
    """Index of the cell ``[edge_k, edge_k+1)`` holding each value, -1 outside."""
    descending = centres.size > 1 and centres[-1] < centres[0]
    c = centres[::-1] if descending else centres
    edges = _edges(c, default_step)
    idx = np.searchsorted(edges, values, side="right") - 1
    idx[(idx < 0) | (idx >= c.size)] = -1
    if descending:
        idx = np.where(idx >= 0, c.size - 1 - idx, -1)
    return idx


def time_bins(times, grid_times) -> np.ndarray:
    """Index of the time step of ``grid_times`` whose interval ``[t - step/2, t + step/2)``
    holds each of ``times`` (-1 outside the grid's span)."""
    t = np.asarray(times).astype("datetime64[ns]").astype(np.int64)
    g = np.asarray(grid_times).astype("datetime64[ns]").astype(np.int64)
    return _bin(t, g, 86_400 * 10**9)


def cell_index(tracks: xr.Dataset, grid: xr.DataArray) -> np.ndarray:
    """Flat ``(time, lat, lon)`` cell index of each sample of ``tracks`` on ``grid``'s
    cells (-1 outside the grid)."""
    glat = np.asarray(grid["lat"].values, np.float64)
    glon = np.asarray(grid["lon"].values, np.float64)
    lon = np.asarray(tracks["lon"].values, np.float64)
    lon = np.mod(lon, 360.0) if glon.max() > 180 else np.mod(lon + 180.0, 360.0) - 180.0
    dlat = float(np.median(np.abs(np.diff(glat)))) if glat.size > 1 else 1.0
    dlon = float(np.median(np.abs(np.diff(glon)))) if glon.size > 1 else 1.0
    it = time_bins(tracks["time"].values, grid["time"].values)
    iy = _bin(np.asarray(tracks["lat"].values, np.float64), glat, dlat)
    ix = _bin(lon, glon, dlon)
    ny, nx = glat.size, glon.size
    ok = (it >= 0) & (iy >= 0) & (ix >= 0)
    return np.where(ok, (it * ny + iy) * nx + ix, -1)


def grid_tracks(tracks: xr.Dataset, grid: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Bin along-track samples onto ``grid``'s ``(time, lat, lon)`` cells.

    A sample belongs to the time step whose interval ``[t - step/2, t + step/2)`` holds it
    (the edges are the mid-points between steps) and to the lat/lon cell whose edges
    (mid-points between centres) hold it, lower edge included; samples outside the grid
    are dropped. Longitudes are compared in the grid's convention (−180…180 or 0…360).

    Parameters
    ----------
    tracks : as returned by :func:`read_tracks` (``value``, coords ``time``/``lat``/``lon``).
    grid : any DataArray with ``time``, ``lat`` and ``lon`` coordinates (only they are used).

    Returns
    -------
    (mean, count) : DataArrays ``(time, lat, lon)`` on ``grid``'s coordinates — the mean of
    the samples in each cell (float64, NaN where none) and their number (int64).
    """
    nt, ny, nx = grid.sizes["time"], grid.sizes["lat"], grid.sizes["lon"]
    flat = cell_index(tracks, grid)
    value = np.asarray(tracks["value"].values, np.float64)
    ok = (flat >= 0) & np.isfinite(value)
    size = nt * ny * nx
    count = np.bincount(flat[ok], minlength=size)
    total = np.bincount(flat[ok], weights=value[ok], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    coords = {"time": grid["time"], "lat": grid["lat"], "lon": grid["lon"]}
    dims = ("time", "lat", "lon")
    attrs = {k: tracks["value"].attrs[k] for k in ("units",) if k in tracks["value"].attrs}
    mean_da = xr.DataArray(mean.reshape(nt, ny, nx), dims=dims, coords=coords,
                           name="obs", attrs={**attrs, "long_name": "mean of the along-track "
                                                                   "samples in each cell"})
    count_da = xr.DataArray(count.reshape(nt, ny, nx).astype(np.int64), dims=dims,
                            coords=coords, name="obs_count",
                            attrs={"long_name": "number of along-track samples in each cell"})
    return mean_da, count_da


def check_track_files(obs) -> None:
    """Refuse early (DataError naming the path) along-track specs of ``data.obs`` whose
    files do not exist or cannot be read; variable names and ``simulation`` pass."""
    for spec in [obs] if isinstance(obs, str) else list(obs or []):
        if isinstance(spec, str) and is_track_spec(spec):
            _expand(parse_obs_spec(spec)[0])
