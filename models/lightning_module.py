"""The Lightning module that trains any of OceanLab's networks, and its training loop helper.

A batch is ``(x, y, w)``: inputs ``(B, C, H, W)``, targets ``(B, 1, H, W)`` and a weight map
``(B, 1, H, W)`` (1 on ocean points to score, 0 on land and padding). The loss is the
weighted mean squared error; the best weights on the validation loss are kept in memory and
restored after training.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable

import lightning as L
import pandas as pd
import torch
from torch import nn

log = logging.getLogger(__name__)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of ``weight · (pred − target)²`` over the points where ``weight > 0``."""
    return (weight * (pred - target) ** 2).sum() / weight.sum().clamp_min(1.0)


class LitMapper(L.LightningModule):
    """Wrap any ``nn.Module`` mapping ``(B, C, H, W) → (B, 1, H, W)``."""

    def __init__(self, net: nn.Module, lr: float = 1e-3, weight_decay: float = 0.0,
                 epochs: int = 1, steps_per_epoch: int = 1):
        super().__init__()
        self.net = net
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y, w = batch
        loss = masked_mse(self.net(x), y, w)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=x.shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        x, y, w = batch
        loss = masked_mse(self.net(x), y, w)
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=x.shape[0])
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.lr, total_steps=max(2, self.epochs * self.steps_per_epoch),
            pct_start=0.15)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class _History(L.Callback):
    """Collects one row per epoch, reports it, and keeps the best weights on val_loss."""

    def __init__(self, epochs: int, progress: Callable[[dict], None] | None):
        self.epochs = epochs
        self.progress = progress
        self.rows: list[dict] = []
        self.best_loss = float("inf")
        self.best_state: dict | None = None
        self.best_epoch = -1

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        val = float(metrics.get("val_loss", float("nan")))
        if val < self.best_loss:
            self.best_loss = val
            self.best_epoch = trainer.current_epoch
            self.best_state = copy.deepcopy({k: v.detach().clone() for k, v in pl_module.net.state_dict().items()})

    def on_train_epoch_end(self, trainer, pl_module):
        metrics = trainer.callback_metrics
        row = {
            "epoch": trainer.current_epoch + 1,
            "epochs": self.epochs,
            "train_loss": float(metrics.get("train_loss", float("nan"))),
            "val_loss": float(metrics.get("val_loss", float("nan"))),
            "lr": float(trainer.optimizers[0].param_groups[0]["lr"]),
        }
        self.rows.append(row)
        log.info("epoch %(epoch)d/%(epochs)d train %(train_loss).4g val %(val_loss).4g", row)
        if self.progress is not None:
            self.progress(row)


def fit_network(
    net: nn.Module,
    train_loader,
    val_loader,
    *,
    epochs: int,
    lr: float,
    weight_decay: float,
    device: torch.device,
    progress: Callable[[dict], None] | None = None,
) -> pd.DataFrame:
    """Train ``net`` with Lightning, restore its best validation weights, return the history."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    module = LitMapper(net, lr=lr, weight_decay=weight_decay, epochs=epochs,
                       steps_per_epoch=len(train_loader))
    history = _History(epochs, progress)
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    trainer = L.Trainer(
        max_epochs=epochs, accelerator=accelerator, devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, callbacks=[history], deterministic=False,
        default_root_dir=None,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*GPU available but not used.*")
        warnings.filterwarnings("ignore", ".*LeafSpec.*")
        trainer.fit(module, train_loader, val_loader)
    if history.best_state is not None:
        net.load_state_dict(history.best_state)
    df = pd.DataFrame(history.rows)
    if len(df):
        df["best"] = df["epoch"] == history.best_epoch + 1
    return df
