"""A 1.5-layer quasi-geostrophic model: the truth of the built-in OSSE.

The model integrates potential-vorticity conservation on a doubly periodic square,

    ∂q/∂t + J(ψ, q) + β ∂ψ/∂x = F + r (q̄ − q),      q = ∇²ψ − ψ / Ld²,      ψ = g η / f0,

pseudo-spectrally with torch (float32 by default, or float64) on whatever ``torch.device``
it is given. It is a *forced jet*: the standard idealisation of a western-boundary-current
extension in a periodic channel (e.g. the jets of Haidvogel & Held 1980, or pyqg's jet
examples) in its simplest, equivalent-barotropic form, chosen because it is the system the
PINN's residual (SCIENCE.md) describes, so that the truth is consistent with it apart from
forcing and dissipation.

* **Mean flow** ``q̄``: the PV of a pair of opposite zonal jets (``QGParams.jet_drop`` of SSH
  across a tanh profile ``jet_width`` wide), the eastward one at ``y = L/4``; relaxing
  towards it at the drag rate keeps a Gulf-Stream-like front (about a metre of SSH over
  100 km) that eddies make meander.
* **Eddy forcing** ``F``: Gaussian red noise (an Ornstein–Uhlenbeck process of memory
  ``forcing_tau``, 4 days) confined to a ring of wavenumbers around
  ``2π / forcing_wavelength`` (100 km), drawn from a ``torch.Generator`` seeded by the
  caller (on the CPU, so the forcing sequence is the same on every device). Its amplitude
  is set by an energy injection rate ``forcing_epsilon`` (m² s⁻³). White noise would make
  the SSH jump from day to day; a few days of memory keeps it smooth, as observed SSH is.
  Forcing at 100 km lets the inverse cascade fill the 100–300 km range and the enstrophy
  cascade the smaller scales: the SSH spectrum falls as k⁻⁴…k⁻⁵ from 300 to 50 km, as QG
  turbulence and NATL60 do.
* **Dissipation**: linear damping of potential vorticity at rate ``drag`` (s⁻¹; the same
  rate at every scale, which stops energy piling up at the domain scale) and, at small
  scales, pyqg's exponential spectral filter applied after every step.
* **SST** (optional): a tracer advected by the same flow, relaxed towards a front along the
  jet, stepped with the same RK4 stages.
* **Dealiasing**: the Jacobian is computed in flux form ``∂x(u q) + ∂y(v q)`` and truncated
  by the 2/3 rule; the filter is defined relative to that truncation.
* **Time stepping**: classical RK4 for the deterministic part with a fixed step that
  divides one day (the default 3600 s on an 8.3 km grid keeps the advective Courant number
  ``u Δt / Δx`` below 0.8 for currents up to 1.8 m/s; RK4 with 2/3 dealiasing is stable to
  about 1.3). The model checks for blow-up every ten days.

The default :class:`QGParams` give, on the OSSE box over a year (``data.osse.
osse_statistics``, tested in ``tests/test_osse.py``): a time-mean SSH drop of ≈ 1.2 m across
the front, eddy standard deviation ≈ 0.12 m, a zonal wavenumber spectrum slope ≈ −4.8
between 50 and 300 km and a point decorrelation time of ≈ 9 days, with currents up to
≈ 1.6 m/s. Energy is statistically steady after ≈ 60 days, hence ``spinup_days = 90``.

Physics helpers for other code (a PINN, diagnostics): :func:`streamfunction_from_ssh`,
:func:`pv_from_ssh` and :func:`qg_residual` work on gridded torch tensors or numpy arrays;
:meth:`QGModel.tendency` is the spectral right-hand side used by the model.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch

from oceanlab_errors import ConfigError

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class QGParams:
    """Physical and numerical parameters of the 1.5-layer QG model (SI units).

    Attributes
    ----------
    f0 : Coriolis parameter (s⁻¹).
    beta : meridional gradient of the Coriolis parameter (m⁻¹ s⁻¹).
    Ld : first baroclinic deformation radius (m).
    g : gravity used in ψ = g η / f0 (m s⁻²). SSH ``η`` is the surface elevation.
    length : side of the square periodic domain (m).
    n : grid points per side.
    dt : time step (s); must divide one day.
    drag : linear damping rate of potential vorticity (s⁻¹).
    forcing_wavelength : wavelength at the centre of the forcing ring (m).
    forcing_width : half-width of the forcing ring in units of the domain's fundamental
        wavenumber ``2π / length``.
    forcing_epsilon : energy injection rate (m² s⁻³) of a white-in-time forcing with the
        same spectrum and the same zero-frequency power; the actual rate is close to it
        while ``forcing_tau`` is short compared with the flow's time scales. Energy is per
        unit mass of the equivalent-barotropic layer, ``E = ½⟨|∇ψ|² + ψ²/Ld²⟩``.
    forcing_tau : memory of the forcing (s): it is red noise (an Ornstein–Uhlenbeck
        process per wavenumber), so the SSH evolves smoothly from day to day.
    filter_factor, filter_cutoff : pyqg's exponential filter
        ``exp(−filter_factor (κ − filter_cutoff)⁴)`` for ``κ > filter_cutoff``, with ``κ``
        the non-dimensional wavenumber ``|k| Δx`` scaled so that ``κ = π`` at the 2/3-rule
        truncation.
    spinup_days : days integrated (and discarded) before the first saved snapshot.
    jet_drop : SSH drop (m) across the forced jet (0: no jet, eddies only). The model is
        forced towards a pair of opposite zonal jets, the eastward one at ``y = length / 4``
        and its westward return at ``3 length / 4`` (the domain is periodic), with the SSH
        profile ``η̄(y) = jet_drop · S(y)``, ``S = ½ [−tanh((y − y₁)/W) + tanh((y − y₂)/W)
        + 1]`` (high to the south of the eastward jet, as across the Gulf Stream). The
        forcing is ``drag · q̄`` with ``q̄`` the jet's potential vorticity: without eddies
        the jet is the steady state; eddies make it meander and shed rings, and their fluxes
        weaken it (the time-mean drop is below ``jet_drop``).
    jet_width : ``W`` (m), the tanh width of the jet profile.
    precision : "float32" (default: four times faster FFTs on a CPU; the flow is chaotic
        and forced, so rounding changes which eddies form, not their statistics) or
        "float64" (the state and operators; the forcing is drawn in float64 either way).
    sst_mean, sst_drop, sst_tau : the sea-surface-temperature tracer (°C): advected by the
        geostrophic flow, relaxed at rate ``1 / sst_tau`` (s) towards ``sst_mean +
        sst_drop · S(y)`` (warm to the south of the eastward jet), small scales removed by
        the same spectral filter as the PV. Integrated only when asked for (``run_qg(...,
        sst=True)``); it does not act on the flow.
    """

    f0: float = 9e-5
    beta: float = 1.7e-11
    Ld: float = 35e3
    g: float = 9.81
    length: float = 1.6e6
    n: int = 192
    dt: float = 3600.0
    drag: float = 1.0 / (40.0 * SECONDS_PER_DAY)
    jet_drop: float = 1.1
    jet_width: float = 50e3
    forcing_wavelength: float = 100e3
    forcing_width: float = 1.5
    forcing_epsilon: float = 4e-7
    forcing_tau: float = 4.0 * SECONDS_PER_DAY
    filter_factor: float = 23.6
    filter_cutoff: float = 0.65 * math.pi
    spinup_days: int = 90
    sst_mean: float = 20.0
    sst_drop: float = 8.0
    sst_tau: float = 30.0 * SECONDS_PER_DAY
    precision: str = "float32"

    def __post_init__(self) -> None:
        if self.dt <= 0 or abs(SECONDS_PER_DAY / self.dt - round(SECONDS_PER_DAY / self.dt)) > 1e-9:
            raise ConfigError(f"QGParams.dt={self.dt}: must be positive and divide 86400 s")
        if self.n < 8 or self.n % 2:
            raise ConfigError(f"QGParams.n={self.n}: must be an even number >= 8")
        for name in ("f0", "Ld", "g", "length", "forcing_wavelength"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"QGParams.{name}={getattr(self, name)}: must be positive")
        if self.drag < 0 or self.forcing_epsilon < 0 or self.spinup_days < 0:
            raise ConfigError("QGParams: drag, forcing_epsilon and spinup_days must be >= 0")
        if self.forcing_tau < self.dt:
            raise ConfigError(f"QGParams.forcing_tau={self.forcing_tau}: must be >= dt")
        if self.precision not in ("float32", "float64"):
            raise ConfigError(f"QGParams.precision={self.precision!r}: use 'float32' or 'float64'")
        if self.jet_drop < 0 or self.jet_width <= 0 or self.sst_tau <= 0:
            raise ConfigError("QGParams: jet_drop must be >= 0, jet_width and sst_tau > 0")

    @property
    def dx(self) -> float:
        """Grid spacing (m), the same in x and y."""
        return self.length / self.n

    @property
    def steps_per_day(self) -> int:
        """Number of time steps in one day."""
        return int(round(SECONDS_PER_DAY / self.dt))

    @property
    def jet_latitudes(self) -> tuple[float, float]:
        """``y`` (m) of the eastward jet and of its westward return."""
        return self.length / 4.0, 3.0 * self.length / 4.0

    def jet_shape(self, y: np.ndarray) -> np.ndarray:
        """``S(y)`` in [−½, ½]: the jet's SSH profile per metre of ``jet_drop``."""
        y1, y2 = self.jet_latitudes
        w = self.jet_width
        return 0.5 * (-np.tanh((y - y1) / w) + np.tanh((y - y2) / w) + 1.0)

    def to_dict(self) -> dict[str, float | int]:
        """The parameters as a plain dict (for NetCDF attributes and run metadata)."""
        return asdict(self)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) means CUDA when available, else the CPU."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device={device!r}: not a torch device ({exc}); use 'auto', "
                          "'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r}: CUDA is not available here; use 'auto' or 'cpu'")
    return dev


@contextlib.contextmanager
def _cpu_threads(device: torch.device, n: int) -> Iterator[None]:
    """Temporarily limit torch's CPU threads (small FFTs run fastest on one thread)."""
    if device.type != "cpu":
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, min(n, old)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


class QGModel:
    """Pseudo-spectral 1.5-layer QG model on a doubly periodic square.

    The state is the real-FFT ``qh = rfft2(q)`` of potential vorticity, shape
    ``(n, n // 2 + 1)`` complex64 (complex128 with ``precision="float64"``), axes ``(y, x)``.

    Parameters
    ----------
    params : model parameters.
    device : where the tensors live.
    seed : seed of the forcing's ``torch.Generator`` (kept on the CPU).
    """

    def __init__(self, params: QGParams = QGParams(), device: str | torch.device = "cpu",
                 seed: int = 0, sst: bool = False):
        self.params = p = params
        self.device = dev = resolve_device(device)
        n = p.n
        dk = 2.0 * math.pi / p.length
        ky = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64) * dk
        kx = torch.fft.rfftfreq(n, d=1.0 / n, dtype=torch.float64) * dk
        KY, KX = torch.meshgrid(ky, kx, indexing="ij")
        K2 = KX**2 + KY**2
        self.ikx = (1j * KX).to(dev)
        self.iky = (1j * KY).to(dev)
        #: ψ̂ = inv_op · q̂ with inv_op = −1 / (k² + Ld⁻²)
        self.inv_op = (-1.0 / (K2 + p.Ld**-2)).to(dev)
        kmax = math.pi / p.dx
        kcut = (2.0 / 3.0) * kmax
        dealias = (KX.abs() < kcut) & (KY.abs() < kcut)
        self.dealias = dealias.to(dev)
        # pyqg's filter, with κ = π at the 2/3 truncation
        kappa = torch.sqrt(K2) * p.dx * 1.5
        filt = torch.exp(-p.filter_factor * (kappa - p.filter_cutoff).clamp(min=0.0) ** 4)
        self.filter = (filt * dealias).to(dev)
        # forcing ring shape, normalised to the white-noise-equivalent injection rate
        k = torch.sqrt(K2)
        k_f = 2.0 * math.pi / p.forcing_wavelength
        ring = ((k - k_f).abs() <= p.forcing_width * dk) & (k > 0)
        if not bool(ring.any()):
            raise ConfigError("QGParams: the forcing ring holds no wavenumber; widen "
                              "forcing_width or change forcing_wavelength")
        shape = ring.to(torch.float64)
        # multiplicity of each rfft column in the full spectrum (Hermitian pairs)
        mult = torch.full((n // 2 + 1,), 2.0, dtype=torch.float64)
        mult[0] = 1.0
        mult[-1] = 1.0
        # physical white noise w (variance 1) has E|ŵ_k|² = n². A white forcing of
        # intensity a² S² n² (per unit time) injects ε = ½ a² n² Σ_k S² / (k² + Ld⁻²) / n⁴;
        # an OU process with the same zero-frequency power has variance a² S² n² / (2τ).
        s = float((mult * shape**2 / (K2 + p.Ld**-2)).sum())
        amp = math.sqrt(2.0 * p.forcing_epsilon * n**2 / s)
        self._forcing_std = (shape * amp / math.sqrt(2.0 * p.forcing_tau)).to(dev)
        self._rho = math.exp(-p.dt / p.forcing_tau)
        # precombined operators for the right-hand side
        self._to_uvq = torch.stack((-self.iky * self.inv_op, self.ikx * self.inv_op,
                                    torch.ones_like(self.inv_op)))
        self._div = torch.stack((self.ikx, self.iky)) * self.dealias
        self._linear = -p.beta * self.ikx * self.inv_op - p.drag
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))
        # the forced jet: its PV q̄ (spectral) is both the initial state and, times the drag,
        # a steady forcing, so that without eddies the jet is the steady solution
        y = np.arange(n, dtype=np.float64) * p.dx
        shape = np.broadcast_to(p.jet_shape(y)[:, None], (n, n))
        psi_jet = torch.fft.rfft2(torch.as_tensor(shape * p.jet_drop * p.g / p.f0))
        self.jet_qh = (psi_jet / (-1.0 / (K2 + p.Ld**-2))).to(dev)
        self._jet_forcing = p.drag * self.jet_qh
        self.qh = self.jet_qh.clone()
        #: current forcing F̂ (s⁻²), drawn from its stationary distribution
        self.forcing = self._noise(1)[0] * self._forcing_std
        self.steps = 0
        #: spectral SST (°C) when the tracer is integrated, else None
        self.th: torch.Tensor | None = None
        if sst:
            t_star = torch.fft.rfft2(torch.as_tensor(p.sst_mean + p.sst_drop * shape))
            self._sst_relax = (t_star / p.sst_tau).to(dev)
            self.th = t_star.to(dev).clone()
        if p.precision == "float32":  # build in float64, then compute in the working precision
            for name in ("ikx", "iky", "_to_uvq", "_div", "_linear", "jet_qh", "_jet_forcing",
                         "qh", "forcing", "_sst_relax", "th"):
                if isinstance(getattr(self, name, None), torch.Tensor):
                    setattr(self, name, getattr(self, name).to(torch.complex64))
            for name in ("inv_op", "filter", "_forcing_std", "dealias"):
                value = getattr(self, name)
                if value.dtype == torch.float64:
                    setattr(self, name, value.to(torch.float32))

    # ------------------------------------------------------------------ physics
    def psih(self, qh: torch.Tensor) -> torch.Tensor:
        """Spectral streamfunction from spectral PV (inverts q = ∇²ψ − ψ/Ld²)."""
        return self.inv_op * qh

    def tendency(self, qh: torch.Tensor, forcing: torch.Tensor | None = None) -> torch.Tensor:
        """Right-hand side ``∂q̂/∂t = −J(ψ, q) − β ∂ψ/∂x − r q (+ F)`` (spectral).

        Parameters
        ----------
        qh : ``rfft2(q)`` of shape ``(n, n // 2 + 1)``, q in s⁻¹.
        forcing : spectral forcing ``F̂`` of the same shape (s⁻²), or None.

        Returns
        -------
        Tensor of the same shape, s⁻².
        """
        n = self.params.n
        # (u, v, q) in physical space: one batched inverse FFT
        fields = torch.fft.irfft2(self._to_uvq * qh, s=(n, n))
        fluxes = torch.fft.rfft2(fields[:2] * fields[2])
        # J = ∂x(uq) + ∂y(vq), truncated by the 2/3 rule
        jac = (self._div * fluxes).sum(dim=0)
        out = self._linear * qh - jac
        if forcing is not None:
            out += forcing
        return out

    def tendency_sst(self, qh: torch.Tensor, th: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-hand sides of PV (unforced, as :meth:`tendency` without ``forcing``) and of
        the SST tracer ``∂T/∂t = −J(ψ, T) + (T* − T) / sst_tau``, from one batched pair of
        FFTs."""
        n = self.params.n
        spec = torch.cat((self._to_uvq * qh, th[None]))
        u, v, q, t = torch.fft.irfft2(spec, s=(n, n))
        fluxes = torch.fft.rfft2(torch.stack((u * q, v * q, u * t, v * t)))
        jq = (self._div * fluxes[:2]).sum(dim=0)
        jt = (self._div * fluxes[2:]).sum(dim=0)
        return self._linear * qh - jq, self._sst_relax - th / self.params.sst_tau - jt

    def _noise(self, steps: int) -> torch.Tensor:
        """``rfft2`` of ``steps`` unit white-noise fields, drawn on the CPU (so the same
        seed gives the same forcing on every device), then moved to the device."""
        n = self.params.n
        w = torch.randn((steps, n, n), generator=self.generator, dtype=torch.float64)
        out = torch.fft.rfft2(w)
        if self.params.precision == "float32":
            out = out.to(torch.complex64)
        return out.to(self.device)

    def step_day(self) -> None:
        """Advance the model by one day: ``steps_per_day`` RK4 steps, the red-noise
        forcing held constant within each step and updated between steps."""
        p = self.params
        dt = p.dt
        innovation = self._noise(p.steps_per_day) * (
            self._forcing_std * math.sqrt(1.0 - self._rho**2))
        qh, f = self.qh, self.forcing
        if self.th is not None:
            self._step_day_sst(innovation)
            return
        for i in range(p.steps_per_day):
            ff = f + self._jet_forcing
            k1 = self.tendency(qh, ff)
            k2 = self.tendency(torch.add(qh, k1, alpha=0.5 * dt), ff)
            k3 = self.tendency(torch.add(qh, k2, alpha=0.5 * dt), ff)
            k4 = self.tendency(torch.add(qh, k3, alpha=dt), ff)
            k1 += k4
            k2 += k3
            k1.add_(k2, alpha=2.0)
            qh = torch.add(qh, k1, alpha=dt / 6.0).mul_(self.filter)
            f = f * self._rho + innovation[i]
        self.qh, self.forcing = qh, f
        self.steps += p.steps_per_day

    def _step_day_sst(self, innovation: torch.Tensor) -> None:
        """:meth:`step_day` with the SST tracer stepped alongside (the same RK4 stages)."""
        p = self.params
        dt = p.dt
        qh, th, f = self.qh, self.th, self.forcing
        for i in range(p.steps_per_day):
            ff = f + self._jet_forcing
            stages = []
            q_in, t_in = qh, th
            for c in (0.5, 0.5, 1.0, None):
                kq, kt = self.tendency_sst(q_in, t_in)
                kq += ff
                stages.append((kq, kt))
                if c is not None:
                    q_in = torch.add(qh, kq, alpha=c * dt)
                    t_in = torch.add(th, kt, alpha=c * dt)
            (q1, t1), (q2, t2), (q3, t3), (q4, t4) = stages
            qh = (qh + (dt / 6.0) * (q1 + 2.0 * (q2 + q3) + q4)) * self.filter
            th = (th + (dt / 6.0) * (t1 + 2.0 * (t2 + t3) + t4)) * self.filter
            f = f * self._rho + innovation[i]
        self.qh, self.th, self.forcing = qh, th, f
        self.steps += p.steps_per_day

    # ------------------------------------------------------------------ output
    def ssh(self) -> torch.Tensor:
        """Current SSH η = f0 ψ / g (m), shape ``(n, n)`` with axes ``(y, x)``."""
        n = self.params.n
        psi = torch.fft.irfft2(self.psih(self.qh), s=(n, n))
        return psi * (self.params.f0 / self.params.g)

    def sst(self) -> torch.Tensor:
        """Current SST (°C), shape ``(n, n)``; requires ``sst=True`` at construction."""
        if self.th is None:
            raise ConfigError("QGModel: the SST tracer is not integrated (use sst=True)")
        n = self.params.n
        return torch.fft.irfft2(self.th, s=(n, n))

    def energy(self) -> float:
        """Domain-mean energy ``½⟨|∇ψ|² + ψ²/Ld²⟩`` (m² s⁻²)."""
        n = self.params.n
        mult = torch.full((n // 2 + 1,), 2.0, dtype=torch.float64, device=self.device)
        mult[0] = 1.0
        mult[-1] = 1.0
        e = 0.5 * (mult * (-self.inv_op) * self.qh.abs() ** 2).sum() / n**4
        return float(e)

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """Grid-point positions ``(x_m, y_m)`` in metres, from 0 to ``length − dx``."""
        x = np.arange(self.params.n, dtype=np.float64) * self.params.dx
        return x, x.copy()


def _check_finite(model: QGModel, day: int) -> None:
    if not bool(torch.isfinite(model.qh).all()) or (
            model.th is not None and not bool(torch.isfinite(model.th).all())):
        raise ConfigError(f"QG model blew up by day {day + 1}: reduce QGParams.dt or "
                          "forcing_epsilon, or raise drag")


def run_qg(
    n_days: int,
    seed: int = 0,
    params: QGParams = QGParams(),
    device: str | torch.device = "auto",
    sst: bool = False,
):
    """Spin the QG model up, then save one SSH snapshot per day.

    Parameters
    ----------
    n_days : number of daily snapshots after the spin-up (``params.spinup_days``).
    seed : seed of the stochastic forcing; the same seed on the same device gives the
        same output.
    params : model parameters.
    device : "auto" (CUDA if available, else CPU), "cpu", "cuda" or a ``torch.device``.
    sst : also integrate the SST tracer and return its daily snapshots.

    Returns
    -------
    eta : ndarray ``(time, y, x)`` float64, SSH in metres, the instantaneous state at the
        end of each day; not rescaled (the forced jet's profile included).
    x_m, y_m : ndarrays ``(n,)``, grid positions in metres (periodic, period ``length``).
    sst : (only with ``sst=True``) ndarray ``(time, y, x)`` float64, °C.
    """
    if n_days < 1:
        raise ConfigError(f"n_days={n_days}: must be at least 1")
    dev = resolve_device(device)
    with _cpu_threads(dev, 1), torch.no_grad():
        model = QGModel(params, dev, seed, sst=sst)
        for day in range(params.spinup_days):
            model.step_day()
            if day % 10 == 9:
                _check_finite(model, day)
        shape = (n_days, params.n, params.n)
        out = torch.empty(shape, dtype=torch.float64, device=dev)
        out_sst = torch.empty(shape, dtype=torch.float64, device=dev) if sst else None
        for day in range(n_days):
            model.step_day()
            out[day] = model.ssh()
            if out_sst is not None:
                out_sst[day] = model.sst()
            if day % 10 == 9:
                _check_finite(model, params.spinup_days + day)
        _check_finite(model, params.spinup_days + n_days)
        eta = out.cpu().numpy()
    x, y = model.coordinates()
    if out_sst is not None:
        return eta, x, y, out_sst.cpu().numpy()
    return eta, x, y


# ---------------------------------------------------------------------- physics helpers
def _diff(f, spacing: float, dim: int, periodic: bool):
    """Centred first derivative along ``dim`` (periodic, or second order with one-sided
    edges); numpy arrays and torch tensors alike."""
    if isinstance(f, torch.Tensor):
        if periodic:
            return (torch.roll(f, -1, dims=dim) - torch.roll(f, 1, dims=dim)) / (2 * spacing)
        return torch.gradient(f, spacing=spacing, dim=dim, edge_order=2)[0]
    if periodic:
        return (np.roll(f, -1, axis=dim) - np.roll(f, 1, axis=dim)) / (2 * spacing)
    return np.gradient(f, spacing, axis=dim, edge_order=2)


def _laplacian(f, dx: float, dy: float, periodic: bool):
    """Laplacian over the last two axes ``(y, x)``: the five-point stencil when periodic;
    otherwise the centred first derivative applied twice (a stencil two cells wide, with
    one-sided second-order edges), which is blind to a grid-scale checkerboard."""
    if periodic:
        roll = torch.roll if isinstance(f, torch.Tensor) else np.roll
        kw = "dims" if isinstance(f, torch.Tensor) else "axis"
        fxx = (roll(f, -1, **{kw: -1}) - 2 * f + roll(f, 1, **{kw: -1})) / dx**2
        fyy = (roll(f, -1, **{kw: -2}) - 2 * f + roll(f, 1, **{kw: -2})) / dy**2
        return fxx + fyy
    return (_diff(_diff(f, dx, -1, False), dx, -1, False)
            + _diff(_diff(f, dy, -2, False), dy, -2, False))


def streamfunction_from_ssh(eta, params: QGParams = QGParams()):
    """Geostrophic streamfunction ψ = g η / f0 (m² s⁻¹) from SSH η (m)."""
    return eta * (params.g / params.f0)


def pv_from_ssh(eta, dx: float, dy: float, params: QGParams = QGParams(),
                periodic: bool = False):
    """Potential vorticity q = ∇²ψ − ψ/Ld² (s⁻¹) of gridded SSH.

    Parameters
    ----------
    eta : ndarray or tensor ``(..., y, x)``, SSH in metres.
    dx, dy : grid spacing in metres along x (last axis) and y (second-last axis).
    params : supplies f0, g and Ld.
    periodic : use periodic differences (the QG model's domain); otherwise second-order
        differences with one-sided edges.

    Returns
    -------
    Same type and shape as ``eta``.
    """
    psi = streamfunction_from_ssh(eta, params)
    return _laplacian(psi, dx, dy, periodic) - psi / params.Ld**2


def qg_residual(eta, dt: float, dx: float, dy: float, params: QGParams = QGParams(),
                periodic: bool = False):
    """Unforced, inviscid QG residual ``∂q/∂t + J(ψ, q) + β ∂ψ/∂x`` (s⁻²) of an SSH sequence.

    Parameters
    ----------
    eta : ndarray or tensor ``(time, y, x)``, SSH in metres, at least 3 time steps.
    dt : time step in seconds.
    dx, dy, params, periodic : as in :func:`pv_from_ssh`.

    Returns
    -------
    ``(time, y, x)``; the time derivative is centred (one-sided at both ends).
    """
    psi = streamfunction_from_ssh(eta, params)
    q = _laplacian(psi, dx, dy, periodic) - psi / params.Ld**2
    q_t = _diff(q, dt, 0, False)
    jac = (_diff(psi, dx, -1, periodic) * _diff(q, dy, -2, periodic)
           - _diff(psi, dy, -2, periodic) * _diff(q, dx, -1, periodic))
    return q_t + jac + params.beta * _diff(psi, dx, -1, periodic)
