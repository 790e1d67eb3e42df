"""Curvilinear (NEMO-like) grids regridded onto a regular grid, and ADT turned into anomalies
with a mean dynamic topography (data/regrid.py, issue 11)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from app.cli import main
from data import regrid
from data.canonical import open_dataset
from data.regrid import apply_mdt
from oceanlab_errors import DataError

ANGLE = np.radians(20.0)
STEP = 0.25


def _nemo_grid(ny=30, nx=40):
    """A rotated grid: 2-D nav_lat/nav_lon of a 0.25° mesh turned by 20°."""
    j, i = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    lon = -60.0 + STEP * (i * np.cos(ANGLE) - j * np.sin(ANGLE))
    lat = 30.0 + STEP * (i * np.sin(ANGLE) + j * np.cos(ANGLE))
    return lat, lon


def _analytic(lat, lon, t):
    return 1.5 * lat - 0.7 * lon + 0.1 * t


def _nemo_file(path, nt=12, ny=30, nx=40, land=True, var="sossheig", units="m"):
    lat, lon = _nemo_grid(ny, nx)
    t = np.arange(nt, dtype=float)[:, None, None]
    values = _analytic(lat[None], lon[None], t)
    if land:
        values[:, :6, :6] = np.nan  # a land corner (source rows/cols 0..5)
    ds = xr.Dataset(
        {var: (("time_counter", "y", "x"), values.astype("f8"), {"units": units}),
         "e1t": (("y", "x"), np.full((ny, nx), 25e3))},  # a grid metric: not a field
        coords={"time_counter": ("time_counter", pd.date_range("2001-01-01", periods=nt)),
                "nav_lat": (("y", "x"), lat, {"standard_name": "latitude",
                                              "units": "degrees_north"}),
                "nav_lon": (("y", "x"), lon, {"standard_name": "longitude",
                                              "units": "degrees_east"})})
    ds = ds.set_coords("e1t")
    ds.to_netcdf(path)
    return path, lat, lon


def _inside_rotated(lat, lon, ny, nx, margin=0.0):
    """Grid coordinates (j, i) of points; True where strictly inside the source mesh."""
    x, y = (lon + 60.0) / STEP, (lat - 30.0) / STEP
    i = x * np.cos(ANGLE) + y * np.sin(ANGLE)
    j = -x * np.sin(ANGLE) + y * np.cos(ANGLE)
    inside = (i > margin) & (i < nx - 1 - margin) & (j > margin) & (j < ny - 1 - margin)
    return inside, j, i


def test_linear_regrid_is_exact_inside_and_nan_outside(tmp_path):
    path, _, _ = _nemo_file(tmp_path / "curvi.nc")
    ds = open_dataset(path)
    assert ds.sizes["time"] == 12 and "e1t" not in ds
    np.testing.assert_allclose(np.diff(ds["lat"].values), STEP)
    np.testing.assert_allclose(np.diff(ds["lon"].values), STEP)
    glat, glon = xr.broadcast(ds["lat"], ds["lon"])
    inside, j, i = _inside_rotated(glat.values, glon.values, 30, 40)
    sea = inside & ~((j < 6) & (i < 6))  # away from the land corner (and its coast)
    sea_far = inside & ((j > 6) | (i > 6))
    got = ds["sossheig"].values
    for t in (0, 5, 11):
        expected = _analytic(glat.values, glon.values, t)
        np.testing.assert_allclose(got[t][sea_far], expected[sea_far], rtol=0, atol=2e-5)
    outside = ~_inside_rotated(glat.values, glon.values, 30, 40, margin=-1e-6)[0]
    assert np.isnan(got[:, outside]).all()  # off the source grid: NaN
    land = inside & (j < 4.5) & (i < 4.5)  # well inside the land corner
    assert land.any() and np.isnan(got[:, land]).all()
    assert ds["mask"].values[sea].all() and not ds["mask"].values[land].any()
    text = ds.attrs["oceanlab_regrid"]
    assert text.startswith("linear from 2-D nav_lat/nav_lon (NEMO) on y×x = 30×40, 0.25° grid")
    assert ds["sossheig"].attrs["oceanlab_regrid"] == text
    assert "regridded linear" in ds.attrs["oceanlab_notes"]


def test_lazy_regrid_by_time_chunks_matches_eager(tmp_path, monkeypatch):
    path, _, _ = _nemo_file(tmp_path / "curvi.nc")
    with xr.open_dataset(path) as src:  # a 3-D NEMO field too: (time, deptht, y, x)
        src = src.load()
    src["votemper"] = (src["sossheig"] * 0.5).expand_dims(deptht=[0.5, 10.0], axis=1)
    src.to_netcdf(tmp_path / "curvi3d.nc")
    eager = open_dataset(tmp_path / "curvi3d.nc")
    assert "votemper: took deptht[0] of 2" in eager.attrs["oceanlab_notes"]
    np.testing.assert_allclose(eager["votemper"].values, eager["sossheig"].values * 0.5,
                               rtol=1e-6)
    monkeypatch.setattr(regrid, "CHUNK_BYTES", 30 * 40 * 8 * 5)  # blocks of 5 steps
    blocks = open_dataset(tmp_path / "curvi3d.nc")
    assert blocks["sossheig"].chunks is None
    np.testing.assert_array_equal(blocks["sossheig"].values, eager["sossheig"].values)
    monkeypatch.setattr(regrid, "EAGER_BYTES", 0)  # lazy: Dask chunks of 5 steps
    lazy = open_dataset(tmp_path / "curvi3d.nc")
    assert lazy["sossheig"].chunks is not None and lazy["sossheig"].chunks[0][0] == 5
    np.testing.assert_array_equal(lazy["sossheig"].values, eager["sossheig"].values)
    np.testing.assert_array_equal(lazy["votemper"].values, eager["votemper"].values)


def test_nearest_takes_the_nearest_source_value(tmp_path):
    path, lat, lon = _nemo_file(tmp_path / "curvi.nc", land=False)
    ds = open_dataset(path, regrid="nearest", regrid_step_deg=0.5)
    np.testing.assert_allclose(np.diff(ds["lat"].values), 0.5)
    assert ds.attrs["oceanlab_regrid"].startswith("nearest from 2-D nav_lat/nav_lon")
    assert "0.5° grid" in ds.attrs["oceanlab_regrid"]
    got = ds["sossheig"].values[3]
    src = _analytic(lat, lon, 3.0).ravel()
    pts = np.column_stack([lon.ravel(), lat.ravel()])
    n_checked = 0
    for a, la in enumerate(ds["lat"].values):
        for b, lo in enumerate(ds["lon"].values):
            d = np.hypot(pts[:, 0] - lo, pts[:, 1] - la)
            if d.min() > 1.5 * STEP:
                assert np.isnan(got[a, b])
                continue
            assert got[a, b] == pytest.approx(src[np.argmin(d)], abs=1e-4)
            n_checked += 1
    assert n_checked > 100


def test_regrid_none_refuses_with_the_way_to_enable_it(tmp_path):
    path, _, _ = _nemo_file(tmp_path / "nemo.nc")
    with pytest.raises(DataError) as info:
        open_dataset(path, regrid="none")
    message = str(info.value)
    assert "\n" not in message
    assert message == (f"{path}: curvilinear grid (2-D nav_lat/nav_lon (NEMO) on y×x = 30×40); "
                       f"regridding is off (data.regrid: none); set data.regrid to linear or "
                       f"nearest (e.g. --set data.regrid=linear) to put it on a regular "
                       f"latitude/longitude grid")


def test_two_dimensional_coordinates_of_a_regular_grid_are_not_interpolated(tmp_path):
    lat1, lon1 = np.linspace(30, 33, 4), np.linspace(-60, -56, 5)
    lat, lon = np.meshgrid(lat1, lon1, indexing="ij")
    values = np.random.default_rng(0).normal(size=(12, 4, 5))
    ds = xr.Dataset({"sst": (("time", "y", "x"), values)},
                    coords={"time": pd.date_range("2001-01-01", periods=12),
                            "latitude": (("y", "x"), lat), "longitude": (("y", "x"), lon)})
    ds.to_netcdf(tmp_path / "rect2d.nc")
    out = open_dataset(tmp_path / "rect2d.nc", regrid="none")  # nothing to interpolate
    np.testing.assert_allclose(out["lat"].values, lat1)
    np.testing.assert_allclose(out["sst"].values, values, rtol=1e-6)
    assert out.attrs["oceanlab_regrid"].startswith("none: 2-D latitude/longitude")


def test_train_on_a_curvilinear_file_records_the_regrid(tmp_path, capsys):
    path, _, _ = _nemo_file(tmp_path / "curvi.nc", nt=24, ny=16, nx=20)
    runs = tmp_path / "runs"
    code = main(["train", "--data", str(path), "--task", "interpolation", "--model", "oi",
                 "--set", "data.regrid=nearest", "--set", "data.regrid_step_deg=0.5",
                 "--set", "model.lx_deg=1.0", "--runs-dir", str(runs), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "done"
    info = json.loads((runs / result["run_id"] / "run.json").read_text())
    assert info["data"]["regrid"].startswith("nearest from 2-D nav_lat/nav_lon (NEMO) on "
                                             "y×x = 16×20, 0.5° grid")
    assert info["data"]["fingerprint"].startswith("sha256:")
    assert info["config"]["data"]["regrid"] == "nearest"


# ---------------------------------------------------------------------------- ADT - MDT
def _adt_file(path, units="cm", name="adt", standard_name="sea_surface_height_above_geoid",
              mdt_var=False):
    lat, lon = np.linspace(30.0, 34.0, 9), np.linspace(-60.0, -55.0, 11)
    t = np.arange(12.0)
    glat, glon = np.meshgrid(lat, lon, indexing="ij")
    values = 10.0 * glat[None] + 2.0 * glon[None] + t[:, None, None]
    attrs = {"units": units, "standard_name": standard_name} if standard_name else {"units": units}
    ds = xr.Dataset({name: (("time", "lat", "lon"), values, attrs)},
                    coords={"time": pd.date_range("2001-01-01", periods=12), "lat": lat, "lon": lon})
    if mdt_var:
        ds["mdt"] = (("lat", "lon"), 0.01 * (3.0 * glat + glon), {"units": "m"})
    ds.to_netcdf(path)
    return path


def _mdt_file(path, units="m"):
    """An MDT linear in lat/lon on a coarser grid (0..360 longitudes): interpolation is exact."""
    lat, lon = np.linspace(28.0, 36.0, 5), np.linspace(295.0, 307.0, 7)
    glat, glon = np.meshgrid(lat, lon, indexing="ij")
    factor = {"m": 0.01, "cm": 1.0, "mm": 10.0}.get(units, 0.01)
    value = factor * (3.0 * glat + (glon - 360.0))  # 3 lat + lon centimetres
    xr.Dataset({"mdt": (("latitude", "longitude"), value, {"units": units})},
               coords={"latitude": ("latitude", lat, {"standard_name": "latitude"}),
                       "longitude": ("longitude", lon, {"standard_name": "longitude"})}
               ).to_netcdf(path)
    return path


@pytest.mark.parametrize("mdt_units", ["m", "cm"])
def test_adt_minus_mdt_is_exact_and_recorded(tmp_path, mdt_units):
    path = _adt_file(tmp_path / "adt.nc")
    mdt = _mdt_file(tmp_path / "mdt.nc", mdt_units)
    ds = apply_mdt(open_dataset(path), None, f"{mdt}:mdt")
    glat, glon = xr.broadcast(ds["lat"], ds["lon"])
    expected = (10.0 * glat + 2.0 * glon) - (3.0 * glat + glon)
    for t in (0, 7):
        np.testing.assert_allclose(ds["adt"].values[t], expected.values + t, atol=1e-4)
    how = ds["adt"].attrs["oceanlab_anomaly"]
    assert how.startswith(f"anomaly = adt − mdt ({mdt}:mdt, linear interpolation onto the data grid")
    assert ("m × 100" in how) == (mdt_units == "m")
    assert ds.attrs["oceanlab_anomaly"] == how and how in ds.attrs["oceanlab_notes"]
    assert "standard_name" not in ds["adt"].attrs and ds["adt"].attrs["units"] == "cm"


def test_mdt_variable_of_the_same_file(tmp_path):
    path = _adt_file(tmp_path / "both.nc", mdt_var=True)
    ds = apply_mdt(open_dataset(path), "adt", "mdt")
    glat, glon = xr.broadcast(ds["lat"], ds["lon"])
    expected = (10.0 * glat + 2.0 * glon) - (3.0 * glat + glon)
    np.testing.assert_allclose(ds["adt"].values[2], expected.values + 2, atol=1e-4)
    assert ds.attrs["oceanlab_anomaly"] == ("anomaly = adt − mdt (variable 'mdt' of the file, "
                                            "mdt m × 100)")


def test_mdt_with_units_that_do_not_convert(tmp_path):
    path = _adt_file(tmp_path / "adt.nc")
    mdt = _mdt_file(tmp_path / "mdt_degc.nc", "degC")
    with pytest.raises(DataError) as info:
        apply_mdt(open_dataset(path), None, str(mdt), str(path))
    assert str(info.value) == (f"{path}: units of 'adt' ('cm') and of the mean dynamic "
                               f"topography {mdt}:mdt ('degC') do not match and cannot be "
                               f"converted (known: m, cm, mm)")


def test_mdt_for_a_variable_that_is_not_adt(tmp_path):
    path = _adt_file(tmp_path / "sla.nc", name="sla", standard_name=None)
    mdt = _mdt_file(tmp_path / "mdt.nc")
    with pytest.raises(DataError, match=re.escape(
            f"{path}: data.mdt is given but 'sla' is not an absolute dynamic topography")):
        apply_mdt(open_dataset(path), None, str(mdt), str(path))


def test_train_with_an_mdt_records_the_anomaly(tmp_path, capsys):
    path = _adt_file(tmp_path / "adt.nc")
    mdt = _mdt_file(tmp_path / "mdt.nc")
    runs = tmp_path / "runs"
    code = main(["train", "--data", str(path), "--task", "interpolation", "--model", "oi",
                 "--set", f"data.mdt={mdt}:mdt", "--runs-dir", str(runs), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    info = json.loads((runs / json.loads(out)["run_id"] / "run.json").read_text())
    assert info["data"]["anomaly"].startswith(f"anomaly = adt − mdt ({mdt}:mdt")
