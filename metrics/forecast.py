"""Forecast scores per lead, as WeatherBench 2 and ClimateLearn define them.

Inputs are ``(time, lead_time, lat, lon)`` DataArrays: ``time`` the forecast start,
``lead_time`` the lead in time steps; every metric reduces over named dimensions, so the
per-lead curves need no special code (WeatherBench 2, ``evaluation.py``; Rasp et al. 2024,
"WeatherBench 2", JAMES 16, e2023MS004019).

Definitions (``w`` the area weights, ``o`` the truth, ``f`` the forecast, ``c`` the
climatology, sums over starts and valid ocean points of one lead):

- ``rmse_by_lead``: RMSE(h) = sqrt(Σ w (f − o)² / Σ w);
- ``skill_persistence_by_lead``: 1 − MSE_f(h) / MSE_persistence(h), persistence being the
  initial state held constant; ``skill_climatology_by_lead`` the same against ``c``
  (MSE skill score, Murphy 1988; WeatherBench 2 and GODAE OceanView Class 4 express skill
  against these two references);
- ``acc_by_lead``: anomaly correlation coefficient, the uncentred spatial correlation
  Σ w (f − c)(o − c) / sqrt(Σ w (f − c)² Σ w (o − c)²) of each start, averaged over starts
  (WeatherBench 2's ``ACC``);
- ``rmse``, ``skill_persistence``, ``skill_climatology``, ``acc``: the means over leads.

Area weights (``area_weighting``, :mod:`metrics.weighting`): cos(latitude) normalised to
mean 1 with ``"cos(latitude)"``, uniform with ``"none"``; ``"auto"`` (the default) weights
when the grid spans more than :data:`AREA_WEIGHT_SPAN_DEG` (15) degrees of latitude. The
same weights enter every sum above (RMSE, both skills, ACC, ``rmse_t``).

The climatology (:func:`day_of_year_climatology`) is a Gaussian-kernel average over the day
of the year of the training split, so it works for daily, monthly or yearly steps alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from metrics.weighting import (  # noqa: F401  (AREA_WEIGHT_SPAN_DEG re-exported)
    AREA_WEIGHT_SPAN_DEG,
    AREA_WEIGHTING_COSLAT,
    resolve_area_weighting,
)
from oceanlab_errors import DataError

DAYS_PER_YEAR = 365.2425


def day_of_year_climatology(train: xr.DataArray, times: pd.DatetimeIndex,
                            window_days: float = 15.0) -> xr.DataArray:
    """Climatology of ``train`` (time, lat, lon) evaluated at ``times``.

    ``c(τ) = Σ_i K(δ_i) x_i / Σ_i K(δ_i)`` with ``δ_i`` the circular distance in days
    between the day of the year of ``τ`` and of training step ``i``, and ``K`` a Gaussian of
    standard deviation ``window_days``; NaN values are skipped. With yearly steps every
    weight is equal (the training mean); with monthly steps the same calendar months
    dominate.
    """
    if train.sizes.get("time", 0) == 0:
        raise DataError("climatology: the training split is empty")
    t_train = pd.DatetimeIndex(train["time"].values)
    doy_train = (t_train.day_of_year - 1 + t_train.hour / 24.0).to_numpy(dtype=np.float64)
    t_out = pd.DatetimeIndex(times)
    doy_out = (t_out.day_of_year - 1 + t_out.hour / 24.0).to_numpy(dtype=np.float64)
    delta = np.abs(doy_out[:, None] - doy_train[None, :])
    delta = np.minimum(delta, DAYS_PER_YEAR - delta)
    kernel = np.exp(-0.5 * (delta / window_days) ** 2)  # (n_out, n_train)
    values = np.asarray(train.transpose("time", "lat", "lon").values, dtype=np.float64)
    finite = np.isfinite(values)
    num = np.tensordot(kernel, np.where(finite, values, 0.0), axes=(1, 0))
    den = np.tensordot(kernel, finite.astype(np.float64), axes=(1, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        clim = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return xr.DataArray(clim.astype(np.float32), dims=("time", "lat", "lon"),
                        coords={"time": t_out.values, "lat": train["lat"].values,
                                "lon": train["lon"].values},
                        name="climatology", attrs=dict(train.attrs))


def area_weights(lat: xr.DataArray, weighted: bool | str | None = None) -> xr.DataArray:
    """cos(lat) normalised to mean 1 (or ones); ``weighted`` is a bool or an
    ``area_weighting`` value; None (or ``"auto"``) decides by the span
    (:func:`metrics.weighting.resolve_area_weighting`)."""
    if resolve_area_weighting(weighted, lat) != AREA_WEIGHTING_COSLAT:
        return xr.ones_like(lat, dtype=np.float64)
    w = np.cos(np.deg2rad(lat.astype(np.float64)))
    return w / w.mean()


def _weighted_mean(x: xr.DataArray, w: xr.DataArray, dims) -> xr.DataArray:
    valid = x.notnull()
    return (x.fillna(0) * w).sum(dims) / (w * valid).sum(dims)


def score_forecast(
    forecast: xr.DataArray,
    truth: xr.DataArray,
    *,
    persistence: xr.DataArray,
    climatology: xr.DataArray,
    mask: xr.DataArray | None = None,
    weighted: bool | None = None,
    area_weighting: str | None = None,
) -> tuple[dict, xr.Dataset]:
    """Forecast scores (see the module docstring) and their per-lead diagnostics.

    Parameters
    ----------
    forecast, truth, persistence, climatology : ``(time, lead_time, lat, lon)``.
    mask : ``(lat, lon)`` bool, True = ocean; None: where all inputs are finite.
    area_weighting : ``"auto"`` (None: the default), ``"none"`` or ``"cos(latitude)"``
        (:mod:`metrics.weighting`); ``auto`` weights when the grid spans more than 15° of
        latitude.
    weighted : the same as a bool (True = cos(latitude), False = none); used when
        ``area_weighting`` is None.

    Returns
    -------
    metrics : ``rmse_by_lead``, ``skill_persistence_by_lead``, ``skill_climatology_by_lead``,
        ``acc_by_lead`` (lists indexed by lead 1…H), their means ``rmse``,
        ``skill_persistence``, ``skill_climatology``, ``acc``, and ``notes`` (why a value is
        None).
    diagnostics : Dataset over ``lead_time``: ``rmse_forecast``, ``rmse_persistence``,
        ``rmse_climatology``, ``skill_persistence``, ``skill_climatology``, ``acc``, and
        ``rmse_t(time, lead_time)``; attribute ``area_weighting`` (the resolved value,
        ``"none"`` or ``"cos(latitude)"``).
    """
    dims4 = ("time", "lead_time", "lat", "lon")
    for name, da in (("forecast", forecast), ("truth", truth), ("persistence", persistence),
                     ("climatology", climatology)):
        if set(da.dims) != set(dims4):
            raise DataError(f"forecast scores: {name} has dimensions {da.dims}, expected {dims4}")
    f, o, p, c = (da.transpose(*dims4).astype(np.float64).drop_vars("valid_time", errors="ignore")
                  for da in (forecast, truth, persistence, climatology))
    valid = f.notnull() & o.notnull() & p.notnull() & c.notnull()
    if mask is not None:
        valid = valid & mask.astype(bool)
    weighting = resolve_area_weighting(
        area_weighting if area_weighting is not None else weighted, o["lat"])
    w = area_weights(o["lat"], weighting)
    space = ("lat", "lon")
    all_pts = ("time", "lat", "lon")

    def mse(x):
        return _weighted_mean(((x - o) ** 2).where(valid), w, all_pts)

    mse_f, mse_p, mse_c = mse(f), mse(p), mse(c)
    rmse = np.sqrt(mse_f)
    with np.errstate(divide="ignore", invalid="ignore"):
        skill_p = 1 - mse_f / mse_p.where(mse_p > 0)
        skill_c = 1 - mse_f / mse_c.where(mse_c > 0)
    fa, oa = (f - c).where(valid), (o - c).where(valid)
    num = (fa * oa * w).sum(space)
    den = np.sqrt((fa**2 * w).sum(space) * (oa**2 * w).sum(space))
    acc_t = (num / den.where(den > 0))
    acc = acc_t.mean("time", skipna=True)
    rmse_t = np.sqrt(_weighted_mean(((f - o) ** 2).where(valid), w, space))

    notes: dict[str, str] = {}

    def as_list(da: xr.DataArray, key: str, why: str) -> list[float | None]:
        values = [float(v) if np.isfinite(v) else None for v in np.asarray(da.values)]
        if any(v is None for v in values):
            notes[key] = why
        return values

    out: dict = {
        "rmse_by_lead": as_list(rmse, "rmse_by_lead", "no valid point at some lead"),
        "skill_persistence_by_lead": as_list(
            skill_p, "skill_persistence_by_lead", "persistence is exact at some lead (MSE 0)"),
        "skill_climatology_by_lead": as_list(
            skill_c, "skill_climatology_by_lead", "the climatology is exact at some lead"),
        "acc_by_lead": as_list(acc, "acc_by_lead", "no anomaly at some lead (zero variance)"),
    }
    for key in ("rmse", "skill_persistence", "skill_climatology", "acc"):
        values = [v for v in out[f"{key}_by_lead"] if v is not None]
        out[key] = float(np.mean(values)) if values else None
        if out[key] is None:
            notes[key] = notes.get(f"{key}_by_lead", "no value at any lead")
    out["notes"] = notes
    diagnostics = xr.Dataset({
        "rmse_forecast": rmse, "rmse_persistence": np.sqrt(mse_p),
        "rmse_climatology": np.sqrt(mse_c), "skill_persistence": skill_p,
        "skill_climatology": skill_c, "acc": acc, "rmse_t": rmse_t,
    })
    for v in diagnostics.data_vars:
        diagnostics[v] = diagnostics[v].astype(np.float32)
    diagnostics.attrs["area_weighting"] = weighting
    return out, diagnostics
