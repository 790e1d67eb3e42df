"""Peak memory of a run on a multi-file dataset far larger than the memory it may use.

Generates (once, under ``--dir`` or a temporary folder) daily NetCDF files of float32 sea
surface height on an ``--n`` x ``--n`` grid (default 2000 x 2000 x 280 days = 4.5 GB on
disk), then in a child process runs what ``python -m app train`` runs on the directory:
opened lazily (Dask), cut to ``--region`` and ``--period`` before anything is loaded, the
interpolation task built (simulated nadir observations), a small UNet trained for one short
epoch and the test period predicted and scored. The child's own peak resident set size is
measured (``getrusage``), so that it is the run's alone.

Printed: size on disk, the cut, the run's status and timings, its peak RSS against the
2 GB budget (ratio peak / 2 GB), the baseline RSS of a child that only imports the same
libraries, and what the eager alternative (every file loaded, then cut) would need; with
``--eager`` that alternative is measured too (it needs about twice the size on disk).

Usage: ``python bench/bench_bigdata.py [--dir DIR] [--keep] [--n 2000] [--days 280]
[--region -30,-20,5,15] [--period 2012-02-01,2012-06-30] [--eager]``

Generated files are deleted at the end unless ``--keep`` (a ``--dir`` that already holds
them is reused and kept).
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
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

REPO = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == REPO / "bench":
    sys.path[0] = str(REPO)  # bench/backend.py would shadow the backend package
GB = 1024**3
BUDGET_GB = 2.0
START = "2012-01-01"


def _peak_bytes() -> int:
    """Peak RSS of this process or any child it waited for (Linux: ru_maxrss in KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) * 1024


def generate(folder: Path, n: int, days: int, seed: int = 0) -> float:
    """Write ``days`` daily files of an ``n`` x ``n`` field; returns the seconds taken.

    Each day is a few travelling Fourier modes (an eddy field that moves) with a land
    corner (NaN), float32, uncompressed; existing complete files are kept.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lat = np.linspace(-50.0, 50.0, n)
    lon = np.linspace(-60.0, 40.0, n)
    y = np.deg2rad(lat).astype(np.float32)[:, None]
    x = np.deg2rad(lon).astype(np.float32)[None, :]
    modes = [(rng.integers(4, 30), rng.integers(4, 30), rng.uniform(0, 2 * np.pi),
              rng.normal(0, 0.05), rng.uniform(0.02, 0.1)) for _ in range(6)]
    land = (lat[:, None] > 35.0) & (lon[None, :] < -40.0)
    times = pd.date_range(START, periods=days)
    tic = time.perf_counter()
    for t, day in enumerate(times):
        path = folder / f"ssh_{day:%Y%m%d}.nc"
        if path.exists() and path.stat().st_size >= 4 * n * n:
            continue
        field = np.zeros((n, n), dtype=np.float32)
        for ky, kx, phase, amp, speed in modes:
            field += np.float32(amp) * np.sin(ky * y + kx * x + np.float32(phase + speed * t))
        field[land] = np.nan
        ds = xr.Dataset(
            {"ssh": (("time", "lat", "lon"), field[None], {"units": "m",
                                                          "long_name": "sea surface height"})},
            coords={"time": ("time", [day], {"long_name": "time"}),
                    "lat": ("lat", lat, {"units": "degrees_north"}),
                    "lon": ("lon", lon, {"units": "degrees_east"})})
        tmp = path.with_suffix(".nc.part")
        ds.to_netcdf(tmp, encoding={"ssh": {"_FillValue": np.float32(np.nan)}})
        tmp.rename(path)
    return time.perf_counter() - tic


def _size_on_disk(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*.nc"))


# ------------------------------------------------------------------------------- children
def child_train(argv: list[str]) -> None:
    """Run the CLI in this process; print its peak RSS as the last line."""
    from app.cli import main

    code = main(argv)
    print(json.dumps({"exit": code, "peak_bytes": _peak_bytes()}))


def child_imports() -> None:
    import lightning  # noqa: F401
    import torch  # noqa: F401

    import backend.runner  # noqa: F401
    import metrics  # noqa: F401

    print(json.dumps({"exit": 0, "peak_bytes": _peak_bytes()}))


def child_eager(folder: str, region: str, period: str) -> None:
    """The eager alternative: every file read into memory, joined, then cut."""
    lon0, lon1, lat0, lat1 = (float(v) for v in region.split(","))
    start, end = period.split(",")
    parts = [xr.open_dataset(f).load() for f in sorted(Path(folder).glob("*.nc"))]
    ds = xr.concat(parts, dim="time")
    del parts
    cut = ds.sel(lon=slice(lon0, lon1), lat=slice(lat0, lat1), time=slice(start, end))
    shape = tuple(cut["ssh"].shape)
    print(json.dumps({"exit": 0, "peak_bytes": _peak_bytes(), "shape": shape}))


def _train_child(args: list[str], env: dict, runs: Path) -> tuple[dict, str, float, dict]:
    """The train child, with its RSS polled (psutil) and attributed to the run's stage
    (``progress.stage`` of run.json: load = open, cut and build the task; fit; predict)."""
    import psutil

    tic = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env})
    stages: dict[str, int] = {}
    ps = psutil.Process(proc.pid)
    stage = "start"
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss
        except psutil.Error:
            break
        for f in runs.glob("*/run.json"):
            try:
                stage = (json.loads(f.read_text()).get("progress") or {}).get("stage") or stage
            except (OSError, ValueError):
                pass
        stages[stage] = max(stages.get(stage, 0), rss)
        time.sleep(0.2)
    out, err = proc.communicate()
    seconds = time.perf_counter() - tic
    lines = out.strip().splitlines()
    try:
        return json.loads(lines[-1]), err, seconds, stages
    except (IndexError, json.JSONDecodeError):
        tail = (err.strip().splitlines() or ["(no output)"])[-1]
        return {"exit": proc.returncode, "peak_bytes": 0, "error": tail}, err, seconds, stages


def _child(args: list[str], env: dict | None = None) -> tuple[dict, str, float]:
    tic = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", *args], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          check=False)
    seconds = time.perf_counter() - tic
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]), proc.stderr, seconds
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"exit": proc.returncode, "peak_bytes": 0, "error": tail}, proc.stderr, seconds


# ------------------------------------------------------------------------------- main
def main() -> None:
    if "--child" in sys.argv:
        rest = sys.argv[sys.argv.index("--child") + 1:]
        if rest[0] == "imports":
            child_imports()
        elif rest[0] == "eager":
            child_eager(*rest[1:])
        else:
            child_train(rest)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where the daily files are (generated if "
                                                    "missing); default: a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--n", type=int, default=2000, help="grid points along lat and lon")
    parser.add_argument("--days", type=int, default=280, help="daily files")
    parser.add_argument("--region", default="-30,-20,5,15", help="lon0,lon1,lat0,lat1")
    parser.add_argument("--period", default="2012-02-01,2012-06-30", help="START,END")
    parser.add_argument("--model", default="unet", help="model of the run (unet or oi)")
    parser.add_argument("--eager", action="store_true",
                        help="also measure the eager alternative (needs ~2x the size on disk)")
    args = parser.parse_args()

    tmp = None
    if args.dir:
        folder = Path(args.dir)
        existed = folder.exists() and any(folder.glob("*.nc"))
    else:
        tmp = tempfile.mkdtemp(prefix="oceanlab-bigdata-")
        folder, existed = Path(tmp) / "daily", False
    try:
        gen_s = generate(folder, args.n, args.days)
        on_disk = _size_on_disk(folder)
        n_files = len(list(folder.glob("*.nc")))
        print(f"data: {n_files} daily files of {args.n} x {args.n} float32 in {folder}: "
              f"{on_disk / 1e9:.2f} GB on disk ({on_disk / GB:.2f} GiB), generated in "
              f"{gen_s:.0f} s")

        base, _, _ = _child(["imports"])
        base_gb = base["peak_bytes"] / GB
        print(f"baseline (imports only): peak RSS {base_gb:.2f} GiB")

        work = folder.parent / f"{folder.name}-bench-ws"
        shutil.rmtree(work, ignore_errors=True)
        runs = work / "runs"
        extra = (["--epochs", "1", "--set", "train.steps_per_epoch=4",
                  "--set", "train.batch_size=4"] if args.model == "unet" else [])
        argv = ["train", "--model", args.model, "--data", str(folder),
                f"--region={args.region}", "--period", args.period, "--runs-dir", str(runs),
                "--json", "--force", *extra]
        result, err, seconds, stages = _train_child(
            argv, {"OCEANLAB_HOME": str(work / "ws"), "OMP_NUM_THREADS": "2"}, runs)
        info_files = list(runs.glob("*/run.json"))
        info = json.loads(info_files[0].read_text()) if info_files else {}
        peak_gb = result["peak_bytes"] / GB
        timings = info.get("timings") or {}
        status = info.get("status", f"exit {result.get('exit')}")
        pred_shape = None
        if status == "done":
            with xr.open_dataset(info_files[0].parent / "prediction.nc") as pred:
                pred_shape = dict(pred.sizes)
        estimate = sum(((info.get("memory") or {}).get("estimate_bytes") or {}).values())
        print(f"run: python -m app {' '.join(argv[:1] + argv[1:9])} ...")
        print(f"  status {status}" + (f": {info.get('error')}" if info.get("error") else "")
              + (f" ({result.get('error')})" if result.get("error") else ""))
        print(f"  cut: region {args.region}, period {args.period}; prediction grid "
              f"{pred_shape}")
        print(f"  time: {seconds:.1f} s wall (load {timings.get('load_s')} s, fit "
              f"{timings.get('fit_s')} s, total in run {timings.get('total_s')} s)")
        print(f"  peak_rss_gb {peak_gb:.2f} GiB (over baseline {peak_gb - base_gb:.2f}); "
              f"on_disk_gb {on_disk / GB:.2f} GiB; ratio peak/2GB {peak_gb / BUDGET_GB:.2f}; "
              f"ratio on_disk/peak {on_disk / GB / max(peak_gb, 1e-9):.1f}; OceanLab's "
              f"estimate {estimate / GB:.2f} GiB")
        print("  polled RSS by stage (GiB): " + ", ".join(
            f"{k} {v / GB:.2f}" for k, v in stages.items()))
        verdict = "PASS" if status == "done" and peak_gb < BUDGET_GB else "FAIL"
        print(f"  {verdict}: peak {'<' if peak_gb < BUDGET_GB else '>='} {BUDGET_GB:g} GiB")
        if status != "done" and err:
            print("  child stderr tail: " + " | ".join(err.strip().splitlines()[-3:]))

        need = 2 * on_disk / GB  # every file read, then joined (a second copy)
        if args.eager:
            eager, _, eager_s = _child(["eager", str(folder), args.region, args.period])
            print(f"eager reference (load every file, join, then cut): peak RSS "
                  f"{eager['peak_bytes'] / GB:.2f} GiB in {eager_s:.0f} s, cut shape "
                  f"{eager.get('shape')} {eager.get('error', '')}".rstrip())
        else:
            print(f"eager reference (load every file, join, then cut): would need about "
                  f"{need:.1f} GiB ({on_disk / GB:.1f} GiB of files plus the joined copy); "
                  f"run with --eager to measure it")
        shutil.rmtree(work, ignore_errors=True)
    finally:
        if not args.keep and not existed:
            shutil.rmtree(tmp or folder, ignore_errors=True)


if __name__ == "__main__":
    main()
