"""The shared network trainer: loss terms, task tensors, rollouts, Lightning's parts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from data.synthetic import mock_field
from data.tasks import NetworkIO, build_interpolation_task
from data.torch_data import Normalisation, TaskTensors
from models.losses import CombinedLoss, Grid, gradient_mse, masked_mse, vorticity_mse
from models.trainer import NetworkModel, TrainSettings
from models.unet import UNetMapper, UNetParams


# ----------------------------------------------------------------------------- losses


def test_loss_terms_on_hand_derived_cases():
    h, w = 6, 8
    jj = torch.arange(w, dtype=torch.float32)[None, None, None, :].expand(1, 1, h, w)
    ii = torch.arange(h, dtype=torch.float32)[None, None, :, None].expand(1, 1, h, w)
    ones = torch.ones(1, 1, h, w)
    zero = torch.zeros(1, 1, h, w)
    grid = Grid(dx=1000.0, dy=1000.0)
    # An error growing by 0.5 per column: MSE is the mean of (0.5 j)², the x-gradient is
    # 0.5 everywhere and the y-gradient 0, so the gradient term is (0.25 + 0) / 2.
    err = 0.5 * jj
    assert float(masked_mse(err, zero, ones)) == pytest.approx(float((err**2).mean()))
    assert float(gradient_mse(err, zero, ones, grid)) == pytest.approx(0.125)
    # A linear error has no Laplacian; a quadratic one, ii², has Laplacian 2 everywhere.
    assert float(vorticity_mse(err, zero, ones, grid)) == pytest.approx(0.0, abs=1e-10)
    assert float(vorticity_mse(ii**2, zero, ones, grid)) == pytest.approx(4.0)
    # Anisotropic spacing: differences are per mean grid step.
    assert float(gradient_mse(jj, zero, ones, Grid(dx=2000.0, dy=1000.0))) == pytest.approx(
        ((1.5 / 2) ** 2) / 2)
    # Land (weight 0) never counts, nor does a stencil touching it.
    weight = ones.clone()
    weight[..., :, 4:] = 0
    spiky = err.clone()
    spiky[..., :, 5:] = 1e6
    assert float(masked_mse(spiky, zero, weight)) == pytest.approx(float((err[..., :, :4] ** 2).mean()))
    assert float(gradient_mse(spiky, zero, weight, grid)) < 1.0
    total, parts = CombinedLoss([("mse", 1.0), ("gradient", 0.5)], grid)(err, zero, ones)
    assert float(total) == pytest.approx(float(parts["mse"]) + 0.5 * float(parts["gradient"]))


def test_train_settings_validate_the_loss():
    with pytest.raises(ValueError, match="unknown loss term 'huber'"):
        TrainSettings(loss=[{"name": "huber"}])
    with pytest.raises(ValueError, match="positive weight"):
        TrainSettings(loss=[{"name": "mse", "weight": 0}])
    assert [t.name for t in TrainSettings().loss] == ["mse"]


# ----------------------------------------------------------------------- task tensors


def test_task_tensors_blocks_offsets_and_weights(mock_ds):
    task = build_interpolation_task(mock_ds, "ssh", "ssh_obs")
    norm = Normalisation(mean=0.1, std=2.0)
    io = NetworkIO(sources=[task.obs, task.truth], masks=[True, False], in_offsets=(-2, 0, 1),
                   out_offsets=(0, 3))
    t = TaskTensors(task, io, norm, torch.device("cpu"))
    assert io.in_channels == 3 * 3 and io.out_channels == 2
    day = 5
    x = t.inputs(torch.tensor([day]))[0].numpy()
    obs, truth = task.obs.values, task.truth.values
    for k, off in enumerate((-2, 0, 1)):
        seen = np.isfinite(obs[day + off])
        np.testing.assert_allclose(x[k][seen], (obs[day + off][seen] - 0.1) / 2.0, rtol=1e-5)
        np.testing.assert_array_equal(x[3 + k], seen.astype(np.float32))  # obs availability
        finite = np.isfinite(truth[day + off])
        np.testing.assert_allclose(x[6 + k][finite], (truth[day + off][finite] - 0.1) / 2.0,
                                   rtol=1e-5)
    # Targets past the end of the record weigh nothing; inside, the ocean mask.
    last = task.truth.sizes["time"] - 2
    y, w = t.targets(torch.tensor([last]))
    assert float(w[0, 1].sum()) == 0  # last + 3 is past the record
    np.testing.assert_array_equal(w[0, 0].numpy(), task.mask.values.astype(np.float32))


class _AddOne(nn.Module):
    """A 'network' whose increment is +1 (normalised units) everywhere."""

    def forward(self, x):
        return torch.ones_like(x[:, :1])


class _AddOneModel(NetworkModel):
    Params = UNetParams

    def build_network(self, io):
        return _AddOne()


def test_rollout_feeds_each_step_back(mock_ds):
    """With an increment of +1 per step over the last state, lead k is state + k·std."""
    from data.tasks import get_task
    from backend.config import DataConfig

    ds = mock_field(n_time=60, n_lat=8, n_lon=10, seed=3)
    params = get_task("forecast").Params(history=3, horizon=4, mode="rollout")
    task = get_task("forecast").build(ds, DataConfig(var="ssh"), params)
    model = _AddOneModel(UNetParams(), torch.device("cpu"))
    model.norm = Normalisation(mean=0.0, std=0.5)
    starts = task.sample_times("test")[:2]
    pred = model.predict(task, starts)
    assert pred.dims == ("time", "lead_time", "lat", "lon")
    initial = task.state.sel(time=starts).values
    for k in range(4):
        np.testing.assert_allclose(pred.values[:, k], initial + 0.5 * (k + 1), rtol=1e-5)
    direct = get_task("forecast").build(ds, DataConfig(var="ssh"), params.model_copy(
        update={"mode": "direct"}))
    assert direct.network_io().out_offsets == (1, 2, 3, 4) and direct.network_io().rollout == 1


# --------------------------------------------------------------------- Lightning parts


TINY = UNetParams(window=3, base_channels=4, depth=2)
TINY_TRAIN = dict(patch_size=12, batch_size=4, steps_per_epoch=3)


def test_loggers_checkpoint_and_history_in_the_run_folder(mock_ds, tmp_path):
    task = build_interpolation_task(mock_ds, "ssh", "ssh_obs")
    model = UNetMapper(TINY, torch.device("cpu"), seed=0)
    settings = TrainSettings(epochs=4, loss=[{"name": "mse"}, {"name": "gradient", "weight": 0.5}],
                             **TINY_TRAIN)
    history = model.fit(task, settings, log_dir=tmp_path)
    # history.csv keeps issue 2's columns first, then each loss term, then ``best``.
    assert list(history.columns[:5]) == ["epoch", "epochs", "train_loss", "val_loss", "lr"]
    assert history.columns[-1] == "best"
    assert {"train_mse", "train_gradient", "val_mse", "val_gradient"} <= set(history.columns)
    np.testing.assert_allclose(history["train_loss"],
                               history["train_mse"] + 0.5 * history["train_gradient"], rtol=1e-4)
    assert history["best"].sum() == 1
    assert history.loc[history["best"], "epoch"].item() == history.loc[
        history["val_loss"].idxmin(), "epoch"]
    csv = pd.read_csv(tmp_path / "lightning" / "metrics.csv")
    assert csv["val_loss"].dropna().size == 4
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "checkpoints" / "best.ckpt").exists()
    # The restored weights are the best epoch's: its validation loss is reproduced.
    best_val = history["val_loss"].min()
    tensors = TaskTensors(task, model.task_io(task), model.norm, torch.device("cpu"))
    x, y, w = tensors.inputs(torch.as_tensor(task.index("val"))), *tensors.targets(
        torch.as_tensor(task.index("val")))
    model.net.eval()
    with torch.no_grad():
        total, _ = CombinedLoss([("mse", 1.0), ("gradient", 0.5)],
                                Grid.from_coords(task.truth.lat.values, task.truth.lon.values))(
            model._apply(x, model.task_io(task)), y, w)
    assert float(total) == pytest.approx(best_val, rel=1e-3)


def test_early_stopping_ends_training_early(mock_ds):
    task = build_interpolation_task(mock_ds, "ssh", "ssh_obs")
    model = UNetMapper(TINY, torch.device("cpu"), seed=0)
    settings = TrainSettings(epochs=50, lr=1e-7, scheduler="constant", early_stopping_patience=2,
                             **TINY_TRAIN)
    history = model.fit(task, settings)
    assert len(history) < 50
    assert (history["epochs"] == 50).all()


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("scheduler", ["cosine", "constant"])
def test_optimisers_and_schedules_from_the_settings(mock_ds, optimizer, scheduler):
    task = build_interpolation_task(mock_ds, "ssh", "ssh_obs")
    model = UNetMapper(TINY, torch.device("cpu"), seed=0)
    settings = TrainSettings(epochs=2, optimizer=optimizer, scheduler=scheduler, lr=1e-3,
                             **TINY_TRAIN)
    history = model.fit(task, settings)
    assert len(history) == 2 and np.isfinite(history["train_loss"]).all()
    if scheduler == "constant":
        assert history["lr"].tolist() == [1e-3, 1e-3]
    else:
        assert history["lr"].iloc[-1] < 1e-3
