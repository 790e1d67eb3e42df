"""Autoencoder: a convolutional (or linear) network with a real bottleneck.

The network (:class:`ConvAutoencoder`) encodes a square tile with strided convolutions down
to a small map, flattens it into one dense **latent vector** of ``latent`` numbers and decodes
that vector back to the tile; there are no skip connections, so everything the network
outputs passed through the latent vector. The linear variant (``linear: true``,
:class:`LinearAutoencoder`) is one linear map from the flattened tile to the latent vector and
one back, without bias, nonlinearity or normalisation: trained on full, centred fields it
finds the leading EOFs (principal components) of the data — the course's "a linear
autoencoder is PCA" (:func:`fit_linear_autoencoder` shows it; ``tests/test_autoencoder.py``
checks it against numpy's SVD).

It is trained by the shared trainer (:mod:`models.trainer`) like the UNet, with the task's
:class:`~data.tasks.NetworkIO`:

- interpolation: a **denoising / gap-filling** autoencoder. Inputs are ``window`` steps of
  gappy, noisy observations (departures from the training mean map) with their masks and the
  mean map; the target is the full field at the window's centre. The trainer adds the mean
  map (the task's ``base_channel``) to the network's output, so the eddies — the part that
  is learned — pass through the bottleneck and the time-mean does not have to.
- forecast: **direct**: the last ``history`` states in, the next ``horizon`` states out
  through the bottleneck (as an increment over the last state, the task's base). Stepping in
  latent space (encode the state, advance the latent vector, decode every lead) would need a
  state encoder, a latent propagator and a decoder trained together on reconstruction and
  latent-consistency losses: a second training loop beside the shared trainer's
  inputs → targets loss, and, on tiles, latent vectors of overlapping tiles that drift apart
  lead after lead with nothing to keep them consistent. A direct forecast is one
  inputs → targets map that the shared trainer already fits, its errors do not compound
  through an autoregressive loop, and each lead is decoded from the same latent vector; the
  task's ``mode: rollout`` still works (the trainer feeds the one-step output back).
- downscaling: the interpolated coarse field in, the fine field out (also through the
  bottleneck, as an increment over the interpolated field); no extra code.

**Tiles.** A dense latent vector needs a fixed input size: the network works on tiles of the
training patch's side (``train.patch_size``, given by :meth:`NetworkModel.configure` before
the network is built; padded inside to a multiple of ``2**depth``). Training patches are one
tile. A whole-domain input of any ``H × W`` (validation, prediction) is cut into overlapping
tiles of that side at a stride of half a tile, the last row and column of tiles flush with the
domain's edge (every tile lies inside the domain, as every training patch did; nothing is
padded with values training never saw), and the tiles' outputs are blended with a smooth
``sin²`` window normalised by the sum of the windows (:func:`tiled_apply`): the weights of
each point sum to one, so there are no seams. A side of the domain shorter than the tile is
one tile of that length, padded with zeros inside the network as the training patches were.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from data.tasks import NetworkIO, Task
from models.base import ModelParams
from models.registry import register
from models.trainer import NetworkModel, odd_window

#: Latent sizes ``python -m app tune --model autoencoder`` chooses from.
LATENT_CHOICES = (4, 16, 64, 256, 1024)
#: Tile side when the trainer's settings were not given (``train.patch_size``'s default).
DEFAULT_TILE = 64
#: Tiles per network call in whole-domain inference (bounds its memory on large grids).
MAX_TILES_PER_CALL = 32


class AutoencoderParams(ModelParams):
    name: Literal["autoencoder"] = "autoencoder"
    latent: int = Field(256, ge=1, le=4096, description="size of the dense latent vector, the "
                                                        "bottleneck every output passes through")
    linear: bool = Field(False, description="linear autoencoder: one linear map to the latent "
                                            "vector and one back, no bias, nonlinearity or "
                                            "normalisation (PCA/EOF on full fields)")
    window: int = Field(11, ge=1, le=61, description="interpolation: time steps of observations "
                                                     "in the input (odd, centred; 11 validated "
                                                     "better than the UNet's 29 on the OSSE)")
    base_channels: int = Field(32, ge=2, le=256, description="convolutional: channels of the "
                                                             "first level (doubled at each)")
    depth: int = Field(3, ge=1, le=5, description="convolutional: down-sampling levels before "
                                                  "the dense latent (tile side / 2**depth)")

    _odd = field_validator("window")(odd_window)

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """The latent size, from :data:`LATENT_CHOICES` (the reconstruction error against
        the size of the bottleneck)."""
        return {"latent": trial.suggest_categorical("latent", list(LATENT_CHOICES))}


# --------------------------------------------------------------------------- networks


def _conv(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.BatchNorm2d(c_out),
            nn.GELU()]


class ConvAutoencoder(nn.Module):
    """Convolutional autoencoder on ``side × side`` tiles, no skip connections.

    Encoder: a convolution, then ``depth`` levels of (strided convolution, convolution) that
    halve the tile and double the channels, flattened into a dense layer to ``latent``
    numbers. Decoder: a dense layer back to the smallest map, ``depth`` levels of
    (transposed convolution, convolution), a 1×1 head.
    ``(B, c_in, side, side) → (B, latent) → (B, c_out, side, side)``.
    """

    def __init__(self, c_in: int, c_out: int, side: int, latent: int, base: int = 32,
                 depth: int = 3):
        super().__init__()
        if side % 2**depth:
            raise ValueError(f"tile side {side} is not a multiple of 2**depth = {2**depth}")
        chans = [base * 2**k for k in range(depth + 1)]
        self.side, self.latent = side, latent
        self.small = (chans[-1], side // 2**depth, side // 2**depth)
        enc: list[nn.Module] = _conv(c_in, chans[0])
        for k in range(depth):
            enc += _conv(chans[k], chans[k + 1], stride=2) + _conv(chans[k + 1], chans[k + 1])
        self.encoder = nn.Sequential(*enc)
        flat = math.prod(self.small)
        # The latent vector is batch-normalised (an affine map once trained, so all ``latent``
        # numbers stay free): without it, at the trainer's default learning rate, half the
        # runs collapsed to a constant latent (the output stuck at the mean map).
        self.to_latent = nn.Linear(flat, latent)
        self.latent_norm = nn.BatchNorm1d(latent)
        self.from_latent = nn.Sequential(nn.Linear(latent, flat), nn.GELU())
        dec: list[nn.Module] = []
        for k in reversed(range(depth)):
            dec += [nn.ConvTranspose2d(chans[k + 1], chans[k], 2, stride=2),
                    nn.BatchNorm2d(chans[k]), nn.GELU(), *_conv(chans[k], chans[k])]
        self.decoder = nn.Sequential(*dec)
        self.head = nn.Conv2d(chans[0], c_out, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, c_in, side, side) → (B, latent)``."""
        z = self.to_latent(self.encoder(x).flatten(1))
        norm = self.latent_norm
        if norm.training and z.shape[0] == 1:  # one sample has no batch statistics
            return F.batch_norm(z, norm.running_mean, norm.running_var, norm.weight, norm.bias,
                                training=False, eps=norm.eps)
        return norm(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, latent) → (B, c_out, side, side)``."""
        return self.head(self.decoder(self.from_latent(z).view(-1, *self.small)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class LinearAutoencoder(nn.Module):
    """Linear autoencoder: ``z = E x``, ``x̂ = D z`` on flattened ``shape`` tiles.

    No bias, nonlinearity or normalisation: the mean is removed before (the trainer's
    normalisation and the task's mean map, or :func:`fit_linear_autoencoder`'s centring).
    Trained to reconstruct full centred fields, ``D E`` converges to the orthogonal
    projection on the leading ``latent`` EOFs and ``D``'s columns span them.
    ``(B, c_in, h, w) → (B, latent) → (B, c_out, h, w)``.
    """

    def __init__(self, c_in: int, c_out: int, shape: int | tuple[int, int], latent: int):
        super().__init__()
        h, w = (shape, shape) if isinstance(shape, int) else shape
        self.side, self.latent, self.c_out, self.shape = h, latent, c_out, (h, w)
        self.encoder = nn.Linear(c_in * h * w, latent, bias=False)
        self.decoder = nn.Linear(latent, c_out * h * w, bias=False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, self.c_out, *self.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


# ------------------------------------------------------------------------------ tiles


def blend_window(n: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """``sin²(π (i + ½) / n)``, i = 0…n−1: positive everywhere, smooth, and two copies shifted
    by ``n/2`` (n even) sum to one."""
    i = torch.arange(n, dtype=torch.float64)
    return (torch.sin(math.pi * (i + 0.5) / n) ** 2).to(device=device, dtype=dtype)


def tile_starts(n: int, size: int) -> list[int]:
    """First indices of tiles of ``size`` covering ``0…n−1`` at a stride of ``size // 2``,
    the last one flush with the end (``[0]`` when ``size >= n``)."""
    if size >= n:
        return [0]
    starts = list(range(0, n - size + 1, max(1, size // 2)))
    if starts[-1] != n - size:
        starts.append(n - size)
    return starts


def tiled_apply(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                size: tuple[int, int], max_tiles: int | None = None) -> torch.Tensor:
    """Apply ``fn`` (tiles ``(N, C, h, w) → (N, C_out, h, w)``) to ``x`` ``(B, C, H, W)`` on
    overlapping tiles of ``size = (h, w)`` (:func:`tile_starts` along each axis) and blend
    the outputs with the :func:`blend_window` product, normalised by its sum at each point;
    ``(B, C_out, H, W)``. A domain of one tile is ``fn(x)`` itself. ``max_tiles``: tiles per
    call of ``fn`` (at least one position of every sample)."""
    B, _, H, W = x.shape
    h, w = size
    if (h, w) == (H, W):
        return fn(x)
    if h > H or w > W:
        raise ValueError(f"tile {size} larger than the domain {(H, W)}")
    weight = (blend_window(h, device=x.device, dtype=x.dtype)[:, None]
              * blend_window(w, device=x.device, dtype=x.dtype)[None, :])
    positions = [(i, j) for i in tile_starts(H, h) for j in tile_starts(W, w)]
    per_call = max(1, (max_tiles or B * len(positions)) // B)
    out = None
    total = x.new_zeros(H, W)
    for c in range(0, len(positions), per_call):
        chunk = positions[c:c + per_call]
        y = fn(torch.cat([x[:, :, i:i + h, j:j + w] for i, j in chunk]))
        if out is None:
            out = x.new_zeros(B, y.shape[1], H, W)
        for k, (i, j) in enumerate(chunk):
            out[:, :, i:i + h, j:j + w] += y[k * B:(k + 1) * B] * weight
            total[i:i + h, j:j + w] += weight
    return out / total


class TiledAutoencoder(nn.Module):
    """An autoencoder on tiles of side ``tile``, applied to inputs of any size.

    ``(B, c_in, H, W) → (B, c_out, H, W)``: a tile is ``min(tile, H) × min(tile, W)`` (the
    trainer's patch), padded with zeros to the core's side; larger inputs go through
    :func:`tiled_apply`.
    """

    def __init__(self, core: ConvAutoencoder | LinearAutoencoder, tile: int,
                 max_tiles: int = MAX_TILES_PER_CALL):
        super().__init__()
        if tile > core.side:
            raise ValueError(f"tile {tile} larger than the network's side {core.side}")
        self.core = core
        self.tile = tile
        self.max_tiles = max_tiles

    @property
    def latent(self) -> int:
        return self.core.latent

    def _tile(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        side = self.core.side
        if (h, w) != (side, side):
            x = F.pad(x, (0, side - w, 0, side - h))
        return self.core(x)[..., :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        return tiled_apply(self._tile, x, (min(self.tile, H), min(self.tile, W)), self.max_tiles)


def build_autoencoder(c_in: int, c_out: int, tile: int, params: AutoencoderParams
                      ) -> TiledAutoencoder:
    """The model's network for tiles of side ``tile`` (the training patch)."""
    if params.linear:
        core: nn.Module = LinearAutoencoder(c_in, c_out, tile, params.latent)
    else:
        m = 2**params.depth
        side = -(-tile // m) * m
        core = ConvAutoencoder(c_in, c_out, side, params.latent, params.base_channels,
                               params.depth)
    return TiledAutoencoder(core, tile)


# ------------------------------------------------------------------ course demonstration


def fit_linear_autoencoder(fields: np.ndarray, latent: int, *, iterations: int = 1000,
                           seed: int = 0, progress: Callable[[int, int], None] | None = None,
                           ) -> tuple[LinearAutoencoder, np.ndarray]:
    """The course's demonstration: a linear autoencoder trained on full fields is PCA.

    Parameters
    ----------
    fields : array ``(n_samples, H, W)`` without NaN (e.g. the training period's maps).
    latent : size of the latent vector (the number of EOFs).
    iterations : L-BFGS iterations at most (a 200 × 16 × 16 set converges in a few seconds).
    seed : seed of the initial weights.
    progress : called as ``progress(done, iterations)`` with the L-BFGS iterations done so
        far (``0`` first, then as each iteration evaluates the loss; ``done == iterations``
        at the end, also when L-BFGS converges sooner). It changes nothing computed.

    Returns
    -------
    The trained :class:`LinearAutoencoder` (the class the registered model's ``linear``
    variant uses, here in float64, one channel in and out) and the mean field ``(H, W)``
    removed before training (the one bias a linear autoencoder needs). The columns of
    ``net.decoder.weight`` span the ``latent`` leading EOFs (right singular vectors of the
    centred data) and the reconstruction error is the truncated SVD's (Eckart–Young): a
    linear map of rank ``latent`` cannot do better, and minimising the mean squared error
    over ``D E`` has no other minimum.
    """
    x = np.asarray(fields, dtype=np.float64)
    if x.ndim != 3 or not np.isfinite(x).all():
        raise ValueError("fields must be (n_samples, H, W) without NaN")
    mean = x.mean(axis=0)
    data = torch.from_numpy(x - mean)[:, None]
    torch.manual_seed(seed)
    net = LinearAutoencoder(1, 1, x.shape[1:], latent).double()
    opt = torch.optim.LBFGS(net.parameters(), lr=1.0, max_iter=iterations, history_size=100,
                            tolerance_grad=1e-14, tolerance_change=1e-16,
                            line_search_fn="strong_wolfe")

    first = opt.param_groups[0]["params"][0]  # L-BFGS counts its iterations in its state
    reported = [0]
    if progress is not None:
        progress(0, iterations)

    def closure() -> torch.Tensor:
        # squared error of a whole field, averaged over samples (the mean over points too
        # makes the gradients so small that L-BFGS stalls well before the optimum)
        if progress is not None:
            done = min(int(opt.state[first].get("n_iter", 0)), iterations)
            if done > reported[0]:
                reported[0] = done
                progress(done, iterations)
        opt.zero_grad()
        loss = (net(data) - data).pow(2).sum() / len(data)
        loss.backward()
        return loss

    opt.step(closure)
    if progress is not None:
        progress(iterations, iterations)
    return net.eval(), mean


# ------------------------------------------------------------------------------ model


@register("autoencoder")
class AutoencoderMapper(NetworkModel):
    """Convolutional (or linear) autoencoder with a dense bottleneck, on tiles, trained by
    the shared trainer for every task (see the module docstring)."""

    Params = AutoencoderParams
    tasks = ("interpolation", "forecast", "downscaling")

    @property
    def tile(self) -> int:
        return int(getattr(self, "_patch_size", DEFAULT_TILE))

    def build_network(self, io: NetworkIO) -> nn.Module:
        p: AutoencoderParams = self.params  # type: ignore[assignment]
        return build_autoencoder(io.in_channels, io.out_channels, self.tile, p)

    def memory_estimate(self, task: Task) -> dict[str, int]:
        """The trainer's estimate, with the whole-domain batch as tiled inference needs it:
        the batch's inputs and blended outputs, plus one call's tiles and activations."""
        parts = super().memory_estimate(task)
        io = self.task_io(task)
        n_lat, n_lon = (int(s) for s in task.truth.shape[1:])
        batch = self.full_batch_size(io, n_lat, n_lon)
        side = self.net.core.side
        tiles = MAX_TILES_PER_CALL * side * side * (io.in_channels + io.out_channels
                                                    + self.INFER_FLOATS_PER_CHANNEL * self.width)
        domain = batch * n_lat * n_lon * (io.in_channels + 2 * io.out_channels + 1)
        parts["whole-domain batch"] = 4 * (tiles + domain)
        return parts
