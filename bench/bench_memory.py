"""Peak memory of whole runs on awkward inputs, against OceanLab's own estimate.

Cases (each a fresh ``python -m app train`` in a child process, so the peak resident set
size is that run's alone):

- ``yearly``: 50 annual anomaly maps on a 5° grid (18 x 30), ``--model unet --epochs 1`` with
  simulated observations (the file that once grew to 22 GB);
- ``big``: 12 monthly maps on a 2000 x 2000 grid, ``--model unet --epochs 1``;
- ``big-oi``: the same file with the optimal interpolation, whose covariance matrices would
  not fit: it must be refused by the estimate before anything is loaded or solved.

Printed per case: the run's status, the measured peak RSS, the estimate recorded in
run.json and the ratio peak / estimate (the estimate is meant as an upper bound: a ratio
at or below 1), plus the baseline RSS of a child that only imports the same libraries.

Usage: ``python bench/bench_memory.py [--cases yearly,big,big-oi] [--workdir DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

REPO = Path(__file__).resolve().parent.parent
GB = 1024**3


def _smooth_field(n_time: int, n_lat: int, n_lon: int, seed: int) -> np.ndarray:
    """Random smooth anomalies (float32) built from a few Fourier modes, cheap at any size."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 2 * np.pi, n_lat, dtype=np.float32)[:, None]
    x = np.linspace(0, 2 * np.pi, n_lon, dtype=np.float32)[None, :]
    out = np.empty((n_time, n_lat, n_lon), dtype=np.float32)
    for t in range(n_time):
        field = np.zeros((n_lat, n_lon), dtype=np.float32)
        for _ in range(6):
            ky, kx = rng.integers(1, 8, size=2)
            phase = rng.uniform(0, 2 * np.pi)
            field += np.float32(rng.normal(0, 0.05)) * np.sin(ky * y + kx * x + phase)
        out[t] = field
    return out


def make_yearly(path: Path) -> None:
    lat = np.linspace(-85, 85, 18)
    lon = np.linspace(-177.5, 167.5, 30)
    time = pd.date_range("1971-01-01", periods=50, freq="YS")
    ds = xr.Dataset(
        {"sla": (("time", "lat", "lon"), _smooth_field(50, 18, 30, 0), {"units": "m"})},
        coords={"time": time, "lat": ("lat", lat, {"units": "degrees_north"}),
                "lon": ("lon", lon, {"units": "degrees_east"})})
    ds.to_netcdf(path)


def make_big(path: Path, n: int = 2000) -> None:
    lat = np.linspace(-50, 50, n)
    lon = np.linspace(-60, 40, n)
    time = pd.date_range("2012-01-15", periods=12, freq="MS")
    ds = xr.Dataset(
        {"sla": (("time", "lat", "lon"), _smooth_field(12, n, n, 1), {"units": "m"})},
        coords={"time": time, "lat": ("lat", lat, {"units": "degrees_north"}),
                "lon": ("lon", lon, {"units": "degrees_east"})})
    ds.to_netcdf(path)


CASES = {
    "yearly": ("yearly.nc", ["--model", "unet", "--epochs", "1", "--var", "sla"]),
    "big": ("big.nc", ["--model", "unet", "--epochs", "1", "--var", "sla",
                       "--set", "model.steps_per_epoch=4"]),
    "big-oi": ("big.nc", ["--model", "oi", "--var", "sla"]),
}


def child(argv: list[str]) -> None:
    """Run the CLI in this process and print its peak RSS as the last line."""
    if argv == ["--imports-only"]:
        import lightning  # noqa: F401
        import torch  # noqa: F401

        import backend.runner  # noqa: F401
        import metrics  # noqa: F401
        code = 0
    else:
        from app.cli import main

        code = main(argv)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"exit": code, "peak_bytes": peak}))


def run_case(name: str, workdir: Path) -> dict:
    file_name, args = CASES[name]
    runs = workdir / f"runs-{name}"
    shutil.rmtree(runs, ignore_errors=True)  # one run per case: the one measured here
    cmd = [sys.executable, __file__, "--child", "train", "--data", str(workdir / file_name),
           "--runs-dir", str(runs), "--json", *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "OCEANLAB_HOME": str(workdir / "ws")})
    lines = proc.stdout.strip().splitlines()
    if not lines:  # the child died (killed by the kernel, or a crash): say how
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"case": name, "status": f"exit {proc.returncode}", "error": tail, "peak_gb": 0.0,
                "estimate_gb": 0.0, "limit_gb": 0.0, "seconds": None}
    last = json.loads(lines[-1])
    info = json.loads(next(runs.glob("*/run.json")).read_text())
    estimate = sum(((info.get("memory") or {}).get("estimate_bytes") or {}).values())
    return {"case": name, "status": info["status"], "error": info.get("error"),
            "peak_gb": last["peak_bytes"] / GB, "estimate_gb": estimate / GB,
            "limit_gb": (info.get("memory") or {}).get("limit_bytes", 0) / GB,
            "seconds": (info.get("timings") or {}).get("total_s")}


def main() -> None:
    if "--child" in sys.argv:
        child(sys.argv[sys.argv.index("--child") + 1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="yearly,big,big-oi")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if "yearly" in cases and not (workdir / "yearly.nc").exists():
            make_yearly(workdir / "yearly.nc")
        if {"big", "big-oi"} & set(cases) and not (workdir / "big.nc").exists():
            make_big(workdir / "big.nc")
        base = subprocess.run([sys.executable, __file__, "--child", "--imports-only"], cwd=REPO,
                              capture_output=True, text=True)
        base_gb = json.loads(base.stdout.strip().splitlines()[-1])["peak_bytes"] / GB
        print(f"baseline (imports only): peak RSS {base_gb:.2f} GB")
        print(f"{'case':>8} {'status':>9} {'peak GB':>8} {'estimate GB':>12} {'peak/est':>9} "
              f"{'limit GB':>9} {'seconds':>8}")
        for name in cases:
            r = run_case(name, workdir)
            ratio = (r["peak_gb"] - base_gb) / r["estimate_gb"] if r["estimate_gb"] else float("nan")
            print(f"{name:>8} {r['status']:>9} {r['peak_gb']:8.2f} {r['estimate_gb']:12.2f} "
                  f"{ratio:9.2f} {r['limit_gb']:9.1f} {r['seconds'] or 0:8.1f}")
            if r["status"] != "done":
                print(f"{'':>8} {r['error']}")


if __name__ == "__main__":
    main()
