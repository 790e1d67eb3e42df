"""Surface currents derived from sea surface height: geostrophic velocity and vorticity.

Geostrophic balance on the sphere, with local Cartesian derivatives

    u = -(g / f) dη/dy,    v = (g / f) dη/dx,    f = 2 Ω sin(lat),
    dx = R cos(lat) dλ,    dy = R dφ          (λ, φ: longitude, latitude in radians),

and relative vorticity ζ = dv/dx − du/dy in the same local form (the small metric term
u tan(lat) / R of the full spherical curl is left out, as in gridded SSH evaluations).

Derivatives are centred differences in the interior and one-sided at the edges
(``xarray.DataArray.differentiate``, i.e. ``numpy.gradient`` with ``edge_order=1``).
A NaN (land, gap) makes its neighbours' derivatives NaN, so values next to the coast are
undefined rather than polluted. Near the equator f vanishes and geostrophy breaks down:
points with ``|lat| < min_abs_lat`` (5° by default) are NaN.

Input ``eta`` is a DataArray with dimensions ``lat`` and ``lon`` (degrees; any other
dimensions such as ``time`` are carried along), SSH in metres (``cm`` and ``mm`` are
converted when the ``units`` attribute says so). Outputs keep the input's dimensions.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from oceanlab_errors import DataError

GRAVITY: float = 9.81
"""Gravitational acceleration g (m s-2)."""

EARTH_ROTATION: float = 7.2921e-5
"""Earth's angular velocity Ω (rad s-1, sidereal day)."""

EARTH_RADIUS: float = 6371.0e3
"""Mean Earth radius R (m)."""

MIN_ABS_LAT: float = 5.0
"""Default latitude band (degrees) around the equator where f is too small to use."""

_METRES_PER_UNIT = {
    "m": 1.0, "metre": 1.0, "metres": 1.0, "meter": 1.0, "meters": 1.0,
    "cm": 0.01, "centimetre": 0.01, "centimetres": 0.01, "centimeter": 0.01,
    "centimeters": 0.01, "mm": 0.001, "millimetre": 0.001, "millimetres": 0.001,
    "millimeter": 0.001, "millimeters": 0.001,
}


def metres_per_unit(units: str | None) -> float:
    """Factor turning SSH in ``units`` into metres (1 when the units are absent or unknown).

    Parameters
    ----------
    units : the ``units`` attribute of an SSH field, e.g. ``"m"``, ``"cm"``, ``"mm"``.

    Returns
    -------
    float : multiply the field by it to get metres.
    """
    if not units:
        return 1.0
    return _METRES_PER_UNIT.get(str(units).strip().lower(), 1.0)


def coriolis_parameter(lat: xr.DataArray, min_abs_lat: float = MIN_ABS_LAT) -> xr.DataArray:
    """Coriolis parameter f = 2 Ω sin(lat) (s-1), NaN where ``|lat| < min_abs_lat``.

    Parameters
    ----------
    lat : latitude in degrees (a coordinate or any DataArray).
    min_abs_lat : degrees; closer to the equator f is treated as undefined.

    Returns
    -------
    DataArray like ``lat``.
    """
    f = 2.0 * EARTH_ROTATION * np.sin(np.deg2rad(lat))
    return f.where(np.abs(lat) >= min_abs_lat)


def _check_grid(eta: xr.DataArray) -> None:
    if not isinstance(eta, xr.DataArray):
        raise DataError(
            f"SSH for currents must be an xarray DataArray, got {type(eta).__name__}."
        )
    for dim in ("lat", "lon"):
        if dim not in eta.dims:
            raise DataError(
                f"SSH for currents needs a '{dim}' dimension; it has {tuple(eta.dims)}."
            )
        if eta.sizes[dim] < 2:
            raise DataError(
                f"SSH for currents needs at least 2 points along '{dim}' to take a "
                f"derivative; it has {eta.sizes[dim]}."
            )


def _spatial_derivatives(eta: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """dη/dx and dη/dy in (units of eta) per metre."""
    if eta.chunks is not None:
        # dask's gradient needs chunks of at least two points along the derivative axis.
        eta = eta.chunk({"lat": -1, "lon": -1})
    rad = np.pi / 180.0
    coslat = np.cos(np.deg2rad(eta["lat"]))
    d_dlon = eta.differentiate("lon")  # per degree of longitude
    d_dlat = eta.differentiate("lat")  # per degree of latitude
    return d_dlon / (EARTH_RADIUS * coslat * rad), d_dlat / (EARTH_RADIUS * rad)


def geostrophic_velocity(
    eta: xr.DataArray, min_abs_lat: float = MIN_ABS_LAT
) -> tuple[xr.DataArray, xr.DataArray]:
    """Geostrophic surface velocity (u, v) in m s-1 from SSH.

    Parameters
    ----------
    eta : SSH with dimensions ``lat``, ``lon`` in degrees (plus any others, e.g. ``time``);
        metres, or cm/mm as stated by its ``units`` attribute. NaN on land.
    min_abs_lat : points with ``|lat|`` below this (degrees) are NaN (f too small).

    Returns
    -------
    (u, v) : eastward and northward velocity, same dimensions as ``eta``, m s-1;
        u = -(g/f) dη/dy, v = (g/f) dη/dx. NaN on land, next to land and near the equator.

    Raises
    ------
    DataError : ``eta`` lacks ``lat``/``lon`` or has fewer than 2 points along one.
    """
    _check_grid(eta)
    eta_m = eta * metres_per_unit(eta.attrs.get("units"))
    deta_dx, deta_dy = _spatial_derivatives(eta_m)
    g_over_f = GRAVITY / coriolis_parameter(eta["lat"], min_abs_lat)
    u = (-g_over_f * deta_dy).transpose(*eta.dims)
    v = (g_over_f * deta_dx).transpose(*eta.dims)
    u = u.rename("u").assign_attrs(units="m s-1", long_name="geostrophic eastward velocity")
    v = v.rename("v").assign_attrs(units="m s-1", long_name="geostrophic northward velocity")
    return u, v


def relative_vorticity(
    eta: xr.DataArray, *, normalised: bool = True, min_abs_lat: float = MIN_ABS_LAT
) -> xr.DataArray:
    """Relative vorticity ζ = dv/dx − du/dy of the geostrophic flow of ``eta``.

    Parameters
    ----------
    eta : SSH, as for :func:`geostrophic_velocity`.
    normalised : if True (default) return ζ/f, dimensionless (a local Rossby number,
        the unit used for the vorticity score); if False return ζ in s-1.
    min_abs_lat : points with ``|lat|`` below this (degrees) are NaN.

    Returns
    -------
    DataArray with the dimensions of ``eta``. For a small eddy ζ ≈ (g/f) ∇²η.

    Raises
    ------
    DataError : as for :func:`geostrophic_velocity`.
    """
    u, v = geostrophic_velocity(eta, min_abs_lat)
    dv_dx, _ = _spatial_derivatives(v)
    _, du_dy = _spatial_derivatives(u)
    zeta = (dv_dx - du_dy).transpose(*eta.dims)
    if normalised:
        zeta = zeta / coriolis_parameter(eta["lat"], min_abs_lat)
        return zeta.rename("vorticity").assign_attrs(
            units="1", long_name="relative vorticity in units of f (zeta / f)"
        )
    return zeta.rename("vorticity").assign_attrs(units="s-1", long_name="relative vorticity")
