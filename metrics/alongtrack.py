"""Scores of a gridded map against independent along-track observations (issue 11).

The definitions follow the evaluation of the real-altimetry SSH mapping data challenge
(``ocean-data-challenges/2021a_SSH_mapping_OSE``, Cryosat-2 held out): the map is scored at
the observations' points and times, never against a gridded truth. What this module
computes, and where it departs from that challenge's code (``src/mod_interp.py``,
``src/mod_stats.py`` with ``src/mod_write.py``, ``src/mod_spectral.py``,
``src/mod_plot.py``):

``interp_to_tracks``
    The map is interpolated linearly in time and bilinearly in latitude/longitude onto each
    observation (as ``interp_on_alongtrack``, which calls ``pyinterp.trivariate`` with
    ``bounds_error=False``): a point outside the map's box or period, or with a missing
    (land) value among its 8 surrounding grid values, is NaN. Longitudes are wrapped onto
    the map's convention (−180..180 or 0..360). Unlike the challenge, points within 0.25°
    of the box's edge are not dropped, and the gap between the last and first longitude of
    a global grid is not bridged.

``rmse_alongtrack``
    √mean((map − obs)²) over every point where both are defined (data units; metres for
    SSH). ``n_alongtrack`` is the number of those points.

``mu_alongtrack`` and ``sigma_alongtrack``
    The leaderboard's µ(RMSE) and σ(RMSE) (``write_timeserie_stat``): the points are binned
    by calendar day; in each day with at least :data:`MIN_POINTS_PER_BIN` (10) points the
    score is 1 − RMSE_day / RMS(obs)_day; µ is the mean of the daily scores and σ their
    standard deviation (population, ddof 0, as ``np.ma.std``). µ is therefore the mean of
    daily scores, not 1 − RMSE / RMS(obs) over the whole period (which equals it when every
    day is alike).

``lambda_x_alongtrack_km``
    The effective resolution (``compute_segment_alongtrack``, ``compute_spectral_scores``,
    ``find_wavelength_05_crossing``): the valid points are cut into continuous pieces (one
    mission, time steps of at most :data:`MAX_GAP_S` (4 s), no missing value of the map or
    the observation); windows of ``npt = int(segment_km / Δx)`` points are taken every
    ``int(0.25 · npt)`` points (the challenge's ``segment_overlapping = 0.25`` is the step,
    so consecutive windows share 75 %); the power spectral densities of the observation, the
    map and map − obs are Welch estimates (Hann window, mean removed, one segment per window,
    ``scaling="density"``) averaged over windows, which is what the challenge's
    ``scipy.signal.welch(concatenated windows, nperseg=npt, noverlap=0)`` computes; the score
    is 1 − PSD(map − obs) / PSD(obs) and λx the wavelength where it first falls below 0.5
    going from the longest wavelength to the shortest, interpolated linearly in wavelength
    between the two bracketing wavenumbers. Departures: Δx is the median haversine spacing
    of consecutive points (the challenge fixes 6.77 km/s × 0.9434 s = 6.39 km, Cryosat-2's
    1 Hz spacing); a piece is cut at a missing value even when the time step stays under
    4 s (the challenge removes such points and joins the two sides); the last piece of the
    record and a window ending on a piece's last point are kept (the challenge's loop drops
    them); the time step may be longer than 4 s on data sampled more sparsely (the limit is
    max(4 s, 2 × the median step)); the challenge scans the score with
    ``scipy.interpolate.interp1d`` over all wavenumbers, here the first crossing is taken.
    None with a reason when no window fits, when the score is below 0.5 already at the
    longest wavelength, or when it never falls below 0.5 (the map resolves every wavelength
    down to 2 Δx).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

#: Score keys of :func:`alongtrack_scores`, in order (``notes`` follows them).
SCORE_KEYS: tuple[str, ...] = ("rmse_alongtrack", "mu_alongtrack", "sigma_alongtrack",
                               "lambda_x_alongtrack_km", "n_alongtrack")
#: Fewest points of a daily bin for its score to count in µ and σ (the challenge's
#: ``nb_min_obs``).
MIN_POINTS_PER_BIN = 10
#: Width of the time bins of µ and σ (the challenge's ``bin_time_step``).
TIME_BIN = "1D"
#: Longest time step (s) inside a continuous piece of track (the challenge's
#: ``max_delta_t_gap``).
MAX_GAP_S = 4.0
#: Step between windows as a fraction of the window (the challenge's
#: ``segment_overlapping``).
WINDOW_STEP = 0.25
#: Fewest points of a window for a spectrum.
MIN_WINDOW_POINTS = 8
EARTH_RADIUS_KM = 6371.0


# -- interpolation onto the tracks ------------------------------------------------------------
def _bracket(axis: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower index, weight of the upper neighbour, and inside-ness of ``x`` on the ascending
    ``axis`` (a single-point axis holds only its own value)."""
    n = axis.size
    if n == 1:
        return (np.zeros(x.shape, dtype=np.intp), np.zeros(x.shape),
                np.asarray(x == axis[0]))
    inside = (x >= axis[0]) & (x <= axis[-1])
    i = np.clip(np.searchsorted(axis, x, side="right") - 1, 0, n - 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = (x - axis[i]) / (axis[i + 1] - axis[i])
    w = np.where(inside, w, 0.0)
    return i, w, inside


def interp_to_tracks(field: xr.DataArray, tracks: xr.Dataset) -> np.ndarray:
    """``field`` (dims ``time``, ``lat``, ``lon``) at the points of ``tracks`` (dim ``obs``,
    coords ``time``, ``lat``, ``lon``): linear in time, bilinear in space; float64 array of
    one value per observation, NaN outside the field's box or period or where one of the 8
    surrounding grid values is missing (land). See the module docstring."""
    da = field.transpose("time", "lat", "lon")
    for dim in ("time", "lat", "lon"):
        if not pd.Index(da[dim].values).is_monotonic_increasing:
            da = da.sortby(dim)
    grid = np.asarray(da.values, dtype=np.float64)
    t_axis = da["time"].values.astype("datetime64[ns]").astype(np.int64).astype(np.float64)
    lat_axis = da["lat"].values.astype(np.float64)
    lon_axis = da["lon"].values.astype(np.float64)

    t = tracks["time"].values.astype("datetime64[ns]").astype(np.int64).astype(np.float64)
    lat = np.asarray(tracks["lat"].values, dtype=np.float64)
    lon = np.asarray(tracks["lon"].values, dtype=np.float64)
    # the map's longitude convention: lon0 <= lon < lon0 + 360
    lon = lon_axis[0] + np.mod(lon - lon_axis[0], 360.0)

    it, wt, in_t = _bracket(t_axis, t)
    iy, wy, in_y = _bracket(lat_axis, lat)
    ix, wx, in_x = _bracket(lon_axis, lon)
    ok = in_t & in_y & in_x & np.isfinite(lat) & np.isfinite(lon)
    nt, ny, nx = grid.shape
    out = np.zeros(t.shape, dtype=np.float64)
    for dt, ft in ((0, 1.0 - wt), (1, wt)):
        for dy, fy in ((0, 1.0 - wy), (1, wy)):
            for dx, fx in ((0, 1.0 - wx), (1, wx)):
                v = grid[np.minimum(it + dt, nt - 1), np.minimum(iy + dy, ny - 1),
                         np.minimum(ix + dx, nx - 1)]
                # a missing neighbour spoils the point, even with weight 0 (as pyinterp)
                out += np.where(np.isfinite(v), v, np.nan) * (ft * fy * fx)
    out[~ok] = np.nan
    return out


# -- segments and spectra ---------------------------------------------------------------------
def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance (km) on a sphere of radius :data:`EARTH_RADIUS_KM`."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def continuous_pieces(time: np.ndarray, mission: np.ndarray, valid: np.ndarray,
                      max_gap_s: float | None = None) -> list[np.ndarray]:
    """Index arrays (into the inputs, in time order) of the continuous pieces of track: one
    mission, consecutive valid points at most ``max_gap_s`` apart (default
    max(:data:`MAX_GAP_S`, 2 × the mission's median time step))."""
    t = np.asarray(time).astype("datetime64[ns]").astype(np.int64)
    mission = np.asarray(mission).astype(str)
    pieces: list[np.ndarray] = []
    for m in np.unique(mission):
        idx = np.flatnonzero(mission == m)
        idx = idx[np.argsort(t[idx], kind="stable")]
        steps = np.diff(t[idx]) / 1e9
        gap = max_gap_s
        if gap is None:
            positive = steps[steps > 0]
            gap = max(MAX_GAP_S, 2.0 * float(np.median(positive))) if positive.size else MAX_GAP_S
        # a break before position j+1 where the step is too long or not forward
        cut = (steps > gap) | (steps <= 0)
        good = np.asarray(valid)[idx]
        # a new piece starts after a cut or after a missing value
        start = np.ones(idx.size, dtype=bool)
        start[1:] = cut | ~good[:-1]
        piece = np.cumsum(start)[good]
        kept = idx[good]
        bounds = np.flatnonzero(np.diff(piece)) + 1
        pieces.extend(np.split(kept, bounds))
    return [p for p in pieces if p.size > 1]


def alongtrack_spectra(obs: np.ndarray, rec: np.ndarray, time: np.ndarray, lat: np.ndarray,
                       lon: np.ndarray, mission: np.ndarray, *, segment_km: float = 1000.0,
                       delta_x_km: float | None = None, max_gap_s: float | None = None
                       ) -> tuple[xr.Dataset | None, str | None]:
    """Welch PSDs of the observation (``psd_ref``), the map (``psd_study``) and map − obs
    (``psd_diff``) over windows of ``segment_km`` along the continuous pieces of track, with
    ``score`` = 1 − psd_diff / psd_ref, on ``wavenumber`` (cycles/km) > 0; attributes
    ``delta_x_km``, ``npt``, ``n_windows``. ``(None, reason)`` when no window fits."""
    from scipy.signal import welch

    obs = np.asarray(obs, dtype=np.float64)
    rec = np.asarray(rec, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    valid = np.isfinite(obs) & np.isfinite(rec)
    pieces = continuous_pieces(time, mission, valid, max_gap_s)
    if not pieces:
        return None, "no continuous stretch of track with map and observation values"
    if delta_x_km is None:
        steps = np.concatenate([haversine_km(lat[p[:-1]], lon[p[:-1]], lat[p[1:]], lon[p[1:]])
                                for p in pieces])
        steps = steps[steps > 0]
        if not steps.size:
            return None, "the track points do not move (zero along-track spacing)"
        delta_x_km = float(np.median(steps))
    npt = int(segment_km / delta_x_km)
    if npt < MIN_WINDOW_POINTS:
        return None, (f"a {segment_km:g} km window holds {npt} points at the along-track "
                      f"spacing of {delta_x_km:.3g} km (at least {MIN_WINDOW_POINTS} needed)")
    step = max(1, int(npt * WINDOW_STEP))
    windows = [p[s:s + npt] for p in pieces if p.size >= npt
               for s in range(0, p.size - npt + 1, step)]
    if not windows:
        longest = max(p.size for p in pieces)
        return None, (f"no continuous stretch of track of {segment_km:g} km ({npt} points at "
                      f"{delta_x_km:.3g} km spacing); the longest holds {longest} points")
    idx = np.stack(windows)
    kw = {"fs": 1.0 / delta_x_km, "nperseg": npt, "noverlap": 0, "window": "hann",
          "detrend": "constant", "scaling": "density", "axis": -1}
    k, p_ref = welch(obs[idx], **kw)
    _, p_study = welch(rec[idx], **kw)
    _, p_diff = welch(rec[idx] - obs[idx], **kw)
    p_ref, p_study, p_diff = p_ref.mean(0), p_study.mean(0), p_diff.mean(0)
    keep = k > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 1.0 - p_diff[keep] / p_ref[keep]
    ds = xr.Dataset(
        {"psd_ref": ("wavenumber", p_ref[keep]), "psd_study": ("wavenumber", p_study[keep]),
         "psd_diff": ("wavenumber", p_diff[keep]), "score": ("wavenumber", score)},
        coords={"wavenumber": ("wavenumber", k[keep], {"units": "cycles/km"})},
        attrs={"delta_x_km": delta_x_km, "npt": npt, "n_windows": len(windows),
               "segment_km": float(segment_km)})
    return ds, None


def resolved_wavelength(wavenumber: np.ndarray, score: np.ndarray,
                        level: float = 0.5) -> tuple[float | None, str | None]:
    """The wavelength (1 / wavenumber) where ``score`` first falls below ``level`` going
    from long to short wavelengths, linear in wavelength between the bracketing points;
    ``(None, reason)`` without such a crossing."""
    k = np.asarray(wavenumber, dtype=np.float64)
    s = np.asarray(score, dtype=np.float64)
    order = np.argsort(k)
    k, s = k[order], s[order]
    ok = np.isfinite(s) & (k > 0)
    k, s = k[ok], s[ok]
    if not k.size:
        return None, "no finite PSD score"
    wl = 1.0 / k
    if s[0] < level:
        return None, (f"the PSD score is below {level} already at the longest wavelength "
                      f"({wl[0]:.4g} km): the map resolves no scale of the windows")
    below = np.flatnonzero(s < level)
    if not below.size:
        return None, (f"the PSD score stays above {level} down to the shortest wavelength "
                      f"({wl[-1]:.4g} km): every scale the track samples is resolved")
    j = int(below[0])
    s0, s1, w0, w1 = s[j - 1], s[j], wl[j - 1], wl[j]
    return float(w0 + (level - s0) * (w1 - w0) / (s1 - s0)), None


# -- the scores -------------------------------------------------------------------------------
def _daily_scores(obs: np.ndarray, rec: np.ndarray, time: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per time bin with at least :data:`MIN_POINTS_PER_BIN` points: 1 − RMSE / RMS(obs),
    and the bins' start times."""
    day = pd.DatetimeIndex(time).floor(TIME_BIN)
    frame = pd.DataFrame({"d2": (rec - obs) ** 2, "o2": obs ** 2, "day": day})
    g = frame.groupby("day")
    n = g.size()
    mse, ms = g["d2"].mean(), g["o2"].mean()
    keep = (n >= MIN_POINTS_PER_BIN) & (ms > 0)
    score = 1.0 - np.sqrt(mse[keep].to_numpy()) / np.sqrt(ms[keep].to_numpy())
    return score, n.index[keep.to_numpy()].to_numpy()


def alongtrack_scores(rec: xr.DataArray, tracks: xr.Dataset, *, segment_km: float = 1000.0,
                      delta_x_km: float | None = None, max_gap_s: float | None = None,
                      interpolated: np.ndarray | None = None) -> dict:
    """Scores of the map ``rec`` (dims ``time``, ``lat``, ``lon``) against the along-track
    observations ``tracks`` (dim ``obs``, variable ``value``, coords ``time``, ``lat``,
    ``lon``, ``mission``): a dict with exactly the keys of :data:`SCORE_KEYS` (floats, None,
    ``n_alongtrack`` an int) and ``notes`` ({key: why it is None}). Definitions in the
    module docstring. ``interpolated`` is the map at the points when already computed."""
    obs = np.asarray(tracks["value"].values, dtype=np.float64)
    at = interp_to_tracks(rec, tracks) if interpolated is None else np.asarray(interpolated,
                                                                                dtype=np.float64)
    time = tracks["time"].values.astype("datetime64[ns]")
    valid = np.isfinite(obs) & np.isfinite(at)
    n = int(valid.sum())
    out: dict = {k: None for k in SCORE_KEYS}
    notes: dict = {}
    out["n_alongtrack"] = n
    if n == 0:
        why = ("no observation falls inside the map's box and period where the map has a "
               "value (land or outside)")
        for k in SCORE_KEYS[:-1]:
            notes[k] = why
        out["notes"] = notes
        return out
    diff = at[valid] - obs[valid]
    out["rmse_alongtrack"] = float(np.sqrt(np.mean(diff ** 2)))

    daily, _ = _daily_scores(obs[valid], at[valid], time[valid])
    if daily.size:
        out["mu_alongtrack"] = float(np.mean(daily))
        out["sigma_alongtrack"] = float(np.std(daily))
    else:
        why = (f"no day holds {MIN_POINTS_PER_BIN} or more scored points (or its observations "
               f"are all zero)")
        notes["mu_alongtrack"] = notes["sigma_alongtrack"] = why

    mission = (tracks["mission"].values if "mission" in tracks.coords or "mission" in tracks
               else np.full(obs.shape, ""))
    mission = np.broadcast_to(np.asarray(mission), obs.shape)
    spectra, why = alongtrack_spectra(obs, at, time, tracks["lat"].values, tracks["lon"].values,
                                      mission, segment_km=segment_km, delta_x_km=delta_x_km,
                                      max_gap_s=max_gap_s)
    if spectra is None:
        notes["lambda_x_alongtrack_km"] = why
    else:
        lx, why = resolved_wavelength(spectra["wavenumber"].values, spectra["score"].values)
        out["lambda_x_alongtrack_km"] = lx
        if lx is None:
            notes["lambda_x_alongtrack_km"] = why
    out["notes"] = notes
    return out


__all__ = ["SCORE_KEYS", "alongtrack_scores", "alongtrack_spectra", "continuous_pieces",
           "haversine_km", "interp_to_tracks", "resolved_wavelength"]
