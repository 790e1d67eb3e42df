"""Along-track observation files (issue 11): specs, reading, units, cuts, gridding, and an
interpolation run with one mission held out."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from data.alongtrack import grid_tracks, is_track_spec, parse_obs_spec, read_tracks
from oceanlab_errors import DataError


def write_track(path, times, lat, lon, values, *, var="sla_unfiltered", units="m", attrs=None,
                extra=None, packed=False):
    """A file in the 2021a OSE layout: 1-D ``time`` with longitude/latitude coordinates."""
    times = pd.to_datetime(times, format="ISO8601") if not isinstance(times, pd.DatetimeIndex) else times
    ds = xr.Dataset(
        {var: ("time", np.asarray(values, np.float64), {"units": units, "long_name": "SLA"})},
        coords={"time": ("time", times), "latitude": ("time", np.asarray(lat, np.float64)),
                "longitude": ("time", np.asarray(lon, np.float64))},
        attrs=attrs or {})
    for name, vals in (extra or {}).items():
        ds[name] = ("time", np.asarray(vals, np.float64), {"units": units})
    encoding = {"time": {"units": "days since 1950-01-01", "dtype": "float64"}}
    if packed:
        encoding[var] = {"dtype": "int16", "scale_factor": 0.001, "add_offset": 0.0,
                         "_FillValue": np.int16(-32767)}
    ds.to_netcdf(path, encoding=encoding)
    return path


# ------------------------------------------------------------------------------- specs
def test_parse_obs_spec_and_is_track_spec(tmp_path):
    assert parse_obs_spec("dir/*.nc:sla_filtered") == ("dir/*.nc", "sla_filtered")
    assert parse_obs_spec("dir/*.nc") == ("dir/*.nc", None)
    assert parse_obs_spec(" /data/c2.nc:sla ") == ("/data/c2.nc", "sla")
    assert parse_obs_spec("tracks.nc") == ("tracks.nc", None)
    odd = tmp_path / "a:b"  # an existing name with a colon stays a path
    odd.write_bytes(b"x")
    assert parse_obs_spec(str(odd)) == (str(odd), None)
    assert is_track_spec("dir/x.nc") and is_track_spec("*.nc") and is_track_spec("x.nc:sla")
    assert is_track_spec("tracks.nc4") and is_track_spec("store.zarr")
    assert not is_track_spec("ssh_obs") and not is_track_spec("simulation")
    assert not is_track_spec("") and not is_track_spec("sla_unfiltered")


# ------------------------------------------------------------------------------- reading
@pytest.fixture
def three_missions(tmp_path):
    """j3 (m, attr mission), s3a (cm, attr platform), c2 (packed, mission from the DUACS
    file name, one fill value)."""
    d = tmp_path / "obs"
    d.mkdir()
    write_track(d / "j3.nc", ["2012-10-02T06", "2012-10-01T12", "2012-10-03"],
                [34.0, 35.0, 36.0], [-64.0, -63.0, 296.0], [0.10, 0.20, 0.30],
                attrs={"mission": "j3"})
    write_track(d / "s3a.nc", ["2012-10-01T00", "2012-10-02T00"], [34.5, 35.5],
                [-64.5, -63.5], [12.0, -4.0], units="cm", attrs={"platform": "s3a"})
    write_track(d / "dt_global_c2_phy_l3_20121001.nc",
                ["2012-10-01T18", "2012-10-02T18", "2012-10-03T18"], [34.2, 35.2, 36.2],
                [-64.2, -63.2, -62.2], [0.05, np.nan, -0.123], packed=True)
    return d


def test_read_tracks_from_a_glob_keeps_missions_and_converts_units(three_missions):
    tracks = read_tracks(str(three_missions / "*.nc"), target_units="m")
    assert tuple(tracks.dims) == ("obs",) and tracks.sizes["obs"] == 7  # c2's fill dropped
    assert tracks["time"].dtype == np.dtype("datetime64[ns]")
    assert np.all(np.diff(tracks["time"].values) >= np.timedelta64(0))
    got = {(str(m), round(float(v), 6)) for m, v in zip(tracks["mission"].values,
                                                          tracks["value"].values)}
    assert got == {("j3", 0.1), ("j3", 0.2), ("j3", 0.3), ("s3a", 0.12), ("s3a", -0.04),
                   ("c2", 0.05), ("c2", -0.123)}
    assert tracks["value"].dtype == np.float64 and tracks["value"].attrs["units"] == "m"
    assert tracks["value"].attrs["source_variable"] == "sla_unfiltered"
    assert tracks.attrs["variable"] == "sla_unfiltered"
    assert len(json.loads(tracks.attrs["files"])) == 3
    # 296° E is written -64° E; the first sample in time is s3a's at 2012-10-01T00
    assert float(tracks["lon"].max()) <= 180 and -64.0 in tracks["lon"].values
    assert str(tracks["mission"].values[0]) == "s3a"


def test_cm_to_m_and_m_to_cm(tmp_path):
    f = write_track(tmp_path / "cm.nc", ["2012-10-01"], [35.0], [-64.0], [12.5], units="cm")
    assert float(read_tracks(str(f), target_units="m")["value"][0]) == pytest.approx(0.125)
    g = write_track(tmp_path / "m.nc", ["2012-10-01"], [35.0], [-64.0], [0.125])
    assert float(read_tracks(str(g), target_units="cm")["value"][0]) == pytest.approx(12.5)
    assert float(read_tracks(str(g))["value"][0]) == pytest.approx(0.125)  # no target
    # no target: later files are converted to the first file's units (cm.nc < m.nc)
    both = read_tracks(str(tmp_path / "*.nc"))
    assert both["value"].attrs["units"] == "cm"
    assert both["value"].values.tolist() == pytest.approx([12.5, 12.5])


def test_unconvertible_units_name_both(tmp_path):
    f = write_track(tmp_path / "sst.nc", ["2012-10-01"], [35.0], [-64.0], [20.0], units="degC")
    with pytest.raises(DataError) as e:
        read_tracks(str(f), target_units="m")
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg and "'degC'" in msg and "'m'" in msg


def test_several_candidates_are_listed_and_a_variable_picks(tmp_path):
    f = write_track(tmp_path / "both.nc", ["2012-10-01", "2012-10-02"], [35.0, 35.0],
                    [-64.0, -64.0], [0.1, 0.2], extra={"sla_filtered": [0.15, 0.25]})
    with pytest.raises(DataError) as e:
        read_tracks(str(f))
    msg = str(e.value)
    assert str(f) in msg and "sla_unfiltered" in msg and "sla_filtered" in msg
    assert ":sla_" in msg  # says how to choose
    tracks = read_tracks(f"{f}:sla_filtered")
    assert tracks["value"].values.tolist() == pytest.approx([0.15, 0.25])
    assert tracks.attrs["variable"] == "sla_filtered"
    # one observation-like name among other numbers is the obvious candidate
    g = write_track(tmp_path / "one.nc", ["2012-10-01"], [35.0], [-64.0], [0.1],
                    extra={"mdt": [0.5], "lwe": [0.01]})
    assert read_tracks(str(g)).attrs["variable"] == "sla_unfiltered"
    with pytest.raises(DataError, match="no variable 'adt'"):
        read_tracks(f"{g}:adt")


def test_missing_file_and_missing_coordinates(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_tracks(str(tmp_path / "nothing.nc"))
    with pytest.raises(DataError, match="no file matches"):
        read_tracks(str(tmp_path / "none*.nc"))
    f = tmp_path / "nolat.nc"
    xr.Dataset({"sla": ("time", [0.1])},
               coords={"time": pd.to_datetime(["2012-10-01"])}).to_netcdf(f)
    with pytest.raises(DataError) as e:
        read_tracks(str(f))
    assert str(f) in str(e.value) and "lat/lon" in str(e.value)


def test_region_and_period_cut_and_empty_region_error(three_missions):
    pattern = str(three_missions / "*.nc")
    tracks = read_tracks(pattern, lon_range=(-64.6, -63.9), lat_range=(33.9, 34.6),
                         period=("2012-10-01", "2012-10-02T12"), target_units="m")
    # j3 (34, -64) on Oct 2 06h, s3a (34.5, -64.5) on Oct 1, c2 (34.2, -64.2) Oct 1 18h
    assert sorted(tracks["mission"].values.tolist()) == ["c2", "j3", "s3a"]
    tracks = read_tracks(pattern, period=("2012-10-03", "2012-10-04"))
    assert sorted(tracks["mission"].values.tolist()) == ["c2", "j3"]  # c2 on the 3rd
    # longitudes compared modulo 360: a 0-360 box holds the same samples
    east = read_tracks(pattern, lon_range=(295.4, 296.1), lat_range=(33.9, 34.6))
    assert sorted(east["mission"].values.tolist()) == ["c2", "j3", "s3a"]
    one = three_missions / "j3.nc"
    with pytest.raises(DataError) as e:
        read_tracks(str(one), lon_range=(0, 10), lat_range=(0, 10))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(one)) and "no observation" in msg
    with pytest.raises(DataError, match=r"\(3 files\): no observation"):
        read_tracks(pattern, period=("2013-01-01", "2013-02-01"))


def test_mission_from_per_day_file_names(tmp_path):
    for day in ("20121001", "20121002"):
        write_track(tmp_path / f"alg_{day}.nc", [f"{day[:4]}-{day[4:6]}-{day[6:]}"], [35.0],
                    [-64.0], [0.1])
    assert read_tracks(str(tmp_path / "alg_*.nc"))["mission"].values.tolist() == ["alg", "alg"]


# ------------------------------------------------------------------------------- gridding
def test_grid_tracks_means_counts_edges_and_outside():
    grid = xr.DataArray(np.zeros((2, 2, 3)), dims=("time", "lat", "lon"),
                        coords={"time": pd.to_datetime(["2012-10-01", "2012-10-02"]),
                                "lat": [10.0, 11.0], "lon": [20.0, 21.0, 22.0]})
    def t(x):
        return pd.to_datetime(x, format="ISO8601")

    tracks = xr.Dataset(
        {"value": ("obs", [1.0, 3.0, 5.0, 7.0, 100.0, 200.0, 9.0, 300.0], {"units": "m"})},
        coords={"time": ("obs", t(["2012-10-01T00", "2012-10-01T11", "2012-10-01T12",
                                   "2012-10-02T11:59", "2012-10-02T12", "2012-09-30T11:59",
                                   "2012-09-30T12", "2012-10-01"])),
                "lat": ("obs", [10.0, 10.49, 10.5, 11.4, 10.0, 10.0, 9.5, 11.5]),
                "lon": ("obs", [20.0, 20.4, 21.5, 21.9, 20.0, 20.0, 19.5, 20.0]),
                "mission": ("obs", ["a"] * 8)})
    mean, count = grid_tracks(tracks, grid)
    assert mean.dims == ("time", "lat", "lon") and count.dtype == np.int64
    expected_count = np.zeros((2, 2, 3), int)
    expected_count[0, 0, 0] = 3  # 1, 3 (same cell) and 9 (lower edges of time, lat and lon)
    # 5: 12h goes to the next day, lat 10.5 to the cell of 11, lon 21.5 to that of 22; 7
    expected_count[1, 1, 2] = 2
    # 100 (upper time edge), 200 (before the first step), 300 (upper lat edge): outside
    assert count.values.tolist() == expected_count.tolist()
    assert float(mean[0, 0, 0]) == pytest.approx((1 + 3 + 9) / 3)
    assert float(mean[1, 1, 2]) == 6.0
    assert int(np.isfinite(mean.values).sum()) == 2 and mean.attrs["units"] == "m"
    # a 0-360 grid takes the same samples written -180..180
    grid360 = grid.assign_coords(lon=[200.0, 201.0, 202.0])
    shifted = tracks.assign_coords(lon=tracks["lon"] - 180.0)  # -160.5 is 199.5 E
    assert grid_tracks(shifted, grid360)[1].values.tolist() == expected_count.tolist()


# ------------------------------------------------------------------------------- a run
@pytest.fixture
def grid_and_tracks(tmp_path, mock_ds):
    """The 60-day mock grid and three missions sampling its ssh (j3 in m, s3a in cm, c2
    packed), a few hundred samples per mission and day."""
    path = tmp_path / "grid.nc"
    mock_ds[["ssh"]].to_netcdf(path)
    ssh = mock_ds["ssh"]
    lat, lon = ssh["lat"].values, ssh["lon"].values
    d = tmp_path / "obs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name, units, scale, packed in (("j3", "m", 1.0, False), ("s3a", "cm", 100.0, False),
                                       ("c2", "m", 1.0, True)):
        times, la, lo = [], [], []
        for k, day in enumerate(pd.DatetimeIndex(ssh["time"].values)):
            n = 60
            times.append(day + pd.to_timedelta(rng.uniform(-0.5, 0.5, n), "D"))
            la.append(rng.uniform(lat[0] - 0.2, lat[-1] + 0.3, n))  # some beyond the grid
            lo.append(rng.uniform(lon[0] - 0.1, lon[-1] + 0.1, n))
        times = pd.DatetimeIndex(np.concatenate(times)).round("s")
        la, lo = np.concatenate(la), np.concatenate(lo)
        near = ssh.sel(time=xr.DataArray(times, dims="p"),
                       lat=xr.DataArray(la, dims="p"), lon=xr.DataArray(lo, dims="p"),
                       method="nearest")
        values = np.asarray(near.values, np.float64) * scale
        write_track(d / f"{name}.nc", times, la, lo, values, units=units,
                    attrs={"mission": name}, packed=packed)
    return path, d


def test_train_oi_with_alongtrack_files_and_a_held_out_mission(capsys, grid_and_tracks,
                                                               tmp_path):
    from app.cli import main

    grid, obs_dir = grid_and_tracks
    runs = tmp_path / "runs"
    code = main(["train", "--model", "oi", "--data", str(grid), "--var", "ssh",
                 "--obs", f"{obs_dir}/*.nc", "--set", "data.holdout=c2",
                 "--runs-dir", str(runs), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "done"
    info = json.loads((runs / result["run_id"] / "run.json").read_text())
    rec = info["data"]["observations"]
    assert rec["missions"] == ["j3", "s3a"] and rec["heldout"] == ["c2"]
    assert set(rec["samples"]) == {"j3", "s3a", "c2"} and all(rec["samples"].values())
    assert info["config"]["data"]["holdout"] == "c2"
    pred = xr.open_dataset(runs / result["run_id"] / "prediction.nc")
    obs = pred["obs"]
    assert obs.attrs["missions"] == "j3, s3a" and obs.attrs["heldout_missions"] == "c2"
    assert json.loads(obs.attrs["counts"]).keys() == {"j3", "s3a"}
    assert result["metrics"]["rmse"] < 0.1  # the real observations were used
    try:
        import metrics.alongtrack  # noqa: F401
    except ImportError:
        return
    # the held-out mission scores the map (over the test period only)
    assert 0 < result["metrics"]["n_alongtrack"] <= rec["samples"]["c2"]
    assert result["metrics"]["rmse_alongtrack"] < 0.1


def test_held_out_samples_are_not_inputs(grid_and_tracks, mock_ds):
    from data.tasks.interpolation import build_interpolation_task

    _, obs_dir = grid_and_tracks
    spec = f"{obs_dir}/*.nc"
    ds = mock_ds[["ssh", "mask"]]
    both = build_interpolation_task(ds, "ssh", spec)
    held = build_interpolation_task(ds, "ssh", spec, holdout=["C2"])  # any case
    only_inputs = build_interpolation_task(ds, "ssh", [f"{obs_dir}/j3.nc", f"{obs_dir}/s3a.nc"])
    assert both.heldout_tracks is None and both.observations["heldout"] == []
    np.testing.assert_array_equal(held.obs.values, only_inputs.obs.values)
    assert int(held.obs_count.sum()) == int(only_inputs.obs_count.sum())
    assert int(held.obs_count.sum()) < int(both.obs_count.sum())
    tracks = held.heldout_tracks
    assert set(tracks["mission"].values.tolist()) == {"c2"}
    test = held.times("test")
    assert tracks.sizes["obs"] == held.observations["heldout_test_samples"] > 0
    assert tracks["time"].values.min() >= (test[0] - pd.Timedelta("12h")).to_datetime64()
    assert tracks["time"].values.max() < (test[-1] + pd.Timedelta("12h")).to_datetime64()
    # the values were converted from cm and gridded: the obs lie on the truth's scale
    diff = (held.obs - held.truth).values
    assert np.nanmax(np.abs(diff)) < 0.2
    with pytest.raises(DataError) as e:
        build_interpolation_task(ds, "ssh", spec, holdout="swot")
    assert "'swot'" in str(e.value) and "j3, s3a, c2" in str(e.value)
    with pytest.raises(DataError, match="needs along-track observation files"):
        build_interpolation_task(ds, "ssh", "simulation", holdout="c2")


def test_cli_refuses_missing_and_empty_track_files(capsys, grid_and_tracks, tmp_path):
    from app.cli import main

    grid, _ = grid_and_tracks
    runs = tmp_path / "runs"
    code = main(["train", "--model", "oi", "--data", str(grid), "--obs",
                 f"{tmp_path}/nowhere/*.nc", "--runs-dir", str(runs)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no file matches" in err and "\n" not in err
    assert not runs.exists() or not any(runs.iterdir())  # refused before any run folder
    far = write_track(tmp_path / "far.nc", ["2012-10-05"], [-40.0], [100.0], [0.1])
    code = main(["train", "--model", "oi", "--data", str(grid), "--obs", str(far),
                 "--runs-dir", str(runs)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and str(far) in err and "no observation" in err and "\n" not in err


def test_reuse_key_follows_the_content_of_the_track_files(three_missions):
    from backend.reuse import reuse_key

    cfg = {"data": {"path": "grid.nc", "obs": f"{three_missions}/*.nc:sla_unfiltered"},
           "model": {"name": "oi"}}
    first = reuse_key(cfg, "sha256:grid", code="c")
    assert reuse_key(cfg, "sha256:grid", code="c") == first
    write_track(three_missions / "j3.nc", ["2012-10-02"], [34.0], [-64.0], [0.5],
                attrs={"mission": "j3"})
    assert reuse_key(cfg, "sha256:grid", code="c") != first
    plain = {"data": {"path": "grid.nc", "obs": "ssh_obs"}, "model": {"name": "oi"}}
    assert reuse_key(plain, "sha256:grid", code="c")  # a variable name: no file looked up
