"""The built-in OSSE: QG truth (data/qg.py) and the NetCDF file (data/osse.py)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from oceanlab_errors import ConfigError
from data.osse import OSSE_LAT, OSSE_LON, _periods, generate_osse
from data.qg import QGModel, QGParams, pv_from_ssh, qg_residual, run_qg

#: A cheap model for contract tests (the statistics are checked on the default one).
SMALL = QGParams(n=64, spinup_days=3)
KM_PER_DEG_LON = 6371.0 * math.cos(math.radians(38.0)) * math.pi / 180
KM_PER_DEG_LAT = 6371.0 * math.pi / 180


def _efold(corr: np.ndarray) -> int:
    """First lag at which a correlation curve drops below 1/e."""
    below = np.flatnonzero(corr < 1 / math.e)
    return int(below[0]) if below.size else corr.size


def _decorrelation_days(ssh: np.ndarray) -> int:
    a = ssh - ssh.mean(axis=0)
    corr = [np.mean(a[: len(a) - k] * a[k:]) / np.mean(a * a) for k in range(60)]
    return _efold(np.array(corr))


def _correlation_length_km(ssh: np.ndarray) -> tuple[float, float]:
    a = ssh - ssh.mean(axis=(1, 2), keepdims=True)
    var = np.mean(a * a)
    cx = [np.mean(a[:, :, : a.shape[2] - k] * a[:, :, k:]) / var for k in range(60)]
    cy = [np.mean(a[:, : a.shape[1] - k] * a[:, k:]) / var for k in range(60)]
    return _efold(np.array(cx)) * 0.1 * KM_PER_DEG_LON, _efold(np.array(cy)) * 0.1 * KM_PER_DEG_LAT


# ---------------------------------------------------------------------- QG model
def test_run_qg_is_deterministic_per_seed():
    a, x, y = run_qg(4, seed=0, params=SMALL, device="cpu")
    b, _, _ = run_qg(4, seed=0, params=SMALL, device="cpu")
    c, _, _ = run_qg(4, seed=1, params=SMALL, device="cpu")
    assert a.shape == (4, 64, 64) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert x.shape == (64,) and x[1] - x[0] == pytest.approx(SMALL.length / 64)
    np.testing.assert_allclose(a.mean(axis=(1, 2)), 0.0, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_run_qg_on_cuda_matches_cpu():
    a, _, _ = run_qg(3, seed=0, params=SMALL, device="cpu")
    b, _, _ = run_qg(3, seed=0, params=SMALL, device="cuda")
    np.testing.assert_allclose(a, b, atol=1e-6 * np.abs(a).max())


def test_spun_up_ssh_has_tens_of_centimetres():
    eta, _, _ = run_qg(10, seed=0, params=replace(QGParams(), spinup_days=60), device="cpu")
    std = eta.std(axis=(1, 2))
    assert np.all((0.06 < std) & (std < 0.25))
    assert 0.2 < np.abs(eta).max() < 1.5


def test_linear_rossby_wave_satisfies_both_rhs_forms():
    p = replace(QGParams(), n=64, drag=0.0)
    model = QGModel(p, "cpu", seed=0)
    x, y = model.coordinates()
    k, l = 2 * math.pi / p.length * 3, 2 * math.pi / p.length * 2
    omega = -p.beta * k / (k**2 + l**2 + p.Ld**-2)
    X, Y = np.meshgrid(x, y)
    days = np.arange(3) * 0.25

    def eta_at(t):
        return 0.1 * np.cos(k * X + l * Y - omega * t * 86400)

    q = pv_from_ssh(torch.from_numpy(eta_at(0.0)), p.dx, p.dx, p, periodic=True)
    tend = torch.fft.irfft2(model.tendency(torch.fft.rfft2(q)), s=(64, 64))
    # ∂q/∂t of the wave, from ∂η/∂t = 0.1 ω sin(kx + ly − ωt)
    dqdt = pv_from_ssh(0.1 * omega * np.sin(k * X + l * Y), p.dx, p.dx, p, periodic=True)
    # the model's tendency is spectral; the 5-point Laplacian is accurate to (k dx)²
    np.testing.assert_allclose(tend.numpy(), dqdt, atol=0.03 * np.abs(dqdt).max())
    seq = np.stack([eta_at(t) for t in days])
    res = qg_residual(seq, 0.25 * 86400, p.dx, p.dx, p, periodic=True)
    scale = np.abs(p.beta * np.gradient(seq[1] * p.g / p.f0, p.dx, axis=1)).max()
    assert np.abs(res[1]).max() < 0.02 * scale


def test_bad_params_raise_config_error():
    with pytest.raises(ConfigError):
        QGParams(dt=5000.0)
    with pytest.raises(ConfigError):
        run_qg(0, params=SMALL, device="cpu")
    with pytest.raises(ConfigError):
        generate_osse("unused.nc", params=replace(SMALL, length=5e5), device="cpu")
    with pytest.raises(ConfigError):
        generate_osse("unused.nc", start="not a date", device="cpu")


# ---------------------------------------------------------------------- the file
@pytest.fixture(scope="module")
def small_osse(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("osse")
    return generate_osse(folder / "small.nc", seed=0, n_days=12, params=SMALL, device="cpu")


def test_file_is_cf_and_canonical(small_osse):
    with xr.open_dataset(small_osse) as ds:
        assert ds.attrs["Conventions"] == "CF-1.8"
        for key in ("title", "source", "history", "seed"):
            assert key in ds.attrs
        assert ds.attrs["oceanlab_truth_var"] == "ssh"
        assert ds.attrs["oceanlab_obs_var"] == "ssh_obs"
        assert ds.attrs["qg_f0"] == 9e-5 and ds.attrs["qg_Ld"] == 35e3
        for name in ("ssh", "ssh_obs"):
            assert ds[name].dims == ("time", "lat", "lon") and ds[name].dtype == np.float32
            assert ds[name].attrs["units"] == "m"
        assert ds["ssh"].attrs["standard_name"] == "sea_surface_height_above_geoid"
        assert ds["ssh"].attrs["long_name"] == "sea surface height (truth)"
        assert ds["ssh_obs"].attrs["long_name"] == \
            "along-track altimetry, binned to the grid by day"
        assert ds["lat"].attrs == {"units": "degrees_north", "standard_name": "latitude",
                                   "long_name": "latitude", "axis": "Y"}
        assert ds["lon"].attrs["units"] == "degrees_east" and ds["lon"].attrs["axis"] == "X"
        np.testing.assert_allclose(ds["lon"], OSSE_LON)
        np.testing.assert_allclose(ds["lat"], OSSE_LAT)
        assert ds["lon"].values[0] == pytest.approx(-64.95)
        assert ds["lat"].values[-1] == pytest.approx(42.95)
        assert ds["time"].encoding["units"] == "days since 2012-10-01"
        assert pd.Timestamp(ds["time"].values[0]) == pd.Timestamp("2012-10-01")
        assert np.all(np.diff(ds["time"].values) == np.timedelta64(1, "D"))
        assert np.isfinite(ds["ssh"]).all()
        frac = ds["ssh_obs"].notnull().mean(("lat", "lon")).values
        assert np.all(frac > 0) and np.all(frac < 0.2)


def test_same_seed_same_file_contents(small_osse, tmp_path):
    again = generate_osse(tmp_path / "again.nc", seed=0, n_days=12, params=SMALL, device="cpu")
    other = generate_osse(tmp_path / "other.nc", seed=1, n_days=12, params=SMALL, device="cpu")
    with xr.open_dataset(small_osse) as a, xr.open_dataset(again) as b, \
            xr.open_dataset(other) as c:
        xr.testing.assert_identical(a, b)
        assert not np.allclose(a["ssh"], c["ssh"])
    assert small_osse.read_bytes() == again.read_bytes()


def test_atomic_write_leaves_no_temporary_files(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "osse.nc"
    generate_osse(target, n_days=3, params=SMALL, device="cpu")
    assert sorted(p.name for p in target.parent.iterdir()) == ["osse.nc"]
    before = target.read_bytes()

    def broken(self, path, *args, **kwargs):
        Path(path).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken)
    with pytest.raises(OSError):
        generate_osse(target, seed=5, n_days=3, params=SMALL, device="cpu")
    assert sorted(p.name for p in target.parent.iterdir()) == ["osse.nc"]
    assert target.read_bytes() == before


def test_periods_of_the_default_year_and_shorter_runs():
    start = pd.Timestamp("2012-10-01")
    assert _periods(start, 365) == {"test": "2012-10-22/2012-12-02",
                                    "train": "2013-01-02/2013-08-24",
                                    "val": "2013-09-01/2013-09-30"}
    half = _periods(start, 182)
    spans = [tuple(pd.Timestamp(d) for d in half[k].split("/")) for k in ("test", "train", "val")]
    assert spans[0][0] >= start and spans[2][1] <= start + pd.Timedelta(days=181)
    for (a0, a1), (b0, _) in zip(spans, spans[1:]):
        assert a0 <= a1 < b0 - pd.Timedelta(days=1)  # ordered, at least one day apart
    assert _periods(start, 5) == {}


def test_short_file_omits_periods_that_do_not_fit(small_osse, tmp_path):
    path = generate_osse(tmp_path / "tiny.nc", n_days=4, params=SMALL, device="cpu")
    with xr.open_dataset(path) as ds:
        assert not any(k.endswith("_period") for k in ds.attrs)


# ---------------------------------------------------------------------- the default year
@pytest.fixture(scope="module")
def year(tmp_path_factory) -> xr.Dataset:
    path = generate_osse(tmp_path_factory.mktemp("year") / "osse.nc", device="cpu")
    with xr.open_dataset(path) as ds:
        yield ds.load()


@pytest.mark.slow
def test_year_has_the_data_challenge_calendar(year):
    assert year.sizes == {"time": 365, "lat": 100, "lon": 100}
    assert str(year["time"].values[-1])[:10] == "2013-09-30"
    assert year.attrs["oceanlab_test_period"] == "2012-10-22/2012-12-02"
    assert year.attrs["oceanlab_val_period"] == "2013-09-01/2013-09-30"
    assert year.attrs["oceanlab_train_period"] == "2013-01-02/2013-08-24"


@pytest.mark.slow
def test_year_ssh_amplitude_is_physical(year):
    ssh = year["ssh"].values
    std = ssh.std(axis=(1, 2))
    assert np.all((0.06 < std) & (std < 0.3))
    assert 0.08 < std.mean() < 0.25
    assert 0.25 < np.abs(ssh).max() < 1.5


@pytest.mark.slow
def test_year_eddy_scale(year):
    lx, ly = _correlation_length_km(year["ssh"].values)
    assert 40 < lx < 250 and 40 < ly < 250
    assert 0.6 < lx / ly < 1.6  # isotropic eddies, not zonal jets


@pytest.mark.slow
def test_year_decorrelation_time(year):
    days = _decorrelation_days(year["ssh"].values)
    assert 3 <= days <= 40


@pytest.mark.slow
def test_year_observations(year):
    obs, ssh = year["ssh_obs"].values, year["ssh"].values
    frac = np.isfinite(obs).mean(axis=(1, 2))
    assert np.all(frac > 0) and np.all(frac < 0.2)
    resid = (obs - ssh)[np.isfinite(obs)]
    # 2 cm per sample, averaged over one to a few samples per cell
    assert 0.01 < resid.std() < 0.025
    assert abs(resid.mean()) < 1e-3
    per_window = np.convolve(np.isfinite(obs).sum(axis=(1, 2)), np.ones(27), "valid")
    assert per_window.min() > 5000
