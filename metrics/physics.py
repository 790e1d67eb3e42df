"""Physics residual of a reconstruction: how far a gridded SSH sequence is from conserving
quasi-geostrophic potential vorticity (SCIENCE.md, "Physics for the PINN and the built-in
OSSE").

With ψ = g η / f0 and q = ∇²ψ − ψ / Ld², the residual of the unforced, inviscid 1.5-layer QG
equation is

    R = ∂q/∂t + J(ψ, q) + β ∂ψ/∂x        (s⁻²),

evaluated by :func:`data.qg.qg_residual` (the PINN's operator) with centred differences on
the data's own grid: the time step from the ``time`` coordinate (it must be regular), ``dx``
and ``dy`` from :func:`data.physics.grid_spacing_m`. The score is

    physics_residual = RMS(R) / RMS(J(ψ, q))        (dimensionless, lower is better),

both RMS over the same *valid* points: interior in time (the first and last step dropped) and
in space (:data:`EDGE` cells dropped along every side, where the differences would be
one-sided), and ocean only: a point counts only when every value its stencil reads is finite
and, with a ``mask``, ocean. J is the same operator with ∂t and β switched off, so both come
from identical stencils. A dynamically consistent field has a small ratio; a field frozen in
time has R = J + β ∂ψ/∂x (ratio ≈ 1); a field shuffled in time more than 1. The truth of the
built-in OSSE is not 0 (its forcing, drag and small-scale filter are not in R, and daily
sampling of fast advection): ``physics_residual_truth``, the same measure on the truth over
the same times, is the floor to compare with.

Forecasts ``(time, lead_time, lat, lon)`` are evaluated along ``lead_time`` for each start
(``time``): the step is that of the ``valid_time`` coordinate (or of a timedelta
``lead_time``), and the residual is pooled over starts and interior leads (at least 3 leads).

A score that cannot be computed (no QG constants, fewer than 3 steps, irregular time, no
valid interior point, J = 0 everywhere) is a :class:`metrics.mapping.Score` with value None
and a one-line reason, never an invented number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from data.physics import QGPhysics, grid_spacing_m
from metrics.mapping import Score, ScoreUnavailable

#: Cells dropped along each side of the grid: with data.qg's non-periodic differences
#: (q from first derivatives of first derivatives), R at a point reads ψ three cells away;
#: nearer the edge some of its differences are one-sided.
EDGE = 3
#: Fewest steps along the time (or lead) axis: a centred ∂q/∂t needs one on each side.
MIN_STEPS = 3
UNITS = "1"
#: Default reason when no QG constants were given (a task passes its ``physics_note``).
NO_PHYSICS = "no quasi-geostrophic constants (f0, beta, Ld) for this data"


@dataclass(frozen=True)
class PhysicsResidual:
    """The residual of one field, computed once for the score and the map.

    Attributes
    ----------
    score : ``physics_residual`` (value or None with the reason).
    map : ``(lat, lon)`` RMS over time (and starts) of R at each point divided by the global
        RMS(J): NaN where no valid point; None when the score is unavailable.
    rms_residual, rms_advection : RMS(R) and RMS(J) over the valid points (s⁻²), or None.
    n_points : number of valid (time, lat, lon) points.
    """

    score: Score
    map: xr.DataArray | None = None
    rms_residual: float | None = None
    rms_advection: float | None = None
    n_points: int = 0

    @classmethod
    def unavailable(cls, reason: str) -> PhysicsResidual:
        return cls(Score.unavailable(reason, UNITS))


# --------------------------------------------------------------------------- time step


def _seconds(values: np.ndarray) -> np.ndarray:
    """Time values as float seconds: datetime64/timedelta64, or numbers taken as days (the
    convention of :mod:`metrics.mapping`)."""
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.datetime64):
        return (values - values.reshape(-1)[0]) / np.timedelta64(1, "s")
    if np.issubdtype(values.dtype, np.timedelta64):
        return values / np.timedelta64(1, "s")
    if values.dtype.kind in "biuf":
        return values.astype("float64") * 86400.0
    raise ScoreUnavailable(f"the time coordinate holds {values.dtype} values, not times")


def regular_step(times: np.ndarray, what: str = "time") -> float:
    """The step (s) of ``times`` along its last axis, which must be regular (to 0.1 %, and
    the same for every row of a 2-D array such as a forecast's ``valid_time``).

    Raises ScoreUnavailable for an irregular, non-increasing or unreadable axis.
    """
    seconds = _seconds(times)
    steps = np.diff(seconds, axis=-1).reshape(-1)
    if steps.size == 0 or not np.all(np.isfinite(steps)):
        raise ScoreUnavailable(f"the {what} axis has no readable step")
    step = float(np.median(steps))
    if step <= 0:
        raise ScoreUnavailable(f"the {what} axis is not increasing")
    if not np.allclose(steps, step, rtol=1e-3, atol=0.0):
        raise ScoreUnavailable(
            f"the {what} steps are irregular ({_days(steps.min())} … {_days(steps.max())}); "
            f"the residual's centred ∂q/∂t needs a regular {what} axis")
    return step


def _days(seconds: float) -> str:
    return f"{seconds / 86400.0:g} days"


def _forecast_step(rec: xr.DataArray) -> float:
    if "valid_time" in rec.coords and set(rec["valid_time"].dims) == {"time", "lead_time"}:
        return regular_step(rec["valid_time"].transpose("time", "lead_time").values, "lead")
    lead = np.asarray(rec["lead_time"].values)
    if np.issubdtype(lead.dtype, np.timedelta64):
        return regular_step(lead, "lead")
    step = rec["lead_time"].attrs.get("step")
    if step is not None:  # numeric leads counted in steps of the data (data.tasks.forecast)
        try:
            seconds = pd.Timedelta(str(step)).total_seconds()
        except ValueError:
            seconds = float("nan")
        if seconds > 0:
            return regular_step(lead.astype("float64") * seconds / 86400.0, "lead")
    raise ScoreUnavailable("the forecast has no valid_time coordinate or timed lead_time: "
                           "the step between leads is unknown")


# --------------------------------------------------------------------------- residual


def _no_beta(physics) -> QGPhysics:
    return QGPhysics(float(physics.f0), 0.0, float(physics.Ld), float(physics.g))


def residual_and_advection(eta: np.ndarray, dt: float, dx: float, dy: float,
                           physics) -> tuple[np.ndarray, np.ndarray]:
    """``(R, J)`` (s⁻²) of SSH ``eta`` (m) with time on axis 0 and ``(y, x)`` the last two
    axes (other axes between, e.g. forecast starts, are carried along), NaN wherever a
    point is not valid: the first and last step, :data:`EDGE` cells along every side, and
    every point whose stencil reads a NaN (land, gaps).

    Both come from :func:`data.qg.qg_residual`; J is that operator with ∂t (``dt = ∞``) and
    β switched off, so it uses exactly R's stencils.
    """
    from data.qg import qg_residual

    eta = np.asarray(eta, dtype="float64")
    with np.errstate(invalid="ignore"):
        r = qg_residual(eta, dt, dx, dy, physics, periodic=False)
        j = qg_residual(eta, math.inf, dx, dy, _no_beta(physics), periodic=False)
    keep = np.zeros(eta.shape, dtype=bool)
    keep[(slice(1, -1),) + (slice(None),) * (eta.ndim - 3) + (slice(EDGE, -EDGE),) * 2] = True
    keep &= np.isfinite(r) & np.isfinite(j)
    return np.where(keep, r, np.nan), np.where(keep, j, np.nan)


def _ocean(rec: xr.DataArray, mask) -> xr.DataArray:
    if mask is None:
        return rec
    if isinstance(mask, xr.DataArray):
        ocean = mask.transpose("lat", "lon").values
    else:
        ocean = np.asarray(mask)
    ocean = np.asarray(ocean, dtype="float64")
    ocean = np.isfinite(ocean) & (ocean != 0)
    if ocean.shape != (rec.sizes["lat"], rec.sizes["lon"]):
        raise ScoreUnavailable(f"the mask has shape {ocean.shape}, the field (lat, lon) = "
                               f"{(rec.sizes['lat'], rec.sizes['lon'])}")
    return rec.where(xr.DataArray(ocean, dims=("lat", "lon")))


def evaluate(rec: xr.DataArray, physics, mask=None, note: str = "") -> PhysicsResidual:
    """The residual score and map of ``rec`` (see the module docstring).

    Parameters
    ----------
    rec : SSH (m), ``(time, lat, lon)`` or a forecast ``(time, lead_time, lat, lon)``; NaN on
        land; lat/lon in degrees on a regular grid.
    physics : QG constants (:class:`data.physics.QGPhysics` or anything with ``f0``,
        ``beta``, ``Ld``, ``g``), or None: then the score is unavailable with ``note``.
    mask : ``(lat, lon)`` True (or non-zero) = ocean; None: every finite point may count.
    note : the reason given when ``physics`` is None (a task's ``physics_note``).

    Returns
    -------
    :class:`PhysicsResidual`; never raises for data the score cannot use.
    """
    if physics is None:
        return PhysicsResidual.unavailable(note or NO_PHYSICS)
    forecast = "lead_time" in rec.dims
    dims = ("time", "lead_time", "lat", "lon") if forecast else ("time", "lat", "lon")
    if set(rec.dims) != set(dims):
        return PhysicsResidual.unavailable(
            f"the field has dimensions {tuple(map(str, rec.dims))}, not {dims}")
    rec = rec.transpose(*dims)
    axis, word = ("lead_time", "lead") if forecast else ("time", "time step")
    n = rec.sizes[axis]
    if n < MIN_STEPS:
        return PhysicsResidual.unavailable(
            f"only {n} {word}{'s' if n != 1 else ''}; the residual's centred ∂q/∂t needs at "
            f"least {MIN_STEPS}")
    try:
        dt = _forecast_step(rec) if forecast else regular_step(rec["time"].values)
        dx, dy = grid_spacing_m(rec["lat"].values, rec["lon"].values)
        eta = np.asarray(_ocean(rec, mask).values, dtype="float64")
    except (ScoreUnavailable, ValueError) as exc:
        return PhysicsResidual.unavailable(str(exc))
    if forecast:  # leads first: the operator differentiates along axis 0
        eta = np.moveaxis(eta, 1, 0)
    r, j = residual_and_advection(eta, dt, dx, dy, physics)
    valid = np.isfinite(r)
    count = int(valid.sum())
    if count == 0:
        return PhysicsResidual.unavailable(
            f"no valid interior point (the residual needs every point of its stencil finite "
            f"and ocean, {EDGE} cells from the edges and one step from the first and last)")
    rms_r = float(np.sqrt(np.mean(r[valid] ** 2)))
    rms_j = float(np.sqrt(np.mean(j[valid] ** 2)))
    if not rms_j > 0:
        return PhysicsResidual(Score.unavailable(
            "J(ψ, q) is zero at every valid point (no advection): the ratio is undefined",
            UNITS), rms_residual=rms_r, rms_advection=rms_j, n_points=count)
    flat = r.reshape(-1, *r.shape[-2:])  # every (start,) time step, lat, lon
    per_point = np.isfinite(flat).sum(axis=0)
    sum_sq = np.where(np.isfinite(flat), flat, 0.0) ** 2
    rms_map = np.where(per_point > 0, np.sqrt(sum_sq.sum(axis=0) / np.maximum(per_point, 1)),
                       np.nan)
    residual_map = xr.DataArray(
        (rms_map / rms_j).astype("float32"), dims=("lat", "lon"),
        coords={"lat": rec["lat"].values, "lon": rec["lon"].values},
        name="physics_residual_map",
        attrs={"long_name": "RMS over time of the QG PV residual / global RMS of J(psi, q)",
               "units": "1", "rms_advection_s-2": rms_j,
               "physics_residual": rms_r / rms_j})
    return PhysicsResidual(Score(rms_r / rms_j, UNITS), residual_map, rms_r, rms_j, count)


def physics_residual(rec: xr.DataArray, physics, mask=None, note: str = "") -> Score:
    """``RMS(R) / RMS(J(ψ, q))`` of ``rec`` as a :class:`Score` (see :func:`evaluate`)."""
    return evaluate(rec, physics, mask, note).score


def physics_residual_map(rec: xr.DataArray, physics, mask=None, note: str = "") -> xr.DataArray:
    """``(lat, lon)``: RMS over time of R at each point / global RMS(J) (see
    :func:`evaluate`). Raises ScoreUnavailable with the reason when it cannot be computed."""
    out = evaluate(rec, physics, mask, note)
    if out.map is None:
        raise ScoreUnavailable(out.score.reason or "the physics residual is unavailable")
    return out.map


def score_physics(rec: xr.DataArray, truth: xr.DataArray | None, physics, mask=None,
                  note: str = "") -> tuple[dict, xr.Dataset]:
    """``physics_residual`` of ``rec`` and ``physics_residual_truth`` of ``truth`` (the
    floor, same times and points), as ``metrics.json`` entries, and the diagnostics.

    Returns
    -------
    scores : ``{"physics_residual": float | None, "physics_residual_truth": float | None,
        "notes": {key: reason}}`` (notes only for None values).
    diagnostics : Dataset with ``physics_residual_map(lat, lon)`` when it was computed (and
        ``physics_residual_map_truth``), else the attribute ``physics_residual_unavailable``.
    """
    ours = evaluate(rec, physics, mask, note)
    floor = (evaluate(truth, physics, mask, note) if truth is not None
             else PhysicsResidual.unavailable("no truth to compare with"))
    scores: dict = {}
    notes: dict[str, str] = {}
    for key, result in (("physics_residual", ours), ("physics_residual_truth", floor)):
        scores[key] = result.score.value
        if result.score.value is None:
            notes[key] = result.score.reason or "not computable"
    scores["notes"] = notes
    diagnostics = xr.Dataset()
    if ours.map is not None:
        diagnostics["physics_residual_map"] = ours.map
    else:
        diagnostics.attrs["physics_residual_unavailable"] = notes["physics_residual"]
    if floor.map is not None:
        diagnostics["physics_residual_map_truth"] = floor.map.rename(
            "physics_residual_map_truth").assign_attrs(
            long_name="the same for the truth (the floor)")
    return scores, diagnostics


__all__ = ["EDGE", "MIN_STEPS", "PhysicsResidual", "evaluate", "physics_residual",
           "physics_residual_map", "regular_step", "residual_and_advection", "score_physics"]
