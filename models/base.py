"""The interface every mapping / forecasting method implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
import torch
import xarray as xr
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from pathlib import Path

    from data.tasks import Task
    from models.trainer import TrainSettings

#: Called with one dict per step of progress; the backend turns each into an event of the
#: run's ``events.jsonl`` and the latest state of its ``run.json``. Two shapes:
#:
#: - an epoch of training, from ``fit``: ``{"epoch": 3, "epochs": 20, "train_loss": ..,
#:   "val_loss": ..}`` (these rows also make ``history.csv``);
#: - a stage without epochs, from ``fit`` or ``predict`` (:meth:`Mapper.report`):
#:   ``{"stage": "solve", "done": 12, "total": 365, "unit": "days"}``.
ProgressFn = Callable[[dict], None]


class ModelParams(BaseModel):
    """Base of every model's parameters: typed, validated, forbids unknown keys."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    #: The registry name; subclasses narrow it to ``Literal["their-name"]``.
    name: str = ""

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """The parameters ``python -m app tune`` searches: ``{field: value}`` drawn from
        ``trial`` (an :class:`optuna.trial.Trial`, e.g. ``trial.suggest_float("noise", 0.01,
        0.2, log=True)``); the values replace those fields of the model section and are
        validated like any config. Fields not returned keep the config's values.

        The default declares no space: ConfigError (models are not tunable unless their
        Params override this).
        """
        from oceanlab_errors import ConfigError

        name = cls.model_fields["name"].default or cls.__name__
        raise ConfigError(f"model {name!r} declares no search space for tuning "
                          f"({cls.__name__}.search_space is not defined)")


class Mapper(ABC):
    """A method that predicts gridded fields for one or more tasks.

    Subclasses set ``Params`` (a :class:`ModelParams` subclass) and ``tasks`` (the names of
    the tasks they support), and implement :meth:`predict` (and :meth:`fit` when they
    learn). Learned networks subclass :class:`models.trainer.NetworkModel` instead, which
    implements both for every task.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[ModelParams]] = ModelParams
    tasks: ClassVar[tuple[str, ...]] = ("interpolation",)
    #: True when the model learns from the training split (it has weights to save).
    trainable: ClassVar[bool] = False

    def __init__(self, params: ModelParams, device: torch.device, seed: int = 0):
        self.params = params
        self.device = device
        self.seed = seed

    @classmethod
    def supports(cls, task: str) -> bool:
        return task in cls.tasks

    #: Where :meth:`report` sends stage progress (set by the backend before fit/predict).
    progress: ProgressFn | None = None

    def report(self, stage: str, done: int, total: int, unit: str = "steps") -> None:
        """Report ``done`` of ``total`` ``unit`` of ``stage`` (e.g. ``"solve", 12, 365,
        "days"``) to the backend: live progress for methods without epochs. Cheap; call it
        once per unit of work (the backend throttles what it writes)."""
        if self.progress is not None:
            self.progress({"stage": stage, "done": int(done), "total": int(total), "unit": unit})

    def configure(self, settings: TrainSettings) -> None:
        """Take the run's ``train`` settings before any estimate or fit (default: nothing)."""

    def fit(
        self, task: Task, settings: TrainSettings, progress: ProgressFn | None = None,
        log_dir: str | Path | None = None,
    ) -> pd.DataFrame | None:
        """Learn from ``task``'s training and validation splits with ``settings`` (the
        config's ``train`` section); ``log_dir`` (the run folder) receives logs and
        checkpoints. Returns the history (one row per epoch) or None for methods without
        training."""
        return None

    @abstractmethod
    def predict(self, task: Task, times: pd.DatetimeIndex) -> xr.DataArray:
        """The task's prediction for its sample times ``times`` (see
        :meth:`data.tasks.Task.wrap`: ``(time, lat, lon)`` for interpolation and downscaling,
        ``(time, lead_time, lat, lon)`` for a forecast), in the truth's units, NaN on land."""

    def state_dict(self) -> dict[str, torch.Tensor] | None:
        """Weights to save with the run (None for methods without weights)."""
        return None

    def execution_info(self) -> dict[str, Any]:
        """How the last fit / predict ran, recorded in the run's ``run.json`` (the network
        trainer adds compilation, strategy and devices). Default: plain 32-bit arithmetic."""
        return {"precision": "32-true"}

    def memory_estimate(self, task: Task) -> dict[str, int]:
        """Bytes that :meth:`fit` and :meth:`predict` need on ``task`` beyond its fields,
        by part (``{"covariances": …}``); the backend refuses a run over its memory limit
        before fitting. The default, for light methods, is nothing."""
        return {}
