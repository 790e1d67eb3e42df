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
- weights in and out (``model.safetensors``);
- execution (:class:`TrainSettings` ``precision``, ``compile``, ``strategy``, ``devices``):
  bf16 mixed precision where the GPU supports it (:func:`resolve_precision`), an optional
  ``torch.compile`` of the network, and one run trained on several GPUs with DDP, one
  process per GPU (see :meth:`NetworkModel._fit_distributed` for how they are started).
  :meth:`NetworkModel.execution_info` says what the last fit or predict used.
"""

from __future__ import annotations

import copy
import pickle
import shutil
import socket
import tempfile
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import nn
from torch.utils.data import DataLoader

from data.tasks import NetworkIO, Task
from data.torch_data import FullFieldBatches, Normalisation, RandomPatchBatches, TaskTensors
from models.base import Mapper, ProgressFn
from models.lightning_module import LitNetwork, SpawnedEnvironment, fit_lightning
from models.losses import LOSS_TERMS, CombinedLoss, Grid
from oceanlab_errors import ConfigError

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

    name: str = Field("mse", description="mse, gradient or vorticity (fields); cross_entropy "
                                         "or dice (segmentation classes)")
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
    precision: Literal["auto", "32", "bf16"] = Field(
        "auto", description="arithmetic of training and prediction: 'auto' = bf16 mixed "
                            "precision on a CUDA GPU that supports it, else 32-bit; 'bf16' = "
                            "bf16 mixed precision (autocast; also on the CPU); '32' = full "
                            "32-bit. Losses and outputs are always float32")
    compile: bool = Field(
        False, description="compile the network with torch.compile for training and "
                           "prediction (faster steps after a compilation of tens of seconds; "
                           "needs a C++ compiler, and Triton on a GPU)")
    strategy: Literal["auto", "ddp"] = Field(
        "auto", description="'ddp': train one run on several GPUs (train.devices) with "
                            "distributed data parallel, one process per GPU, each drawing its "
                            "own batches (an epoch sees devices × batch_size patches per step)")
    devices: int = Field(
        1, ge=1, le=64, description="GPUs that train one run (more than 1 needs strategy "
                                    "'ddp'); with device 'cpu', DDP runs this many CPU processes")

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

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_text(cls, value: Any) -> Any:
        """``--set train.precision=32`` reads 32 as a number; Lightning's names are accepted."""
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return {"32-true": "32", "bf16-mixed": "bf16"}.get(value, value)

    @model_validator(mode="after")
    def _devices_and_strategy(self) -> TrainSettings:
        if self.devices > 1 and self.strategy != "ddp":
            raise ValueError(f"devices={self.devices} trains one run on several GPUs: set "
                             f"strategy to 'ddp' as well (or devices to 1)")
        if self.strategy == "ddp" and self.devices < 2:
            raise ValueError("strategy 'ddp' trains on several GPUs: set devices to 2 or more "
                             "(or strategy to 'auto' for one device)")
        return self


def resolve_precision(settings: TrainSettings, device: torch.device) -> str:
    """Lightning's precision for ``settings.precision`` on ``device``: ``"bf16-mixed"`` or
    ``"32-true"``. ``"auto"`` is bf16 mixed precision on a CUDA GPU with native bf16
    (Ampere and later; not emulated), 32-bit everywhere else (the CPU: results as before)."""
    if settings.precision == "bf16":
        return "bf16-mixed"
    if settings.precision == "32":
        return "32-true"
    if (device.type == "cuda" and torch.cuda.is_available()
            and torch.cuda.is_bf16_supported(including_emulation=False)):
        return "bf16-mixed"
    return "32-true"


def check_compile(device: torch.device) -> None:
    """ConfigError (one line) when ``torch.compile`` cannot generate code for ``device``
    here: no C++ compiler for the CPU, no Triton for a GPU, or a Python that TorchDynamo
    does not support. Cheap: nothing is compiled."""
    why = None
    try:
        import torch._dynamo

        if not torch._dynamo.is_dynamo_supported():
            why = "TorchDynamo does not support this Python"
        elif device.type == "cuda":
            from torch.utils._triton import has_triton

            if not has_triton():
                why = "Triton, which compiles for the GPU, is not installed"
        else:
            from torch._inductor.cpp_builder import get_cpp_compiler

            get_cpp_compiler()
    except Exception as exc:  # noqa: BLE001 (any failure means: cannot compile here)
        why = why or (f"no usable C++ compiler ({_first_line(exc)})" if device.type != "cuda"
                      else _first_line(exc))
    if why:
        raise ConfigError(f"train.compile: torch.compile cannot work on this machine ({why}); "
                          f"set train.compile to false")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def _compile_failed(exc: BaseException) -> ConfigError:
    return ConfigError(f"train.compile: torch.compile failed on this network "
                       f"({_first_line(exc)}); set train.compile to false")


def _compile_errors() -> tuple[type[BaseException], ...]:
    try:
        from torch._dynamo.exc import BackendCompilerFailed

        return (BackendCompilerFailed,)
    except ImportError:  # pragma: no cover
        return ()


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
        #: The ``train`` settings (from :meth:`configure`): prediction uses their precision
        #: and compile choices too.
        self._settings: TrainSettings | None = None
        #: ``(net, torch.compile(net))`` once compiled (kept for predict).
        self._compiled: tuple[nn.Module, nn.Module] | None = None
        #: What the last fit / predict used (:meth:`execution_info`).
        self._execution: dict | None = None

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
        """The task's inputs and outputs for this network. Without a first guess they depend
        on the task and the window only, so they are built once per task and window (kept on
        the task, read-only): the same arrays, hence the same device tensors
        (:meth:`TaskTensors.shared`) for fit and predict and for later runs on a cached task."""
        window = getattr(self.params, "window", None)
        if getattr(self.params, "first_guess", "none") == "oi" and task.kind == "interpolation":
            return self._with_first_guess(task, task.network_io(window))
        # keyed by the window and the identity of every field of the task (the entry keeps
        # them alive, so no identity is reused), so a task whose fields were replaced builds
        # them again
        fields = tuple((k, v) for k, v in vars(task).items()
                       if isinstance(v, xr.DataArray | xr.Dataset | np.ndarray))
        key = (window, tuple((k, id(v)) for k, v in fields))
        entry = task.__dict__.get("_network_io")
        if entry is None or entry[0] != key:
            entry = (key, fields, task.network_io(window))
            task.__dict__["_network_io"] = entry
        return entry[2]

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
        """Remember the training settings: those that size memory (called before
        estimates) and the execution choices that prediction follows too."""
        self._patch_size = settings.patch_size
        self._batch_size = settings.batch_size
        self._settings = settings

    def execution_info(self) -> dict:
        """How the last fit or predict ran: ``{"precision": "32-true" | "bf16-mixed",
        "compiled": bool, "strategy": "auto" | "ddp", "devices": int}`` (the training's
        strategy and devices; prediction runs on one device). Before either, what they
        would use with the configured settings."""
        if self._execution is not None:
            return dict(self._execution)
        s = self._settings or TrainSettings()
        return {"precision": resolve_precision(s, self.device), "compiled": bool(s.compile),
                "strategy": "auto", "devices": 1}

    def _runner(self, compiled: bool) -> nn.Module:
        """The network, or its ``torch.compile`` wrapper (built once, shared by fit and
        predict; it shares the network's parameters)."""
        if not compiled:
            return self.net
        if self._compiled is None or self._compiled[0] is not self.net:
            self._compiled = (self.net, torch.compile(self.net))
        return self._compiled[1]

    def _world_size(self, s: TrainSettings) -> int:
        """Processes of the training: 1, or ``s.devices`` for DDP, checked against this
        machine (ConfigError, one line)."""
        if s.strategy != "ddp":
            return 1
        if self.device.type == "cuda":
            have = torch.cuda.device_count()
            if have < s.devices:
                raise ConfigError(f"train.devices={s.devices}: this machine has {have} CUDA "
                                  f"GPU{'s' if have != 1 else ''}; lower train.devices (or use "
                                  f"strategy 'auto' and devices 1)")
        elif s.device != "cpu":
            raise ConfigError(f"train.devices={s.devices} with strategy 'ddp' needs "
                              f"{s.devices} CUDA GPUs, and no CUDA GPU is visible here; use "
                              f"strategy 'auto' and devices 1 (or device 'cpu' to run "
                              f"{s.devices} CPU processes)")
        return s.devices

    # -- fit and predict ------------------------------------------------------------------
    def fit(self, task: Task, settings: TrainSettings, progress: ProgressFn | None = None,
            log_dir: str | Path | None = None) -> pd.DataFrame:
        """Train on the task's training samples, validate on its validation samples; the
        weights with the best validation loss are kept. Returns the history.

        ``settings.precision``/``compile`` choose the arithmetic and compilation; with
        strategy ``"ddp"`` the training runs in ``settings.devices`` processes
        (:meth:`_fit_distributed`) and this process gets the result."""
        s = settings
        self.configure(s)
        world = self._world_size(s)
        precision = resolve_precision(s, self.device)
        if s.compile:
            check_compile(self.device)
        io = self.task_io(task)
        self._ensure_network(io)
        self.norm = Normalisation.from_task(task)
        if world > 1:
            history = self._fit_distributed(task, s, world, progress, log_dir)
        else:
            history = self._fit_process(task, io, s, progress, log_dir)
        self._execution = {"precision": precision, "compiled": bool(s.compile),
                           "strategy": s.strategy, "devices": world}
        return history

    def _fit_process(self, task: Task, io: NetworkIO, s: TrainSettings,
                     progress: ProgressFn | None, log_dir: str | Path | None, rank: int = 0,
                     world: int = 1, environment: SpawnedEnvironment | None = None
                     ) -> pd.DataFrame:
        """This process's part of :meth:`fit`: the task's tensors on ``self.device``, the
        batches of ``rank``, the Lightning training."""
        net = self.net
        tensors = TaskTensors.shared(task, io, self.norm, self.device)
        flips = s.flips if s.flips is not None else "flips" in task.augmentations
        transposes = (s.transposes if s.transposes is not None
                      else "transposes" in task.augmentations)
        train = RandomPatchBatches(tensors, task.sample_index("train"), s.patch_size, s.batch_size,
                                   s.steps_per_epoch, seed=self.seed, flips=flips,
                                   transposes=transposes, rank=rank,
                                   resample=(s.resample_obs if s.resample_obs is not None
                                             else task.resample_obs))
        n_lat, n_lon = tensors.shape
        val = FullFieldBatches(tensors, task.sample_index("val"),
                               batch_size=min(max(1, s.batch_size // 2),
                                              self.full_batch_size(io, n_lat, n_lon)))
        grid = Grid.from_coords(task.truth["lat"].values, task.truth["lon"].values)
        loss = CombinedLoss([(t.name, t.weight) for t in s.loss], grid)
        module = LitNetwork(self._runner(s.compile), loss, s, steps_per_epoch=len(train),
                            base_channel=io.base_channel)
        net.train()  # a predict() before fit() leaves the network in eval mode
        try:
            history = fit_lightning(module, DataLoader(train, batch_size=None),
                                    DataLoader(val, batch_size=None), device=self.device,
                                    log_dir=log_dir, progress=progress,
                                    precision=resolve_precision(s, self.device), devices=world,
                                    environment=environment)
        except _compile_errors() as exc:
            raise _compile_failed(exc) from None
        # Lightning's objects reference each other (module ↔ trainer ↔ loops ↔ loaders), so
        # only a garbage collection would free them: free the task's tensors now instead,
        # before predict builds its own (on a large grid they are the largest allocation).
        # (A full gc.collect() here scanned the whole heap: about 0.3 s a fit.)
        tensors.release()
        del module, train, val, tensors
        return history

    def _fit_distributed(self, task: Task, s: TrainSettings, world: int,
                         progress: ProgressFn | None, log_dir: str | Path | None) -> pd.DataFrame:
        """Train in ``world`` new processes (DDP, one per GPU), wait, take the result.

        Why not Lightning's launchers: strategy ``"ddp"`` starts the other ranks by running
        ``sys.argv`` again, which from a backend worker (or the dashboard) would start
        another worker, not a rank; ``"ddp_spawn"`` pickles the whole Trainer with its
        DataLoaders, whose datasets hold the task's tensors already on the first GPU (every
        rank would cut its batches there), and its callbacks, whose progress function holds
        the run record that only this process may write. Here instead the processes are started
        with ``torch.multiprocessing`` (spawn) from a copy of the model without its
        progress function; each builds the task's tensors on its own GPU, and runs
        :meth:`_fit_process` with Lightning's DDP strategy told that the processes exist
        (:class:`~models.lightning_module.SpawnedEnvironment`). The first rank's progress
        rows come back through a queue and are reported from here, so this process stays
        the run's only writer; its best weights and history come back in a file. Model
        classes must be importable by name (registered models and plugins are).
        """
        import importlib
        import multiprocessing

        import torch.multiprocessing as mp

        if multiprocessing.current_process().daemon:
            raise ConfigError("train.strategy 'ddp' starts one process per GPU, which this "
                              "worker cannot do (it is a daemonic process, e.g. a Dask worker "
                              "with distributed.worker.daemon: true); run it with another "
                              "executor or use strategy 'auto' and devices 1")

        # (``torch.multiprocessing.spawn`` the attribute is a function, hence importlib)
        failed = importlib.import_module("torch.multiprocessing.spawn").ProcessException
        ctx = mp.get_context("spawn")
        messages = ctx.SimpleQueue()
        scratch = Path(tempfile.mkdtemp(prefix="oceanlab-ddp-"))
        root = Path(log_dir) if log_dir is not None else scratch / "logs"
        result = scratch / "result.pkl"
        spec = copy.copy(self)
        spec.__dict__ = {k: v for k, v in self.__dict__.items()
                         if k not in ("net", "io", "progress", "_compiled")}
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        task = copy.copy(task)  # without the device tensors kept on it (TaskTensors.shared)
        task.__dict__.pop("_shared_tensors", None)
        task.__dict__.pop("_network_io", None)
        procs = mp.start_processes(
            _fit_rank, args=(world, _free_port(), spec, state, task, s, str(root), str(result),
                             messages),
            nprocs=world, join=False, start_method="spawn")
        error = None
        try:
            finished = False
            while not finished:
                try:
                    finished = procs.join(timeout=0.2)
                except failed as exc:
                    finished, error = True, exc
                error = _relay(messages, progress) or error
            if error is not None:
                if isinstance(error, failed):
                    raise RuntimeError(f"distributed training failed: {_first_line(error)}")
                raise error
            with result.open("rb") as f:
                out = pickle.load(f)
        finally:  # also on a cancel (an exception raised here by the run's signal handler)
            alive = [proc for proc in procs.processes if proc.is_alive()]
            for proc in alive:
                proc.terminate()
            for proc in alive:
                proc.join(5)
                if proc.is_alive():
                    proc.kill()
                    proc.join(5)
            shutil.rmtree(scratch, ignore_errors=True)
        self.net.load_state_dict(out["state"])
        return out["history"]

    def _apply(self, x: torch.Tensor, io: NetworkIO, net: nn.Module | None = None) -> torch.Tensor:
        out = (net if net is not None else self.net)(x)
        if out.dtype != x.dtype:  # bf16 under autocast: float32 before adding the base
            out = out.to(x.dtype)
        if io.base_channel is not None:
            out = out + x[:, io.base_channel:io.base_channel + 1]
        return out

    @torch.no_grad()
    def predict(self, task: Task, times: pd.DatetimeIndex) -> xr.DataArray:
        """The task's prediction for the sample times ``times`` (see :meth:`Task.wrap`),
        with the precision and compilation of the configured ``train`` settings."""
        io = self.task_io(task)
        net = self._ensure_network(io)
        if self.norm is None:
            self.norm = Normalisation.from_task(task)
        s = self._settings or TrainSettings()
        precision = resolve_precision(s, self.device)
        if s.compile:
            check_compile(self.device)
        runner = self._runner(s.compile)
        tensors = TaskTensors.shared(task, io, self.norm, self.device)
        all_times = pd.DatetimeIndex(task.truth["time"].values)
        positions = all_times.get_indexer(pd.DatetimeIndex(times))
        net.eval()
        out = _Download(self.device)
        batch = self.full_batch_size(io, *tensors.shape)
        bf16 = precision == "bf16-mixed"
        try:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                for x, _, _ in FullFieldBatches(tensors, positions, batch_size=batch):
                    if io.rollout <= 1:
                        y = self._apply(x, io, runner)
                    else:
                        y = self._rollout(x, io, runner)
                    out.add(y)
        except _compile_errors() as exc:
            raise _compile_failed(exc) from None
        values = out.result() * self.norm.std + self.norm.mean
        self._execution = {**self.execution_info(), "precision": precision,
                           "compiled": bool(s.compile)}
        return task.wrap(values, pd.DatetimeIndex(times))

    def _rollout(self, x: torch.Tensor, io: NetworkIO, net: nn.Module | None = None
                 ) -> torch.Tensor:
        """Autoregressive forecast: each one-step output becomes the newest input step.

        Channels come in blocks of ``len(io.in_offsets)`` steps (see
        :mod:`data.torch_data`); the first source is the predicted field, an availability
        block becomes ones, any other source has no future values and becomes zeros.
        """
        n = len(io.in_offsets)
        steps = []
        for _ in range(io.rollout):
            y = self._apply(x, io, net)  # (B, 1, H, W)
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


class _Download:
    """Prediction batches from the device into one float32 host array. On CUDA each batch is
    copied asynchronously into pinned memory while the next one is computed; at most a few
    pinned batches are alive (PyTorch's pinned-memory cache reuses them), so pinned memory
    stays bounded whatever the number of days."""

    IN_FLIGHT = 2

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.parts: list[np.ndarray] = []
        self.pending: list[tuple[torch.Tensor, torch.cuda.Event]] = []

    def add(self, y: torch.Tensor) -> None:
        if not self.cuda:
            self.parts.append(y.float().cpu().numpy())
            return
        host = torch.empty(y.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(y.float(), non_blocking=True)
        done = torch.cuda.Event()
        done.record(torch.cuda.current_stream(y.device))
        self.pending.append((host, done))
        while len(self.pending) > self.IN_FLIGHT:
            self._take()

    def _take(self) -> None:
        host, done = self.pending.pop(0)
        done.synchronize()
        self.parts.append(host.numpy().copy())

    def result(self) -> np.ndarray:
        while self.pending:
            self._take()
        return np.concatenate(self.parts)


def _free_port() -> int:
    """A free TCP port on this machine for the processes' rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _QueueProgress:
    """The first rank's progress function: rows go to the parent through the queue."""

    def __init__(self, queue):
        self.queue = queue

    def __call__(self, row: dict) -> None:
        self.queue.put(("progress", dict(row)))


def _relay(messages, progress: ProgressFn | None) -> BaseException | None:
    """Report the queued progress rows; return the first error a rank sent, if any."""
    error = None
    while not messages.empty():
        kind, payload = messages.get()
        if kind == "progress" and progress is not None:
            progress(payload)
        elif kind == "error" and error is None:
            error = payload
    return error


def _exit_with_parent() -> None:
    """End this process if the one that started it ends (a killed worker must not leave
    its training processes behind; a cancelled one terminates them itself)."""
    import os
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _fit_rank(rank: int, world: int, port: int, model: NetworkModel,
              state: dict[str, torch.Tensor], task: Task, settings: TrainSettings, root: str,
              result: str, messages) -> None:
    """One process of a distributed fit (see :meth:`NetworkModel._fit_distributed`)."""
    _exit_with_parent()
    try:
        if model.device.type == "cuda":
            model.device = torch.device("cuda", rank)
            torch.cuda.set_device(model.device)
        else:  # CPU processes share the cores
            torch.set_num_threads(max(1, torch.get_num_threads() // world))
        io = model.task_io(task)
        model.net = None
        model._ensure_network(io).load_state_dict(state)
        history = model._fit_process(
            task, io, settings, _QueueProgress(messages) if rank == 0 else None, root,
            rank=rank, world=world, environment=SpawnedEnvironment(rank, port))
        if rank == 0:
            weights = {k: v.detach().cpu() for k, v in model.net.state_dict().items()}
            with open(result, "wb") as f:
                pickle.dump({"state": weights, "history": history}, f)
    except BaseException as exc:
        try:
            pickle.dumps(exc)
            sent: BaseException = exc
        except Exception:  # noqa: BLE001 (an exception that cannot travel: its text does)
            sent = RuntimeError(f"rank {rank}: {type(exc).__name__}: {_first_line(exc)}")
        messages.put(("error", sent))
        raise
