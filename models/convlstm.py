"""ConvLSTM forecaster, the course's recurrent network (Shi et al. 2015).

The input steps of the task (for a forecast the last ``task.history`` states) are read as a
sequence: the trainer's channels come in blocks, each source's values at every input offset
(see :mod:`data.torch_data`), so ``(B, io.in_channels, H, W)`` is reshaped to
``(B, steps, io.channels_per_step, H, W)`` with ``steps = len(io.in_offsets)``. Each step is
encoded by a small convolutional encoder that halves the resolution ``depth`` times; a stack
of ConvLSTM cells runs over the encoded sequence; its last hidden state is decoded back to
the full grid, with skip connections from the encoding of the newest step, by a convolutional
head giving ``io.out_channels`` (every lead at once in ``direct`` mode, the next step in
``rollout`` mode, which the shared trainer feeds back ``horizon`` times).

The ConvLSTM cell (Shi et al. 2015, "Convolutional LSTM Network: A Machine Learning
Approach for Precipitation Nowcasting", NeurIPS; without the peephole terms, as in most
implementations)::

    i, f, g, o = split(W * [x_t, h_{t-1}] + b)
    c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g)
    h_t = σ(o) ⊙ tanh(c_t)

No maintained PyPI package offers a PyTorch ConvLSTM cell, so it is written here (twenty
lines). The head's last convolution starts at zero: with the trainer's increment over the
last state (``io.base_channel``) the untrained forecaster is persistence, and training learns
the tendency. Training, normalisation, rollouts and weights are the shared trainer's
(:mod:`models.trainer`); the mode follows ``task.mode``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from data.tasks import NetworkIO
from models.base import ModelParams
from models.registry import register
from models.trainer import NetworkModel


class ConvLSTMParams(ModelParams):
    name: Literal["convlstm"] = "convlstm"
    base_channels: int = Field(16, ge=2, le=256, description="channels of the full-resolution "
                                                             "step encoder")
    hidden_channels: int = Field(48, ge=2, le=512, description="channels of the ConvLSTM state")
    layers: int = Field(1, ge=1, le=4, description="stacked ConvLSTM cells")
    depth: int = Field(2, ge=0, le=4, description="halvings of the resolution before the "
                                                  "ConvLSTM (its reach grows with each)")
    kernel_size: int = Field(3, ge=1, le=7, description="kernel of the ConvLSTM gates (odd)")

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"kernel_size must be odd so that the grid keeps its size (got {v})")
        return v


class ConvLSTMCell(nn.Module):
    """One ConvLSTM cell: gates from a convolution of the input and the hidden state."""

    def __init__(self, c_in: int, c_hidden: int, kernel_size: int = 3):
        super().__init__()
        self.c_hidden = c_hidden
        self.gates = nn.Conv2d(c_in + c_hidden, 4 * c_hidden, kernel_size,
                               padding=kernel_size // 2)
        with torch.no_grad():  # forget gate biased open (Jozefowicz et al. 2015)
            self.gates.bias[c_hidden:2 * c_hidden].fill_(1.0)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.c_hidden, *x.shape[-2:])
            state = (zeros, zeros)
        h, c = state
        i, f, g, o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GELU())


class ConvLSTMNet(nn.Module):
    """``(B, steps·c_step, H, W) → (B, c_out, H, W)`` for any H, W (padded internally).

    Channels are ``c_step`` blocks of ``steps`` consecutive steps (block-major, as the
    trainer lays them out); the sequence runs from the oldest step to the newest.
    """

    def __init__(self, steps: int, c_step: int, c_out: int, base: int = 24, hidden: int = 64,
                 layers: int = 1, depth: int = 2, kernel_size: int = 3):
        super().__init__()
        self.steps, self.c_step, self.depth = steps, c_step, depth
        chans = [base * 2**k for k in range(depth + 1)]
        self.stem = _conv(c_step, base)
        self.down = nn.ModuleList([_conv(chans[k], chans[k + 1], stride=2) for k in range(depth)])
        self.cells = nn.ModuleList([ConvLSTMCell(chans[-1] if k == 0 else hidden, hidden,
                                                 kernel_size) for k in range(layers)])
        c = hidden
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for k in reversed(range(depth)):
            self.up.append(nn.ConvTranspose2d(c, chans[k], 2, stride=2))
            self.dec.append(nn.Sequential(_conv(2 * chans[k], chans[k]), _conv(chans[k], chans[k])))
            c = chans[k]
        self.head = nn.Conv2d(c, c_out, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for down in self.down:
            feats.append(down(feats[-1]))
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        m = 2**self.depth
        ph, pw = (-H) % m, (-W) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        h_, w_ = x.shape[-2:]
        # (B, c_step·steps) block-major → (steps, B, c_step, H, W), oldest first
        seq = x.reshape(B, self.c_step, self.steps, h_, w_).permute(2, 0, 1, 3, 4)
        feats = self._encode(seq.reshape(self.steps * B, self.c_step, h_, w_))
        deep = feats[-1].view(self.steps, B, *feats[-1].shape[1:])
        states: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.cells)
        for t in range(self.steps):
            inp = deep[t]
            for k, cell in enumerate(self.cells):
                states[k] = cell(inp, states[k])
                inp = states[k][0]
        y = inp
        # skips: the encoding of the newest step at each resolution
        skips = [f.view(self.steps, B, *f.shape[1:])[-1] for f in feats[:-1]]
        for up, dec in zip(self.up, self.dec, strict=True):
            y = dec(torch.cat([up(y), skips.pop()], dim=1))
        return self.head(y)[..., :H, :W]


@register("convlstm")
class ConvLSTMMapper(NetworkModel):
    """Learned forecaster: a ConvLSTM over the input steps, trained by the shared trainer
    (direct or rollout, following ``task.mode``)."""

    Params = ConvLSTMParams
    tasks = ("forecast",)

    @property
    def width(self) -> int:
        """Channels per point that size memory estimates (the trainer multiplies them by its
        activation factors): the full-resolution encoder and decoder, plus the ConvLSTM
        gates, which run at 1/4**depth of the points."""
        p: ConvLSTMParams = self.params  # type: ignore[assignment]
        return int(p.base_channels + p.hidden_channels // 4)

    def build_network(self, io: NetworkIO) -> nn.Module:
        p: ConvLSTMParams = self.params  # type: ignore[assignment]
        return ConvLSTMNet(len(io.in_offsets), io.channels_per_step, io.out_channels,
                           p.base_channels, p.hidden_channels, p.layers, p.depth, p.kernel_size)
