"""The data challenge's baseline optimal interpolation (OI), batched over days in torch.

The analysis of each output day ``t`` is

    x_a = B Hᵀ (H B Hᵀ + R)⁻¹ y

with the separable Gaussian background covariance

    B = exp(−(Δt/Lt)² − (Δlon/Lx)² − (Δlat/Ly)²)

(``Δlon``, ``Δlat`` in degrees without a cos(lat) factor, ``Δt`` in days, as the 2020a SSH
mapping data challenge computes it), ``R = noise² I`` and the observations ``y`` with
``|t_obs − t| < 2 Lt``. Observations are the non-NaN values of a gridded ``(time, lat, lon)``
DataArray, each located at its cell centre and day.

Rather than building the matrices in Python loops and inverting explicitly (the reference
notebook), :func:`optimal_interpolation`

* builds ``H B Hᵀ + R`` for a batch of days at once from pairwise distances (``torch.cdist``),
* factorises it by Cholesky (``torch.linalg.cholesky_ex``) and solves for
  ``w = (HBHᵀ+R)⁻¹ y`` (``torch.cholesky_solve``), batched over the days when the systems
  are small, day by day within the batch when they are large,
* never forms ``B Hᵀ``: on a regular grid it factorises as
  ``B Hᵀ w = Ey · diag(exp(−(Δt/Lt)²) w) · Exᵀ`` with ``Ey = exp(−(Δlat/Ly)²)``
  ``(n_lat × n_obs)`` and ``Ex = exp(−(Δlon/Lx)²)`` ``(n_lon × n_obs)``, one batched matrix
  product per day.

Days have different numbers of observations; each batch is padded to its largest with dummy
observations placed 100 Lt apart in time from everything else, so that their covariance rows
and columns are exactly zero (the exponential underflows), with value zero: their weight
``w`` is exactly zero and they cannot change the analysis.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
import xarray as xr
from pydantic import Field

from oceanlab_errors import ConfigError, DataError
from models.base import Mapper, ModelParams
from models.registry import register

log = logging.getLogger(__name__)

#: Default memory budget of one batch of days (bytes of the largest tensors alive at once).
DEFAULT_MAX_BATCH_BYTES = 1 << 30
#: Largest padded number of observations factorised by one batched call; above it, the days
#: of a batch are factorised one by one (faster on CUDA for large matrices, see _solve_batch).
_BATCHED_MAX_M = 2048


class OIParams(ModelParams):
    """Parameters of the baseline optimal interpolation (defaults: the data challenge's)."""

    name: Literal["oi"] = "oi"
    lx_deg: float = Field(
        1.0, gt=0, description="zonal decorrelation length Lx of the Gaussian covariance (degrees)")
    ly_deg: float = Field(
        1.0, gt=0,
        description="meridional decorrelation length Ly of the Gaussian covariance (degrees)")
    lt_days: float = Field(
        7.0, gt=0,
        description="decorrelation time Lt (days); observations within 2·Lt of a day are used")
    noise: float = Field(
        0.05, gt=0, description="observation error standard deviation (data units); R = noise² I")
    remove_mean: bool = Field(
        True, description="map anomalies about the mean of all observations, then add it back")
    precision: Literal["float64", "float32"] = Field(
        "float64", description="arithmetic of the solves: float32 is about twice as fast on a CPU "
                               "and differs by ~1e-4 of the field's range")


def _days(values: np.ndarray, ref: np.datetime64 | None) -> np.ndarray:
    """Times as float64 days (since ``ref`` for datetimes; numbers are taken as days)."""
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.datetime64):
        return (values - ref) / np.timedelta64(1, "D")
    return values.astype(np.float64)


def _coord_values(coord: xr.DataArray | np.ndarray | Sequence[float]) -> np.ndarray:
    return np.asarray(coord.values if isinstance(coord, xr.DataArray) else coord)


def _bytes_per_day(m: int, n_lat: int, n_lon: int, itemsize: int) -> int:
    """Peak memory of one padded day: the m×m covariance and its Cholesky factor (in the
    computation's precision) with headroom for a temporary, and the float64 Ey/Ex factors,
    output map and per-observation vectors."""
    return itemsize * 3 * m * m + 8 * (2 * (n_lat + n_lon) * m + n_lat * n_lon + 16 * m)


def _batches(counts: np.ndarray, n_lat: int, n_lon: int, itemsize: int,
             max_batch_bytes: int) -> list[np.ndarray]:
    """Split the days (positions into ``counts``) into batches under the memory budget.

    Days are sorted by observation count so that padding within a batch stays small; a day
    that alone exceeds the budget forms its own batch.
    """
    order = np.argsort(counts, kind="stable")
    batches: list[np.ndarray] = []
    current: list[int] = []
    for d in order:
        m = int(counts[d])  # the largest so far in this batch, since the order is ascending
        if current and (len(current) + 1) * _bytes_per_day(m, n_lat, n_lon, itemsize) > \
                max_batch_bytes:
            batches.append(np.asarray(current))
            current = []
        current.append(int(d))
    if current:
        batches.append(np.asarray(current))
    return batches


def optimal_interpolation(
    obs: xr.DataArray,
    times: pd.DatetimeIndex | np.ndarray | Sequence | xr.DataArray,
    lat: xr.DataArray | np.ndarray | Sequence[float],
    lon: xr.DataArray | np.ndarray | Sequence[float],
    *,
    lx_deg: float = 1.0,
    ly_deg: float = 1.0,
    lt_days: float = 7.0,
    noise: float = 0.05,
    remove_mean: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
) -> xr.DataArray:
    """Map gridded, gappy observations onto a grid and days by optimal interpolation.

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
    noise : observation error standard deviation (data units), ``R = noise² I``.
    remove_mean : if True, subtract the mean of *all* observations of the record (one scalar,
        every non-NaN value of ``obs`` weighted equally) before mapping and add it back, so a
        day or region without observations gets that mean instead of zero.
    device : torch device of the computation (default CPU); CUDA works.
    dtype : floating type of the covariance, its factorisation and solve (the rest is
        float64). float64 (default) matches an explicit float64 inverse to the float32
        rounding of the output; float32 is faster on some devices, but the covariance of
        dense tracks is badly conditioned: on 0.1° tracks with the default scales it differs
        from float64 by ~2e-4 of the field's amplitude. A batch whose factorisation fails in
        float32 is redone in float64.
    max_batch_bytes : memory budget of one batch of days, in bytes; days are processed
        together while their padded covariance matrices (about ``3 M² × itemsize`` each for
        ``M`` observations in the window) and grid factors fit in it. A day that alone
        exceeds it is processed on its own, so the peak is then about that day's need.

    Returns
    -------
    DataArray ``(time, lat, lon)`` float32 named like ``obs``, with its attributes and the
    requested coordinates (plus the OI parameters as ``oi_*`` attributes). A day with no
    observation within its window is the mean (zero anomaly).

    Raises
    ------
    DataError : ``obs`` lacks a ``time``, ``lat`` or ``lon`` dimension.
    ConfigError : a non-positive length, time scale or noise.
    """
    for dim in ("time", "lat", "lon"):
        if dim not in obs.dims:
            raise DataError(f"observations {obs.name!r}: expected dimensions (time, lat, lon), "
                            f"got {obs.dims}")
    for name, value in (("lx_deg", lx_deg), ("ly_deg", ly_deg), ("lt_days", lt_days),
                        ("noise", noise)):
        if not value > 0:
            raise ConfigError(f"optimal interpolation: {name} must be > 0 (got {value!r})")
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

    # Flatten the observations; C order keeps them sorted by time, so each day's window
    # is a contiguous slice.
    values = np.asarray(obs.values)
    i_t, i_y, i_x = np.nonzero(np.isfinite(values))
    y_all = values[i_t, i_y, i_x].astype(np.float64)
    t_obs_days = _days(obs_time, ref)
    if i_t.size and np.any(np.diff(t_obs_days) < 0):
        order = np.argsort(t_obs_days[i_t], kind="stable")
        i_t, i_y, i_x, y_all = i_t[order], i_y[order], i_x[order], y_all[order]
    mean = float(y_all.mean()) if remove_mean and y_all.size else 0.0
    y_all = y_all - mean

    # Window of each output day: [start, stop) into the sorted observations, with the
    # reference's predicate |t_obs - t| < 2 Lt evaluated on the distinct observed days.
    obs_days, first = np.unique(t_obs_days[i_t], return_index=True)
    bounds = np.append(first, i_t.size)
    start = np.zeros(n_time, dtype=np.int64)
    stop = np.zeros(n_time, dtype=np.int64)
    for k, t in enumerate(t_out):
        inside = np.flatnonzero(np.abs(obs_days - t) < 2.0 * lt_days)
        if inside.size:
            start[k], stop[k] = bounds[inside[0]], bounds[inside[-1] + 1]
    counts = stop - start

    result = np.zeros((n_time, n_lat, n_lon), dtype=np.float64)
    itemsize = torch.empty((), dtype=dtype).element_size()
    kw = dict(lx=lx_deg, ly=ly_deg, lt=lt_days, noise=noise)
    if counts.max(initial=0) > 0:
        to = dict(device=device, dtype=torch.float64)
        obs_t = torch.as_tensor(t_obs_days[i_t], **to)
        obs_lat = torch.as_tensor(obs["lat"].values.astype(np.float64)[i_y], **to)
        obs_lon = torch.as_tensor(obs["lon"].values.astype(np.float64)[i_x], **to)
        obs_y = torch.as_tensor(y_all, **to)
        grid_lat = torch.as_tensor(out_lat, **to)
        grid_lon = torch.as_tensor(out_lon, **to)
        batches = _batches(counts, n_lat, n_lon, itemsize, max_batch_bytes)
        log.debug("OI: %d days, up to %d observations per window, %d batches",
                  n_time, counts.max(), len(batches))
        for days in batches:
            if counts[days].max() == 0:
                continue
            tensors = _gather(days, start, counts, t_out, obs_t, obs_lat, obs_lon, obs_y)
            maps = _solve_batch(*tensors, grid_lat, grid_lon, dtype=dtype, **kw)
            if maps is None and dtype != torch.float64:
                log.warning("OI: covariance not positive definite in %s; redoing a batch of "
                            "%d days in float64", dtype, len(days))
                maps = _solve_batch(*tensors, grid_lat, grid_lon, dtype=torch.float64, **kw)
            if maps is None:
                raise ConfigError("optimal interpolation: the observation covariance is not "
                                  f"positive definite (noise={noise!r}); use a larger noise")
            result[days] = maps.cpu().numpy()

    result += mean
    attrs = dict(obs.attrs)
    attrs.update({"oi_lx_deg": lx_deg, "oi_ly_deg": ly_deg, "oi_lt_days": lt_days,
                  "oi_noise": noise, "oi_mean": mean})
    coords = {
        "time": ("time", out_times),
        "lat": ("lat", out_lat, _attrs_of(lat, obs["lat"])),
        "lon": ("lon", out_lon, _attrs_of(lon, obs["lon"])),
    }
    return xr.DataArray(result.astype(np.float32), dims=("time", "lat", "lon"),
                        coords=coords, name=obs.name, attrs=attrs)


def _attrs_of(coord: object, fallback: xr.DataArray) -> dict:
    return dict(coord.attrs) if isinstance(coord, xr.DataArray) else dict(fallback.attrs)


def _gather(
    days: np.ndarray, start: np.ndarray, counts: np.ndarray, t_out: np.ndarray,
    obs_t: torch.Tensor, obs_lat: torch.Tensor, obs_lon: torch.Tensor, obs_y: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """Padded ``(B, M)`` observation tensors of a batch of days plus their validity mask.

    Padding entries repeat a real observation's coordinates (any finite value would do);
    their validity is False and their value zero.
    """
    device = obs_t.device
    m = int(counts[days].max())
    pos = torch.arange(m, device=device)
    n = torch.as_tensor(counts[days], device=device)
    valid = pos[None, :] < n[:, None]
    idx = torch.as_tensor(start[days], device=device)[:, None] + torch.minimum(
        pos[None, :], (n[:, None] - 1).clamp(min=0))
    idx = idx.clamp(max=obs_t.numel() - 1)
    t_day = torch.as_tensor(t_out[days], device=device, dtype=obs_t.dtype)
    y = torch.where(valid, obs_y[idx], torch.zeros((), dtype=obs_y.dtype, device=device))
    return obs_t[idx] - t_day[:, None], obs_lat[idx], obs_lon[idx], y, valid


def _solve_batch(
    dt: torch.Tensor, la: torch.Tensor, lo: torch.Tensor, y: torch.Tensor, valid: torch.Tensor,
    grid_lat: torch.Tensor, grid_lon: torch.Tensor, *,
    lx: float, ly: float, lt: float, noise: float, dtype: torch.dtype,
) -> torch.Tensor | None:
    """Analysis maps ``(B, n_lat, n_lon)`` (float64) of one padded batch, or None when the
    Cholesky factorisation fails.

    All inputs are float64 ``(B, M)``; ``dt`` is the observation time minus the output day
    (days). Only ``H B Hᵀ + R``, its factorisation and the solve run in ``dtype``.
    """
    # Scaled coordinates, so that H B Hᵀ = exp(-|p_i - p_j|²). Real observations have
    # |dt / Lt| < 2 (the window); padding entries sit 100, 200, ... Lt away in time, so their
    # covariances with everything else underflow to exactly 0 in float32 and float64 alike:
    # the matrix is block diagonal, the padding's diagonal is 1 + noise², its y is 0 and so
    # its weight w is exactly 0. Centring on each day's first observation keeps float32
    # differences accurate.
    n_pad = torch.cumsum(~valid, dim=1).to(dt.dtype)
    ts = torch.where(valid, dt / lt, 100.0 * n_pad)
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
    cov.diagonal(dim1=1, dim2=2).add_(noise * noise)
    yd = y.to(dtype)[:, :, None]
    if cov.shape[-1] <= _BATCHED_MAX_M:
        # Many small systems: one batched factorisation and solve.
        chol, info = torch.linalg.cholesky_ex(cov)
        del cov
        w = torch.cholesky_solve(yd, chol)[:, :, 0]
        del chol
    else:
        # Large systems one day at a time: on CUDA the batched Cholesky is several times
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
    w = w.to(torch.float64)
    # B Hᵀ w = Ey diag(exp(-(dt/Lt)²) w) Exᵀ, separable on the output grid (float64: small).
    a = w * torch.exp(-ts.square())
    ey = torch.exp(-((grid_lat[None, :, None] - la[:, None, :]) / ly) ** 2)
    ex = torch.exp(-((grid_lon[None, :, None] - lo[:, None, :]) / lx) ** 2)
    return torch.bmm(ey * a[:, None, :], ex.transpose(1, 2))


@register("oi")
class OIMapper(Mapper):
    """The data challenge's baseline optimal interpolation (no training).

    :meth:`predict` maps every observation of the task (spin-up days outside the requested
    times included: they are observations, not truth) onto the truth's grid.
    """

    Params = OIParams
    tasks = ("interpolation",)
    trainable = False

    def memory_estimate(self, task) -> dict[str, int]:
        """The largest window's covariance and Cholesky factor (or the batch budget), the
        flattened observations, and the float64 output over the test period."""
        p: OIParams = self.params  # type: ignore[assignment]
        itemsize = 4 if p.precision == "float32" else 8
        per_step = task.obs.notnull().sum(("lat", "lon")).values.astype(np.int64)
        days = _days(task.obs["time"].values, task.obs["time"].values[0])
        test = _days(task.times("test").values, task.obs["time"].values[0])
        cum = np.concatenate([[0], np.cumsum(per_step)])
        lo = np.searchsorted(days, test - 2 * p.lt_days, side="right")
        hi = np.searchsorted(days, test + 2 * p.lt_days, side="left")
        m = int((cum[hi] - cum[lo]).max(initial=0))
        n_lat, n_lon = task.truth.sizes["lat"], task.truth.sizes["lon"]
        solve = max(min(DEFAULT_MAX_BATCH_BYTES, _bytes_per_day(m, n_lat, n_lon, itemsize) * len(test)),
                    _bytes_per_day(m, n_lat, n_lon, itemsize))
        return {"covariances": int(solve), "observations": int(cum[-1]) * 8 * 8,
                "output": 8 * len(test) * n_lat * n_lon}

    def predict(self, task, times: pd.DatetimeIndex) -> xr.DataArray:
        """Reconstruction ``(time, lat, lon)`` float32 on ``task``'s grid for ``times``.

        Named like ``task.truth`` with its attributes (units); NaN where ``task.mask`` is
        False (land).
        """
        p: OIParams = self.params  # type: ignore[assignment]
        out = optimal_interpolation(
            task.obs, pd.DatetimeIndex(times), task.truth["lat"], task.truth["lon"],
            lx_deg=p.lx_deg, ly_deg=p.ly_deg, lt_days=p.lt_days, noise=p.noise,
            remove_mean=p.remove_mean, device=self.device,
            dtype=torch.float32 if p.precision == "float32" else torch.float64,
        )
        ocean = xr.DataArray(np.asarray(task.mask.values, dtype=bool), dims=("lat", "lon"))
        out = out.where(ocean).astype(np.float32)
        out.name = task.truth.name
        out.attrs = dict(task.truth.attrs)
        return out
