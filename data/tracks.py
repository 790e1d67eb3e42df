"""Nadir altimeter ground tracks and along-track sampling of gridded fields.

Ground tracks come from a circular orbit over a rotating Earth: with the argument of
latitude ``u`` (angle travelled from the ascending node) and inclination ``i``,

    lat = asin(sin i · sin u),
    lon = λ_node(t) + atan2(cos i · sin u, cos u),

where ``u`` grows by 2π every nodal period ``T = repeat_days · 86400 / revs_per_cycle`` and
the node drifts westward relative to the Earth by exactly 360° per day, so the pattern of
tracks repeats exactly every ``repeat_days`` days (the nodal day is taken as 86 400 s; for
TOPEX/Jason the true cycle is 9.9156 days, a difference of two hours per cycle that does
not matter for daily binning). Latitudes are geocentric on a sphere of radius 6371 km.
Samples are taken every ``sample_interval_s`` seconds (1 Hz, about 6–7 km apart).

Only the passes over the field's box are computed: positions are first evaluated every
``_COARSE_S`` seconds over one repeat cycle, the coarse intervals that can reach the box
are refined to 1 Hz, and the in-box samples of that cycle are tiled over the requested
period (exact, because the orbit repeats exactly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from data.errors import DataError

EARTH_RADIUS_M = 6.371e6
SECONDS_PER_DAY = 86400.0
#: Time origin of the missions' ``ref_time`` phases.
_EPOCH = np.datetime64("2000-01-01T00:00:00", "ns")
#: Step of the coarse pass search (s).
_COARSE_S = 20


@dataclass(frozen=True)
class Mission:
    """A nadir altimeter on a circular, exactly repeating orbit.

    Attributes
    ----------
    name : mission name.
    inclination_deg : orbit inclination (degrees; > 90 for retrograde orbits).
    repeat_days : repeat cycle (days).
    revs_per_cycle : orbital revolutions per repeat cycle.
    node_lon_deg : longitude of the ascending node crossed at ``ref_time`` (degrees east).
    ref_time : an instant when the satellite crosses that ascending node (ISO 8601).
    sample_interval_s : time between along-track samples (s); 1 Hz gives 6–7 km.
    """

    name: str
    inclination_deg: float
    repeat_days: int
    revs_per_cycle: int
    node_lon_deg: float
    ref_time: str
    sample_interval_s: int = 1

    @property
    def period_s(self) -> float:
        """Nodal period (s)."""
        return self.repeat_days * SECONDS_PER_DAY / self.revs_per_cycle

    @property
    def ground_speed_m_s(self) -> float:
        """Speed of the sub-satellite point in the orbital plane (m/s), Earth rotation aside."""
        return 2.0 * math.pi * EARTH_RADIUS_M / self.period_s

    def positions(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sub-satellite point at times ``t_s`` (s since ``ref_time``).

        Returns
        -------
        lon, lat : degrees (lon in −180…180).
        pass_number : half-revolution counter (even = ascending), from ``ref_time``.
        """
        u = (2.0 * math.pi / self.period_s) * t_s
        inc = math.radians(self.inclination_deg)
        lat = np.degrees(np.arcsin(math.sin(inc) * np.sin(u)))
        node = self.node_lon_deg - 360.0 * (t_s / SECONDS_PER_DAY)
        dlon = np.degrees(np.arctan2(math.cos(inc) * np.sin(u), np.cos(u)))
        lon = np.mod(node + dlon + 180.0, 360.0) - 180.0
        pass_number = np.floor((u + 0.5 * math.pi) / math.pi).astype(np.int64)
        return lon, lat, pass_number


#: The four nadir altimeters of the 2020a SSH-mapping data challenge. Phases are
#: illustrative; TOPEX/Poseidon's interleaved tracks lie halfway between Jason-1's.
MISSIONS: tuple[Mission, ...] = (
    Mission("TOPEX/Poseidon interleaved", 66.04, 10, 127, -58.6 + 180.0 / 127.0,
            "2002-09-20T03:10:00"),
    Mission("Jason-1", 66.04, 10, 127, -58.6, "2002-01-15T00:00:00"),
    Mission("Geosat Follow-On", 108.04, 17, 244, -71.3, "2000-01-10T05:40:00"),
    Mission("Envisat", 98.55, 35, 501, -47.9, "2002-03-01T22:00:00"),
)
DEFAULT_MISSIONS: tuple[Mission, ...] = MISSIONS


@dataclass
class TrackPoints:
    """Along-track samples inside a box, sorted by time.

    Attributes
    ----------
    time : datetime64[ns] ``(n,)``.
    lon, lat : float64 ``(n,)`` degrees; lon normalised into the box's longitude range.
    mission : int ``(n,)``, index into the missions tuple.
    pass_number : int ``(n,)``, half-revolution counter of that mission (even = ascending).
    """

    time: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    mission: np.ndarray
    pass_number: np.ndarray

    def __len__(self) -> int:
        return int(self.time.size)

    def to_dataframe(self, missions: tuple[Mission, ...] = DEFAULT_MISSIONS) -> pd.DataFrame:
        """The samples as a DataFrame (columns time, lon, lat, mission, pass_number)."""
        names = np.array([m.name for m in missions], dtype=object)
        return pd.DataFrame({
            "time": self.time, "lon": self.lon, "lat": self.lat,
            "mission": names[self.mission] if len(self) else np.array([], dtype=object),
            "pass_number": self.pass_number,
        })


def _in_lon(lon: np.ndarray, west: float, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Mask of ``lon`` within ``[west, west + width)`` modulo 360, and lon moved there."""
    shifted = np.mod(lon - west, 360.0)
    return shifted < width, shifted + west


def _cycle_points(mission: Mission, lon_range: tuple[float, float],
                  lat_range: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """In-box samples of one repeat cycle: (t_s in [0, cycle), lon, lat, pass_number)."""
    west, east = lon_range
    south, north = lat_range
    width = east - west
    cycle = mission.repeat_days * int(SECONDS_PER_DAY)
    step = int(mission.sample_interval_s)
    coarse = max(step, (_COARSE_S // step) * step)
    tc = np.arange(0, cycle, coarse, dtype=np.float64)
    lon_c, lat_c, _ = mission.positions(tc)
    # any point reached within one coarse interval lies within `reach` of its start
    reach = (mission.ground_speed_m_s + 470.0) * coarse * 1.05 / EARTH_RADIUS_M  # radians
    m_lat = math.degrees(reach)
    phi = math.radians(min(89.9, max(abs(south - m_lat), abs(north + m_lat))))
    ratio = math.sin(reach) / math.cos(phi)
    m_lon = 360.0 if ratio >= 1.0 else math.degrees(math.asin(ratio))
    near = (lat_c >= south - m_lat) & (lat_c <= north + m_lat)
    if width + 2 * m_lon < 360.0:
        near &= _in_lon(lon_c, west - m_lon, width + 2 * m_lon)[0]
    starts = tc[near]
    if starts.size == 0:
        empty = np.empty(0)
        return empty, empty, empty, np.empty(0, dtype=np.int64)
    t = (starts[:, None] + np.arange(0, coarse, step, dtype=np.float64)[None, :]).ravel()
    lon, lat, pas = mission.positions(t)
    inside, lon = _in_lon(lon, west, width)
    inside &= (lat >= south) & (lat < north)
    return t[inside], lon[inside], lat[inside], pas[inside]


def track_points(
    lon_range: tuple[float, float],
    lat_range: tuple[float, float],
    start: np.datetime64 | str | pd.Timestamp,
    end: np.datetime64 | str | pd.Timestamp,
    missions: tuple[Mission, ...] = DEFAULT_MISSIONS,
) -> TrackPoints:
    """Along-track sample positions inside a lon/lat box during ``[start, end)``.

    Parameters
    ----------
    lon_range : ``(west, east)`` edges in degrees east, ``west < east``; a box crossing the
        antimeridian is given with ``east > 180`` (e.g. ``(170, 190)``).
    lat_range : ``(south, north)`` edges in degrees north.
    start, end : time window (end excluded).
    missions : the altimeters to fly.

    Returns
    -------
    :class:`TrackPoints`, sorted by time (then mission).
    """
    west, east = map(float, lon_range)
    south, north = map(float, lat_range)
    if not (east > west and north > south):
        raise DataError(f"track_points: empty box lon={lon_range}, lat={lat_range}")
    t0 = np.datetime64(pd.Timestamp(start).to_datetime64(), "ns")
    t1 = np.datetime64(pd.Timestamp(end).to_datetime64(), "ns")
    parts = []
    for k, mission in enumerate(missions):
        ref = np.datetime64(pd.Timestamp(mission.ref_time).to_datetime64(), "ns")
        # window in seconds since the mission's reference node crossing
        a = (t0 - ref) / np.timedelta64(1, "s")
        b = (t1 - ref) / np.timedelta64(1, "s")
        if b <= a:
            continue
        tc, lon, lat, pas = _cycle_points(mission, (west, east), (south, north))
        if tc.size == 0:
            continue
        cycle = mission.repeat_days * SECONDS_PER_DAY
        passes_per_cycle = 2 * mission.revs_per_cycle
        for c in range(int(math.floor(a / cycle)), int(math.floor(b / cycle)) + 1):
            t = tc + c * cycle
            keep = (t >= a) & (t < b)
            if not keep.any():
                continue
            parts.append((
                ref + (t[keep] * 1e9).round().astype("timedelta64[ns]"),
                lon[keep], lat[keep],
                np.full(int(keep.sum()), k, dtype=np.int64),
                pas[keep] + c * passes_per_cycle,
            ))
    if not parts:
        return TrackPoints(np.empty(0, "datetime64[ns]"), np.empty(0), np.empty(0),
                           np.empty(0, np.int64), np.empty(0, np.int64))
    time, lon, lat, mis, pas = (np.concatenate(x) for x in zip(*parts))
    order = np.lexsort((mis, time))
    return TrackPoints(time[order], lon[order], lat[order], mis[order], pas[order])


# ---------------------------------------------------------------------- sampling a field
def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges of monotonically increasing cell centres."""
    mid = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate(([centres[0] - (mid[0] - centres[0])], mid,
                           [centres[-1] + (centres[-1] - mid[-1])]))


def _check_field(field: xr.DataArray) -> xr.DataArray:
    if not isinstance(field, xr.DataArray):
        raise DataError(f"sample_along_tracks: expected an xarray.DataArray, got "
                        f"{type(field).__name__}")
    missing = {"time", "lat", "lon"} - set(field.dims)
    if missing or field.ndim != 3:
        raise DataError(f"sample_along_tracks: field {field.name!r} has dims {field.dims}; "
                        "expected (time, lat, lon)")
    field = field.transpose("time", "lat", "lon")
    for dim in ("lat", "lon"):
        c = np.asarray(field[dim].values, dtype=np.float64)
        if c.size < 2:
            raise DataError(f"sample_along_tracks: field {field.name!r} needs at least 2 "
                            f"points along {dim}, has {c.size}")
        if not np.all(np.diff(c) > 0):
            raise DataError(f"sample_along_tracks: {dim} of field {field.name!r} must be "
                            "strictly increasing (canonical form)")
    if not np.issubdtype(field["time"].dtype, np.datetime64):
        raise DataError(f"sample_along_tracks: time of field {field.name!r} must be "
                        f"datetime64, got {field['time'].dtype}")
    if field.sizes["time"] > 1 and not np.all(np.diff(field["time"].values) > np.timedelta64(0)):
        raise DataError(f"sample_along_tracks: time of field {field.name!r} must increase")
    return field


def _time_edges(times: np.ndarray) -> np.ndarray:
    """Edges (datetime64[ns]) of the nearest-time-step bins."""
    t = times.astype("datetime64[ns]")
    if t.size == 1:
        half = np.timedelta64(12, "h")
        return np.array([t[0] - half, t[0] + half])
    mid = t[:-1] + (t[1:] - t[:-1]) // 2
    return np.concatenate(([t[0] - (t[1] - t[0]) // 2], mid, [t[-1] + (t[-1] - t[-2]) // 2]))


def _bilinear_weights(c: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left index and weight of the right neighbour for linear interpolation (held
    constant beyond the outer centres)."""
    i = np.clip(np.searchsorted(c, x, side="right") - 1, 0, c.size - 2)
    w = np.clip((x - c[i]) / (c[i + 1] - c[i]), 0.0, 1.0)
    return i, w


def along_track_samples(
    field: xr.DataArray,
    noise_std: float = 0.02,
    seed: int = 0,
    missions: tuple[Mission, ...] = DEFAULT_MISSIONS,
) -> pd.DataFrame:
    """Sample a gridded field along the missions' ground tracks (un-binned).

    Parameters
    ----------
    field : DataArray ``(time, lat, lon)``, canonical form (lat and lon increasing,
        datetime64 time, NaN on land).
    noise_std : standard deviation of the Gaussian noise added to each sample, in the
        field's units.
    seed : seed of ``numpy.random.default_rng`` for the noise.
    missions : the altimeters to fly.

    Returns
    -------
    DataFrame, one row per sample over ocean, sorted by time: ``time`` (datetime64),
    ``time_index`` (nearest time step of ``field``), ``lon``, ``lat``, ``mission``,
    ``pass_number``, ``lat_index`` and ``lon_index`` (the grid cell it falls in), ``truth``
    (bilinear interpolation of the field at that time step) and ``value`` (truth + noise).
    """
    field = _check_field(field)
    lat = np.asarray(field["lat"].values, dtype=np.float64)
    lon = np.asarray(field["lon"].values, dtype=np.float64)
    lat_e, lon_e = _edges(lat), _edges(lon)
    t_e = _time_edges(field["time"].values)
    pts = track_points((lon_e[0], lon_e[-1]), (lat_e[0], lat_e[-1]), t_e[0], t_e[-1],
                       missions)
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, noise_std, len(pts)) if noise_std > 0 else np.zeros(len(pts))
    k = np.clip(np.searchsorted(t_e, pts.time, side="right") - 1, 0, t_e.size - 2)
    iy = np.clip(np.searchsorted(lat_e, pts.lat, side="right") - 1, 0, lat.size - 1)
    ix = np.clip(np.searchsorted(lon_e, pts.lon, side="right") - 1, 0, lon.size - 1)
    jy, wy = _bilinear_weights(lat, pts.lat)
    jx, wx = _bilinear_weights(lon, pts.lon)
    truth = np.full(len(pts), np.nan)
    block = 64  # time steps loaded at once (lazy / Dask-backed fields stay lazy)
    for b0 in range(0, field.sizes["time"], block):
        sel = (k >= b0) & (k < b0 + block)
        if not sel.any():
            continue
        data = np.asarray(field.isel(time=slice(b0, b0 + block)).values, dtype=np.float64)
        kk, y0, x0, ay, ax = k[sel] - b0, jy[sel], jx[sel], wy[sel], wx[sel]
        truth[sel] = ((1 - ay) * ((1 - ax) * data[kk, y0, x0] + ax * data[kk, y0, x0 + 1])
                      + ay * ((1 - ax) * data[kk, y0 + 1, x0] + ax * data[kk, y0 + 1, x0 + 1]))
    ok = np.isfinite(truth)
    names = np.array([m.name for m in missions], dtype=object)
    return pd.DataFrame({
        "time": pts.time[ok], "time_index": k[ok], "lon": pts.lon[ok], "lat": pts.lat[ok],
        "mission": names[pts.mission[ok]] if ok.any() else np.array([], dtype=object),
        "pass_number": pts.pass_number[ok], "lat_index": iy[ok], "lon_index": ix[ok],
        "truth": truth[ok], "value": truth[ok] + noise[ok],
    })


def sample_along_tracks(
    field: xr.DataArray,
    noise_std: float = 0.02,
    seed: int = 0,
    missions: tuple[Mission, ...] = DEFAULT_MISSIONS,
) -> xr.DataArray:
    """Simulated nadir altimetry of ``field``, binned to its grid by time step.

    Each along-track sample (1 Hz, 6–7 km apart) is assigned to the nearest time step,
    takes the bilinear interpolation of the field at that step plus Gaussian noise, is
    dropped where the interpolation touches land (NaN), and the samples falling in each
    grid cell during each time step are averaged.

    Parameters
    ----------
    field : DataArray ``(time, lat, lon)`` in canonical form (lat and lon increasing,
        datetime64 time, NaN on land); any box, grid spacing and time step.
    noise_std : noise standard deviation per sample, in the field's units (default 2 cm
        for SSH in metres).
    seed : seed of ``numpy.random.default_rng`` for the noise.
    missions : the altimeters to fly (default: the four of the 2020a data challenge).

    Returns
    -------
    DataArray with ``field``'s shape and coordinates, float32, NaN where nothing was
    observed during that time step; attributes ``units`` (copied), ``long_name``,
    ``description``, ``missions``, ``noise_std``, ``seed``.
    """
    field = _check_field(field)
    df = along_track_samples(field, noise_std, seed, missions)
    nt, ny, nx = field.shape
    flat = ((df["time_index"].to_numpy() * ny + df["lat_index"].to_numpy()) * nx
            + df["lon_index"].to_numpy())
    total = np.bincount(flat, weights=df["value"].to_numpy(), minlength=nt * ny * nx)
    count = np.bincount(flat, minlength=nt * ny * nx)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    names = ", ".join(m.name for m in missions)
    step = "day" if nt < 2 or np.all(np.diff(field["time"].values) == np.timedelta64(1, "D")) \
        else "time step"
    attrs = {
        "long_name": f"along-track altimetry, binned to the grid by {step}",
        "description": (
            f"{field.name or 'field'} sampled along simulated nadir altimeter ground tracks "
            f"({names}) at 1 Hz (6-7 km apart), bilinear interpolation at the nearest time "
            f"step, Gaussian noise of std {noise_std:g} {field.attrs.get('units', '')} per "
            f"sample (seed {seed}), samples touching land dropped, mean of the samples in "
            f"each grid cell and {step}; NaN where nothing was observed"
        ).replace("  ", " "),
        "missions": names,
        "noise_std": float(noise_std),
        "seed": int(seed),
    }
    for key in ("units", "standard_name"):
        if key in field.attrs:
            attrs[key] = field.attrs[key]
    return xr.DataArray(
        mean.reshape(nt, ny, nx).astype(np.float32),
        dims=("time", "lat", "lon"),
        coords={"time": field["time"], "lat": field["lat"], "lon": field["lon"]},
        name=f"{field.name}_obs" if field.name else "obs",
        attrs=attrs,
    )
