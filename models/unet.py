"""UNet CNN mapping a window of gappy observations to the full field.

Input channels: ``window`` days of observations (normalised, zero where missing) and their
``window`` observation masks; output: the field on the centre day. Trained with Lightning on
random patches (:mod:`data.torch_data`) with the normalisation of the training split; the
weights with the best validation loss are kept. Any grid size works: the network pads its
input to a multiple of ``2**depth`` and crops the output back.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import xarray as xr
from pydantic import Field, field_validator
from torch import nn
from torch.utils.data import DataLoader

from data.tasks import InterpolationTask
from data.torch_data import FullFieldBatches, Normalisation, RandomPatchBatches, WindowTensors
from models.base import Mapper, ModelParams, ProgressFn
from models.lightning_module import fit_network
from models.registry import register


class UNetParams(ModelParams):
    name: Literal["unet"] = "unet"
    window: int = Field(29, ge=1, le=61, description="days of observations in the input (odd, centred)")
    base_channels: int = Field(24, ge=2, le=256, description="channels of the first level")
    depth: int = Field(3, ge=1, le=5, description="number of down-sampling levels")
    patch_size: int = Field(64, ge=8, le=1024, description="training patch side (grid points)")
    batch_size: int = Field(16, ge=1, le=1024, description="patches per training step")
    steps_per_epoch: int = Field(24, ge=1, description="training steps per epoch")
    lr: float = Field(2e-3, gt=0, le=1.0, description="peak learning rate (one-cycle schedule)")
    weight_decay: float = Field(1e-2, ge=0, description="AdamW weight decay")
    flips: bool = Field(True, description="augment with random horizontal/vertical flips")
    transposes: bool = Field(True, description="augment with random lat/lon transposes (square patches)")

    @field_validator("window")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"window must be odd so that it is centred on the day (got {v})")
        return v


class _Block(nn.Sequential):
    def __init__(self, c_in: int, c_out: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.GELU(),
            nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.GELU(),
        )


class UNet(nn.Module):
    """Classic UNet: ``depth`` levels of (conv-conv, max-pool), mirrored with skips.

    ``(B, c_in, H, W) → (B, c_out, H, W)`` for any H, W (padded internally).
    """

    def __init__(self, c_in: int, c_out: int = 1, base: int = 32, depth: int = 3):
        super().__init__()
        chans = [base * 2**k for k in range(depth + 1)]
        self.depth = depth
        self.down = nn.ModuleList([_Block(c_in, chans[0])] +
                                  [_Block(chans[k], chans[k + 1]) for k in range(depth)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[k + 1], chans[k], 2, stride=2)
                                 for k in reversed(range(depth))])
        self.dec = nn.ModuleList([_Block(2 * chans[k], chans[k]) for k in reversed(range(depth))])
        self.head = nn.Conv2d(chans[0], c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        m = 2**self.depth
        ph, pw = (-H) % m, (-W) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        skips = []
        for k, block in enumerate(self.down):
            x = block(x)
            if k < self.depth:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for up, dec in zip(self.up, self.dec, strict=True):
            x = up(x)
            x = dec(torch.cat([x, skips.pop()], dim=1))
        return self.head(x)[..., :H, :W]


@register("unet")
class UNetMapper(Mapper):
    """Learned mapping: UNet on windows of observations."""

    Params = UNetParams
    tasks = ("interpolation",)
    trainable = True

    def __init__(self, params: UNetParams, device: torch.device, seed: int = 0):
        super().__init__(params, device, seed)
        torch.manual_seed(seed)
        self.net = UNet(2 * params.window, 1, params.base_channels, params.depth).to(device)
        self.norm: Normalisation | None = None

    #: Memory budget of one whole-domain batch (validation and prediction).
    FULL_BATCH_BYTES = 1 << 30

    def _full_field_bytes(self, n_lat: int, n_lon: int) -> int:
        """Inference memory of one whole-domain sample: inputs plus the activations alive at
        once without gradients (skips of every level and a few working tensors)."""
        p = self.params
        pad = 2**p.depth
        hw = (-(-n_lat // pad) * pad) * (-(-n_lon // pad) * pad)
        return 4 * hw * (2 * p.window + 8 * p.base_channels)

    def full_batch_size(self, n_lat: int, n_lon: int) -> int:
        """Days per whole-domain batch: up to 8, fewer on large grids (at least 1)."""
        return int(max(1, min(8, self.FULL_BATCH_BYTES // self._full_field_bytes(n_lat, n_lon))))

    def memory_estimate(self, task: InterpolationTask) -> dict[str, int]:
        """Window tensors (inputs padded in time, masks, targets and their temporaries), one
        training batch with its activations and gradients, and one whole-domain batch."""
        p = self.params
        n_t, n_lat, n_lon = (int(s) for s in task.truth.shape)
        field = 4 * n_lat * n_lon
        tensors = field * (5 * n_t + 2 * (n_t + p.window))
        side = min(p.patch_size, max(n_lat, n_lon))
        train = 4 * p.batch_size * side * side * (2 * p.window + 40 * p.base_channels)
        weights = 4 * 4 * sum(x.numel() for x in self.net.parameters())
        full = self.full_batch_size(n_lat, n_lon) * self._full_field_bytes(n_lat, n_lon)
        return {"tensors": tensors, "training batch": train + weights, "whole-domain batch": full}

    def fit(self, task: InterpolationTask, epochs: int, progress: ProgressFn | None = None) -> pd.DataFrame:
        p = self.params
        self.norm = Normalisation.from_task(task)
        tensors = WindowTensors(task, self.norm, p.window, self.device)
        train = RandomPatchBatches(tensors, task.index("train"), p.patch_size, p.batch_size,
                                   p.steps_per_epoch, seed=self.seed, flips=p.flips,
                                   transposes=p.transposes)
        n_lat, n_lon = task.mask.shape
        val = FullFieldBatches(tensors, task.index("val"),
                               batch_size=min(max(1, p.batch_size // 2), self.full_batch_size(n_lat, n_lon)))
        self.net.train()  # a predict() before fit() leaves the network in eval mode
        return fit_network(
            self.net, DataLoader(train, batch_size=None), DataLoader(val, batch_size=None),
            epochs=epochs, lr=p.lr, weight_decay=p.weight_decay, device=self.device, progress=progress,
        )

    @torch.no_grad()
    def predict(self, task: InterpolationTask, times: pd.DatetimeIndex) -> xr.DataArray:
        if self.norm is None:
            self.norm = Normalisation.from_task(task)
        tensors = WindowTensors(task, self.norm, self.params.window, self.device)
        all_times = pd.DatetimeIndex(task.truth["time"].values)
        days = all_times.get_indexer(times)
        self.net.eval()
        out = []
        for x, _, _ in FullFieldBatches(tensors, days, batch_size=self.full_batch_size(*task.mask.shape)):
            out.append(self.net(x)[:, 0].float().cpu().numpy())
        field = np.concatenate(out) * self.norm.std + self.norm.mean
        field = np.where(task.mask.values[None], field, np.nan).astype(np.float32)
        return xr.DataArray(
            field, dims=("time", "lat", "lon"),
            coords={"time": times.values, "lat": task.truth["lat"].values, "lon": task.truth["lon"].values},
            name=task.truth.name, attrs=dict(task.truth.attrs),
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = dict(self.net.state_dict())
        if self.norm is not None:
            state["norm.mean"] = torch.tensor(self.norm.mean)
            state["norm.std"] = torch.tensor(self.norm.std)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        mean, std = state.pop("norm.mean", None), state.pop("norm.std", None)
        if mean is not None and std is not None:
            self.norm = Normalisation(float(mean), float(std))
        self.net.load_state_dict(state)
