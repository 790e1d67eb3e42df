"""Wide-swath (SWOT-like) sampling and merged observations (data/tracks.py)."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from data.synthetic import mock_field
from data.tracks import (
    DEFAULT_MISSIONS,
    SWOT,
    SWOT_ORBIT,
    Swath,
    along_track_samples,
    merge_observations,
    sample_along_tracks,
    sample_swath,
    track_points,
)
from oceanlab_errors import DataError

BOX_LON, BOX_LAT = (-65.0, -55.0), (33.0, 43.0)
R_KM = 6371.0


def _osse_like(n_time: int, value: float | None = None, **kw) -> xr.DataArray:
    """A daily 100 × 100 field on the OSSE's 0.1° grid (lon −65…−55, lat 33…43)."""
    da = mock_field(n_time, 100, 100, lat0=33.05, lon0=-64.95, step_deg=0.1, **kw)["ssh"]
    if value is not None:
        da = xr.full_like(da, value)
    return da


def _linear(n_time: int, a=0.3, b=0.02, c=-0.05) -> xr.DataArray:
    """``a + b·lon + c·lat`` (float64) on the OSSE grid: bilinear interpolation is exact."""
    da = _osse_like(n_time, value=0.0).astype(np.float64)
    return (a + b * da["lon"] + c * da["lat"] + 0 * da).transpose("time", "lat", "lon")


def _gc_km(lon1, lat1, lon2, lat2):
    """Great-circle distance (km), broadcasting."""
    lon1, lat1, lon2, lat2 = map(np.radians, (lon1, lat1, lon2, lat2))
    cosd = (np.sin(lat1) * np.sin(lat2)
            + np.cos(lat1) * np.cos(lat2) * np.cos(lon1 - lon2))
    return R_KM * np.arccos(np.clip(cosd, -1.0, 1.0))


def _seconds(times) -> np.ndarray:
    """Seconds since the SWOT orbit's reference node crossing."""
    ref = np.datetime64(pd.Timestamp(SWOT_ORBIT.ref_time).to_datetime64(), "ns")
    return (np.asarray(times, "datetime64[ns]") - ref) / np.timedelta64(1, "s")


# ------------------------------------------------------------------------------ geometry
def test_swot_orbit_and_pixel_grid():
    m = SWOT.mission
    assert (m.inclination_deg, m.repeat_days, m.revs_per_cycle) == (77.6, 21, 292)
    assert math.gcd(m.revs_per_cycle, m.repeat_days) == 1  # no shorter exact repeat
    # exact 21-day cycle: 103.56 min, within 0.7 % of the real 6173.62 s (AVISO)
    assert abs(m.period_s - 21 * 86400 / 292) < 1e-9
    assert abs(m.period_s / 6173.62 - 1) < 0.007
    x = SWOT.cross_track_km
    assert x.size == 50 and np.all(np.diff(x) > 0)
    np.testing.assert_allclose(x[25:], np.arange(11.0, 60.0, 2.0))  # 2 km pixel centres
    np.testing.assert_allclose(x[:25], -x[25:][::-1])
    assert SWOT.subsamples == 3 and 2.0 < SWOT.along_step_km < 2.3
    # 1 cm on 10 km x 10 km means = 1 cm x 10 km / sqrt(pixel area) per pixel
    np.testing.assert_allclose(SWOT.noise_per_sample(0.01, 10.0),
                               0.1 / math.sqrt(2.0 * SWOT.along_step_km))


def test_pixels_lie_across_the_ground_track():
    t = np.arange(0.0, SWOT_ORBIT.period_s, 13.7)
    lon, lat, pas = SWOT.positions(t)
    nlon, nlat, npas = SWOT_ORBIT.positions(t)
    np.testing.assert_array_equal(pas, npas)
    # each pixel is |x| km from its nadir point ...
    d = _gc_km(nlon[:, None], nlat[:, None], lon, lat)
    np.testing.assert_allclose(d, np.broadcast_to(np.abs(SWOT.cross_track_km), d.shape),
                               atol=1e-6)
    # ... and as far from the nadir point a moment before as a moment after (perpendicular)
    blon, blat, _ = SWOT_ORBIT.positions(t - 0.5)
    alon, alat, _ = SWOT_ORBIT.positions(t + 0.5)
    np.testing.assert_allclose(_gc_km(blon[:, None], blat[:, None], lon, lat),
                               _gc_km(alon[:, None], alat[:, None], lon, lat), atol=1e-5)
    # at the ascending node (heading north-north-east) the right swath lies to the east
    assert lon[0, -1] > nlon[0] > lon[0, 0]


def test_swath_pattern_repeats_every_21_days():
    d0 = pd.Timestamp("2012-11-03")
    day = pd.Timedelta(days=1)
    a = track_points(BOX_LON, BOX_LAT, d0, d0 + day, (SWOT,))
    b = track_points(BOX_LON, BOX_LAT, d0 + 21 * day, d0 + 22 * day, (SWOT,))
    assert len(a) > 1000 and len(a) == len(b)
    np.testing.assert_allclose(a.lon, b.lon, atol=1e-6)
    np.testing.assert_allclose(a.lat, b.lat, atol=1e-6)
    assert np.all(b.time - a.time == np.timedelta64(21, "D"))


# ------------------------------------------------------------------------------ sampling
def test_sample_swath_contract():
    field = _osse_like(5)
    obs = sample_swath(field, noise_std=0.02, seed=0)
    assert obs.dims == ("time", "lat", "lon") and obs.shape == field.shape
    assert obs.dtype == np.float32
    for c in ("time", "lat", "lon"):
        np.testing.assert_array_equal(obs[c].values, field[c].values)
    assert obs.attrs["units"] == "m" and obs.attrs["missions"] == "SWOT KaRIn"
    assert obs.attrs["noise_std"] == 0.02 and obs.attrs["seed"] == 0
    assert obs.attrs["swath_inner_km"] == 10.0 and obs.attrs["swath_outer_km"] == 60.0
    assert "binned" in obs.attrs["long_name"] and "per pixel" in obs.attrs["description"]


def test_linear_field_is_observed_exactly():
    field = _linear(3)
    lon_c, lat_c = field["lon"].values, field["lat"].values
    df = along_track_samples(field, noise_std=0.0, missions=(SWOT,))
    assert len(df) > 10_000
    # each pixel: the plane at its position (held constant beyond the outer cell centres)
    plane = (0.3 + 0.02 * np.clip(df["lon"], lon_c[0], lon_c[-1])
             - 0.05 * np.clip(df["lat"], lat_c[0], lat_c[-1]))
    np.testing.assert_allclose(df["truth"], plane, atol=1e-12)
    np.testing.assert_array_equal(df["value"], df["truth"])
    # each observed cell: the mean of its pixels, and only cells holding pixels are observed
    obs = sample_swath(field, noise_std=0.0)
    cell = df.assign(plane=plane).groupby(["time_index", "lat_index", "lon_index"])["plane"]
    expected = cell.mean()
    k, i, j = (expected.index.get_level_values(n).to_numpy() for n in
               ("time_index", "lat_index", "lon_index"))
    np.testing.assert_allclose(obs.values[k, i, j], expected.to_numpy(), rtol=0, atol=1e-6)
    assert int(obs.notnull().sum()) == expected.size
    # and it is the field at a point of the cell: within half a cell of its centre value
    resid = np.abs(obs - field).values
    assert np.nanmax(resid) <= 0.02 * 0.05 + 0.05 * 0.05 + 1e-6


def test_one_pass_has_a_nadir_gap_and_a_120_km_footprint():
    field = _osse_like(2, value=0.0)
    df = along_track_samples(field, noise_std=0.0, missions=(SWOT,))
    lat_c, lon_c = field["lat"].values, field["lon"].values
    checked = 0
    for _number, one in df.groupby("pass_number"):
        if len(one) < 5000:  # passes cutting a corner of the box
            continue
        t = _seconds(one["time"].to_numpy())
        tn = np.arange(t.min() - 15.0, t.max() + 15.0, 0.1)  # nadir every ~0.65 km
        nlon, nlat, _ = SWOT_ORBIT.positions(tn)
        nlon = np.mod(nlon - BOX_LON[0], 360.0) + BOX_LON[0]
        # pixels: 10 to 60 km from the ground track
        step = 8
        d_pix = _gc_km(one["lon"].to_numpy()[::step, None], one["lat"].to_numpy()[::step, None],
                       nlon[None, :], nlat[None, :]).min(axis=1)
        assert 9.99 < d_pix.min() and d_pix.max() < 60.01
        # observed cells, and the cross-track distance of every cell centre of the box
        seen = np.zeros((lat_c.size, lon_c.size), bool)
        seen[one["lat_index"], one["lon_index"]] = True
        glat, glon = np.meshgrid(lat_c, lon_c, indexing="ij")
        d = np.full(glat.shape, np.inf)
        interior = np.zeros(glat.shape, bool)  # nearest nadir point not at the pass's ends
        for r in range(lat_c.size):
            dist = _gc_km(glon[r, :, None], glat[r, :, None], nlon[None, :], nlat[None, :])
            near = dist.argmin(axis=1)
            d[r] = dist[np.arange(lon_c.size), near]
            interior[r] = (near > 200) & (near < tn.size - 200)
        half_diag = 0.5 * np.hypot(11.12, 11.12 * np.cos(np.radians(glat)))  # km
        assert d[seen].min() >= 10.0 - half_diag[seen].max()  # the nadir gap
        assert d[seen].max() <= 60.0 + half_diag[seen].max()  # 2 x 60 km wide at most
        mid_swath = interior & (d > 20.0) & (d < 50.0)
        assert mid_swath.sum() > 100 and seen[mid_swath].all()  # cells at ~35 km are seen
        assert not seen[interior & (d < 3.0)].any()
        checked += 1
    assert checked >= 1


def test_coverage_of_the_osse_box_over_a_cycle():
    # Derivation: at 38° N tracks of one direction are 1.233° of longitude apart (292 per
    # cycle), 104 km across them (heading 15.8° off north), and the two swaths cover 100 km
    # of each 104: each direction sees ~96 % of the box once per cycle, so a cell is seen
    # ~2 times in 21 days (AVISO: 2-4 at mid-latitudes) and ~2 x 0.96 / 21 = 9 % of the box
    # a day; cells left unseen are where the gaps of both directions cross (a few %).
    obs = sample_swath(_osse_like(21, value=0.0), noise_std=0.0)
    seen = obs.notnull().values
    daily = seen.mean(axis=(1, 2))
    cycle = seen.any(axis=0).mean()
    visits = seen.sum(axis=0)
    assert 0.95 < cycle < 1.0  # mostly covered, with gaps
    assert 0.07 < daily.mean() < 0.13
    assert daily.max() < 0.3 and (daily == 0).any()  # some days no pass crosses the box
    assert np.median(visits) == 2 and visits.max() <= 5


def test_coverage_repeats_after_21_days():
    obs = sample_swath(_osse_like(45, value=0.0), noise_std=0.02, seed=1)
    seen = obs.notnull().values
    for d in range(45 - 21):
        np.testing.assert_array_equal(seen[d], seen[d + 21])
    assert any(not np.array_equal(seen[d], seen[d + 1]) for d in range(20))
    # the noise does not repeat
    assert not np.allclose(np.nan_to_num(obs.values[:21]), np.nan_to_num(obs.values[21:42]))


def test_same_seed_same_obs_different_seed_different_noise():
    field = _osse_like(8, seed=3)
    a = sample_swath(field, seed=3)
    b = sample_swath(field, seed=3)
    c = sample_swath(field, seed=4)
    xr.testing.assert_identical(a, b)
    np.testing.assert_array_equal(a.notnull(), c.notnull())
    assert not np.allclose(a.fillna(0), c.fillna(0))
    # the same as flying the swath with sample_along_tracks
    np.testing.assert_array_equal(
        a.values, sample_along_tracks(field, seed=3, missions=(SWOT,)).values)


def test_residual_matches_pixel_noise_averaged_over_pixels_per_cell():
    noise = 0.02
    field = _osse_like(12, value=0.0)
    obs = sample_swath(field, noise_std=noise, seed=5)
    df = along_track_samples(field, noise_std=noise, seed=5, missions=(SWOT,))
    counts = df.groupby(["time_index", "lat_index", "lon_index"]).size().to_numpy()
    resid = obs.values[np.isfinite(obs.values)]
    assert resid.size == counts.size > 1000
    expected = noise * np.sqrt(np.mean(1.0 / counts))
    assert abs(resid.std() / expected - 1) < 0.05
    assert abs(resid.mean()) < 3 * expected / math.sqrt(resid.size)
    assert 12.0 < np.median(counts) < 30.0  # ~22 pixels of 4.3 km² in a 97 km² cell
    # per-pixel noise is as asked
    assert abs(df["value"].std() / noise - 1) < 0.02


def test_land_is_never_observed():
    field = mock_field(6, 40, 40, lat0=33.05, lon0=-64.95, step_deg=0.25, land=True)["ssh"]
    obs = sample_swath(field)
    land = field.isel(time=0).isnull().values
    assert land.any()
    assert not np.isfinite(obs.values[:, land]).any()
    assert np.isfinite(obs.values[:, ~land]).any()


def test_dask_backed_field_gives_the_same_obs():
    pytest.importorskip("dask")
    field = _osse_like(6, seed=5)
    xr.testing.assert_identical(sample_swath(field, seed=2),
                                sample_swath(field.chunk({"time": 4}), seed=2))


def test_a_year_on_the_osse_grid_in_little_memory():
    field = _osse_like(365, value=0.0)
    tracemalloc.start()
    try:
        obs = sample_swath(field, noise_std=0.02)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - obs.nbytes < 40e6
    daily = obs.notnull().mean(("lat", "lon")).values
    assert 0.07 < daily.mean() < 0.13
    # every 21-day cycle covers the box the same way
    cycles = [obs.notnull().values[s:s + 21].any(axis=0) for s in range(0, 345, 21)]
    assert all(np.array_equal(c, cycles[0]) for c in cycles)


# ------------------------------------------------------------------------------ merging
def _grid(values) -> xr.DataArray:
    v = np.asarray(values, dtype=np.float32).reshape(1, 2, 2)
    return xr.DataArray(v, dims=("time", "lat", "lon"),
                        coords={"time": pd.date_range("2012-10-01", periods=1),
                                "lat": [33.05, 33.15], "lon": [-64.95, -64.85]},
                        name="ssh_obs", attrs={"units": "m", "missions": "x"})


def test_merge_observations_values():
    a = _grid([1.0, np.nan, 3.0, np.nan])
    b = _grid([2.0, 5.0, np.nan, np.nan])
    c = _grid([6.0, np.nan, np.nan, np.nan])
    m = merge_observations(a, b, c)
    np.testing.assert_allclose(m.values.ravel(), [3.0, 5.0, 3.0, np.nan])
    assert m.dtype == np.float32 and m.attrs["units"] == "m" and m.name == "ssh_obs"
    xr.testing.assert_identical(merge_observations([a, b, c]), m)
    xr.testing.assert_equal(merge_observations(a), a)


def test_merge_nadir_and_swath():
    field = _osse_like(6, value=0.25)
    nadir = sample_along_tracks(field, noise_std=0.0)
    swath = sample_swath(field, noise_std=0.0)
    m = merge_observations(nadir, swath)
    np.testing.assert_array_equal(m.notnull(), nadir.notnull() | swath.notnull())
    np.testing.assert_allclose(m.values[np.isfinite(m.values)], 0.25, rtol=1e-6)
    assert "SWOT KaRIn" in m.attrs["missions"] and "Envisat" in m.attrs["missions"]
    # mixing the instruments in one call observes the union too
    both = sample_along_tracks(field, noise_std=0.0, missions=DEFAULT_MISSIONS + (SWOT,))
    np.testing.assert_array_equal(both.notnull(), m.notnull())
    assert "SWOT KaRIn" in both.attrs["description"]


def test_merge_refuses_other_grids():
    a = _grid([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(DataError):
        merge_observations()
    with pytest.raises(DataError):
        merge_observations(a, a.assign_coords(lat=[33.0, 33.2]))
    with pytest.raises(DataError):
        merge_observations(a, a.rename(lat="y"))
    with pytest.raises(DataError):
        merge_observations(a, a.values)


# ------------------------------------------------------------------------------ bad input
def test_bad_input_raises_data_error():
    field = _osse_like(2)
    with pytest.raises(DataError):
        sample_swath(field, swath=SWOT_ORBIT)
    with pytest.raises(DataError):
        sample_swath(field, noise_std=-0.01)
    with pytest.raises(DataError, match="sample_swath"):
        sample_swath(field.rename(lat="y"))
    with pytest.raises(DataError):
        Swath("bad", SWOT_ORBIT, inner_km=60.0, outer_km=10.0)
    with pytest.raises(DataError):
        Swath("bad", SWOT_ORBIT, cross_spacing_km=0.0)
    with pytest.raises(DataError):
        SWOT.noise_per_sample(0.01, 0.0)


def test_custom_swath_geometry():
    # a narrower swath without a gap, 5 km pixels: fewer pixels, same orbit
    narrow = Swath("narrow", SWOT_ORBIT, inner_km=0.0, outer_km=30.0, cross_spacing_km=5.0,
                   along_spacing_km=5.0)
    assert narrow.n_cross == 6 and narrow.subsamples == 1
    d0 = pd.Timestamp("2012-11-03")
    wide = track_points(BOX_LON, BOX_LAT, d0, d0 + pd.Timedelta(days=2), (SWOT,))
    pts = track_points(BOX_LON, BOX_LAT, d0, d0 + pd.Timedelta(days=2), (narrow,))
    assert 0 < len(pts) < len(wide) / 5
    assert set(np.unique(pts.pass_number)) <= set(np.unique(wide.pass_number))
