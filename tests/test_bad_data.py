"""A catalogue of bad or awkward data files, each with its exact expected outcome.

Every file is made by the test itself in ``tmp_path``. A case either expects a
:class:`~oceanlab_errors.DataError` whose message is one line naming the file and the problem,
or a correct load whose values are checked (masked fill values counted, notes read).
"""

from __future__ import annotations

import base64
import json
import os
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from data import canonical
from data.canonical import open_dataset, summarize
from data.tasks import build_interpolation_task
from oceanlab_errors import DataError

# A plain HDF5 file as h5py writes it (datasets time(4), lat(3), lon(5), ssh(4, 3, 5) =
# arange(60) / 100, no dimension scales), for machines without h5py.
_PLAIN_HDF5 = """
eNrtmD1s00AUx892UyxT1EYKSsrQGnVpB5ChHTLU7wI0JEPoF0gwZEgErRpRAlVSCcpAl0iFxQtLGVjC0CkLSxak
Kgx0SAemLCxZWNIhSxhYwnN8F+JUjZAKgoj7KdI/9+7du/P53cl6L6NzN89pFzRio6pkgIyQTpqMxYvuNu9PMJWY
7jDdk7ldavUFmN3L4nf73VkOh23vZhd8HmPAUZUI/kei4WuLtt5j7UmmB7LbL5t6tGLrejLbaq8/Trc0k1lz5anx
i/NKZNAZI/G2k8mS5BhYWrZVwX67x6tTlqshMnOWzDQVp9+DVrtflmXJyWcnniLx1NZd8w/heL4OH7psplPZDLZH
cX77JI20l6a6nu+8HUntPJuh3/Iebs8vzEkdt8RTT29/fu53Bnv78adOBHr78fOvK/2dzxJmQq+8Utr5dNq80gPu
N0G6bur+2A+eZp5T70cw4L5B/s39+DvUKfvDLgs1FLmxEGtt4Ag5dr/YPEg+y+iZVPr+in7VMIxLxhX8dUQ8GBa7
KhAIBAKBQCAQCAQCQX8ArB5AmYaYzu+3ZPuWo4Tpdoy1Y/vH6zpBRxV3/ZTXuXh95yT7z7rPOPPRiV8l/hdtv5Pq
Pgnd8ah3PduaeL0CgUAgEPwBtMrErFbJz1qlBuqEeViOmVZp05yKWybazaOlItrKZiFSRXvDLI55YCo+DG92RwH9
4bnvMhwtBSFuXQccC6Z2FwqRJIznHgLGAfzggOJYDjbMVzjOgurWaxy7C8vFtzg+Dx8bexijANPT7zFOEd49+YCx
SuArfMJ4ZcjVPmPMCnyb/IJxq7C6+hVj16CSr2P8BkSr38H++IlbMsW1UV/hDN0wNXpYHqK4TpqreWl1y0dNzU9/
AGcjuDk="""


# ------------------------------------------------------------------------------ writers
def _grid_ds(nt: int = 12, ny: int = 4, nx: int = 5, *, var: str = "sst", values=None,
             lat=None, lon=None, time=None, units: str = "degC") -> xr.Dataset:
    """A small dataset with CF coordinates; ``values`` default to 10 + a smooth ramp."""
    lat = np.linspace(30.0, 33.0, ny) if lat is None else np.asarray(lat, dtype=float)
    lon = np.linspace(-60.0, -56.0, nx) if lon is None else np.asarray(lon, dtype=float)
    time = pd.date_range("2001-01-01", periods=nt) if time is None else time
    if values is None:
        values = (10.0 + np.arange(nt * len(lat) * len(lon)) / 10.0).reshape(nt, len(lat), len(lon))
    return xr.Dataset(
        {var: (("time", "lat", "lon"), np.asarray(values, dtype=np.float32),
               {"units": units, "long_name": "sea surface temperature"})},
        coords={"time": time,
                "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
                "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"})},
    )


def _write(ds: xr.Dataset, path: Path, **kw) -> Path:
    ds.to_netcdf(path, **kw)
    return path


def _nc4(path: Path, nt: int = 12, ny: int = 4, nx: int = 5, *, time=None, time_attrs=None,
         lat=None, lon=None) -> netCDF4.Dataset:
    """An open netCDF4 file with time/lat/lon written (close it after adding variables)."""
    nc = netCDF4.Dataset(path, "w")
    nc.createDimension("time", nt)
    nc.createDimension("lat", ny)
    nc.createDimension("lon", nx)
    t = nc.createVariable("time", "f8", ("time",), fill_value=-1.0 if time_attrs is None else None)
    for k, v in ({"units": "days since 2001-01-01"} if time_attrs is None else time_attrs).items():
        t.setncattr(k, v)
    t[:] = np.arange(nt, dtype=float) if time is None else time
    la = nc.createVariable("lat", "f8", ("lat",))
    la.units, la.standard_name = "degrees_north", "latitude"
    la[:] = np.linspace(30.0, 33.0, ny) if lat is None else lat
    lo = nc.createVariable("lon", "f8", ("lon",))
    lo.units, lo.standard_name = "degrees_east", "longitude"
    lo[:] = np.linspace(-60.0, -56.0, nx) if lon is None else lon
    return nc


def _plain_hdf5(path: Path) -> Path:
    try:
        import h5py
    except ImportError:
        path.write_bytes(zlib.decompress(base64.b64decode("".join(_PLAIN_HDF5.split()))))
        return path
    with h5py.File(path, "w") as f:
        f["time"] = np.arange(4.0)
        f["time"].attrs["units"] = "days since 2000-01-01"
        f["lat"] = np.array([30.0, 31.0, 32.0])
        f["lon"] = np.array([-60.0, -59.0, -58.0, -57.0, -56.0])
        f["ssh"] = np.arange(60, dtype="f4").reshape(4, 3, 5) / 100
    return path


def _plant(values: np.ndarray, sentinel: float, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Copy of ``values`` with ``n`` random points set to ``sentinel``, and where."""
    out = np.array(values, dtype=np.float64)
    where = np.zeros(out.shape, dtype=bool)
    where.flat[np.random.default_rng(seed).choice(out.size, n, replace=False)] = True
    out[where] = sentinel
    return out, where


# ------------------------------------------------------------------------------ cases
@dataclass
class Case:
    """``path`` opened with ``open_dataset(path, variables)``; then either ``error`` (regex
    the one-line DataError message must match; ``names`` must appear in it) or ``check``
    (asserts on the dataset). ``task`` cases then build the interpolation task."""

    path: Path | str
    error: str | None = None
    names: str | None = None
    check: Callable[[xr.Dataset], None] | None = None
    variables: list[str] | None = None
    task: dict | None = None
    task_error: str | None = None


CASES: dict[str, Callable[[Path, pytest.MonkeyPatch], Case]] = {}


def case(fn):
    CASES[fn.__name__.removeprefix("case_").replace("_", "-")] = fn
    return fn


def _good(tmp: Path, name: str = "good.nc", **kw) -> Path:
    return _write(_grid_ds(**kw), tmp / name)


# --- paths that are not regular, readable, non-empty files ----------------------------
@case
def case_missing_file(tmp, mp):
    return Case(tmp / "missing.nc", r"missing\.nc: no such file")


@case
def case_directory(tmp, mp):
    (tmp / "maps.nc").mkdir()
    return Case(tmp / "maps.nc", r"maps\.nc: is a directory, not a regular file")


@case
def case_fifo(tmp, mp):
    os.mkfifo(tmp / "pipe.nc")  # opening it for reading would block forever
    return Case(tmp / "pipe.nc", r"pipe\.nc: is a FIFO \(named pipe\), not a regular file")


@case
def case_glob_first_match_is_a_fifo(tmp, mp):
    os.mkfifo(tmp / "a_pipe.nc")
    _good(tmp, "b_good.nc")
    return Case(str(tmp / "*.nc"), r"a_pipe\.nc: is a FIFO .*matched by .*\*\.nc", "a_pipe.nc")


@case
def case_glob_later_match_is_a_directory(tmp, mp):
    _good(tmp, "part0.nc")
    (tmp / "part1.nc").mkdir()
    return Case(str(tmp / "part*.nc"), r"part1\.nc: is a directory, not a regular file", "part1.nc")


@case
def case_character_device(tmp, mp):
    (tmp / "dev.nc").symlink_to("/dev/null")
    return Case(tmp / "dev.nc", r"dev\.nc: is a character device, not a regular file")


@case
def case_broken_symlink(tmp, mp):
    (tmp / "link.nc").symlink_to(tmp / "gone.nc")
    return Case(tmp / "link.nc", r"link\.nc: broken symbolic link")


@case
def case_symlink_loop(tmp, mp):
    (tmp / "a.nc").symlink_to(tmp / "b.nc")
    (tmp / "b.nc").symlink_to(tmp / "a.nc")
    return Case(tmp / "a.nc", r"a\.nc: cannot be accessed \(Too many levels of symbolic links\)")


@case
def case_symlink_to_a_good_file(tmp, mp):
    target = _good(tmp)
    (tmp / "alias.nc").symlink_to(target)

    def check(ds):
        np.testing.assert_allclose(ds["sst"].values, _grid_ds()["sst"].values)
    return Case(tmp / "alias.nc", check=check)


@case
def case_empty_file(tmp, mp):
    (tmp / "empty.nc").write_bytes(b"")
    return Case(tmp / "empty.nc", r"empty\.nc: empty file \(0 bytes\)")


@case
def case_unreadable_file(tmp, mp):
    path = _good(tmp, "secret.nc")
    path.chmod(0)
    if os.geteuid() == 0:  # root reads anything: let the permission check say no
        real = os.access
        mp.setattr(canonical.os, "access",
                   lambda p, mode, **kw: False if Path(p) == path else real(p, mode, **kw))
    return Case(path, r"secret\.nc: permission denied")


@case
def case_text_file(tmp, mp):
    (tmp / "notes.nc").write_text("hello, this is not a NetCDF file\n")
    return Case(tmp / "notes.nc", r"notes\.nc: not a NetCDF file \(unrecognised header\)")


@case
def case_html_error_page(tmp, mp):
    (tmp / "download.nc").write_text("<!DOCTYPE html><html><body>404</body></html>")
    return Case(tmp / "download.nc", r"download\.nc: not a NetCDF file")


@case
def case_truncated_netcdf4(tmp, mp):
    good = _good(tmp, "full.nc", nt=30)
    cut = tmp / "cut4.nc"
    cut.write_bytes(good.read_bytes()[: int(good.stat().st_size * 0.9)])
    return Case(cut, r"cut4\.nc: truncated file \(\d+ bytes; its header says the data end at byte \d+\); "
                     r"it is incomplete: still being written, or cut short by a copy or a download$")


@case
def case_truncated_classic(tmp, mp):
    good = _write(_grid_ds(nt=30), tmp / "full3.nc", format="NETCDF3_CLASSIC")
    cut = tmp / "cut3.nc"
    cut.write_bytes(good.read_bytes()[: int(good.stat().st_size * 0.9)])  # zeros would be read
    return Case(cut, r"cut3\.nc: truncated file \(\d+ bytes; its header says the data end at byte \d+\); "
                     r"it is incomplete")


@case
def case_truncated_inside_header(tmp, mp):
    good = _write(_grid_ds(), tmp / "full3.nc", format="NETCDF3_64BIT")
    cut = tmp / "stub.nc"
    cut.write_bytes(good.read_bytes()[:40])
    return Case(cut, r"stub\.nc: truncated file \(40 bytes end inside the NetCDF header\)")


@case
def case_netcdf4_still_being_written(tmp, mp):
    """A copy taken while the writer has it open (after a sync: every byte is there)."""
    path = tmp / "writing.nc"
    nc = _nc4(path)
    nc.createVariable("sst", "f4", ("time", "lat", "lon"))[:] = np.ones((12, 4, 5))
    nc.sync()
    (tmp / "growing.nc").write_bytes(path.read_bytes())
    nc.close()
    assert open_dataset(path)["sst"].shape == (12, 4, 5)  # once closed, it loads
    return Case(tmp / "growing.nc",
                r"^\S*growing\.nc: incomplete file: still being written \(its HDF5 header marks it "
                r"open for writing\); wait until the writer closes it")


@case
def case_glob_without_match(tmp, mp):
    return Case(str(tmp / "nothing*.nc"), r"nothing\*\.nc: no file matches this pattern", "nothing*.nc")


# --- structure --------------------------------------------------------------------------
@case
def case_plain_hdf5_without_dimensions(tmp, mp):
    return Case(_plain_hdf5(tmp / "plain.h5"),
                r"plain\.h5: plain HDF5 file without NetCDF dimensions")


@case
def case_glob_files_on_shifted_grids(tmp, mp):
    _write(_grid_ds(nt=5), tmp / "part0.nc")
    _write(_grid_ds(nt=5, lat=np.linspace(40.0, 43.0, 4),
                    time=pd.date_range("2001-01-06", periods=5)), tmp / "part1.nc")
    return Case(str(tmp / "part*.nc"),
                r"part1\.nc: its grid \(4 lat 40\.\.43 x 5 lon -60\.\.-56\) differs from "
                r"part0\.nc's \(4 lat 30\.\.33 x 5 lon -60\.\.-56\)", "part1.nc")


@case
def case_glob_files_of_different_resolution(tmp, mp):
    _write(_grid_ds(nt=5), tmp / "part0.nc")
    _write(_grid_ds(nt=5, ny=7, time=pd.date_range("2001-01-06", periods=5)), tmp / "part1.nc")
    return Case(str(tmp / "part*.nc"), r"part1\.nc: its grid \(7 lat .*\) differs from part0\.nc",
                "part1.nc")


@case
def case_glob_files_with_different_variables(tmp, mp):
    _write(_grid_ds(nt=5), tmp / "part0.nc")
    _write(_grid_ds(nt=5, var="ssh", time=pd.date_range("2001-01-06", periods=5)), tmp / "part1.nc")
    return Case(str(tmp / "part*.nc"), r"part1\.nc: files of .* hold different variables "
                r"\('ssh' is only in part1\.nc\)", "part1.nc")


@case
def case_glob_files_with_the_same_times(tmp, mp):
    _write(_grid_ds(nt=5), tmp / "part0.nc")
    _write(_grid_ds(nt=5), tmp / "part1.nc")
    return Case(str(tmp / "part*.nc"), r"part\*\.nc: repeated time values \(e\.g\. 2001-01-01",
                "part*.nc")


@case
def case_glob_of_good_parts(tmp, mp):
    whole = _grid_ds(nt=10)
    _write(whole.isel(time=slice(5, 10)), tmp / "b.nc")  # the later part sorts first by name
    _write(whole.isel(time=slice(0, 5)), tmp / "c.nc")

    def check(ds):
        assert ds["sst"].chunks is not None
        np.testing.assert_array_equal(ds["time"].values, whole["time"].values)
        np.testing.assert_allclose(ds["sst"].values, whole["sst"].values)
    return Case(str(tmp / "[bc].nc"), check=check)


def _nemo(path: Path, nt: int = 12, zero_block: bool = False, start: str = "2001-01-01") -> Path:
    """A rotated NEMO-like grid (nav_lat/nav_lon on y, x) with sossheig = lat - lon."""
    j, i = np.meshgrid(np.arange(12), np.arange(16), indexing="ij")
    a = np.radians(30.0)
    lon = -60.0 + 0.25 * (i * np.cos(a) - j * np.sin(a))
    lat = 30.0 + 0.25 * (i * np.sin(a) + j * np.cos(a))
    values = np.broadcast_to(lat - lon, (nt, 12, 16)).copy()
    if zero_block:  # land processors eliminated: coordinates 0, values 0
        lat[:4, :4] = lon[:4, :4] = values[:, :4, :4] = 0.0
    ds = xr.Dataset({"sossheig": (("time_counter", "y", "x"), values, {"units": "m"})},
                    coords={"time_counter": pd.date_range(start, periods=nt),
                            "nav_lat": (("y", "x"), lat), "nav_lon": (("y", "x"), lon)})
    return _write(ds, path)


@case
def case_curvilinear_nemo_grid_is_regridded(tmp, mp):
    def check(ds):
        assert ds.attrs["oceanlab_regrid"].startswith(
            "linear from 2-D nav_lat/nav_lon (NEMO) on y×x = 12×16, 0.25° grid")
        got = ds["sossheig"].isel(time=0)
        ok = got.notnull()
        assert 100 < int(ok.sum()) < got.size  # the rotated domain; NaN around it
        np.testing.assert_allclose(got.values[ok.values], (ds["lat"] - ds["lon"]).values[ok.values],
                                   atol=1e-4)
    return Case(_nemo(tmp / "nemo.nc"), check=check)


@case
def case_curvilinear_with_eliminated_land_processors(tmp, mp):
    def check(ds):
        assert float(ds["lat"].min()) >= 30.0 and float(ds["lon"].max()) <= -55.0  # no (0, 0)
        assert "regrid: 16 points at latitude = longitude = 0 taken as missing coordinates" in \
            ds.attrs["oceanlab_notes"]
        got = ds["sossheig"].isel(time=0)
        ok = got.notnull().values
        np.testing.assert_allclose(got.values[ok], (ds["lat"] - ds["lon"]).values[ok], atol=1e-4)
    return Case(_nemo(tmp / "nemo0.nc", zero_block=True), check=check)


@case
def case_curvilinear_glob_of_files(tmp, mp):
    _nemo(tmp / "nemo_a.nc", nt=5)
    _nemo(tmp / "nemo_b.nc", nt=5, start="2001-01-06")
    return Case(str(tmp / "nemo_*.nc"),
                r"nemo_a\.nc: 2-D \(curvilinear\) lat coordinates 'nav_lat' are regridded only as a "
                r"2-D latitude/longitude pair of one file \(data\.regrid\), not here", "nemo_a.nc")


@case
def case_no_latitude_longitude(tmp, mp):
    ds = xr.Dataset({"a": (("time", "p"), np.zeros((3, 4)))},
                    coords={"time": pd.date_range("2000", periods=3)})
    return Case(_write(ds, tmp / "profile.nc"), r"profile\.nc: no latitude/longitude coordinates")


@case
def case_no_time(tmp, mp):
    ds = _grid_ds().isel(time=0, drop=True)
    return Case(_write(ds, tmp / "static.nc"), r"static\.nc: no time coordinate found")


@case
def case_along_track_points_not_a_grid(tmp, mp):
    n = 50
    ds = xr.Dataset({"sla": (("obs",), np.linspace(-0.2, 0.2, n))},
                    coords={"time": ("obs", pd.date_range("2001-01-01", periods=n, freq="s")),
                            "lat": ("obs", np.linspace(30.0, 31.0, n)),
                            "lon": ("obs", np.linspace(-60.0, -59.0, n))})
    return Case(_write(ds, tmp / "alongtrack.nc"),
                r"alongtrack\.nc: coordinates share the dimension 'obs' \(along-track, station "
                r"or trajectory data\), not a latitude/longitude grid")


# --- coordinates --------------------------------------------------------------------------
@case
def case_latitude_with_nan(tmp, mp):
    return Case(_good(tmp, "latnan.nc", lat=[30.0, np.nan, 32.0, 33.0]),
                r"latnan\.nc: latitude 'lat' has 1 missing or non-finite values \(NaN/inf\) of 4")


@case
def case_latitude_beyond_90(tmp, mp):
    return Case(_good(tmp, "lat95.nc", lat=[80.0, 85.0, 90.0, 95.0]),
                r"lat95\.nc: latitude 'lat' has values outside -90\.\.90 \(min 80, max 95\)")


@case
def case_longitude_beyond_720(tmp, mp):
    return Case(_good(tmp, "lon800.nc", lon=[700.0, 720.0, 740.0, 760.0, 800.0]),
                r"lon800\.nc: longitude 'lon' has values outside -360\.\.720 \(min 700, max 800\)")


@case
def case_longitude_infinite(tmp, mp):
    return Case(_good(tmp, "loninf.nc", lon=[-60.0, -59.0, np.inf, -57.0, -56.0]),
                r"loninf\.nc: longitude 'lon' has 1 missing or non-finite values")


@case
def case_time_with_a_missing_value(tmp, mp):
    nc = _nc4(tmp / "nat.nc", time=np.ma.masked_array(np.arange(12.0), mask=np.arange(12) == 4))
    nc.createVariable("sst", "f4", ("time", "lat", "lon"))[:] = np.ones((12, 4, 5))
    nc.close()
    return Case(tmp / "nat.nc", r"nat\.nc: time has 1 missing values \(NaT\) of 12")


@case
def case_time_without_units(tmp, mp):
    nc = _nc4(tmp / "nounits.nc", time_attrs={})
    nc.createVariable("sst", "f4", ("time", "lat", "lon"))[:] = np.ones((12, 4, 5))
    nc.close()
    return Case(tmp / "nounits.nc", r"nounits\.nc: time has no units such as 'days since")


@case
def case_time_with_unusable_units(tmp, mp):
    nc = _nc4(tmp / "badunits.nc", time_attrs={"units": "days since the storm"})
    nc.createVariable("sst", "f4", ("time", "lat", "lon"))[:] = np.ones((12, 4, 5))
    nc.close()
    return Case(tmp / "badunits.nc",
                r"badunits\.nc: time units 'days since the storm' of 'time' cannot be decoded into "
                r"dates")


@case
def case_time_counts_that_decode_to_1970(tmp, mp):
    nc = _nc4(tmp / "epoch.nc", time_attrs={"units": "seconds since 1970-01-01"})
    nc.createVariable("sst", "f4", ("time", "lat", "lon"))[:] = np.ones((12, 4, 5))
    nc.close()
    return Case(tmp / "epoch.nc", r"epoch\.nc: all 12 dates fall on 1970-01-01; the time values "
                                  r"look like counts, not dates")


@case
def case_time_in_seconds_instead_of_days(tmp, mp):
    nc = _nc4(tmp / "seconds.nc", time_attrs={"units": "seconds since 2001-01-01"})
    nc.createVariable("sst", "f4", ("time", "lat", "lon"))[:] = np.ones((12, 4, 5))
    nc.close()
    return Case(tmp / "seconds.nc", r"seconds\.nc: time steps as short as 0 days 00:00:01 "
                                    r"\(from 2001-01-01 00:00:00\); the time units are probably wrong")


@case
def case_time_repeated(tmp, mp):
    ds = _grid_ds(time=pd.DatetimeIndex(["2001-01-01"] * 2 + ["2001-01-02"] * 10))
    return Case(_write(ds, tmp / "dup.nc"), r"dup\.nc: repeated time values \(e\.g\. 2001-01-01")


@case
def case_time_repeated_later(tmp, mp):
    times = pd.date_range("2001-01-01", periods=12)
    times = times[:5].append(times[4:5]).append(times[5:10]).append(times[7:8])
    ds = _grid_ds(time=times)  # 01-05 repeated right away, 01-08 at the end: 01-05 is named
    return Case(_write(ds, tmp / "dup5.nc"),
                r"^\S*dup5\.nc: repeated time values \(e\.g\. 2001-01-05 00:00:00\)$")


@case
def case_time_not_monotonic(tmp, mp):
    ds = _grid_ds()
    order = np.random.default_rng(1).permutation(12)

    def check(ds_out):
        np.testing.assert_array_equal(ds_out["time"].values, ds["time"].values)
        np.testing.assert_allclose(ds_out["sst"].values, ds["sst"].values)
        assert "time: the steps were not in order in the file; sorted" in \
            ds_out.attrs["oceanlab_notes"]
    return Case(_write(ds.isel(time=order), tmp / "shuffled.nc"), check=check)


@case
def case_one_time_step(tmp, mp):
    def check(ds):
        s = summarize(ds)
        assert s["time"] == {"n_time": 1, "start": "2001-01-01", "end": "2001-01-01", "step": None,
                             "step_text": None}
    return Case(_good(tmp, "one_step.nc", nt=1), check=check, task={"var": "sst"},
                task_error=r"one_step\.nc: only 1 time step; the interpolation task needs at least 10")


@case
def case_one_latitude(tmp, mp):
    def check(ds):
        assert ds.sizes == {"time": 12, "lat": 1, "lon": 5}
        assert summarize(ds)["grid"]["dlat_deg"] is None
    return Case(_good(tmp, "one_lat.nc", ny=1, lat=[31.0]), check=check, task={"var": "sst"},
                task_error=r"one_lat\.nc: the grid has only 1 latitude; the interpolation task "
                           r"needs at least 2 points")


@case
def case_cyclic_longitude_column(tmp, mp):
    lon = np.arange(0.0, 361.0, 30.0)  # 0 and 360 both present
    values = np.broadcast_to(np.cos(np.radians(lon)), (12, 4, 13))

    def check(ds):
        np.testing.assert_allclose(ds["lon"].values, np.arange(-180.0, 180.0, 30.0))
        np.testing.assert_allclose(ds["sst"].values[0, 0], np.cos(np.radians(ds["lon"].values)),
                                   atol=1e-6)
        assert "lon: dropped 1 repeated column(s)" in ds.attrs["oceanlab_notes"]
    return Case(_good(tmp, "cyclic.nc", nx=13, lon=lon, values=values), check=check)


@case
def case_longitude_descending(tmp, mp):
    lon = np.linspace(-56.0, -60.0, 5)  # east to west
    ds = _grid_ds(lon=lon)

    def check(out):
        np.testing.assert_allclose(out["lon"].values, [-60, -59, -58, -57, -56])
        np.testing.assert_allclose(out["sst"].values, ds["sst"].values[:, :, ::-1])
        assert out.attrs["oceanlab_notes"] == ("lon: longitude not in increasing order: "
                                               "sorted west to east")  # said, on the Data page
    return Case(_write(ds, tmp / "lon_desc.nc"), check=check)


@case
def case_latitude_and_longitude_descending_0_360(tmp, mp):
    lat, lon = np.linspace(33.0, 30.0, 4), np.array([302.0, 301.0, 300.0, 299.0, 298.0])
    ds = _grid_ds(lat=lat, lon=lon)

    def check(out):
        np.testing.assert_allclose(out["lat"].values, [30, 31, 32, 33])
        np.testing.assert_allclose(out["lon"].values, [-62, -61, -60, -59, -58])
        np.testing.assert_allclose(out["sst"].values, ds["sst"].values[:, ::-1, ::-1])
    return Case(_write(ds, tmp / "desc360.nc"), check=check)


@case
def case_coordinates_not_named_like_dimensions(tmp, mp):
    ds = xr.Dataset({"sst": (("time", "y", "x"), np.arange(60.0).reshape(3, 4, 5))},
                    coords={"time": pd.date_range("2001-01-01", periods=3),
                            "latitude": ("y", [30.0, 31.0, 32.0, 33.0]),
                            "longitude": ("x", [-60.0, -59.0, -58.0, -57.0, -56.0])})

    def check(out):
        np.testing.assert_allclose(out["lat"].values, [30, 31, 32, 33])
        np.testing.assert_allclose(out["lon"].values, [-60, -59, -58, -57, -56])
        np.testing.assert_allclose(out["sst"].values, ds["sst"].values)
    return Case(_write(ds, tmp / "xy.nc"), check=check)


@case
def case_scalar_time_single_map(tmp, mp):
    ds = _grid_ds(nt=1).isel(time=0)  # time becomes a scalar coordinate

    def check(out):
        assert out.sizes == {"time": 1, "lat": 4, "lon": 5}
        assert out["time"].values[0] == np.datetime64("2001-01-01")
    return Case(_write(ds, tmp / "map.nc"), check=check)


# --- undeclared fill values (masked, counted, said) ----------------------------------------
def _fill_case(tmp, name, sentinel, n, *, base=None, dtype=np.float32):
    base = _grid_ds()["sst"].values if base is None else base
    values, where = _plant(base, sentinel, n)
    ds = _grid_ds(values=values)
    ds["sst"] = ds["sst"].astype(dtype)
    path = _write(ds, tmp / name)

    def check(out):
        got = out["sst"].values
        assert out["sst"].dtype == np.float32
        np.testing.assert_array_equal(np.isnan(got), where)
        np.testing.assert_allclose(got[~where], base[~where], rtol=1e-6)
        assert f"sst: masked {n} points" in out.attrs["oceanlab_notes"]
    return Case(path, check=check)


@case
def case_fill_minus_999_in_temperature(tmp, mp):
    c = _fill_case(tmp, "t999.nc", -999.0, 7)
    inner = c.check

    def check(out):
        inner(out)
        assert "sst: masked 7 points equal to -999 as undeclared fill values" in out.attrs["oceanlab_notes"]
        assert summarize(out)["notes"] == out.attrs["oceanlab_notes"]
    c.check = check
    return c


@case
def case_fill_minus_32767_in_float64(tmp, mp):
    return _fill_case(tmp, "s32767.nc", -32767.0, 5, dtype=np.float64)


@case
def case_fill_netcdf_default_9_97e36(tmp, mp):
    c = _fill_case(tmp, "big.nc", 9.969209968386869e36, 9)
    inner = c.check

    def check(out):
        inner(out)
        assert "sst: masked 9 points with |value| >= 1e15" in out.attrs["oceanlab_notes"]
    c.check = check
    return c


@case
def case_fill_minus_1e20(tmp, mp):
    return _fill_case(tmp, "m1e20.nc", -1e20, 3)


@case
def case_two_sentinels_minus_999_and_minus_9999(tmp, mp):
    base = _grid_ds()["sst"].values
    values, a = _plant(base, -999.0, 4, seed=1)
    values[np.unravel_index(np.flatnonzero(~a)[:6], a.shape)] = -9999.0
    b = values == -9999.0
    path = _write(_grid_ds(values=values), tmp / "two.nc")

    def check(out):
        np.testing.assert_array_equal(np.isnan(out["sst"].values), a | b)
        notes = out.attrs["oceanlab_notes"]
        assert "masked 4 points equal to -999 " in notes and "masked 6 points equal to -9999 " in notes
    return Case(path, check=check)


@case
def case_legit_minus_9999_in_bathymetry(tmp, mp):
    depth = np.linspace(-11000.0, 0.0, 12 * 4 * 5).reshape(12, 4, 5)
    depth[3, 2, 1] = -9999.0  # a real depth, inside the range of the others
    path = _write(_grid_ds(values=depth, var="depth", units="m"), tmp / "bathy.nc")

    def check(out):
        assert not np.isnan(out["depth"].values).any()
        assert out["depth"].values[3, 2, 1] == -9999.0
        assert "oceanlab_notes" not in out.attrs
    return Case(path, check=check)


@case
def case_legit_minus_999_as_the_minimum(tmp, mp):
    values = np.linspace(-900.0, 3000.0, 240).reshape(12, 4, 5)
    values[0, 0, 0] = -999.0  # the minimum, but close to the others: not a fill value
    path = _write(_grid_ds(values=values, var="elev", units="m"), tmp / "elev.nc")

    def check(out):
        assert out["elev"].values[0, 0, 0] == -999.0 and not np.isnan(out["elev"].values).any()
    return Case(path, check=check)


@case
def case_packed_int16_with_undeclared_fill(tmp, mp):
    raw = (np.arange(240) * 20).reshape(12, 4, 5).astype(np.int16)  # 20.0 .. 24.78 degC
    raw.flat[[5, 77, 200]] = -32767
    nc = _nc4(tmp / "packed.nc")
    v = nc.createVariable("sst", "i2", ("time", "lat", "lon"), fill_value=False)
    v.scale_factor, v.add_offset, v.units = 0.001, 20.0, "degC"
    v.set_auto_maskandscale(False)
    v[:] = raw
    nc.close()

    def check(out):
        got = out["sst"].values
        bad = raw == -32767
        np.testing.assert_array_equal(np.isnan(got), bad)
        np.testing.assert_allclose(got[~bad], raw[~bad] * 0.001 + 20.0, rtol=1e-6)
        assert "sst: masked 3 points equal to -12.767" in out.attrs["oceanlab_notes"]
    return Case(tmp / "packed.nc", check=check)


@case
def case_packed_int16_with_declared_fill(tmp, mp):
    raw = (np.arange(240) * 20).reshape(12, 4, 5).astype(np.int16)
    raw.flat[[0, 1]] = -32768
    nc = _nc4(tmp / "packed_ok.nc")
    v = nc.createVariable("sst", "i2", ("time", "lat", "lon"), fill_value=-32768)
    v.scale_factor, v.add_offset = 0.001, 20.0
    v.set_auto_maskandscale(False)
    v[:] = raw
    nc.close()

    def check(out):
        got = out["sst"].values
        assert np.isnan(got).sum() == 2 and np.isnan(got.flat[[0, 1]]).all()
        np.testing.assert_allclose(got.ravel()[2:], raw.ravel()[2:] * 0.001 + 20.0, rtol=1e-6)
        assert "oceanlab_notes" not in out.attrs  # declared: nothing to say
    return Case(tmp / "packed_ok.nc", check=check)


@case
def case_integer_counts_with_minus_9999(tmp, mp):
    raw = (np.arange(240) % 50).reshape(12, 4, 5).astype(np.int32)
    raw.flat[[10, 20]] = -9999
    nc = _nc4(tmp / "counts.nc")
    v = nc.createVariable("n", "i4", ("time", "lat", "lon"), fill_value=False)
    v[:] = raw
    nc.close()

    def check(out):
        assert out["n"].dtype == np.float32
        assert np.isnan(out["n"].values).sum() == 2
        np.testing.assert_array_equal(out["n"].values.ravel()[:10], np.arange(10.0))
        assert "n: masked 2 points equal to -9999" in out.attrs["oceanlab_notes"]
    return Case(tmp / "counts.nc", check=check)


@case
def case_packed_scale_factor_add_offset_decoded_exactly(tmp, mp):
    raw = (np.arange(240) * 37 % 30000 - 15000).reshape(12, 4, 5).astype(np.int16)
    nc = _nc4(tmp / "packed_exact.nc")
    v = nc.createVariable("sla", "i2", ("time", "lat", "lon"), fill_value=np.int16(-32767))
    v.scale_factor, v.add_offset, v.units = 1e-4, 0.25, "m"
    v.set_auto_maskandscale(False)
    v[:] = raw
    nc.close()

    def check(out):
        expected = (raw.astype(np.float64) * 1e-4 + 0.25).astype(np.float32)
        assert out["sla"].dtype == np.float32
        np.testing.assert_array_equal(out["sla"].values, expected)  # exact, no NaN
        assert out["sla"].attrs["units"] == "m" and "oceanlab_notes" not in out.attrs
    return Case(tmp / "packed_exact.nc", check=check)


@case
def case_fill_value_inside_the_valid_range(tmp, mp):
    values = np.round(np.linspace(-2.0, 2.0, 240), 2).reshape(12, 4, 5)
    values.flat[[7, 100, 231]] = 0.0  # the declared fill value, in the middle of the data
    nc = _nc4(tmp / "fill0.nc")
    v = nc.createVariable("sla", "f8", ("time", "lat", "lon"), fill_value=0.0)
    v.valid_min, v.valid_max, v.units = -5.0, 5.0, "m"
    v.set_auto_maskandscale(False)
    v[:] = values
    nc.close()

    def check(out):
        got = out["sla"].values
        fill = values == 0.0
        assert fill.sum() >= 3
        np.testing.assert_array_equal(np.isnan(got), fill)  # CF: equal to _FillValue = missing
        np.testing.assert_array_equal(got[~fill], values[~fill].astype(np.float32))
        np.testing.assert_array_equal(got.flat[[6, 8]], values.flat[[6, 8]].astype(np.float32))
    return Case(tmp / "fill0.nc", check=check)


@case
def case_variable_without_units(tmp, mp):
    nc = _nc4(tmp / "nounits_var.nc")
    nc.createVariable("sst", "f4", ("time", "lat", "lon"))[:] = np.full((12, 4, 5), 15.0)
    nc.close()

    def check(ds):
        assert "units" not in ds["sst"].attrs
        assert summarize(ds)["variables"]["sst"]["units"] is None  # unknown, said as such
        assert float(ds["sst"].mean()) == 15.0
    return Case(tmp / "nounits_var.nc", check=check)


@case
def case_all_nan_variable(tmp, mp):
    return Case(_good(tmp, "allnan.nc", values=np.full((12, 4, 5), np.nan)),
                r"allnan\.nc: variable 'sst' is NaN everywhere \(all-NaN field\)")


@case
def case_all_values_are_a_sentinel(tmp, mp):
    return Case(_good(tmp, "all999.nc", values=np.full((12, 4, 5), -999.0)),
                r"all999\.nc: variable 'sst' is NaN everywhere \(all-NaN field\); sst: masked "
                r"240 points equal to -999")


@case
def case_empty_second_variable_is_dropped(tmp, mp):
    ds = _grid_ds()
    ds["ssh"] = ds["sst"] * np.nan

    def check(out):
        assert [str(v) for v in out.data_vars] == ["sst", "mask"]
        assert "ssh: dropped (NaN everywhere)" in out.attrs["oceanlab_notes"]
    return Case(_write(ds, tmp / "half.nc"), check=check)


# --- variables that are not numeric fields -------------------------------------------------
def _with_text(tmp, name, numeric=True):
    nc = _nc4(tmp / name)
    nc.createDimension("strlen", 4)
    flag = nc.createVariable("flag", "S1", ("lat", "lon", "strlen"))
    flag[:] = netCDF4.stringtochar(np.full((4, 5), "good", dtype="S4"))
    label = nc.createVariable("station", str, ("lat", "lon"))
    label[:] = np.array([f"st{i}" for i in range(20)], dtype=object).reshape(4, 5)
    when = nc.createVariable("obs_time", "f8", ("time", "lat", "lon"))
    when.units = "days since 2001-01-01"
    when[:] = np.zeros((12, 4, 5))
    if numeric:
        nc.createVariable("sst", "f4", ("time", "lat", "lon"))[:] = np.full((12, 4, 5), 15.0)
    nc.close()
    return tmp / name


@case
def case_text_and_date_variables_are_listed_not_used(tmp, mp):
    def check(ds):
        assert [str(v) for v in ds.data_vars] == ["sst", "mask"]
        kinds = {k: v["kind"] for k, v in summarize(ds)["variables"].items()}
        assert kinds == {"sst": "field", "flag": "text", "station": "text", "obs_time": "time"}
        assert json.loads(ds.attrs["oceanlab_skipped_vars"])["flag"] == "text"
    return Case(_with_text(tmp, "text.nc"), check=check, task={},
                task_error=None)


@case
def case_asking_for_a_text_variable(tmp, mp):
    return Case(_with_text(tmp, "ask.nc"), r"ask\.nc: variable 'flag' holds text values "
                                           r"\(\|S4\), not numbers; numeric variables: sst",
                variables=["flag"])


@case
def case_only_text_variables(tmp, mp):
    return Case(_with_text(tmp, "names.nc", numeric=False),
                r"names\.nc: no numeric variable on a latitude/longitude grid \(only non-numeric: "
                r"flag, station, obs_time\)")


@case
def case_asking_for_a_variable_off_the_grid(tmp, mp):
    ds = _grid_ds()
    ds["time_bnds"] = (("time", "nv"), np.zeros((12, 2)))
    return Case(_write(ds, tmp / "bnds.nc"),
                r"bnds\.nc: variable 'time_bnds' is not on the latitude/longitude grid \(dims "
                r"\('time', 'nv'\)\); gridded variables: sst", variables=["time_bnds"])


@case
def case_non_utf8_attributes(tmp, mp):
    nc = _nc4(tmp / "latin1.nc")
    v = nc.createVariable("sst", "f4", ("time", "lat", "lon"))
    v[:] = np.full((12, 4, 5), 15.0)
    v.setncattr("long_name", b"temp\xe9rature \xff")
    nc.setncattr("title", b"\xe9t\xe9")
    nc.close()

    def check(ds):
        assert isinstance(ds["sst"].attrs["long_name"], str)
        assert ds["sst"].attrs["long_name"].startswith("temp")
        assert isinstance(ds.attrs["title"], str)
        assert float(ds["sst"].mean()) == 15.0
    return Case(tmp / "latin1.nc", check=check)


# --- tasks -----------------------------------------------------------------------------------
def _two_vars(tmp, name, copy=False):
    ds = _grid_ds()
    ds["sst_obs"] = ds["sst"] if copy else ds["sst"].where(ds["sst"] > 15.0)
    return _write(ds, tmp / name)


@case
def case_task_obs_equal_to_var(tmp, mp):
    return Case(_two_vars(tmp, "same.nc"), task={"var": "sst", "obs": "sst"},
                task_error=r"same\.nc: the observation variable 'sst' is the variable to "
                           r"reconstruct itself")


@case
def case_task_obs_a_copy_of_the_truth(tmp, mp):
    return Case(_two_vars(tmp, "copy.nc", copy=True), task={"var": "sst", "obs": "sst_obs"},
                task_error=r"copy\.nc: observation variable 'sst_obs' is identical to 'sst'")


@case
def case_task_on_a_text_variable(tmp, mp):
    return Case(_with_text(tmp, "tasktext.nc"), task={"var": "station"},
                task_error=r"tasktext\.nc: variable 'station' holds text values, not numbers")


@case
def case_task_obs_from_the_file(tmp, mp):
    path = _two_vars(tmp, "pair.nc")

    def check(ds):
        task = build_interpolation_task(ds, "sst", "sst_obs", gap_days=0)
        assert task.truth.name == "sst" and task.obs.name == "sst_obs"
        assert int(task.obs.notnull().sum()) == int((ds["sst"] > 15.0).sum())
    return Case(path, check=check)


# ------------------------------------------------------------------------------ the test
@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(CASES))
def test_catalogue(name, tmp_path, monkeypatch):
    c = CASES[name](tmp_path, monkeypatch)
    shown = c.names or Path(str(c.path)).name
    if c.error is not None:
        with pytest.raises(DataError) as info:
            open_dataset(c.path, c.variables)
        message = str(info.value)
        assert "\n" not in message, message
        assert shown in message, message
        assert re.search(c.error, message), message
        return
    ds = open_dataset(c.path, c.variables)
    if c.check is not None:
        c.check(ds)
    if c.task is not None:
        if c.task_error is None:
            task = build_interpolation_task(ds, **c.task, gap_days=0)
            assert task.truth.name not in canonical.skipped_variables(ds)
            return
        with pytest.raises(DataError) as info:
            build_interpolation_task(ds, **c.task)
        message = str(info.value)
        assert "\n" not in message and shown in message, message
        assert re.search(c.task_error, message), message


def test_catalogue_is_large_enough():
    assert len(CASES) >= 25


def test_fifo_is_refused_without_being_opened(tmp_path, monkeypatch):
    os.mkfifo(tmp_path / "pipe.nc")
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda f, *a, **k: opened.append(f) or real_open(f, *a, **k))
    with pytest.raises(DataError, match="FIFO"):
        open_dataset(tmp_path / "pipe.nc")
    assert not opened
