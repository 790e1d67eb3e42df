"""The GPU path of the trainer (issue 9), checked on the CPU: the ``train`` section's
precision / compile / strategy / devices fields, :func:`models.trainer.resolve_precision`,
bf16 mixed precision, ``execution_info``, torch.compile, DDP (with CPU processes), the
per-rank batches and the release of the task's tensors after a fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.config import build_config, parse_set
from data.tasks import build_interpolation_task
from data.torch_data import Normalisation, RandomPatchBatches, TaskTensors, upload
from models.losses import CombinedLoss, Grid
from models.oi import OIMapper, OIParams
from models.trainer import TrainSettings, check_compile, resolve_precision
from models.unet import UNetMapper, UNetParams
from oceanlab_errors import ConfigError

TINY = UNetParams(window=3, base_channels=4, depth=2)
TINY_TRAIN = {"patch_size": 12, "batch_size": 4, "steps_per_epoch": 3, "epochs": 2}
CPU = torch.device("cpu")


@pytest.fixture
def task(mock_ds):
    return build_interpolation_task(mock_ds, "ssh", "ssh_obs")


def _fit_predict(task, **settings):
    model = UNetMapper(TINY, CPU, seed=0)
    s = TrainSettings(**{**TINY_TRAIN, **settings})
    model.configure(s)
    rows = []
    history = model.fit(task, s, progress=rows.append)
    times = task.sample_times("test")[:6]
    return model, history, rows, model.predict(task, times)


# ------------------------------------------------------------------------------ config


def test_new_train_fields_defaults_and_good_values():
    s = TrainSettings()
    assert (s.precision, s.compile, s.strategy, s.devices) == ("auto", False, "auto", 1)
    assert TrainSettings(precision="32").precision == "32"
    assert TrainSettings(precision="bf16").precision == "bf16"
    # ``--set train.precision=32`` reads a number; Lightning's names are accepted too.
    assert TrainSettings(precision=32).precision == "32"
    assert TrainSettings(precision="bf16-mixed").precision == "bf16"
    assert TrainSettings(precision="32-true").precision == "32"
    assert TrainSettings(strategy="ddp", devices=4).devices == 4
    config = build_config("interpolation", "unet", overrides=parse_set(
        ["train.precision=32", "train.compile=true", "train.strategy=ddp", "train.devices=2"]))
    assert (config.train.precision, config.train.compile, config.train.strategy,
            config.train.devices) == ("32", True, "ddp", 2)
    for name in ("precision", "compile", "strategy", "devices"):
        assert TrainSettings.model_fields[name].description


@pytest.mark.parametrize(("overrides", "message"), [
    ({"train.precision": "16"}, "train.precision: Input should be 'auto', '32' or 'bf16'"),
    ({"train.precision": "fp8"}, "train.precision"),
    ({"train.compile": "maybe"}, "train.compile"),
    ({"train.strategy": "fsdp"}, "train.strategy"),
    ({"train.devices": 0}, "train.devices: Input should be greater than or equal to 1"),
    ({"train.devices": 2}, "devices=2 trains one run on several GPUs: set strategy to 'ddp'"),
    ({"train.strategy": "ddp"}, "strategy 'ddp' trains on several GPUs: set devices to 2"),
    ({"train.strategy": "ddp", "train.devices": 1}, "set devices to 2 or more"),
])
def test_bad_values_are_one_line_config_errors(overrides, message):
    with pytest.raises(ConfigError) as err:
        build_config("interpolation", "unet", overrides=overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_resolve_precision(monkeypatch):
    assert resolve_precision(TrainSettings(), CPU) == "32-true"  # CPU results as before
    assert resolve_precision(TrainSettings(precision="32"), CPU) == "32-true"
    assert resolve_precision(TrainSettings(precision="bf16"), CPU) == "bf16-mixed"
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_precision(TrainSettings(), cuda) == "bf16-mixed"
    assert resolve_precision(TrainSettings(precision="32"), cuda) == "32-true"
    # A GPU without native bf16 (emulation would be slower than 32-bit): 32-bit.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: including_emulation)
    assert resolve_precision(TrainSettings(), cuda) == "32-true"
    assert resolve_precision(TrainSettings(precision="bf16"), cuda) == "bf16-mixed"


def test_devices_beyond_the_machine_fail_in_fit_with_one_line(task, monkeypatch):
    ddp = {**TINY_TRAIN, "strategy": "ddp", "devices": 2}
    # device auto on a machine without GPU: the CPU, and no GPUs to spread over.
    model = UNetMapper(TINY, CPU, seed=0)
    with pytest.raises(ConfigError, match=r"needs 2 CUDA GPUs, and no CUDA GPU is visible"):
        model.fit(task, TrainSettings(**ddp))
    assert model.net is None  # refused before anything was built
    # On a CUDA device: the GPUs are counted (checked before the device is touched).
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    gpu_model = UNetMapper(TINY, torch.device("cuda"), seed=0)
    with pytest.raises(ConfigError) as err:
        gpu_model.fit(task, TrainSettings(**{**ddp, "devices": 3}))
    assert "train.devices=3: this machine has 1 CUDA GPU;" in str(err.value)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- precision


def test_bf16_fit_and_predict_on_the_cpu(task):
    m32, h32, _, p32 = _fit_predict(task)
    m16, h16, rows16, p16 = _fit_predict(task, precision="bf16")
    assert m32.execution_info() == {"precision": "32-true", "compiled": False,
                                    "strategy": "auto", "devices": 1}
    assert m16.execution_info() == {"precision": "bf16-mixed", "compiled": False,
                                    "strategy": "auto", "devices": 1}
    assert p16.dtype == np.float32 and p32.dtype == np.float32
    a, b = p32.values, p16.values
    ocean = np.isfinite(a)
    assert np.array_equal(ocean, np.isfinite(b))  # NaN on land only, finite elsewhere
    diff = np.abs(a[ocean] - b[ocean])
    assert diff.max() > 0  # bf16 arithmetic did run ...
    assert diff.max() < 0.05 * a[ocean].std()  # ... and stays close to 32-bit
    assert np.isfinite(h16["train_loss"]).all() and np.isfinite(h16["val_loss"]).all()
    np.testing.assert_allclose(h16["val_loss"], h32["val_loss"], rtol=0.05)
    assert len(rows16) == TINY_TRAIN["epochs"]
    # The weights stay float32 (mixed precision, not a bf16 network).
    assert all(v.dtype == torch.float32 for v in m16.state_dict().values()
               if v.is_floating_point())


def test_predict_follows_the_configured_precision(task):
    model, _, _, p32 = _fit_predict(task)
    times = task.sample_times("test")[:6]
    model.configure(TrainSettings(**TINY_TRAIN, precision="bf16"))
    p16 = model.predict(task, times)
    assert model.execution_info()["precision"] == "bf16-mixed"
    ocean = np.isfinite(p32.values)
    assert 0 < np.abs(p16.values - p32.values)[ocean].max() < 0.05 * p32.values[ocean].std()
    model.configure(TrainSettings(**TINY_TRAIN))
    np.testing.assert_array_equal(model.predict(task, times).values, p32.values)
    assert model.execution_info()["precision"] == "32-true"


def test_execution_info_defaults():
    model = UNetMapper(TINY, CPU, seed=0)
    assert model.execution_info() == {"precision": "32-true", "compiled": False,
                                      "strategy": "auto", "devices": 1}
    # Models outside the network trainer: the base class's default.
    assert OIMapper(OIParams(), CPU).execution_info() == {"precision": "32-true"}


# ----------------------------------------------------------------------------- compile


def test_compile_unavailable_is_a_one_line_config_error(task, monkeypatch):
    from torch._inductor import cpp_builder

    def no_compiler():
        raise RuntimeError("no C++ compiler found\n(long explanation)")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    with pytest.raises(ConfigError) as err:
        check_compile(CPU)
    text = str(err.value)
    assert text.startswith("train.compile: torch.compile cannot work on this machine")
    assert "no C++ compiler found" in text and "set train.compile to false" in text
    assert "\n" not in text
    model = UNetMapper(TINY, CPU, seed=0)
    with pytest.raises(ConfigError, match="train.compile"):
        model.fit(task, TrainSettings(**TINY_TRAIN, compile=True))
    # Not asked for: no check at all.
    model.fit(task, TrainSettings(**{**TINY_TRAIN, "epochs": 1}))


@pytest.mark.slow
def test_compiled_fit_and_predict(task):
    try:
        check_compile(CPU)
    except ConfigError as exc:
        pytest.skip(f"torch.compile unavailable here: {exc}")
    model, history, _, pred = _fit_predict(task, compile=True, epochs=1)
    assert model.execution_info()["compiled"] is True
    assert np.isfinite(history["val_loss"]).all()
    # The weights are the network's own (no torch.compile prefixes) ...
    assert not any("_orig_mod" in k for k in model.state_dict())
    # ... and the uncompiled network predicts the same from them.
    model.configure(TrainSettings(**TINY_TRAIN))
    plain = model.predict(task, task.sample_times("test")[:6])
    np.testing.assert_allclose(plain.values, pred.values, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------- ranks and DDP


def _batches(tensors, task, rank=None):
    kw = {} if rank is None else {"rank": rank}
    return RandomPatchBatches(tensors, task.sample_index("train"), 12, 4, 3, seed=7,
                              flips=True, **kw)


def test_each_rank_draws_its_own_patches(task):
    io = task.network_io(3)
    tensors = TaskTensors(task, io, Normalisation.from_task(task), CPU)
    single, rank0, rank0_again, rank1 = (
        _batches(tensors, task), _batches(tensors, task, 0), _batches(tensors, task, 0),
        _batches(tensors, task, 1))
    for k in range(3):
        x, y, w = single[k]
        x0, y0, w0 = rank0[k]
        xa, _, _ = rank0_again[k]
        _, y1, _ = rank1[k]
        assert torch.equal(x, x0) and torch.equal(y, y0) and torch.equal(w, w0)  # rank 0 = 1 process
        assert torch.equal(x0, xa)  # reproducible
        assert not torch.equal(y0, y1)  # another rank, other patches


def test_fit_and_predict_share_the_task_tensors_kept_on_the_task(task, monkeypatch):
    """Fit uploads the task's normalised fields once; predict and a later fit on the same
    task (a worker's cached task) reuse them; another window replaces them (one set kept)."""
    made = []
    original = TaskTensors.__init__

    def recorded(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(TaskTensors, "__init__", recorded)
    model = UNetMapper(TINY, CPU, seed=0)
    model.fit(task, TrainSettings(**{**TINY_TRAIN, "epochs": 1}))
    model.predict(task, task.sample_times("test"))
    UNetMapper(TINY, CPU, seed=1).fit(task, TrainSettings(**{**TINY_TRAIN, "epochs": 1}))
    assert len(made) == 1 and made[0].truth is not None  # kept, not released
    other = UNetMapper(TINY.model_copy(update={"window": TINY.window + 2}), CPU, seed=0)
    other.fit(task, TrainSettings(**{**TINY_TRAIN, "epochs": 1}))
    assert len(made) == 2 and task._shared_tensors[2] is made[1]


def test_upload_on_the_cpu_is_the_array():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = upload(a, CPU)
    assert t.dtype == torch.float32 and np.array_equal(t.numpy(), a)


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(task, tmp_path):
    """Lightning's DDP over 2 CPU processes (gloo) started by the trainer: the first rank's
    progress comes back to this process, its best weights and history too."""
    s = TrainSettings(**TINY_TRAIN, strategy="ddp", devices=2, device="cpu")
    model = UNetMapper(TINY, CPU, seed=0)
    model.configure(s)
    rows = []
    history = model.fit(task, s, progress=rows.append, log_dir=tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2]  # reported once, by rank 0
    assert len(history) == 2 and history["best"].sum() == 1
    assert np.isfinite(history["train_loss"]).all()
    assert model.execution_info() == {"precision": "32-true", "compiled": False,
                                      "strategy": "ddp", "devices": 2}
    assert (tmp_path / "checkpoints" / "best.ckpt").exists()
    assert (tmp_path / "lightning" / "metrics.csv").exists()
    # The best weights came back: they reproduce the best validation loss here.
    io = model.task_io(task)
    tensors = TaskTensors(task, io, model.norm, CPU)
    days = torch.as_tensor(task.sample_index("val"))
    y, w = tensors.targets(days)
    model.net.eval()
    with torch.no_grad():
        total, _ = CombinedLoss([("mse", 1.0)], Grid.from_coords(
            task.truth["lat"].values, task.truth["lon"].values))(
            model._apply(tensors.inputs(days), io), y, w)
    assert float(total) == pytest.approx(history["val_loss"].min(), rel=1e-3)
    # Two ranks drew twice the batches: not the single-process training.
    single = UNetMapper(TINY, CPU, seed=0).fit(task, TrainSettings(**TINY_TRAIN))
    assert not np.allclose(history["train_loss"], single["train_loss"])
