"""One synthetic-data factory used by tests, benchmarks and examples.

:func:`mock_field` builds a small canonical dataset with real coordinates: a sum of
propagating Gaussian eddies (SSH-like, metres) with an optional land corner.
:func:`insert_nan` and :func:`add_noise` add gaps and noise with a seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr


def mock_field(
    n_time: int = 30,
    n_lat: int = 24,
    n_lon: int = 32,
    *,
    lat0: float = 33.0,
    lon0: float = -65.0,
    step_deg: float = 0.25,
    start: str = "2012-10-01",
    n_eddies: int = 12,
    radius_deg: float = 0.8,
    amplitude: float = 0.2,
    land: bool = False,
    seed: int = 0,
    name: str = "ssh",
) -> xr.Dataset:
    """Canonical dataset ``(time, lat, lon)`` float32 with a drifting-eddy SSH field.

    Parameters
    ----------
    n_time, n_lat, n_lon : sizes; time is daily from ``start``.
    lat0, lon0, step_deg : first cell centre and grid spacing in degrees.
    land : if True, the north-west corner (a quarter of each side) is land (NaN).
    seed : the same seed gives the same field.

    Returns
    -------
    Dataset with variable ``name`` (metres), ``mask`` (lat, lon) bool (True = ocean).
    """
    rng = np.random.default_rng(seed)
    lat = (lat0 + step_deg * np.arange(n_lat)).astype(np.float64)
    lon = (lon0 + step_deg * np.arange(n_lon)).astype(np.float64)
    time = pd.date_range(start, periods=n_time, freq="D")
    t = np.arange(n_time, dtype=np.float64)[:, None, None]
    la = lat[None, :, None]
    lo = lon[None, None, :]
    field = np.zeros((n_time, n_lat, n_lon))
    span_lon = lon[-1] - lon[0] + step_deg
    for _ in range(n_eddies):
        c_lat = rng.uniform(lat[0], lat[-1])
        c_lon0 = rng.uniform(lon[0], lon[-1])
        speed = rng.uniform(0.02, 0.08)  # degrees per day, westward
        sign = rng.choice([-1.0, 1.0])
        amp = amplitude * rng.uniform(0.4, 1.0) * sign
        c_lon = lon[0] + np.mod(c_lon0 - speed * t - lon[0], span_lon)
        r2 = ((la - c_lat) ** 2 + (lo - c_lon) ** 2) / radius_deg**2
        field += amp * np.exp(-r2)
    field = field.astype(np.float32)
    mask = np.ones((n_lat, n_lon), dtype=bool)
    if land:
        mask[n_lat - max(1, n_lat // 4):, : max(1, n_lon // 4)] = False
        field[:, ~mask] = np.nan
    ds = xr.Dataset(
        {
            name: (("time", "lat", "lon"), field, {
                "units": "m",
                "long_name": "sea surface height anomaly",
                "standard_name": "sea_surface_height_above_geoid",
            }),
            "mask": (("lat", "lon"), mask, {"long_name": "ocean mask (True = ocean)"}),
        },
        coords={
            "time": ("time", time),
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
    )
    return ds


def insert_nan(da: xr.DataArray, fraction: float, seed: int = 0) -> xr.DataArray:
    """Copy of ``da`` with a random ``fraction`` of its values set to NaN."""
    rng = np.random.default_rng(seed)
    keep = rng.random(da.shape) >= fraction
    return da.where(keep)


def add_noise(da: xr.DataArray, std: float, seed: int = 0) -> xr.DataArray:
    """Copy of ``da`` plus Gaussian noise of standard deviation ``std`` (NaN stay NaN)."""
    rng = np.random.default_rng(seed)
    return (da + rng.normal(0.0, std, da.shape).astype(da.dtype)).astype(da.dtype)
