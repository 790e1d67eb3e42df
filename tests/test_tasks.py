"""Tasks: variable choice, observation simulation, splits with gaps, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oceanlab_errors import ConfigError, DataError
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


# --------------------------------------------------------------- several observations, extras
def _with_extras(mock_ds):
    from data.synthetic import insert_nan

    ds = mock_ds.copy()
    second = insert_nan(ds["ssh"], 0.9, seed=11) + 0.01
    second.attrs = {"units": "m"}
    ds["ssh_obs2"] = second
    sst = 20.0 + 5.0 * ds["ssh"].fillna(0.0)
    sst.attrs = {"units": "degC"}
    ds["sst"] = sst
    return ds


def test_observation_lists_are_merged_cell_by_cell(mock_ds):
    ds = _with_extras(mock_ds)
    task = build_interpolation_task(ds, "ssh", ["ssh_obs", "ssh_obs2"])
    a, b = ds["ssh_obs"].values, ds["ssh_obs2"].values
    both = np.isfinite(a) & np.isfinite(b)
    only_a = np.isfinite(a) & ~np.isfinite(b)
    got = task.obs.values
    np.testing.assert_allclose(got[both], (0.5 * (a + b))[both], rtol=1e-6)
    np.testing.assert_allclose(got[only_a], a[only_a], rtol=1e-6)
    assert np.isnan(got[~np.isfinite(a) & ~np.isfinite(b)]).all()
    assert task.obs.name == "ssh_obs+ssh_obs2"


def test_extra_inputs_get_their_own_normalisation_and_no_mask_when_gap_free(mock_ds):
    from data.tasks.interpolation import InterpolationParams

    ds = _with_extras(mock_ds)
    task = build_interpolation_task(ds, "ssh", "ssh_obs", aux="sst",
                                    params=InterpolationParams(background="none"))
    io = task.network_io(3)
    assert len(io.sources) == 2 and io.masks == [True, False]
    train = ds["sst"].values[task.index("train")]
    offset, scale = io.scales[1]
    assert offset == pytest.approx(train.mean(), rel=1e-5)
    assert scale == pytest.approx(train.std(), rel=1e-4)
    assert io.in_channels == 3 * 3 and io.base_channel is None
    # with the default background, departures from the SST's own training mean map
    anomalies = build_interpolation_task(ds, "ssh", "ssh_obs", aux="sst").network_io(3)
    offset, scale = anomalies.scales[1]
    departures = train - train.mean(axis=0)
    assert offset == pytest.approx(0.0, abs=1e-5)
    assert scale == pytest.approx(departures.std(), rel=1e-3)
    np.testing.assert_allclose(anomalies.sources[1].values[task.index("train")], departures,
                               atol=1e-5)


@pytest.mark.parametrize("obs, aux, message", [
    (["ssh_obs", "simulation"], None, "'simulation' cannot be merged"),
    (["ssh_obs", "ssh"], None, "is the variable to reconstruct"),
    ("ssh_obs", "ssh_obs", "also the variable to reconstruct or an observation variable"),
    ("ssh_obs", "nope", "unknown extra input variable 'nope'"),
])
def test_bad_observation_and_extra_names_are_one_line_errors(mock_ds, obs, aux, message):
    with pytest.raises(DataError, match=message):
        build_interpolation_task(_with_extras(mock_ds), "ssh", obs, aux=aux)


def test_config_accepts_observation_lists_and_extras():
    from backend.config import build_config

    cfg = build_config(task="interpolation", model="unet",
                       overrides={"data.obs": ["ssh_obs", "ssh_obs_swot"], "data.aux": "sst"})
    assert cfg.data.obs == ["ssh_obs", "ssh_obs_swot"] and cfg.data.aux == "sst"
    again = build_config(task="interpolation", model="unet", overrides={"data.obs": ["ssh_obs"]})
    assert again.data.obs == "ssh_obs"
    with pytest.raises(ConfigError, match="twice"):
        build_config(task="interpolation", model="unet", overrides={"data.obs": ["a", "a"]})
