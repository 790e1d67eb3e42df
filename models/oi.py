"""The data challenge's baseline optimal interpolation (OI), batched in torch, with the
super-observations, shared factorisations and noise estimate that make it fast and fair.

The analysis of each output day ``t`` is

    x_a = x_b + B Hᵀ (H B Hᵀ + R)⁻¹ (y − H x_b)

with the separable Gaussian background covariance of unit variance

    B = exp(−(Δt/Lt)² − (Δlon/Lx)² − (Δlat/Ly)²)

(``Δlon``, ``Δlat`` in degrees without a cos(lat) factor, ``Δt`` in days, as the 2020a SSH
mapping data challenge computes it), ``R = noise² I`` and the observations ``y`` with
``|t_obs − t| < 2 Lt``. Observations are the non-NaN values of a gridded ``(time, lat, lon)``
DataArray, each located at its cell centre and day. Since B has unit variance, ``noise`` is
a noise-to-signal ratio σ_obs / σ_signal (only the ratio changes ``x_a``), not an error in
the data's units. The background ``x_b`` is a constant (the mean of the observations), a
mean map (the time-mean of the truth over a training period: a mean dynamic topography), or
zero.

The exact challenge algorithm is :func:`optimal_interpolation` with its defaults
(``superobs=None, block_days=1``). Rather than building the matrices in Python loops and
inverting explicitly (the reference notebook), it

* builds ``H B Hᵀ + R`` for a batch of systems at once from pairwise distances
  (``torch.cdist``),
* factorises it by Cholesky (``torch.linalg.cholesky_ex``) and solves for
  ``w = (HBHᵀ+R)⁻¹ y`` (``torch.cholesky_solve``), batched when the systems are small, one
  by one within the batch when they are large,
* never forms ``B Hᵀ``: on a regular grid it factorises as
  ``B Hᵀ w = Ey · diag(exp(−(Δt/Lt)²) w) · Exᵀ`` with ``Ey = exp(−(Δlat/Ly)²)``
  ``(n_lat × n_obs)`` and ``Ex = exp(−(Δlon/Lx)²)`` ``(n_lon × n_obs)``.

Systems have different numbers of observations; each batch is padded to its largest with
dummy observations placed 100 Lt apart in time from everything else, so that their
covariance rows and columns are exactly zero (the exponential underflows), with value zero:
their weight ``w`` is exactly zero and they cannot change the analysis.

The fast mode (:class:`OIParams`' defaults) changes two things, each an approximation whose
size ``bench/bench_oi.py`` measures:

super-observations (``superobs``)
    The observations falling in one bin of ``superobs·Lx`` × ``superobs·Ly`` degrees and
    ``superobs_days`` days are replaced by one observation at their mean position and time,
    of value their mean and error variance ``noise²/count`` (R stays diagonal). Within a bin
    the covariance with anything varies by at most ``1 − exp(−superobs²)`` (6 % for 0.25),
    so the analysis barely changes while the systems shrink by the number of observations
    per bin (2–3 on nadir tracks binned at 0.1°, far more on wide swaths). When a system
    would still hold more than ``max_obs`` super-observations, the spatial bins grow
    (×1.25 at a time) until none does, which bounds the memory (about ``24·max_obs²``
    bytes in float64) whatever the density of the observations.
shared factorisations (``block_days``)
    Up to ``block_days`` consecutive output days share one system: the observations of the
    union of their windows (within 2 Lt of the block's first to last day). Since
    ``H B Hᵀ + R`` does not depend on the output day, one factorisation and solve serve
    every day of the block; only the cheap ``B Hᵀ w`` product is per day. Each day then sees
    a few more observations, all more than 2 Lt away, with weights below exp(−4).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import torch
import xarray as xr
from pydantic import Field, field_validator

from models.base import Mapper, ModelParams
from models.registry import register
from oceanlab_errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: Default memory budget of one batch of systems (bytes of the largest tensors alive at once).
DEFAULT_MAX_BATCH_BYTES = 1 << 30
#: Largest padded number of observations factorised by one batched call; above it, the
#: systems of a batch are factorised one by one (faster on CUDA for large matrices, see
#: _solve_weights).
_BATCHED_MAX_M = 2048
#: Range the noise-to-signal ratio estimated by ``noise="auto"`` is clamped to. The lower
#: end is the challenge's value for noise-free observations (below it the covariance of
#: dense tracks becomes too ill-conditioned to be useful); above the upper end the
#: observations would hardly count.
AUTO_NOISE_RANGE = (0.05, 2.0)
#: Ratio ``noise="auto"`` falls back to when nothing can be estimated (the challenge's).
AUTO_NOISE_FALLBACK = 0.05
#: Neighbouring same-day observations up to this distance, in units of (Lx, Ly), enter the
#: noise estimate from differences (and at most _MAX_LAG_CELLS cells in each direction).
_NOISE_MAX_LAG = 0.3
_MAX_LAG_CELLS = 4
#: Growth factor of the super-observation bins while a system exceeds ``max_obs``, and the
#: largest fraction of (Lx, Ly) the bins may reach.
_SUPEROBS_GROWTH = 1.25
_SUPEROBS_MAX = 2.0

PositiveFloat = Annotated[float, Field(gt=0)]


class OIParams(ModelParams):
    """Parameters of the optimal interpolation.

    ``lx_deg``, ``ly_deg``, ``lt_days`` default to the data challenge's values; the other
    defaults are the fast mode (super-observations, a factorisation shared by 3 days), the
    estimated noise-to-signal ratio and the training period's mean map. The challenge's exact
    algorithm is ``noise=0.05, mean="observations", superobs=None, block_days=1``.
    """

    name: Literal["oi"] = "oi"
    lx_deg: float = Field(
        1.0, gt=0, description="zonal decorrelation length Lx of the Gaussian covariance (degrees)")
    ly_deg: float = Field(
        1.0, gt=0,
        description="meridional decorrelation length Ly of the Gaussian covariance (degrees)")
    lt_days: float = Field(
        7.0, gt=0,
        description="decorrelation time Lt (days); observations within 2·Lt of a day are used")
    noise: PositiveFloat | Literal["auto"] = Field(
        "auto",
        description="observation noise-to-signal ratio σ_obs/σ_signal (the covariance has unit "
                    "variance, so this is a ratio, not data units; R = noise² I), or 'auto': "
                    "estimated from the observations after the mean removal (their noise_std "
                    "attribute, else differences of neighbouring observations); the challenge "
                    "used 0.05 for noise-free observations")
    remove_mean: bool = Field(
        True, description="map anomalies about a mean (see 'mean'), then add it back; "
                          "False: map the raw values (far from observations, zero)")
    mean: Literal["train", "observations"] = Field(
        "train",
        description="the mean removed: 'train' = the time-mean of the truth over the training "
                    "period (a mean dynamic topography; falls back to 'observations' when the "
                    "task has no training truth), 'observations' = the mean of all "
                    "observations (one number, the challenge's)")
    superobs: PositiveFloat | None = Field(
        0.25,
        description="super-observation bin size as a fraction of Lx (longitude) and Ly "
                    "(latitude): the observations of a bin and 'superobs_days' are averaged "
                    "into one of error variance noise²/count; null: every observation on its "
                    "own (exact)")
    superobs_days: PositiveFloat = Field(
        1.0, description="time bin of the super-observations (days)")
    block_days: int = Field(
        3, ge=1, le=366,
        description="consecutive output days sharing one factorisation (with the observations "
                    "of the union of their windows); 1 = one per day (exact)")
    max_obs: int = Field(
        6000, ge=100, le=100_000,
        description="most super-observations in one system: beyond, the bins grow until it "
                    "fits (bounds memory, ~24·max_obs² bytes); ignored when superobs is null")
    precision: Literal["float64", "float32"] = Field(
        "float64", description="arithmetic of the solves: float32 is about twice as fast on a CPU "
                               "and differs by ~1e-4 of the field's range")

    @field_validator("noise", "superobs", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            # (pydantic turns ValueError, not TypeError, into a validation error)
            raise ValueError(f"expected a number, got {value!r}")  # noqa: TRY004
        return value

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, float]:
        """Values of the tuned parameters suggested by an Optuna ``trial`` (any object with
        ``suggest_float(name, low, high, log=...)``): the covariance scales and the
        noise-to-signal ratio, all log-uniform."""
        return {
            "lx_deg": trial.suggest_float("lx_deg", 0.3, 3.0, log=True),
            "ly_deg": trial.suggest_float("ly_deg", 0.3, 3.0, log=True),
            "lt_days": trial.suggest_float("lt_days", 2.0, 20.0, log=True),
            "noise": trial.suggest_float("noise", 0.01, 1.0, log=True),
        }


def _days(values: np.ndarray, ref: np.datetime64 | None) -> np.ndarray:
    """Times as float64 days (since ``ref`` for datetimes; numbers are taken as days)."""
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.datetime64):
        return (values - ref) / np.timedelta64(1, "D")
    return values.astype(np.float64)


def _coord_values(coord: xr.DataArray | np.ndarray | Sequence[float]) -> np.ndarray:
    return np.asarray(coord.values if isinstance(coord, xr.DataArray) else coord)


def _bytes_per_system(m: int, n_lat: int, n_lon: int, itemsize: int) -> int:
    """Peak memory of one padded system: the m×m covariance and its Cholesky factor (in the
    computation's precision) with headroom for a temporary, and the float64 Ey/Ex factors
    and their product, output map and per-observation vectors."""
    return itemsize * 3 * m * m + 8 * (3 * (n_lat + n_lon) * m + n_lat * n_lon + 16 * m)


def _batches(counts: np.ndarray, n_lat: int, n_lon: int, itemsize: int,
             max_batch_bytes: int) -> list[np.ndarray]:
    """Split the systems (positions into ``counts``) into batches under the memory budget.

    Systems are sorted by observation count so that padding within a batch stays small; a
    system that alone exceeds the budget forms its own batch.
    """
    order = np.argsort(counts, kind="stable")
    batches: list[np.ndarray] = []
    current: list[int] = []
    for d in order:
        m = int(counts[d])  # the largest so far in this batch, since the order is ascending
        if current and (len(current) + 1) * _bytes_per_system(m, n_lat, n_lon, itemsize) > \
                max_batch_bytes:
            batches.append(np.asarray(current))
            current = []
        current.append(int(d))
    if current:
        batches.append(np.asarray(current))
    return batches


# ------------------------------------------------------------------ observations and plan


@dataclass
class _Obs:
    """Flattened observations sorted by time: day (float days since the reference), position
    (degrees), value, and the error variance of each relative to one observation's
    (``1/count`` for a super-observation, 1 otherwise)."""

    t: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    y: np.ndarray
    rel_var: np.ndarray

    def __len__(self) -> int:
        return int(self.t.size)


@dataclass
class _Plan:
    """The systems to solve: observations ``[start, stop)`` of :class:`_Obs` and the output
    days (positions into the requested times) each one serves."""

    obs: _Obs
    start: np.ndarray
    stop: np.ndarray
    days: list[np.ndarray]
    superobs: float | None  # the bin fraction used (after any growth)

    @property
    def counts(self) -> np.ndarray:
        return self.stop - self.start


def _flatten(obs: xr.DataArray, ref) -> tuple[np.ndarray, ...]:
    """``(t_days, i_y, i_x, values)`` of the non-NaN observations, sorted by time."""
    values = np.asarray(obs.values)
    i_t, i_y, i_x = np.nonzero(np.isfinite(values))
    y = values[i_t, i_y, i_x].astype(np.float64)
    t = _days(obs["time"].values, ref)[i_t]
    if t.size and np.any(np.diff(t) < 0):
        order = np.argsort(t, kind="stable")
        t, i_y, i_x, y = t[order], i_y[order], i_x[order], y[order]
    return t, i_y, i_x, y


def _superobs(obs: _Obs, size_lat: float, size_lon: float, size_t: float) -> _Obs:
    """Average the observations in each bin (``size_*`` wide, aligned on 0) into one at
    their mean position and time, relative error variance ``1/count``; sorted by time."""
    if not len(obs):
        return obs
    key = np.zeros(len(obs), dtype=np.int64)
    for x, size in ((obs.t, size_t), (obs.lat, size_lat), (obs.lon, size_lon)):
        b = np.floor(x / size).astype(np.int64)
        b -= b.min()
        key = key * (int(b.max()) + 1) + b  # bins in (time, lat, lon) order, one integer
    _, inverse, count = np.unique(key, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)

    def mean(x: np.ndarray) -> np.ndarray:
        return np.bincount(inverse, weights=x, minlength=count.size) / count

    # (a bin of one member keeps its values exactly: a sum of one term, divided by 1)
    t, lat, lon, y = (mean(x) for x in (obs.t, obs.lat, obs.lon, obs.y))
    order = np.argsort(t, kind="stable")
    return _Obs(t[order], lat[order], lon[order], y[order], (1.0 / count)[order])


def _blocks(t_out: np.ndarray, block_days: int) -> list[np.ndarray]:
    """Output days (positions) grouped greedily in time order: a block spans less than
    ``block_days`` days."""
    order = np.argsort(t_out, kind="stable")
    blocks: list[list[int]] = []
    first = None
    for k in order:
        if first is None or t_out[k] - first >= block_days - 1e-9:
            blocks.append([])
            first = t_out[k]
        blocks[-1].append(int(k))
    return [np.asarray(b) for b in blocks]


def _windows(t_obs: np.ndarray, t_out: np.ndarray, blocks: list[np.ndarray],
             lt: float) -> tuple[np.ndarray, np.ndarray]:
    """``[start, stop)`` into the time-sorted observations of each block: from the first to
    the last observation day with ``|t_obs − t| < 2 Lt`` for one of the block's days (the
    reference's predicate, evaluated on the distinct observation times)."""
    obs_days, first = np.unique(t_obs, return_index=True)
    bounds = np.append(first, t_obs.size)
    start = np.zeros(len(blocks), dtype=np.int64)
    stop = np.zeros(len(blocks), dtype=np.int64)
    for b, days in enumerate(blocks):
        inside = np.zeros(obs_days.size, dtype=bool)
        for t in t_out[days]:
            inside |= np.abs(obs_days - t) < 2.0 * lt
        idx = np.flatnonzero(inside)
        if idx.size:
            start[b], stop[b] = bounds[idx[0]], bounds[idx[-1] + 1]
    return start, stop


def _plan(obs: _Obs, t_out: np.ndarray, *, lx: float, ly: float, lt: float,
          superobs: float | None, superobs_days: float, block_days: int,
          max_obs: int | None) -> _Plan:
    """Super-observations (growing their bins while a system exceeds ``max_obs``) and the
    systems of the output days."""
    blocks = _blocks(t_out, block_days)
    frac = superobs
    while True:
        sobs = obs if frac is None else _superobs(obs, frac * ly, frac * lx, superobs_days)
        start, stop = _windows(sobs.t, t_out, blocks, lt)
        largest = int((stop - start).max(initial=0))
        if frac is None or max_obs is None or largest <= max_obs:
            break
        if frac * _SUPEROBS_GROWTH > _SUPEROBS_MAX:
            log.warning("OI: %d super-observations in one system even with bins of %.2f·(Lx, "
                        "Ly) (max_obs=%d); going on with it", largest, frac, max_obs)
            break
        frac *= _SUPEROBS_GROWTH
    if frac is not None and superobs is not None and frac > superobs:
        log.info("OI: super-observation bins grown to %.3g·(Lx, Ly) to keep systems under "
                 "max_obs=%d", frac, max_obs)
    return _Plan(sobs, start, stop, blocks, frac)


# ------------------------------------------------------------------------- noise estimate


def neighbour_noise_variance(
    t: np.ndarray, i_y: np.ndarray, i_x: np.ndarray, y: np.ndarray,
    lat: np.ndarray, lon: np.ndarray, lx: float, ly: float,
) -> tuple[float, int] | None:
    """Observation error variance from differences of neighbouring observations of one day.

    For two observations of the same day at a small distance h (in units of the covariance
    scales, ``h² = (Δlat/Ly)² + (Δlon/Lx)²``), ``½ E[(y₁ − y₂)²] = σn² + σs²(1 − ρ(h))``,
    and a smooth signal has ``1 − ρ(h) ≈ c·h²`` at small h (for the OI's own Gaussian model,
    ``c = 1``; ``c`` is fitted here, since the true signal's scales are not the OI's). The
    semivariance of every grid offset up to ``0.3`` scale (and 4 cells) in each direction is
    fitted by weighted least squares (weights: pair counts) with ``γ = σn² + a·h²``; the
    intercept is the noise variance (the uncorrelated part only: errors correlated along a
    track over several cells count as signal). On a smooth field it recovers the noise
    within a few per cent (tests/test_oi.py); where the signal has much variance at the
    grid scale it counts part of it as noise (on the built-in OSSE with a jet: 2.2 cm for
    nadir cells whose actual error is 2.1 cm, 1.7 cm for wide-swath cells whose error is
    0.8 cm), which is variance a Gaussian covariance of scale (Lx, Ly) cannot represent
    anyway, so the OI errs on the smooth side.

    Parameters: observation day, cell indices and values (any order), the grid's 1-D
    coordinates, the scales. Returns ``(variance, number of pairs)``, or None when fewer
    than two offsets have 30 pairs.
    """
    if y.size < 2 or lat.size < 2 or lon.size < 2:
        return None
    n_lat, n_lon = lat.size, lon.size
    day = np.unique(t, return_inverse=True)[1].reshape(-1).astype(np.int64)
    key = (day * n_lat + i_y) * n_lon + i_x
    order = np.argsort(key, kind="stable")
    skey, sy = key[order], y[order]
    dlat = float(np.median(np.abs(np.diff(lat))))
    dlon = float(np.median(np.abs(np.diff(lon))))
    ky = int(np.clip(math.floor(_NOISE_MAX_LAG * ly / dlat + 1e-9), 1, _MAX_LAG_CELLS))
    kx = int(np.clip(math.floor(_NOISE_MAX_LAG * lx / dlon + 1e-9), 1, _MAX_LAG_CELLS))
    rows = []
    for dy in range(ky + 1):
        for dx in range(-kx, kx + 1):
            if dy == 0 and dx <= 0:
                continue
            ok = (i_y + dy < n_lat) & (i_x + dx >= 0) & (i_x + dx < n_lon)
            target = key[ok] + dy * n_lon + dx
            pos = np.minimum(np.searchsorted(skey, target), skey.size - 1)
            hit = skey[pos] == target
            if hit.sum() < 30:
                continue
            diff = y[ok][hit] - sy[pos[hit]]
            h2 = (dy * dlat / ly) ** 2 + (dx * dlon / lx) ** 2
            rows.append((h2, float(hit.sum()), 0.5 * float(np.mean(diff * diff))))
    if len(rows) < 2:
        return None
    r = np.asarray(rows)
    sw = np.sqrt(r[:, 1])
    design = np.stack([np.ones(len(r)), r[:, 0]], axis=1) * sw[:, None]
    coef = np.linalg.lstsq(design, r[:, 2] * sw, rcond=None)[0]
    return max(float(coef[0]), 0.0), int(r[:, 1].sum())


def _noise_std_attr(obs: xr.DataArray) -> float | None:
    value = obs.attrs.get("noise_std")
    try:
        value = float(np.asarray(value).reshape(-1)[0]) if value is not None else None
    except (TypeError, ValueError, IndexError):
        return None
    return value if value is not None and np.isfinite(value) and value >= 0 else None


def estimate_noise_ratio(
    obs: xr.DataArray, t: np.ndarray, i_y: np.ndarray, i_x: np.ndarray, y: np.ndarray,
    *, lx: float, ly: float,
) -> tuple[float, dict[str, Any]]:
    """The noise-to-signal ratio ``σn / σs`` of observations ``y`` (anomalies: the mean
    already removed; ``t, i_y, i_x`` their day and cell in ``obs``).

    σn² is the ``noise_std`` attribute of ``obs`` squared when it has one (data units), else
    :func:`neighbour_noise_variance`. σs² = mean(y²) − σn² (y: the departures from the
    background, of zero mean when a mean is removed). The ratio is clamped to
    :data:`AUTO_NOISE_RANGE`.

    The attribute is taken as it is, although it is the noise of one *sample*
    (data.tracks, data.osse) while an observation is the mean of the samples of its cell
    and day, whose noise is ``noise_std/√n`` for n samples; n is not recorded. For nadir
    tracks on a 0.1° grid n is 1–2 (1 Hz samples 6–7 km apart): on the built-in OSSE the
    cells' actual error (noise and sampling off the cell centre) is 2.1 cm for a 2 cm
    attribute. For wide-swath pixels n is ~20 and the cells' actual error 0.8 cm, so the
    attribute overstates it 2.5×; yet the OI scored better there with the ratio from the
    attribute (0.17: µ 0.855) than with the actual error's (0.06: µ 0.826), since the ratio
    also has to absorb the Gaussian covariance's misfit to the ocean's. The neighbour
    estimate is logged beside it for comparison.

    Returns the ratio and ``{"source", "noise_std", "signal_std", "neighbour_std"}``.
    """
    info: dict[str, Any] = {"source": None, "noise_std": None, "signal_std": None,
                            "neighbour_std": None}
    if y.size < 2:
        log.warning("OI: noise='auto' with fewer than two observations; using %.3g",
                    AUTO_NOISE_FALLBACK)
        info["source"] = "fallback"
        return AUTO_NOISE_FALLBACK, info
    lat = np.asarray(obs["lat"].values, dtype=np.float64)
    lon = np.asarray(obs["lon"].values, dtype=np.float64)
    neighbour = neighbour_noise_variance(t, i_y, i_x, y, lat, lon, lx, ly)
    if neighbour is not None:
        info["neighbour_std"] = math.sqrt(neighbour[0])
    attr = _noise_std_attr(obs)
    if attr is not None:
        noise_var, info["source"] = attr * attr, "attribute noise_std"
    elif neighbour is not None:
        noise_var, info["source"] = neighbour[0], f"neighbour differences ({neighbour[1]} pairs)"
    else:
        log.warning("OI: noise='auto' found no noise_std attribute and too few neighbouring "
                    "observations to estimate the noise; using %.3g", AUTO_NOISE_FALLBACK)
        info["source"] = "fallback"
        return AUTO_NOISE_FALLBACK, info
    total = float(np.mean(y * y))  # about the background, which B's zero mean stands for
    signal_var = total - noise_var
    info["noise_std"] = math.sqrt(noise_var)
    info["signal_std"] = math.sqrt(max(signal_var, 0.0))
    lo, hi = AUTO_NOISE_RANGE
    raw = math.sqrt(noise_var / signal_var) if signal_var > 0 else math.inf
    ratio = float(min(max(raw, lo), hi))
    if ratio != raw:
        log.warning("OI: estimated noise-to-signal ratio %.3g clamped to %.3g", raw, ratio)
    return ratio, info


# ---------------------------------------------------------------------------- the mapping


def _background_at(mean_map: xr.DataArray | np.ndarray, obs: xr.DataArray,
                   lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean map on the observations' grid and on the output grid (float64, its NaN
    filled with its mean)."""
    if isinstance(mean_map, xr.DataArray):
        mm = mean_map.transpose("lat", "lon")
    else:
        arr = np.asarray(mean_map, dtype=np.float64)
        if arr.shape != (obs.sizes["lat"], obs.sizes["lon"]):
            raise DataError(f"mean map of shape {arr.shape}: expected the observations' grid "
                            f"{(obs.sizes['lat'], obs.sizes['lon'])}")
        mm = xr.DataArray(arr, dims=("lat", "lon"),
                          coords={"lat": obs["lat"].values, "lon": obs["lon"].values})
    mm = mm.astype(np.float64)

    def on(la: np.ndarray, lo: np.ndarray) -> np.ndarray:
        same = (mm.sizes["lat"] == la.size and mm.sizes["lon"] == lo.size
                and np.allclose(mm["lat"].values, la, rtol=0, atol=1e-9)
                and np.allclose(mm["lon"].values, lo, rtol=0, atol=1e-9))
        v = (np.asarray(mm.values) if same
             else np.asarray(mm.interp(lat=la, lon=lo, method="linear").values))
        fill = float(np.nanmean(mm.values)) if np.isfinite(mm.values).any() else 0.0
        return np.where(np.isfinite(v), v, fill)

    obs_lat = np.asarray(obs["lat"].values, dtype=np.float64)
    obs_lon = np.asarray(obs["lon"].values, dtype=np.float64)
    return on(obs_lat, obs_lon), on(lat, lon)


def optimal_interpolation(
    obs: xr.DataArray,
    times: pd.DatetimeIndex | np.ndarray | Sequence | xr.DataArray,
    lat: xr.DataArray | np.ndarray | Sequence[float],
    lon: xr.DataArray | np.ndarray | Sequence[float],
    *,
    lx_deg: float = 1.0,
    ly_deg: float = 1.0,
    lt_days: float = 7.0,
    noise: float | Literal["auto"] = 0.05,
    remove_mean: bool = True,
    mean_map: xr.DataArray | np.ndarray | None = None,
    superobs: float | None = None,
    superobs_days: float = 1.0,
    block_days: int = 1,
    max_obs: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    progress: Callable[[int, int], None] | None = None,
) -> xr.DataArray:
    """Map gridded, gappy observations onto a grid and days by optimal interpolation.

    The defaults are the data challenge's exact algorithm; :class:`OIParams`' defaults are
    the fast mode (see the module docstring).

    Parameters
    ----------
    obs : DataArray with dimensions ``time``, ``lat``, ``lon`` (any order); every non-NaN value
        is one observation at that day and cell centre. ``time`` is datetime64 or numbers of
        days. All of the record is used: days outside ``times`` are allowed (spin-up).
    times : output days (datetime64 when ``obs.time`` is, else numbers of days).
    lat, lon : output grid cell centres (degrees); 1-D.
    lx_deg, ly_deg : decorrelation lengths in longitude and latitude (degrees, no cos(lat)).
    lt_days : decorrelation time (days); the observations of day ``t`` are those with
        ``|t_obs − t| < 2 lt_days``.
    noise : noise-to-signal ratio σ_obs/σ_signal, ``R = noise² I`` (B has unit variance), or
        ``"auto"``: estimated by :func:`estimate_noise_ratio` from the observations after
        the mean removal.
    remove_mean : if True, subtract a background before mapping and add it back, so a day or
        region without observations gets it instead of zero: ``mean_map`` (at each
        observation's cell) plus the mean of the observations' departures from it (one
        scalar, every non-NaN value weighted equally; without ``mean_map``, simply the mean
        of all observations of the record). False: nothing is removed.
    mean_map : ``(lat, lon)`` mean field on the observations' grid (DataArray or array), for
        instance the time-mean of the truth over a training period; interpolated linearly to
        the output grid when that differs. NaN (land) is filled with its mean.
    superobs : super-observation bin size as a fraction of ``lx_deg`` (longitude) and
        ``ly_deg`` (latitude); None: every observation on its own.
    superobs_days : time bin of the super-observations (days).
    block_days : consecutive output days sharing one system (the observations of the union
        of their windows); 1: one per day.
    max_obs : with ``superobs``, the most super-observations in one system: the bins grow
        until none holds more. None: no limit.
    device : torch device of the computation (default CPU); CUDA works.
    dtype : floating type of the covariance, its factorisation and solve (the rest is
        float64). float64 (default) matches an explicit float64 inverse to the float32
        rounding of the output; float32 is faster on some devices, but the covariance of
        dense tracks is badly conditioned: on 0.1° tracks with the default scales it differs
        from float64 by ~2e-4 of the field's amplitude. A batch whose factorisation fails in
        float32 is redone in float64.
    max_batch_bytes : memory budget of one batch of systems, in bytes; systems are processed
        together while their padded covariance matrices (about ``3 M² × itemsize`` each for
        ``M`` observations) and grid factors fit in it. A system that alone exceeds it is
        processed on its own, so the peak is then about that system's need.
    progress : called as ``progress(done, total)`` with the number of output days solved so
        far and ``total = len(times)``: ``done = 0`` once the arguments are checked, then
        after each system of days is mapped, ending with ``done == total``. It only
        observes: the result is the same with or without it.

    Returns
    -------
    DataArray ``(time, lat, lon)`` float32 named like ``obs``, with its attributes and the
    requested coordinates, plus ``oi_*`` attributes: the parameters (``oi_noise`` the ratio
    used, estimated or given), ``oi_mean`` (the scalar removed), ``oi_mean_map`` (whether a
    map was removed), ``oi_n_obs`` and ``oi_n_superobs``. A day with no observation within
    its window is the background (zero anomaly).

    Raises
    ------
    DataError : ``obs`` lacks a ``time``, ``lat`` or ``lon`` dimension; a mean map off the grid.
    ConfigError : a non-positive length, time scale, noise or bin size, or block_days < 1.
    """
    for dim in ("time", "lat", "lon"):
        if dim not in obs.dims:
            raise DataError(f"observations {obs.name!r}: expected dimensions (time, lat, lon), "
                            f"got {obs.dims}")
    checks = [("lx_deg", lx_deg), ("ly_deg", ly_deg), ("lt_days", lt_days),
              ("superobs_days", superobs_days)]
    if noise != "auto":
        if isinstance(noise, str):
            raise ConfigError(f"optimal interpolation: noise must be a number or 'auto' "
                              f"(got {noise!r})")
        checks.append(("noise", noise))
    if superobs is not None:
        checks.append(("superobs", superobs))
    for name, value in checks:
        if not value > 0:
            raise ConfigError(f"optimal interpolation: {name} must be > 0 (got {value!r})")
    if not block_days >= 1:
        raise ConfigError(f"optimal interpolation: block_days must be >= 1 (got {block_days!r})")
    device = torch.device("cpu") if device is None else torch.device(device)
    obs = obs.transpose("time", "lat", "lon")

    out_times = _coord_values(times)
    obs_time = obs["time"].values
    if np.issubdtype(obs_time.dtype, np.datetime64):
        out_times = pd.DatetimeIndex(out_times).values
    out_lat = _coord_values(lat).astype(np.float64)
    out_lon = _coord_values(lon).astype(np.float64)
    ref = obs_time[0] if np.issubdtype(obs_time.dtype, np.datetime64) and obs_time.size else None
    t_out = _days(out_times, ref)
    n_time, n_lat, n_lon = len(t_out), len(out_lat), len(out_lon)
    solved = 0  # output days mapped so far (for ``progress``)
    if progress is not None:
        progress(0, n_time)

    # Flatten the observations, sorted by time, and remove the background.
    t_all, i_y, i_x, y_all = _flatten(obs, ref)
    bg_out = None
    if remove_mean and mean_map is not None:
        bg_obs, bg_out = _background_at(mean_map, obs, out_lat, out_lon)
        y_all = y_all - bg_obs[i_y, i_x]
    mean = float(y_all.mean()) if remove_mean and y_all.size else 0.0
    y_all = y_all - mean

    noise_info: dict[str, Any] = {}
    if noise == "auto":
        noise, noise_info = estimate_noise_ratio(obs, t_all, i_y, i_x, y_all,
                                                 lx=lx_deg, ly=ly_deg)
        log.info("OI: noise='auto' -> noise-to-signal ratio %.4g (noise std %s from %s, "
                 "signal std %s; noise std from neighbouring observations %s)", noise,
                 _fmt(noise_info["noise_std"]), noise_info["source"],
                 _fmt(noise_info["signal_std"]), _fmt(noise_info["neighbour_std"]))

    raw = _Obs(t_all, obs["lat"].values.astype(np.float64)[i_y],
               obs["lon"].values.astype(np.float64)[i_x], y_all, np.ones(y_all.size))
    plan = _plan(raw, t_out, lx=lx_deg, ly=ly_deg, lt=lt_days, superobs=superobs,
                 superobs_days=superobs_days, block_days=block_days, max_obs=max_obs)
    counts = plan.counts
    sobs = plan.obs

    result = np.zeros((n_time, n_lat, n_lon), dtype=np.float64)
    itemsize = torch.empty((), dtype=dtype).element_size()
    kw = {"lx": lx_deg, "ly": ly_deg, "lt": lt_days, "noise": float(noise)}
    if counts.max(initial=0) > 0:
        to = {"device": device, "dtype": torch.float64}
        obs_t = torch.as_tensor(sobs.t, **to)
        obs_lat = torch.as_tensor(sobs.lat, **to)
        obs_lon = torch.as_tensor(sobs.lon, **to)
        obs_y = torch.as_tensor(sobs.y, **to)
        obs_r = torch.as_tensor(sobs.rel_var, **to)
        grid_lat = torch.as_tensor(out_lat, **to)
        grid_lon = torch.as_tensor(out_lon, **to)
        t_ref = np.array([t_out[d[0]] for d in plan.days])  # each system's time origin
        batches = _batches(counts, n_lat, n_lon, itemsize, max_batch_bytes)
        log.debug("OI: %d days in %d systems of up to %d observations (%d in all, %d before "
                  "super-observations), %d batches", n_time, len(plan.days), counts.max(),
                  len(sobs), y_all.size, len(batches))
        for systems in batches:
            if counts[systems].max() == 0:
                # days without any observation in their window: the background
                solved += sum(len(plan.days[s]) for s in systems)
                if progress is not None:
                    progress(solved, n_time)
                continue
            tensors = _gather(systems, plan.start, counts, t_ref, obs_t, obs_lat, obs_lon,
                              obs_y, obs_r)
            w = _solve_weights(*tensors, dtype=dtype, **kw)
            if w is None and dtype != torch.float64:
                log.warning("OI: covariance not positive definite in %s; redoing a batch of "
                            "%d systems in float64", dtype, len(systems))
                w = _solve_weights(*tensors, dtype=torch.float64, **kw)
            if w is None:
                raise ConfigError("optimal interpolation: the observation covariance is not "
                                  f"positive definite (noise={noise!r}); use a larger noise")
            dt, la, lo = tensors[0], tensors[1], tensors[2]
            for b, s in enumerate(systems):
                days = plan.days[s]
                if counts[s] > 0:
                    m = int(counts[s])
                    offsets = torch.as_tensor(t_out[days] - t_ref[s], **to)
                    result[days] = _map_days(w[b, :m], dt[b, :m], la[b, :m], lo[b, :m],
                                             offsets, grid_lat, grid_lon, lx=lx_deg,
                                             ly=ly_deg, lt=lt_days).cpu().numpy()
                solved += len(days)
                if progress is not None:
                    progress(solved, n_time)
    if progress is not None and solved != n_time:
        # nothing was solved (no observation at all): every day is the background
        progress(n_time, n_time)

    if bg_out is not None:
        result += bg_out[None]
    result += mean
    attrs = dict(obs.attrs)
    attrs.update({"oi_lx_deg": lx_deg, "oi_ly_deg": ly_deg, "oi_lt_days": lt_days,
                  "oi_noise": float(noise), "oi_mean": mean,
                  "oi_mean_map": int(bg_out is not None),
                  "oi_superobs": float(plan.superobs) if plan.superobs is not None else "none",
                  "oi_block_days": int(block_days),
                  "oi_n_obs": int(y_all.size), "oi_n_superobs": len(sobs)})
    if noise_info:
        attrs["oi_noise_source"] = str(noise_info["source"])
    coords = {
        "time": ("time", out_times),
        "lat": ("lat", out_lat, _attrs_of(lat, obs["lat"])),
        "lon": ("lon", out_lon, _attrs_of(lon, obs["lon"])),
    }
    return xr.DataArray(result.astype(np.float32), dims=("time", "lat", "lon"),
                        coords=coords, name=obs.name, attrs=attrs)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _attrs_of(coord: object, fallback: xr.DataArray) -> dict:
    return dict(coord.attrs) if isinstance(coord, xr.DataArray) else dict(fallback.attrs)


def _gather(
    systems: np.ndarray, start: np.ndarray, counts: np.ndarray, t_ref: np.ndarray,
    obs_t: torch.Tensor, obs_lat: torch.Tensor, obs_lon: torch.Tensor, obs_y: torch.Tensor,
    obs_r: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """Padded ``(B, M)`` observation tensors of a batch of systems plus their validity mask:
    time relative to the system's origin, lat, lon, value, relative error variance, valid.

    Padding entries repeat a real observation's coordinates (any finite value would do);
    their validity is False, their value zero and their relative variance one.
    """
    device = obs_t.device
    m = int(counts[systems].max())
    pos = torch.arange(m, device=device)
    n = torch.as_tensor(counts[systems], device=device)
    valid = pos[None, :] < n[:, None]
    idx = torch.as_tensor(start[systems], device=device)[:, None] + torch.minimum(
        pos[None, :], (n[:, None] - 1).clamp(min=0))
    idx = idx.clamp(max=obs_t.numel() - 1)
    t0 = torch.as_tensor(t_ref[systems], device=device, dtype=obs_t.dtype)
    zero = torch.zeros((), dtype=obs_y.dtype, device=device)
    y = torch.where(valid, obs_y[idx], zero)
    r = torch.where(valid, obs_r[idx], zero + 1.0)
    return obs_t[idx] - t0[:, None], obs_lat[idx], obs_lon[idx], y, r, valid


def _solve_weights(
    dt: torch.Tensor, la: torch.Tensor, lo: torch.Tensor, y: torch.Tensor, r: torch.Tensor,
    valid: torch.Tensor, *, lx: float, ly: float, lt: float, noise: float, dtype: torch.dtype,
) -> torch.Tensor | None:
    """Weights ``w = (H B Hᵀ + R)⁻¹ y`` ``(B, M)`` (float64) of one padded batch, with
    ``R = noise² diag(r)``, or None when a Cholesky factorisation fails.

    All inputs are float64 ``(B, M)``; ``dt`` is the observation time minus the system's
    origin (days). Only ``H B Hᵀ + R``, its factorisation and the solve run in ``dtype``.
    """
    # Scaled coordinates, so that H B Hᵀ = exp(-|p_i - p_j|²). Padding entries sit 100, 200,
    # ... Lt beyond the farthest real observation in time, so their covariances with
    # everything else underflow to exactly 0 in float32 and float64 alike: the matrix is
    # block diagonal, the padding's y is 0 and so its weight w is exactly 0. Centring on
    # each system's first observation keeps float32 differences accurate.
    n_pad = torch.cumsum(~valid, dim=1).to(dt.dtype)
    ts = dt / lt
    far = float(ts[valid].abs().max()) if bool(valid.any()) else 0.0
    ts = torch.where(valid, ts, far + 100.0 * n_pad)
    p = torch.stack([ts, (la - la[:, :1]) / ly, (lo - lo[:, :1]) / lx], dim=-1).to(dtype)
    # Pairwise squared distances in the exact difference form (no |a|² + |b|² − 2ab
    # cancellation). On the CPU each fresh (B, M, M) buffer costs more in page faults than its
    # arithmetic, so cdist's single allocation wins; on CUDA (caching allocator) cdist's
    # kernel is ~20× slower than three broadcast differences.
    if p.device.type == "cpu":
        cov = torch.cdist(p, p, compute_mode="donot_use_mm_for_euclid_dist").square_()
    else:
        cov = (p[:, :, None, 0] - p[:, None, :, 0]).square_()
        for k in (1, 2):
            cov += (p[:, :, None, k] - p[:, None, :, k]).square_()
    cov.neg_().exp_()
    cov.diagonal(dim1=1, dim2=2).add_((noise * noise * r).to(dtype))
    yd = y.to(dtype)[:, :, None]
    if cov.shape[-1] <= _BATCHED_MAX_M:
        # Many small systems: one batched factorisation and solve.
        chol, info = torch.linalg.cholesky_ex(cov)
        del cov
        w = torch.cholesky_solve(yd, chol)[:, :, 0]
        del chol
    else:
        # Large systems one at a time: on CUDA the batched Cholesky is several times
        # slower than a loop there and the batched solve fails beyond ~12k observations
        # (pytorch/pytorch#38603); on the CPU the batched call loops anyway. Only one
        # factor is alive at a time.
        w = torch.empty_like(yd[:, :, 0])
        infos = []
        for i in range(len(yd)):
            chol, day_info = torch.linalg.cholesky_ex(cov[i])
            infos.append(day_info)
            w[i] = torch.cholesky_solve(yd[i], chol)[:, 0]
            del chol
        del cov
        info = torch.stack(infos)
    if bool((info != 0).any()):
        return None
    return w.to(torch.float64)


def _map_days(
    w: torch.Tensor, dt: torch.Tensor, la: torch.Tensor, lo: torch.Tensor,
    offsets: torch.Tensor, grid_lat: torch.Tensor, grid_lon: torch.Tensor, *,
    lx: float, ly: float, lt: float,
) -> torch.Tensor:
    """``B Hᵀ w`` on the grid for each output day (``offsets``: days from the system's
    origin), ``(n_days, n_lat, n_lon)`` float64: ``Ey diag(exp(−(Δt/Lt)²) w) Exᵀ``."""
    ey = torch.exp(-((grid_lat[:, None] - la[None, :]) / ly) ** 2)  # (n_lat, m)
    ex = torch.exp(-((grid_lon[:, None] - lo[None, :]) / lx) ** 2)  # (n_lon, m)
    out = torch.empty((len(offsets), len(grid_lat), len(grid_lon)), dtype=torch.float64,
                      device=w.device)
    for k in range(len(offsets)):
        a = w * torch.exp(-((dt - offsets[k]) / lt) ** 2)
        out[k] = (ey * a[None, :]) @ ex.T
    return out


# ------------------------------------------------------------------------------- the model


def train_mean_map(task) -> xr.DataArray | None:
    """The time-mean of ``task.truth`` over its training period ``(lat, lon)`` float64, or
    None when the task has no truth, no training period or no finite value in it."""
    truth = getattr(task, "truth", None)
    if truth is None or "train" not in getattr(task, "periods", {}):
        return None
    try:
        times = task.times("train")
    except (KeyError, ValueError):
        return None
    if len(times) == 0:
        return None
    m = truth.sel(time=times).astype(np.float64).mean("time", skipna=True)
    return m if bool(np.isfinite(m.values).any()) else None


@register("oi")
class OIMapper(Mapper):
    """Optimal interpolation (no training; see :class:`OIParams` and the module docstring).

    :meth:`predict` maps every observation of the task (spin-up days outside the requested
    times included: they are observations, not truth) onto the truth's grid. With
    ``mean="train"`` it maps anomalies about the time-mean of the truth over the training
    period (the only use it makes of the truth).
    """

    Params = OIParams
    tasks = ("interpolation",)
    trainable = False

    def _plan_for(self, task, times: pd.DatetimeIndex) -> _Plan:
        p: OIParams = self.params  # type: ignore[assignment]
        ref = task.obs["time"].values[0]
        t, i_y, i_x, y = _flatten(task.obs, ref)
        raw = _Obs(t, task.obs["lat"].values.astype(np.float64)[i_y],
                   task.obs["lon"].values.astype(np.float64)[i_x], y, np.ones(y.size))
        return _plan(raw, _days(times.values, ref), lx=p.lx_deg, ly=p.ly_deg, lt=p.lt_days,
                     superobs=p.superobs, superobs_days=p.superobs_days,
                     block_days=p.block_days, max_obs=p.max_obs)

    def memory_estimate(self, task) -> dict[str, int]:
        """The largest system's covariance and Cholesky factor (or the batch budget), the
        flattened observations (before and after super-observations), and the float64 output
        over the test period."""
        p: OIParams = self.params  # type: ignore[assignment]
        itemsize = 4 if p.precision == "float32" else 8
        test = pd.DatetimeIndex(task.times("test"))
        plan = self._plan_for(task, test)
        counts = plan.counts
        m = int(counts.max(initial=0))
        n_obs = int(task.obs.notnull().sum())
        n_lat, n_lon = task.truth.sizes["lat"], task.truth.sizes["lon"]
        one = _bytes_per_system(m, n_lat, n_lon, itemsize)
        solve = max(min(DEFAULT_MAX_BATCH_BYTES, one * len(counts)), one)
        return {"covariances": int(solve), "observations": (n_obs + len(plan.obs)) * 8 * 8,
                "output": 8 * len(test) * n_lat * n_lon}

    def predict(self, task, times: pd.DatetimeIndex) -> xr.DataArray:
        """Reconstruction ``(time, lat, lon)`` float32 on ``task``'s grid for ``times``.

        Named like ``task.truth`` with its attributes (units) plus the ``oi_*`` ones (the
        noise ratio used, ...); NaN where ``task.mask`` is False (land).
        """
        p: OIParams = self.params  # type: ignore[assignment]
        mean_map = None
        if p.remove_mean and p.mean == "train":
            mean_map = train_mean_map(task)
            if mean_map is None:
                log.info("OI: no training truth to take a mean map from; removing the mean "
                         "of the observations instead")
        out = optimal_interpolation(
            task.obs, pd.DatetimeIndex(times), task.truth["lat"], task.truth["lon"],
            lx_deg=p.lx_deg, ly_deg=p.ly_deg, lt_days=p.lt_days, noise=p.noise,
            remove_mean=p.remove_mean, mean_map=mean_map, superobs=p.superobs,
            superobs_days=p.superobs_days, block_days=p.block_days, max_obs=p.max_obs,
            device=self.device,
            dtype=torch.float32 if p.precision == "float32" else torch.float64,
            progress=lambda done, total: self.report("solve", done, total, "days"),
        )
        ocean = xr.DataArray(np.asarray(task.mask.values, dtype=bool), dims=("lat", "lon"))
        oi_attrs = {k: v for k, v in out.attrs.items() if k.startswith("oi_")}
        out = out.where(ocean).astype(np.float32)
        out.name = task.truth.name
        out.attrs = {**task.truth.attrs, **oi_attrs}
        return out
