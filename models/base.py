"""The interface every mapping / forecasting method implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import pandas as pd
import torch
import xarray as xr
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from data.tasks import InterpolationTask

#: Called by ``fit`` with a dict such as ``{"epoch": 3, "epochs": 20, "train_loss": ..,
#: "val_loss": ..}``; the backend turns it into live progress in the run store.
ProgressFn = Callable[[dict], None]


class ModelParams(BaseModel):
    """Base of every model's parameters: typed, validated, forbids unknown keys."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    #: The registry name; subclasses narrow it to ``Literal["their-name"]``.
    name: str = ""


class Mapper(ABC):
    """A method that reconstructs gridded fields.

    Subclasses set ``Params`` (a :class:`ModelParams` subclass) and ``tasks`` (the task
    kinds they support), and implement :meth:`fit` and :meth:`predict`.
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

    def fit(
        self, task: InterpolationTask, epochs: int, progress: ProgressFn | None = None
    ) -> pd.DataFrame | None:
        """Learn from ``task``'s training and validation splits.

        Returns the training history (one row per epoch) or None for methods without training.
        """
        return None

    @abstractmethod
    def predict(self, task: InterpolationTask, times: pd.DatetimeIndex) -> xr.DataArray:
        """Reconstruction ``(time, lat, lon)`` on the task's grid for ``times``, in the
        truth's units, NaN on land."""

    def state_dict(self) -> dict[str, torch.Tensor] | None:
        """Weights to save with the run (None for methods without weights)."""
        return None

    def memory_estimate(self, task: InterpolationTask) -> dict[str, int]:
        """Bytes that :meth:`fit` and :meth:`predict` need on ``task`` beyond its fields,
        by part (``{"covariances": …}``); the backend refuses a run over its memory limit
        before fitting. The default, for light methods, is nothing."""
        return {}
