"""Diagnostics maps and spectra of :func:`metrics.diagnostics.mapping_diagnostics`.

Values are derived by hand on constructed cases: a constant error, a white-noise error of
known variance, a single zonal sine wave, errors that differ by latitude.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from metrics.diagnostics import mapping_diagnostics
from metrics.mapping import psd_score, rmse_over_time


def _field(values: np.ndarray, lat: np.ndarray, lon: np.ndarray, units: str = "m") -> xr.DataArray:
    times = pd.date_range("2012-10-22", periods=values.shape[0], freq="D")
    return xr.DataArray(values, dims=("time", "lat", "lon"),
                        coords={"time": times, "lat": lat, "lon": lon}, attrs={"units": units})


def _mask(lat: np.ndarray, lon: np.ndarray, land: tuple[slice, slice]) -> xr.DataArray:
    m = np.ones((lat.size, lon.size), dtype=bool)
    m[land] = False
    return xr.DataArray(m, dims=("lat", "lon"), coords={"lat": lat, "lon": lon})


LAT = np.arange(33.0, 38.0, 0.5)      # 10 latitudes
LON = np.arange(-65.0, -57.0, 0.25)   # 32 longitudes, 8 degrees


def test_rmse_map_of_a_constant_error_is_that_constant_on_ocean_and_nan_on_land():
    rng = np.random.default_rng(1)
    ref = _field(rng.normal(0.0, 0.2, (12, LAT.size, LON.size)), LAT, LON)
    land = (slice(0, 3), slice(0, 6))
    mask = _mask(LAT, LON, land)
    ref = ref.where(mask)  # NaN on land, as the truth of a run
    c = 0.07
    rec = (ref + c).fillna(123.0)  # whatever rec holds on land never matters
    diag = mapping_diagnostics(rec, ref, mask)
    rmse_map = diag["rmse_map"]
    assert rmse_map.dims == ("lat", "lon")
    assert rmse_map.attrs["units"] == "m"
    ocean = mask.values
    np.testing.assert_allclose(rmse_map.values[ocean], c, rtol=1e-12)
    assert np.isnan(rmse_map.values[~ocean]).all()
    # NaN in the truth alone (no mask given) also makes land
    diag_nomask = mapping_diagnostics(rec, ref)
    assert np.isnan(diag_nomask["rmse_map"].values[~ocean]).all()
    np.testing.assert_allclose(diag_nomask["rmse_map"].values[ocean], c, rtol=1e-12)


def test_rmse_map_of_white_noise_error_is_its_standard_deviation():
    rng = np.random.default_rng(2)
    n_time, lat, lon = 2000, LAT[:4], LON[:8]
    sigma = 0.05
    ref = _field(rng.normal(0.0, 0.3, (n_time, lat.size, lon.size)), lat, lon)
    rec = ref + rng.normal(0.0, sigma, ref.shape)
    rmse_map = mapping_diagnostics(rec, ref)["rmse_map"].values
    # each point: RMS of 2000 draws, relative standard error 1/sqrt(2 n) ~ 1.6 %
    np.testing.assert_allclose(rmse_map, sigma, rtol=0.08)
    # pooled over the 32 points: the variance within 2 %
    assert np.mean(rmse_map**2) == pytest.approx(sigma**2, rel=0.02)


def test_psd_x_of_a_zonal_sine_peaks_at_its_wavenumber():
    wavelength = 2.0  # degrees; the 8-degree box holds 4 whole waves
    n_time = 6
    phase = np.linspace(0.0, 2 * np.pi, n_time, endpoint=False)[:, None, None]
    wave = np.sin(2 * np.pi * LON[None, None, :] / wavelength + phase) \
        * np.ones((1, LAT.size, 1))
    ref = _field(wave, LAT, LON)
    rec = _field(0.5 * wave, LAT, LON)
    diag = mapping_diagnostics(rec, ref)
    for name in ("psd_x_truth", "psd_x_rec"):
        psd = diag[name]
        assert psd.dims == ("freq_lon",)
        assert (psd["freq_lon"].values > 0).all()
        peak = float(psd["freq_lon"].values[int(np.argmax(psd.values))])
        assert peak == pytest.approx(1.0 / wavelength)
        assert psd.attrs["units"] == "(m)^2 / (cycles per degree)"
    # half the amplitude, a quarter of the power, at every wavenumber
    np.testing.assert_allclose(diag["psd_x_rec"].values, 0.25 * diag["psd_x_truth"].values,
                               rtol=1e-9, atol=1e-15)


def test_psd_x_rec_equals_psd_x_truth_when_the_prediction_is_the_truth():
    rng = np.random.default_rng(3)
    land = (slice(6, 10), slice(20, 32))
    mask = _mask(LAT, LON, land)
    ref = _field(rng.normal(0.0, 0.2, (10, LAT.size, LON.size)), LAT, LON).where(mask)
    diag = mapping_diagnostics(ref.copy(), ref, mask)
    np.testing.assert_array_equal(diag["psd_x_rec"].values, diag["psd_x_truth"].values)
    assert np.isfinite(diag["psd_x_truth"].values).all()
    assert (diag["psd_x_truth"].values > 0).all()


def test_existing_variables_unchanged_and_psd_score_is_the_2d_field():
    rng = np.random.default_rng(4)
    ref = _field(rng.normal(0.0, 0.2, (16, LAT.size, LON.size)), LAT, LON)
    rec = ref + rng.normal(0.0, 0.05, ref.shape)
    diag = mapping_diagnostics(rec, ref)
    xr.testing.assert_identical(
        diag["rmse_t"].drop_attrs(), rmse_over_time(rec, ref).rename("rmse_t").drop_attrs())
    score = psd_score(rec, ref)
    np.testing.assert_array_equal(diag["psd_score"].values, score.values)
    assert diag["psd_score"].dims == ("freq_time", "freq_lon")
    assert "wavelength" in diag["psd_score"].attrs["description"]
    assert diag["psd_score"].attrs["wavelength"].startswith("1/freq_lon")
    assert diag["psd_score"].attrs["period"].startswith("1/freq_time")
    # the 1-D spectra share psd_score's wavenumbers
    np.testing.assert_array_equal(diag["psd_x_truth"]["freq_lon"].values,
                                  diag["psd_score"]["freq_lon"].values)
    assert diag.attrs["area_weighting"] == "none"


def test_unavailable_spectra_say_why():
    ref = _field(np.random.default_rng(5).normal(size=(4, 3, 5)), LAT[:3], LON[:5])
    diag = mapping_diagnostics(ref + 0.1, ref)
    assert "psd_x_truth" not in diag and "psd_score" not in diag
    assert "longitudes" in diag.attrs["psd_x_unavailable"]
    np.testing.assert_allclose(diag["rmse_map"].values, 0.1, rtol=1e-9)


def test_cos_lat_weighting_matches_a_hand_computation():
    lat = np.array([0.0, 30.0, 60.0])
    lon = LON[:8]
    n_time = 3
    ref = _field(np.zeros((n_time, lat.size, lon.size)), lat, lon)
    # same error at every latitude: weighting changes nothing
    same = mapping_diagnostics(ref + 0.2, ref, area_weighting=True)
    np.testing.assert_allclose(same["rmse_t"].values, 0.2, rtol=1e-12)
    assert same.attrs["area_weighting"] == "cos(latitude)"
    # error e_j by latitude: sqrt(Σ cos(lat_j) e_j² / Σ cos(lat_j)) vs the plain mean
    e = np.array([0.1, 0.2, 0.4])
    rec = ref + xr.DataArray(e, dims="lat", coords={"lat": lat})
    weighted = mapping_diagnostics(rec, ref, area_weighting=True)
    plain = mapping_diagnostics(rec, ref)
    w = np.cos(np.deg2rad(lat))
    hand_w = np.sqrt(np.sum(w * e**2) / np.sum(w))
    hand_p = np.sqrt(np.mean(e**2))
    np.testing.assert_allclose(weighted["rmse_t"].values, hand_w, rtol=1e-12)
    np.testing.assert_allclose(plain["rmse_t"].values, hand_p, rtol=1e-12)
    assert abs(hand_w - hand_p) > 0.01
    assert plain.attrs["area_weighting"] == "none"
    # land leaves the weights too: only the points of lat 0 and half of lat 60 count
    mask = _mask(lat, lon, (slice(1, 2), slice(None)))
    mask[2, :4] = False
    masked = mapping_diagnostics(rec, ref, mask, area_weighting=True)
    hand_m = np.sqrt((8 * w[0] * e[0] ** 2 + 4 * w[2] * e[2] ** 2) / (8 * w[0] + 4 * w[2]))
    np.testing.assert_allclose(masked["rmse_t"].values, hand_m, rtol=1e-12)
    # the other diagnostics do not depend on the option
    np.testing.assert_array_equal(weighted["rmse_map"].values, plain["rmse_map"].values)


def test_dask_inputs_and_netcdf_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    mask = _mask(LAT, LON, (slice(0, 2), slice(0, 4)))
    ref = _field(rng.normal(0.0, 0.2, (16, LAT.size, LON.size)), LAT, LON).where(mask)
    rec = ref + rng.normal(0.0, 0.05, ref.shape)
    here = mapping_diagnostics(rec, ref, mask)
    lazy = mapping_diagnostics(rec.chunk({"time": 4}), ref.chunk({"time": 4}), mask)
    for name in ("rmse_map", "psd_x_truth", "psd_x_rec"):
        assert not isinstance(lazy[name].data, type(rec.chunk().data))
        np.testing.assert_allclose(lazy[name].values, here[name].values, rtol=1e-10)
    path = tmp_path / "diagnostics.nc"
    here.to_netcdf(path)
    with xr.open_dataset(path) as back:
        xr.testing.assert_allclose(back.load(), here)
        assert back.attrs["area_weighting"] == "none"
        assert back["psd_score"].attrs["period"].startswith("1/freq_time")
