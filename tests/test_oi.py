"""Tests of the baseline optimal interpolation (models/oi.py) on small seeded fields."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydantic
import pytest
import torch
import xarray as xr

from data.synthetic import add_noise, insert_nan, mock_field
from data.tasks import InterpolationTask
from models import oi
from models.trainer import TrainSettings
from models.oi import OIMapper, OIParams, optimal_interpolation


def _empty_obs(n_time: int = 14, n_lat: int = 9, n_lon: int = 11,
               step: float = 0.25) -> xr.DataArray:
    """An all-NaN observation record on a small grid, to be filled by hand."""
    ds = mock_field(n_time, n_lat, n_lon, step_deg=step, n_eddies=1)
    return xr.full_like(ds["ssh"], np.nan)


def _numpy_oi(obs: xr.DataArray, times: pd.DatetimeIndex, lat: np.ndarray, lon: np.ndarray,
              lx: float, ly: float, lt: float, noise: float) -> np.ndarray:
    """x_a = B Hᵀ (H B Hᵀ + R)⁻¹ y per day, in float64 numpy with an explicit solve."""
    it, iy, ix = np.nonzero(np.isfinite(obs.values))
    t_obs = (obs.time.values[it] - times[0].to_datetime64()) / np.timedelta64(1, "D")
    la, lo, y = obs.lat.values[iy], obs.lon.values[ix], obs.values[it, iy, ix].astype(float)
    glat, glon = np.meshgrid(lat, lon, indexing="ij")
    out = np.zeros((len(times), len(lat), len(lon)))
    for k, t in enumerate((times - times[0]) / pd.Timedelta(days=1)):
        sel = np.abs(t_obs - t) < 2 * lt
        if not sel.any():
            continue
        ts, las, los, ys = t_obs[sel], la[sel], lo[sel], y[sel]
        hbh = np.exp(-((ts[:, None] - ts) / lt) ** 2 - ((las[:, None] - las) / ly) ** 2
                     - ((los[:, None] - los) / lx) ** 2)
        bh = np.exp(-((t - ts) / lt) ** 2 - ((glat.reshape(-1, 1) - las) / ly) ** 2
                    - ((glon.reshape(-1, 1) - los) / lx) ** 2)
        w = np.linalg.solve(hbh + noise**2 * np.eye(len(ys)), ys)
        out[k] = (bh @ w).reshape(len(lat), len(lon))
    return out


# Budgets: one day per batch, batches of 1 to 4 days, all days in one batch.
@pytest.mark.parametrize("max_batch_bytes", [1, 1_200_000, 1 << 30])
@pytest.mark.parametrize("batched_solve", [True, False])
def test_matches_direct_numpy_evaluation(max_batch_bytes, batched_solve, monkeypatch):
    if not batched_solve:  # the day-by-day factorisation used for large windows
        monkeypatch.setattr(oi, "_BATCHED_MAX_M", 0)
    ds = mock_field(n_time=14, n_lat=10, n_lon=12, step_deg=0.3, seed=3)
    rng = np.random.default_rng(1)
    # A different density each day so that the windows hold different numbers of obs.
    keep = rng.random(ds["ssh"].shape) < rng.uniform(0.02, 0.3, size=(14, 1, 1))
    obs = add_noise(ds["ssh"].where(keep), 0.01, seed=2)
    times = pd.DatetimeIndex(ds.time.values[2:12])
    # A different output grid than the observations' (offset and finer).
    lat = np.linspace(33.1, 35.5, 8)
    lon = np.linspace(-64.9, -62.0, 9)
    kw = dict(lx_deg=0.7, ly_deg=0.5, lt_days=1.6, noise=0.05)
    got = optimal_interpolation(obs, times, lat, lon, remove_mean=False,
                                max_batch_bytes=max_batch_bytes, **kw)
    want = _numpy_oi(obs, times, lat, lon, kw["lx_deg"], kw["ly_deg"], kw["lt_days"],
                     kw["noise"])
    per_day = np.isfinite(obs).sum(("lat", "lon")).values
    day = np.arange(14)
    counts = {int(per_day[np.abs(day - k) < 2 * kw["lt_days"]].sum()) for k in range(2, 12)}
    assert len(counts) > 3  # the padding is exercised
    assert got.dims == ("time", "lat", "lon") and got.dtype == np.float32
    np.testing.assert_array_equal(got.lat.values, lat)
    np.testing.assert_array_equal(got.time.values, times.values)
    np.testing.assert_allclose(got.values, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_observations_outside_the_window_have_no_influence():
    obs = _empty_obs()
    lt = 2.0
    obs[5, 4, 5] = 0.3  # day 5, inside the window of day 8 (|Δt| = 3 < 4)
    only_inside = obs.copy()
    obs[4, 2, 2] = 1.0  # day 4: |Δt| = 4 = 2 Lt, outside
    obs[12, 6, 7] = -1.0  # day 12: |Δt| = 4, outside on the other side
    times = pd.DatetimeIndex(obs.time.values[[8]])
    kw = dict(lx_deg=1.0, ly_deg=1.0, lt_days=lt, noise=0.05, remove_mean=False)
    got = optimal_interpolation(obs, times, obs.lat, obs.lon, **kw)
    want = optimal_interpolation(only_inside, times, obs.lat, obs.lon, **kw)
    np.testing.assert_allclose(got.values, want.values, rtol=0, atol=1e-7)
    assert np.abs(got.values).max() > 0.01  # the inside observation does count
    # and a day whose window holds nothing is the (zero) mean, not an error
    empty = optimal_interpolation(obs, pd.DatetimeIndex(["2013-01-01"]), obs.lat, obs.lon, **kw)
    assert np.all(empty.values == 0)


def test_single_observation_gain_and_gaussian_falloff():
    obs = _empty_obs(step=0.25)
    y, noise, lt = 0.4, 0.05, 7.0
    obs[5, 4, 5] = y
    times = pd.DatetimeIndex(obs.time.values[[5, 8]])
    got = optimal_interpolation(obs, times, obs.lat, obs.lon, lx_deg=1.0, ly_deg=0.5,
                                lt_days=lt, noise=noise, remove_mean=False)
    gain = 1.0 / (1.0 + noise**2)  # B0 / (B0 + noise²) with B0 = 1
    day0 = got.values[0]
    assert day0[4, 5] == pytest.approx(gain * y, rel=1e-6)
    # one Lx = 4 cells away in longitude, one Ly = 2 cells away in latitude: a factor e⁻¹
    assert day0[4, 9] == pytest.approx(gain * y * np.exp(-1), rel=1e-6)
    assert day0[4, 1] == pytest.approx(gain * y * np.exp(-1), rel=1e-6)
    assert day0[6, 5] == pytest.approx(gain * y * np.exp(-1), rel=1e-6)
    # three days later, the time factor exp(-(3/Lt)²)
    assert got.values[1, 4, 5] == pytest.approx(gain * y * np.exp(-(3 / lt) ** 2), rel=1e-6)


def test_remove_mean_maps_a_constant_to_itself_everywhere():
    ds = mock_field(n_time=20, n_lat=16, n_lon=20, step_deg=0.25)
    c = 0.73
    obs = insert_nan(xr.full_like(ds["ssh"], c), 0.95, seed=4)
    obs[:, :, 10:] = np.nan  # the eastern half is never observed
    times = pd.DatetimeIndex(ds.time.values[[0, 10, 19]]).append(
        pd.DatetimeIndex(["2014-06-01"]))  # and a day with no observation at all
    got = optimal_interpolation(obs, times, ds.lat, ds.lon, lx_deg=0.5, ly_deg=0.5,
                                lt_days=3.0, remove_mean=True)
    np.testing.assert_allclose(got.values, c, rtol=1e-6)
    assert got.attrs["oi_mean"] == pytest.approx(c)
    # without it, the far field relaxes to zero
    raw = optimal_interpolation(obs, times[:1], ds.lat, ds.lon, lx_deg=0.5, ly_deg=0.5,
                                lt_days=3.0, remove_mean=False)
    assert abs(raw.values[0, 8, -1]) < 1e-3


def test_oi_mapper_through_the_registry_beats_trivial_guesses():
    from models import registry

    ds = mock_field(n_time=20, n_lat=24, n_lon=32, land=True, seed=5)
    truth = ds["ssh"]
    obs = add_noise(insert_nan(truth, 0.9, seed=6), 0.01, seed=7)
    t = pd.DatetimeIndex(ds.time.values)
    task = InterpolationTask(
        truth=truth, obs=obs, mask=ds["mask"],
        periods={"train": (t[0], t[9]), "val": (t[11], t[13]), "test": (t[15], t[19])},
    )
    cls = registry.get("oi")
    assert cls is OIMapper and not cls.trainable and "interpolation" in cls.tasks
    model = cls(cls.Params(), torch.device("cpu"))
    assert model.fit(task, TrainSettings(epochs=1)) is None
    times = task.times("test")
    pred = model.predict(task, times)

    assert pred.dims == ("time", "lat", "lon") and pred.dtype == np.float32
    assert pred.name == truth.name and pred.attrs["units"] == "m"
    np.testing.assert_array_equal(pred.lat.values, truth.lat.values)
    np.testing.assert_array_equal(pred.lon.values, truth.lon.values)
    np.testing.assert_array_equal(pred.time.values, times.values)
    land = ~ds["mask"].values
    assert np.isnan(pred.values[:, land]).all()
    assert np.isfinite(pred.values[:, ~land]).all()

    ref = truth.sel(time=times).values[:, ~land]

    def rmse(x):
        return float(np.sqrt(np.mean((x - ref) ** 2)))

    score = rmse(pred.values[:, ~land])
    assert score < 0.5 * rmse(np.zeros_like(ref))
    assert score < 0.5 * rmse(np.full_like(ref, float(np.nanmean(obs.values))))


def test_params_are_validated():
    assert OIParams().model_dump() == dict(name="oi", lx_deg=1.0, ly_deg=1.0, lt_days=7.0,
                                           noise=0.05, remove_mean=True, precision="float64")
    for bad in ({"lx_deg": -1.0}, {"noise": 0.0}, {"lt_days": -7}, {"unknown": 1},
                {"name": "unet"}, {"precision": "float16"}):
        with pytest.raises(pydantic.ValidationError):
            OIParams(**bad)
    assert OIParams.model_fields["lx_deg"].description


def test_float32_is_close_on_a_well_conditioned_problem():
    ds = mock_field(n_time=10, n_lat=12, n_lon=12, step_deg=0.25, seed=8)
    obs = insert_nan(ds["ssh"], 0.97, seed=9)
    times = pd.DatetimeIndex(ds.time.values[3:6])
    kw = dict(lx_deg=0.5, ly_deg=0.5, lt_days=2.0, noise=0.1, remove_mean=False)
    x64 = optimal_interpolation(obs, times, ds.lat, ds.lon, **kw)
    x32 = optimal_interpolation(obs, times, ds.lat, ds.lon, dtype=torch.float32, **kw)
    np.testing.assert_allclose(x32.values, x64.values, atol=1e-3 * np.abs(x64.values).max())
