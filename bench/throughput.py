"""Training throughput of the backend's trainer against a plain PyTorch loop (issue 9: the
ratio must be at least 0.95).

Both sides train the same UNet (same initial weights) on the same task, the built-in OSSE's
interpolation (:func:`backend.paths.ensure_builtin_dataset`, ``backend.runner.build_task``),
with the same batches: the task's tensors loaded once on the device,
:class:`data.tasks.RandomPatchBatches` for training and
:class:`data.torch_data.FullFieldBatches` for the per-epoch validation, the same loss,
optimiser, one-cycle schedule and epochs, and both keep the best validation weights.

- backend: :meth:`models.trainer.NetworkModel.fit` as a run calls it, through Lightning
  with a run folder (CSV and TensorBoard loggers, ``checkpoints/best.ckpt``) and a progress
  function that does a run's I/O per epoch (a JSON line appended to an events file and a
  small JSON state file rewritten, like :class:`backend.runner.Reporter`);
- plain: a hand-written loop over the same objects.

Each is timed from the task to the trained weights (tensors, network, training,
validation, restoring the best weights). The two alternate, after one warm-up each, and
the medians of ``--repeats`` runs are compared: samples (patches) per second of each and
the ratio backend / plain. The final validation losses of both are printed as a check
that they did the same work.

Usage: ``python bench/throughput.py [--device cpu|cuda] [--epochs 3] [--steps 12]
[--batch 8] [--patch 64] [--base 16] [--repeats 3]`` (defaults sized for a 2-core CPU;
on a GPU use the backend's sizes, e.g. ``--batch 16 --base 24 --steps 24``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.config import build_config
from backend.paths import ensure_builtin_dataset
from backend.runner import build_task
from data.torch_data import (
    FullFieldBatches,
    Normalisation,
    RandomPatchBatches,
    TaskTensors,
)
from models.lightning_module import build_optimizer
from models.losses import CombinedLoss, Grid
from models.registry import get as get_model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class RunLikeProgress:
    """What the backend's reporter does per epoch: an event line and the run's state."""

    def __init__(self, folder: Path):
        self.events = folder / "events.jsonl"
        self.state = folder / "run.json"

    def __call__(self, row: dict) -> None:
        with self.events.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"event": "epoch", "time": time.time(), **row}) + "\n")
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"status": "running", "progress": row}), encoding="utf-8")
        tmp.replace(self.state)


def backend_fit(config, task, device) -> float:
    """NetworkModel.fit as a run calls it; returns the best validation loss."""
    model = get_model(config.model.name)(config.model, device=device, seed=config.train.seed)
    model.configure(config.train)
    with tempfile.TemporaryDirectory(prefix="oceanlab-bench-") as folder:
        history = model.fit(task, config.train, progress=RunLikeProgress(Path(folder)),
                            log_dir=folder)
    return float(history["val_loss"].min())


def plain_fit(config, task, device) -> float:
    """The same training as a hand-written PyTorch loop; returns the best validation loss."""
    s = config.train
    model = get_model(config.model.name)(config.model, device=device, seed=s.seed)
    model.configure(s)
    io = model.task_io(task)
    net = model._ensure_network(io)  # same seeded initial weights as fit's
    norm = Normalisation.from_task(task)
    tensors = TaskTensors(task, io, norm, device)
    flips = s.flips if s.flips is not None else "flips" in task.augmentations
    transposes = s.transposes if s.transposes is not None else "transposes" in task.augmentations
    train = RandomPatchBatches(tensors, task.sample_index("train"), s.patch_size, s.batch_size,
                               s.steps_per_epoch, seed=s.seed, flips=flips, transposes=transposes,
                               resample=(s.resample_obs if s.resample_obs is not None
                                         else task.resample_obs))
    n_lat, n_lon = tensors.shape
    val = FullFieldBatches(tensors, task.sample_index("val"),
                           batch_size=min(max(1, s.batch_size // 2),
                                          model.full_batch_size(io, n_lat, n_lon)))
    loss_fn = CombinedLoss([(t.name, t.weight) for t in s.loss],
                           Grid.from_coords(task.truth["lat"].values, task.truth["lon"].values))
    opt, sched = build_optimizer(net.parameters(), s, len(train), device)  # the trainer's

    def forward(x):
        out = net(x)
        if io.base_channel is not None:
            out = out + x[:, io.base_channel:io.base_channel + 1]
        return out

    best, best_state = float("inf"), None
    for _ in range(s.epochs):
        net.train()
        train_sum = torch.zeros((), device=device)
        for k in range(len(train)):
            x, y, w = train[k]
            total, _ = loss_fn(forward(x), y, w)
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            if sched is not None:
                sched.step()
            train_sum += total.detach() * x.shape[0]
        net.eval()
        val_sum, n = torch.zeros((), device=device), 0
        with torch.no_grad():
            for k in range(len(val)):
                x, y, w = val[k]
                total, _ = loss_fn(forward(x), y, w)
                val_sum += total * x.shape[0]
                n += x.shape[0]
        value = float(val_sum) / n  # one synchronisation per epoch, like the logged epoch mean
        float(train_sum)
        if value < best:
            best = value
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=12, help="training steps per epoch")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--base", type=int, default=16, help="UNet base channels")
    ap.add_argument("--window", type=int, default=29, help="UNet window (days)")
    ap.add_argument("--precision", default="32", choices=["auto", "32", "bf16"])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    device = torch.device(args.device)
    config = build_config("interpolation", "unet", overrides={
        "train.epochs": args.epochs, "train.steps_per_epoch": args.steps,
        "train.batch_size": args.batch, "train.patch_size": args.patch,
        "train.precision": args.precision, "train.device": device.type,
        "model.base_channels": args.base, "model.window": args.window})
    task = build_task(config, ensure_builtin_dataset())
    if args.precision != "32":
        print("note: the plain loop runs in 32-bit; compare with --precision 32")
    samples = args.epochs * args.steps * args.batch
    sides = {"backend": backend_fit, "plain": plain_fit}
    times: dict[str, list[float]] = {k: [] for k in sides}
    losses: dict[str, float] = {}
    for name, fn in sides.items():  # warm-up: imports, allocator, kernels
        fn(config, task, device)
    for _ in range(args.repeats):
        for name, fn in sides.items():  # alternate, so that machine noise hits both
            sync(device)
            t0 = time.perf_counter()
            losses[name] = fn(config, task, device)
            sync(device)
            times[name].append(time.perf_counter() - t0)
    rate = {k: samples / statistics.median(v) for k, v in times.items()}
    ratio = rate["backend"] / rate["plain"]
    print(f"device={device} threads={torch.get_num_threads()} task={tuple(task.truth.shape)} "
          f"UNet(window={args.window}, base={args.base}, depth={config.model.depth}) "
          f"epochs={args.epochs} steps={args.steps} batch={args.batch} patch={args.patch}")
    for k in sides:
        print(f"{k:8s} samples/s {rate[k]:9.1f}   runs {', '.join(f'{t:.2f}' for t in times[k])} s"
              f"   best val_loss {losses[k]:.6f}")
    print(f"ratio backend/plain {ratio:.3f} (required >= 0.95)")
    print(json.dumps({"device": str(device), "samples_per_run": samples,
                      "backend_samples_per_s": round(rate["backend"], 2),
                      "plain_samples_per_s": round(rate["plain"], 2), "ratio": round(ratio, 4),
                      "backend_runs_s": [round(t, 3) for t in times["backend"]],
                      "plain_runs_s": [round(t, 3) for t in times["plain"]],
                      "best_val_loss": losses}))


if __name__ == "__main__":
    main()
