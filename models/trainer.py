"""One trainer for every network: the ``train`` settings and :class:`NetworkModel`.

A learned model subclasses :class:`NetworkModel` and supplies only
:meth:`NetworkModel.build_network`, the ``nn.Module`` that maps the task's inputs to its
outputs (channel counts from :class:`data.tasks.NetworkIO`). Everything else lives here,
once, for every task:

- normalisation with the statistics of the training split's truth, saved with the weights
  and undone on the outputs;
- sampling: random patches of the training samples (flips and transposes as augmentation),
  whole-domain batches for validation and prediction, sized to a memory budget;
- training with Lightning (:mod:`models.lightning_module`): loss terms, optimiser, schedule,
  checkpoints, early stopping and loggers from :class:`TrainSettings`;
- reconstruction into xarray on the task's grid (through :meth:`data.tasks.Task.wrap`),
  including autoregressive rollouts for forecasts;
- weights in and out (``model.safetensors``).
"""

from __future__ import annotations

import gc
from abc import abstractmethod
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn
from torch.utils.data import DataLoader

from data.tasks import NetworkIO, Task
from data.torch_data import FullFieldBatches, Normalisation, RandomPatchBatches, TaskTensors
from models.base import Mapper, ProgressFn
from models.lightning_module import LitNetwork, fit_lightning
from models.losses import LOSS_TERMS, CombinedLoss, Grid

SEED_MAX = 2**63 - 1


def odd_window(value: int) -> int:
    """Validator of a network's ``window`` (time steps of input around the day): odd, so
    that it is centred on the day. Use ``_odd = field_validator("window")(odd_window)``."""
    if value % 2 == 0:
        raise ValueError(f"window must be odd so that it is centred on the day (got {value})")
    return value


class LossTerm(BaseModel):
    """One weighted term of the training loss (names: :data:`models.losses.LOSS_TERMS`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field("mse", description="mse, gradient or vorticity")
    weight: float = Field(1.0, ge=0, le=1e6, description="factor of the term in the loss")

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in LOSS_TERMS:
            raise ValueError(f"unknown loss term {value!r}; choose one of: {', '.join(LOSS_TERMS)}")
        return value


class TrainSettings(BaseModel):
    """How networks are trained (the ``train`` section of the experiment config)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    epochs: int = Field(40, ge=1, le=1_000_000, description="training epochs (learned models only)")
    seed: int = Field(0, ge=0, description="seed of every random choice in the run (0 to 2**63-1)")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto' uses the GPU when there is one")
    optimizer: Literal["adamw", "adam", "sgd"] = Field("adamw", description="optimiser")
    lr: float = Field(2e-3, gt=0, le=1.0, description="peak learning rate")
    weight_decay: float = Field(1e-2, ge=0, le=10.0, description="weight decay")
    scheduler: Literal["onecycle", "cosine", "constant"] = Field(
        "onecycle", description="learning-rate schedule over all steps")
    batch_size: int = Field(16, ge=1, le=1024, description="patches per training step")
    patch_size: int = Field(64, ge=8, le=1024, description="training patch side (grid points)")
    steps_per_epoch: int = Field(24, ge=1, le=100_000, description="training steps per epoch")
    flips: bool | None = Field(
        None, description="augment with random horizontal/vertical flips; default (null): "
                          "where the task allows it (not interpolation: a beta-plane and a mean "
                          "current are not symmetric under flips)")
    transposes: bool | None = Field(
        None, description="augment with random lat/lon transposes (square patches); default "
                          "(null): where the task allows it")
    loss: list[LossTerm] = Field(default_factory=lambda: [LossTerm()],
                                 description="weighted loss terms, e.g. [{name: mse}, "
                                             "{name: gradient, weight: 0.5}]")
    resample_obs: float | None = Field(
        None, ge=0, le=1, description="share of training samples whose observations are redrawn "
                                      "from the training truth with another day's sampling "
                                      "pattern and fresh noise (default: the task's choice)")
    early_stopping_patience: int | None = Field(
        None, ge=1, le=100_000, description="stop after this many epochs without a better "
                                            "validation loss (none: train every epoch)")

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int) -> int:
        if not 0 <= value <= SEED_MAX:
            raise ValueError(f"a seed is an integer from 0 to 2**63-1 = {SEED_MAX}")
        return value

    @field_validator("loss")
    @classmethod
    def _some_loss(cls, value: list[LossTerm]) -> list[LossTerm]:
        if not value or sum(t.weight for t in value) <= 0:
            raise ValueError("the loss needs at least one term with a positive weight")
        return value


class NetworkModel(Mapper):
    """Base of learned models: a network supplied by :meth:`build_network`, trained and
    applied the same way on every task (see the module docstring)."""

    trainable = True
    tasks = ("interpolation", "forecast", "downscaling")
    #: Memory budget of one whole-domain batch (validation and prediction).
    FULL_BATCH_BYTES = 1 << 30
    #: Activation floats kept per output point and base channel in training (with gradients).
    TRAIN_FLOATS_PER_CHANNEL = 40
    #: Activation floats alive per point and base channel in whole-domain inference.
    INFER_FLOATS_PER_CHANNEL = 8

    def __init__(self, params, device: torch.device, seed: int = 0):
        super().__init__(params, device, seed)
        self.net: nn.Module | None = None
        self.norm: Normalisation | None = None
        self.io: NetworkIO | None = None

    # -- what a network supplies ----------------------------------------------------------
    @abstractmethod
    def build_network(self, io: NetworkIO) -> nn.Module:
        """The module mapping ``(B, io.in_channels, H, W)`` to ``(B, io.out_channels, H, W)``
        for any H, W."""

    @property
    def width(self) -> int:
        """Channels of the network's first level (for memory estimates)."""
        return int(getattr(self.params, "base_channels", 32))

    # -- plumbing -------------------------------------------------------------------------
    def task_io(self, task: Task) -> NetworkIO:
        io = task.network_io(getattr(self.params, "window", None))
        if getattr(self.params, "first_guess", "none") == "oi" and task.kind == "interpolation":
            io = self._with_first_guess(task, io)
        return io

    def _with_first_guess(self, task: Task, io: NetworkIO) -> NetworkIO:
        """Add the OI's map of every time step as an input block (normalised like the truth)
        and make its centre step the base: the network learns the OI's correction.

        The OI (:class:`models.oi.OIParams` from the model's ``first_guess_params``) runs once
        per task object and parameters and is kept on it, so fit and predict share it.
        """
        from models.oi import OIMapper, OIParams

        given = {k: v for k, v in getattr(self.params, "first_guess_params", {}).items()
                 if k != "name"}
        params = OIParams(**given)
        key = params.model_dump_json()
        cache = task.__dict__.setdefault("_first_guess", {})
        if key not in cache:
            oi = OIMapper(params, device=self.device, seed=self.seed)
            cache[key] = oi.predict(task, pd.DatetimeIndex(task.truth["time"].values))
        sources = [*io.sources, cache[key]]
        masks = [*io.masks, False]
        scales = [*(io.scales or [None] * len(io.sources)), None]
        centre = list(io.in_offsets).index(0)
        n = len(io.in_offsets)
        out = NetworkIO(sources=sources, masks=masks, in_offsets=io.in_offsets,
                        out_offsets=io.out_offsets, rollout=io.rollout, scales=scales,
                        static=io.static)
        out.base_channel = (out.channels_per_step - 1) * n + centre
        return out

    def _ensure_network(self, io: NetworkIO) -> nn.Module:
        if self.net is None:
            torch.manual_seed(self.seed)
            self.net = self.build_network(io).to(self.device)
        self.io = io
        return self.net

    def _full_field_bytes(self, io: NetworkIO, n_lat: int, n_lon: int) -> int:
        """Inference memory of one whole-domain sample: inputs plus activations."""
        pad = 32
        hw = (-(-n_lat // pad) * pad) * (-(-n_lon // pad) * pad)
        return 4 * hw * (io.in_channels + self.INFER_FLOATS_PER_CHANNEL * self.width)

    def full_batch_size(self, io: NetworkIO, n_lat: int, n_lon: int) -> int:
        """Samples per whole-domain batch: up to 8, fewer on large grids (at least 1)."""
        return int(max(1, min(8, self.FULL_BATCH_BYTES // self._full_field_bytes(io, n_lat, n_lon))))

    def memory_estimate(self, task: Task) -> dict[str, int]:
        """Task tensors (inputs padded in time, masks, targets and their temporaries), one
        training batch with activations and gradients, and one whole-domain batch."""
        io = self.task_io(task)
        net = self._ensure_network(io)
        n_t, n_lat, n_lon = (int(s) for s in task.truth.shape)
        field = 4 * n_lat * n_lon
        span = max(io.in_offsets) - min(min(io.in_offsets), 0)
        blocks = len(io.sources) + sum(io.masks)
        tensors = field * (4 * n_t + blocks * (n_t + span) + 2 * n_t)
        side = min(getattr(self, "_patch_size", 64), max(n_lat, n_lon))
        batch = getattr(self, "_batch_size", 16)
        train = 4 * batch * side * side * (io.in_channels + io.out_channels
                                           + self.TRAIN_FLOATS_PER_CHANNEL * self.width)
        weights = 4 * 4 * sum(x.numel() for x in net.parameters())
        full = self.full_batch_size(io, n_lat, n_lon) * self._full_field_bytes(io, n_lat, n_lon)
        return {"tensors": tensors, "training batch": train + weights, "whole-domain batch": full}

    def configure(self, settings: TrainSettings) -> None:
        """Remember the training settings that size memory (called before estimates)."""
        self._patch_size = settings.patch_size
        self._batch_size = settings.batch_size

    # -- fit and predict ------------------------------------------------------------------
    def fit(self, task: Task, settings: TrainSettings, progress: ProgressFn | None = None,
            log_dir: str | Path | None = None) -> pd.DataFrame:
        """Train on the task's training samples, validate on its validation samples; the
        weights with the best validation loss are kept. Returns the history."""
        s = settings
        self.configure(s)
        io = self.task_io(task)
        net = self._ensure_network(io)
        self.norm = Normalisation.from_task(task)
        tensors = TaskTensors(task, io, self.norm, self.device)
        flips = s.flips if s.flips is not None else "flips" in task.augmentations
        transposes = (s.transposes if s.transposes is not None
                      else "transposes" in task.augmentations)
        train = RandomPatchBatches(tensors, task.sample_index("train"), s.patch_size, s.batch_size,
                                   s.steps_per_epoch, seed=self.seed, flips=flips,
                                   transposes=transposes,
                                   resample=(s.resample_obs if s.resample_obs is not None
                                             else task.resample_obs))
        n_lat, n_lon = tensors.shape
        val = FullFieldBatches(tensors, task.sample_index("val"),
                               batch_size=min(max(1, s.batch_size // 2),
                                              self.full_batch_size(io, n_lat, n_lon)))
        grid = Grid.from_coords(task.truth["lat"].values, task.truth["lon"].values)
        loss = CombinedLoss([(t.name, t.weight) for t in s.loss], grid)
        module = LitNetwork(net, loss, s, steps_per_epoch=len(train), base_channel=io.base_channel)
        net.train()  # a predict() before fit() leaves the network in eval mode
        history = fit_lightning(module, DataLoader(train, batch_size=None),
                                DataLoader(val, batch_size=None), device=self.device,
                                log_dir=log_dir, progress=progress)
        # Lightning's objects reference each other (module ↔ trainer ↔ loops ↔ loaders):
        # free the task's tensors now, not at some later collection, before predict builds
        # its own (on a large grid they are the largest allocation).
        del module, train, val, tensors
        gc.collect()
        return history

    def _apply(self, x: torch.Tensor, io: NetworkIO) -> torch.Tensor:
        out = self.net(x)
        if io.base_channel is not None:
            out = out + x[:, io.base_channel:io.base_channel + 1]
        return out

    @torch.no_grad()
    def predict(self, task: Task, times: pd.DatetimeIndex) -> xr.DataArray:
        """The task's prediction for the sample times ``times`` (see :meth:`Task.wrap`)."""
        io = self.task_io(task)
        net = self._ensure_network(io)
        if self.norm is None:
            self.norm = Normalisation.from_task(task)
        tensors = TaskTensors(task, io, self.norm, self.device)
        all_times = pd.DatetimeIndex(task.truth["time"].values)
        positions = all_times.get_indexer(pd.DatetimeIndex(times))
        net.eval()
        out = []
        batch = self.full_batch_size(io, *tensors.shape)
        for x, _, _ in FullFieldBatches(tensors, positions, batch_size=batch):
            if io.rollout <= 1:
                y = self._apply(x, io)
            else:
                y = self._rollout(x, io)
            out.append(y.float().cpu().numpy())
        values = np.concatenate(out) * self.norm.std + self.norm.mean
        return task.wrap(values, pd.DatetimeIndex(times))

    def _rollout(self, x: torch.Tensor, io: NetworkIO) -> torch.Tensor:
        """Autoregressive forecast: each one-step output becomes the newest input step.

        Channels come in blocks of ``len(io.in_offsets)`` steps (see
        :mod:`data.torch_data`); the first source is the predicted field, an availability
        block becomes ones, any other source has no future values and becomes zeros.
        """
        n = len(io.in_offsets)
        steps = []
        for _ in range(io.rollout):
            y = self._apply(x, io)  # (B, 1, H, W)
            steps.append(y)
            blocks = []
            n_static = len(io.static)
            static = x[:, x.shape[1] - n_static:] if n_static else None
            timed = x[:, :x.shape[1] - n_static]
            for b, block in enumerate(timed.split(n, dim=1)):
                if b == 0:
                    new = y
                elif b == 1 and io.masks[0]:
                    new = torch.ones_like(y)
                else:
                    new = torch.zeros_like(y)
                blocks.append(torch.cat([block[:, 1:], new], dim=1))
            if static is not None:
                blocks.append(static)
            x = torch.cat(blocks, dim=1)
        return torch.cat(steps, dim=1)

    # -- weights --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor] | None:
        if self.net is None:
            return None
        state = dict(self.net.state_dict())
        if self.norm is not None:
            state["norm.mean"] = torch.tensor(self.norm.mean)
            state["norm.std"] = torch.tensor(self.norm.std)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor], task: Task | None = None) -> None:
        """Load saved weights (the network is built for ``task``'s inputs if not yet built)."""
        state = dict(state)
        mean, std = state.pop("norm.mean", None), state.pop("norm.std", None)
        if mean is not None and std is not None:
            self.norm = Normalisation(float(mean), float(std))
        if self.net is None:
            if task is None:
                raise ValueError("load_state_dict needs the task to build the network first")
            self._ensure_network(self.task_io(task))
        self.net.load_state_dict(state)
