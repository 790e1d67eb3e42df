"""Diagnostics that pages draw, computed once by the backend and saved as ``diagnostics.nc``.

Each function returns an ``xr.Dataset`` whose variables a page draws as they are:

- :func:`mapping_diagnostics`:

  - ``rmse_t(time)``, the spatial RMSE each step (plain mean over the valid points, or
    cos(latitude)-weighted when asked, see :mod:`metrics.weighting`; the dataset attribute
    ``area_weighting`` records which: ``"none"`` or ``"cos(latitude)"``);
  - ``rmse_map(lat, lon)``, the RMSE over the test period at each grid point,
    sqrt(mean over time of (rec − ref)²) over the valid times; NaN on land and wherever no
    time is valid;
  - ``psd_score(freq_time, freq_lon)``, the PSD score of :func:`metrics.mapping.psd_score`
    as a 2-D field over frequency and zonal wavenumber, i.e. over (period = 1/freq_time in
    days, wavelength = 1/freq_lon in degrees of longitude), when it can be computed (else
    the attribute ``psd_score_unavailable`` says why);
  - ``psd_x_truth(freq_lon)`` and ``psd_x_rec(freq_lon)``, the 1-D zonal wavenumber power
    spectral density of the truth and of the reconstruction, ``xrft.power_spectrum(da,
    dim="lon", detrend="constant", window="hann")`` (the settings of the PSD score, lon in
    degrees) averaged over time and latitude, positive wavenumbers only (else the attribute
    ``psd_x_unavailable`` says why). As for the PSD score, invalid points (land, gaps) are
    set to 0 in both fields before the FFT, and the average runs over the (time, lat) rows
    that hold at least one valid point, so all-land rows do not lower the level.

  ``rmse_map`` (per point) and the spectra (per latitude row, rows averaged unweighted) do
  not depend on the area weighting.

- :func:`metrics.physics.score_physics` (added to every run's diagnostics by
  ``backend.runner``): ``physics_residual_map(lat, lon)`` and
  ``physics_residual_map_truth(lat, lon)``, the QG PV residual's RMS over time at each point
  over the global RMS of J(ψ, q) (else the attribute ``physics_residual_unavailable``).
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
import xrft

from metrics.weighting import (  # noqa: F401  (the attribute's values, re-exported)
    AREA_WEIGHTING_COSLAT,
    AREA_WEIGHTING_NONE,
    resolve_area_weighting,
)
from oceanlab_errors import DataError

PSD_SCORE_DESCRIPTION = (
    "2-D PSD score over (wavelength, period): wavelength = 1/freq_lon in degrees of "
    "longitude, period = 1/freq_time in days; spectra taken jointly over (time, lon), "
    "averaged over latitude, positive frequencies only"
)


def mapping_diagnostics(rec: xr.DataArray, ref: xr.DataArray,
                        mask: xr.DataArray | None = None, *,
                        area_weighting: str | bool = False) -> xr.Dataset:
    """RMSE over time and space, the PSD score and the zonal spectra of a reconstruction.

    Parameters
    ----------
    rec, ref, mask : as for :func:`metrics.mapping.score_mapping`.
    area_weighting : ``"none"`` (or False, the default), ``"cos(latitude)"`` (or True) or
        ``"auto"`` (:func:`metrics.weighting.resolve_area_weighting`): weight ``rmse_t``'s
        spatial mean by cos(latitude). Recorded, resolved, as the dataset attribute
        ``area_weighting`` (``"none"`` or ``"cos(latitude)"``).

    Returns
    -------
    xr.Dataset : the variables of the module docstring, computed (not lazy).
    """
    from metrics.mapping import _rmse_over_time, prepare_fields, psd_score

    units = ref.attrs.get("units", "")
    weighting = resolve_area_weighting(area_weighting, ref["lat"])
    fields = prepare_fields(rec, ref, mask, area_weighting=weighting)
    rmse_t = _rmse_over_time(fields, normalised=False)
    out = xr.Dataset({"rmse_t": rmse_t.rename("rmse_t").assign_attrs(
        long_name="spatial RMSE at each time", units=units)})
    out.attrs["area_weighting"] = weighting
    out["rmse_map"] = _rmse_map(fields).assign_attrs(
        long_name="RMSE over time at each point", units=units)
    try:
        score = psd_score(rec, ref, mask)
        out["psd_score"] = score.rename("psd_score").assign_attrs(
            description=PSD_SCORE_DESCRIPTION,
            wavelength="1/freq_lon (degrees of longitude)",
            period="1/freq_time (days)")
    except DataError as exc:  # ScoreUnavailable is a DataError
        out.attrs["psd_score_unavailable"] = str(exc)
    try:
        spectra = zonal_spectra(fields)
    except DataError as exc:
        out.attrs["psd_x_unavailable"] = str(exc)
    else:
        if "freq_lon" in out.coords:
            # the same wavenumbers as psd_score's: share its coordinate exactly
            here = out["freq_lon"].values
            there = spectra["freq_lon"].values
            if here.shape == there.shape and np.allclose(here, there, rtol=1e-9, atol=0.0):
                spectra = spectra.assign_coords(freq_lon=out["freq_lon"])
            else:  # pragma: no cover - same lon grid, so same wavenumbers
                spectra = spectra.rename(freq_lon="freq_lon_x")
        for name, da in spectra.data_vars.items():
            out[name] = da
    return out


def _rmse_map(fields) -> xr.DataArray:
    """sqrt(mean over valid times of (rec − ref)²) at each (lat, lon); NaN where none."""
    sq = ((fields.rec - fields.ref) ** 2).compute()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        return np.sqrt(sq.mean("time", skipna=True)).rename("rmse_map")


def zonal_spectra(fields, min_lon: int = 8) -> xr.Dataset:
    """``psd_x_truth`` and ``psd_x_rec`` over ``freq_lon`` (see the module docstring).

    Parameters
    ----------
    fields : :class:`metrics.mapping.MappingFields` (from ``prepare_fields``).
    min_lon : fewest longitudes accepted (as the PSD score).

    Raises
    ------
    ScoreUnavailable : too few or unevenly spaced longitudes, or no valid point.
    """
    from metrics.mapping import ScoreUnavailable, _evenly_spaced

    n_lon = fields.ref.sizes["lon"]
    if n_lon < min_lon:
        raise ScoreUnavailable(
            f"the zonal PSD needs at least {min_lon} longitudes; the fields have {n_lon}")
    if not _evenly_spaced(np.asarray(fields.ref["lon"].values, dtype="float64")):
        raise ScoreUnavailable("the zonal PSD needs evenly spaced longitudes")
    rows = fields.valid.any("lon").compute()  # (time, lat) rows with a valid point
    if not bool(rows.any()):
        raise ScoreUnavailable("the zonal PSD needs a valid point: no ocean point where "
                               "both rec and ref are finite")
    kwargs = {"dim": ["lon"], "detrend": "constant", "window": "hann"}
    out = {}
    for name, field, what in (("psd_x_truth", fields.ref, "truth"),
                              ("psd_x_rec", fields.rec, "reconstruction")):
        da = field.fillna(0.0)
        if da.chunks is not None:
            da = da.chunk({"lon": -1})  # xrft transforms a dimension only in one chunk
        with warnings.catch_warnings():
            # xrft 1.0.1 calls the deprecated Dataset.drop internally.
            warnings.filterwarnings("ignore", "dropping variables using `drop`", FutureWarning)
            psd = xrft.power_spectrum(da, **kwargs)
        psd = psd.where(rows).mean(("time", "lat")).compute()
        fl = psd["freq_lon"].values
        psd = psd.sel(freq_lon=fl[fl > 0])
        psd = psd.drop_vars([c for c in psd.coords if c != "freq_lon"])
        psd["freq_lon"].attrs.update(units="cycles per degree", long_name="zonal wavenumber")
        unit = fields.units
        out[name] = psd.rename(name).assign_attrs(
            long_name=f"zonal wavenumber PSD of the {what}, mean over time and latitude",
            units=f"({unit})^2 / (cycles per degree)" if unit else "1 / (cycles per degree)")
    return xr.Dataset(out)
