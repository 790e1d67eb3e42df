"""Curvilinear grids onto a regular latitude/longitude grid, and ADT → anomalies.

Curvilinear grids
-----------------
Models such as NEMO write 2-D ``nav_lat(y, x)`` / ``nav_lon(y, x)``. :func:`regrid_curvilinear`
puts every field on the ``(y, x)`` grid onto a regular grid covering the source grid's
bounding box, with ``data.regrid``:

* ``linear`` (default): barycentric interpolation in the Delaunay triangles of the source
  points (:class:`scipy.spatial.Delaunay`, computed once per grid; the triangle and the three
  weights of every target point are computed once too, so each time step costs one gather and
  one weighted sum). A field linear in latitude/longitude is reproduced exactly. Land (NaN)
  is carried: the weights of the NaN vertices are dropped and the others renormalised, and a
  target point is land when the ocean vertices weigh less than one half;
* ``nearest``: the value of the nearest source point (:class:`scipy.spatial.cKDTree`);
* ``none``: refuse, with a message saying how to enable it.

With both methods a target point is NaN outside the source grid: outside the convex hull of
its points, or farther than 1.5 local source-cell sizes from the nearest source point (a
concave or ragged domain). The target step is the median source spacing (rounded to two
significant digits) unless ``data.regrid_step_deg`` is given. Work is done by time chunks
(Dask, ``xr.apply_ufunc(dask="parallelized")``) so memory stays bounded; small outputs are
computed at once. What was done is said in ``attrs["oceanlab_regrid"]`` of the dataset and
of every regridded variable (it reaches the run record through the truth variable).

Why scipy and not xESMF / pyresample: xESMF needs the ESMF library, which pip cannot
install; pyresample is on PyPI but brings pykdtree, pyproj and shapely for what two scipy
calls do here on the regional grids OceanLab works with. Conservative remapping is not
offered (it needs cell corners, which few files carry).

Absolute dynamic topography
---------------------------
:func:`apply_mdt` turns an absolute dynamic topography (a variable named ``adt`` or with
``standard_name`` ``sea_surface_height_above_geoid``) into anomalies by subtracting a mean
dynamic topography (``data.mdt``: ``PATH[:VARIABLE]`` of a 2-D file, interpolated linearly
onto the data grid, or the name of a variable of the same file), converting m/cm/mm.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from oceanlab_errors import DataError

#: Attribute saying how a dataset / variable was regridded.
REGRID_ATTR = "oceanlab_regrid"
#: Attribute saying how anomalies were made from an absolute dynamic topography.
ANOMALY_ATTR = "oceanlab_anomaly"
_NOTES_ATTR = "oceanlab_notes"
#: Target points farther than this many local source-cell sizes from a source point are NaN.
MAX_CELLS = 1.5
#: Outputs smaller than this are computed at once; larger ones stay lazy (Dask).
EAGER_BYTES = 256 * 2**20
#: Source bytes (float64) per block of time steps regridded at once.
CHUNK_BYTES = 32 * 2**20
_ADT_NAMES = ("adt",)
_ADT_STANDARD_NAMES = ("sea_surface_height_above_geoid",)


# ---------------------------------------------------------------------------- detection
def find_curvilinear(raw: xr.Dataset) -> tuple[str, str] | None:
    """(lat, lon) names of 2-D latitude/longitude sharing the same two dimensions, or None."""
    from data.canonical import _find_coord

    lat, lon = _find_coord(raw, "lat"), _find_coord(raw, "lon")
    if lat is None or lon is None or lat == lon:
        return None
    if raw[lat].ndim != 2 or raw[lon].ndim != 2 or set(raw[lat].dims) != set(raw[lon].dims):
        return None
    return str(lat), str(lon)


def _nice_step(step: float) -> float:
    """``step`` rounded to two significant digits (0.2493 → 0.25)."""
    if not np.isfinite(step) or step <= 0:
        raise ValueError(step)
    digits = 1 - int(np.floor(np.log10(step)))
    return float(round(step, digits))


def _wrap_lon(lon: np.ndarray) -> np.ndarray:
    """Longitudes in −180…180, or in 0…360 where that keeps the domain in one piece."""
    a = ((lon + 180.0) % 360.0) - 180.0
    b = lon % 360.0
    fa = a[np.isfinite(a)]
    fb = b[np.isfinite(b)]
    if fa.size and fb.size and (fb.max() - fb.min()) < (fa.max() - fa.min()) - 1e-9:
        return b
    return a


# ---------------------------------------------------------------------------- weights
@dataclass
class Regridder:
    """Source points → target grid, computed once and applied to any number of fields.

    ``src_index`` are the flat indices of the usable (finite-coordinate) source points;
    for ``linear`` ``vertices``/``weights`` (n_target, 3), for ``nearest`` ``vertices``
    (n_target, 1); ``inside`` (n_target,) says which target points lie on the source grid.
    """

    method: str
    lat: np.ndarray
    lon: np.ndarray
    src_shape: tuple[int, int]
    src_index: np.ndarray
    vertices: np.ndarray
    weights: np.ndarray | None
    inside: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.lat.size, self.lon.size

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """``values[..., y, x]`` → ``[..., lat, lon]`` (float; NaN off the grid and on land)."""
        values = np.asarray(values)
        lead = values.shape[:-2]
        dtype = np.result_type(values.dtype, np.float32)
        flat = values.reshape(-1, values.shape[-2] * values.shape[-1])[:, self.src_index]
        flat = flat.astype(dtype, copy=False)
        with np.errstate(invalid="ignore"):
            flat = np.where(np.abs(flat) >= 1e15, np.nan, flat)  # undeclared fills: never mixed
        out = np.full((flat.shape[0], self.inside.size), np.nan, dtype=dtype)
        if self.method == "nearest":
            out[:, self.inside] = flat[:, self.vertices[:, 0]]
        else:
            v = flat[:, self.vertices]  # (k, n_inside, 3)
            ok = np.isfinite(v)
            w = np.where(ok, self.weights[None], 0.0)
            den = w.sum(-1)
            with np.errstate(invalid="ignore", divide="ignore"):
                res = (np.where(ok, v, 0.0) * w).sum(-1) / den
            res[den < 0.5] = np.nan
            out[:, self.inside] = res
        return out.reshape(*lead, *self.shape)


def build_regridder(lat2d: np.ndarray, lon2d: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                    method: str = "linear") -> Regridder:
    """The :class:`Regridder` from 2-D source coordinates onto the 1-D target ``lat``/``lon``."""
    from scipy.spatial import Delaunay, cKDTree

    lat2d = np.asarray(lat2d, dtype=np.float64)
    lon2d = np.asarray(lon2d, dtype=np.float64)
    ok = np.isfinite(lat2d) & np.isfinite(lon2d)
    src_index = np.flatnonzero(ok.ravel())
    pts = np.column_stack([lon2d.ravel()[src_index], lat2d.ravel()[src_index]])
    spacing = _local_spacing(lat2d, lon2d).ravel()[src_index]
    glon, glat = np.meshgrid(lon, lat)
    target = np.column_stack([glon.ravel(), glat.ravel()])
    dist, nearest = cKDTree(pts).query(target)
    near = dist <= MAX_CELLS * spacing[nearest]
    if method == "nearest":
        inside = near
        return Regridder(method, lat, lon, lat2d.shape, src_index,
                         nearest[inside, None], None, inside)
    tri = Delaunay(pts)
    simplex = tri.find_simplex(target)
    inside = near & (simplex >= 0)
    s = simplex[inside]
    trans = tri.transform[s]
    b = np.einsum("nij,nj->ni", trans[:, :2], target[inside] - trans[:, 2])
    weights = np.column_stack([b, 1.0 - b.sum(1)])
    return Regridder(method, lat, lon, lat2d.shape, src_index, tri.simplices[s], weights, inside)


def _local_spacing(lat2d: np.ndarray, lon2d: np.ndarray) -> np.ndarray:
    """For each source point, the largest distance (degrees) to its grid neighbours."""
    out = np.zeros(lat2d.shape)
    for axis in (0, 1):
        if lat2d.shape[axis] < 2:
            continue
        d = np.hypot(np.diff(lat2d, axis=axis), np.diff(lon2d, axis=axis))
        d = np.where(np.isfinite(d), d, 0.0)
        pad = [(0, 0), (0, 0)]
        pad[axis] = (1, 0)
        before = np.pad(d, pad)
        pad[axis] = (0, 1)
        after = np.pad(d, pad)
        out = np.maximum(out, np.maximum(before, after))
    return out


def median_spacing(lat2d: np.ndarray, lon2d: np.ndarray) -> float:
    """Median distance (degrees) between neighbouring points of a 2-D grid."""
    steps = []
    for axis in (0, 1):
        if lat2d.shape[axis] > 1:
            steps.append(np.hypot(np.diff(lat2d, axis=axis), np.diff(lon2d, axis=axis)).ravel())
    d = np.concatenate(steps) if steps else np.array([])
    d = d[np.isfinite(d) & (d > 0)]
    if not d.size:
        raise ValueError("no spacing")
    return float(np.median(d))


def target_axes(lat2d: np.ndarray, lon2d: np.ndarray, step: float,
                bbox: tuple[float, float, float, float] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Regular axes (multiples of ``step``) covering the source grid (within ``bbox`` =
    (lat_min, lat_max, lon_min, lon_max) when given)."""
    lat_lo, lat_hi = np.nanmin(lat2d), np.nanmax(lat2d)
    lon_lo, lon_hi = np.nanmin(lon2d), np.nanmax(lon2d)
    if bbox is not None:
        lat_lo, lat_hi = max(lat_lo, bbox[0]), min(lat_hi, bbox[1])
        lon_lo, lon_hi = max(lon_lo, bbox[2]), min(lon_hi, bbox[3])

    def axis(lo, hi):
        i0, i1 = int(np.ceil(lo / step - 1e-9)), int(np.floor(hi / step + 1e-9))
        return np.round(np.arange(i0, i1 + 1) * step, 10)

    return axis(lat_lo, lat_hi), axis(lon_lo, lon_hi)


# ---------------------------------------------------------------------------- datasets
def regrid_curvilinear(raw: xr.Dataset, label: str, method: str = "linear",
                       step_deg: float | None = None,
                       bbox: tuple[float, float, float, float] | None = None) -> xr.Dataset:
    """``raw`` unchanged unless its latitude/longitude are 2-D; then every variable on the
    2-D grid put on a regular 1-D ``lat``/``lon`` grid (see the module docstring).

    Raises DataError (one line naming ``label``) for ``method="none"``, unusable 2-D
    coordinates, or a grid that leaves no target point.
    """
    found = find_curvilinear(raw)
    if found is None:
        return raw
    lat_name, lon_name = found
    ydim, xdim = raw[lat_name].dims
    lat2d = np.asarray(raw[lat_name].transpose(ydim, xdim).values, dtype=np.float64)
    lon2d = np.asarray(raw[lon_name].transpose(ydim, xdim).values, dtype=np.float64)
    source = (f"2-D {lat_name}/{lon_name}"
              + (" (NEMO)" if lat_name.startswith("nav_") else "")
              + f" on {ydim}×{xdim} = {lat2d.shape[0]}×{lat2d.shape[1]}")
    rect = _rectilinear(lat2d, lon2d)
    if rect is not None:  # 2-D arrays of a plain grid: take the axes, interpolate nothing
        lat1, lon1 = rect
        out = _replace_grid(raw, lat_name, lon_name, ydim, xdim, lat1, lon1, None, label)
        text = f"none: {source} form a regular grid, taken as 1-D axes"
        return _say(out, text, [])
    if method == "none":
        raise DataError(f"{label}: curvilinear grid ({source}); regridding is off "
                        f"(data.regrid: none); set data.regrid to linear or nearest (e.g. --set "
                        f"data.regrid=linear) to put it on a regular latitude/longitude grid")
    if method not in ("linear", "nearest"):
        raise DataError(f"{label}: unknown regrid method {method!r}; use linear, nearest or none")
    notes = []
    zero = (lat2d == 0) & (lon2d == 0)
    if zero.sum() > 1:  # NEMO's eliminated land processors: nav_lat = nav_lon = 0
        lat2d, lon2d = np.where(zero, np.nan, lat2d), np.where(zero, np.nan, lon2d)
        notes.append(f"regrid: {int(zero.sum())} points at latitude = longitude = 0 taken as "
                     f"missing coordinates (eliminated land processors)")
    ok = np.isfinite(lat2d) & np.isfinite(lon2d)
    if ok.sum() < 3:
        raise DataError(f"{label}: 2-D coordinates {lat_name}/{lon_name} have fewer than 3 "
                        f"finite points; cannot regrid")
    if np.nanmin(lat2d) < -90 or np.nanmax(lat2d) > 90:
        raise DataError(f"{label}: latitude '{lat_name}' has values outside -90..90 (min "
                        f"{np.nanmin(lat2d):g}, max {np.nanmax(lat2d):g})")
    lon2d = _wrap_lon(lon2d)
    try:
        step = float(step_deg) if step_deg else _nice_step(median_spacing(lat2d, lon2d))
    except ValueError:
        raise DataError(f"{label}: 2-D coordinates {lat_name}/{lon_name} have no spacing "
                        f"(all points equal); cannot regrid") from None
    lat1, lon1 = target_axes(lat2d, lon2d, step, bbox)
    if lat1.size < 1 or lon1.size < 1:
        raise DataError(f"{label}: no {step:g}° grid point falls inside the curvilinear grid "
                        f"({source}); use a smaller data.regrid_step_deg")
    from scipy.spatial import QhullError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            regridder = build_regridder(lat2d, lon2d, lat1, lon1, method)
    except (QhullError, ValueError) as exc:  # a degenerate grid (all points on a line)
        raise DataError(f"{label}: cannot triangulate the curvilinear grid ({source}): "
                        f"{' '.join(str(exc).split())[:160]}") from None
    if not regridder.inside.any():
        raise DataError(f"{label}: no point of the {step:g}° grid lies on the curvilinear grid "
                        f"({source})")
    out = _replace_grid(raw, lat_name, lon_name, ydim, xdim, lat1, lon1, regridder, label)
    text = (f"{method} from {source}, {step:g}° grid lat {lat1[0]:g}..{lat1[-1]:g} × lon "
            f"{lon1[0]:g}..{lon1[-1]:g} ({lat1.size}×{lon1.size})")
    n_out = int((~regridder.inside).sum())
    notes.insert(0, f"regridded {text}")
    if n_out:
        notes.append(f"regrid: {n_out} of {regridder.inside.size} target points lie off the "
                     f"source grid (NaN)")
    return _say(out, text, notes)


def _rectilinear(lat2d, lon2d):
    if not (np.isfinite(lat2d).all() and np.isfinite(lon2d).all()):
        return None
    if np.allclose(lat2d, lat2d[:, :1], rtol=0, atol=1e-9) and \
            np.allclose(lon2d, lon2d[:1, :], rtol=0, atol=1e-9):
        return lat2d[:, 0], lon2d[0, :]
    return None


def _say(ds: xr.Dataset, text: str, notes: list[str]) -> xr.Dataset:
    ds.attrs[REGRID_ATTR] = text
    if notes:
        old = [n for n in str(ds.attrs.get(_NOTES_ATTR, "")).split("; ") if n]
        ds.attrs[_NOTES_ATTR] = "; ".join(dict.fromkeys(old + notes))
    for v in ds.data_vars:
        if {"lat", "lon"} <= set(ds[v].dims):
            ds[v].attrs[REGRID_ATTR] = text
    return ds


def _replace_grid(raw, lat_name, lon_name, ydim, xdim, lat1, lon1, regridder, label):
    bounds = {str(raw[v].attrs.get("bounds")) for v in raw.variables if "bounds" in raw[v].attrs}
    data, coords = {}, {}
    for name, var in raw.variables.items():
        name = str(name)
        dims = set(var.dims)
        if name in (lat_name, lon_name) or name in bounds:
            continue
        if ydim in dims and xdim in dims:
            if name in raw.coords:  # e.g. cell areas, depth: a coordinate, not a field
                continue
            da = raw[name]
            data[name] = _apply(da, ydim, xdim, lat1, lon1, regridder)
        elif ydim in dims or xdim in dims:
            continue  # along one grid axis only (e.g. a row label): meaningless on the new grid
        elif name in raw.coords:
            coords[name] = raw[name].variable
        else:
            data[name] = raw[name].variable
    out = xr.Dataset(data, coords=coords, attrs=dict(raw.attrs))
    out = out.assign_coords(
        lat=("lat", np.asarray(lat1, dtype=np.float64),
             {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
        lon=("lon", np.asarray(lon1, dtype=np.float64),
             {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}))
    return out


def _apply(da: xr.DataArray, ydim, xdim, lat1, lon1, regridder):
    attrs = dict(da.attrs)
    encoding = {k: v for k, v in da.encoding.items()
                if k in ("dtype", "scale_factor", "add_offset", "_FillValue")}
    if regridder is None:  # rectilinear: rename the dimensions only
        out = da.rename({ydim: "lat", xdim: "lon"}).drop_vars(
            [c for c in da.coords if c not in da.dims], errors="ignore")
        out = out.assign_coords(lat=lat1, lon=lon1)
        out.encoding.update(encoding)
        return out
    da = da.drop_vars([c for c in da.coords if ydim in da[c].dims or xdim in da[c].dims])
    lead = [d for d in da.dims if d not in (ydim, xdim)]
    da = da.transpose(*lead, ydim, xdim)
    out_bytes = np.prod([da.sizes[d] for d in lead], dtype=np.int64) * lat1.size * lon1.size * 8
    dtype = np.result_type(da.dtype if da.dtype.kind in "biuf" else np.float64, np.float32)
    per_step = da.sizes[ydim] * da.sizes[xdim] * 8
    n = max(1, int(CHUNK_BYTES // max(per_step, 1)))
    if da.chunks is None and out_bytes <= EAGER_BYTES:  # small: at once, by blocks of time
        if lead:
            values = np.concatenate([regridder(np.asarray(da.isel({lead[0]: slice(k, k + n)}).values))
                                     for k in range(0, da.sizes[lead[0]], n)] or
                                    [np.empty((0, *da.shape[1:-2], *regridder.shape))])
        else:
            values = regridder(np.asarray(da.values))
        out = xr.DataArray(values, dims=(*lead, "lat", "lon"),
                           coords={d: da[d] for d in lead if d in da.coords})
    else:
        chunks = {d: -1 for d in (ydim, xdim)}
        if lead:
            chunks[lead[0]] = n
        da = da.chunk(chunks)
        out = xr.apply_ufunc(
            regridder, da, input_core_dims=[[ydim, xdim]], output_core_dims=[["lat", "lon"]],
            dask="parallelized", output_dtypes=[dtype],
            dask_gufunc_kwargs={"output_sizes": {"lat": lat1.size, "lon": lon1.size}})
    out = out.assign_coords(lat=lat1, lon=lon1)
    out.attrs = attrs
    out.encoding.update({k: v for k, v in encoding.items() if k == "_FillValue"})
    return out


# ---------------------------------------------------------------------------- ADT − MDT
def is_adt(da: xr.DataArray, name: str | None = None) -> bool:
    """An absolute dynamic topography: named ``adt`` or with standard_name
    ``sea_surface_height_above_geoid``."""
    name = str(name if name is not None else da.name or "")
    return (name.lower() in _ADT_NAMES
            or str(da.attrs.get("standard_name", "")).strip().lower() in _ADT_STANDARD_NAMES)


def _units_factor(adt_units, mdt_units, label: str, var: str, mdt_label: str) -> float:
    """Factor turning the MDT's units into the ADT's."""
    from metrics.currents import _METRES_PER_UNIT

    a = str(adt_units).strip().lower() if adt_units else ""
    m = str(mdt_units).strip().lower() if mdt_units else ""
    if a == m:
        return 1.0
    if a in _METRES_PER_UNIT and m in _METRES_PER_UNIT:
        return _METRES_PER_UNIT[m] / _METRES_PER_UNIT[a]
    raise DataError(f"{label}: units of {var!r} ({adt_units!r}) and of the mean dynamic "
                    f"topography {mdt_label} ({mdt_units!r}) do not match and cannot be "
                    f"converted (known: m, cm, mm)")


def _split_mdt(mdt: str, ds: xr.Dataset) -> tuple[str | None, str | None]:
    """(path, variable) of ``data.mdt``: ``PATH[:VARIABLE]``, or a variable of ``ds``."""
    if os.path.exists(mdt):
        return mdt, None
    if ":" in mdt:
        path, var = mdt.rsplit(":", 1)
        if path and var and "/" not in var:
            return path, var
    if mdt in ds.data_vars:
        return None, mdt
    return mdt, None


def _open_mdt(path: str, var: str | None, label: str) -> tuple[xr.DataArray, str]:
    from data.canonical import _check_file, _check_header, _find_coord

    try:
        _check_file(Path(path))
        _check_header(Path(path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            src = xr.open_dataset(path)
    except DataError as exc:
        raise DataError(f"{label}: mean dynamic topography: {exc}") from None
    except (OSError, ValueError, RuntimeError, TypeError) as exc:
        raise DataError(f"{label}: mean dynamic topography {path} cannot be read "
                        f"({' '.join(str(exc).split())[:160]})") from None
    lat_name, lon_name = _find_coord(src, "lat"), _find_coord(src, "lon")
    if lat_name is None or lon_name is None:
        raise DataError(f"{label}: mean dynamic topography {path} has no latitude/longitude "
                        f"coordinates")
    grid_dims = set(src[lat_name].dims) | set(src[lon_name].dims)
    candidates = [str(v) for v in src.data_vars
                  if grid_dims <= set(src[v].dims) and src[v].dtype.kind in "biuf"]
    if var is None:
        pref = [v for v in candidates if v.lower() in ("mdt", "mean_dynamic_topography")]
        if not (pref or len(candidates) == 1):
            raise DataError(f"{label}: mean dynamic topography {path}: say which variable "
                            f"(PATH:VARIABLE); gridded variables: {', '.join(candidates) or 'none'}")
        var = (pref or candidates)[0]
    if var not in src.data_vars:
        raise DataError(f"{label}: mean dynamic topography {path} has no variable {var!r}; "
                        f"gridded variables: {', '.join(candidates) or 'none'}")
    da = src[var].load()
    for d in [d for d in da.dims if d not in grid_dims]:
        if da.sizes[d] > 1:
            raise DataError(f"{label}: mean dynamic topography {path}:{var} has {d} of size "
                            f"{da.sizes[d]}; expected a 2-D (lat, lon) field")
        da = da.isel({d: 0}, drop=True)
    mdt_label = f"{path}:{var}"
    if src[lat_name].ndim == 2:  # curvilinear MDT: regrid it like a data file
        sub = xr.Dataset({var: da}, coords={lat_name: src[lat_name], lon_name: src[lon_name]})
        sub = regrid_curvilinear(sub, mdt_label, "linear")
        da = sub[var]
    else:
        da = da.rename({src[lat_name].dims[0]: "lat", src[lon_name].dims[0]: "lon"})
        if lat_name != "lat" and lat_name in da.coords:
            da = da.drop_vars(lat_name)
        if lon_name != "lon" and lon_name in da.coords:
            da = da.drop_vars(lon_name)
        da = da.assign_coords(lat=np.asarray(src[lat_name].values, dtype=np.float64),
                              lon=np.asarray(src[lon_name].values, dtype=np.float64))
    da.attrs = dict(src[var].attrs)
    src.close()
    return da, mdt_label


def apply_mdt(ds: xr.Dataset, var: str | None, mdt: str | None, label: str | None = None,
              also: list[str] | None = None) -> xr.Dataset:
    """``ds`` with ``var`` (default: the truth variable, else the first field) turned from an
    absolute dynamic topography into anomalies ``adt − mdt``; ``ds`` itself when ``mdt`` is
    None. ``also`` are more variables (observations) treated the same way when they are ADT.

    Raises DataError: ``var`` is not an ADT; the MDT cannot be read, covers none of the grid,
    or has units that do not convert into the ADT's.
    """
    if not mdt:
        return ds
    label = label or str(ds.attrs.get("source_path", "dataset"))
    fields = [str(v) for v in ds.data_vars if v != "mask" and {"lat", "lon"} <= set(ds[v].dims)]
    default = ds.attrs.get("oceanlab_truth_var")
    var = var or (default if default in fields else None) or (fields[0] if fields else None)
    if var not in ds.data_vars:
        return ds  # the task will say the variable is unknown
    if not is_adt(ds[var], var):
        raise DataError(
            f"{label}: data.mdt is given but {var!r} is not an absolute dynamic topography "
            f"(name 'adt' or standard_name sea_surface_height_above_geoid; its standard_name "
            f"is {ds[var].attrs.get('standard_name')!r}); remove data.mdt, or choose the ADT "
            f"variable")
    path, mdt_var = _split_mdt(mdt, ds)
    if path is None:
        field = ds[mdt_var]
        if "time" in field.dims:
            field = field.isel(time=0, drop=True)
        mdt_label = f"variable {mdt_var!r} of the file"
    else:
        field, mdt_label = _open_mdt(path, mdt_var, label)
    factor = _units_factor(ds[var].attrs.get("units"), field.attrs.get("units"), label, var,
                           mdt_label)
    field = _onto(field, ds, label, mdt_label) * factor
    n_missing = int((field.isnull() & ds["mask"]).sum()) if "mask" in ds else 0
    if not bool(field.notnull().any()):
        raise DataError(f"{label}: the mean dynamic topography {mdt_label} covers none of the "
                        f"data grid")
    out = ds.copy()
    how = (f"anomaly = {var} − mdt ({mdt_label}"
           + (", linear interpolation onto the data grid" if path is not None else "")
           + (f", mdt {field.attrs.get('units') or ''} × {factor:g}" if factor != 1.0 else "")
           + ")")
    names = [var] + [v for v in (also or []) if v in ds.data_vars and v != var
                     and is_adt(ds[v], v)]
    for name in names:
        attrs = dict(ds[name].attrs)
        da = (ds[name] - field.astype(ds[name].dtype)).astype(ds[name].dtype)
        da.attrs = {k: v for k, v in attrs.items() if k != "standard_name"}
        da.attrs["long_name"] = f"{attrs.get('long_name') or name} anomaly ({name} − mdt)"
        da.attrs[ANOMALY_ATTR] = how.replace(f"= {var} ", f"= {name} ")
        out[name] = da
    out.attrs[ANOMALY_ATTR] = how
    notes = [n for n in str(ds.attrs.get(_NOTES_ATTR, "")).split("; ") if n]
    notes.append(how)
    if n_missing:
        notes.append(f"mdt: {n_missing} ocean points of the grid have no mean dynamic "
                     f"topography (NaN)")
    out.attrs[_NOTES_ATTR] = "; ".join(dict.fromkeys(notes))
    return out


def _onto(field: xr.DataArray, ds: xr.Dataset, label: str, mdt_label: str) -> xr.DataArray:
    """The 2-D ``field`` on ``ds``'s lat/lon (linear interpolation where the grids differ)."""
    missing = [d for d in ("lat", "lon") if d not in field.dims]
    extra = [d for d in field.dims if d not in ("lat", "lon")]
    if missing or extra:
        raise DataError(f"{label}: the mean dynamic topography {mdt_label} has dims "
                        f"{tuple(map(str, field.dims))}; expected (lat, lon)")
    field = field.astype(np.float64)
    lon = np.asarray(field["lon"].values)
    target_lon = np.asarray(ds["lon"].values, dtype=np.float64)
    if target_lon.min() < 0 <= lon.min() or lon.max() > 180 >= target_lon.max():
        field = field.assign_coords(lon=((lon + 180.0) % 360.0) - 180.0)
    elif target_lon.max() > 180 and lon.min() < 0:
        field = field.assign_coords(lon=lon % 360.0)
    field = field.sortby(["lat", "lon"])
    same = (field.sizes["lat"] == ds.sizes["lat"] and field.sizes["lon"] == ds.sizes["lon"]
            and np.allclose(field["lat"].values, ds["lat"].values)
            and np.allclose(field["lon"].values, ds["lon"].values))
    if same:
        return field.assign_coords(lat=ds["lat"].values, lon=ds["lon"].values)
    return field.interp(lat=ds["lat"].values, lon=ds["lon"].values, method="linear")


def data_provenance(truth: xr.DataArray | None) -> dict[str, str]:
    """What was done to the data of a task (for run.json's ``data``): ``regrid`` and
    ``anomaly`` from the attributes of its truth variable."""
    attrs = getattr(truth, "attrs", None) or {}
    return {key: str(attrs[attr]) for key, attr in (("regrid", REGRID_ATTR),
                                                    ("anomaly", ANOMALY_ATTR)) if attrs.get(attr)}
