"""Loading any gridded NetCDF into the canonical form, and one-line errors for bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from data.canonical import fingerprint, open_dataset, summarize
from oceanlab_errors import DataError
from data.synthetic import mock_field


def _write(ds: xr.Dataset, path, **kw):
    ds.to_netcdf(path, **kw)
    return path


def test_plain_file_is_canonical(mock_nc, mock_ds):
    ds = open_dataset(mock_nc)
    assert list(ds["ssh"].dims) == ["time", "lat", "lon"]
    assert ds["ssh"].dtype == np.float32
    assert ds["ssh"].attrs["units"] == "m"
    assert np.all(np.diff(ds["lat"].values) > 0)
    np.testing.assert_array_equal(ds["mask"].values, mock_ds["mask"].values)
    xr.testing.assert_allclose(ds["ssh"], mock_ds["ssh"].astype(np.float32))


def test_odd_names_descending_lat_0_360_depth_and_fill_values(tmp_path, mock_ds):
    src = mock_ds.drop_vars("mask")[["ssh"]]
    odd = src.rename({"lat": "nav_lat", "lon": "nav_lon", "time": "time_counter", "ssh": "sossheig"})
    odd = odd.assign_coords(nav_lon=(odd.nav_lon + 360.0) % 360.0)
    odd = odd.isel(nav_lat=slice(None, None, -1)).expand_dims(deptht=[0.5])
    odd = odd.transpose("time_counter", "deptht", "nav_lat", "nav_lon")
    odd["sossheig"] = odd["sossheig"].fillna(-999.0)
    path = _write(odd, tmp_path / "odd.nc", encoding={"sossheig": {"_FillValue": -999.0}})
    ds = open_dataset(path)
    assert set(ds["sossheig"].dims) == {"time", "lat", "lon"}
    assert ds["lon"].min() >= -180 and ds["lon"].max() <= 180
    assert np.all(np.diff(ds["lat"].values) > 0)
    xr.testing.assert_allclose(ds["sossheig"].rename("ssh").drop_vars([], errors="ignore"),
                               mock_ds["ssh"].astype(np.float32), atol=1e-6)
    assert ds["mask"].sum() == mock_ds["mask"].sum()


def test_cf_attributes_find_unusual_coordinate_names(tmp_path):
    ds = mock_field(n_time=12, n_lat=6, n_lon=8)
    odd = ds.drop_vars("mask").rename({"lat": "yy", "lon": "xx", "time": "tt"})
    odd["yy"].attrs = {"standard_name": "latitude", "units": "degrees_north"}
    odd["xx"].attrs = {"standard_name": "longitude", "units": "degrees_east"}
    out = open_dataset(_write(odd, tmp_path / "cf.nc"))
    assert out["ssh"].dims == ("time", "lat", "lon")
    assert out.sizes == {"time": 12, "lat": 6, "lon": 8}


def test_antimeridian_domain_keeps_0_360(tmp_path):
    ds = mock_field(n_time=12, n_lat=5, n_lon=8, lon0=170.0, step_deg=2.0).drop_vars("mask")
    out = open_dataset(_write(ds, tmp_path / "pacific.nc"))
    lon = out["lon"].values
    assert np.all(np.diff(lon) > 0)
    assert lon.min() == pytest.approx(170.0) and lon.max() == pytest.approx(184.0)


def test_unsorted_coordinates_are_sorted(tmp_path, mock_ds):
    shuffled = mock_ds.drop_vars("mask").isel(lon=np.random.default_rng(0).permutation(mock_ds.sizes["lon"]))
    out = open_dataset(_write(shuffled, tmp_path / "shuffled.nc"))
    assert np.all(np.diff(out["lon"].values) > 0)
    xr.testing.assert_allclose(out["ssh"], mock_ds["ssh"].astype(np.float32))


@pytest.mark.parametrize("calendar", ["noleap", "360_day"])
def test_non_standard_calendars_become_dates(tmp_path, calendar):
    ds = mock_field(n_time=40, n_lat=4, n_lon=5).drop_vars("mask")
    ds = ds.assign_coords(time=xr.date_range("2001-01-01", periods=40, calendar=calendar, use_cftime=True))
    out = open_dataset(_write(ds, tmp_path / f"{calendar}.nc"))
    assert isinstance(out.indexes["time"], pd.DatetimeIndex)
    assert out.indexes["time"][0] == pd.Timestamp("2001-01-01")


def test_glob_opens_lazily_with_dask(tmp_path, mock_ds):
    src = mock_ds.drop_vars("mask")
    for k in range(3):
        src.isel(time=slice(20 * k, 20 * (k + 1))).to_netcdf(tmp_path / f"part{k}.nc")
    out = open_dataset(str(tmp_path / "part*.nc"))
    assert out["ssh"].chunks is not None
    assert out.sizes["time"] == 60
    xr.testing.assert_allclose(out["ssh"].compute(), mock_ds["ssh"].astype(np.float32))


def test_summary_reports_grid_time_and_ocean_fraction(mock_nc):
    s = summarize(open_dataset(mock_nc))
    assert s["grid"]["n_lat"] == 20 and s["grid"]["n_lon"] == 24
    assert s["grid"]["dlat_deg"] == pytest.approx(0.25)
    assert s["time"]["n_time"] == 60 and s["time"]["start"] == "2012-10-01"
    assert s["time"]["step"].startswith("1 days")
    assert s["time"]["step_text"] == "1 day"  # what the Data page and inspect print
    assert s["ocean_fraction"] == pytest.approx(1 - 5 * 6 / (20 * 24))
    assert s["variables"]["ssh"]["units"] == "m"
    assert s["variables"]["ssh"]["kind"] == "field" and s["notes"] is None


def test_fingerprint_changes_with_content(tmp_path, mock_ds):
    a = _write(mock_ds.drop_vars("mask"), tmp_path / "a.nc")
    b = _write((mock_ds.drop_vars("mask") + 1.0), tmp_path / "b.nc")
    assert fingerprint(a) == fingerprint(a)
    assert fingerprint(a) != fingerprint(b)


# --- bad input: one line naming the file and the problem ------------------------------


def _bad_cases(tmp_path, mock_ds):
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a NetCDF file\n")
    good = _write(mock_ds.drop_vars("mask"), tmp_path / "good.nc")
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    nolatlon = _write(xr.Dataset({"a": (("time", "p"), np.zeros((3, 4)))},
                                 coords={"time": pd.date_range("2000", periods=3)}), tmp_path / "nolatlon.nc")
    allnan = _write(mock_ds.drop_vars("mask").assign(ssh=lambda d: d.ssh * np.nan)[["ssh"]], tmp_path / "allnan.nc")
    dup = mock_ds.drop_vars("mask").isel(lat=[0, 1, 1, 2])
    dup_path = _write(dup, tmp_path / "dup.nc")
    empty = tmp_path / "empty"
    empty.mkdir()
    return [
        (text, "not a NetCDF file"),
        (truncated, "truncated file"),
        (nolatlon, "no latitude/longitude"),
        (allnan, "NaN everywhere"),
        (dup_path, "repeated lat"),
        (empty, "is a directory"),  # without NetCDF files (a folder of files opens)
        (tmp_path / "missing.nc", "no such file"),
        (str(tmp_path / "nothing*.nc"), "no file matches"),
    ]


def test_bad_inputs_raise_one_line_data_errors(tmp_path, mock_ds):
    for path, expected in _bad_cases(tmp_path, mock_ds):
        with pytest.raises(DataError) as info:
            open_dataset(path)
        message = str(info.value)
        assert expected in message, (path, message)
        assert str(path) in message or str(path).split("/")[-1] in message
        assert "\n" not in message


def test_unknown_variable_lists_the_available_ones(mock_nc):
    with pytest.raises(DataError, match=r"unknown variable 'sst'.*available: ssh, ssh_obs"):
        open_dataset(mock_nc, variables=["sst"])


@pytest.mark.parametrize(("step", "text"), [
    ("1D", "1 day"), ("6h", "6 hours"), ("1D12h", "1 day 12 hours"), ("30min", "30 minutes"),
    ("31D", "1 month"), ("365D", "1 year"), ("2D", "2 days"), (None, None)])
def test_time_steps_read_as_people_write_them(step, text):
    from data.canonical import describe_step

    assert describe_step(step) == text
