"""What a map shows of an SSH field: the SSH itself, the geostrophic speed, or the relative
vorticity ζ/f: the fields oceanographers read eddies from, and the ones the current scores
(``rmse_u``, ``rmse_v``, ``rmse_vorticity``) use.

The derived fields come from :mod:`metrics.currents` (geostrophy on the sphere, centred
differences, NaN next to land and within 5° of the equator), so a map and its score agree.
They are only offered for SSH-like fields (a length unit, or an SSH name): the speed of a
temperature field means nothing. Colour scales: the SSH and ζ/f are diverging (cmocean
``balance`` and ``curl``, symmetric about 0), the speed sequential (cmocean ``speed``,
from 0). The limits of a derived field are the 99.5th percentile of its magnitude, so that a
few extreme values next to the coast do not wash out the eddies.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from metrics.currents import _METRES_PER_UNIT, geostrophic_velocity, relative_vorticity

with warnings.catch_warnings():  # cmocean 4.0 trips a matplotlib deprecation on import
    warnings.simplefilter("ignore")
    import cmocean

#: The views, in the order the switch lists them.
VIEWS: tuple[str, ...] = ("ssh", "speed", "vorticity")
#: Label of each view on the switch.
VIEW_LABELS: dict[str, str] = {"ssh": "SSH", "speed": "Geostrophic speed",
                               "vorticity": "Relative vorticity ζ/f"}
#: Percentile of |values| that bounds the colour scale of a derived field.
ROBUST_PERCENTILE = 99.5
_SSH_NAMES = ("ssh", "sla", "adt", "zos", "sea_surface_height", "sea surface height",
              "eta", "mdt")


def is_ssh(da: xr.DataArray) -> bool:
    """Whether ``da`` is a sea-surface-height-like field on a lat/lon grid, so that currents
    can be derived from it: a length unit (m, cm, mm) or an SSH name or standard name."""
    if "lat" not in da.dims or "lon" not in da.dims:
        return False
    if da.sizes["lat"] < 3 or da.sizes["lon"] < 3:
        return False
    units = str(da.attrs.get("units", "")).strip().lower()
    if units in _METRES_PER_UNIT:
        return True
    words = " ".join(str(v) for v in (da.name, da.attrs.get("standard_name"),
                                      da.attrs.get("long_name")) if v).lower()
    return any(name in words for name in _SSH_NAMES)


def available(da: xr.DataArray) -> tuple[str, ...]:
    """The views of ``da``: every view for an SSH field, only ``ssh`` (the field as it is)
    otherwise."""
    return VIEWS if is_ssh(da) else ("ssh",)


def derive(da: xr.DataArray, view: str) -> xr.DataArray:
    """``da`` as ``view`` shows it: itself (``ssh``), the geostrophic speed |u| in m s-1
    (``speed``) or ζ/f (``vorticity``, dimensionless); the dimensions of ``da``."""
    if view == "ssh":
        return da
    if view == "speed":
        u, v = geostrophic_velocity(da)
        speed = np.hypot(u, v)
        return speed.rename("speed").assign_attrs(units="m s-1",
                                                  long_name="geostrophic speed")
    if view == "vorticity":
        return relative_vorticity(da)
    raise ValueError(f"unknown map view {view!r}: one of {', '.join(VIEWS)}")


def cmap(view: str):
    """The colour map of ``view``."""
    return {"speed": cmocean.cm.speed, "vorticity": cmocean.cm.curl}.get(view,
                                                                        cmocean.cm.balance)


def limits(view: str, *arrays) -> tuple[float, float]:
    """Colour limits of ``view`` over ``arrays``: exact and symmetric for the SSH (as
    :func:`app.figures.shared_limits`), ``(0, p)`` for the speed and ``(-p, p)`` for ζ/f
    and residuals of derived fields, ``p`` the :data:`ROBUST_PERCENTILE` of |values|."""
    from app.figures import shared_limits

    if view == "ssh":
        return shared_limits(*arrays)
    values = [np.abs(np.asarray(getattr(a, "values", a), "float64")).ravel()
              for a in arrays if a is not None]
    values = np.concatenate(values) if values else np.zeros(0)
    values = values[np.isfinite(values)]
    p = float(np.percentile(values, ROBUST_PERCENTILE)) if values.size else 0.0
    p = p if p > 0 else (float(values.max()) if values.size and values.max() > 0 else 1.0)
    return (0.0, p) if view == "speed" else (-p, p)


def residual_limits(view: str, *arrays) -> tuple[float, float]:
    """Symmetric limits of residuals (differences) of ``view``."""
    from app.figures import shared_limits

    if view == "ssh":
        return shared_limits(*arrays)
    return limits("vorticity", *arrays)  # symmetric, robust


def quantity(view: str, da: xr.DataArray, units: str = "") -> str:
    """The colour-bar label of ``view`` of ``da``: the variable and its unit, e.g.
    ``ssh (m)``, ``geostrophic speed (m/s)``, ``ζ/f``."""
    if view == "speed":
        return "geostrophic speed (m/s)"
    if view == "vorticity":
        return "relative vorticity ζ/f"
    name = str(da.attrs.get("long_name") or da.name or "field")
    if name == "truth":
        name = str(da.attrs.get("standard_name") or "field").replace("_", " ")
    return f"{name} ({units})" if units and units != "1" else name
