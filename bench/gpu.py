"""The GPU path in one short run (issue 9): UNet training speed in 32-bit and bf16, the share
of a training step spent cutting the batch, and the OI's speed-up on the GPU over the CPU.

On the built-in OSSE's interpolation task (:func:`backend.paths.ensure_builtin_dataset`,
generated first if missing; :func:`backend.runner.build_task` with a config from
:func:`backend.config.build_config`):

1. training samples/s of a UNet step as the trainer runs it (batches from
   :class:`data.torch_data.RandomPatchBatches` on the device, the trainer's loss and
   optimiser; ``bf16``: autocast around the network, loss in float32, as Lightning's
   ``bf16-mixed``), for precision 32 and bf16, and their ratio;
2. the share of the step time spent producing the batch: each step timed in two parts,
   batch then forward/backward/update, with ``torch.cuda.synchronize`` after each on a GPU
   (an upper bound of what the accelerator waits for: in training the batch of step k+1 is
   cut while step k runs);
3. the OI (:class:`models.oi.OIMapper`, default parameters) over the test days on the CPU
   and on the GPU, and the speed-up (skipped, with a message, without a GPU).

Sizes: ``--size full`` is the backend's UNet and ``train`` defaults (window 29, 24 base
channels, batch 16, patches of 64); ``small`` (window 9, 8 channels, batch 4, patches of 32,
fewer steps) keeps a CPU run to about a minute; ``auto`` (default) is full on a GPU, small
on the CPU. Prints a table, then one JSON line with every figure. Must stay well under 4
minutes on one GPU.

Usage: ``python bench/gpu.py [--device auto|cpu|cuda] [--size auto|small|full]
[--steps N] [--oi-days N]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.config import build_config
from backend.paths import builtin_dataset_path, builtin_is_current, ensure_builtin_dataset
from backend.runner import build_task
from data.torch_data import Normalisation, RandomPatchBatches, TaskTensors
from models.lightning_module import build_optimizer
from models.losses import CombinedLoss, Grid
from models.oi import OIMapper, OIParams
from models.registry import get as get_model

SIZES = {
    "full": {"model.window": 29, "model.base_channels": 24, "train.batch_size": 16,
             "train.patch_size": 64, "steps": 40, "warmup": 5},
    "small": {"model.window": 9, "model.base_channels": 8, "train.batch_size": 4,
              "train.patch_size": 32, "steps": 20, "warmup": 3},
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_parts(config, task, device):
    """The network (the trainer's seeded initial weights), its training batches, loss,
    optimiser and schedule, as :meth:`models.trainer.NetworkModel.fit` builds them."""
    s = config.train
    model = get_model("unet")(config.model, device=device, seed=s.seed)
    model.configure(s)
    io = model.task_io(task)
    net = model._ensure_network(io)
    tensors = TaskTensors(task, io, Normalisation.from_task(task), device)
    batches = RandomPatchBatches(tensors, task.sample_index("train"), s.patch_size, s.batch_size,
                                 s.steps_per_epoch, seed=s.seed,
                                 resample=(s.resample_obs if s.resample_obs is not None
                                           else task.resample_obs))
    loss = CombinedLoss([(t.name, t.weight) for t in s.loss],
                        Grid.from_coords(task.truth["lat"].values, task.truth["lon"].values))
    opt, sched = build_optimizer(net.parameters(), s, s.steps_per_epoch, device)
    return net, batches, loss, opt, sched


def step(net, loss_fn, opt, sched, batch, bf16: bool, device: torch.device) -> torch.Tensor:
    """One training step as Lightning runs it (``bf16-mixed``: autocast around the
    forward pass; the trainer's loss is computed in float32)."""
    x, y, w = batch
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        out = net(x)
    total, _ = loss_fn(out.float(), y, w)
    opt.zero_grad(set_to_none=True)
    total.backward()
    opt.step()
    if sched is not None:
        sched.step()
    return total.detach()


def time_training(config, task, device, bf16: bool, steps: int, warmup: int) -> dict:
    net, batches, loss_fn, opt, sched = training_parts(config, task, device)
    net.train()
    n = len(batches)
    for k in range(warmup):  # kernels, allocator, cuDNN choices
        step(net, loss_fn, opt, sched, batches[k % n], bf16, device)
    sync(device)
    t0 = time.perf_counter()  # as in training: no synchronisation between steps
    for k in range(steps):
        last = step(net, loss_fn, opt, sched, batches[k % n], bf16, device)
    sync(device)
    wall = time.perf_counter() - t0
    if not torch.isfinite(last):
        raise RuntimeError(f"non-finite loss in {'bf16' if bf16 else '32-bit'} training")
    data = total = 0.0
    for k in range(steps):  # the same steps, each split in two with synchronisations
        t0 = time.perf_counter()
        batch = batches[k % n]
        sync(device)
        t1 = time.perf_counter()
        step(net, loss_fn, opt, sched, batch, bf16, device)
        sync(device)
        t2 = time.perf_counter()
        data += t1 - t0
        total += t2 - t0
    samples = steps * config.train.batch_size
    return {"samples_per_s": samples / wall, "step_ms": 1e3 * wall / steps,
            "batch_ms": 1e3 * data / steps, "synced_step_ms": 1e3 * total / steps,
            "data_share": data / total}


def time_oi(task, days: int, device: torch.device) -> tuple[float, np.ndarray]:
    times = pd.DatetimeIndex(task.sample_times("test"))[:days]
    sync(device)
    t0 = time.perf_counter()
    out = OIMapper(OIParams(), device=device).predict(task, times)
    sync(device)
    return time.perf_counter() - t0, np.asarray(out.values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--size", default="auto", choices=["auto", "small", "full"])
    ap.add_argument("--steps", type=int, default=None, help="timed training steps")
    ap.add_argument("--oi-days", type=int, default=None, help="test days of the OI timing")
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and cuda)
                          else "cpu")
    if device.type == "cuda" and not cuda:
        sys.exit("--device cuda: no CUDA GPU is visible")
    size = args.size if args.size != "auto" else ("full" if device.type == "cuda" else "small")
    sizes = dict(SIZES[size])
    steps = args.steps or sizes.pop("steps")
    warmup = sizes.pop("warmup")
    sizes.pop("steps", None)
    figures: dict = {"device": str(device), "size": size, "torch": torch.__version__,
                     "threads": torch.get_num_threads()}
    if device.type == "cuda":
        figures["gpu"] = torch.cuda.get_device_name(device)
        figures["bf16_native"] = torch.cuda.is_bf16_supported(including_emulation=False)

    t0 = time.perf_counter()
    path = builtin_dataset_path()
    generated = not builtin_is_current(path)
    path = ensure_builtin_dataset()
    config = build_config("interpolation", "unet", overrides={
        **sizes, "train.steps_per_epoch": max(steps, warmup), "train.device": device.type})
    task = build_task(config, path)
    figures["setup_s"] = round(time.perf_counter() - t0, 2)
    figures["dataset_generated"] = generated
    s, p = config.train, config.model
    figures["config"] = {"window": p.window, "base_channels": p.base_channels, "depth": p.depth,
                         "batch_size": s.batch_size, "patch_size": s.patch_size, "steps": steps,
                         "grid": list(task.truth.shape)}

    train = {}
    for name, bf16 in (("32", False), ("bf16", True)):
        train[name] = time_training(config, task, device, bf16, steps, warmup)
    ratio = train["bf16"]["samples_per_s"] / train["32"]["samples_per_s"]
    figures["train"] = {k: {m: round(v, 4) for m, v in d.items()} for k, d in train.items()}
    figures["train"]["bf16_over_32"] = round(ratio, 3)

    n_test = len(task.sample_times("test"))
    days = min(args.oi_days or n_test, n_test)
    if device.type == "cuda":
        time_oi(task, 1, device)  # CUDA context, cuSOLVER handles
        gpu_s, gpu_out = time_oi(task, days, device)
        cpu_s, cpu_out = time_oi(task, days, torch.device("cpu"))
        diff = float(np.nanmax(np.abs(gpu_out - cpu_out)))
        figures["oi"] = {"days": days, "cpu_s": round(cpu_s, 3), "cuda_s": round(gpu_s, 3),
                         "speedup": round(cpu_s / gpu_s, 2), "max_abs_diff_m": diff}
    else:
        figures["oi"] = {"skipped": "no CUDA GPU: the OI's GPU speed-up needs one"}

    w = 34
    print(f"device {figures.get('gpu', 'cpu')} ({device}), torch {torch.__version__}, "
          f"{size} size: UNet window {p.window}, {p.base_channels} channels, depth {p.depth}; "
          f"batch {s.batch_size} x {s.patch_size}², {steps} timed steps; grid "
          f"{tuple(task.truth.shape)}")
    print(f"{'':{w}s}{'32-bit':>12s}{'bf16':>12s}")
    for key, label, fmt in (("samples_per_s", "training samples/s", "{:12.1f}"),
                            ("step_ms", "step time (ms)", "{:12.2f}"),
                            ("batch_ms", "batch production (ms, synced)", "{:12.2f}"),
                            ("data_share", "share of the step cutting batches", "{:12.1%}")):
        print(f"{label:{w}s}" + "".join(fmt.format(train[k][key]) for k in ("32", "bf16")))
    print(f"{'bf16 / 32-bit samples/s':{w}s}{ratio:12.2f}")
    oi = figures["oi"]
    if "skipped" in oi:
        print(f"{'OI GPU speed-up':{w}s}  skipped: {oi['skipped']}")
    else:
        print(f"{'OI over ' + str(oi['days']) + ' test days (s)':{w}s}{oi['cpu_s']:>9.2f} cpu"
              f"{oi['cuda_s']:>9.2f} gpu")
        print(f"{'OI GPU speed-up':{w}s}{oi['speedup']:12.1f}   (max |gpu - cpu| "
              f"{oi['max_abs_diff_m']:.2e} m)")
    print(json.dumps(figures))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
