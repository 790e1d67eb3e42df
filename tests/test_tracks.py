"""Ground tracks and along-track sampling (data/tracks.py)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from oceanlab_errors import DataError
from data.synthetic import mock_field
from data.tracks import (
    DEFAULT_MISSIONS,
    MISSIONS,
    along_track_samples,
    sample_along_tracks,
    track_points,
)

BOX_LON, BOX_LAT = (-65.0, -55.0), (33.0, 43.0)


def _by_name(name: str) -> tuple:
    return tuple(m for m in MISSIONS if m.name == name)


def _osse_like(n_time: int = 20, value: float | None = None, **kw) -> xr.DataArray:
    """A 100 × 100 field on the OSSE's 0.1° grid."""
    da = mock_field(n_time, 100, 100, lat0=33.05, lon0=-64.95, step_deg=0.1, **kw)["ssh"]
    if value is not None:
        da = xr.full_like(da, value)
    return da


def test_missions_are_the_four_nadirs():
    names = [m.name for m in DEFAULT_MISSIONS]
    assert names == ["TOPEX/Poseidon interleaved", "Jason-1", "Geosat Follow-On", "Envisat"]
    orbit = {m.name: (m.inclination_deg, m.repeat_days, m.revs_per_cycle) for m in MISSIONS}
    assert orbit["Jason-1"] == (66.04, 10, 127)
    assert orbit["Geosat Follow-On"][1:] == (17, 244)
    assert orbit["Envisat"][1:] == (35, 501)


def test_maximum_latitude_is_set_by_inclination():
    for m in MISSIONS:
        pts = track_points((-180, 180), (-90, 90), "2012-10-01", "2012-10-02", (m,))
        expected = m.inclination_deg if m.inclination_deg <= 90 else 180 - m.inclination_deg
        assert abs(np.abs(pts.lat).max() - expected) < 0.05


def test_samples_are_about_6_to_7_km_apart():
    pts = track_points(BOX_LON, BOX_LAT, "2012-10-01", "2012-10-04", _by_name("Jason-1"))
    same = np.diff(pts.pass_number) == 0
    dlat = np.radians(np.diff(pts.lat))[same]
    dlon = np.radians(np.diff(pts.lon))[same] * np.cos(np.radians(pts.lat[1:][same]))
    km = 6371.0 * np.hypot(dlat, dlon)
    assert 5.0 < np.median(km) < 7.5


@pytest.mark.parametrize("name,prograde", [("Jason-1", True), ("Envisat", False)])
def test_tracks_are_inclined(name, prograde):
    pts = track_points(BOX_LON, BOX_LAT, "2012-10-01", "2012-10-11", _by_name(name))
    df = pts.to_dataframe(_by_name(name))
    fitted = 0
    for number, one in df.groupby("pass_number"):
        if len(one) < 30:
            continue
        slope = np.polyfit(one["lon"], one["lat"], 1)[0]  # degrees of lat per degree of lon
        assert 0.3 < abs(slope) < 10.0  # neither along a meridian nor along a parallel
        ascending = number % 2 == 0
        assert (slope > 0) == (ascending == prograde)
        fitted += 1
    assert fitted >= 3


@pytest.mark.parametrize("name,days", [("Jason-1", 10), ("Geosat Follow-On", 17),
                                       ("Envisat", 35)])
def test_tracks_repeat_every_cycle(name, days):
    mission = _by_name(name)
    d0 = pd.Timestamp("2012-11-03")
    a = track_points(BOX_LON, BOX_LAT, d0, d0 + pd.Timedelta(days=1), mission)
    b = track_points(BOX_LON, BOX_LAT, d0 + pd.Timedelta(days=days),
                     d0 + pd.Timedelta(days=days + 1), mission)
    assert len(a) > 0 and len(a) == len(b)
    np.testing.assert_allclose(a.lon, b.lon, atol=1e-6)
    np.testing.assert_allclose(a.lat, b.lat, atol=1e-6)
    assert np.all(b.time - a.time == np.timedelta64(days, "D"))
    # a day that is not a whole cycle later samples other places
    c = track_points(BOX_LON, BOX_LAT, d0 + pd.Timedelta(days=1), d0 + pd.Timedelta(days=2),
                     mission)
    assert len(c) != len(a) or not np.allclose(c.lon, a.lon)


def test_topex_interleaved_lies_between_jason_tracks():
    spacing = 360.0 / 127
    nodes = {}
    for name in ("Jason-1", "TOPEX/Poseidon interleaved"):
        pts = track_points((-180, 180), (-0.02, 0.02), "2012-10-01", "2012-10-11",
                           _by_name(name))
        asc = np.diff(pts.lat, prepend=-1) > 0
        nodes[name] = np.mod(pts.lon[asc], spacing)
    offset = np.mod(np.median(nodes["TOPEX/Poseidon interleaved"])
                    - np.median(nodes["Jason-1"]), spacing)
    assert abs(offset - spacing / 2) < 0.05


def test_sample_along_tracks_contract():
    field = _osse_like(20)
    obs = sample_along_tracks(field, noise_std=0.02, seed=0)
    assert obs.dims == ("time", "lat", "lon") and obs.shape == field.shape
    assert obs.dtype == np.float32
    for c in ("time", "lat", "lon"):
        np.testing.assert_array_equal(obs[c].values, field[c].values)
    assert obs.attrs["units"] == "m"
    assert "binned" in obs.attrs["long_name"]
    assert "Envisat" in obs.attrs["description"] and "0.02" in obs.attrs["description"]
    frac = obs.notnull().mean(("lat", "lon")).values
    assert np.all(frac > 0) and np.all(frac < 0.2)


def test_same_seed_same_obs_different_seed_different_noise():
    field = _osse_like(10)
    a = sample_along_tracks(field, seed=3)
    b = sample_along_tracks(field, seed=3)
    c = sample_along_tracks(field, seed=4)
    xr.testing.assert_identical(a, b)
    np.testing.assert_array_equal(a.notnull(), c.notnull())
    assert not np.allclose(a.fillna(0), c.fillna(0))


def test_noise_free_constant_field_is_observed_exactly():
    obs = sample_along_tracks(_osse_like(10, value=0.37), noise_std=0.0)
    seen = obs.values[np.isfinite(obs.values)]
    assert seen.size > 0
    np.testing.assert_allclose(seen, 0.37, rtol=1e-6)


def test_residual_matches_noise_averaged_over_samples_per_cell():
    noise = 0.02
    field = _osse_like(60, value=0.0)
    obs = sample_along_tracks(field, noise_std=noise, seed=1)
    df = along_track_samples(field, noise_std=noise, seed=1)
    counts = df.groupby(["time_index", "lat_index", "lon_index"]).size().to_numpy()
    expected = noise * np.sqrt(np.mean(1.0 / counts))
    resid = (obs - field).values
    resid = resid[np.isfinite(resid)]
    assert resid.size == counts.size
    assert abs(resid.std() / expected - 1) < 0.05
    assert 1.0 < counts.mean() < 4.0  # 6-7 km samples in ~10 km cells


def test_obs_close_to_truth_on_a_smooth_field():
    field = _osse_like(15, seed=2)
    obs = sample_along_tracks(field, noise_std=0.0)
    resid = (obs - field).values
    resid = resid[np.isfinite(resid)]
    # only the offset of the samples from the cell centres remains
    assert resid.std() < 0.1 * float(field.std())


def test_land_is_never_observed():
    field = mock_field(30, 40, 40, lat0=33.05, lon0=-64.95, step_deg=0.25, land=True)["ssh"]
    obs = sample_along_tracks(field)
    land = field.isel(time=0).isnull().values
    assert land.any()
    assert not np.isfinite(obs.values[:, land]).any()
    assert np.isfinite(obs.values[:, ~land]).any()


@pytest.mark.parametrize("n_lat,n_lon", [(5, 7), (2, 2), (13, 9)])
def test_tiny_and_odd_grids(n_lat, n_lon):
    field = mock_field(40, n_lat, n_lon, lat0=35.0, lon0=-60.0, step_deg=0.25)["ssh"]
    obs = sample_along_tracks(field)
    assert obs.shape == field.shape
    assert np.isfinite(obs.values).any()


def test_sub_daily_time_step_bins_to_nearest_step():
    field = _osse_like(4 * 10)
    field = field.assign_coords(time=pd.date_range("2012-10-01", periods=40, freq="6h"))
    obs = sample_along_tracks(field, noise_std=0.0)
    df = along_track_samples(field, noise_std=0.0)
    gap = np.abs(df["time"].to_numpy() - field["time"].values[df["time_index"].to_numpy()])
    assert gap.max() <= np.timedelta64(3, "h")
    assert "time step" in obs.attrs["long_name"]
    daily = sample_along_tracks(_osse_like(10))
    assert obs.notnull().mean() < daily.notnull().mean()


def test_box_across_the_antimeridian():
    field = mock_field(20, 20, 40, lat0=-10.0, lon0=170.0, step_deg=0.5)["ssh"]
    df = along_track_samples(field)
    assert len(df) > 0
    assert df["lon"].min() >= 169.75 and df["lon"].max() < 189.75
    assert df["lon"].max() > 180.0


def test_dask_backed_field_gives_the_same_obs():
    pytest.importorskip("dask")
    field = _osse_like(12, seed=5)
    eager = sample_along_tracks(field, seed=2)
    lazy = sample_along_tracks(field.chunk({"time": 5}), seed=2)
    xr.testing.assert_identical(eager, lazy)


def test_a_full_year_on_the_osse_grid():
    obs = sample_along_tracks(_osse_like(365, value=0.0), noise_std=0.02)
    frac = obs.notnull().mean(("lat", "lon")).values
    assert 0.005 < frac.min() and frac.max() < 0.2


@pytest.mark.parametrize("bad", ["dims", "descending", "one_lat"])
def test_bad_fields_raise_data_error(bad):
    field = _osse_like(3)
    if bad == "dims":
        field = field.rename(lat="y")
    elif bad == "descending":
        field = field.isel(lat=slice(None, None, -1))
    else:
        field = field.isel(lat=slice(0, 1))
    with pytest.raises(DataError):
        sample_along_tracks(field)


# ---------------------------------------------------------------- one day of orbit per step
def _coarse_field(n_time: int, freq: str, n_lat: int = 18, n_lon: int = 30,
                  step_deg: float = 5.0) -> xr.DataArray:
    """Zeros on a regular grid (default 5°, 18 x 30 cells: a 90° x 150° box)."""
    lat = -0.5 * step_deg * (n_lat - 1) + step_deg * np.arange(n_lat)
    lon = -72.5 + step_deg * np.arange(n_lon)
    return xr.DataArray(
        np.zeros((n_time, n_lat, n_lon), np.float32), dims=("time", "lat", "lon"),
        coords={"time": pd.date_range("1950-01-01", periods=n_time, freq=freq),
                "lat": lat, "lon": lon}, name="sst", attrs={"units": "degC"})


def _peak_bytes(fn, *args, **kw):
    tracemalloc.start()
    try:
        out = fn(*args, **kw)
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_yearly_steps_fly_one_day_per_step_in_little_memory():
    yearly = _coarse_field(50, "YS")  # 50 annual maps: 1 Hz over 50 years would be 22 GB
    obs, peak = _peak_bytes(sample_along_tracks, yearly, noise_std=0.0)
    assert obs.shape == yearly.shape and peak < 40e6
    assert "one day of orbit centred on each time step" in obs.attrs["description"]
    seen = obs.notnull().sum(("lat", "lon")).values
    assert seen.min() > 0
    # as many samples per step as a daily field gets, all within half a day of the step
    # (on a 0.5° box, to keep the sample tables small)
    small = _coarse_field(50, "YS", 20, 20, 0.5)
    df_year = along_track_samples(small, noise_std=0.0)
    df_day = along_track_samples(_coarse_field(30, "D", 20, 20, 0.5), noise_std=0.0)
    per_year = df_year.groupby("time_index").size().reindex(range(50), fill_value=0).to_numpy()
    per_day = df_day.groupby("time_index").size().to_numpy()
    assert 0.8 < per_year.mean() / per_day.mean() < 1.25
    assert per_year.max() < 3.0 * per_day.mean()
    gap = np.abs(df_year["time"].to_numpy() - small["time"].values[df_year["time_index"].to_numpy()])
    assert gap.max() <= np.timedelta64(12, "h")


def test_monthly_steps_see_one_day_each():
    monthly = _coarse_field(65, "MS", 20, 20, 0.5)
    df = along_track_samples(monthly, noise_std=0.0)
    daily = along_track_samples(_coarse_field(30, "D", 20, 20, 0.5), noise_std=0.0)
    ratio = len(df) / 65 / (len(daily) / 30)
    assert 0.7 < ratio < 1.4


def test_big_grid_needs_no_dense_float64_copies():
    field = _coarse_field(3, "MS", 1000, 1000, 0.05)  # 12 MB of float32 per copy
    obs, peak = _peak_bytes(sample_along_tracks, field, noise_std=0.01)
    assert obs.dtype == np.float32 and np.isfinite(obs.values).any()
    assert peak - obs.nbytes < 30e6  # a float64 (time, lat, lon) copy alone would be 24 MB


def test_daily_samples_do_not_depend_on_how_steps_are_grouped():
    # one step at a time gives the same samples as the whole record (noise drawn in order)
    field = _osse_like(6, seed=4)
    whole = along_track_samples(field, seed=7)
    first = along_track_samples(field.isel(time=slice(0, 3)), seed=7)
    n = len(first[first["time_index"] < 2])
    pd.testing.assert_frame_equal(whole.iloc[:n].reset_index(drop=True),
                                  first.iloc[:n].reset_index(drop=True))
