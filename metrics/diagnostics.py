"""Diagnostics that pages draw, computed once by the backend and saved as ``diagnostics.nc``.

Each function returns an ``xr.Dataset`` whose variables a page draws as they are:

- :func:`mapping_diagnostics`: ``rmse_t(time)``, the spatial RMSE each step; ``psd_score``
  over (wavelength, period) when it can be computed (else the attribute
  ``psd_score_unavailable`` says why).
- :func:`metrics.physics.score_physics` (added to every run's diagnostics by
  ``backend.runner``): ``physics_residual_map(lat, lon)`` and
  ``physics_residual_map_truth(lat, lon)``, the QG PV residual's RMS over time at each point
  over the global RMS of J(ψ, q) (else the attribute ``physics_residual_unavailable``).
"""

from __future__ import annotations

import xarray as xr

from oceanlab_errors import DataError


def mapping_diagnostics(rec: xr.DataArray, ref: xr.DataArray,
                        mask: xr.DataArray | None = None) -> xr.Dataset:
    """RMSE over time and the PSD score of a reconstruction (see the module docstring)."""
    from metrics.mapping import psd_score, rmse_over_time

    rmse_t = rmse_over_time(rec, ref, mask)
    out = xr.Dataset({"rmse_t": rmse_t.rename("rmse_t").assign_attrs(
        long_name="spatial RMSE at each time", units=ref.attrs.get("units", ""))})
    try:
        score = psd_score(rec, ref, mask)
        out["psd_score"] = score.rename("psd_score")
    except DataError as exc:  # ScoreUnavailable is a DataError
        out.attrs["psd_score_unavailable"] = str(exc)
    return out
