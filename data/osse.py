"""The built-in OSSE: a Gulf Stream-sized box of QG eddies seen by four nadir altimeters.

:func:`generate_osse` mirrors the 2020a SSH-mapping data challenge (SCIENCE.md) with a
synthetic truth: the 1.5-layer quasi-geostrophic model of :mod:`data.qg` is spun up, then
one SSH snapshot per day is mapped onto the box lon −65…−55, lat 33…43 (0.1° cells), and
the truth is sampled along the ground tracks of TOPEX/Poseidon interleaved, Jason-1,
Geosat Follow-On and Envisat (:mod:`data.tracks`) with a few centimetres of noise.

Mapping of the QG domain onto the box: the box centre (60° W, 38° N) sits at the centre of
the periodic square, ``x = R cos(38°) (lon + 60°)``, ``y = R (lat − 38°)`` (angles in
radians, R = 6371 km), so 1° of longitude is 87.6 km and 1° of latitude 111.2 km everywhere
(a local tangent plane; the box spans 876 km × 1112 km, inside the 1200 km domain). The
QG field is evaluated at the cell centres by exact Fourier (band-limited) interpolation.
SSH is the model's η = f0 ψ / g, not rescaled; its domain mean is zero.

The file is CF-1.8 NetCDF, written atomically. Its global attributes tell the task code
which variables hold the truth and the observations and which periods to use; for the
default year they are the data challenge's dates (test 2012-10-22…2012-12-02, train
2013-01-02…2013-08-24, validation 2013-09-01…2013-09-30, with untouched gaps between).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time as _time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from oceanlab_errors import ConfigError
from data.qg import QGParams, resolve_device, run_qg
from data.tracks import DEFAULT_MISSIONS, EARTH_RADIUS_M, sample_along_tracks

log = logging.getLogger(__name__)

#: Cell centres of the OSSE grid (degrees).
OSSE_LON = np.round(-64.95 + 0.1 * np.arange(100), 2)
OSSE_LAT = np.round(33.05 + 0.1 * np.arange(100), 2)
#: Centre of the box, mapped onto the centre of the QG domain.
BOX_CENTRE = (-60.0, 38.0)

#: Inclusive day offsets from ``start`` of the periods of the default 365-day year
#: (start 2012-10-01): test 2012-10-22/2012-12-02, train 2013-01-02/2013-08-24,
#: val 2013-09-01/2013-09-30.
_PERIOD_OFFSETS = {"test": (21, 62), "train": (93, 327), "val": (335, 364)}
_YEAR = 365


def _periods(start: pd.Timestamp, n_days: int) -> dict[str, str]:
    """``{"test": "YYYY-MM-DD/YYYY-MM-DD", ...}``; empty when the periods do not fit.

    With ``n_days >= 365`` the data challenge's offsets are used as they are; with fewer
    days every offset is scaled by ``n_days / 365``. If any period would be empty or two
    periods would touch (no gap day between them), no period is returned and the task code
    chooses its own split.
    """
    scale = min(1.0, n_days / _YEAR)
    spans = {}
    for name, (a, b) in _PERIOD_OFFSETS.items():
        a2 = int(math.floor(a * scale))
        b2 = int(math.floor((b + 1) * scale)) - 1
        spans[name] = (a2, b2)
    ordered = [spans["test"], spans["train"], spans["val"]]
    if any(b < a for a, b in ordered) or any(
            ordered[i + 1][0] - ordered[i][1] < 2 for i in range(2)):
        return {}
    day = pd.Timedelta(days=1)
    return {name: f"{(start + a * day):%Y-%m-%d}/{(start + b * day):%Y-%m-%d}"
            for name, (a, b) in spans.items()}


def _fourier_interp(eta: np.ndarray, length: float, x: np.ndarray, y: np.ndarray,
                    device: torch.device) -> np.ndarray:
    """Evaluate periodic fields ``eta (time, n, n)`` (axes y, x; period ``length``) at the
    tensor-product points ``y (ny,)`` × ``x (nx,)`` by their Fourier series."""
    n = eta.shape[-1]
    k = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64, device=device) \
        * (2.0 * math.pi / length)
    ex = torch.exp(1j * torch.as_tensor(x, dtype=torch.float64, device=device)[:, None] * k)
    ey = torch.exp(1j * torch.as_tensor(y, dtype=torch.float64, device=device)[:, None] * k)
    out = np.empty((eta.shape[0], y.size, x.size), dtype=np.float64)
    for b0 in range(0, eta.shape[0], 64):
        h = torch.fft.fft2(torch.as_tensor(eta[b0:b0 + 64], device=device))
        val = (ey @ h @ ex.T).real / n**2
        out[b0:b0 + 64] = val.cpu().numpy()
    return out


def generate_osse(
    path: str | os.PathLike,
    seed: int = 0,
    n_days: int = 365,
    start: str = "2012-10-01",
    noise_std: float = 0.02,
    device: str | torch.device = "auto",
    params: QGParams | None = None,
) -> Path:
    """Generate the built-in OSSE and write it to ``path`` as CF-1.8 NetCDF.

    Parameters
    ----------
    path : output file; its folder is created if needed. Written to a temporary file in
        the same folder, then renamed, so a reader never sees a partial file.
    seed : seeds both the QG forcing and the observation noise. The same seed on the same
        device gives the same file contents (no time stamp is stored).
    n_days : number of daily fields (default one year).
    start : first day (ISO date); default 2012-10-01 as in the data challenge.
    noise_std : noise per along-track sample (m).
    device : "auto" (CUDA if available, else CPU), "cpu", "cuda" or a ``torch.device``.
    params : QG model parameters (default :class:`~data.qg.QGParams`); the domain must be
        at least 1112 km wide to hold the box.

    Returns
    -------
    The path written. Variables ``ssh`` (truth) and ``ssh_obs`` (binned along-track
    observations, NaN where not observed), both ``(time, lat, lon)`` float32 in metres;
    global attributes ``oceanlab_truth_var``, ``oceanlab_obs_var`` and, when they fit
    (see :func:`_periods`), ``oceanlab_test_period``, ``oceanlab_train_period`` and
    ``oceanlab_val_period`` as ``"YYYY-MM-DD/YYYY-MM-DD"`` (inclusive).
    """
    params = params or QGParams()
    if not isinstance(n_days, (int, np.integer)) or n_days < 1:
        raise ConfigError(f"n_days={n_days!r}: must be a positive integer")
    if not noise_std >= 0:
        raise ConfigError(f"noise_std={noise_std!r}: must be >= 0 (metres)")
    try:
        t0 = pd.Timestamp(start)
    except (ValueError, TypeError):
        raise ConfigError(f"start={start!r}: not a date; use ISO form such as 2012-10-01") \
            from None
    dev = resolve_device(device)
    lon_c, lat_c = BOX_CENTRE
    x = EARTH_RADIUS_M * math.cos(math.radians(lat_c)) * np.radians(OSSE_LON - lon_c)
    y = EARTH_RADIUS_M * np.radians(OSSE_LAT - lat_c)
    span = max(x[-1] - x[0], y[-1] - y[0]) + 0.1 * EARTH_RADIUS_M * math.pi / 180
    if span > params.length:
        raise ConfigError(f"QGParams.length={params.length:.0f} m: the domain must cover the "
                          f"OSSE box ({span:.0f} m)")
    tick = _time.perf_counter()
    eta, _, _ = run_qg(n_days, seed=seed, params=params, device=dev)
    ssh = _fourier_interp(eta, params.length, x + params.length / 2, y + params.length / 2,
                          dev).astype(np.float32)
    log.info("QG truth: %d days in %.1f s on %s", n_days, _time.perf_counter() - tick, dev)

    times = pd.date_range(t0, periods=n_days, freq="D")
    coords = {
        "time": ("time", times, {"standard_name": "time", "long_name": "time", "axis": "T"}),
        "lat": ("lat", OSSE_LAT.copy(), {"units": "degrees_north", "standard_name": "latitude",
                                         "long_name": "latitude", "axis": "Y"}),
        "lon": ("lon", OSSE_LON.copy(), {"units": "degrees_east", "standard_name": "longitude",
                                         "long_name": "longitude", "axis": "X"}),
    }
    truth = xr.DataArray(ssh, dims=("time", "lat", "lon"), coords=coords, name="ssh", attrs={
        "units": "m", "long_name": "sea surface height (truth)",
        "standard_name": "sea_surface_height_above_geoid",
        "comment": "1.5-layer QG model, eta = f0 psi / g, zero mean over the QG domain",
    })
    obs = sample_along_tracks(truth, noise_std=noise_std, seed=seed, missions=DEFAULT_MISSIONS)
    obs.attrs["long_name"] = "along-track altimetry, binned to the grid by day"
    obs.name = "ssh_obs"

    origin = t0.strftime("%Y-%m-%d") if t0 == t0.normalize() else t0.isoformat(sep=" ")
    attrs = {
        "Conventions": "CF-1.8",
        "title": "OceanLab built-in OSSE: Gulf Stream-sized box of quasi-geostrophic eddies "
                 "observed by four nadir altimeters",
        "source": "OceanLab data.osse.generate_osse: 1.5-layer quasi-geostrophic model "
                  "(data/qg.py, pseudo-spectral, RK4, stochastic ring forcing) sampled along "
                  "simulated ground tracks (data/tracks.py)",
        "history": f"generate_osse(seed={seed}, n_days={n_days}, start={origin!r}, "
                   f"noise_std={noise_std:g}, device={dev.type!r})",
        "references": "SSH mapping data challenge 2020a (ocean-data-challenges); "
                      "pyqg spectral filter",
        "seed": int(seed),
        "device": dev.type,
        "noise_std": float(noise_std),
        "missions": obs.attrs["missions"],
        "qg_mapping": (f"x = R cos({lat_c:g} deg) (lon - ({lon_c:g} deg)), y = R (lat - "
                       f"{lat_c:g} deg), R = {EARTH_RADIUS_M:.0f} m, box centre at the "
                       "centre of the periodic domain; exact Fourier interpolation"),
        "oceanlab_truth_var": "ssh",
        "oceanlab_obs_var": "ssh_obs",
    }
    attrs.update({f"qg_{k}": v for k, v in params.to_dict().items()})
    for name, text in _periods(t0, n_days).items():
        attrs[f"oceanlab_{name}_period"] = text
    ds = xr.Dataset({"ssh": truth, "ssh_obs": obs}, attrs=attrs)
    encoding = {
        "time": {"units": f"days since {origin}", "calendar": "standard", "dtype": "float64",
                 "_FillValue": None},
        "ssh": {"dtype": "float32", "zlib": True, "complevel": 1, "_FillValue": np.nan},
        "ssh_obs": {"dtype": "float32", "zlib": True, "complevel": 1, "_FillValue": np.nan},
        "lat": {"_FillValue": None},
        "lon": {"_FillValue": None},
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
        os.chmod(tmp, 0o644)  # mkstemp creates the file private
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("OSSE written to %s in %.1f s", out, _time.perf_counter() - tick)
    return out
