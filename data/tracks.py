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
``_COARSE_S`` seconds, the coarse intervals that can reach the box are refined to 1 Hz, and
the in-box samples are always computed at their phase in the repeat cycle (six hours of
the cycle at a time, a few kept in a small cache) and shifted by whole cycles (exact,
because the orbit repeats exactly).

A wide-swath altimeter (:class:`Swath`, SWOT's KaRIn by default: :data:`SWOT`) flies a
:class:`Mission`'s orbit and images two swaths either side of the ground track (10–60 km
cross-track, a 20 km gap at nadir) on a grid of pixels about 2 km × 2 km: each nadir sample
time is split into a few sub-samples along track, and pixels are placed along the great
circle perpendicular to the ground track's Earth-fixed heading. Its samples go through the
same cycle-phase blocks, cache, windows and binning as the nadir samples.

A gridded field is observed by at most one day of orbit per time step, centred on the
step's time (the whole step when steps are shorter): a daily record sees every sample once,
a monthly or yearly record one representative day per step. Cost and memory therefore grow
with the number of steps and the box, never with the span of the record in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from oceanlab_errors import DataError

EARTH_RADIUS_M = 6.371e6
SECONDS_PER_DAY = 86400.0
#: Time origin of the missions' ``ref_time`` phases.
_EPOCH = np.datetime64("2000-01-01T00:00:00", "ns")
#: Step of the coarse pass search (s).
_COARSE_S = 20
#: Samples of one repeat cycle kept in memory per mission (32 bytes each).
_CACHE_POINTS = 100_000
#: Pixels of a swath's repeat cycle kept in memory per instrument (32 bytes each): 16 MB,
#: a whole SWOT cycle over a 10° × 10° box at mid-latitudes (~440 000 pixels).
_SWATH_CACHE_POINTS = 500_000
#: Pixels whose positions are computed at once (bounds the temporaries of a block).
_SWATH_CHUNK_PIXELS = 200_000
#: Stretch of a repeat cycle computed at once, and longest stretch of orbit handled at once.
_BLOCK_S = 6 * 3600
#: Longest stretch of orbit flown per time step of a field (half on each side of the step).
_WINDOW = np.timedelta64(86_400_000_000_000, "ns")
#: Bytes of a field loaded at once while sampling it.
_LOAD_BYTES = 32 << 20


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

#: SWOT's science orbit (flown as a nadir altimeter by itself: SWOT also carries one).
#: 77.6° inclination, 292 revolutions per 21-day cycle (13 + 19/21 a day, whence the 10-day
#: subcycle and the 1.233° spacing of adjacent tracks at the equator). The real orbit makes
#: them in 21 *nodal* days of 85 842 s (20.86455 days; nodal period 6173.62 s = 102.89 min);
#: with this module's nodal day of 86 400 s the cycle is exactly 21 days and the nodal period
#: 21 · 86400 / 292 = 6213.7 s = 103.56 min, 0.65 % long. No integer number of revolutions
#: gives both an exact 21-day cycle and the true period (295 gives 102.51 min, 293 103.21
#: min), and any other than 292 would change the pattern of the tracks, which is what an
#: OSSE samples, so 292 is kept (the same choice as 127 revolutions in 10 days for Jason).
#: The phase is illustrative.
SWOT_ORBIT = Mission("SWOT nadir", 77.6, 21, 292, -61.3, "2012-10-01T02:30:00")


@dataclass(frozen=True)
class Swath:
    """A wide-swath interferometric altimeter (like SWOT's KaRIn) on a mission's orbit.

    Pixels lie on two swaths, from ``inner_km`` to ``outer_km`` either side of the ground
    track (defaults: 10–60 km, a 120 km footprint with a 20 km gap at nadir), along the great
    circle through the nadir point perpendicular to the ground track's heading over the
    rotating Earth. Across track, each swath is cut into ``n_cross`` pixels of about
    ``cross_spacing_km`` (their centres are :attr:`cross_track_km`); along track, each
    ``mission.sample_interval_s`` is cut into :attr:`subsamples` equal steps so that pixels
    are about ``along_spacing_km`` apart (:attr:`along_step_km`; 2.15 km for SWOT).

    Attributes
    ----------
    name : instrument name.
    mission : the orbit flown (its ``sample_interval_s`` must be whole seconds, as always).
    inner_km, outer_km : cross-track distances of the swaths' edges from the ground track (km).
    cross_spacing_km : target pixel size across track (km).
    along_spacing_km : target pixel spacing along track (km).
    """

    name: str
    mission: Mission
    inner_km: float = 10.0
    outer_km: float = 60.0
    cross_spacing_km: float = 2.0
    along_spacing_km: float = 2.0

    def __post_init__(self):
        if not isinstance(self.mission, Mission):
            raise DataError(f"Swath {self.name!r}: mission must be a Mission, got "
                            f"{type(self.mission).__name__}")
        values = (self.inner_km, self.outer_km, self.cross_spacing_km, self.along_spacing_km)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise DataError(f"Swath {self.name!r}: distances must be finite numbers, got "
                            f"{values}")
        if not 0.0 <= self.inner_km < self.outer_km <= 1000.0:
            raise DataError(f"Swath {self.name!r}: need 0 <= inner_km < outer_km <= 1000, got "
                            f"inner_km={self.inner_km}, outer_km={self.outer_km}")
        if self.cross_spacing_km <= 0 or self.along_spacing_km <= 0:
            raise DataError(f"Swath {self.name!r}: pixel spacings must be > 0, got "
                            f"cross {self.cross_spacing_km}, along {self.along_spacing_km}")
        if self.subsamples > 1000 or 2 * self.n_cross > 5000:
            raise DataError(f"Swath {self.name!r}: pixel spacings "
                            f"{self.cross_spacing_km} x {self.along_spacing_km} km are too fine")

    @property
    def ref_time(self) -> str:
        """The orbit's reference node crossing (that of ``mission``)."""
        return self.mission.ref_time

    @property
    def n_cross(self) -> int:
        """Pixels across each of the two swaths."""
        return max(1, round((self.outer_km - self.inner_km) / self.cross_spacing_km))

    @property
    def cross_track_km(self) -> np.ndarray:
        """Signed cross-track distances of the pixel centres, increasing, ``(2 · n_cross,)``
        (km; < 0 left and > 0 right of the direction of flight)."""
        step = (self.outer_km - self.inner_km) / self.n_cross
        right = self.inner_km + step * (np.arange(self.n_cross) + 0.5)
        return np.concatenate((-right[::-1], right))

    @property
    def subsamples(self) -> int:
        """Pixels along track per ``mission.sample_interval_s``."""
        step_km = self.mission.ground_speed_m_s * self.mission.sample_interval_s / 1000.0
        return max(1, round(step_km / self.along_spacing_km))

    @property
    def along_step_km(self) -> float:
        """Mean pixel spacing along track (km; Earth rotation aside)."""
        return (self.mission.ground_speed_m_s * self.mission.sample_interval_s / 1000.0
                / self.subsamples)

    @property
    def pixel_area_km2(self) -> float:
        """Area represented by one pixel (km²)."""
        return (self.outer_km - self.inner_km) / self.n_cross * self.along_step_km

    def noise_per_sample(self, noise_std: float, scale_km: float) -> float:
        """Per-pixel noise std equivalent to ``noise_std`` for averages over
        ``scale_km`` × ``scale_km`` squares (white noise averages down as 1/√pixels).

        ``sample_swath(field, noise_std=SWOT.noise_per_sample(0.01, 10.0))`` gives 1 cm of
        noise on 10 km × 10 km means of the swath (4.8 cm per 4.3 km² pixel).
        """
        if not (math.isfinite(noise_std) and noise_std >= 0 and math.isfinite(scale_km)
                and scale_km > 0):
            raise DataError(f"Swath {self.name!r}: noise_per_sample needs noise_std >= 0 and "
                            f"scale_km > 0, got {noise_std}, {scale_km}")
        return float(noise_std) * float(scale_km) / math.sqrt(self.pixel_area_km2)

    def positions(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixel centres at nadir times ``t_s`` (s since ``ref_time``, shape ``(n,)``).

        Returns
        -------
        lon, lat : ``(n, 2 · n_cross)`` degrees (lon in −180…180), columns in the order of
            :attr:`cross_track_km`.
        pass_number : ``(n,)`` half-revolution counter (even = ascending), as
            :meth:`Mission.positions`.
        """
        m = self.mission
        t = np.asarray(t_s, dtype=np.float64)
        omega = 2.0 * math.pi / m.period_s
        node_rate = -2.0 * math.pi / SECONDS_PER_DAY
        inc = math.radians(m.inclination_deg)
        ci, si = math.cos(inc), math.sin(inc)
        u = omega * t
        node = math.radians(m.node_lon_deg) + node_rate * t
        cu, su, cn, sn = np.cos(u), np.sin(u), np.cos(node), np.sin(node)
        # nadir unit vector (Earth-fixed): the orbit-plane point rotated to the node
        qx, qy = cu, ci * su
        px, py, pz = cn * qx - sn * qy, sn * qx + cn * qy, si * su
        # its time derivative: motion in the orbit plane plus the drift of the node
        dqx, dqy = -omega * su, omega * ci * cu
        vx = cn * dqx - sn * dqy - node_rate * py
        vy = sn * dqx + cn * dqy + node_rate * px
        vz = omega * si * cu
        # unit vector to the right of the ground track: v × p (p · v = 0)
        rx, ry, rz = vy * pz - vz * py, vz * px - vx * pz, vx * py - vy * px
        norm = np.sqrt(rx * rx + ry * ry + rz * rz)
        rx, ry, rz = rx / norm, ry / norm, rz / norm
        delta = self.cross_track_km * (1000.0 / EARTH_RADIUS_M)
        cd, sd = np.cos(delta)[None, :], np.sin(delta)[None, :]
        sx = px[:, None] * cd + rx[:, None] * sd
        sy = py[:, None] * cd + ry[:, None] * sd
        sz = pz[:, None] * cd + rz[:, None] * sd
        lat = np.degrees(np.arcsin(np.clip(sz, -1.0, 1.0)))
        lon = np.degrees(np.arctan2(sy, sx))
        pass_number = np.floor((u + 0.5 * math.pi) / math.pi).astype(np.int64)
        return lon, lat, pass_number


#: SWOT's KaRIn: two 50 km swaths 10–60 km either side of the ground track, 2 km pixels.
SWOT = Swath("SWOT KaRIn", SWOT_ORBIT)


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

    def to_dataframe(self, missions: tuple[Mission | Swath, ...] = DEFAULT_MISSIONS
                     ) -> pd.DataFrame:
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


class _Orbit:
    """In-box samples of one mission over its repeat cycle, computed one block (six hours)
    of the cycle at a time, the most recent blocks kept in a small cache.

    Positions are always evaluated at the cycle phase (seconds since the reference node
    crossing, modulo the cycle) and shifted by whole cycles, so a sample is the same
    whichever window asks for it.
    """

    def __init__(self, mission: Mission, lon_range: tuple[float, float],
                 lat_range: tuple[float, float], cache_points: int = _CACHE_POINTS):
        self.mission = mission
        self.west, east = lon_range
        self.south, self.north = lat_range
        self.width = east - self.west
        self.cycle = mission.repeat_days * int(SECONDS_PER_DAY)
        self.step = int(mission.sample_interval_s)
        self.coarse = max(self.step, (_COARSE_S // self.step) * self.step)
        self.block_s = _BLOCK_S if _BLOCK_S % self.coarse == 0 else self.cycle
        self.n_blocks = -(-self.cycle // self.block_s)
        self.passes_per_cycle = 2 * mission.revs_per_cycle
        # any point reached within one coarse interval lies within `reach` of its start
        reach = (mission.ground_speed_m_s + 470.0) * self.coarse * 1.05 / EARTH_RADIUS_M
        self.m_lat = math.degrees(reach)
        phi = math.radians(min(89.9, max(abs(self.south - self.m_lat),
                                         abs(self.north + self.m_lat))))
        ratio = math.sin(reach) / math.cos(phi)
        self.m_lon = 360.0 if ratio >= 1.0 else math.degrees(math.asin(ratio))
        self.cache: dict[int, tuple[np.ndarray, ...]] = {}
        self.cache_points = cache_points
        self._cached = 0

    def _compute_block(self, j: int) -> tuple[np.ndarray, ...]:
        """In-box samples with cycle phase in block ``j``: (t_s, lon, lat, pass_number)."""
        mission, coarse = self.mission, self.coarse
        t0, t1 = j * self.block_s, min((j + 1) * self.block_s, self.cycle)
        tc = np.arange(t0, t1, coarse, dtype=np.float64)
        lon_c, lat_c, _ = mission.positions(tc)
        near = (lat_c >= self.south - self.m_lat) & (lat_c <= self.north + self.m_lat)
        if self.width + 2 * self.m_lon < 360.0:
            near &= _in_lon(lon_c, self.west - self.m_lon, self.width + 2 * self.m_lon)[0]
        starts = tc[near]
        if starts.size == 0:
            empty = np.empty(0)
            return empty, empty, empty, np.empty(0, dtype=np.int64)
        t = (starts[:, None] + np.arange(0, coarse, self.step, dtype=np.float64)[None, :]).ravel()
        lon, lat, pas = mission.positions(t)
        inside, lon = _in_lon(lon, self.west, self.width)
        inside &= (lat >= self.south) & (lat < self.north)
        return t[inside], lon[inside], lat[inside], pas[inside]

    def block(self, j: int) -> tuple[np.ndarray, ...]:
        hit = self.cache.get(j)
        if hit is not None:
            return hit
        out = self._compute_block(j)
        self.cache[j] = out
        self._cached += out[0].size
        while self._cached > self.cache_points and len(self.cache) > 1:
            oldest = next(iter(self.cache))
            self._cached -= self.cache.pop(oldest)[0].size
        return out

    def window(self, a: float, b: float) -> tuple[np.ndarray, ...]:
        """Samples with ``a <= t < b`` (s since ``ref_time``): (t_s, lon, lat, pass_number)."""
        parts = []
        cycle = float(self.cycle)
        for c in range(math.floor(a / cycle), math.floor(b / cycle) + 1):
            lo, hi = a - c * cycle, b - c * cycle
            j0 = max(0, math.floor(lo / self.block_s))
            j1 = min(self.n_blocks - 1, math.floor(hi / self.block_s))
            for j in range(j0, j1 + 1):
                tc, lon, lat, pas = self.block(j)
                if tc.size == 0:
                    continue
                t = tc + c * cycle
                keep = (t >= a) & (t < b)
                if keep.any():
                    parts.append((t[keep], lon[keep], lat[keep],
                                  pas[keep] + c * self.passes_per_cycle))
        if not parts:
            empty = np.empty(0)
            return empty, empty, empty, np.empty(0, dtype=np.int64)
        return tuple(np.concatenate(x) for x in zip(*parts))


class _SwathOrbit(_Orbit):
    """In-box pixels of one swath instrument over its repeat cycle, block by block.

    The nadir samples (whole seconds) whose ground point lies within the swath's reach of
    the box are found by a nadir :class:`_Orbit` on the box widened by that reach; each is
    cut into ``swath.subsamples`` nadir times, and the pixels of those times falling in the
    box are kept, in time order then cross-track order. Blocks, cache and windows are those
    of :class:`_Orbit` (a pixel carries the time of its nadir point).
    """

    def __init__(self, swath: Swath, lon_range: tuple[float, float],
                 lat_range: tuple[float, float], cache_points: int = _SWATH_CACHE_POINTS):
        super().__init__(swath.mission, lon_range, lat_range, cache_points)
        self.swath = swath
        # a pixel in the box has its nadir point within outer_km of the box, and that nadir
        # time's whole-second sample within one more sample step (Earth rotation included)
        step_m = (swath.mission.ground_speed_m_s + 470.0) * self.step
        reach = (swath.outer_km * 1000.0 + step_m) * 1.02 / EARTH_RADIUS_M + 1e-4
        m_lat = math.degrees(reach)
        phi = math.radians(min(89.9, max(abs(self.south - m_lat), abs(self.north + m_lat))))
        ratio = math.sin(reach) / math.cos(phi)
        m_lon = 180.0 if ratio >= 1.0 else math.degrees(math.asin(ratio))
        self.nadir = _Orbit(swath.mission, (self.west - m_lon, self.west + self.width + m_lon),
                            (self.south - m_lat, self.north + m_lat), cache_points=0)

    def _compute_block(self, j: int) -> tuple[np.ndarray, ...]:
        """In-box pixels with nadir cycle phase in block ``j``: (t_s, lon, lat, pass_number)."""
        t1hz = self.nadir._compute_block(j)[0]
        n_sub = self.swath.subsamples
        # sub-steps in whole microseconds, so that sample times repeat exactly every cycle
        sub = np.round(1e6 * self.step * np.arange(n_sub) / n_sub) / 1e6
        parts = []
        per = max(1, _SWATH_CHUNK_PIXELS // (n_sub * 2 * self.swath.n_cross))
        for c in range(0, t1hz.size, per):  # bounded temporaries whatever the box
            t = (t1hz[c:c + per, None] + sub[None, :]).ravel()
            lon, lat, pas = self.swath.positions(t)
            inside, lon = _in_lon(lon, self.west, self.width)
            inside &= (lat >= self.south) & (lat < self.north)
            if inside.any():
                rows = np.nonzero(inside)[0]
                parts.append((t[rows], lon[inside], lat[inside], pas[rows]))
        if not parts:
            empty = np.empty(0)
            return empty, empty, empty, np.empty(0, dtype=np.int64)
        return tuple(np.concatenate(x) for x in zip(*parts))


def _orbit_for(instrument: Mission | Swath, lon_range: tuple[float, float],
               lat_range: tuple[float, float]) -> _Orbit:
    """The in-box sampler of a nadir :class:`Mission` or a wide :class:`Swath`."""
    if isinstance(instrument, Swath):
        return _SwathOrbit(instrument, lon_range, lat_range)
    if isinstance(instrument, Mission):
        return _Orbit(instrument, lon_range, lat_range)
    raise DataError(f"expected Mission or Swath instruments, got {type(instrument).__name__}")


def _empty_points() -> TrackPoints:
    return TrackPoints(np.empty(0, "datetime64[ns]"), np.empty(0), np.empty(0),
                       np.empty(0, np.int64), np.empty(0, np.int64))


def _check_box(lon_range, lat_range) -> tuple[tuple[float, float], tuple[float, float]]:
    west, east = map(float, lon_range)
    south, north = map(float, lat_range)
    if not (east > west and north > south) or not all(
            math.isfinite(x) for x in (west, east, south, north)):
        raise DataError(f"track_points: empty box lon={lon_range}, lat={lat_range}")
    return (west, east), (south, north)


def _refs(missions: tuple[Mission | Swath, ...]) -> list[np.datetime64]:
    return [np.datetime64(pd.Timestamp(m.ref_time).to_datetime64(), "ns") for m in missions]


def _points_in(orbits: list[_Orbit], refs: list[np.datetime64], t0: np.datetime64,
               t1: np.datetime64) -> TrackPoints:
    """Samples of every orbit during ``[t0, t1)``, sorted by time (then mission)."""
    parts = []
    for k, (orbit, ref) in enumerate(zip(orbits, refs)):
        # window in seconds since the mission's reference node crossing
        a = (t0 - ref) / np.timedelta64(1, "s")
        b = (t1 - ref) / np.timedelta64(1, "s")
        if b <= a:
            continue
        t, lon, lat, pas = orbit.window(a, b)
        if t.size == 0:
            continue
        # whole microseconds: exact for the whole-second nadir samples and the swaths'
        # whole-microsecond sub-steps, whatever the float error of shifting by cycles
        us = (t * 1e6).round().astype(np.int64).astype("timedelta64[us]")
        parts.append((ref + us.astype("timedelta64[ns]"), lon, lat,
                      np.full(t.size, k, dtype=np.int64), pas))
    if not parts:
        return _empty_points()
    time, lon, lat, mis, pas = (np.concatenate(x) for x in zip(*parts))
    order = np.lexsort((mis, time))
    return TrackPoints(time[order], lon[order], lat[order], mis[order], pas[order])


def track_points(
    lon_range: tuple[float, float],
    lat_range: tuple[float, float],
    start: np.datetime64 | str | pd.Timestamp,
    end: np.datetime64 | str | pd.Timestamp,
    missions: tuple[Mission | Swath, ...] = DEFAULT_MISSIONS,
) -> TrackPoints:
    """Along-track sample positions inside a lon/lat box during ``[start, end)``.

    Parameters
    ----------
    lon_range : ``(west, east)`` edges in degrees east, ``west < east``; a box crossing the
        antimeridian is given with ``east > 180`` (e.g. ``(170, 190)``).
    lat_range : ``(south, north)`` edges in degrees north.
    start, end : time window (end excluded). The cost grows with its length (1 Hz
        samples): for long records sample one window per time step, as
        :func:`sample_along_tracks` does.
    missions : the altimeters to fly: nadir :class:`Mission` s and/or wide
        :class:`Swath` s (one point per swath pixel, ~2 km apart, with the time and pass
        number of its nadir point).

    Returns
    -------
    :class:`TrackPoints`, sorted by time (then mission).
    """
    box_lon, box_lat = _check_box(lon_range, lat_range)
    t0 = np.datetime64(pd.Timestamp(start).to_datetime64(), "ns")
    t1 = np.datetime64(pd.Timestamp(end).to_datetime64(), "ns")
    orbits = [_orbit_for(m, box_lon, box_lat) for m in missions]
    return _points_in(orbits, _refs(missions), t0, t1)


# ---------------------------------------------------------------------- sampling a field
def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges of monotonically increasing cell centres."""
    mid = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate(([centres[0] - (mid[0] - centres[0])], mid,
                           [centres[-1] + (centres[-1] - mid[-1])]))


def _check_field(field: xr.DataArray, who: str = "sample_along_tracks") -> xr.DataArray:
    if not isinstance(field, xr.DataArray):
        raise DataError(f"{who}: expected an xarray.DataArray, got "
                        f"{type(field).__name__}")
    missing = {"time", "lat", "lon"} - set(field.dims)
    if missing or field.ndim != 3:
        raise DataError(f"{who}: field {field.name!r} has dims {field.dims}; "
                        "expected (time, lat, lon)")
    field = field.transpose("time", "lat", "lon")
    for dim in ("lat", "lon"):
        c = np.asarray(field[dim].values, dtype=np.float64)
        if c.size < 2:
            raise DataError(f"{who}: field {field.name!r} needs at least 2 "
                            f"points along {dim}, has {c.size}")
        if not np.all(np.diff(c) > 0):
            raise DataError(f"{who}: {dim} of field {field.name!r} must be "
                            "strictly increasing (canonical form)")
    if not np.issubdtype(field["time"].dtype, np.datetime64):
        raise DataError(f"{who}: time of field {field.name!r} must be "
                        f"datetime64, got {field['time'].dtype}")
    if field.sizes["time"] > 1 and not np.all(np.diff(field["time"].values) > np.timedelta64(0)):
        raise DataError(f"{who}: time of field {field.name!r} must increase")
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


def _step_windows(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stretch of orbit flown for each time step: ``[start, end)`` (datetime64[ns]).

    It is the step's bin (the instants nearer to it than to its neighbours) cut to one day
    centred on the step's time, so that a daily field sees every sample once and a monthly
    or yearly field sees one representative day per step, never the whole record.
    """
    t = times.astype("datetime64[ns]")
    edges = _time_edges(t)
    half = _WINDOW // 2
    return np.maximum(edges[:-1], t - half), np.minimum(edges[1:], t + half)


def _iter_samples(field: xr.DataArray, noise_std: float, seed: int,
                  missions: tuple[Mission | Swath, ...]):
    """Samples of each time step ``k``, in time order, a few hours of orbit at a time:
    ``(k, points, truth, value, lat_index, lon_index)`` (several tuples per step).

    Only one day of orbit per step is flown and only a slab of ``field`` is loaded at a
    time, so memory stays small whatever the record's length or the grid's size. The noise
    is drawn step after step from one generator, in time order, which gives the same
    values as drawing it for all samples at once.
    """
    lat = np.asarray(field["lat"].values, dtype=np.float64)
    lon = np.asarray(field["lon"].values, dtype=np.float64)
    lat_e, lon_e = _edges(lat), _edges(lon)
    box_lon, box_lat = (lon_e[0], lon_e[-1]), (lat_e[0], lat_e[-1])
    orbits = [_orbit_for(m, box_lon, box_lat) for m in missions]
    refs = _refs(missions)
    w0, w1 = _step_windows(field["time"].values)
    rng = np.random.default_rng(seed)
    nt, ny, nx = field.shape
    slab = max(1, int(_LOAD_BYTES // max(1, ny * nx * field.dtype.itemsize)))
    chunk = np.timedelta64(_BLOCK_S, "s").astype("timedelta64[ns]")
    for b0 in range(0, nt, slab):
        data = None  # loaded only when a step of this slab has samples
        for k in range(b0, min(nt, b0 + slab)):
            c0 = w0[k]
            while c0 < w1[k]:  # a few hours of orbit at a time keep temporaries small
                c1 = min(c0 + chunk, w1[k])
                pts = _points_in(orbits, refs, c0, c1)
                c0 = c1
                n = len(pts)
                noise = rng.normal(0.0, noise_std, n) if noise_std > 0 else np.zeros(n)
                if n == 0:
                    continue
                if data is None:
                    data = np.asarray(field.isel(time=slice(b0, b0 + slab)).values)
                grid = data[k - b0]
                iy = np.clip(np.searchsorted(lat_e, pts.lat, side="right") - 1, 0, lat.size - 1)
                ix = np.clip(np.searchsorted(lon_e, pts.lon, side="right") - 1, 0, lon.size - 1)
                y0, ay = _bilinear_weights(lat, pts.lat)
                x0, ax = _bilinear_weights(lon, pts.lon)
                d00 = grid[y0, x0].astype(np.float64)
                d01 = grid[y0, x0 + 1].astype(np.float64)
                d10 = grid[y0 + 1, x0].astype(np.float64)
                d11 = grid[y0 + 1, x0 + 1].astype(np.float64)
                truth = (1 - ay) * ((1 - ax) * d00 + ax * d01) + ay * ((1 - ax) * d10 + ax * d11)
                ok = np.isfinite(truth)
                if not ok.any():
                    continue
                yield (k, TrackPoints(pts.time[ok], pts.lon[ok], pts.lat[ok], pts.mission[ok],
                                      pts.pass_number[ok]),
                       truth[ok], truth[ok] + noise[ok], iy[ok], ix[ok])


def along_track_samples(
    field: xr.DataArray,
    noise_std: float = 0.02,
    seed: int = 0,
    missions: tuple[Mission | Swath, ...] = DEFAULT_MISSIONS,
) -> pd.DataFrame:
    """Sample a gridded field along the missions' ground tracks (un-binned).

    Each time step is observed by one day of orbit centred on its time (its whole bin when
    steps are shorter than a day), so daily fields see every sample of the record once and
    monthly or yearly fields one representative day per step.

    Parameters
    ----------
    field : DataArray ``(time, lat, lon)``, canonical form (lat and lon increasing,
        datetime64 time, NaN on land).
    noise_std : standard deviation of the Gaussian noise added to each sample, in the
        field's units.
    seed : seed of ``numpy.random.default_rng`` for the noise.
    missions : the altimeters to fly: :class:`Mission` s and/or :class:`Swath` s (one row
        per swath pixel).

    Returns
    -------
    DataFrame, one row per sample over ocean, sorted by time: ``time`` (datetime64),
    ``time_index`` (the time step of ``field`` it observes), ``lon``, ``lat``, ``mission``,
    ``pass_number``, ``lat_index`` and ``lon_index`` (the grid cell it falls in), ``truth``
    (bilinear interpolation of the field at that time step) and ``value`` (truth + noise).
    """
    field = _check_field(field)
    names = np.array([m.name for m in missions], dtype=object)
    cols: dict[str, list] = {c: [] for c in ("time", "time_index", "lon", "lat", "mission",
                                             "pass_number", "lat_index", "lon_index",
                                             "truth", "value")}
    for k, pts, truth, value, iy, ix in _iter_samples(field, noise_std, seed, missions):
        for c, x in (("time", pts.time), ("time_index", np.full(len(pts), k, dtype=np.int64)),
                     ("lon", pts.lon), ("lat", pts.lat), ("mission", names[pts.mission]),
                     ("pass_number", pts.pass_number), ("lat_index", iy), ("lon_index", ix),
                     ("truth", truth), ("value", value)):
            cols[c].append(x)
    empty = {"time": np.empty(0, "datetime64[ns]"), "mission": np.array([], dtype=object),
             "lon": np.empty(0), "lat": np.empty(0), "truth": np.empty(0),
             "value": np.empty(0)}
    return pd.DataFrame({c: np.concatenate(x) if x else empty.get(c, np.empty(0, np.int64))
                         for c, x in cols.items()})


def _binned(field: xr.DataArray, noise_std: float, seed: int,
            missions: tuple[Mission | Swath, ...]) -> np.ndarray:
    """Mean of the samples in each grid cell and time step, ``(time, lat, lon)`` float32,
    NaN where none."""
    nt, ny, nx = field.shape
    out = np.full((nt, ny, nx), np.nan, dtype=np.float32)

    def bin_step(k, flat, value):
        cells, inverse = np.unique(np.concatenate(flat), return_inverse=True)
        total = np.bincount(inverse, weights=np.concatenate(value), minlength=cells.size)
        count = np.bincount(inverse, minlength=cells.size)
        out[k].reshape(-1)[cells] = (total / count).astype(np.float32)

    current, flat, values = None, [], []
    for k, _, _, value, iy, ix in _iter_samples(field, noise_std, seed, missions):
        if k != current and flat:
            bin_step(current, flat, values)
            flat, values = [], []
        current = k
        flat.append(iy * nx + ix)
        values.append(value)
    if flat:
        bin_step(current, flat, values)
    return out


def _step_words(field: xr.DataArray) -> tuple[str, str]:
    """("day" or "time step", note on the orbit flown per step) for the attributes."""
    nt = field.sizes["time"]
    times = field["time"].values
    daily = nt < 2 or np.all(np.diff(times) == np.timedelta64(1, "D"))
    longer = nt > 1 and np.any(np.diff(times) > _WINDOW)
    return ("day" if daily else "time step",
            " (one day of orbit centred on each time step)" if longer else "")


def _obs_array(field: xr.DataArray, out: np.ndarray, attrs: dict) -> xr.DataArray:
    for key in ("units", "standard_name"):
        if key in field.attrs:
            attrs[key] = field.attrs[key]
    return xr.DataArray(
        out,
        dims=("time", "lat", "lon"),
        coords={"time": field["time"], "lat": field["lat"], "lon": field["lon"]},
        name=f"{field.name}_obs" if field.name else "obs",
        attrs=attrs,
    )


def _instrument_text(m: Mission | Swath) -> str:
    if isinstance(m, Swath):
        return (f"{m.name}: swaths {m.inner_km:g}-{m.outer_km:g} km either side of the "
                f"ground track, {(m.outer_km - m.inner_km) / m.n_cross:.3g} km x "
                f"{m.along_step_km:.3g} km pixels, {m.mission.inclination_deg:g} deg orbit "
                f"repeating every {m.mission.repeat_days} days ({m.mission.revs_per_cycle} "
                "revolutions)")
    return f"{m.name}: nadir, {m.sample_interval_s:g} s between samples"


def sample_along_tracks(
    field: xr.DataArray,
    noise_std: float = 0.02,
    seed: int = 0,
    missions: tuple[Mission | Swath, ...] = DEFAULT_MISSIONS,
) -> xr.DataArray:
    """Simulated nadir altimetry of ``field``, binned to its grid by time step.

    Each time step is observed by one day of orbit centred on its time (its whole bin when
    steps are shorter than a day): a daily field sees every sample of the record once, a
    monthly or yearly field one representative day per step, so the cost grows with the
    number of steps, never with the span of the record. Each along-track sample (1 Hz,
    6–7 km apart) takes the bilinear interpolation of the field at its time step plus
    Gaussian noise, is dropped where the interpolation touches land (NaN), and the samples
    falling in each grid cell during each time step are averaged.

    Parameters
    ----------
    field : DataArray ``(time, lat, lon)`` in canonical form (lat and lon increasing,
        datetime64 time, NaN on land); any box, grid spacing and time step.
    noise_std : noise standard deviation per sample, in the field's units (default 2 cm
        for SSH in metres).
    seed : seed of ``numpy.random.default_rng`` for the noise.
    missions : the altimeters to fly (default: the four of the 2020a data challenge);
        :class:`Swath` instruments may be mixed in (each pixel is a sample, with the same
        ``noise_std``; see :func:`sample_swath`).

    Returns
    -------
    DataArray with ``field``'s shape and coordinates, float32, NaN where nothing was
    observed during that time step; attributes ``units`` (copied), ``long_name``,
    ``description``, ``missions``, ``noise_std``, ``seed``.
    """
    field = _check_field(field)
    out = _binned(field, noise_std, seed, missions)
    names = ", ".join(m.name for m in missions)
    step, flown = _step_words(field)
    if all(isinstance(m, Mission) for m in missions):
        where = (f"along simulated nadir altimeter ground tracks ({names}) at 1 Hz "
                 f"(6-7 km apart){flown}")
    else:
        where = (f"by simulated altimeters ({'; '.join(map(_instrument_text, missions))})"
                 f"{flown}")
    attrs = {
        "long_name": f"along-track altimetry, binned to the grid by {step}",
        "description": (
            f"{field.name or 'field'} sampled {where}, bilinear interpolation at the nearest "
            f"time step, Gaussian noise of std {noise_std:g} {field.attrs.get('units', '')} per "
            f"sample (seed {seed}), samples touching land dropped, mean of the samples in "
            f"each grid cell and {step}; NaN where nothing was observed"
        ).replace("  ", " "),
        "missions": names,
        "noise_std": float(noise_std),
        "seed": int(seed),
    }
    return _obs_array(field, out, attrs)


def sample_swath(
    field: xr.DataArray,
    noise_std: float = 0.02,
    seed: int = 0,
    swath: Swath = SWOT,
) -> xr.DataArray:
    """Simulated wide-swath altimetry (SWOT-like) of ``field``, binned to its grid by time
    step.

    As :func:`sample_along_tracks`, with the pixels of ``swath`` (default :data:`SWOT`: two
    50 km swaths 10–60 km either side of the 77.6°, 21-day-repeat ground track, pixels
    2 km across × 2.15 km along track) as samples: each time step is observed by one day
    of orbit centred on its time, each pixel takes the bilinear interpolation of the field
    at its time step plus Gaussian noise, pixels touching land are dropped, and the pixels
    in each grid cell during each time step are averaged. The swath pattern repeats exactly
    every ``swath.mission.repeat_days`` days. A year of the 0.1° OSSE (100 × 100 cells,
    365 days, ~21 000 pixels a day) takes about a second.

    Parameters
    ----------
    field : DataArray ``(time, lat, lon)`` in canonical form (lat and lon increasing,
        datetime64 time, NaN on land); any box, grid spacing and time step.
    noise_std : standard deviation of the white noise of each **pixel** (about
        ``swath.pixel_area_km2`` = 4.3 km² for SWOT), in the field's units. A cell mean of
        ``n`` pixels has noise ``noise_std / √n`` (a 0.1° cell at 38° N holds ~22 pixels of
        one pass, so 2 cm per pixel is ~0.4 cm per cell). To prescribe the noise of an
        average over ``L`` km × ``L`` km instead, pass
        ``swath.noise_per_sample(std_at_L, L)``. Spatially correlated errors (roll, phase,
        timing) are not simulated.
    seed : seed of ``numpy.random.default_rng`` for the noise (drawn pixel after pixel in
        time order, so a seed always gives the same observations).
    swath : the instrument (:class:`Swath`).

    Returns
    -------
    DataArray with ``field``'s shape and coordinates, float32, NaN where nothing was
    observed during that time step; attributes ``units`` (copied), ``long_name``,
    ``description``, ``missions`` (the instrument's name), ``noise_std``, ``seed``,
    ``swath_inner_km``, ``swath_outer_km``, ``pixel_cross_km``, ``pixel_along_km``.
    """
    if not isinstance(swath, Swath):
        raise DataError(f"sample_swath: swath must be a Swath, got {type(swath).__name__} "
                        "(nadir missions go to sample_along_tracks)")
    if not (isinstance(noise_std, (int, float, np.floating, np.integer))
            and math.isfinite(noise_std) and noise_std >= 0):
        raise DataError(f"sample_swath: noise_std must be a finite number >= 0, got "
                        f"{noise_std!r}")
    field = _check_field(field, "sample_swath")
    out = _binned(field, float(noise_std), seed, (swath,))
    step, flown = _step_words(field)
    cross = (swath.outer_km - swath.inner_km) / swath.n_cross
    attrs = {
        "long_name": f"wide-swath altimetry, binned to the grid by {step}",
        "description": (
            f"{field.name or 'field'} sampled by a simulated wide-swath altimeter "
            f"({_instrument_text(swath)}){flown}, bilinear interpolation at the nearest time "
            f"step, Gaussian noise of std {noise_std:g} {field.attrs.get('units', '')} per "
            f"pixel (seed {seed}), pixels touching land dropped, mean of the pixels in each "
            f"grid cell and {step}; NaN where nothing was observed"
        ).replace("  ", " "),
        "missions": swath.name,
        "noise_std": float(noise_std),
        "seed": int(seed),
        "swath_inner_km": float(swath.inner_km),
        "swath_outer_km": float(swath.outer_km),
        "pixel_cross_km": float(cross),
        "pixel_along_km": float(swath.along_step_km),
    }
    return _obs_array(field, out, attrs)


def merge_observations(*obs: xr.DataArray) -> xr.DataArray:
    """Combine observations of the same grid (e.g. nadir and swath) into one.

    In each cell and time step the observations that have a value there are averaged with
    equal weights (one per input, whatever the number of samples behind each); NaN where
    none has a value.

    Parameters
    ----------
    *obs : DataArrays with the same dims and coordinates (as returned by
        :func:`sample_along_tracks` and :func:`sample_swath` for one field); a single list
        or tuple of them is accepted too.

    Returns
    -------
    DataArray float32 on the same grid, named as the first; attributes ``long_name``,
    ``description`` (those of the inputs), ``missions`` (all of them), ``units`` where the
    inputs agree.
    """
    if len(obs) == 1 and isinstance(obs[0], (list, tuple)):
        obs = tuple(obs[0])
    if not obs:
        raise DataError("merge_observations: no observations given")
    for i, o in enumerate(obs):
        if not isinstance(o, xr.DataArray):
            raise DataError(f"merge_observations: observation {i} is a {type(o).__name__}, "
                            "expected an xarray.DataArray")
        if set(o.dims) != set(obs[0].dims):
            raise DataError(f"merge_observations: observation {i} ({o.name!r}) has dims "
                            f"{o.dims}, the first has {obs[0].dims}")
    first = obs[0]
    obs = tuple(o.transpose(*first.dims) for o in obs)
    for i, o in enumerate(obs[1:], start=1):
        for dim in first.dims:
            if not np.array_equal(np.asarray(o[dim].values), np.asarray(first[dim].values)):
                raise DataError(f"merge_observations: observation {i} ({o.name!r}) is not on "
                                f"the grid of the first: its {dim} coordinates differ")
    total = np.zeros(first.shape, dtype=np.float64)
    count = np.zeros(first.shape, dtype=np.int32)
    for o in obs:
        v = np.asarray(o.values, dtype=np.float64)
        ok = np.isfinite(v)
        total[ok] += v[ok]
        count += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(count > 0, total / count, np.nan).astype(np.float32)
    units = {o.attrs.get("units") for o in obs}
    missions = [o.attrs.get("missions") or str(o.name) for o in obs]
    attrs = {
        "long_name": "merged observations (equal-weight mean where several observe a cell)",
        "description": " | ".join(str(o.attrs.get("description", o.name)) for o in obs),
        "missions": ", ".join(missions),
    }
    if len(units) == 1 and None not in units:
        attrs["units"] = units.pop()
    return xr.DataArray(out, dims=first.dims, coords={d: first[d] for d in first.dims},
                        name=first.name, attrs=attrs)
