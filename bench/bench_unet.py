"""UNet training throughput: our Lightning path against a plain PyTorch loop.

Both train the same UNet (same initial weights) on the same pre-cut batches with the same
optimiser, schedule, loss and per-epoch validation; the ratio printed is
``lightning_patches_per_s / plain_patches_per_s`` (aim: at least 0.95). Each side is timed
for 1 and for 1 + ``--epochs`` epochs, so the output separates Lightning's fixed set-up cost
(Trainer construction, hooks) from its steady per-step throughput, which is what matters for
real trainings of tens of epochs. Runs alternate to even out machine noise; the best of the
repeats is kept for each.

Usage: ``python bench/bench_unet.py [--device cpu|cuda] [--steps N] [--repeats R]``
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch.utils.data import DataLoader, Dataset


from models.lightning_module import LitNetwork, fit_lightning
from models.losses import CombinedLoss, Grid, masked_mse
from models.trainer import TrainSettings
from models.unet import UNet, UNetParams


class _Batches(Dataset):
    """Pre-cut batches served as they are (the same objects the plain loop iterates)."""

    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, k):
        return self.batches[k]


def make_batches(n: int, p: UNetParams, s: TrainSettings, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = torch.randn(s.batch_size, 2 * p.window, s.patch_size, s.patch_size, generator=g)
        y = torch.randn(s.batch_size, 1, s.patch_size, s.patch_size, generator=g)
        w = (torch.rand(s.batch_size, 1, s.patch_size, s.patch_size, generator=g) > 0.1).float()
        out.append((x.to(device), y.to(device), w.to(device)))
    return out


def plain_loop(net, train, val, epochs, lr, wd, device):
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=wd)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(2, epochs * len(train)),
                                                pct_start=0.15)
    best, best_state = float("inf"), None
    for _ in range(epochs):
        net.train()
        for x, y, w in train:
            opt.zero_grad(set_to_none=True)
            loss = masked_mse(net(x), y, w)
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        with torch.no_grad():
            v = sum(float(masked_mse(net(x), y, w)) for x, y, w in val) / len(val)
        if v < best:
            best, best_state = v, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=12, help="training steps per epoch")
    ap.add_argument("--epochs", type=int, default=3, help="epochs beyond the first (timed twice)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    device = torch.device(args.device)
    p = UNetParams()
    s = TrainSettings()
    train = make_batches(args.steps, p, s, device)
    val = make_batches(2, p, s, device, seed=1)
    torch.manual_seed(0)
    net0 = UNet(2 * p.window, 1, p.base_channels, p.depth).to(device)
    patches_per_epoch = args.steps * s.batch_size

    def run_plain(epochs):
        net = copy.deepcopy(net0)
        sync(device)
        t = time.perf_counter()
        plain_loop(net, train, val, epochs, s.lr, s.weight_decay, device)
        sync(device)
        return time.perf_counter() - t

    def run_lightning(epochs):
        """OceanLab's trainer path: LitNetwork, loggers and ModelCheckpoint (in a temp dir)."""
        net = copy.deepcopy(net0)
        settings = s.model_copy(update={"epochs": epochs})
        module = LitNetwork(net, CombinedLoss([("mse", 1.0)], Grid()), settings,
                            steps_per_epoch=len(train))
        sync(device)
        t = time.perf_counter()
        fit_lightning(module, DataLoader(_Batches(train), batch_size=None),
                      DataLoader(_Batches(val), batch_size=None), device=device)
        sync(device)
        return time.perf_counter() - t

    run_plain(1), run_lightning(1)  # warm-up (allocator, kernels, Lightning imports)
    times = {k: [] for k in ("plain_1", "plain_n", "light_1", "light_n")}
    for _ in range(args.repeats):  # alternate to even out machine noise
        times["plain_1"].append(run_plain(1))
        times["light_1"].append(run_lightning(1))
        times["plain_n"].append(run_plain(1 + args.epochs))
        times["light_n"].append(run_lightning(1 + args.epochs))
    best = {k: min(v) for k, v in times.items()}
    total = (1 + args.epochs) * patches_per_epoch
    steady = args.epochs * patches_per_epoch
    tp_plain, tp_light = total / best["plain_n"], total / best["light_n"]
    st_plain = steady / max(1e-9, best["plain_n"] - best["plain_1"])
    st_light = steady / max(1e-9, best["light_n"] - best["light_1"])
    print(f"device={device}")
    print(f"patch={s.patch_size} batch={s.batch_size} window={p.window} base={p.base_channels} depth={p.depth}")
    print(f"epochs={1 + args.epochs} steps_per_epoch={args.steps}")
    print(f"plain_patches_per_s={tp_plain:.1f}")
    print(f"lightning_patches_per_s={tp_light:.1f}")
    print(f"throughput_ratio_lightning_over_plain={tp_light / tp_plain:.3f}")
    print(f"one_epoch_fit_extra_s={best['light_1'] - best['plain_1']:.3f}")  # Lightning set-up
    print(f"steady_state_ratio_lightning_over_plain={st_light / st_plain:.3f}")


if __name__ == "__main__":
    main()
