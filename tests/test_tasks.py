"""Tasks: variable choice, observation simulation, splits with gaps, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oceanlab_errors import DataError
from data.tasks import auto_periods, build_interpolation_task


def test_file_variables_and_automatic_chronological_split(mock_ds):
    task = build_interpolation_task(mock_ds, "ssh", "ssh_obs", gap_days=3)
    train, val, test = (task.index(s) for s in ("train", "val", "test"))
    assert train[0] == 0 and test[-1] == 59
    assert val[0] - train[-1] == 4 and test[0] - val[-1] == 4  # 3-day gaps
    assert len(np.intersect1d(train, test)) == 0
    assert task.truth.name == "ssh" and task.obs.name == "ssh_obs"
    np.testing.assert_array_equal(task.mask.values, mock_ds["mask"].values)


def test_explicit_periods_put_test_first(mock_ds):
    task = build_interpolation_task(
        mock_ds, "ssh", "ssh_obs", test_period="2012-10-01/2012-10-10",
        val_period="2012-11-20/2012-11-29", train_period="2012-10-20/2012-11-13")
    assert task.times("test")[0] == pd.Timestamp("2012-10-01")
    assert len(task.times("test")) == 10 and len(task.times("train")) == 25


def test_periods_from_file_attributes(mock_ds):
    ds = mock_ds.assign_attrs(oceanlab_truth_var="ssh", oceanlab_obs_var="ssh_obs",
                              oceanlab_test_period="2012-10-05/2012-10-12",
                              oceanlab_val_period="2012-11-25/2012-11-29",
                              oceanlab_train_period="2012-10-20/2012-11-18")
    task = build_interpolation_task(ds)
    assert task.truth.name == "ssh" and task.obs.name == "ssh_obs"
    assert task.periods["test"] == (pd.Timestamp("2012-10-05"), pd.Timestamp("2012-10-12"))


def test_simulated_observations_follow_tracks(mock_ds):
    task = build_interpolation_task(mock_ds, "ssh", "simulation", obs_noise=0.0, obs_seed=3)
    seen = np.isfinite(task.obs.values)
    assert 0 < seen.mean() < 0.5
    assert not seen[:, ~mock_ds["mask"].values].any()  # never on land
    assert task.obs.name == "ssh_obs"


def test_auto_periods_on_short_records_keep_every_split():
    times = pd.date_range("2000-01-01", periods=10)
    p = auto_periods(times, gap_days=7)
    assert all(p[k][0] <= p[k][1] for k in p)
    assert p["train"][1] < p["val"][0] <= p["val"][1] < p["test"][0]


@pytest.mark.parametrize("kwargs, message", [
    ({"var": "sst"}, "unknown variable 'sst'"),
    ({"var": "ssh", "obs": "sla"}, "unknown observation variable 'sla'"),
    ({"var": "ssh", "obs": "ssh_obs", "min_days": 90}, "only 60 time steps"),
    ({"var": "ssh", "obs": "ssh_obs", "test_period": "2015-01-01/2015-02-01"}, "holds no time step"),
    ({"var": "ssh", "obs": "ssh_obs", "test_period": "yesterday/today"}, "is not 'YYYY-MM-DD"),
    ({"var": "ssh", "obs": "ssh_obs", "test_period": "2012-10-01/2012-11-01",
      "train_period": "2012-10-20/2012-11-20"}, "overlap"),
    ({"var": "ssh", "obs": "ssh"},
     "mock.nc: the observation variable 'ssh' is the variable to reconstruct itself"),
    ({"var": "mask"}, "unknown variable 'mask'"),
])
def test_bad_task_settings_name_the_problem(mock_ds, kwargs, message):
    with pytest.raises(DataError, match=message):
        build_interpolation_task(mock_ds, label="mock.nc", **kwargs)


def test_obs_attribute_naming_the_truth_is_refused(mock_ds):
    ds = mock_ds.assign_attrs(oceanlab_obs_var="ssh")
    with pytest.raises(DataError, match="'ssh' is the variable to reconstruct itself"):
        build_interpolation_task(ds, "ssh", label="mock.nc")


def test_obs_that_copy_the_truth_are_refused(mock_ds):
    ds = mock_ds.assign(ssh_copy=mock_ds["ssh"])
    with pytest.raises(DataError, match=r"mock.nc: observation variable 'ssh_copy' is identical to 'ssh'"):
        build_interpolation_task(ds, "ssh", "ssh_copy", label="mock.nc")


@pytest.mark.parametrize("name", ["ssh", "ssh_obs"])
def test_undeclared_fill_values_in_memory_are_refused(mock_ds, name):
    ds = mock_ds.copy(deep=True)
    ds[name][3, 5, 20] = 1e20
    with pytest.raises(DataError, match=rf"mock.nc: variable '{name}' holds values up to 1e\+20"):
        build_interpolation_task(ds, "ssh", "ssh_obs", label="mock.nc")


def test_default_variable_is_numeric_and_on_the_grid(mock_ds):
    ds = mock_ds.copy()
    ds["station"] = (("lat", "lon"), np.full(ds["mask"].shape, "buoy", dtype=object))
    ds["series"] = (("time",), np.arange(ds.sizes["time"], dtype=float))
    ds = ds[["station", "series", "ssh", "ssh_obs", "mask"]]
    task = build_interpolation_task(ds, obs="ssh_obs")
    assert task.truth.name == "ssh"
    with pytest.raises(DataError, match=r"variable 'station' holds object values, not numbers"):
        build_interpolation_task(ds, "station", label="mock.nc")
    with pytest.raises(DataError, match=r"variable 'series' is not on the latitude/longitude grid"):
        build_interpolation_task(ds, "series", label="mock.nc")


def test_one_step_and_one_latitude_are_refused_with_the_reason(mock_ds):
    with pytest.raises(DataError, match=r"only 1 time step; "):
        build_interpolation_task(mock_ds.isel(time=[0]), "ssh", label="mock.nc")
    with pytest.raises(DataError, match=r"the grid has only 1 latitude;"):
        build_interpolation_task(mock_ds.isel(lat=[3]), "ssh", label="mock.nc")


def test_simulated_observations_of_yearly_maps(mock_ds):
    ds = mock_ds.isel(time=slice(0, 12)).assign_coords(
        time=pd.date_range("1990-01-01", periods=12, freq="YS"))
    task = build_interpolation_task(ds, "ssh", "simulation", gap_days=0)
    seen = np.isfinite(task.obs.values).mean(axis=(1, 2))
    assert np.all(seen > 0) and np.all(seen < 0.5)
