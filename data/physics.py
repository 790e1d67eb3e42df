"""The quasi-geostrophic constants of a dataset, for physics-informed models and diagnostics.

The PINN's loss and the ``physics_residual`` score evaluate the 1.5-layer QG potential
vorticity equation of SCIENCE.md on SSH,

    R = ∂q/∂t + J(ψ, q) + β ∂ψ/∂x,      q = ∇²ψ − ψ / Ld²,      ψ = g η / f0,

which needs f0, β, Ld (and g) and the grid's spacing in metres. They are never hard-coded:
:func:`resolve_physics` reads them from the dataset's attributes (the built-in OSSE writes
``qg_f0``, ``qg_beta``, ``qg_Ld``, ``qg_g``; CF-style ``coriolis_parameter``, ``beta`` and
``deformation_radius`` are also read) and lets the config's ``data.physics`` section
override or supply each one. :func:`grid_spacing_m` maps a regular latitude/longitude grid
on the tangent plane at its centre, as the OSSE's box was mapped (``qg_mapping``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from data.tracks import EARTH_RADIUS_M  # the OSSE's mapping between metres and degrees

#: Attribute names read for each constant, in order of preference.
ATTRIBUTE_NAMES = {
    "f0": ("qg_f0", "coriolis_parameter", "f0"),
    "beta": ("qg_beta", "beta"),
    "Ld": ("qg_Ld", "deformation_radius", "Ld"),
    "g": ("qg_g", "gravity", "g"),
}
#: Plausible ranges (SI): outside them a value is refused as a unit mistake.
RANGES = {"f0": (1e-6, 1e-3), "beta": (0.0, 1e-10), "Ld": (1e3, 1e6), "g": (1.0, 30.0)}


@dataclass(frozen=True)
class QGPhysics:
    """The constants of the 1.5-layer QG equation (SI units) and where they came from."""

    f0: float
    beta: float
    Ld: float
    g: float = 9.81
    source: str = "config"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(value: Any) -> float | None:
    try:
        out = float(np.asarray(value).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return None
    return out if np.isfinite(out) else None


def resolve_physics(attrs: Mapping[str, Any] | None,
                    override: Mapping[str, Any] | None = None) -> tuple[QGPhysics | None, str]:
    """``(physics, note)``: the QG constants from the data's attributes and the config.

    ``override`` (the config's ``data.physics``: any of ``f0``, ``beta``, ``Ld``, ``g``)
    wins over the attributes. ``g`` defaults to 9.81 m s⁻². Returns ``(None, reason)`` when
    f0, β or Ld is missing, or a value lies outside :data:`RANGES` (a unit mistake); the
    reason is one line naming what is missing, for scores reported as null.
    """
    attrs = attrs or {}
    override = {k: v for k, v in (override or {}).items() if v is not None}
    values: dict[str, float] = {}
    sources: set[str] = set()
    for key, names in ATTRIBUTE_NAMES.items():
        if key in override:
            value = _number(override[key])
            if value is not None:
                values[key] = value
                sources.add("config")
                continue
        for name in names:
            value = _number(attrs.get(name)) if name in attrs else None
            if value is not None:
                values[key] = value
                sources.add("data attributes")
                break
    values.setdefault("g", 9.81)
    missing = [k for k in ("f0", "beta", "Ld") if k not in values]
    if missing:
        return None, (f"the data has no quasi-geostrophic constants ({', '.join(missing)} "
                      f"missing: attributes qg_f0, qg_beta, qg_Ld, or data.physics in the config)")
    for key, (lo, hi) in RANGES.items():
        if not lo <= abs(values[key]) <= hi:
            return None, (f"{key}={values[key]:g} is outside the plausible range {lo:g}…{hi:g} "
                          f"(SI units); set data.physics.{key}")
    source = " and ".join(sorted(sources)) or "defaults"
    return QGPhysics(values["f0"], values["beta"], values["Ld"], values["g"], source=source), ""


def node_positions(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` in metres of the grid's nodes on the tangent plane at the grid's centre
    (the OSSE's mapping, ``qg_mapping``): x along lon, y along lat."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    lat_c = 0.5 * (lat.min() + lat.max())
    lon_c = 0.5 * (lon.min() + lon.max())
    x = EARTH_RADIUS_M * np.cos(np.deg2rad(lat_c)) * np.deg2rad(lon - lon_c)
    y = EARTH_RADIUS_M * np.deg2rad(lat - lat_c)
    return x, y


def grid_spacing_m(lat: np.ndarray, lon: np.ndarray) -> tuple[float, float]:
    """``(dx, dy)`` in metres of a regular latitude/longitude grid, on the tangent plane at
    its central latitude (:func:`node_positions`; fine for boxes a few degrees wide).

    Raises ValueError for fewer than 2 points along an axis or an irregular axis.
    """
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    for name, axis in (("lat", lat), ("lon", lon)):
        if axis.size < 2:
            raise ValueError(f"{name} has fewer than 2 points: no grid spacing")
        step = np.diff(axis)
        if not np.allclose(step, step[0], rtol=1e-3, atol=0):
            raise ValueError(f"{name} is not regularly spaced (steps {step.min():g}…{step.max():g})")
    x, y = node_positions(lat, lon)
    return float(abs(x[1] - x[0])), float(abs(y[1] - y[0]))
