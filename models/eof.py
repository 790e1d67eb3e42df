"""EOF methods: DINEOF gap filling and a linear inverse model (LIM) forecast in EOF space.

Interpolation: DINEOF (Beckers & Rixen 2003; Alvera-Azcárate et al. 2005)
--------------------------------------------------------------------------
The field is arranged as a space × time matrix ``X`` (rows: the ocean points of the grid;
columns: days) of anomalies about a mean map (by default the time-mean of the truth over the
training period, as the OI's ``mean="train"``; the mean of the observations when the task has
no training truth). The columns are

* the **observation maps** of the days to reconstruct, extended by ``obs_margin_days`` on each
  side (the spin-up observations before the test period, for instance), NaN where nothing was
  observed — observations are never the truth, so every observed day near the period may be
  used, as the OI does;
* with ``train_fields``, the **training period's truth maps**, fully observed (fair: the
  learned models see that truth too). A window day that is also a training day enters once,
  as its truth map. Off by default: on the built-in OSSE the test period's states lie far
  from the span of the training EOFs (the truth itself projected on 150 training EOFs keeps
  83 % of the mean map's error), and with them µ fell from 0.87 to 0.80.

Nadir tracks on a fine grid observe each cell a few times a month, too rarely to estimate a
spatial EOF there (each cell's loading would be fitted to a handful of values). DINEOF
therefore runs on blocks of ``coarsen × coarsen`` cells (the mean of the observations in a
block; ocean blocks only) and its reconstruction is interpolated back bilinearly from the
block centres (a partial block at the grid's edge is placed like a whole one); the mean map
is removed and added back on the data's grid.

Missing entries start at zero anomaly. For ``k = 1, 2, …`` the rank-``k`` truncated SVD of the
filled matrix replaces the missing entries, until their relative change is below ``tol`` or
after ``max_iter`` sweeps; each ``k`` starts from the previous one's filled matrix (DINEOF's
progressive mode increase). The number of modes is chosen by cross-validation: a random
``cv_fraction`` of the observations (seeded by the run's seed; never the training truth) is
held out, and the ``k`` with the smallest RMSE on them is kept (the search stops ``5`` modes
past the best, or at ``max_modes``). The held-out values are then put back and the iteration
continues at that ``k`` to convergence: the reconstruction uses every observation.

With ``time_filter > 0`` the missing entries come from the rank-``k`` approximation of the
time-filtered matrix ``X Fᵀ``, ``F = (I + α L)^n`` (``α = time_filter``, ``n =
time_filter_steps``, ``L`` the second difference between columns one time step apart), whose
EOFs are those of the filtered temporal covariance ``F XᵀX Fᵀ`` of Alvera-Azcárate et al.
(2009). It is a variant of theirs: they project the unfiltered matrix on the filtered temporal
modes (``X V Vᵀ``); on the built-in OSSE that scored µ 0.85 and its CV error grew steeply past
5 modes, the filtered approximation 0.87. The filter lets sparse days borrow from their
neighbours (on by default: µ 0.82 → 0.87 on the built-in OSSE).

Missing entries are updated with Nesterov momentum, restarted whenever the misfit to the
known entries grows: the fixed point is DINEOF's, reached in a fraction of the sweeps plain
DINEOF needs when most entries are missing.

The truncated SVD is a warm-started randomized subspace iteration (two products of the matrix
with ``k + 8`` vectors per sweep; Halko et al. 2011): the previous sweep's right singular
vectors start the next, so each sweep costs ``O(n_space · n_time · k)``.

The chosen mode count, the CV errors by mode count and the sweeps are in the prediction's
``eof_*`` attributes.

Forecast: a linear inverse model in EOF space
---------------------------------------------
EOFs of the training truth's anomalies (about its time-mean map), the leading
``forecast_modes`` principal components ``p(t)`` and the one-step propagator ``A``
minimising ``Σ ‖p(t+1) − A p(t)‖² + λ ‖A‖²`` over consecutive training steps (ridge ``λ =
ridge · trace(P Pᵀ)/k``). From each start ``t`` the state's anomaly is projected on the EOFs
and propagated, ``f(t, h) = mean + E A^h Eᵀ (x(t) − mean)``; the part of ``x(t)`` outside the
EOFs is held constant (``residual="persist"``, the default) or dropped (``"drop"``, the pure
LIM). On the built-in OSSE (7 leads, 20 modes) the pure LIM's MSE skill against persistence
was −1.75 (−8.5 at lead 1), with the residual held +0.004. Only the last input
step is used (a LIM is Markov).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import xarray as xr
from pydantic import Field

from models.base import Mapper, ModelParams, ProgressFn
from models.registry import register
from oceanlab_errors import DataError

log = logging.getLogger(__name__)

#: Extra vectors of the randomized subspace iteration beyond the modes kept.
_OVERSAMPLE = 8
#: The mode search stops this many modes past the best CV error.
_CV_PATIENCE = 5
#: At most about this many progress reports of the sweeps of one final reconstruction.
_SWEEP_REPORTS = 100

#: ``progress(stage, done, total, unit)`` of :func:`dineof` (:meth:`Mapper.report`'s
#: signature).
StageProgress = Callable[[str, int, int, str], None]


class EOFParams(ModelParams):
    """Parameters of DINEOF (interpolation) and of the EOF linear inverse model (forecast)."""

    name: Literal["eof"] = "eof"
    max_modes: int = Field(
        40, ge=1, le=500, description="interpolation: most EOF modes tried by the "
                                      "cross-validation (DINEOF's kmax)")
    cv_fraction: float = Field(
        0.03, gt=0, lt=0.5, description="interpolation: share of the observations held out "
                                        "(at random, seeded) to choose the number of modes")
    tol: float = Field(
        1e-4, gt=0, lt=1, description="interpolation: convergence when the missing values "
                                      "change by less than this (relative RMS) in one sweep")
    max_iter: int = Field(
        300, ge=1, le=10_000, description="interpolation: most SVD sweeps per mode count")
    train_fields: bool = Field(
        False, description="interpolation: add the training period's truth maps to the matrix "
                          "as fully observed columns (fixes the spatial EOFs)")
    obs_margin_days: int = Field(
        21, ge=0, le=100_000, description="interpolation: observation days used on each side "
                                          "of the period reconstructed (time steps)")
    coarsen: int = Field(
        5, ge=1, le=50, description="interpolation: DINEOF runs on blocks of coarsen × coarsen "
                                    "grid cells (observations averaged), then is interpolated "
                                    "back (bilinear); 1 = the data's grid")
    mean: Literal["train", "observations"] = Field(
        "train", description="mean removed before the SVD: 'train' = time-mean map of the "
                             "training truth (falls back to 'observations' without one), "
                             "'observations' = mean of all observations (one number)")
    time_filter: float = Field(
        0.2, ge=0, le=0.25, description="interpolation: strength α of the temporal filter "
                                        "F = (I + α L)^n of the EOFs (Alvera-Azcárate 2009); "
                                        "0 = off")
    time_filter_steps: int = Field(
        3, ge=1, le=100, description="interpolation: n, applications of the temporal filter")
    forecast_modes: int = Field(
        20, ge=1, le=500, description="forecast: EOF modes of the linear inverse model")
    ridge: float = Field(
        1e-3, ge=0, le=100, description="forecast: ridge of the propagator fit, relative to "
                                        "the mean PC variance")
    residual: Literal["drop", "persist"] = Field(
        "persist", description="forecast: the initial state's part outside the EOFs: dropped, or "
                            "held constant over the leads")

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """Interpolation knobs (``max_modes``, the CV share, the temporal filter, the margin)
        and the LIM's mode count and ridge."""
        return {
            "max_modes": trial.suggest_int("max_modes", 5, 80, log=True),
            "cv_fraction": trial.suggest_float("cv_fraction", 0.01, 0.1, log=True),
            "time_filter": trial.suggest_float("time_filter", 0.0, 0.25),
            "obs_margin_days": trial.suggest_int("obs_margin_days", 0, 42),
            "forecast_modes": trial.suggest_int("forecast_modes", 2, 80, log=True),
            "ridge": trial.suggest_float("ridge", 1e-5, 1.0, log=True),
        }


# ------------------------------------------------------------------------------- DINEOF


@dataclass
class DineofResult:
    """What :func:`dineof` returns.

    ``filled``: the matrix ``(n_space, n_time)`` with the observations where observed and the
    rank-``n_modes`` reconstruction elsewhere; ``reconstruction``: the rank-``n_modes``
    reconstruction everywhere; ``cv_rmse[k-1]``: the held-out RMSE with ``k`` modes;
    ``sweeps``: SVD sweeps in all.
    """

    filled: np.ndarray
    reconstruction: np.ndarray
    n_modes: int
    cv_rmse: list[float] = field(default_factory=list)
    sweeps: int = 0
    n_cv: int = 0


def temporal_filter(positions: np.ndarray, alpha: float, steps: int) -> np.ndarray | None:
    """``F = (I + α L)^steps`` ``(n, n)`` for columns at integer time ``positions``, ``L``
    the graph Laplacian linking columns exactly one step apart; None when ``alpha`` is 0."""
    if alpha <= 0:
        return None
    n = len(positions)
    pos = np.asarray(positions)
    adj = (np.abs(pos[:, None] - pos[None, :]) == 1).astype(np.float64)
    lap = adj - np.diag(adj.sum(1))
    one = np.eye(n) + alpha * lap
    return np.linalg.matrix_power(one, int(steps))


class _Subspace:
    """Warm-started randomized truncated SVD of ``X Fᵀ`` (``F`` optional)."""

    def __init__(self, n_cols: int, filt: torch.Tensor | None, gen: torch.Generator,
                 dtype: torch.dtype, device: torch.device):
        self.filt = filt
        self.gen = gen
        self.v = torch.empty((n_cols, 0), dtype=dtype, device=device)

    def ensure(self, q: int) -> None:
        n, have = self.v.shape
        q = min(q, n)
        if have < q:
            extra = torch.randn((n, q - have), generator=self.gen, dtype=torch.float64)
            self.v = torch.cat([self.v, extra.to(self.v)], dim=1)

    def low_rank(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """The rank-``k`` approximation of ``X Fᵀ`` after one subspace-iteration step."""
        v = self.v if self.filt is None else self.filt.T @ self.v
        q, _ = torch.linalg.qr(x @ v)  # (m, q): range of X Fᵀ V
        b = q.T @ x
        if self.filt is not None:
            b = b @ self.filt.T
        ub, s, vt = torch.linalg.svd(b, full_matrices=False)
        self.v = vt.T.contiguous()
        k = min(k, len(s))
        return (q @ ub[:, :k]) * s[:k] @ vt[:k]


def dineof(
    x: np.ndarray, *, max_modes: int = 40, cv_fraction: float = 0.03, tol: float = 1e-3,
    max_iter: int = 100, seed: int = 0, cv_columns: np.ndarray | None = None,
    positions: np.ndarray | None = None, time_filter: float = 0.0, time_filter_steps: int = 1,
    device: torch.device | str = "cpu", progress: StageProgress | None = None,
) -> DineofResult:
    """DINEOF on the anomaly matrix ``x`` ``(n_space, n_time)``, NaN where missing.

    ``cv_columns`` (bool per column, default all) marks the columns whose observations may
    be held out for the cross-validation (not the fully observed training columns);
    ``positions`` (integer time steps of the columns, default ``0…n−1``) place them for the
    temporal filter. See the module docstring for the algorithm. Float64 throughout.

    ``progress(stage, done, total, unit)``, if given, follows the work (it changes nothing
    computed): ``"cross-validate"`` in ``"modes"`` (mode counts tried out of the most that
    may be, jumping to the total when the search stops early), then ``"reconstruct"`` in
    ``"sweeps"`` (the final fit's sweeps out of ``max_iter``, the total at convergence);
    without held-out points (nothing to cross-validate) ``"reconstruct"`` in ``"modes"``
    (mode counts fitted out of the most). Each stage ends with ``done == total``.
    """
    x = np.asarray(x, dtype=np.float64)
    m, n = x.shape
    observed = np.isfinite(x)
    if not observed.any():
        raise DataError("DINEOF: no observation to reconstruct from")
    rng = np.random.default_rng(seed)
    cv_cols = np.ones(n, bool) if cv_columns is None else np.asarray(cv_columns, bool)
    candidates = np.flatnonzero((observed & cv_cols[None, :]).ravel())
    n_cv = round(cv_fraction * candidates.size)
    held = np.zeros(m * n, bool)
    if n_cv >= 1 and candidates.size - n_cv >= 1:
        held[rng.choice(candidates, n_cv, replace=False)] = True
    held = held.reshape(m, n)
    positions = np.arange(n) if positions is None else np.asarray(positions)
    filt_np = temporal_filter(positions, time_filter, time_filter_steps)

    dev = torch.device(device)
    to = {"dtype": torch.float64, "device": dev}
    xt = torch.as_tensor(np.where(observed, x, 0.0), **to)
    obs_t = torch.as_tensor(observed, device=dev)
    held_t = torch.as_tensor(held, device=dev)
    filt = None if filt_np is None else torch.as_tensor(filt_np, **to)
    gen = torch.Generator().manual_seed(int(seed))
    sub = _Subspace(n, filt, gen, torch.float64, dev)
    kmax = max(1, min(int(max_modes), m, n - 1 if n > 1 else 1))

    def iterate(filled: torch.Tensor, known: torch.Tensor, k: int,
                on_sweep: Callable[[int], None] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, int]:
        # Hard-impute sweeps with Nesterov momentum on the filled matrix, restarted whenever
        # the misfit to the known entries grows (plain DINEOF converges slowly when most
        # entries are missing; the fixed point is the same).
        sub.ensure(k + _OVERSAMPLE)
        missing = ~known
        prev = filled[missing]
        rec = filled
        z, last, misfit, t_mom = filled, filled, math.inf, 1.0
        for it in range(1, max_iter + 1):
            rec = sub.low_rank(z, k)
            new_filled = torch.where(known, xt, rec)
            new = rec[missing]
            fit = float(torch.linalg.vector_norm((rec - xt)[known]))
            change = float(torch.linalg.vector_norm(new - prev))
            scale = float(torch.linalg.vector_norm(new)) or 1e-300
            prev = new
            if fit > misfit:
                t_mom = 1.0  # restart
                z = new_filled
            else:
                t_next = (1 + math.sqrt(1 + 4 * t_mom * t_mom)) / 2
                z = new_filled + ((t_mom - 1) / t_next) * (new_filled - last)
                t_mom = t_next
            misfit, last = fit, new_filled
            if change / scale < tol:
                return new_filled, rec, it
            if on_sweep is not None:
                on_sweep(it)
        return last, rec, max_iter

    def report(stage: str, done: int, total: int, unit: str) -> None:
        if progress is not None:
            progress(stage, done, total, unit)

    every = max(1, max_iter // _SWEEP_REPORTS)

    def sweep_report(it: int) -> None:
        if it % every == 0:
            report("reconstruct", it, max_iter, "sweeps")

    # Cross-validation over k, every mode count starting from the previous one's filled matrix.
    fit = obs_t & ~held_t
    filled = torch.where(fit, xt, torch.zeros((), **to))
    cv: list[float] = []
    sweeps = 0
    best_k, best_err, best_filled = 1, math.inf, filled
    if n_cv:
        truth_cv = xt[held_t]
        report("cross-validate", 0, kmax, "modes")
        for k in range(1, kmax + 1):
            filled, rec, its = iterate(filled, fit, k)
            sweeps += its
            err = float(torch.sqrt(torch.mean((rec[held_t] - truth_cv) ** 2)))
            cv.append(err)
            log.debug("DINEOF: %d modes, %d sweeps, CV RMSE %.5g", k, its, err)
            report("cross-validate", k, kmax, "modes")
            if err < best_err:
                best_k, best_err, best_filled = k, err, filled
            elif k - best_k >= _CV_PATIENCE:
                break
        if len(cv) < kmax:  # the search stopped early: the mode counts left are skipped
            report("cross-validate", kmax, kmax, "modes")
        filled = best_filled
    else:
        best_k = kmax
    # Final reconstruction at the chosen k with every observation.
    if n_cv:
        filled = torch.where(obs_t, xt, filled)
        report("reconstruct", 0, max_iter, "sweeps")
        filled, rec, its = iterate(filled, obs_t, best_k, sweep_report)
        sweeps += its
        report("reconstruct", max_iter, max_iter, "sweeps")
    else:
        report("reconstruct", 0, best_k, "modes")
        for k in range(1, best_k + 1):
            filled, rec, its = iterate(filled, obs_t, k)
            sweeps += its
            report("reconstruct", k, best_k, "modes")
    return DineofResult(filled=filled.cpu().numpy(), reconstruction=rec.cpu().numpy(),
                        n_modes=best_k, cv_rmse=cv, sweeps=sweeps, n_cv=n_cv)


# --------------------------------------------------------------------------------- LIM


def eof_basis(anomalies: np.ndarray, n_modes: int) -> tuple[np.ndarray, np.ndarray]:
    """Leading EOFs ``(n_space, k)`` and singular values of ``anomalies`` ``(n_space,
    n_time)`` (no NaN), ``k = min(n_modes, rank bound)``."""
    u, s, _ = np.linalg.svd(anomalies, full_matrices=False)
    k = min(int(n_modes), len(s))
    return u[:, :k], s[:k]


def fit_propagator(pcs: np.ndarray, pairs: np.ndarray, ridge: float) -> np.ndarray:
    """The ridge least-squares one-step propagator ``A`` ``(k, k)`` with ``pcs[:, j+1] ≈ A
    pcs[:, j]`` for each ``j`` in ``pairs``; ``λ = ridge · trace(P Pᵀ) / k``."""
    p0, p1 = pcs[:, pairs], pcs[:, pairs + 1]
    k = pcs.shape[0]
    gram = p0 @ p0.T
    lam = ridge * float(np.trace(gram)) / max(k, 1)
    return np.linalg.solve(gram + lam * np.eye(k), p0 @ p1.T).T


# ------------------------------------------------------------------------------- the model


def _coarsen(a: np.ndarray, c: int) -> np.ndarray:
    """Block means ``(n, ceil(lat/c), ceil(lon/c))`` of ``a`` ``(n, lat, lon)`` over
    ``c × c`` cells, ignoring NaN (NaN where a block has no value)."""
    if c == 1:
        return a
    n, ny, nx = a.shape
    py, px = -ny % c, -nx % c
    a = np.pad(a, ((0, 0), (0, py), (0, px)), constant_values=np.nan)
    a = a.reshape(n, (ny + py) // c, c, (nx + px) // c, c)
    finite = np.isfinite(a)
    count = finite.sum((2, 4))
    total = np.where(finite, a, 0.0).sum((2, 4))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _upsample(a: np.ndarray, c: int, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear interpolation of block values ``(n, lat_c, lon_c)`` (at the blocks' centres)
    back to the ``shape`` grid (edges held constant); the identity for ``c == 1``."""
    if c == 1:
        return a
    t = torch.as_tensor(a, dtype=torch.float64)[:, None]
    up = torch.nn.functional.interpolate(t, scale_factor=c, mode="bilinear",
                                         align_corners=False)[:, 0]
    return up[:, :shape[0], :shape[1]].numpy()



def _mean_map(task, mean: str) -> tuple[np.ndarray | None, float]:
    """The training-period truth mean map ``(lat, lon)`` (None if unavailable or not asked)
    and the scalar observation mean used otherwise."""
    from models.oi import train_mean_map

    if mean == "train":
        m = train_mean_map(task)
        if m is not None:
            return np.asarray(m.transpose("lat", "lon").values, np.float64), 0.0
        log.info("EOF: no training truth to take a mean map from; removing the mean of the "
                 "observations instead")
    obs = np.asarray(task.obs.values, np.float64)
    return None, float(np.nanmean(obs)) if np.isfinite(obs).any() else 0.0


@register("eof")
class EOFMapper(Mapper):
    """DINEOF gap filling (interpolation) and an EOF linear inverse model (forecast); see
    :class:`EOFParams` and the module docstring. Nothing is trained by gradient: the
    forecast's :meth:`fit` computes the EOFs and the propagator from the training split."""

    Params = EOFParams
    tasks = ("interpolation", "forecast")
    trainable = False

    def __init__(self, params: ModelParams, device: torch.device, seed: int = 0):
        super().__init__(params, device, seed)
        self._lim: dict[str, Any] | None = None

    # -- sizes ------------------------------------------------------------------------
    def _columns(self, task, times: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
        """Record positions of the observation columns and of the truth columns."""
        p: EOFParams = self.params  # type: ignore[assignment]
        all_times = pd.DatetimeIndex(task.truth["time"].values)
        pos = all_times.get_indexer(pd.DatetimeIndex(times))
        if (pos < 0).any():
            raise DataError(f"{task.label}: times to reconstruct outside the record")
        lo = max(0, int(pos.min()) - p.obs_margin_days)
        hi = min(len(all_times) - 1, int(pos.max()) + p.obs_margin_days)
        window = np.arange(lo, hi + 1)
        train = np.array([], int)
        if p.train_fields and "train" in getattr(task, "periods", {}):
            train = np.asarray(task.index("train"))
            train = train[np.isfinite(np.asarray(task.truth.values)[train]).any((1, 2))]
        window = np.setdiff1d(window, train)
        return window, train

    def memory_estimate(self, task) -> dict[str, int]:
        """Float64 bytes of the matrix and its working copies (filled, reconstruction,
        masks) and of the SVD factors; for a forecast, the training matrix and its SVD."""
        p: EOFParams = self.params  # type: ignore[assignment]
        m = int(np.asarray(task.mask.values).sum())
        if task.kind == "forecast":
            n = len(task.index("train"))
            return {"matrix": 8 * m * n * 3, "svd": 8 * (m + n) * min(m, n)}
        window, train = self._columns(task, task.sample_times("test"))
        n = len(window) + len(train)
        ny, nx = task.mask.shape
        m = min(m, -(-ny // p.coarsen) * -(-nx // p.coarsen))
        q = min(p.max_modes + _OVERSAMPLE, n)
        fields = 8 * 2 * n * ny * nx  # the float64 columns before coarsening, and the output
        return {"matrix": 8 * m * n * 6, "svd": 8 * (2 * m * q + n * n + 2 * n * q),
                "fields": fields}

    # -- forecast -----------------------------------------------------------------------
    def fit(self, task, settings=None, progress: ProgressFn | None = None,
            log_dir=None) -> None:
        """Forecast task: the training EOFs and the propagator (see the module docstring).
        Interpolation: nothing (everything happens in :meth:`predict`)."""
        if task.kind == "forecast":
            self._lim = self._fit_lim(task)

    def _fit_lim(self, task) -> dict[str, Any]:
        p: EOFParams = self.params  # type: ignore[assignment]
        ocean = np.asarray(task.mask.values, bool)
        idx = np.asarray(task.index("train"))
        truth = np.asarray(task.truth.transpose("time", "lat", "lon").values, np.float64)
        x = truth[idx][:, ocean]  # (T, m)
        good = np.isfinite(x).all(1)
        if good.sum() < 3:
            raise DataError(f"{task.label}: the EOF forecast needs at least 3 complete "
                            f"training steps")
        mean = x[good].mean(0)
        anom = np.where(np.isfinite(x), x - mean, 0.0).T  # (m, T)
        eofs, sv = eof_basis(anom[:, good], p.forecast_modes)
        pcs = eofs.T @ anom
        consecutive = np.flatnonzero((np.diff(idx) == 1) & good[:-1] & good[1:])
        if consecutive.size == 0:
            raise DataError(f"{task.label}: no consecutive training steps to fit the EOF "
                            f"forecast's propagator")
        a = fit_propagator(pcs, consecutive, p.ridge)
        radius = float(np.max(np.abs(np.linalg.eigvals(a))))
        log.info("EOF LIM: %d modes (%.1f %% of the training variance), %d pairs, spectral "
                 "radius %.4f", eofs.shape[1], 100 * float((sv**2).sum() / (anom[:, good]**2)
                                                           .sum()), consecutive.size, radius)
        return {"mean": mean, "eofs": eofs, "a": a, "radius": radius,
                "variance": float((sv**2).sum() / max((anom[:, good]**2).sum(), 1e-300))}

    def _forecast(self, task, starts: pd.DatetimeIndex) -> xr.DataArray:
        p: EOFParams = self.params  # type: ignore[assignment]
        lim = self._lim or self._fit_lim(task)
        ocean = np.asarray(task.mask.values, bool)
        all_times = pd.DatetimeIndex(task.state["time"].values)
        pos = all_times.get_indexer(starts)
        if (pos < 0).any():
            raise DataError(f"{task.label}: forecast starts outside the record")
        state = np.asarray(task.state.transpose("time", "lat", "lon").values, np.float64)
        x = state[pos][:, ocean] - lim["mean"]  # (S, m)
        x = np.where(np.isfinite(x), x, 0.0)
        e, a = lim["eofs"], lim["a"]
        pcs = x @ e  # (S, k)
        residual = x - pcs @ e.T if p.residual == "persist" else 0.0
        horizon = task.params.horizon
        out = np.full((len(pos), horizon) + ocean.shape, np.nan)
        self.report("forecast", 0, horizon, "leads")
        for h in range(horizon):
            pcs = pcs @ a.T
            out[:, h][:, ocean] = lim["mean"] + pcs @ e.T + residual
            self.report("forecast", h + 1, horizon, "leads")
        da = task.wrap(out, starts)
        da.attrs.update({"eof_n_modes": int(e.shape[1]), "eof_variance": lim["variance"],
                         "eof_spectral_radius": lim["radius"], "eof_residual": p.residual})
        return da

    # -- interpolation -----------------------------------------------------------------
    def predict(self, task, times: pd.DatetimeIndex) -> xr.DataArray:
        """Interpolation: the DINEOF reconstruction ``(time, lat, lon)`` float32 on the
        truth's grid (truth units, NaN on land) with ``eof_*`` attributes (modes chosen, CV
        RMSE by mode count, sweeps, columns). Forecast: ``(time=start, lead_time, lat,
        lon)`` from the LIM."""
        times = pd.DatetimeIndex(times)
        if task.kind == "forecast":
            return self._forecast(task, times)
        p: EOFParams = self.params  # type: ignore[assignment]
        ocean = np.asarray(task.mask.values, bool)
        window, train = self._columns(task, times)
        mean_map, mean = _mean_map(task, p.mean)
        background = mean_map if mean_map is not None else np.full(ocean.shape, mean)
        background = np.where(ocean, background, 0.0)
        c = p.coarsen
        obs = np.asarray(task.obs.transpose("time", "lat", "lon").values, np.float64)
        blocks = [_coarsen(obs[window] - background, c)]
        if train.size:
            truth = np.asarray(task.truth.transpose("time", "lat", "lon").values, np.float64)
            blocks.append(_coarsen(truth[train] - background, c))
        stack = np.concatenate(blocks, 0)  # (n, lat_c, lon_c)
        rows = _coarsen(np.where(ocean, 1.0, np.nan)[None], c)[0] > 0  # coarse ocean cells
        x = stack[:, rows].T  # (m, n)
        positions = np.concatenate([window, train])
        cv_cols = np.arange(x.shape[1]) < len(window)
        if not np.isfinite(x[:, cv_cols]).any():
            raise DataError(f"{task.label}: no observation within {p.obs_margin_days} steps "
                            f"of the period to reconstruct")
        res = dineof(x, max_modes=p.max_modes, cv_fraction=p.cv_fraction, tol=p.tol,
                     max_iter=p.max_iter, seed=self.seed, cv_columns=cv_cols,
                     positions=positions, time_filter=p.time_filter,
                     time_filter_steps=p.time_filter_steps, device=self.device,
                     progress=self.report)
        log.info("DINEOF: %d modes chosen (CV RMSE %s), %d sweeps, %d columns (%d of "
                 "training truth) of %d cells", res.n_modes,
                 ", ".join(f"{e:.4g}" for e in res.cv_rmse), res.sweeps, x.shape[1], train.size,
                 x.shape[0])
        where = {t: i for i, t in enumerate(window)}
        all_times = pd.DatetimeIndex(task.truth["time"].values)
        cols = [where[t] if t in where else len(window) + int(np.flatnonzero(train == t)[0])
                for t in all_times.get_indexer(times)]  # a training day is its truth column
        coarse = np.zeros((len(cols),) + rows.shape)
        coarse[:, rows] = res.filled[:, cols].T
        out = _upsample(coarse, c, ocean.shape) + background
        da = task.wrap(out[:, None], times)
        da.attrs.update({
            "eof_n_modes": int(res.n_modes),
            "eof_cv_rmse": np.asarray(res.cv_rmse if res.cv_rmse else [np.nan], np.float64),
            "eof_cv_points": int(res.n_cv), "eof_sweeps": int(res.sweeps),
            "eof_n_columns": int(x.shape[1]), "eof_train_columns": int(train.size),
            "eof_mean_map": int(mean_map is not None),
        })
        return da
