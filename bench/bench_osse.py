"""Time the built-in OSSE generator against its 60 s budget.

Usage::

    python bench/bench_osse.py [--device auto|cpu|cuda] [--n-days 365] [--seed 0]

Prints ``key=value`` lines: the QG model's speed (steps/s, simulated days/s), the time
``generate_osse`` takes for the default year and its ratio to the 60 s budget, and the
statistics of the file it wrote (SSH std, eddy scale, decorrelation time, observed
fraction) and the targets of SCIENCE.md measured by :func:`data.osse.osse_statistics` (front
drop, eddy std, spectral slope, decorrelation time). No assertion on time: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr


from data.osse import generate_osse, osse_statistics
from data.qg import QGModel, QGParams, _cpu_threads, resolve_device

BUDGET_S = 60.0


def qg_speed(device: torch.device, days: int = 10) -> tuple[float, float]:
    """Steps per second and simulated days per second of the default QG model."""
    params = QGParams()
    with _cpu_threads(device, 1), torch.no_grad():
        model = QGModel(params, device, seed=0)
        model.step_day()  # warm-up (allocations, CUDA kernels)
        if device.type == "cuda":
            torch.cuda.synchronize()
        tick = time.perf_counter()
        for _ in range(days):
            model.step_day()
        model.energy()  # synchronises
        elapsed = time.perf_counter() - tick
    return days * params.steps_per_day / elapsed, days / elapsed


def efold(corr: np.ndarray) -> int:
    below = np.flatnonzero(corr < 1 / math.e)
    return int(below[0]) if below.size else corr.size


def statistics(path: Path) -> dict[str, float]:
    """SSH and observation statistics of an OSSE file."""
    with xr.open_dataset(path) as ds:
        ssh = ds["ssh"].values.astype(np.float64)
        obs = ds["ssh_obs"].values
    a = ssh - ssh.mean(axis=0)
    corr_t = np.array([np.mean(a[: len(a) - k] * a[k:]) / np.mean(a * a)
                       for k in range(min(60, len(a) - 1))])
    b = ssh - ssh.mean(axis=(1, 2), keepdims=True)
    corr_x = np.array([np.mean(b[:, :, : b.shape[2] - k] * b[:, :, k:]) / np.mean(b * b)
                       for k in range(60)])
    km_per_cell = 6371.0 * math.cos(math.radians(38.0)) * math.radians(0.1)
    seen = np.isfinite(obs)
    counts = seen.sum(axis=(1, 2))
    window = min(27, len(counts))
    return {
        "ssh_spatial_std_m": float(ssh.std(axis=(1, 2)).mean()),
        "ssh_max_abs_m": float(np.abs(ssh).max()),
        "ssh_corr_efold_km": efold(corr_x) * km_per_cell,
        "ssh_decorrelation_days": efold(corr_t),
        "obs_fraction_per_day": float(seen.mean()),
        "obs_cells_per_27d": float(np.convolve(counts, np.ones(window), "valid").mean()),
        "obs_minus_truth_std_m": float(np.nanstd(obs - ssh)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--n-days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = resolve_device(args.device)

    steps, days = qg_speed(device)
    print(f"device={device.type} torch_threads={torch.get_num_threads()}")
    print(f"qg_steps_per_second={steps:.0f} qg_days_per_second={days:.1f}")
    with tempfile.TemporaryDirectory() as folder:
        tick = time.perf_counter()
        path = generate_osse(Path(folder) / "osse.nc", seed=args.seed, n_days=args.n_days,
                             device=device)
        seconds = time.perf_counter() - tick
        print(f"osse_generation_seconds={seconds:.1f} budget_ratio={seconds / BUDGET_S:.2f}")
        for key, value in statistics(path).items():
            print(f"{key}={value:.4g}")
        with xr.open_dataset(path) as ds:  # the targets of SCIENCE.md, the tests' recipe
            for key, value in osse_statistics(ds["ssh"]).items():
                print(f"{key}={value:.4g}")


if __name__ == "__main__":
    main()
