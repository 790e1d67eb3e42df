"""Big and awkward inputs (issue 11): a directory or glob of daily files and a Zarr store open
lazily; ``data.region`` / ``data.period`` (``--region``, ``--period``) cut the lazy dataset
before anything is loaded; mixed calendars across a file set are one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from backend.config import build_config
from data import canonical
from data.canonical import open_dataset
from oceanlab_errors import ConfigError, DataError

LAT = np.linspace(10.0, 30.0, 21)  # 1° steps
LON = np.linspace(-20.0, 9.0, 30)


def _field(t: int, lat=LAT, lon=LON) -> np.ndarray:
    y, x = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    return (0.1 * np.sin(3 * x + 0.2 * t) * np.cos(2 * y) + 0.01 * t).astype(np.float32)


def _day(t: int, start="2010-01-01", lat=LAT, lon=LON, calendar=None) -> xr.Dataset:
    time = pd.date_range(start, periods=t + 1)[-1:]
    ds = xr.Dataset({"ssh": (("time", "lat", "lon"), _field(t, lat, lon)[None],
                             {"units": "m"})},
                    coords={"time": time, "lat": ("lat", lat, {"units": "degrees_north"}),
                            "lon": ("lon", lon, {"units": "degrees_east"})})
    if calendar:
        ds["time"].encoding.update(calendar=calendar, units="days since 2000-01-01")
    return ds


def _daily_files(folder: Path, n: int = 10, **kw) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(n):
        day = _day(t, **kw)
        day.to_netcdf(folder / f"ssh_{pd.Timestamp(day['time'].values[0]):%Y%m%d}.nc")
    return folder


def _is_dask(da: xr.DataArray) -> bool:
    return da.chunks is not None


def test_directory_of_daily_files_opens_lazily(tmp_path):
    folder = _daily_files(tmp_path / "daily")
    ds = open_dataset(folder)
    assert ds.sizes == {"time": 10, "lat": 21, "lon": 30}
    assert _is_dask(ds["ssh"])
    assert str(pd.Timestamp(ds["time"].values[0]).date()) == "2010-01-01"
    np.testing.assert_allclose(ds["ssh"].isel(time=3).values, _field(3), rtol=1e-6)


def test_glob_of_daily_files_opens_lazily(tmp_path):
    folder = _daily_files(tmp_path / "daily")
    (folder / "readme.txt").write_text("not data\n")
    ds = open_dataset(str(folder / "ssh_*.nc"))
    assert ds.sizes["time"] == 10 and _is_dask(ds["ssh"])


def test_zarr_store_opens_lazily_and_is_cut(tmp_path):
    ds0 = xr.concat([_day(t) for t in range(10)], dim="time")
    store = tmp_path / "ssh.zarr"
    ds0.to_zarr(store, mode="w", consolidated=False)
    ds = open_dataset(store)
    assert ds.sizes == {"time": 10, "lat": 21, "lon": 30} and _is_dask(ds["ssh"])
    cut = open_dataset(store, region="-10,0,15,20", period="2010-01-03,2010-01-05")
    assert cut.sizes == {"time": 3, "lat": 6, "lon": 11}
    # a store without the .zarr suffix is recognised from its metadata
    plain = tmp_path / "store"
    ds0.to_zarr(plain, mode="w", consolidated=False)
    assert open_dataset(plain).sizes["time"] == 10
    # same path checks as files: a fingerprint of its files, an unreadable store refused
    assert canonical.fingerprint(store).startswith("sha256:")


def test_region_and_period_cut_keep_exact_coordinates(tmp_path):
    folder = _daily_files(tmp_path / "daily")
    ds = open_dataset(folder, region=(-10.0, 0.0, 15.0, 20.0),
                      period=("2010-01-03", "2010-01-05"))
    np.testing.assert_array_equal(ds["lon"].values, LON[(LON >= -10) & (LON <= 0)])
    np.testing.assert_array_equal(ds["lat"].values, LAT[(LAT >= 15) & (LAT <= 20)])
    assert [str(pd.Timestamp(t).date()) for t in ds["time"].values] == [
        "2010-01-03", "2010-01-04", "2010-01-05"]
    assert _is_dask(ds["ssh"])  # still lazy after the cut
    expected = _field(3)[np.ix_((LAT >= 15) & (LAT <= 20), (LON >= -10) & (LON <= 0))]
    np.testing.assert_allclose(ds["ssh"].isel(time=1).values, expected, rtol=1e-6)
    assert ds.attrs["oceanlab_region"] == "-10,0,15,20"
    assert ds.attrs["oceanlab_period"] == "2010-01-03,2010-01-05"
    assert "cut to region" in ds.attrs["oceanlab_notes"]


def test_nothing_is_computed_before_the_cut(tmp_path, monkeypatch):
    """The first computation (the fill-value scan) already sees only the cut."""
    folder = _daily_files(tmp_path / "daily")
    seen = []
    original = canonical._mask_fill_values

    def spy(da, *args):
        seen.append((da.shape, da.chunks is not None))
        return original(da, *args)

    monkeypatch.setattr(canonical, "_mask_fill_values", spy)
    ds = open_dataset(folder, region="-10,0,15,20", period="2010-01-03,2010-01-05")
    assert seen == [((3, 6, 11), True)]
    assert ds["mask"].shape == (6, 11)


def test_region_across_the_antimeridian(tmp_path):
    lon = np.arange(-180.0, 180.0, 10.0)
    folder = _daily_files(tmp_path / "global", n=3, lat=LAT, lon=lon)
    ds = open_dataset(folder, region="160,-170,10,20")
    np.testing.assert_array_equal(ds["lon"].values, [160.0, 170.0, 180.0, 190.0])
    np.testing.assert_allclose(ds["ssh"].isel(time=0).values[:, -1],
                               _field(0, LAT, lon)[LAT <= 20, 1], rtol=1e-6)  # 190 = -170


def test_empty_cut_names_the_file_and_the_extent(tmp_path):
    folder = _daily_files(tmp_path / "daily")
    with pytest.raises(DataError) as info:
        open_dataset(folder, region="100,120,15,20")
    msg = str(info.value)
    assert "\n" not in msg and str(folder) in msg
    assert "holds no grid point" in msg and "lon -20..9, lat 10..30" in msg
    with pytest.raises(DataError) as info:
        open_dataset(folder, period="2011-01-01,2011-02-01")
    msg = str(info.value)
    assert "\n" not in msg and str(folder) in msg
    assert "holds no time step" in msg and "2010-01-01..2010-01-10" in msg


def test_mixed_calendars_are_one_line_naming_two_files(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    _day(0, calendar="standard").to_netcdf(folder / "a.nc")
    _day(1, calendar="noleap").to_netcdf(folder / "b.nc")
    with pytest.raises(DataError) as info:
        open_dataset(folder)
    msg = str(info.value)
    assert "\n" not in msg and "mixed calendars" in msg
    assert "a.nc" in msg and "b.nc" in msg and "'standard'" in msg and "'noleap'" in msg


def test_directory_without_data_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is a directory, not a regular file, and neither holds"):
        open_dataset(tmp_path / "empty")


@pytest.mark.parametrize("field, value, words", [
    ("region", "1,2,3", "four numbers"),
    ("region", "a,b,c,d", "four numbers"),
    ("region", "0,10,40,20", "lat0 < lat1"),
    ("region", "0,10,-95,20", "lat0 < lat1"),
    ("region", "-200,10,0,20", "-180..360"),
    ("region", "5,5,0,20", "no width"),
    ("period", "2010-01-01", "two dates"),
    ("period", "2010-13-01,2010-12-31", "not an ISO date"),
    ("period", "2010-02-01,2010-01-01", "ends before it starts"),
])
def test_bad_region_or_period_is_one_line(field, value, words):
    with pytest.raises(ConfigError) as info:
        build_config(overrides={f"data.{field}": value})
    msg = str(info.value)
    assert "\n" not in msg and f"data.{field}" in msg and words in msg, msg


def test_region_and_period_accept_strings_and_lists():
    a = build_config(overrides={"data.region": "-10, 0, 15, 20",
                                "data.period": "2010-01-03,2010-01-05"})
    b = build_config(overrides={"data.region": [-10, 0, 15, 20],
                                "data.period": ["2010-01-03", "2010-01-05"]})
    assert a.data.region == b.data.region == [-10.0, 0.0, 15.0, 20.0]
    assert a.data.period == b.data.period == ["2010-01-03", "2010-01-05"]
    assert build_config().data.region is None


def test_cli_train_on_a_directory_with_region_and_period(tmp_path, capsys):
    from app.cli import main

    folder = _daily_files(tmp_path / "daily", n=40)
    runs = tmp_path / "runs"
    code = main(["train", "--model", "oi", "--data", str(folder), "--region", "-10,0,12,22",
                 "--period", "2010-01-05,2010-02-05", "--runs-dir", str(runs), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "done"
    run = runs / result["run_id"]
    info = json.loads((run / "run.json").read_text())
    assert info["data"]["region"] == [-10.0, 0.0, 12.0, 22.0]
    assert info["data"]["period"] == ["2010-01-05", "2010-02-05"]
    with xr.open_dataset(run / "prediction.nc") as pred:
        np.testing.assert_array_equal(pred["lon"].values, LON[(LON >= -10) & (LON <= 0)])
        np.testing.assert_array_equal(pred["lat"].values, LAT[(LAT >= 12) & (LAT <= 22)])
        times = pd.DatetimeIndex(pred["time"].values)
        assert times.min() >= pd.Timestamp("2010-01-05")
        assert times.max() <= pd.Timestamp("2010-02-05")


def test_cli_region_with_a_negative_first_longitude():
    from app import cli

    argv = cli._join_negative_values(["train", "--region", "-60,-30,20,45", "--period",
                                      "2010-01-01,2010-02-01", "--model", "oi"])
    args = cli.build_parser().parse_args(argv)
    config = cli._config_from_args(args)
    assert config.data.region == [-60.0, -30.0, 20.0, 45.0]
    assert config.data.period == ["2010-01-01", "2010-02-01"]
