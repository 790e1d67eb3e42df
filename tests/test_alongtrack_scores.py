"""Along-track scores of a gridded map against independent altimetry (issue 11).

The definitions are those of the 2021a SSH mapping OSE data challenge (see
:mod:`metrics.alongtrack`); every expected value here is derived by hand:

- trilinear interpolation is exact for a field linear in time, latitude and longitude;
- a map equal to the observations has RMSE 0, µ 1, σ 0 and no λx (every scale resolved);
- a map = observation + noise n at grid nodes observed at those nodes has RMSE = RMS(n)
  exactly; with the noise scaled by c_d on day d, the daily score is 1 − c_d·r/q (r the RMS
  of the noise, q the RMS of the observations), so µ and σ are the mean and standard
  deviation of those;
- a map smoothed along track by a Gaussian of standard deviation s (transfer function
  H(k) = exp(−2π²s²k²)) has PSD(err)/PSD(obs) = (1 − H)², so the score 1 − (1 − H)² falls
  to 0.5 where H = 1 − 1/√2: λx = 2πs / √(2 ln(1/(1 − 1/√2))) ≈ 4.01 s.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from metrics.alongtrack import (
    SCORE_KEYS,
    alongtrack_scores,
    alongtrack_spectra,
    interp_to_tracks,
)

KM_PER_DEG = np.pi / 180 * 6371.0
T0 = np.datetime64("2017-01-01T00:00:00", "ns")


def _grid(values, times, lat, lon, name="ssh"):
    return xr.DataArray(values, dims=("time", "lat", "lon"),
                        coords={"time": times, "lat": lat, "lon": lon}, name=name,
                        attrs={"units": "m"})


def _tracks(time, lat, lon, value=None, mission="c2"):
    time = np.asarray(time).astype("datetime64[ns]")
    ds = xr.Dataset(coords={"time": ("obs", time), "lat": ("obs", np.asarray(lat, float)),
                            "lon": ("obs", np.asarray(lon, float)),
                            "mission": ("obs", np.broadcast_to(np.asarray(mission),
                                                               time.shape).astype(str))})
    ds["value"] = ("obs", np.zeros(time.shape) if value is None else np.asarray(value, float),
                   {"units": "m"})
    return ds


def _meridional_passes(lons, lat0, lat1, step_deg, day=0, hour=1, spacing_min=10):
    """One pass per longitude, northward from lat0 to lat1 at 1 Hz, passes spacing_min
    minutes apart, starting at ``hour`` on ``day``."""
    lat = np.arange(lat0, lat1 + step_deg / 2, step_deg)
    t, la, lo = [], [], []
    for j, x in enumerate(lons):
        start = T0 + np.timedelta64(day, "D") + np.timedelta64(hour * 60 + j * spacing_min, "m")
        t.append(start + np.arange(lat.size) * np.timedelta64(1, "s"))
        la.append(lat)
        lo.append(np.full(lat.size, float(x)))
    return np.concatenate(t), np.concatenate(la), np.concatenate(lo)


# -- interpolation ------------------------------------------------------------------------
def test_interp_recovers_a_linear_field_exactly_and_is_nan_outside_and_near_land():
    times = T0 + np.array([0, 1, 3, 4], dtype="timedelta64[D]").astype("timedelta64[ns]")
    lat = np.array([30.0, 30.5, 31.7, 32.0, 34.0])
    lon = np.array([290.0, 291.0, 292.5, 294.0])  # 0..360 convention
    days = (times - T0) / np.timedelta64(1, "D")

    def linear(d, y, x):
        return 0.3 + 0.02 * d - 0.05 * y + 0.01 * x

    values = linear(days[:, None, None], lat[None, :, None], lon[None, None, :])
    field = _grid(values, times, lat, lon)
    rng = np.random.default_rng(3)
    n = 200
    d = rng.uniform(0, 4, n)
    y = rng.uniform(30, 34, n)
    x = rng.uniform(290, 294, n)
    t = T0 + (d * 86400e9).astype("timedelta64[ns]")
    tracks = _tracks(t, y, x - 360.0)  # the tracks' −180..180 convention
    got = interp_to_tracks(field, tracks)
    np.testing.assert_allclose(got, linear(d, y, x), rtol=0, atol=1e-12)

    # the grid's own nodes and corners, including the last ones
    corner = _tracks(times[[0, -1]], lat[[0, -1]], lon[[0, -1]])
    np.testing.assert_allclose(interp_to_tracks(field, corner), values[[0, -1], [0, -1], [0, -1]],
                               atol=1e-12)

    # outside the box or the period: NaN
    outside = _tracks([t[0], t[0], T0 - np.timedelta64(1, "h"), T0 + np.timedelta64(5, "D")],
                      [29.9, 31.0, 31.0, 31.0], [-68.0, -65.5, -68.0, -68.0])
    assert np.isnan(interp_to_tracks(field, outside)).all()

    # land at one node: NaN in the cells that touch it, the rest unchanged
    land = values.copy()
    land[:, 2, 1] = np.nan  # lat 31.7, lon 291
    got_land = interp_to_tracks(_grid(land, times, lat, lon), tracks)
    near = (y > 30.5) & (y < 32.0) & (x > 290.0) & (x < 292.5)
    assert near.any() and (~near).any()
    assert np.isnan(got_land[near]).all()
    np.testing.assert_allclose(got_land[~near], linear(d, y, x)[~near], atol=1e-12)


# -- RMSE, µ, σ ---------------------------------------------------------------------------
LAT = np.round(np.arange(30.0, 40.0 + 0.025, 0.05), 10)
LONS = np.arange(5.0)
A = 0.3  # amplitude of the observed sine (m)


def _signal():
    return A * np.sin(2 * np.pi * LAT / 1.0)[:, None] * np.ones(LONS.size)


def _daily_grid(fields_by_day):
    """Grid holding ``fields_by_day[d]`` at 00:00 and 23:00 of day d (constant over the
    hours the tracks fly, 01:00–02:00)."""
    times, values = [], []
    for d, f in enumerate(fields_by_day):
        for h in (0, 23):
            times.append(T0 + np.timedelta64(d, "D") + np.timedelta64(h, "h"))
            values.append(f)
    return _grid(np.stack(values), np.array(times), LAT, LONS)


def _node_tracks(n_days, values_fn):
    parts = [_meridional_passes(LONS, LAT[0], LAT[-1], 0.05, day=d) for d in range(n_days)]
    t = np.concatenate([p[0] for p in parts])
    la = np.round(np.concatenate([p[1] for p in parts]), 10)
    lo = np.concatenate([p[2] for p in parts])
    return _tracks(t, la, lo, values_fn(la, lo))


def _obs_at(la, lo):
    return A * np.sin(2 * np.pi * la / 1.0)


def test_a_map_equal_to_the_observations_scores_rmse_0_mu_1():
    tracks = _node_tracks(3, _obs_at)
    scores = alongtrack_scores(_daily_grid([_signal()] * 3), tracks)
    assert set(scores) == set(SCORE_KEYS) | {"notes"}
    assert scores["n_alongtrack"] == tracks.sizes["obs"] == 3 * LONS.size * LAT.size
    assert scores["rmse_alongtrack"] == pytest.approx(0.0, abs=1e-12)
    assert scores["mu_alongtrack"] == pytest.approx(1.0, abs=1e-12)
    assert scores["sigma_alongtrack"] == pytest.approx(0.0, abs=1e-12)
    # no error at any wavelength: λx has no crossing, and says why
    assert scores["lambda_x_alongtrack_km"] is None
    assert "stays above 0.5" in scores["notes"]["lambda_x_alongtrack_km"]


def test_noise_of_known_size_gives_rmse_mu_and_sigma_by_hand():
    s = 0.03
    noise = np.random.default_rng(7).standard_normal((LAT.size, LONS.size))
    noise = s * noise / np.sqrt(np.mean(noise ** 2))  # RMS exactly s over the nodes
    scale = [1.0, 1.0, 2.0]  # day 3 twice as noisy
    rec = _daily_grid([_signal() + c * noise for c in scale])
    tracks = _node_tracks(3, _obs_at)
    scores = alongtrack_scores(rec, tracks)
    # every node is observed once a day: RMSE² is the mean of c_d² s²
    assert scores["rmse_alongtrack"] == pytest.approx(s * np.sqrt(np.mean(np.square(scale))),
                                                      rel=1e-9)
    q = np.sqrt(np.mean(_obs_at(LAT, 0.0) ** 2))  # RMS of the observations (≈ A/√2)
    assert q == pytest.approx(A / np.sqrt(2), rel=1e-2)
    daily = 1 - np.array(scale) * s / q
    assert scores["mu_alongtrack"] == pytest.approx(daily.mean(), rel=1e-9)
    assert scores["sigma_alongtrack"] == pytest.approx(daily.std(), rel=1e-9)
    assert scores["sigma_alongtrack"] == pytest.approx(s / q * np.sqrt(2) / 3, rel=1e-9)
    assert scores["notes"].get("mu_alongtrack") is None


def test_days_with_fewer_than_10_points_do_not_count_in_mu():
    tracks = _node_tracks(1, _obs_at).isel(obs=slice(0, 9))
    scores = alongtrack_scores(_daily_grid([_signal()]), tracks)
    assert scores["n_alongtrack"] == 9 and scores["rmse_alongtrack"] == pytest.approx(0.0)
    assert scores["mu_alongtrack"] is None and scores["sigma_alongtrack"] is None
    assert "10 or more" in scores["notes"]["mu_alongtrack"]


def test_no_point_inside_the_map_gives_none_with_notes():
    tracks = _node_tracks(1, _obs_at)
    tracks = tracks.assign_coords(lat=tracks["lat"] + 20.0)
    scores = alongtrack_scores(_daily_grid([_signal()]), tracks)
    assert scores["n_alongtrack"] == 0
    assert all(scores[k] is None for k in SCORE_KEYS[:-1])
    assert set(scores["notes"]) == set(SCORE_KEYS[:-1])


# -- λx -----------------------------------------------------------------------------------
FINE = 0.01  # degrees of latitude of the fine grid (1.1 km)
STEP = 0.0575  # degrees between 1 Hz samples (6.4 km, Cryosat-2's spacing)


def _band_limited(n_cols, sigma_km, seed=0):
    """Random columns in latitude (20..60°N), flat spectrum up to 1/(20 km) and none above
    (well below the tracks' Nyquist wavenumber), raw and smoothed by a Gaussian of standard
    deviation ``sigma_km``."""
    lat = np.arange(20.0, 60.0 + FINE / 2, FINE)
    k = np.fft.rfftfreq(lat.size, d=FINE * KM_PER_DEG)
    rng = np.random.default_rng(seed)
    raw, smooth = [], []
    for _ in range(n_cols):
        c = np.fft.rfft(rng.standard_normal(lat.size))
        c[k > 1 / 20.0] = 0
        raw.append(np.fft.irfft(c, lat.size))
        smooth.append(np.fft.irfft(c * np.exp(-2 * np.pi ** 2 * sigma_km ** 2 * k ** 2),
                                   lat.size))
    return lat, 0.1 * np.array(raw).T, 0.1 * np.array(smooth).T


def _smoothing_case(sigma_km=30.0, n_cols=10):
    lat, raw, smooth = _band_limited(n_cols, sigma_km)
    lon = np.arange(float(n_cols))
    times = T0 + np.array([0, 1], dtype="timedelta64[D]").astype("timedelta64[ns]")
    truth = _grid(np.stack([raw, raw]), times, lat, lon)
    rec = _grid(np.stack([smooth, smooth]), times, lat, lon)
    t, la, lo = _meridional_passes(lon, 20.0, 59.9, STEP, spacing_min=60)
    tracks = _tracks(t, la, lo)
    tracks["value"] = ("obs", interp_to_tracks(truth, tracks), {"units": "m"})
    return rec, tracks


def test_lambda_x_of_a_gaussian_smoothing_is_its_half_power_wavelength():
    sigma_km = 30.0
    rec, tracks = _smoothing_case(sigma_km)
    # score 1 − (1 − H)² = 0.5 where H = exp(−2π²s²k²) = 1 − 1/√2
    k_half = np.sqrt(np.log(1 / (1 - 2 ** -0.5)) / (2 * np.pi ** 2)) / sigma_km
    expected = 1 / k_half
    assert expected == pytest.approx(4.01 * sigma_km, rel=1e-2)
    scores = alongtrack_scores(rec, tracks)
    assert scores["lambda_x_alongtrack_km"] == pytest.approx(expected, rel=0.15)
    assert "lambda_x_alongtrack_km" not in scores["notes"]

    # the spectra: 1000 km windows of 1 Hz samples every int(0.25 npt) points
    spectra, why = alongtrack_spectra(tracks["value"].values, interp_to_tracks(rec, tracks),
                                      tracks["time"].values, tracks["lat"].values,
                                      tracks["lon"].values, tracks["mission"].values)
    assert why is None
    dx = spectra.attrs["delta_x_km"]
    assert dx == pytest.approx(STEP * KM_PER_DEG, rel=1e-6)
    npt = int(1000.0 / dx)
    assert spectra.attrs["npt"] == npt
    n_pass = np.arange(20.0, 59.9 + STEP / 2, STEP).size
    assert spectra.attrs["n_windows"] == 10 * len(range(0, n_pass - npt + 1, int(0.25 * npt)))
    assert spectra["wavenumber"].values[0] == pytest.approx(1 / (npt * dx))


def test_lambda_x_needs_windows_of_segment_km_without_gaps():
    rec, tracks = _smoothing_case()
    # longer windows than any pass: no λx, and the reason
    scores = alongtrack_scores(rec, tracks, segment_km=5000.0)
    assert scores["lambda_x_alongtrack_km"] is None
    assert "no continuous stretch" in scores["notes"]["lambda_x_alongtrack_km"]
    # a land gap every 100 points cuts each pass into pieces shorter than 1000 km
    value = tracks["value"].values.copy()
    value[::100] = np.nan
    scores = alongtrack_scores(rec, tracks.assign(value=("obs", value)))
    assert scores["lambda_x_alongtrack_km"] is None
    assert "no continuous stretch" in scores["notes"]["lambda_x_alongtrack_km"]
    assert scores["rmse_alongtrack"] is not None  # the points still count for the RMSE
    # two missions sampled at the same times are never joined into one piece
    other = tracks.assign_coords(mission=("obs", np.full(tracks.sizes["obs"], "j3")))
    both = xr.concat([tracks, other], dim="obs")
    spectra, _ = alongtrack_spectra(both["value"].values, interp_to_tracks(rec, both),
                                    both["time"].values, both["lat"].values,
                                    both["lon"].values, both["mission"].values)
    single, _ = alongtrack_spectra(tracks["value"].values, interp_to_tracks(rec, tracks),
                                   tracks["time"].values, tracks["lat"].values,
                                   tracks["lon"].values, tracks["mission"].values)
    assert spectra.attrs["n_windows"] == 2 * single.attrs["n_windows"]


# -- the command line, on files in the 2021a layout ---------------------------------------
C = 0.04  # constant offset of the prediction (m)


MDT0, LWE = 0.5, 0.02  # along-track mdt = MDT0 + 0.001 lat (m), lwe constant (m)


def _write_2021a_files(tmp_path):
    """Two daily files of the held-out mission ('c2') in the 2021a OSE layout (dim time;
    sla_unfiltered, mdt, lwe, longitude 0..360, latitude; global attribute mission), a
    gridded prediction of the anomaly = the truth + C on a −180..180 grid (``pred.nc``), and
    one of the absolute dynamic topography = the truth + mdt − lwe + C (``adt.nc``)."""
    lat = np.arange(33.0, 43.0 + 0.05, 0.1)
    lon = np.arange(-65.0, -55.0 + 0.05, 0.1)
    times = pd.date_range("2017-01-01", periods=3, freq="1D").values
    days = np.arange(3.0)
    truth = (0.2 * np.sin(np.radians(lat) * 20)[None, :, None]
             * np.cos(np.radians(lon) * 15)[None, None, :] + 0.01 * days[:, None, None])
    truth_da = _grid(truth, times, lat, lon)
    out = tmp_path / "c2"
    out.mkdir()
    for d in range(2):
        t, la, lo = _meridional_passes([-63.05, -60.55, -57.05], 33.2, 42.8, STEP, day=d)
        sla = interp_to_tracks(truth_da, _tracks(t, la, lo))
        assert np.isfinite(sla).all()
        ds = xr.Dataset(
            {"sla_unfiltered": ("time", sla, {"units": "m", "long_name": "SLA unfiltered"}),
             "mdt": ("time", MDT0 + 0.001 * la, {"units": "m"}),
             "lwe": ("time", np.full(la.size, LWE), {"units": "m"}),
             "longitude": ("time", lo + 360.0, {"units": "degrees_east"}),
             "latitude": ("time", la, {"units": "degrees_north"})},
            coords={"time": ("time", t)}, attrs={"mission": "c2"})
        ds.to_netcdf(out / f"dt_gulfstream_c2_phy_l3_2017010{d + 1}.nc")
    pred = tmp_path / "pred.nc"
    xr.Dataset({"ssh": truth_da + C}).to_netcdf(pred)
    mdt = MDT0 + 0.001 * xr.DataArray(lat, dims="lat", coords={"lat": lat})
    adt = (truth_da + mdt - LWE + C).transpose("time", "lat", "lon").assign_attrs(units="m")
    xr.Dataset({"adt": adt}).to_netcdf(tmp_path / "adt.nc")
    return out, pred


def test_evaluate_tracks_on_files_in_the_2021a_layout(tmp_path, capsys):
    pytest.importorskip("data.alongtrack")
    from app.cli import main

    folder, pred = _write_2021a_files(tmp_path)
    code = main(["evaluate", "--tracks", str(folder / "*.nc"), "--pred", str(pred), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    for key in SCORE_KEYS:
        assert key in result and key in result["scores"]
    assert result["missions"] == ["c2"] and result["var_tracks"] == "sla_unfiltered"
    assert result["n_alongtrack"] == result["n_read"] > 0
    # the prediction is the truth + C everywhere: every point is off by exactly C
    assert result["rmse_alongtrack"] == pytest.approx(C, rel=1e-6)
    assert 0 < result["mu_alongtrack"] < 1
    assert result["run_id"] is None

    code = main(["evaluate", "--tracks", str(folder / "*.nc"), "--pred", str(pred)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "rmse_alongtrack" in out and "c2" in out

    # a map of absolute dynamic topography against sla_unfiltered + mdt − lwe (--adt)
    adt = tmp_path / "adt.nc"
    code = main(["evaluate", "--tracks", str(folder / "*.nc"), "--pred", str(adt), "--adt",
                 "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result_adt = json.loads(out)
    assert result_adt["rmse_alongtrack"] == pytest.approx(C, rel=1e-6)
    assert result_adt["n_alongtrack"] == result["n_alongtrack"]
    assert result_adt["var_tracks"] == "sla_unfiltered+mdt-lwe"
    # without --adt the same map is off by the mean dynamic topography
    code = main(["evaluate", "--tracks", str(folder / "*.nc"), "--pred", str(adt), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["rmse_alongtrack"] > MDT0

    # --import needs a gridded reference
    code = main(["evaluate", "--tracks", str(folder / "*.nc"), "--pred", str(pred), "--import"])
    out, err = capsys.readouterr()
    assert code != 0 and "--import" in err


def test_continuous_pieces_cut_at_gaps_missing_values_and_missions():
    from metrics.alongtrack import continuous_pieces

    seconds = np.array([0, 1, 2, 3, 4, 15, 16, 17, 18, 19, 0, 1, 2])
    time = T0 + seconds.astype("timedelta64[s]").astype("timedelta64[ns]")
    mission = np.array(["c2"] * 10 + ["j3"] * 3)
    valid = np.ones(seconds.size, dtype=bool)
    valid[7] = False  # a missing value: cut even though the step stays 1 s
    pieces = continuous_pieces(time, mission, valid)
    assert [p.tolist() for p in pieces] == [[0, 1, 2, 3, 4], [5, 6], [8, 9], [10, 11, 12]]
    # a gap of 11 s is kept with a limit above it
    pieces = continuous_pieces(time, mission, valid, max_gap_s=20.0)
    assert [p.tolist() for p in pieces] == [[0, 1, 2, 3, 4, 5, 6], [8, 9], [10, 11, 12]]
