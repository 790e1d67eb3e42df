"""The Lightning module that trains any of OceanLab's networks, and the loop around it.

A batch is ``(x, y, w)``: inputs ``(B, C_in, H, W)``, targets ``(B, C_out, H, W)`` and a
weight map of the targets' shape (1 on ocean points to score, 0 on land, padding and steps
past the record). The loss is a weighted sum of terms from :mod:`models.losses`, each logged
on its own. Optimiser and learning-rate schedule come from the ``train`` section of the
config (:class:`models.trainer.TrainSettings`). Lightning's own parts do the bookkeeping:
``CSVLogger`` and ``TensorBoardLogger`` write into the run folder, ``ModelCheckpoint`` keeps
the best weights on the validation loss (restored after training), ``EarlyStopping`` is an
option.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch import nn

from models.losses import CombinedLoss, masked_mse  # noqa: F401  (masked_mse re-exported)

if TYPE_CHECKING:
    from models.trainer import TrainSettings

log = logging.getLogger(__name__)


class LitNetwork(L.LightningModule):
    """Wrap any ``nn.Module`` mapping ``(B, C_in, H, W) → (B, C_out, H, W)``.

    With ``base_channel`` set the module predicts an increment: the output is
    ``net(x) + x[:, base_channel]`` (persistence for a forecast, the interpolated coarse
    field for downscaling).
    """

    def __init__(self, net: nn.Module, loss: CombinedLoss, settings: TrainSettings,
                 steps_per_epoch: int, base_channel: int | None = None):
        super().__init__()
        self.net = net
        self.loss = loss
        self.settings = settings
        self.steps_per_epoch = steps_per_epoch
        self.base_channel = base_channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if self.base_channel is not None:
            out = out + x[:, self.base_channel:self.base_channel + 1]
        return out

    def _step(self, batch, stage: str):
        x, y, w = batch
        total, parts = self.loss(self(x), y, w)
        kw = dict(on_step=False, on_epoch=True, batch_size=x.shape[0])
        self.log(f"{stage}_loss", total, **kw)
        if len(parts) > 1:
            for name, value in parts.items():
                self.log(f"{stage}_{name}", value, **kw)
        return total

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def configure_optimizers(self):
        s = self.settings
        params = self.parameters()
        if s.optimizer == "adamw":
            opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
        elif s.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=s.lr, weight_decay=s.weight_decay, momentum=0.9)
        total = max(2, s.epochs * self.steps_per_epoch)
        if s.scheduler == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s.lr, total_steps=total,
                                                        pct_start=0.15)
        elif s.scheduler == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        else:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class _History(L.Callback):
    """One row per epoch (``history.csv``'s columns), reported live to the run store."""

    def __init__(self, epochs: int, progress: Callable[[dict], None] | None):
        self.epochs = epochs
        self.progress = progress
        self.rows: list[dict] = []

    def on_train_epoch_end(self, trainer, pl_module):
        metrics = trainer.callback_metrics
        row = {
            "epoch": trainer.current_epoch + 1,
            "epochs": self.epochs,
            "train_loss": float(metrics.get("train_loss", float("nan"))),
            "val_loss": float(metrics.get("val_loss", float("nan"))),
            "lr": float(trainer.optimizers[0].param_groups[0]["lr"]),
        }
        for key, value in metrics.items():
            if key not in row and (key.startswith("train_") or key.startswith("val_")):
                row[key] = float(value)
        self.rows.append(row)
        log.info("epoch %(epoch)d/%(epochs)d train %(train_loss).4g val %(val_loss).4g", row)
        if self.progress is not None:
            self.progress(row)


def fit_lightning(
    module: LitNetwork,
    train_loader,
    val_loader,
    *,
    device: torch.device,
    log_dir: str | Path | None = None,
    progress: Callable[[dict], None] | None = None,
) -> pd.DataFrame:
    """Train ``module``, restore its best validation weights, return the history.

    ``log_dir`` (the run folder) receives ``lightning/metrics.csv`` (CSVLogger),
    ``tensorboard/`` event files and ``checkpoints/best.ckpt``; without it they go to a
    temporary folder that is removed afterwards. The history has one row per epoch:
    ``epoch, epochs, train_loss, val_loss, lr`` (plus each loss term when there are several)
    and ``best`` (True on the epoch whose weights were kept).
    """
    for name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    s = module.settings
    temporary = log_dir is None
    root = Path(tempfile.mkdtemp(prefix="oceanlab-fit-")) if temporary else Path(log_dir)
    trainer = None
    try:
        history = _History(s.epochs, progress)
        checkpoint = ModelCheckpoint(dirpath=root / "checkpoints", filename="best",
                                     monitor="val_loss", mode="min", save_top_k=1,
                                     save_weights_only=True, enable_version_counter=False)
        callbacks: list[L.Callback] = [history, checkpoint]
        if s.early_stopping_patience:
            callbacks.append(EarlyStopping(monitor="val_loss", mode="min",
                                           patience=s.early_stopping_patience))
        loggers = [CSVLogger(root, name="lightning", version=""),
                   TensorBoardLogger(root, name="tensorboard", version="", default_hp_metric=False)]
        trainer = L.Trainer(
            max_epochs=s.epochs, accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
            logger=loggers, callbacks=callbacks, enable_progress_bar=False,
            enable_model_summary=False, num_sanity_val_steps=0, deterministic=False,
            log_every_n_steps=max(1, module.steps_per_epoch), default_root_dir=root,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            warnings.filterwarnings("ignore", ".*GPU available but not used.*")
            warnings.filterwarnings("ignore", ".*LeafSpec.*")
            warnings.filterwarnings("ignore", ".*Checkpoint directory.*exists and is not empty.*")
            trainer.fit(module, train_loader, val_loader)
        best_epoch = None
        if checkpoint.best_model_path:
            state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
            module.load_state_dict(state["state_dict"])
            best_epoch = state.get("epoch")
        df = pd.DataFrame(history.rows)
        if len(df):
            df["best"] = df["epoch"] == (best_epoch + 1 if best_epoch is not None else -1)
        return df
    finally:
        del trainer
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
