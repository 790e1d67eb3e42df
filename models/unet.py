"""UNet CNN, the network of every task's learned baseline.

For interpolation its inputs are ``window`` time steps of observations (departures from the
training period's mean map, normalised, zero where missing) and their masks, any extra input
(``data.aux``, e.g. SST) over the same window, optionally the optimal interpolation's map as a
first guess (``first_guess=oi``: the output is then the OI plus a learned correction), and the
mean map itself; its output the field at the window's centre; for a forecast
the last ``task.history`` states and the next ``task.horizon`` states (direct) or the next
one (rollout); for downscaling the interpolated coarse field and the fine one; for
segmentation the SSH map (and its departure from the training mean) and one logit per class
(targets are the class indices, not normalised; the loss is ``cross_entropy`` and/or
``dice`` of ``train.loss``, class-weighted cross-entropy when it names neither). Training,
normalisation and reconstruction are the shared trainer's (:mod:`models.trainer`). Any grid
size works: the network pads its input to a multiple of ``2**depth`` and crops the output.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from data.tasks import NetworkIO
from models.base import ModelParams
from models.registry import register
from models.trainer import NetworkModel, odd_window


class UNetParams(ModelParams):
    name: Literal["unet"] = "unet"
    window: int = Field(29, ge=1, le=61, description="interpolation: time steps of observations "
                                                     "in the input (odd, centred)")
    base_channels: int = Field(24, ge=2, le=256, description="channels of the first level")
    depth: int = Field(3, ge=1, le=5, description="number of down-sampling levels")
    first_guess: Literal["none", "oi"] = Field(
        "none", description="interpolation: also give the network the optimal interpolation's "
                            "map and learn its correction")
    first_guess_params: dict[str, Any] = Field(
        default_factory=dict, description="parameters of that OI (keys of the oi model, e.g. "
                                          "{lx_deg: 0.6, lt_days: 5}; default: its defaults)")

    @field_validator("first_guess_params")
    @classmethod
    def _oi_params(cls, v: dict[str, Any]) -> dict[str, Any]:
        from models.oi import OIParams

        OIParams(**{k: x for k, x in v.items() if k != "name"})  # refuse unknown keys early
        return v

    _odd = field_validator("window")(odd_window)


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
class UNetMapper(NetworkModel):
    """Learned mapping: a UNet CNN trained by the shared trainer, for every task."""

    Params = UNetParams
    tasks = (*NetworkModel.tasks, "segmentation")
    #: Classes of a segmentation task (one output channel each), 0 for field tasks.
    _n_classes = 0

    def build_network(self, io: NetworkIO) -> nn.Module:
        p: UNetParams = self.params  # type: ignore[assignment]
        return UNet(io.in_channels, self._n_classes or io.out_channels, p.base_channels, p.depth)

    # -- segmentation (issue 12): class logits, targets that are class indices ----------
    def task_io(self, task):
        self._n_classes = int(getattr(task, "n_classes", 0) or 0)
        return super().task_io(task)

    def _fit_process(self, task, io, s, *args, **kwargs):
        if self._n_classes:
            from data.torch_data import Normalisation
            from models.losses import CLASS_TERMS
            from models.trainer import LossTerm

            self.norm = Normalisation(0.0, 1.0)  # targets are classes, outputs logits
            if not any(t.name in CLASS_TERMS for t in s.loss):
                # the field terms (mse, …) mean nothing for classes: class-weighted CE
                s = s.model_copy(update={"loss": [LossTerm(name="cross_entropy")]})
            self._loss_used = [t.name for t in s.loss]
        return super()._fit_process(task, io, s, *args, **kwargs)

    def execution_info(self) -> dict:
        """The trainer's, plus for segmentation the loss terms actually used (class-weighted
        cross-entropy replaces field losses such as the default ``mse``), so that run.json
        says what trained the network."""
        info = super().execution_info()
        if getattr(self, "_loss_used", None):
            info["loss"] = list(self._loss_used)
        return info

    def predict(self, task, times):
        if int(getattr(task, "n_classes", 0) or 0):
            from data.torch_data import Normalisation

            self.norm = Normalisation(0.0, 1.0)
        return super().predict(task, times)
