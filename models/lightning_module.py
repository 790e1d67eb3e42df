"""The Lightning module that trains any of OceanLab's networks, and the loop around it.

A batch is ``(x, y, w)``: inputs ``(B, C_in, H, W)``, targets ``(B, C_out, H, W)`` and a
weight map of the targets' shape (1 on ocean points to score, 0 on land, padding and steps
past the record). The loss is a weighted sum of terms from :mod:`models.losses`, each logged
on its own. Optimiser and learning-rate schedule come from the ``train`` section of the
config (:class:`models.trainer.TrainSettings`). Lightning's own parts do the bookkeeping:
``CSVLogger`` and ``TensorBoardLogger`` write into the run folder, ``ModelCheckpoint`` keeps
the best weights on the validation loss (restored after training), ``EarlyStopping`` is an
option.

Precision: ``"32-true"`` or ``"bf16-mixed"`` (autocast; see
:func:`models.trainer.resolve_precision`). The network's output is brought back to the
inputs' float32 before the base channel is added and the loss is always computed in float32,
outside autocast. Several devices: :func:`fit_lightning` runs in one process per device,
started by :meth:`models.trainer.NetworkModel.fit` (see there why not by Lightning), each
told its rank by a :class:`SpawnedEnvironment`.
"""

from __future__ import annotations

import contextlib
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
from lightning.fabric.plugins.environments import LightningEnvironment
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy
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
        #: Average the logged losses over the processes of a distributed training (set by
        #: :func:`fit_lightning`); the reduction happens once per epoch.
        self.sync_dist = False
        #: Per stage, the epoch's sums of ``loss · batch`` per term, and its samples.
        self._sums: dict[str, dict[str, torch.Tensor]] = {}
        self._samples: dict[str, int] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if out.dtype != x.dtype:  # bf16 under autocast: back to float32 before the base
            out = out.to(x.dtype)
        if self.base_channel is not None:
            out = out + x[:, self.base_channel:self.base_channel + 1]
        return out

    def _step(self, batch, stage: str):
        x, y, w = batch
        pred = self(x)
        mixed = torch.is_autocast_enabled(x.device.type)
        with torch.autocast(x.device.type, enabled=False) if mixed else contextlib.nullcontext():
            total, parts = self.loss(pred, y, w)
        self._accumulate(stage, total, parts, x.shape[0])
        return total

    def _accumulate(self, stage: str, total: torch.Tensor, parts: dict, batch: int) -> None:
        """Add the batch's losses to the epoch's sums (on the device: no synchronisation).

        The epoch means are logged once per epoch (:meth:`_log_epoch`), not with a
        ``self.log`` per step: Lightning's per-call bookkeeping cost more than a small
        network's GPU step. The arithmetic is Lightning's own epoch mean (sum of
        ``loss · batch`` over the steps, divided by the samples), so the logged values are
        the same to the bit."""
        sums = self._sums.setdefault(stage, {})
        terms = {"loss": total, **(parts if len(parts) > 1 else {})}
        for name, value in terms.items():
            value = value.detach() * batch
            sums[name] = value if name not in sums else sums[name] + value
        self._samples[stage] = self._samples.get(stage, 0) + batch

    def _log_epoch(self, stage: str) -> None:
        sums, n = self._sums.pop(stage, {}), self._samples.pop(stage, 0)
        for name, value in sums.items():
            self.log(f"{stage}_{name}", value / n, on_step=False, on_epoch=True, batch_size=1,
                     sync_dist=self.sync_dist)

    def training_step(self, batch, batch_idx):
        total = self._step(batch, "train")
        if batch_idx + 1 == self.trainer.num_training_batches:
            self._log_epoch("train")  # here, so that callbacks see it at the epoch's end
        return total

    def on_train_epoch_end(self):
        self._log_epoch("train")  # (nothing left unless the epoch ended early)

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def on_validation_epoch_end(self):
        self._log_epoch("val")

    def configure_optimizers(self):
        opt, sched = build_optimizer(self.parameters(), self.settings, self.steps_per_epoch,
                                     self.device)
        if sched is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def build_optimizer(params, settings: TrainSettings, steps_per_epoch: int,
                    device: torch.device):
    """The optimiser and the per-step learning-rate schedule (None for ``constant``) of
    ``settings``. On a CUDA device Adam and AdamW use their fused kernels (one launch per
    step instead of several per parameter tensor: a small network's GPU step is otherwise
    bound by kernel launches); elsewhere the default implementation (results unchanged)."""
    s = settings
    fused = {"fused": True} if device.type == "cuda" else {}
    if s.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay, **fused)
    elif s.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay, **fused)
    else:
        opt = torch.optim.SGD(params, lr=s.lr, weight_decay=s.weight_decay, momentum=0.9)
    total = max(2, s.epochs * steps_per_epoch)
    if s.scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s.lr, total_steps=total,
                                                    pct_start=0.15)
    elif s.scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    else:
        sched = None
    return opt, sched


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
            if key not in row and key.startswith(("train_", "val_")):
                row[key] = float(value)
        self.rows.append(row)
        if trainer.is_global_zero:  # in a distributed training, the first process reports
            log.info("epoch %(epoch)d/%(epochs)d train %(train_loss).4g val %(val_loss).4g", row)
            if self.progress is not None:
                self.progress(row)


class SpawnedEnvironment(LightningEnvironment):
    """Lightning's single-node environment for processes that OceanLab started itself, one
    per device: Lightning starts none (``creates_processes_externally``) and learns this
    process's rank and the rendezvous port from here, not from environment variables (so a
    worker's environment, e.g. a SLURM allocation, cannot change them)."""

    def __init__(self, local_rank: int, port: int):
        super().__init__()
        self._local_rank = int(local_rank)
        self._main_port = int(port)

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        return "127.0.0.1"

    def local_rank(self) -> int:
        return self._local_rank

    def node_rank(self) -> int:
        return 0


def fit_lightning(
    module: LitNetwork,
    train_loader,
    val_loader,
    *,
    device: torch.device,
    log_dir: str | Path | None = None,
    progress: Callable[[dict], None] | None = None,
    precision: str = "32-true",
    devices: int = 1,
    environment: SpawnedEnvironment | None = None,
) -> pd.DataFrame:
    """Train ``module``, restore its best validation weights, return the history.

    ``precision`` is Lightning's (``"32-true"`` or ``"bf16-mixed"``). With ``devices`` > 1
    this is one process of a DDP training (``environment`` gives its rank): every process
    runs this with the same ``log_dir`` (which it must then be given), the first one writes
    the logs and checkpoint and reports progress, the losses are averaged over the
    processes, and only the first one restores the best weights and returns a meaningful
    history.

    ``log_dir`` (the run folder) receives ``lightning/metrics.csv`` (CSVLogger),
    ``tensorboard/`` event files and ``checkpoints/best.ckpt``; without it they go to a
    temporary folder that is removed afterwards. The history has one row per epoch:
    ``epoch, epochs, train_loss, val_loss, lr`` (plus each loss term when there are several)
    and ``best`` (True on the epoch whose weights were kept).
    """
    for name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    s = module.settings
    distributed = devices > 1
    if distributed and (log_dir is None or environment is None):
        raise ValueError("a distributed fit needs the shared log_dir and its environment")
    module.sync_dist = distributed
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
        if distributed:
            # Our batch objects are already different on every rank (RandomPatchBatches'
            # rank): no distributed sampler around them.
            placement = {"devices": devices,
                         "strategy": DDPStrategy(cluster_environment=environment),
                         "use_distributed_sampler": False}
        else:
            one = [device.index] if device.type == "cuda" and device.index is not None else 1
            placement = {"devices": one}
        trainer = L.Trainer(
            max_epochs=s.epochs, accelerator="gpu" if device.type == "cuda" else "cpu",
            precision=precision, logger=loggers, callbacks=callbacks, enable_progress_bar=False,
            enable_model_summary=False, num_sanity_val_steps=0, deterministic=False,
            log_every_n_steps=max(1, module.steps_per_epoch), default_root_dir=root, **placement,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            warnings.filterwarnings("ignore", ".*GPU available but not used.*")
            warnings.filterwarnings("ignore", ".*LeafSpec.*")
            warnings.filterwarnings("ignore", ".*Checkpoint directory.*exists and is not empty.*")
            trainer.fit(module, train_loader, val_loader)
        best_epoch = None
        if checkpoint.best_model_path and trainer.is_global_zero:
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
