"""Mapping scores and derived currents against values derived by hand.

Every field test runs on numpy- and dask-backed inputs (STYLE #11).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from oceanlab_errors import DataError
from data.synthetic import add_noise, mock_field
from metrics import currents
from metrics.currents import geostrophic_velocity, relative_vorticity
from metrics.mapping import (
    KM_PER_DEGREE,
    MAPPING_METRICS,
    SCORE_KEYS,
    MuRMSE,
    ResolvedScales,
    Score,
    ScoreUnavailable,
    SigmaRMSE,
    psd_score,
    psd_score_contour,
    resolved_scales,
    rmse_over_time,
    score_mapping,
)

G, OMEGA, R = currents.GRAVITY, currents.EARTH_ROTATION, currents.EARTH_RADIUS
DEG = np.pi / 180.0


@pytest.fixture(params=["numpy", "dask"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def on(da: xr.DataArray, backend: str) -> xr.DataArray:
    """``da`` in memory, or dask-chunked in several pieces along every dimension."""
    if backend == "numpy":
        return da
    return da.chunk({d: max(1, (n + 2) // 3) for d, n in da.sizes.items()})


def field(**kwargs) -> tuple[xr.DataArray, xr.DataArray]:
    """(ssh as float64, mask) from the synthetic factory."""
    ds = mock_field(**kwargs)
    return ds["ssh"].astype("float64").assign_attrs(ds["ssh"].attrs), ds["mask"]


def grid(values: np.ndarray, lat: np.ndarray, lon: np.ndarray, units: str = "m") -> xr.DataArray:
    time = pd.date_range("2012-10-22", periods=values.shape[0], freq="D")
    return xr.DataArray(
        values, dims=("time", "lat", "lon"),
        coords={"time": time, "lat": lat, "lon": lon}, attrs={"units": units},
    )


def assert_same_scores(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in SCORE_KEYS:
        if a[key] is None or b[key] is None:
            assert a[key] is None and b[key] is None, key
        else:
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), key
    assert a["notes"] == b["notes"]


# ----------------------------------------------------------------------------- RMSE family


def test_constant_offset_gives_rmse_c_and_mu_closed_form(backend: str) -> None:
    ref, _ = field()
    c = 0.03
    scores = score_mapping(on(ref + c, backend), on(ref, backend))
    rms_ref = np.sqrt(np.mean(ref.values**2))
    assert scores["rmse"] == pytest.approx(c, rel=1e-12)
    assert scores["mu"] == pytest.approx(1.0 - c / rms_ref, rel=1e-12)
    assert MuRMSE().compute(on(ref + c, backend), ref)["mu"].value == scores["mu"]


def test_sigma_has_the_closed_form_of_alternating_errors(backend: str) -> None:
    # ref = ±a checkerboard, so RMS(ref(t)) = a; rec = ref + c(t) with c(t) = c0 ± d,
    # so RMSE(t) = c(t), RMSE_S(t) = 1 - c(t)/a and σ = std(c)/a = d/a (ddof=0).
    n_time, a, c0, d = 10, 0.4, 0.05, 0.02
    lat, lon = 30.0 + 0.5 * np.arange(6), -60.0 + 0.5 * np.arange(8)
    checker = np.where((np.arange(6)[:, None] + np.arange(8)[None, :]) % 2 == 0, a, -a)
    ref = grid(np.broadcast_to(checker, (n_time, 6, 8)).copy(), lat, lon)
    c = c0 + d * (-1.0) ** np.arange(n_time)
    rec = ref + c[:, None, None]
    expected_t = xr.DataArray(c, dims="time", coords={"time": ref["time"]})

    xr.testing.assert_allclose(
        rmse_over_time(on(rec, backend), on(ref, backend)), expected_t
    )
    xr.testing.assert_allclose(
        rmse_over_time(on(rec, backend), on(ref, backend), normalised=True), 1.0 - expected_t / a
    )
    sigma = SigmaRMSE().compute(on(rec, backend), on(ref, backend))["sigma"]
    assert sigma.value == pytest.approx(d / a, rel=1e-12)
    assert score_mapping(on(rec, backend), on(ref, backend))["sigma"] == pytest.approx(d / a)


def test_land_garbage_is_ignored_where_the_mask_says_land(backend: str) -> None:
    ref, mask = field(land=True)
    rec = add_noise(ref, 0.02, seed=1)
    clean = score_mapping(on(rec, backend), on(ref, backend), mask)
    garbage = score_mapping(on(rec.where(mask, 1.0e3), backend), on(ref, backend), mask)
    assert_same_scores(garbage, clean)
    ocean = np.broadcast_to(mask.values, ref.shape)
    expected = np.sqrt(np.mean((rec.values - ref.values)[ocean] ** 2))
    assert clean["rmse"] == pytest.approx(expected, rel=1e-12)


def test_mask_excludes_finite_points_declared_land(backend: str) -> None:
    # The data have no NaN; the mask alone declares a strip land, and rec is wild there.
    ref, _ = field(seed=3)
    rec = add_noise(ref, 0.01, seed=2)
    mask = xr.ones_like(ref.isel(time=0), dtype=bool)
    mask[:, :5] = False
    wild = rec.where(mask, -50.0)
    a = score_mapping(on(wild, backend), on(ref, backend), mask)
    b = score_mapping(on(rec, backend), on(ref, backend), mask.values)
    assert_same_scores(a, b)
    assert a["rmse"] == pytest.approx(
        np.sqrt(np.mean((rec.values - ref.values)[:, :, 5:] ** 2)), rel=1e-12
    )


def test_score_mapping_returns_exactly_the_documented_json_keys(backend: str) -> None:
    ref, mask = field(land=True, n_time=20)
    rec = add_noise(ref, 0.02, seed=4)
    scores = score_mapping(on(rec, backend), on(ref, backend), mask)
    assert list(scores) == [*SCORE_KEYS, "notes"]
    assert all(scores[k] is None or isinstance(scores[k], float) for k in SCORE_KEYS)
    assert set(scores["notes"]) == {k for k in SCORE_KEYS if scores[k] is None}
    json.dumps(scores)
    for key in ("rmse", "mu", "sigma", "rmse_u", "rmse_v", "rmse_vorticity"):
        assert scores[key] is not None and np.isfinite(scores[key]), key


def test_zero_reference_gives_none_with_reasons_not_errors() -> None:
    lat, lon = 30.0 + 0.25 * np.arange(8), -60.0 + 0.25 * np.arange(10)
    ref = grid(np.zeros((12, 8, 10)), lat, lon)
    scores = score_mapping(ref + 0.1, ref)
    assert scores["rmse"] == pytest.approx(0.1)
    for key in ("mu", "sigma", "lambda_x_deg", "lambda_t_days"):
        assert scores[key] is None
        assert scores["notes"][key]
    assert "RMS(ref)" in scores["notes"]["mu"]


def test_no_valid_point_gives_every_score_none() -> None:
    ref, _ = field(n_time=10)
    mask = np.zeros((ref.sizes["lat"], ref.sizes["lon"]), dtype=bool)
    scores = score_mapping(ref + 1.0, ref, mask)
    assert all(scores[k] is None for k in SCORE_KEYS)
    assert set(scores["notes"]) == set(SCORE_KEYS)


def test_bad_inputs_raise_data_error() -> None:
    ref, mask = field(n_time=6)
    with pytest.raises(DataError, match="dimensions"):
        score_mapping(ref.isel(time=0), ref.isel(time=0))
    with pytest.raises(DataError, match="shape"):
        score_mapping(ref.isel(lon=slice(1, None)), ref)
    with pytest.raises(DataError, match="Dataset"):
        score_mapping(ref.to_dataset(), ref)
    with pytest.raises(DataError, match="mask"):
        score_mapping(ref, ref, mask.isel(lat=slice(1, None)))
    with pytest.raises(DataError, match="'lon' coordinates"):
        score_mapping(ref.assign_coords(lon=ref["lon"] + 1.0), ref)


def test_dimension_order_does_not_matter() -> None:
    ref, mask = field(n_time=12)
    rec = add_noise(ref, 0.02, seed=5)
    assert_same_scores(
        score_mapping(rec.transpose("lon", "time", "lat"), ref, mask.transpose("lon", "lat")),
        score_mapping(rec, ref, mask),
    )


# ----------------------------------------------------------------------------- PSD / λ

N_T, N_LON, N_LAT, DLON = 64, 64, 16, 0.25
K_KEEP, M_KEEP = 8, 8  # keep zonal wavenumbers <= 8 cycles per domain, periods >= 64/8 days


def spectral_pair(seed: int = 0) -> tuple[xr.DataArray, xr.DataArray]:
    """ref: every (wavenumber, frequency) component of the grid with amplitude 1 and a
    random phase; rec: ref without the components shorter than 16°/8 = 2° in longitude
    or than 64/8 = 8 days in time. The next wavelengths out are 16°/9 and 64/9 days."""
    rng = np.random.default_rng(seed)
    ks = np.arange(1, N_LON // 2)
    ms = np.array([m for m in range(-(N_T // 2) + 1, N_T // 2) if m != 0])
    e_t = np.exp(2j * np.pi * np.outer(np.arange(N_T), ms) / N_T)
    e_x = np.exp(2j * np.pi * np.outer(ks, np.arange(N_LON)) / N_LON)
    keep = (np.abs(ms)[:, None] <= M_KEEP) & (ks[None, :] <= K_KEEP)
    coef = np.exp(2j * np.pi * rng.random((N_LAT, ms.size, ks.size)))
    ref = np.einsum("tm,jmk,kx->tjx", e_t, coef, e_x, optimize=True).real
    rec = np.einsum("tm,jmk,kx->tjx", e_t, coef * keep, e_x, optimize=True).real
    lat, lon = 35.0 + 0.25 * np.arange(N_LAT), -65.0 + DLON * np.arange(N_LON)
    return grid(rec, lat, lon), grid(ref, lat, lon)


@pytest.fixture(scope="module")
def pair() -> tuple[xr.DataArray, xr.DataArray]:
    return spectral_pair()


def test_lambda_falls_between_kept_and_removed_scales(pair, backend: str) -> None:
    rec, ref = (on(x, backend) for x in pair)
    scores = score_mapping(rec, ref)
    span_lon = N_LON * DLON
    assert span_lon / (K_KEEP + 1) < scores["lambda_x_deg"] < span_lon / K_KEEP
    assert N_T / (M_KEEP + 1) < scores["lambda_t_days"] < N_T / M_KEEP
    mean_lat = float(ref["lat"].mean())
    assert scores["lambda_x_km"] == pytest.approx(
        scores["lambda_x_deg"] * KM_PER_DEGREE * np.cos(np.deg2rad(mean_lat))
    )


def test_psd_score_is_one_on_kept_and_low_on_removed_scales(pair, backend: str) -> None:
    rec, ref = (on(x, backend) for x in pair)
    score = psd_score(rec, ref)
    assert score.dims == ("freq_time", "freq_lon")
    assert (score["freq_time"] > 0).all() and (score["freq_lon"] > 0).all()
    assert score.sizes == {"freq_time": N_T // 2 - 1, "freq_lon": N_LON // 2 - 1}
    period, wavelength = 1.0 / score["freq_time"], 1.0 / score["freq_lon"]
    # Hann leakage reaches one bin: two bins inside the kept block the score is 1, two
    # bins into the removed band it is 0.
    inside = score.where((period >= N_T / (M_KEEP - 2)) & (wavelength >= 16 / (K_KEEP - 2)))
    outside = score.where((period <= N_T / (M_KEEP + 2)) | (wavelength <= 16 / (K_KEEP + 2)))
    assert float(inside.min()) == pytest.approx(1.0, abs=1e-9)
    assert float(np.abs(outside).max()) == pytest.approx(0.0, abs=1e-9)
    if backend == "dask":
        xr.testing.assert_allclose(score, psd_score(*pair))


def test_lambda_is_the_minimum_of_the_first_contour_line(pair) -> None:
    score = psd_score(*pair)
    lines = psd_score_contour(score)
    assert lines and all(line.shape[1] == 2 for line in lines)
    lx, lt = resolved_scales(score)
    assert (lx, lt) == (lines[0][:, 0].min(), lines[0][:, 1].min())
    for line in lines:  # every vertex lies on the 0.5 level, within the frequency grid
        assert (line[:, 0] >= 1.0 / float(score["freq_lon"].max()) - 1e-12).all()
        assert (line[:, 1] >= 1.0 / float(score["freq_time"].max()) - 1e-12).all()


def test_contour_in_several_pieces_first_line_or_all_lines() -> None:
    ref, _ = field(n_time=20, n_lat=2, n_lon=24, seed=12)
    score = psd_score(add_noise(ref, 0.2, seed=12), ref)  # noisy: an island of score > 0.5
    lines = psd_score_contour(score)
    assert len(lines) >= 2
    every = np.concatenate(lines)
    assert resolved_scales(score, first_path_only=False) == (every[:, 0].min(), every[:, 1].min())
    assert resolved_scales(score) == (lines[0][:, 0].min(), lines[0][:, 1].min())


def test_perfect_reconstruction_has_no_lambda_but_a_reason(pair, backend: str) -> None:
    ref = on(pair[1], backend)
    scores = score_mapping(ref, ref)
    assert scores["rmse"] == 0.0 and scores["mu"] == 1.0 and scores["sigma"] == 0.0
    for key in ("lambda_x_deg", "lambda_x_km", "lambda_t_days"):
        assert scores[key] is None
        assert "every wavelength" in scores["notes"][key]
    assert scores["rmse_u"] == 0.0 and scores["rmse_vorticity"] == 0.0


def test_too_few_days_gives_none_lambda_with_reason() -> None:
    ref, mask = field(n_time=5)
    scores = score_mapping(add_noise(ref, 0.02), ref, mask)
    assert scores["lambda_t_days"] is None and "at least 8 days" in scores["notes"]["lambda_t_days"]
    assert scores["rmse"] is not None and scores["mu"] is not None
    with pytest.raises(ScoreUnavailable, match="8 days"):
        psd_score(add_noise(ref, 0.02), ref)
    narrow, _ = field(n_time=12, n_lon=6)
    scores = score_mapping(add_noise(narrow, 0.02), narrow)
    assert scores["lambda_x_deg"] is None and "longitudes" in scores["notes"]["lambda_x_deg"]


def test_uneven_time_gives_none_lambda_with_reason() -> None:
    ref, _ = field(n_time=12)
    ref = ref.isel(time=[0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11])
    scores = score_mapping(add_noise(ref, 0.02), ref)
    assert scores["lambda_x_deg"] is None and "evenly spaced" in scores["notes"]["lambda_x_deg"]


def test_score_never_reaching_half_is_reported(pair) -> None:
    rec, ref = pair
    with pytest.raises(ScoreUnavailable, match="below 0.5"):
        resolved_scales(psd_score(-rec - ref, ref))  # err = -(2 ref + ...): score < 0.5


# ----------------------------------------------------------------------------- currents


def test_geostrophic_velocity_of_linear_slopes(backend: str) -> None:
    lat, lon = 30.0 + 0.5 * np.arange(11), -65.0 + 0.5 * np.arange(9)
    a, b = 0.1, 0.05  # metres per degree of latitude / longitude
    f = 2 * OMEGA * np.sin(lat * DEG)[None, :, None]
    coslat = np.cos(lat * DEG)[None, :, None]
    shape = (3, lat.size, lon.size)

    eta_y = grid(np.broadcast_to(a * (lat - 30.0)[None, :, None], shape).copy(), lat, lon)
    u, v = geostrophic_velocity(on(eta_y, backend))
    np.testing.assert_allclose(u.values, np.broadcast_to(-G * a / (f * R * DEG), shape), rtol=1e-12)
    np.testing.assert_allclose(v.values, 0.0, atol=1e-15)

    eta_x = grid(np.broadcast_to(b * (lon + 65.0)[None, None, :], shape).copy(), lat, lon)
    u, v = geostrophic_velocity(on(eta_x, backend))
    np.testing.assert_allclose(u.values, 0.0, atol=1e-15)
    expected_v = np.broadcast_to(G * b / (f * R * coslat * DEG), shape)
    np.testing.assert_allclose(v.values, expected_v, rtol=1e-12)
    assert u.dims == eta_x.dims and u.attrs["units"] == "m s-1"

    # The same field in centimetres gives the same currents.
    _, v_cm = geostrophic_velocity(on((eta_x * 100).assign_attrs(units="cm"), backend))
    np.testing.assert_allclose(v_cm.values, expected_v, rtol=1e-12)


def test_currents_are_nan_near_the_equator() -> None:
    lat, lon = -10.0 + np.arange(21.0), np.arange(6.0)
    eta = grid(np.broadcast_to(0.01 * lat[None, :, None], (2, 21, 6)).copy(), lat, lon)
    u, _ = geostrophic_velocity(eta)
    near = np.abs(lat) < 5
    assert np.isnan(u.values[:, near]).all() and np.isfinite(u.values[:, ~near]).all()
    scores = score_mapping(eta, eta)
    assert scores["rmse_u"] == 0.0  # the points away from the equator still count
    equatorial = eta.sel(lat=slice(-4, 4))
    scores = score_mapping(equatorial + 0.01, equatorial)
    assert scores["rmse_u"] is None and "equator" in scores["notes"]["rmse_u"]


def gaussian_eddy(step: float) -> tuple[xr.DataArray, np.ndarray]:
    """η = A exp(-(Δφ² + Δλ²) / 2s²) (angles in radians) and its analytic ζ/f."""
    amp, s, lat0, lon0 = 0.3, 0.5 * DEG, 38.0, -60.0
    lat = lat0 - 2.5 + step * np.arange(int(round(5 / step)) + 1)
    lon = lon0 - 2.5 + step * np.arange(int(round(5 / step)) + 1)
    phi, lam = np.meshgrid(lat * DEG, lon * DEG, indexing="ij")
    dphi, dlam = phi - lat0 * DEG, lam - lon0 * DEG
    eta = amp * np.exp(-(dphi**2 + dlam**2) / (2 * s**2))
    eta_p, eta_pp = -dphi / s**2 * eta, (dphi**2 / s**4 - 1 / s**2) * eta
    eta_ll = (dlam**2 / s**4 - 1 / s**2) * eta
    f, df = 2 * OMEGA * np.sin(phi), 2 * OMEGA * np.cos(phi)
    # ζ = (1/(R cosφ)) ∂v/∂λ − (1/R) ∂u/∂φ with u = -(g/(fR)) η_φ, v = (g/(fR cosφ)) η_λ
    zeta = G / (f * R**2 * np.cos(phi) ** 2) * eta_ll + G / R**2 * (eta_pp / f - df * eta_p / f**2)
    return grid(np.stack([eta, 0.5 * eta]), lat, lon), np.stack([zeta / f, 0.5 * zeta / f])


def test_vorticity_of_a_gaussian_eddy_matches_the_analytic_value(backend: str) -> None:
    interior = (slice(None), slice(2, -2), slice(2, -2))
    errors = []
    for step in (0.05, 0.025):
        eta, expected = gaussian_eddy(step)
        zeta = relative_vorticity(on(eta, backend))
        scale = np.abs(expected).max()
        errors.append(np.abs(zeta.values[interior] - expected[interior]).max() / scale)
    assert zeta.attrs["units"] == "1"
    # Centred differences: within 1.5 % at 0.05° (eddy radius 0.5°), second-order convergence.
    assert errors[0] < 1.5e-2
    assert 3.5 < errors[0] / errors[1] < 4.5
    # At the centre the eddy's ζ is the Laplacian (g/f)∇²η: -(gA/(f R² s²))(1 + 1/cos²φ0).
    centre = zeta.sel(lat=38.0, lon=-60.0, method="nearest").isel(time=0)
    f0 = 2 * OMEGA * np.sin(38.0 * DEG)
    laplacian = -G * 0.3 / (f0 * R**2 * (0.5 * DEG) ** 2) * (1 + 1 / np.cos(38.0 * DEG) ** 2)
    assert float(centre) == pytest.approx(laplacian / f0, rel=5e-3)
    # In s-1 rather than units of f.
    raw = relative_vorticity(on(eta, backend), normalised=False)
    assert float(raw.sel(lat=38.0, lon=-60.0, method="nearest").isel(time=0)) == pytest.approx(
        laplacian, rel=5e-3
    )


def test_vorticity_rmse_between_eddies_of_two_amplitudes(backend: str) -> None:
    eta, _ = gaussian_eddy(step=0.1)
    zeta = relative_vorticity(eta)
    expected = float(np.sqrt(((0.2 * zeta) ** 2).mean()))  # ζ is linear in η
    scores = score_mapping(on(eta * 1.2, backend), on(eta, backend))
    assert scores["rmse_vorticity"] == pytest.approx(expected, rel=1e-9)
    u, v = geostrophic_velocity(eta)
    assert scores["rmse_u"] == pytest.approx(float(np.sqrt(((0.2 * u) ** 2).mean())), rel=1e-9)
    assert scores["rmse_v"] == pytest.approx(float(np.sqrt(((0.2 * v) ** 2).mean())), rel=1e-9)


# ----------------------------------------------------------------------------- registry


def test_registry_lists_every_score_once_with_scores_out() -> None:
    keys = [k for metric in MAPPING_METRICS.values() for k in metric.keys]
    assert sorted(keys) == sorted(SCORE_KEYS)
    assert all(metric.description for metric in MAPPING_METRICS.values())
    ref, _ = field(n_time=10)
    result = MAPPING_METRICS["lambda"].compute(add_noise(ref, 0.05), ref)
    assert set(result) == set(ResolvedScales.keys)
    assert all(isinstance(s, Score) for s in result.values())


def test_dask_and_numpy_give_the_same_numbers() -> None:
    ref, mask = field(land=True, n_time=16)
    rec = add_noise(ref, 0.03, seed=7)
    assert_same_scores(score_mapping(on(rec, "dask"), on(ref, "dask"), mask),
                       score_mapping(rec, ref, mask))
    xr.testing.assert_allclose(
        rmse_over_time(on(rec, "dask"), on(ref, "dask"), mask), rmse_over_time(rec, ref, mask)
    )
    u_d, v_d = geostrophic_velocity(on(ref, "dask"))
    u_n, v_n = geostrophic_velocity(ref)
    assert u_d.chunks is not None
    xr.testing.assert_allclose(u_d, u_n)
    xr.testing.assert_allclose(v_d, v_n)


def test_mu_anomaly_removes_the_truths_time_mean() -> None:
    lat, lon = 30.0 + 0.25 * np.arange(8), -60.0 + 0.25 * np.arange(10)
    rng = np.random.default_rng(4)
    mean_map = 2.0 * np.linspace(-1, 1, 8)[:, None] * np.ones((1, 10))
    anomaly = 0.1 * rng.standard_normal((12, 8, 10))
    ref = grid(mean_map[None] + anomaly, lat, lon)
    rec = ref + 0.02 * rng.standard_normal((12, 8, 10))
    scores = score_mapping(rec, ref)
    err = np.sqrt(np.mean((rec.values - ref.values) ** 2))
    assert scores["mu"] == pytest.approx(1 - err / np.sqrt(np.mean(ref.values**2)), rel=1e-6)
    anom = ref.values - ref.values.mean(axis=0)
    assert scores["mu_anomaly"] == pytest.approx(1 - err / np.sqrt(np.mean(anom**2)), rel=1e-6)
    # the mean front makes mu generous; the anomaly score is the stricter one
    assert scores["mu_anomaly"] < scores["mu"]
    # a field without a mean flow: both agree up to the (small) sample mean of the anomaly
    flat = score_mapping(grid(anomaly, lat, lon) + (rec - ref), grid(anomaly, lat, lon))
    assert flat["mu_anomaly"] == pytest.approx(flat["mu"], abs=0.05)
