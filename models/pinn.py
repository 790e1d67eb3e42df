"""A physics-informed neural field (PINN) for SSH: one coordinate network per time window,
fitted at prediction time to the window's observations and to the 1.5-layer QG equation.

For each window of ``window_days`` days a network ``η'_θ(x, y, t)`` (the anomaly from the
training period's mean map ``η̄``, like the OI's ``mean="train"``) minimises

    L = mean_data (η'_θ − (y_obs − η̄))² / σ²  +  λ · mean_colloc (R / R₀)²

with ``R = ∂q/∂t + J(ψ, q) + β ∂ψ/∂x``, ``q = ∇²ψ − ψ/Ld²``, ``ψ = g (η̄ + η'_θ) / f0``
(SCIENCE.md). Derivatives of the network are exact (nested ``torch.autograd.grad`` with
``create_graph``: third derivatives of η enter J); those of the static mean map are centred
finite differences, looked up because collocation points sit on grid nodes (a random subset
of the interior ocean nodes at every step, at continuous random times in the window).

Scaling (so that ``physics_weight`` near 1 is sensible): coordinates enter the network as
``x / L``, ``y / L``, ``t / T`` (``length_scale_km``, ``time_scale_days``), centred on the
window; the output is in units of ``σ``, the standard deviation of the window's observed
anomalies; the residual is divided by ``R₀ = ψ₀ (2 ψ₀ / Ld⁴ + β / Ld)`` with ``ψ₀ = g σ / f0``,
the size of the Jacobian and of the β term for a field of amplitude ``σ`` varying on the
deformation radius (on the built-in OSSE the first dominates; for slow, large Rossby waves
the second). f0, β, Ld, g come from ``task.physics``
and the grid spacing from :func:`data.physics.grid_spacing_m`: nothing is hard-coded.

Windows: the requested days are cut into chunks of ``stride_days`` consecutive days; each
chunk has one window centred on it, spanning ``window_days`` days of observations (windows
overlap when ``window_days > stride_days``), and its days are predicted by it (the window
centred nearest to them). All windows are one batched network (weights with a leading window
dimension, ``torch.baddbmm``) trained with one Adam optimiser: each window's loss depends
only on its weights and Adam is element-wise, so windows do not interact — on a GPU they all
train at once, on a CPU the batch amortises Python overhead. Every window draws its random
samples from shapes that do not depend on its data, so changing one window's observations
changes no other window.

Forecast: one window per forecast start ``t₀``, fitted to the full history states
``t₀−history+1 … t₀`` (a random subset of grid points per step for the data term) with
collocation over ``[t₀−history+1, t₀+horizon]``; the leads are the network's extrapolation.

Defaults and cost (built-in OSSE, 4 nadirs, the 42 test days = 6 windows of 14 days every 7):
2000 steps take about 2.2 min on one CPU thread (``OMP_NUM_THREADS=1``; 5 min with the two
cores shared by other jobs) and give RMSE 0.046 m, µ 0.913, λx 1.15°, λt 8.2 days, ahead of
the tuned OI on every score; without the physics term (``physics_weight=0``) RMSE 0.061 m,
λx 1.48°, λt 17 days. ``--set model.steps=400`` runs in under a minute (RMSE 0.053, the tuned
OI's). ``physics_weight`` 0.4 and 1, and ``adaptive=gradnorm``, score alike there.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import torch
import xarray as xr
from pydantic import Field

from data.physics import QGPhysics, node_positions
from data.qg import SECONDS_PER_DAY
from models.base import Mapper, ModelParams
from models.registry import register
from oceanlab_errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: Stage and unit of :meth:`PINNMapper.predict`'s progress (:meth:`Mapper.report`): windows
#: fitted out of the windows of the request. All windows are one batched network trained
#: together (splitting them would change their random draws), so the count goes from 0 to
#: all at once; the optimiser's steps in between are reported like epochs (``_report``).
_FIT_STAGE, _FIT_UNIT = "fit windows", "windows"


class PINNParams(ModelParams):
    """Parameters of the physics-informed neural field (see the module docstring)."""

    name: Literal["pinn"] = "pinn"
    encoding: Literal["fourier", "siren"] = Field(
        "fourier", description="input encoding: random Fourier features followed by a tanh MLP "
                               "(fourier) or a sine network (siren)")
    hidden: int = Field(64, ge=4, le=1024, description="width of the hidden layers")
    layers: int = Field(3, ge=1, le=12, description="number of hidden layers")
    features: int = Field(64, ge=2, le=1024,
                          description="random Fourier features (sin and cos each; fourier only)")
    length_scale_km: float = Field(
        80.0, gt=0, description="spatial scale L of the input coordinates (km): the encoding's "
                                "typical wavelength is about 2π·L")
    time_scale_days: float = Field(
        6.0, gt=0, description="time scale T of the input coordinates (days)")
    window_days: float = Field(
        14.0, gt=0, le=366, description="days of observations each window is fitted to, "
                                        "centred on its chunk of output days")
    stride_days: int = Field(
        7, ge=1, le=366, description="consecutive output days sharing one window (interpolation)")
    steps: int = Field(2000, ge=1, le=1_000_000,
                       description="optimiser steps (all windows train together)")
    lr: float = Field(3e-3, gt=0, le=1.0, description="Adam learning rate (cosine-decayed to 5 %)")
    data_points: int = Field(
        1024, ge=8, le=1_000_000, description="observations drawn per window and step for the "
                                              "data term")
    collocation_points: int = Field(
        256, ge=1, le=1_000_000, description="collocation points (grid nodes, random times) per "
                                             "window and step for the physics term")
    physics_weight: float = Field(
        0.4, ge=0, description="λ, the weight of the scaled QG residual (0: data only)")
    adaptive: Literal["none", "gradnorm"] = Field(
        "none", description="gradnorm: scale λ per window by the ratio of the data and physics "
                            "gradient norms (Wang, Teng & Perdikaris 2021), as an EMA")
    adaptive_every: int = Field(10, ge=1, le=10_000,
                                description="steps between two gradnorm updates of λ")
    adaptive_ema: float = Field(0.9, ge=0, lt=1, description="EMA factor of the gradnorm λ")
    weight_decay: float = Field(0.0, ge=0, le=10.0,
                                description="L2 penalty on the weights (AdamW)")

    @classmethod
    def search_space(cls, trial) -> dict:
        """Log-uniform scales, physics weight and window length."""
        return {
            "length_scale_km": trial.suggest_float("length_scale_km", 30.0, 200.0, log=True),
            "time_scale_days": trial.suggest_float("time_scale_days", 2.0, 20.0, log=True),
            "physics_weight": trial.suggest_float("physics_weight", 1e-3, 10.0, log=True),
            "window_days": trial.suggest_float("window_days", 6.0, 30.0, log=True),
        }


# ----------------------------------------------------------------------------- residual


@dataclass
class Background:
    """Finite-difference derivatives of the static mean map at collocation points (SI):
    ``psi_x``, ``psi_y`` (m s⁻¹) and ``q_x``, ``q_y`` (m⁻¹ s⁻¹) of ``ψ̄ = g η̄ / f0`` and
    ``q̄ = ∇²ψ̄ − ψ̄/Ld²``, each shaped like the points without their last axis."""

    psi_x: torch.Tensor
    psi_y: torch.Tensor
    q_x: torch.Tensor
    q_y: torch.Tensor


def _grad(out: torch.Tensor, inp: torch.Tensor) -> torch.Tensor:
    return torch.autograd.grad(out, inp, torch.ones_like(out), create_graph=True)[0]


def qg_pv_residual(eta: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor,
                   physics: QGPhysics, background: Background | None = None) -> torch.Tensor:
    """The 1.5-layer QG PV residual ``R = ∂q/∂t + J(ψ, q) + β ∂ψ/∂x`` (s⁻²) by autograd.

    Parameters
    ----------
    eta : the SSH anomaly (m) as a function of ``points``; each output must depend only on
        its own point (no coupling across points), shaped like ``points[..., 0]``.
    points : ``(..., 3)`` float tensor ``(x, y, t)`` in metres, metres and seconds (any
        origin); gradients are taken with respect to it (it is not modified).
    physics : f0, β, Ld, g.
    background : derivatives of a static field added to ``eta`` (the mean map), or None.

    The graph is kept (``create_graph``), so the residual can be trained through.
    """
    p = points.detach().requires_grad_(True)
    e = eta(p)
    d1 = _grad(e, p)
    e_x, e_y, e_t = d1[..., 0], d1[..., 1], d1[..., 2]
    e_xx = _grad(e_x, p)[..., 0]
    e_yy = _grad(e_y, p)[..., 1]
    lap = e_xx + e_yy
    d3 = _grad(lap, p)
    c = physics.g / physics.f0
    k2 = 1.0 / physics.Ld ** 2
    psi_x, psi_y = c * e_x, c * e_y
    q_x = c * (d3[..., 0] - k2 * e_x)
    q_y = c * (d3[..., 1] - k2 * e_y)
    q_t = c * (d3[..., 2] - k2 * e_t)
    if background is not None:
        psi_x = psi_x + background.psi_x
        psi_y = psi_y + background.psi_y
        q_x = q_x + background.q_x
        q_y = q_y + background.q_y
    return q_t + psi_x * q_y - psi_y * q_x + physics.beta * psi_x


def background_derivatives(mean: np.ndarray, x: np.ndarray, y: np.ndarray,
                           physics: QGPhysics) -> np.ndarray:
    """``(4, n_lat, n_lon)`` float64: ψ̄_x, ψ̄_y, q̄_x, q̄_y of the mean map ``mean``
    (``(n_lat, n_lon)`` metres) by centred differences on the node positions ``x``
    (``n_lon``, m) and ``y`` (``n_lat``, m); NaN where a stencil leaves the grid or meets
    land (NaN in ``mean``)."""
    c = physics.g / physics.f0
    psi = c * np.asarray(mean, dtype=np.float64)
    n_lat, n_lon = psi.shape
    out = np.full((4,) + psi.shape, np.nan)
    if n_lat < 5 or n_lon < 5:
        return out
    psi_y, psi_x = np.gradient(psi, y, x)
    psi_yy = np.gradient(psi_y, y, axis=0)
    psi_xx = np.gradient(psi_x, x, axis=1)
    q = psi_xx + psi_yy - psi / physics.Ld ** 2
    q_y, q_x = np.gradient(q, y, x)
    interior = np.zeros(psi.shape, dtype=bool)
    interior[2:-2, 2:-2] = True
    for k, f in enumerate((psi_x, psi_y, q_x, q_y)):
        out[k] = np.where(interior, f, np.nan)
    # a land point anywhere in the 5×5 stencil spoils the third derivatives
    bad = ~np.isfinite(psi)
    spoiled = bad.copy()
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            spoiled |= np.roll(np.roll(bad, dy, 0), dx, 1)
    out[:, spoiled] = np.nan
    return out


# ----------------------------------------------------------------------- batched network


class BatchedField(torch.nn.Module):
    """``n_windows`` independent coordinate networks evaluated together.

    Input ``(W, N, 3)`` scaled coordinates, output ``(W, N)``. Weights carry a leading window
    dimension and layers are ``torch.baddbmm``.
    """

    def __init__(self, n_windows: int, encoding: str, hidden: int, layers: int, features: int,
                 generator: torch.Generator, omega0: float = 30.0):
        super().__init__()
        self.encoding = encoding
        self.omega0 = omega0
        w = n_windows

        def uniform(shape, bound):
            return (torch.rand(shape, generator=generator) * 2 - 1) * bound

        if encoding == "fourier":
            self.register_buffer("B", torch.randn((3, features), generator=generator))
            dims = [2 * features] + [hidden] * layers
        else:
            dims = [3] + [hidden] * layers
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        for i, (a, b) in enumerate(itertools.pairwise(dims)):
            if encoding == "siren":
                # SIREN: the first layer's frequencies are those of the scaled coordinates
                # (N(0, 1) like the Fourier features); hidden layers keep unit-variance sines
                bound = 1.0 / omega0 if i == 0 else math.sqrt(6.0 / a) / omega0
                weight = (torch.randn((w, a, b), generator=generator) / omega0 if i == 0
                          else uniform((w, a, b), bound))
            else:
                weight = uniform((w, a, b), math.sqrt(6.0 / (a + b)))  # Glorot for tanh
            self.weights.append(torch.nn.Parameter(weight))
            self.biases.append(torch.nn.Parameter(uniform((w, 1, b), 1.0 / math.sqrt(a))))
        self.out_w = torch.nn.Parameter(uniform((w, dims[-1], 1), math.sqrt(6.0 / (dims[-1] + 1))))
        self.out_b = torch.nn.Parameter(torch.zeros((w, 1, 1)))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        if self.encoding == "fourier":
            z = v @ self.B
            h = torch.cat([torch.sin(z), torch.cos(z)], dim=-1)
            for w, b in zip(self.weights, self.biases):
                h = torch.tanh(torch.baddbmm(b, h, w))
        else:
            h = v
            for w, b in zip(self.weights, self.biases):
                h = torch.sin(self.omega0 * torch.baddbmm(b, h, w))
        return torch.baddbmm(self.out_b, h, self.out_w)[..., 0]


# ----------------------------------------------------------------------------- fitting


@dataclass
class WindowProblem:
    """What the batched fit needs, on the CPU, float64 (see :func:`fit_windows`).

    obs_p : ``(W, M, 3)`` observation positions ``(x, y, t)`` (m, m, s) relative to each
        window's centre, padded; obs_y : ``(W, M)`` anomalies (m), padded with 0;
    obs_n : ``(W,)`` counts; col_xy : ``(K, 2)`` collocation nodes (m) and col_bg ``(K, 4)``
        the mean map's ψ̄_x, ψ̄_y, q̄_x, q̄_y there (zeros without a mean map);
    col_t : ``(W, 2)`` collocation time range (s) relative to each centre.
    """

    obs_p: np.ndarray
    obs_y: np.ndarray
    obs_n: np.ndarray
    col_xy: np.ndarray
    col_bg: np.ndarray
    col_t: np.ndarray


def _field_fn(net: BatchedField, scale: torch.Tensor, sigma: torch.Tensor):
    """η'(p) (m) of physical points ``(W, N, 3)``: ``σ_w · net(p / scale)``."""
    return lambda p: sigma[:, None] * net(p / scale)


def fit_windows(problem: WindowProblem, params: PINNParams, physics: QGPhysics | None,
                device: torch.device, seed: int = 0,
                progress: Callable[[dict], None] | None = None) -> tuple[BatchedField, dict]:
    """Fit one network per window (batched) to ``problem``; returns the network and its
    evaluation helpers (``scale``, ``sigma``) plus the loss history."""
    p = params
    use_physics = p.physics_weight > 0
    if use_physics and physics is None:
        raise ConfigError("pinn: physics_weight > 0 needs the quasi-geostrophic constants")
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    n_win = problem.obs_p.shape[0]
    dt = torch.float32
    to = {"device": device, "dtype": dt}
    obs_p = torch.as_tensor(problem.obs_p, **to)
    obs_y = torch.as_tensor(problem.obs_y, **to)
    counts = torch.as_tensor(problem.obs_n, device=device, dtype=torch.long)
    # per-window amplitude: the RMS of its anomalies (floor: 1 mm)
    valid = torch.arange(obs_y.shape[1], device=device)[None] < counts[:, None]
    ssq = (obs_y ** 2 * valid).sum(1) / counts.clamp(min=1)
    sigma = torch.sqrt(ssq).clamp(min=1e-3)
    has_data = (counts > 0).to(dt)
    scale = torch.tensor([p.length_scale_km * 1e3, p.length_scale_km * 1e3,
                          p.time_scale_days * SECONDS_PER_DAY], **to)
    net = BatchedField(n_win, p.encoding, p.hidden, p.layers, p.features, gen).to(device)
    eta = _field_fn(net, scale, sigma)
    opt = torch.optim.AdamW(net.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s, p.steps) / p.steps)))
    col_xy = torch.as_tensor(problem.col_xy, **to)
    col_bg = torch.as_tensor(problem.col_bg, **to)
    col_t = torch.as_tensor(problem.col_t, **to)
    n_nodes = col_xy.shape[0]
    if use_physics and n_nodes == 0:
        raise DataError("pinn: no grid node has a complete finite-difference stencil of the "
                        "mean map for the physics term (grid too small or all land)")
    if use_physics:  # the Jacobian and β terms of a field of amplitude σ varying on Ld
        psi0 = physics.g * sigma / physics.f0
        r0 = psi0 * (2.0 * psi0 / physics.Ld ** 4 + physics.beta / physics.Ld)
    lam = torch.ones(n_win, **to)
    history = []
    m = max(int(obs_p.shape[1]), 1)
    n_data = min(p.data_points, m)
    for step in range(p.steps):
        # data term: n_data draws per window among its own observations (shapes independent
        # of the data, so one window's observations never change another's draws)
        u = torch.rand((n_win, n_data), generator=gen).to(device)
        idx = (u * counts[:, None].clamp(min=1)).long().clamp(max=m - 1)
        pts = torch.gather(obs_p, 1, idx[..., None].expand(-1, -1, 3))
        target = torch.gather(obs_y, 1, idx)
        pred = net(pts / scale)
        data_w = ((pred - target / sigma[:, None]) ** 2).mean(1) * has_data
        loss_w = data_w
        phys_w = torch.zeros_like(data_w)
        if use_physics:
            node = torch.randint(0, n_nodes, (n_win, p.collocation_points), generator=gen)
            tt = torch.rand((n_win, p.collocation_points), generator=gen).to(device)
            node = node.to(device)
            t = col_t[:, :1] + tt * (col_t[:, 1:] - col_t[:, :1])
            cp = torch.cat([col_xy[node], t[..., None]], dim=-1)
            bg = col_bg[node]
            res = qg_pv_residual(eta, cp, physics, Background(bg[..., 0], bg[..., 1],
                                                              bg[..., 2], bg[..., 3]))
            phys_w = ((res / r0[:, None]) ** 2).mean(1)
            if p.adaptive == "gradnorm" and step % p.adaptive_every == 0:
                lam = _gradnorm_update(net, data_w, phys_w, lam, p.adaptive_ema)
            loss_w = data_w + p.physics_weight * lam * phys_w
        opt.zero_grad(set_to_none=True)
        loss_w.sum().backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == p.steps - 1:
            row = {"step": step + 1, "steps": p.steps,
                   "data_loss": float(data_w.detach().mean()),
                   "physics_loss": float(phys_w.detach().mean()), "lambda": float(lam.mean())}
            history.append(row)
            if progress is not None:
                progress(row)
    return net, {"scale": scale, "sigma": sigma, "history": history}


def _gradnorm_update(net: BatchedField, data_w: torch.Tensor, phys_w: torch.Tensor,
                     lam: torch.Tensor, ema: float) -> torch.Tensor:
    """Per window, λ̂ = ‖∇θ L_data‖ / ‖∇θ L_phys‖ over the window's weights; λ ← EMA."""
    params = [q for q in net.parameters() if q.requires_grad]
    gd = torch.autograd.grad(data_w.sum(), params, retain_graph=True, allow_unused=True)
    gp = torch.autograd.grad(phys_w.sum(), params, retain_graph=True, allow_unused=True)

    def norm(grads):
        total = torch.zeros_like(lam)
        for g in grads:
            if g is not None:
                total = total + g.detach().reshape(g.shape[0], -1).square().sum(1)
        return total.sqrt()

    hat = norm(gd) / norm(gp).clamp(min=1e-12)
    return ema * lam + (1 - ema) * hat.clamp(1e-4, 1e4)


@torch.no_grad()
def evaluate(net: BatchedField, info: dict, points: torch.Tensor,
             chunk: int = 65536) -> torch.Tensor:
    """η' (m) at physical points ``(W, N, 3)``, in chunks of ``chunk`` points per window."""
    eta = _field_fn(net, info["scale"], info["sigma"])
    out = [eta(points[:, i:i + chunk]) for i in range(0, points.shape[1], chunk)]
    return torch.cat(out, dim=1)


# ------------------------------------------------------------------------------- the model


def _pad(groups: list[np.ndarray], width: int) -> np.ndarray:
    m = max([len(g) for g in groups] + [1])
    out = np.zeros((len(groups), m, width))
    for k, g in enumerate(groups):
        out[k, :len(g)] = g.reshape(len(g), width)
    return out


@register("pinn")
class PINNMapper(Mapper):
    """Physics-informed neural field, fitted per window at prediction time (module docstring).

    Nothing is learned from the training split except the background mean map (the time-mean
    of the truth over the training period).
    """

    Params = PINNParams
    tasks = ("interpolation", "forecast")
    trainable = False
    _progress = None

    def fit(self, task, settings, progress=None, log_dir=None):
        """Nothing is learned from the training split (the windows are fitted when
        :meth:`predict` is asked for days); keeps ``progress`` so that those fits report
        their steps (live progress and ``history.csv``: epoch = step)."""
        self._progress = progress

    def _report(self, row: dict) -> None:
        if self._progress is not None:
            self._progress({"epoch": row["step"], "epochs": row["steps"],
                            "train_loss": row["data_loss"] + row["physics_loss"],
                            "data_loss": row["data_loss"], "physics_loss": row["physics_loss"],
                            "lambda": row["lambda"]})

    # -- shared ------------------------------------------------------------------------
    def _physics(self, task) -> QGPhysics | None:
        p: PINNParams = self.params  # type: ignore[assignment]
        physics = getattr(task, "physics", None)
        if p.physics_weight > 0 and physics is None:
            note = getattr(task, "physics_note", "") or "no quasi-geostrophic constants"
            raise ConfigError(f"pinn: physics_weight={p.physics_weight:g} needs f0, beta and Ld: "
                              f"{note}; or set model.physics_weight=0")
        return physics if p.physics_weight > 0 else None

    def _grid(self, task):
        lat = task.truth["lat"].values
        lon = task.truth["lon"].values
        x, y = node_positions(lat, lon)
        mean = _train_mean(task)
        return x, y, mean

    def _collocation(self, task, x, y, mean, physics) -> tuple[np.ndarray, np.ndarray]:
        if physics is None:
            return np.zeros((0, 2)), np.zeros((0, 4))
        base = mean if mean is not None else np.where(task.mask.values, 0.0, np.nan)
        bg = background_derivatives(base, x, y, physics)
        ok = np.isfinite(bg).all(0) & np.asarray(task.mask.values, dtype=bool)
        i_y, i_x = np.nonzero(ok)
        return np.stack([x[i_x], y[i_y]], 1), bg[:, i_y, i_x].T

    def memory_estimate(self, task) -> dict[str, int]:
        """Bytes by part: the collocation batch's derivative graph (the four nested
        ``create_graph`` passes and their backward keep about 50 activation-sized tensors per
        layer and point: ~100 kB per point at the defaults, measured), the data batch's
        activations, the padded window observations, the weights with Adam's moments and
        the float64 output."""
        p: PINNParams = self.params  # type: ignore[assignment]
        n_lat, n_lon = task.truth.sizes["lat"], task.truth.sizes["lon"]
        if task.kind == "forecast":
            n_win = len(task.sample_index("test"))
            per_win = task.params.history * n_lat * n_lon
            n_out = n_win * task.params.horizon
        else:
            n_days = len(task.times("test"))
            n_win = max(1, math.ceil(n_days / p.stride_days))
            per_day = float(task.obs.notnull().sum()) / max(task.obs.sizes["time"], 1)
            per_win = int(per_day * (p.window_days + 1))
            n_out = n_days
        width = max(p.hidden, 2 * p.features if p.encoding == "fourier" else 3)
        act = 4 * width * (p.layers + 1)
        return {
            "collocation_graph": int(n_win * p.collocation_points * act * 50
                                     if p.physics_weight > 0 else 0),
            "data_batch": int(n_win * min(p.data_points, max(per_win, 1)) * act * 3),
            "observations": int(n_win * per_win * 4 * 4 * 2),
            "weights": int(n_win * 4 * 4 * (width * width * p.layers + 3 * width)),
            "output": int(8 * n_out * n_lat * n_lon),
        }

    def predict(self, task, times: pd.DatetimeIndex) -> xr.DataArray:
        """Interpolation: ``(time, lat, lon)``; forecast: ``(time=start, lead_time, lat,
        lon)`` (``task.wrap``), truth units, NaN on land."""
        if task.kind == "forecast":
            return self._predict_forecast(task, pd.DatetimeIndex(times))
        return self._predict_interpolation(task, pd.DatetimeIndex(times))

    # -- interpolation ------------------------------------------------------------------
    def _predict_interpolation(self, task, times: pd.DatetimeIndex) -> xr.DataArray:
        p: PINNParams = self.params  # type: ignore[assignment]
        physics = self._physics(task)
        x, y, mean = self._grid(task)
        n_lat, n_lon = len(y), len(x)
        base = mean if mean is not None else np.zeros((n_lat, n_lon))
        obs = task.obs.transpose("time", "lat", "lon")
        ref = pd.Timestamp(times.min()) if len(times) else pd.Timestamp(obs["time"].values[0])
        t_obs = (pd.DatetimeIndex(obs["time"].values) - ref) / pd.Timedelta(days=1)
        values = np.asarray(obs.values, dtype=np.float64)
        k_t, i_y, i_x = np.nonzero(np.isfinite(values))
        anomaly = values[k_t, i_y, i_x] - base[i_y, i_x]
        keep = np.isfinite(anomaly)
        k_t, i_y, i_x, anomaly = k_t[keep], i_y[keep], i_x[keep], anomaly[keep]
        t_all = np.asarray(t_obs)[k_t]

        t_out = np.asarray((times - ref) / pd.Timedelta(days=1), dtype=np.float64)
        order = np.argsort(t_out, kind="stable")
        chunks = [order[i:i + p.stride_days] for i in range(0, len(order), p.stride_days)]
        centres = np.array([0.5 * (t_out[c].min() + t_out[c].max()) for c in chunks])
        self.report(_FIT_STAGE, 0, len(centres), _FIT_UNIT)
        # each output day goes to the window centred nearest to it
        owner = np.abs(t_out[:, None] - centres[None, :]).argmin(1) if len(centres) else []
        half = 0.5 * p.window_days
        groups_p, groups_y = [], []
        for c in centres:
            sel = np.abs(t_all - c) <= half
            groups_p.append(np.stack([x[i_x[sel]], y[i_y[sel]],
                                      (t_all[sel] - c) * SECONDS_PER_DAY], 1))
            groups_y.append(anomaly[sel])
        col_xy, col_bg = self._collocation(task, x, y, mean, physics)
        problem = WindowProblem(
            obs_p=_pad(groups_p, 3), obs_y=_pad(groups_y, 1)[..., 0],
            obs_n=np.array([len(g) for g in groups_y]), col_xy=col_xy, col_bg=col_bg,
            col_t=np.tile([-half * SECONDS_PER_DAY, half * SECONDS_PER_DAY], (len(centres), 1)))
        log.info("pinn: %d windows of %.3g days, %s observations each", len(centres),
                 p.window_days, problem.obs_n.tolist())
        result = np.zeros((len(times), n_lat, n_lon))
        if len(centres):
            net, info = fit_windows(problem, p, physics, self.device, self.seed,
                                    progress=self._report)
            self.history = info["history"]
            self.report(_FIT_STAGE, len(centres), len(centres), _FIT_UNIT)
            result = self._evaluate_days(net, info, x, y, [
                (np.flatnonzero(owner == w), t_out[owner == w] - centres[w])
                for w in range(len(centres))], len(times))
        result += base[None]
        return task.wrap(result[:, None], times)

    def _evaluate_days(self, net, info, x, y, per_window, n_times) -> np.ndarray:
        """The fitted anomaly on the grid at ``per_window[w] = (output positions, times in days
        from window w's centre)``, as ``(n_times, n_lat, n_lon)``."""
        n_lat, n_lon = len(y), len(x)
        gx, gy = np.meshgrid(x, y)
        xy = np.stack([gx.ravel(), gy.ravel()], 1)
        n_days = max([len(pos) for pos, _ in per_window] + [1])
        pts = np.zeros((len(per_window), n_days * len(xy), 3))
        for w, (_, dts) in enumerate(per_window):
            for k, d in enumerate(dts):
                block = slice(k * len(xy), (k + 1) * len(xy))
                pts[w, block, :2] = xy
                pts[w, block, 2] = d * SECONDS_PER_DAY
        vals = evaluate(net, info, torch.as_tensor(pts, device=self.device, dtype=torch.float32))
        vals = vals.cpu().double().numpy().reshape(len(per_window), n_days, n_lat, n_lon)
        out = np.zeros((n_times, n_lat, n_lon))
        for w, (pos, _) in enumerate(per_window):
            out[pos] = vals[w, :len(pos)]
        return out

    # -- forecast -----------------------------------------------------------------------
    def _predict_forecast(self, task, starts: pd.DatetimeIndex) -> xr.DataArray:
        p: PINNParams = self.params  # type: ignore[assignment]
        physics = self._physics(task)
        x, y, mean = self._grid(task)
        n_lat, n_lon = len(y), len(x)
        base = mean if mean is not None else np.zeros((n_lat, n_lon))
        hist, horizon = task.params.history, task.params.horizon
        all_times = pd.DatetimeIndex(task.state["time"].values)
        pos = all_times.get_indexer(starts)
        if (pos < 0).any():
            raise DataError(f"{task.label}: forecast starts outside the record")
        self.report(_FIT_STAGE, 0, len(starts), _FIT_UNIT)
        state = np.asarray(task.state.transpose("time", "lat", "lon").values, dtype=np.float64)
        days = np.asarray((all_times - all_times[0]) / pd.Timedelta(days=1), dtype=np.float64)
        ocean = np.asarray(task.mask.values, dtype=bool)
        gx, gy = np.meshgrid(x, y)
        groups_p, groups_y, t_rng, per_window = [], [], [], []
        for w, s in enumerate(pos):
            ks = np.arange(max(0, s - hist + 1), s + 1)
            # valid times of the leads (days; one step per lead past the record's end)
            step = days[s] - days[s - 1] if s > 0 else 1.0
            lead_days = np.array([days[s + h] if s + h < len(days) else days[s] + h * step
                                  for h in range(1, horizon + 1)])
            t0, t1 = days[ks[0]], lead_days[-1]
            c = 0.5 * (t0 + t1)
            pts, ys = [], []
            for k in ks:
                anom = state[k] - base
                ok = ocean & np.isfinite(anom)
                pts.append(np.stack([gx[ok], gy[ok],
                                     np.full(ok.sum(), (days[k] - c) * SECONDS_PER_DAY)], 1))
                ys.append(anom[ok])
            groups_p.append(np.concatenate(pts))
            groups_y.append(np.concatenate(ys))
            t_rng.append([(t0 - c) * SECONDS_PER_DAY, (t1 - c) * SECONDS_PER_DAY])
            per_window.append((np.arange(w * horizon, (w + 1) * horizon), lead_days - c))
        col_xy, col_bg = self._collocation(task, x, y, mean, physics)
        problem = WindowProblem(obs_p=_pad(groups_p, 3), obs_y=_pad(groups_y, 1)[..., 0],
                                obs_n=np.array([len(g) for g in groups_y]), col_xy=col_xy,
                                col_bg=col_bg, col_t=np.array(t_rng).reshape(-1, 2))
        result = np.zeros((len(starts) * horizon, n_lat, n_lon))
        if len(starts):
            net, info = fit_windows(problem, p, physics, self.device, self.seed,
                                    progress=self._report)
            self.history = info["history"]
            self.report(_FIT_STAGE, len(starts), len(starts), _FIT_UNIT)
            result = self._evaluate_days(net, info, x, y, per_window, len(starts) * horizon)
        result = result.reshape(len(starts), horizon, n_lat, n_lon) + base[None, None]
        return task.wrap(result, starts)


def _train_mean(task) -> np.ndarray | None:
    """The training period's time-mean of the truth ``(lat, lon)`` float64 (NaN on land),
    or None (then the background is zero)."""
    from models.oi import train_mean_map

    m = train_mean_map(task)
    return None if m is None else np.asarray(m.transpose("lat", "lon").values, dtype=np.float64)
