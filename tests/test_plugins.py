"""A task and a model are one file and one registry line: both registered from this file
alone run through the command line like the built-in ones."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from torch import nn

from app.cli import main
from data.tasks import NetworkIO, Task, TaskParams, register_task
from data.tasks import registry as task_registry
from data.tasks.base import base_prediction_dataset, split_periods, truth_field
from models import registry as model_registry
from models.base import Mapper, ModelParams
from models.registry import register
from models.trainer import NetworkModel


@pytest.fixture
def toy_plugins():
    """Register a toy task ("smoothing": recover the field from its noisy copy), a toy
    baseline and a toy network; unregister them afterwards."""

    class SmoothingParams(TaskParams):
        name: Literal["smoothing"] = "smoothing"
        noise: float = 0.05

    @register_task("smoothing")
    @dataclass
    class SmoothingTask(Task):
        Params: ClassVar[type[TaskParams]] = SmoothingParams
        truth: xr.DataArray = None
        noisy: xr.DataArray = None
        mask: xr.DataArray = None
        periods: dict = field(default_factory=dict)
        params: TaskParams = None

        @classmethod
        def build(cls, ds, data, params, *, label="", context=None):
            truth, mask = truth_field(ds, data.var, params, label, "smoothing")
            rng = np.random.default_rng(0)
            noisy = truth + rng.normal(0, params.noise, truth.shape).astype(np.float32)
            return cls(truth=truth, noisy=noisy, mask=mask, periods=split_periods(ds, params, label),
                       params=params)

        def network_io(self, window=None):
            return NetworkIO(sources=[self.noisy], masks=[False], in_offsets=(0,), base_channel=0)

        def prediction_dataset(self, rec, times):
            return base_prediction_dataset(self, rec, times, noisy=self.noisy.sel(time=times))

        def score(self, pred):
            err = (pred[self.truth.name] - pred["truth"]).values
            return {"rmse": float(np.sqrt(np.nanmean(err**2))), "notes": {}}, xr.Dataset()

    class EchoParams(ModelParams):
        name: Literal["echo"] = "echo"

    @register("echo")
    class Echo(Mapper):
        """Returns the noisy input unchanged (the trivial baseline)."""

        Params = EchoParams
        tasks = ("smoothing",)

        def predict(self, task, times):
            values = task.noisy.sel(time=times).values[:, None]
            return task.wrap(values, pd.DatetimeIndex(times))

    class PixelParams(ModelParams):
        name: Literal["pixelnet"] = "pixelnet"

    @register("pixelnet")
    class PixelNet(NetworkModel):
        """A 3x3 convolution: the smallest network the shared trainer can fit."""

        Params = PixelParams
        tasks = ("smoothing", "interpolation")

        def build_network(self, io: NetworkIO) -> nn.Module:
            return nn.Conv2d(io.in_channels, io.out_channels, 3, padding=1)

    yield
    task_registry._TASKS.pop("smoothing", None)
    for name in ("echo", "pixelnet"):
        model_registry._REGISTRY.pop(name, None)


def test_a_toy_task_and_models_run_through_the_cli(toy_plugins, mock_nc, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["config", "--task", "smoothing", "--model", "echo"]) == 0
    assert "noise: 0.05" in capsys.readouterr().out

    code = main(["train", "--task", "smoothing", "--model", "echo", "--data", str(mock_nc),
                 "--var", "ssh", "--runs-dir", str(runs), "--json"])
    echo = json.loads(capsys.readouterr().out)
    assert code == 0 and echo["status"] == "done"
    assert echo["metrics"]["rmse"] == pytest.approx(0.05, rel=0.1)  # the noise itself

    code = main(["train", "--task", "smoothing", "--model", "pixelnet", "--data", str(mock_nc),
                 "--var", "ssh", "--runs-dir", str(runs), "--json", "--set", "train.epochs=8",
                 "--set", "train.patch_size=16", "--set", "train.steps_per_epoch=8",
                 "--set", "train.lr=0.02"])
    net = json.loads(capsys.readouterr().out)
    assert code == 0 and net["status"] == "done"
    assert net["metrics"]["rmse"] < 0.8 * echo["metrics"]["rmse"]  # it learned to smooth
    run_dir = runs / net["run_id"]
    assert {"model.safetensors", "history.csv", "prediction.nc", "run.json"} <= {
        p.name for p in run_dir.iterdir()}
    assert (run_dir / "lightning" / "metrics.csv").exists()

    code = main(["train", "--task", "smoothing", "--model", "oi", "--data", str(mock_nc)])
    err = capsys.readouterr().err
    assert code == 2 and "models for smoothing: echo, pixelnet" in err

    assert main(["runs", "--runs-dir", str(runs), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["task"] for r in rows) == ["smoothing", "smoothing"]
