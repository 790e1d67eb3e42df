"""The UNet mapper: any grid size, training split statistics, best checkpoint, weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from data.tasks import build_interpolation_task
from data.torch_data import Normalisation, RandomPatchBatches, WindowTensors
from models.trainer import TrainSettings
from models.unet import UNet, UNetMapper, UNetParams

TINY = dict(window=3, base_channels=4, depth=2)
TINY_TRAIN = dict(patch_size=12, batch_size=4, steps_per_epoch=4)


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (13, 9), (16, 16), (33, 18)])
def test_unet_keeps_any_grid_size(shape):
    net = UNet(6, 1, base=4, depth=3).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 6, *shape))
    assert out.shape == (2, 1, *shape)


def test_window_inputs_match_the_observations(mock_ds):
    from data.tasks.interpolation import InterpolationParams

    task = build_interpolation_task(mock_ds, "ssh", "ssh_obs",
                                    params=InterpolationParams(background="none"))
    norm = Normalisation.from_task(task)
    tens = WindowTensors(task, norm, window=3, device=torch.device("cpu"))
    day = 10
    x = tens.inputs(torch.tensor([day]))[0].numpy()
    assert x.shape[0] == 6
    obs = task.obs.values
    for k, d in enumerate(range(day - 1, day + 2)):
        seen = np.isfinite(obs[d])
        np.testing.assert_allclose(x[k][seen], (obs[d][seen] - norm.mean) / norm.std, rtol=1e-5, atol=1e-6)
        assert np.all(x[k][~seen] == 0)
        np.testing.assert_array_equal(x[3 + k], seen.astype(np.float32))
    # the first day's window runs past the record: zeros, no observation
    x0 = tens.inputs(torch.tensor([0]))[0].numpy()
    assert np.all(x0[0] == 0) and np.all(x0[3] == 0)


def test_default_inputs_are_departures_from_the_training_mean(mock_ds):
    task = build_interpolation_task(mock_ds, "ssh", "ssh_obs")
    norm = Normalisation.from_task(task)
    io = task.network_io(3)
    assert io.in_channels == 7 and io.base_channel == 6
    tens = WindowTensors(task, norm, window=3, device=torch.device("cpu"))
    x = tens.inputs(torch.tensor([10]))[0].numpy()
    train = task.truth.values[task.index("train")]
    mean = np.nanmean(train, axis=0)
    spread = np.nanstd(train - mean)
    obs = task.obs.values
    for k, d in enumerate(range(9, 12)):
        seen = np.isfinite(obs[d])
        np.testing.assert_allclose(x[k][seen], (obs[d] - mean)[seen] / spread, rtol=1e-4,
                                   atol=1e-5)
    # the last channel is the mean map, normalised like the truth (zero on land)
    ocean = task.mask.values
    np.testing.assert_allclose(x[6][ocean], ((mean - norm.mean) / norm.std)[ocean], rtol=1e-4,
                               atol=1e-5)
    assert np.all(x[6][~ocean] == 0)
    # patches cut the static channel at the same place as the others
    i0, j0 = torch.tensor([2]), torch.tensor([5])
    patch = tens.inputs(torch.tensor([10]), i0, j0, (8, 8))[0].numpy()
    np.testing.assert_array_equal(patch, x[:, 2:10, 5:13])


def test_patches_are_crops_of_the_full_inputs(mock_ds):
    task = build_interpolation_task(mock_ds, "ssh", "ssh_obs")
    tens = WindowTensors(task, Normalisation.from_task(task), window=3, device=torch.device("cpu"))
    batches = RandomPatchBatches(tens, task.index("train"), patch=8, batch_size=3, steps=2, seed=5)
    x, y, w = batches[0]
    # 3 days of observations, 3 masks, the training-mean map
    assert x.shape == (3, 7, 8, 8) and y.shape == (3, 1, 8, 8) and w.shape == (3, 1, 8, 8)
    full = tens.inputs(torch.arange(60))
    # every patch appears somewhere in the full field of one training day
    for b in range(3):
        found = any(torch.equal(full[d, :, i:i + 8, j:j + 8], x[b])
                    for d in task.index("train") for i in range(20 - 7) for j in range(24 - 7))
        assert found


def test_normalisation_uses_the_training_split_only(mock_ds):
    task = build_interpolation_task(mock_ds, "ssh", "ssh_obs")
    before = Normalisation.from_task(task)
    task.truth[task.index("test")] = task.truth[task.index("test")] + 100.0
    assert Normalisation.from_task(task) == before


def test_fit_predict_restores_best_weights_and_round_trips(mock_ds):
    task = build_interpolation_task(mock_ds, "ssh", "ssh_obs")
    model = UNetMapper(UNetParams(**TINY), torch.device("cpu"), seed=0)
    seen = []
    history = model.fit(task, TrainSettings(epochs=3, **TINY_TRAIN), progress=seen.append)
    assert [r["epoch"] for r in seen] == [1, 2, 3]
    assert list(history["epoch"]) == [1, 2, 3]
    best = history.loc[history["val_loss"].idxmin(), "epoch"]
    assert history.loc[history["best"], "epoch"].item() == best
    pred = model.predict(task, task.times("test"))
    assert pred.dims == ("time", "lat", "lon") and pred.shape == (len(task.times("test")), 20, 24)
    land = ~mock_ds["mask"].values
    assert np.isnan(pred.values[:, land]).all() and np.isfinite(pred.values[:, ~land]).all()
    assert pred.attrs["units"] == "m"
    # the saved state reproduces the prediction in a fresh model
    fresh = UNetMapper(UNetParams(**TINY), torch.device("cpu"), seed=1)
    fresh.load_state_dict(model.state_dict(), task)
    np.testing.assert_allclose(fresh.predict(task, task.times("test")).values, pred.values, equal_nan=True)


def test_training_reduces_the_error(mock_ds):
    task = build_interpolation_task(mock_ds, "ssh", "ssh_obs")
    params = UNetParams(**{**TINY, "base_channels": 8})
    model = UNetMapper(params, torch.device("cpu"), seed=0)
    times = task.times("test")
    truth = task.truth.sel(time=times).values
    untrained = np.sqrt(np.nanmean((model.predict(task, times).values - truth) ** 2))
    history = model.fit(task, TrainSettings(epochs=6, **{**TINY_TRAIN, "steps_per_epoch": 8, "lr": 5e-3}))
    trained = np.sqrt(np.nanmean((model.predict(task, times).values - truth) ** 2))
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert trained < 0.8 * untrained


def test_oi_first_guess_is_an_input_block_and_the_base(mock_ds):
    from models.oi import OIMapper, OIParams

    task = build_interpolation_task(mock_ds, "ssh", "ssh_obs")
    model = UNetMapper(UNetParams(**TINY, first_guess="oi"), torch.device("cpu"), seed=0)
    io = model.task_io(task)
    # obs, obs mask, first guess (3 steps each), then the training-mean map
    assert io.in_channels == 3 * 3 + 1 and io.masks == [True, False]
    assert io.base_channel == 2 * 3 + 1  # the first guess at the window's centre
    oi = OIMapper(OIParams(), torch.device("cpu")).predict(
        task, pd.DatetimeIndex(task.truth["time"].values))
    norm = Normalisation.from_task(task)
    x = WindowTensors.__mro__[1](task, io, norm, torch.device("cpu")).inputs(
        torch.tensor([20]))[0].numpy()
    ocean = task.mask.values
    np.testing.assert_allclose(x[io.base_channel][ocean],
                               ((oi.values[20] - norm.mean) / norm.std)[ocean], rtol=1e-4, atol=1e-5)
    # an untrained network's increment is small: the output starts near the OI
    model.fit(task, TrainSettings(epochs=1, **TINY_TRAIN))
    pred = model.predict(task, task.times("test"))
    assert np.isfinite(pred.values[:, ocean]).all()
    # computed once per task object and reused by predict
    assert len(task.__dict__["_first_guess"]) == 1
    with pytest.raises(ValueError, match="nope"):
        UNetParams(first_guess="oi", first_guess_params={"nope": 1})


def test_resampled_observations_are_training_truth_seen_through_other_tracks(mock_ds):
    task = build_interpolation_task(mock_ds, "ssh", "ssh_obs")
    task.obs.attrs["noise_std"] = 0.0
    norm = Normalisation.from_task(task)
    tens = WindowTensors(task, norm, window=3, device=torch.device("cpu"))
    batches = RandomPatchBatches(tens, task.index("train"), patch=8, batch_size=6, steps=2,
                                 seed=3, resample=1.0)
    g = torch.Generator().manual_seed(0)
    day = torch.as_tensor(task.index("train")[5:11])
    i0, j0 = torch.zeros(6, dtype=torch.long), torch.zeros(6, dtype=torch.long)
    x0 = tens.inputs(day, i0, j0, (8, 8))
    x = batches._resample(x0, day, i0, j0, g)
    train = task.truth.values[task.index("train")]
    mean = np.nanmean(train, axis=0)
    spread = np.nanstd(train - mean)
    truth = task.truth.values
    changed = 0
    for b in range(6):
        for k, d in enumerate(range(int(day[b]) - 1, int(day[b]) + 2)):
            seen = x[b, 3 + k].numpy().astype(bool)
            assert set(np.unique(x[b, 3 + k].numpy())) <= {0.0, 1.0}
            expected = ((truth[d] - mean) / spread)[:8, :8]
            np.testing.assert_allclose(x[b, k].numpy()[seen], expected[seen], rtol=1e-4, atol=1e-5)
            assert np.all(x[b, k].numpy()[~seen] == 0)
        changed += not torch.equal(x[b, 3:6], x0[b, 3:6])
    assert changed >= 4  # other days' track patterns, not the sample's own
    # the static and other channels are untouched
    torch.testing.assert_close(x[:, 6:], x0[:, 6:])


def test_resampling_never_reads_truth_outside_the_training_period(mock_ds):
    task = build_interpolation_task(mock_ds, "ssh", "ssh_obs")
    io = task.network_io(3)
    clean, _ = io.clean[0]
    outside = ~clean["time"].isin(task.times("train")).values
    assert np.isnan(clean.values[outside]).all()
    assert np.isfinite(clean.values[~outside][:, task.mask.values]).all()
