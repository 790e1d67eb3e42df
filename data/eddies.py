"""Eddy detection on SSH-like maps: closed contours (Chelton et al. 2011 / Mason et al. 2014)
and the Okubo–Weiss parameter.

Both detectors take a map ``ssh(lat, lon)`` (metres, or cm/mm by its ``units``; NaN on land)
and thresholds (:class:`EddyParams`, or any object with the same attributes, e.g. the
segmentation task's parameters), and return an :class:`EddySet`: a class mask (0 background,
1 cyclonic, 2 anticyclonic) and a table of eddies. Cyclonic means rotating with the Earth
(ζ·f > 0): by geostrophy an SSH low in either hemisphere (ζ > 0 in the north, ζ < 0 in the
south), anticyclonic an SSH high.

Closed contours (:func:`detect_contour`)
    The criterion of py-eddy-tracker (Mason et al. 2014, after Chelton et al. 2011),
    re-implemented on superlevel sets because the ``pyeddytracker`` 3.6.1 wheel pins
    ``netCDF4<1.6`` and ``pint==0.18`` and does not install beside our stack. Large scales
    are removed first (``highpass_km``: SSH minus its Gaussian smoothing whose half-power
    wavelength is ``highpass_km``; py-eddy-tracker uses a Bessel/Lanczos high-pass). Levels
    are swept every ``step_m`` from each map's highest value down (and from the lowest
    value up for lows). At a level ``h`` the region ``{η ≥ h}`` splits into 4-connected
    components; a component that touches neither land nor the domain's edge is bounded by
    a closed contour. For each local extremum, the valid contours are those whose region
    holds exactly this one extremum, ``pixel_min`` to ``pixel_max`` cells and a shape error
    ≤ ``shape_error_max`` % (area of the symmetric difference between the region and the
    equal-area disk at its centroid, over the disk's area). The outermost valid contour is
    the *effective* contour; the eddy is kept if its amplitude (extremum − that level) is at
    least ``amplitude_min_m``. The *speed* contour is the valid contour with the highest
    mean geostrophic speed along its edge (Chelton's L_s); the class mask is the interior of
    the speed contour (``mask_contour="speed"``, default) or of the effective one.
    Differences from py-eddy-tracker: regions are grid cells (a contour is the edge of a
    cell region, not an interpolated polyline), the shape-error circle is the equal-area
    disk at the centroid rather than a least-squares fit to the contour's vertices, the
    high-pass is Gaussian, and the sweep of an extremum stops once its region merges with
    another extremum's, touches land or the edge, or exceeds ``pixel_max``.

    For a Gaussian eddy ``A exp(−r²/2σ²)`` the speed contour is the circle ``r = σ``, the
    equivalent radius reported (``radius_km``) is σ and the amplitude A (less what the
    high-pass removes).

Okubo–Weiss (:func:`detect_okubo_weiss`)
    From the geostrophic velocities of :mod:`metrics.currents`, ``W = s_n² + s_s² − ζ²``
    (``s_n = u_x − v_y``, ``s_s = v_x + u_y``, ``ζ = v_x − u_y``); eddy cells are those with
    ``W < −ow_threshold · σ_W`` (σ_W the spatial standard deviation of W on that map), the
    sign of ``ζ · f`` gives the class; 4-connected regions of fewer than ``pixel_min``
    cells are dropped. For a Gaussian eddy ``W < 0`` inside ``r = σ`` as well.

The eddy table (:func:`mask_objects`) describes each connected region of the class mask:
``kind``, centroid ``lon``, ``lat``, ``radius_km`` (radius of the disk of the same area),
``amplitude_m`` (the mean SSH on the region's edge minus its minimum for a cyclone, its
maximum minus that mean for an anticyclone, at least 0; the contour detector reports
|extremum − effective contour level| instead), ``contour`` (its outline as an ``(n, 2)`` array
of lon, lat, or None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

from oceanlab_errors import DataError

EARTH_RADIUS_KM = 6371.0
GRAVITY = 9.81
OMEGA = 7.2921e-5
CLASSES = ("background", "cyclonic", "anticyclonic")
CYCLONIC, ANTICYCLONIC = 1, 2
_FOUR = ndimage.generate_binary_structure(2, 1)
COLUMNS = ["kind", "lon", "lat", "radius_km", "amplitude_m", "contour"]


class EddyParams(BaseModel):
    """Thresholds of both detectors (defaults: Chelton et al. 2011 / Mason et al. 2014 at
    about 0.1°, see the module docstring)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    step_m: float = Field(0.005, gt=0, le=1.0, description="contour interval of the level sweep (m)")
    amplitude_min_m: float = Field(0.01, ge=0, le=10.0,
                                   description="least amplitude of an eddy (m): extremum − "
                                               "level of its outermost closed contour")
    pixel_min: int = Field(8, ge=1, le=10_000_000, description="fewest grid cells of an eddy")
    pixel_max: int = Field(1000, ge=1, le=100_000_000, description="most grid cells inside a "
                                                                   "closed contour")
    shape_error_max: float = Field(55.0, gt=0, le=200.0,
                                   description="largest shape error (%) of a closed contour")
    highpass_km: float = Field(500.0, ge=0, le=100_000.0,
                               description="contour detector: remove scales longer than this "
                                           "wavelength (km) first; 0 = off")
    mask_contour: Literal["speed", "effective"] = Field(
        "speed", description="contour detector: the mask fills the speed contour (highest "
                             "mean speed) or the effective (outermost) one")
    ow_threshold: float = Field(0.2, gt=0, le=10.0,
                                description="Okubo–Weiss: eddy where W < −threshold · σ_W")
    min_abs_lat: float = Field(5.0, ge=0, le=80.0, description="no detection closer to the "
                                                               "equator (degrees)")


@dataclass
class EddySet:
    """Detected eddies of one map: ``mask`` (lat, lon) int8 (0 background, 1 cyclonic,
    2 anticyclonic) and ``eddies`` (one row per eddy, columns :data:`COLUMNS` and more)."""

    mask: xr.DataArray
    eddies: pd.DataFrame


# ------------------------------------------------------------------------------- helpers


def _params(params: Any) -> Any:
    if params is None:
        return EddyParams()
    if isinstance(params, dict):
        return EddyParams(**params)
    return params


def _as_map(ssh: xr.DataArray) -> xr.DataArray:
    if not isinstance(ssh, xr.DataArray):
        raise DataError(f"eddy detection needs an xarray DataArray, got {type(ssh).__name__}")
    extra = [d for d in ssh.dims if d not in ("lat", "lon")]
    for d in extra:
        if ssh.sizes[d] != 1:
            raise DataError(f"eddy detection works on one map (lat, lon); this field also has "
                            f"{d!r} of size {ssh.sizes[d]} (use mask_over_time)")
    ssh = ssh.squeeze([d for d in extra], drop=True) if extra else ssh
    for d in ("lat", "lon"):
        if d not in ssh.dims or ssh.sizes[d] < 3:
            raise DataError(f"eddy detection needs at least 3 points along {d!r}; the field "
                            f"has dims {tuple(map(str, ssh.dims))}")
    return ssh.transpose("lat", "lon")


def _metres(ssh: xr.DataArray) -> float:
    from metrics.currents import metres_per_unit

    return metres_per_unit(ssh.attrs.get("units"))


@dataclass
class _Grid:
    lat: np.ndarray
    lon: np.ndarray
    dy_m: np.ndarray   # (lat,) metres per row step
    dx_m: np.ndarray   # (lat,) metres per column step
    area_km2: np.ndarray  # (lat, lon)
    x_km: np.ndarray   # (lat, lon) local east coordinate
    y_km: np.ndarray   # (lat, lon) local north coordinate
    f: np.ndarray      # (lat,) Coriolis parameter, NaN near the equator

    @classmethod
    def of(cls, lat: np.ndarray, lon: np.ndarray, min_abs_lat: float) -> _Grid:
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        rad = np.pi / 180.0
        dlat = np.abs(np.gradient(lat)) * rad * EARTH_RADIUS_KM
        dlon = np.abs(np.gradient(lon)) * rad * EARTH_RADIUS_KM
        coslat = np.cos(lat * rad)
        area = dlat[:, None] * (coslat[:, None] * dlon[None, :])
        x = EARTH_RADIUS_KM * rad * coslat[:, None] * (lon[None, :] - lon.mean())
        y = EARTH_RADIUS_KM * rad * np.broadcast_to(lat[:, None], area.shape)
        f = 2 * OMEGA * np.sin(lat * rad)
        f = np.where(np.abs(lat) >= min_abs_lat, f, np.nan)
        return cls(lat, lon, dlat * 1e3, np.median(dlon) * coslat * 1e3, area, x, np.array(y), f)


def _highpass(z: np.ndarray, grid: _Grid, wavelength_km: float) -> np.ndarray:
    """``z`` minus its NaN-aware Gaussian smoothing of half-power wavelength ``wavelength_km``
    (``σ = √(2 ln 2) λ / 2π``)."""
    if not wavelength_km:
        return z
    sigma_km = np.sqrt(2 * np.log(2)) * wavelength_km / (2 * np.pi)
    sy = sigma_km / (np.median(grid.dy_m) / 1e3)
    sx = sigma_km / (np.median(grid.dx_m) / 1e3)
    finite = np.isfinite(z)
    num = ndimage.gaussian_filter(np.where(finite, z, 0.0), (sy, sx), mode="constant")
    den = ndimage.gaussian_filter(finite.astype(np.float64), (sy, sx), mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(finite, z - num / den, np.nan)


def _speed(z: np.ndarray, grid: _Grid) -> np.ndarray:
    """Geostrophic speed (m/s) of ``z`` (m); NaN near land and the equator."""
    dz_dy = np.gradient(z, axis=0) / grid.dy_m[:, None]
    dz_dx = np.gradient(z, axis=1) / grid.dx_m[:, None]
    g_f = GRAVITY / np.abs(grid.f)[:, None]
    return g_f * np.hypot(dz_dx, dz_dy)


def _edge_cells(finite: np.ndarray) -> np.ndarray:
    """Cells on the domain's border or next to a NaN cell (4-neighbours)."""
    edge = np.zeros_like(finite)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    edge |= ndimage.binary_dilation(~finite, structure=_FOUR)
    return edge


def _outline(region: np.ndarray, grid: _Grid) -> np.ndarray | None:
    """The longest outline (lon, lat) of the boolean ``region`` (the 0.5 contour)."""
    import contourpy

    rows, cols = np.nonzero(region)
    if rows.size == 0:
        return None
    i0, i1 = max(rows.min() - 1, 0), min(rows.max() + 2, region.shape[0])
    j0, j1 = max(cols.min() - 1, 0), min(cols.max() + 2, region.shape[1])
    sub = region[i0:i1, j0:j1].astype(np.float64)
    try:
        gen = contourpy.contour_generator(grid.lon[j0:j1], grid.lat[i0:i1], sub)
        lines = gen.lines(0.5)
    except Exception:  # noqa: BLE001 (an outline is decoration; never fail for it)
        return None
    if not lines:
        return None
    return np.asarray(max(lines, key=len), dtype=np.float64)


def mask_objects(mask: np.ndarray, ssh: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                 pixel_min: int = 1, outlines: bool = False,
                 min_abs_lat: float = 0.0) -> pd.DataFrame:
    """The eddies of a class mask: one row per 4-connected region of class 1 or 2 with at
    least ``pixel_min`` cells (columns :data:`COLUMNS` plus ``pixels``).

    ``ssh`` (metres, NaN allowed) gives the amplitude: mean SSH on the region's edge cells
    minus its minimum (cyclonic) or its maximum minus that mean (anticyclonic), at least 0. ``outlines``: compute the ``contour`` column (else None).
    """
    grid = _Grid.of(lat, lon, min_abs_lat)
    rows = []
    lon2 = np.broadcast_to(grid.lon[None, :], mask.shape)
    lat2 = np.broadcast_to(grid.lat[:, None], mask.shape)
    for code, kind in ((CYCLONIC, "cyclonic"), (ANTICYCLONIC, "anticyclonic")):
        region = mask == code
        if not region.any():
            continue
        lab, n = ndimage.label(region, structure=_FOUR)
        if n == 0:
            continue
        index = np.arange(1, n + 1)
        count = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        area = ndimage.sum(grid.area_km2, lab, index)
        clon = ndimage.sum(grid.area_km2 * lon2, lab, index) / area
        clat = ndimage.sum(grid.area_km2 * lat2, lab, index) / area
        z = np.where(np.isfinite(ssh), ssh, np.nan)
        inner = ndimage.binary_erosion(region, structure=_FOUR, border_value=1)
        edge = region & ~inner
        zlab = np.where(np.isfinite(z), lab, 0)
        e_lab = np.where(edge & np.isfinite(z), lab, 0)
        e_sum = np.bincount(e_lab.ravel(), weights=np.nan_to_num(z).ravel(), minlength=n + 1)[1:]
        e_cnt = np.bincount(e_lab.ravel(), minlength=n + 1)[1:]
        zmax = ndimage.maximum(np.nan_to_num(z, nan=-np.inf), zlab, index)
        zmin = ndimage.minimum(np.nan_to_num(z, nan=np.inf), zlab, index)
        for k in range(n):
            if count[k] < pixel_min:
                continue
            rim = e_sum[k] / e_cnt[k] if e_cnt[k] else np.nan
            lo, hi = float(zmin[k]), float(zmax[k])
            if np.isfinite(rim) and np.isfinite(lo) and np.isfinite(hi):
                amp = max(0.0, rim - lo if code == CYCLONIC else hi - rim)
            else:
                amp = np.nan
            rows.append({"kind": kind, "lon": float(clon[k]), "lat": float(clat[k]),
                         "radius_km": float(np.sqrt(area[k] / np.pi)),
                         "amplitude_m": float(amp),
                         "contour": _outline(lab == k + 1, grid) if outlines else None,
                         "pixels": int(count[k])})
    return pd.DataFrame(rows, columns=[*COLUMNS, "pixels"])


def _mask_da(mask: np.ndarray, ssh: xr.DataArray, method: str) -> xr.DataArray:
    return xr.DataArray(mask.astype(np.int8), dims=("lat", "lon"),
                        coords={"lat": ssh["lat"].values, "lon": ssh["lon"].values},
                        name="eddy_class",
                        attrs={"long_name": f"eddy class ({method}): 0 background, 1 cyclonic, "
                                            "2 anticyclonic",
                               "flag_values": np.array([0, 1, 2], dtype=np.int8),
                               "flag_meanings": "background cyclonic anticyclonic"})


# ------------------------------------------------------------------------ closed contours


def _sweep(z: np.ndarray, speed: np.ndarray, grid: _Grid, p: Any) -> list[dict]:
    """Valid closed contours around the maxima of ``z`` (metres; NaN on land): per
    maximum, its effective and speed contour regions (see the module docstring)."""
    finite = np.isfinite(z)
    if not finite.any():
        return []
    zf = np.where(finite, z, -np.inf)
    edge = _edge_cells(finite)
    peak = (zf == ndimage.maximum_filter(zf, size=3, mode="constant", cval=-np.inf)) & finite
    peak &= ~edge & np.isfinite(grid.f)[:, None]
    plab, n_peak = ndimage.label(peak, structure=np.ones((3, 3), bool))
    if n_peak == 0:
        return []
    # one cell per plateau of equal maxima
    first = ndimage.minimum(np.arange(z.size).reshape(z.shape), plab, np.arange(1, n_peak + 1))
    peaks = np.asarray(first, dtype=np.int64)
    zpeak = zf.ravel()[peaks]
    alive = np.ones(peaks.size, bool)
    outer: dict[int, tuple] = {}
    fast: dict[int, tuple] = {}
    labs: dict[int, np.ndarray] = {}
    step = float(p.step_m)
    top = np.floor(zpeak.max() / step) * step
    bottom = float(np.nanmin(z))
    speed0 = np.nan_to_num(speed)
    cell, xs, ys = grid.area_km2, grid.x_km, grid.y_km
    level_index = 0
    h = top
    while h > bottom and alive.any():
        sup = zf >= h
        lab, n = ndimage.label(sup, structure=_FOUR)
        comp = lab.ravel()[peaks]
        emerged = comp > 0
        count = np.bincount(lab.ravel(), minlength=n + 1)
        n_peaks = np.bincount(comp, minlength=n + 1)
        touch = np.bincount(lab[edge], minlength=n + 1) > 0
        dead = emerged & ((n_peaks[comp] > 1) | touch[comp] | (count[comp] > p.pixel_max))
        alive &= ~dead
        cand = emerged & alive & (count[comp] >= p.pixel_min)
        if cand.any():
            is_cand = np.zeros(n + 1, bool)
            is_cand[comp[cand]] = True
            sel = is_cand[lab]
            ls = lab[sel]
            a, x, y = cell[sel], xs[sel], ys[sel]
            area = np.bincount(ls, a, minlength=n + 1)
            with np.errstate(invalid="ignore", divide="ignore"):
                cx = np.bincount(ls, a * x, minlength=n + 1) / area
                cy = np.bincount(ls, a * y, minlength=n + 1) / area
                r2 = area / np.pi
                out = ((x - cx[ls]) ** 2 + (y - cy[ls]) ** 2) > r2[ls]
                shape = 200.0 * np.bincount(ls, a * out, minlength=n + 1) / area
            inner = np.ones_like(sup)
            inner[1:, :] &= sup[:-1, :]
            inner[:-1, :] &= sup[1:, :]
            inner[:, 1:] &= sup[:, :-1]
            inner[:, :-1] &= sup[:, 1:]
            rim = sel & ~inner
            lr = lab[rim]
            with np.errstate(invalid="ignore", divide="ignore"):
                vmean = (np.bincount(lr, speed0[rim], minlength=n + 1)
                         / np.bincount(lr, minlength=n + 1))
            keep = False
            for k in np.flatnonzero(cand):
                c = comp[k]
                if shape[c] > p.shape_error_max:
                    continue
                info = (level_index, int(c), float(h), float(vmean[c]), float(shape[c]),
                        float(np.sqrt(area[c] / np.pi)))
                outer[k] = info
                if k not in fast or info[3] > fast[k][3]:
                    fast[k] = info
                keep = True
            if keep:
                labs[level_index] = lab
        # drop label maps that no eddy refers to any more
        used = {v[0] for v in outer.values()} | {v[0] for v in fast.values()}
        for key in [k for k in labs if k not in used]:
            del labs[key]
        level_index += 1
        h -= step
    found = []
    for k, info in outer.items():
        amplitude = float(zpeak[k] - info[2])
        if amplitude < p.amplitude_min_m:
            continue
        s = fast[k]
        chosen = s if p.mask_contour == "speed" else info
        found.append({"peak": int(peaks[k]), "region": labs[chosen[0]] == chosen[1],
                      "amplitude_m": amplitude, "radius_eff_km": info[5],
                      "radius_speed_km": s[5], "speed_ms": s[3], "shape_error": info[4],
                      "level": info[2]})
    return found


def _contour_eddies(ssh: xr.DataArray, p: Any, outlines: bool) -> tuple[np.ndarray, pd.DataFrame]:
    ssh = _as_map(ssh)
    grid = _Grid.of(ssh["lat"].values, ssh["lon"].values, p.min_abs_lat)
    eta = np.asarray(ssh.values, dtype=np.float64) * _metres(ssh)
    eta = _highpass(eta, grid, p.highpass_km)
    speed = _speed(eta, grid)
    mask = np.zeros(eta.shape, np.int8)
    rows = []
    for sign in (1.0, -1.0):
        for eddy in _sweep(sign * eta, speed, grid, p):
            i, j = np.unravel_index(eddy["peak"], eta.shape)
            cyclonic = sign < 0  # geostrophy: a low turns with the Earth, either hemisphere
            code = CYCLONIC if cyclonic else ANTICYCLONIC
            region = eddy["region"] & (mask == 0)
            if region.sum() < p.pixel_min:
                continue
            mask[region] = code
            a = grid.area_km2[region]
            lon2 = np.broadcast_to(grid.lon[None, :], eta.shape)[region]
            lat2 = np.broadcast_to(grid.lat[:, None], eta.shape)[region]
            rows.append({"kind": "cyclonic" if cyclonic else "anticyclonic",
                         "lon": float((a * lon2).sum() / a.sum()),
                         "lat": float((a * lat2).sum() / a.sum()),
                         "radius_km": float(np.sqrt(a.sum() / np.pi)),
                         "amplitude_m": eddy["amplitude_m"],
                         "contour": _outline(region, grid) if outlines else None,
                         "radius_eff_km": eddy["radius_eff_km"],
                         "radius_speed_km": eddy["radius_speed_km"],
                         "speed_ms": eddy["speed_ms"], "shape_error": eddy["shape_error"],
                         "lon_extremum": float(grid.lon[j]), "lat_extremum": float(grid.lat[i]),
                         "pixels": int(region.sum())})
    extra = ["radius_eff_km", "radius_speed_km", "speed_ms", "shape_error", "lon_extremum",
             "lat_extremum", "pixels"]
    return mask, pd.DataFrame(rows, columns=[*COLUMNS, *extra])


def detect_contour(ssh: xr.DataArray, params: Any = None) -> EddySet:
    """Eddies of the map ``ssh`` (lat, lon) by closed SSH contours (module docstring).

    ``params``: :class:`EddyParams`, a dict of its fields, or any object with its attributes
    (default: :class:`EddyParams`). DataError for a field that is not one map.
    """
    p = _params(params)
    ssh = _as_map(ssh)
    mask, table = _contour_eddies(ssh, p, outlines=True)
    return EddySet(_mask_da(mask, ssh, "closed contours"), table)


# --------------------------------------------------------------------------- Okubo–Weiss


def okubo_weiss(ssh: xr.DataArray, min_abs_lat: float = 5.0) -> tuple[xr.DataArray, xr.DataArray]:
    """``W = s_n² + s_s² − ζ²`` (s⁻²) and ``ζ·sign(f)`` (s⁻¹) of the geostrophic flow of
    ``ssh`` (any dims with ``lat``, ``lon``), from :mod:`metrics.currents`."""
    from metrics.currents import _spatial_derivatives, geostrophic_velocity

    u, v = geostrophic_velocity(ssh, min_abs_lat)
    du_dx, du_dy = _spatial_derivatives(u)
    dv_dx, dv_dy = _spatial_derivatives(v)
    sn = du_dx - dv_dy
    ss = dv_dx + du_dy
    zeta = dv_dx - du_dy
    w = (sn**2 + ss**2 - zeta**2).transpose(*ssh.dims)
    return w, (zeta * np.sign(ssh["lat"])).transpose(*ssh.dims)


def _ow_masks(ssh: xr.DataArray, p: Any) -> np.ndarray:
    """Class masks ``(…, lat, lon)`` int8 of the Okubo–Weiss criterion (vectorised over
    leading dims)."""
    w, zeta = okubo_weiss(ssh, p.min_abs_lat)
    wv = np.asarray(w.values, dtype=np.float64)
    zv = np.asarray(zeta.values, dtype=np.float64)
    lead = wv.shape[:-2]
    wv = wv.reshape(-1, *wv.shape[-2:])
    zv = zv.reshape(-1, *zv.shape[-2:])
    with np.errstate(invalid="ignore"):
        sigma = np.nanstd(wv, axis=(1, 2))
        eddy = wv < -p.ow_threshold * sigma[:, None, None]
    out = np.zeros(wv.shape, np.int8)
    out[eddy & (zv > 0)] = CYCLONIC
    out[eddy & (zv < 0)] = ANTICYCLONIC
    if p.pixel_min > 1:  # drop small regions (4-connected within a map, not across time)
        structure = np.zeros((3, 3, 3), bool)
        structure[1] = _FOUR
        for code in (CYCLONIC, ANTICYCLONIC):
            lab, n = ndimage.label(out == code, structure=structure)
            if n:
                small = np.bincount(lab.ravel(), minlength=n + 1) < p.pixel_min
                small[0] = False
                out[small[lab]] = 0
    return out.reshape(*lead, *out.shape[-2:])


def detect_okubo_weiss(ssh: xr.DataArray, params: Any = None) -> EddySet:
    """Eddies of the map ``ssh`` (lat, lon) by the Okubo–Weiss parameter (module docstring);
    ``params`` as for :func:`detect_contour`."""
    p = _params(params)
    ssh = _as_map(ssh)
    mask = _ow_masks(ssh, p)
    eta = np.asarray(ssh.values, dtype=np.float64) * _metres(ssh)
    table = mask_objects(mask, eta, ssh["lat"].values, ssh["lon"].values, p.pixel_min,
                         outlines=True)
    return EddySet(_mask_da(mask, ssh, "Okubo-Weiss"), table)


# -------------------------------------------------------------------------- over time


METHODS = ("contour", "okubo_weiss")


def mask_over_time(ssh: xr.DataArray, method: str = "contour", params: Any = None
                   ) -> xr.DataArray:
    """Class masks ``(time, lat, lon)`` int8 of ``ssh`` (time, lat, lon) by ``method``
    (``"contour"`` or ``"okubo_weiss"``); Okubo–Weiss is vectorised over time, contours
    run map by map."""
    p = _params(params)
    if method not in METHODS:
        raise DataError(f"unknown eddy detector {method!r}; choose one of: {', '.join(METHODS)}")
    if "time" not in ssh.dims:
        raise DataError("mask_over_time needs a 'time' dimension")
    ssh = ssh.transpose("time", "lat", "lon")
    if method == "okubo_weiss":
        values = _ow_masks(ssh, p)
    else:
        values = np.zeros(ssh.shape, np.int8)
        for t in range(ssh.sizes["time"]):
            values[t], _ = _contour_eddies(ssh.isel(time=t), p, outlines=False)
    name = "closed contours" if method == "contour" else "Okubo-Weiss"
    out = xr.DataArray(values, dims=("time", "lat", "lon"),
                       coords={"time": ssh["time"].values, "lat": ssh["lat"].values,
                               "lon": ssh["lon"].values}, name="eddy_class")
    out.attrs = dict(_mask_da(values[0] if len(values) else np.zeros(ssh.shape[1:]),
                              ssh.isel(time=0), name).attrs)
    return out


__all__ = [
    "CLASSES",
    "COLUMNS",
    "METHODS",
    "EddyParams",
    "EddySet",
    "detect_contour",
    "detect_okubo_weiss",
    "mask_objects",
    "mask_over_time",
    "okubo_weiss",
]
