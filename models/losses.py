"""Loss terms of the network trainer, chosen and weighted in the ``train.loss`` config list.

Every term takes the prediction and target ``(B, C, H, W)`` (normalised units), the weight
map ``(B, C, H, W)`` (1 on ocean points to score, 0 elsewhere) and the :class:`Grid`
(grid spacing in metres, so that terms with derivatives — and later a physics residual —
use physical distances), and returns a scalar. The trainer logs each term separately
(``train_mse``, ``train_gradient``, …) beside their weighted sum ``train_loss``.

A new term is one function and one line in :data:`LOSS_TERMS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Grid:
    """Mean grid spacing of the task's grid (metres): ``dx`` along lon, ``dy`` along lat."""

    dx: float = 1.0
    dy: float = 1.0

    @classmethod
    def from_coords(cls, lat: np.ndarray, lon: np.ndarray) -> Grid:
        """Spacing of a regular lat/lon grid in degrees (dx at the mean latitude)."""
        r = 6_371_000.0 * np.pi / 180.0
        dlat = float(np.median(np.diff(lat))) if len(lat) > 1 else 1.0
        dlon = float(np.median(np.diff(lon))) if len(lon) > 1 else 1.0
        coslat = float(np.cos(np.deg2rad(np.mean(lat))))
        return cls(dx=abs(dlon) * r * max(coslat, 1e-3), dy=abs(dlat) * r)


LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Grid], torch.Tensor]


def _weighted_mean(sq: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return (weight * sq).sum() / weight.sum().clamp_min(1.0)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
               grid: Grid | None = None) -> torch.Tensor:
    """Mean of ``weight · (pred − target)²`` over the points where ``weight > 0``."""
    return _weighted_mean((pred - target) ** 2, weight)


def _dx(a: torch.Tensor) -> torch.Tensor:
    return a[..., :, 1:] - a[..., :, :-1]


def _dy(a: torch.Tensor) -> torch.Tensor:
    return a[..., 1:, :] - a[..., :-1, :]


def gradient_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                 grid: Grid) -> torch.Tensor:
    """MSE of the spatial gradient (forward differences, both points scored), with the
    differences expressed per mean grid step so that the term is comparable with ``mse``.
    The gradient of SSH is the geostrophic current."""
    scale = (grid.dx + grid.dy) / 2
    err = pred - target
    gx = _dx(err) * (scale / grid.dx)
    gy = _dy(err) * (scale / grid.dy)
    wx = weight[..., :, 1:] * weight[..., :, :-1]
    wy = weight[..., 1:, :] * weight[..., :-1, :]
    return (_weighted_mean(gx**2, wx) + _weighted_mean(gy**2, wy)) / 2


def vorticity_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                  grid: Grid) -> torch.Tensor:
    """MSE of the 5-point Laplacian of the error (the geostrophic relative vorticity up to
    g/f), per mean grid step squared, on interior points whose stencil is all scored."""
    scale = (grid.dx + grid.dy) / 2
    err = pred - target
    lap = ((err[..., 1:-1, 2:] - 2 * err[..., 1:-1, 1:-1] + err[..., 1:-1, :-2]) * (scale / grid.dx) ** 2
           + (err[..., 2:, 1:-1] - 2 * err[..., 1:-1, 1:-1] + err[..., :-2, 1:-1]) * (scale / grid.dy) ** 2)
    w = (weight[..., 1:-1, 1:-1] * weight[..., 1:-1, 2:] * weight[..., 1:-1, :-2]
         * weight[..., 2:, 1:-1] * weight[..., :-2, 1:-1])
    return _weighted_mean(lap**2, w)


def _class_targets(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor):
    """Segmentation: ``pred`` holds one logit per class ``(B, C, H, W)``, ``target`` the
    class index as a number ``(B, 1, H, W)`` (the segmentation task's targets are not
    normalised); returns the one-hot targets ``(B, C, H, W)`` and the weight ``(B, H, W)``."""
    n = pred.shape[1]
    if n < 2:
        raise ValueError("cross_entropy and dice need one output channel per class "
                         "(the segmentation task)")
    labels = target[:, 0].round().long().clamp(0, n - 1)
    onehot = torch.nn.functional.one_hot(labels, n).permute(0, 3, 1, 2).to(pred.dtype)
    return onehot, weight[:, 0]


def cross_entropy(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                  grid: Grid | None = None) -> torch.Tensor:
    """Class-weighted cross-entropy of the logits ``pred`` (segmentation): each class
    weighs ``sqrt(N / (C · N_k))`` with ``N_k`` its scored cells in the batch (eddies are
    rarer than background)."""
    pred = pred.float()
    onehot, w = _class_targets(pred, target, weight)
    n = pred.shape[1]
    counts = (onehot * w[:, None]).sum(dim=(0, 2, 3))
    class_w = torch.sqrt(counts.sum() / (n * counts.clamp_min(1.0)))
    nll = -(onehot * torch.log_softmax(pred, dim=1)).sum(dim=1)
    cell_w = w * (onehot * class_w[None, :, None, None]).sum(dim=1)
    return (cell_w * nll).sum() / cell_w.sum().clamp_min(1e-6)


def dice_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
              grid: Grid | None = None) -> torch.Tensor:
    """1 − the soft Dice of the eddy classes (all but class 0), mean over classes, on the
    scored cells (segmentation)."""
    pred = pred.float()
    onehot, w = _class_targets(pred, target, weight)
    prob = torch.softmax(pred, dim=1) * w[:, None]
    onehot = onehot * w[:, None]
    inter = (prob * onehot).sum(dim=(0, 2, 3))
    total = (prob + onehot).sum(dim=(0, 2, 3))
    dice = (2 * inter + 1.0) / (total + 1.0)
    return 1.0 - dice[1:].mean()


#: Terms for class logits (the segmentation task); the others are for fields.
CLASS_TERMS = ("cross_entropy", "dice")

#: Loss terms by config name.
LOSS_TERMS: dict[str, LossFn] = {
    "mse": masked_mse,
    "gradient": gradient_mse,
    "vorticity": vorticity_mse,
    "cross_entropy": cross_entropy,
    "dice": dice_loss,
}


class CombinedLoss:
    """``Σ weight_k · term_k``; calling it returns the total and each term's value."""

    def __init__(self, terms: list[tuple[str, float]], grid: Grid):
        self.terms = [(name, float(w), LOSS_TERMS[name]) for name, w in terms]
        self.grid = grid

    def __call__(self, pred, target, weight) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts = {name: fn(pred, target, weight, self.grid) for name, _, fn in self.terms}
        total = sum(w * parts[name] for name, w, _ in self.terms)
        return total, parts
