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
from data.osse import (OSSE_LAT, OSSE_LON, OSSE_VERSION, _cloud_mask, _periods, generate_osse,
                       osse_statistics)
from data.qg import QGModel, QGParams, pv_from_ssh, qg_residual, run_qg
from data.tasks.interpolation import DEFAULT_WINDOW

#: A cheap model for contract tests (the statistics are checked on the default one).
SMALL = QGParams(n=64, spinup_days=3)


# ---------------------------------------------------------------------- QG model
def test_run_qg_is_deterministic_per_seed():
    a, x, y = run_qg(4, seed=0, params=SMALL, device="cpu")
    b, _, _ = run_qg(4, seed=0, params=SMALL, device="cpu")
    c, _, _ = run_qg(4, seed=1, params=SMALL, device="cpu")
    assert a.shape == (4, 64, 64) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert x.shape == (64,) and x[1] - x[0] == pytest.approx(SMALL.length / 64)
    # the jet's SSH profile has (almost) no domain mean, and the eddies none
    assert np.abs(a.mean(axis=(1, 2))).max() < 2e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_run_qg_on_cuda_matches_cpu():
    a, _, _ = run_qg(3, seed=0, params=SMALL, device="cpu")
    b, _, _ = run_qg(3, seed=0, params=SMALL, device="cuda")
    np.testing.assert_allclose(a, b, atol=1e-6 * np.abs(a).max())


def test_forced_jet_without_eddies_is_a_steady_state():
    # no eddy forcing: the jet (and the SST front along it) must stay exactly as forced
    # (on the default grid: the spectral filter barely touches the jet's profile there)
    p = replace(QGParams(), forcing_epsilon=0.0, spinup_days=0, precision="float64")
    model = QGModel(p, "cpu", seed=0, sst=True)
    _, y = model.coordinates()
    eta0 = model.ssh().numpy()
    expected = p.jet_drop * p.jet_shape(y)[:, None] * np.ones((1, p.n))
    # the initial state is the jet (up to its spectral representation on this grid)
    np.testing.assert_allclose(eta0 - eta0.mean(), expected - expected.mean(), atol=2e-3)
    sst0 = model.sst().numpy()
    for _ in range(3):
        model.step_day()
    np.testing.assert_allclose(model.ssh().numpy(), eta0, atol=1e-4 * p.jet_drop)
    np.testing.assert_allclose(model.sst().numpy(), sst0, atol=1e-4 * p.sst_drop)
    # warm and high to the south of the eastward jet at y = L/4, as across the Gulf Stream
    south, north = int(0.15 * p.n), int(0.35 * p.n)
    assert eta0[south].mean() - eta0[north].mean() == pytest.approx(p.jet_drop, rel=0.01)
    assert sst0[south].mean() - sst0[north].mean() == pytest.approx(p.sst_drop, rel=0.01)


def test_sst_is_a_bounded_tracer_of_the_flow():
    p = replace(QGParams(), n=64, spinup_days=20)
    eta, _, _, sst = run_qg(10, seed=0, params=p, device="cpu", sst=True)
    lo, hi = p.sst_mean - p.sst_drop / 2, p.sst_mean + p.sst_drop / 2
    # advection and relaxation towards T* keep it near T*'s range: only the spectral
    # scheme's Gibbs overshoots at sharpened fronts go beyond (a fraction of the drop)
    margin = 0.25 * p.sst_drop
    assert lo - margin < sst.min() and sst.max() < hi + margin
    small = 0.05 * p.sst_drop
    assert np.mean((sst < lo - small) | (sst > hi + small)) < 0.05
    # stirred: SST anomalies follow SSH anomalies (warm eddies are high)
    a = (eta - eta.mean(0)).ravel()
    b = (sst - sst.mean(0)).ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.3


def test_float32_and_float64_models_agree_over_a_day():
    p32 = replace(QGParams(), n=64, spinup_days=0)
    p64 = replace(p32, precision="float64")
    a = QGModel(p32, "cpu", seed=3)
    b = QGModel(p64, "cpu", seed=3)
    assert a.qh.dtype == torch.complex64 and b.qh.dtype == torch.complex128
    a.step_day()
    b.step_day()
    diff = (a.ssh().double() - b.ssh()).abs().max()
    assert float(diff) < 1e-4 * float(b.ssh().abs().max())


def test_linear_rossby_wave_satisfies_both_rhs_forms():
    p = replace(QGParams(), n=64, drag=0.0, precision="float64")
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
        QGParams(precision="float16")
    with pytest.raises(ConfigError):
        QGParams(jet_drop=-1.0)
    with pytest.raises(ConfigError):
        run_qg(0, params=SMALL, device="cpu")
    with pytest.raises(ConfigError):
        generate_osse("unused.nc", cloud_cover=1.5, device="cpu")
    with pytest.raises(ConfigError):
        generate_osse("unused.nc", swot_noise_std=-0.1, device="cpu")
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
        assert ds.attrs["oceanlab_osse_version"] == OSSE_VERSION
        assert ds.attrs["oceanlab_aux_vars"] == "sst"
        assert ds["sst"].attrs["units"] == "degC" and bool(ds["sst"].notnull().all())
        assert ds["ssh_obs_swot"].attrs["units"] == "m"
        # the swath sees wider strips than the nadirs, never the truth itself
        assert float(ds["ssh_obs_swot"].notnull().mean()) > float(ds["ssh_obs"].notnull().mean())


def test_cloud_gaps_cover_the_asked_fraction(tmp_path):
    mask = _cloud_mask((40, 50, 60), 0.3, seed=2)
    assert mask.mean() == pytest.approx(0.3, abs=0.01)
    daily = mask.mean(axis=(1, 2))
    assert daily.std() > 0.01  # clouds come and go
    # clouds are patches, not salt and pepper: most neighbours of a cloudy cell are cloudy
    assert (mask[:, 1:] & mask[:, :-1]).sum() / mask[:, 1:].sum() > 0.8
    np.testing.assert_array_equal(mask, _cloud_mask((40, 50, 60), 0.3, seed=2))
    assert not _cloud_mask((3, 5, 5), 0.0, seed=0).any()
    path = generate_osse(tmp_path / "cloudy.nc", n_days=6, params=SMALL, device="cpu",
                         cloud_cover=0.4, swot=False)
    with xr.open_dataset(path) as ds:
        assert "ssh_obs_swot" not in ds
        assert float(ds["sst"].isnull().mean()) == pytest.approx(0.4, abs=0.02)


def test_noise_free_observations_are_the_truth_along_the_tracks(tmp_path):
    path = generate_osse(tmp_path / "exact.nc", n_days=6, params=SMALL, device="cpu",
                         noise_std=0.0, swot_noise_std=0.0, sst=False)
    with xr.open_dataset(path) as ds:
        assert "sst" not in ds
        truth = ds["ssh"].values
        # each sample is a bilinear (convex) combination of the four grid values around it,
        # all within the cell and its neighbours: the cell mean of noise-free samples lies
        # within the range of those nine values
        pad = np.pad(truth, ((0, 0), (1, 1), (1, 1)), mode="edge")
        shifts = [pad[:, 1 + di:101 + di, 1 + dj:101 + dj] for di in (-1, 0, 1) for dj in (-1, 0, 1)]
        lo, hi = np.min(shifts, axis=0), np.max(shifts, axis=0)
        for name in ("ssh_obs", "ssh_obs_swot"):
            obs = ds[name].values
            seen = np.isfinite(obs)
            assert seen.any()
            assert np.all(obs[seen] >= lo[seen] - 1e-6) and np.all(obs[seen] <= hi[seen] + 1e-6)
            assert np.sqrt(np.mean((obs - truth)[seen] ** 2)) < 0.01


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
                                    "train": "2013-01-02/2013-07-27",
                                    "val": "2013-08-27/2013-09-30"}
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


@pytest.fixture(scope="module")
def year_stats(year) -> dict:
    return osse_statistics(year["ssh"])


@pytest.mark.slow
def test_year_has_the_data_challenge_calendar(year):
    assert year.sizes == {"time": 365, "lat": 100, "lon": 100}
    assert str(year["time"].values[-1])[:10] == "2013-09-30"
    assert year.attrs["oceanlab_test_period"] == "2012-10-22/2012-12-02"
    assert year.attrs["oceanlab_val_period"] == "2013-08-27/2013-09-30"
    assert year.attrs["oceanlab_train_period"] == "2013-01-02/2013-07-27"


@pytest.mark.slow
def test_year_meets_the_gulf_stream_targets(year_stats):
    # SCIENCE.md, "What the built-in OSSE must look like"
    s = year_stats
    assert 0.8 <= s["front_drop_m"] <= 1.5
    assert 0.10 <= s["eddy_std_m"] <= 0.30
    assert -5.5 <= s["spectral_slope"] <= -3.5
    assert 5 <= s["decorrelation_days"] <= 25


@pytest.mark.slow
def test_year_front_is_zonal_with_high_ssh_to_the_south(year):
    mean = year["ssh"].mean("time")
    south, north = mean.sel(lat=slice(33, 35)).mean(), mean.sel(lat=slice(41, 43)).mean()
    assert float(south - north) > 0.7
    sst = year["sst"].mean("time")
    assert float(sst.sel(lat=slice(33, 35)).mean() - sst.sel(lat=slice(41, 43)).mean()) > 4


@pytest.mark.slow
def test_periods_are_separated_by_more_than_the_decorrelation_time(year, year_stats):
    spans = {k: [pd.Timestamp(d) for d in year.attrs[f"oceanlab_{k}_period"].split("/")]
             for k in ("test", "train", "val")}
    need = year_stats["decorrelation_days"] + DEFAULT_WINDOW // 2
    assert (spans["train"][0] - spans["test"][1]).days - 1 >= need
    assert (spans["val"][0] - spans["train"][1]).days - 1 >= need


def test_box_is_an_interior_window_of_the_periodic_domain():
    p = QGParams()
    km = 6371.0 * math.pi / 180
    width = (OSSE_LON[-1] - OSSE_LON[0] + 0.1) * km * math.cos(math.radians(38.0)) * 1e3
    height = (OSSE_LAT[-1] - OSSE_LAT[0] + 0.1) * km * 1e3
    # the edges are far apart through the wrap (more than four eddy radii)
    assert p.length - width > 400e3 and p.length - height > 400e3
    # the westward return jet (3L/4) lies outside the box centred on the eastward one (L/4)
    y1, y2 = p.jet_latitudes
    assert (y2 - y1) - height / 2 > 4 * p.jet_width


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
    swot = year["ssh_obs_swot"].values
    assert np.isfinite(swot).mean() > 2 * np.isfinite(obs).mean()
    # one 21-day repeat cycle of the swath sees nearly the whole box
    cycles = np.isfinite(swot[:21 * 17]).reshape(17, 21, 100, 100).any(axis=1)
    assert cycles.mean(axis=(1, 2)).min() > 0.95
