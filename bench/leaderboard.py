"""The README's leaderboard on the built-in OSSE, reproduced with ``python -m app`` commands.

For each observing setting (4 nadirs; 4 nadirs + SWOT) and each row (the OI with the data
challenge's parameters, the OI tuned on the validation period, the UNet, the UNet with the
SST channel) it runs the printed command once per seed, reads the run's ``metrics.json``
and ``run.json``, and prints a Markdown table: mean ± spread (population standard
deviation over the seeds) of ``mu``, ``mu_anomaly``, σ, λx, λt, the RMSE of currents and the
physics residual (computed from ``prediction.nc`` for runs older than that score),
the learned rows' RMSE and λx as a ratio to the tuned OI's (ratios measured per seed), and
the wall time per run on this machine. The OI has no random choice: it runs once and its
spread is 0.

Usage::

    python bench/leaderboard.py [--seeds 0 1 2] [--trials 20] [--runs-dir DIR]
                                [--settings nadir swot] [--rows oi-challenge oi-tuned unet unet-sst]
                                [--out leaderboard.md]

Runs already in ``--runs-dir`` with the same command line are reused (``commands.json``
there maps each command to its run id), so an interrupted leaderboard resumes.
"""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SETTINGS = {
    "nadir": ("4 nadirs", []),
    "swot": ("4 nadirs + SWOT", ["--set", "data.obs=[ssh_obs,ssh_obs_swot]"]),
}
#: row key -> (label, command words after ``python -m app``, seeded)
ROWS = {
    "oi-challenge": ("OI, challenge parameters",
                     ["train", "--model", "oi", "--set", "model.lx_deg=1", "--set",
                      "model.ly_deg=1", "--set", "model.lt_days=7", "--set", "model.noise=0.05"],
                     False),
    "oi-tuned": ("OI, tuned on validation", ["tune", "--model", "oi"], False),
    "unet": ("UNet", ["train", "--model", "unet"], True),
    "unet-sst": ("UNet + SST", ["train", "--model", "unet", "--set", "data.aux=sst"], True),
    # the 4-nadir tuned OI's parameters (tune's best_params) as the first guess; observations
    # are not resampled (the first guess is made from the real ones)
    "unet-oi": ("UNet + tuned-OI first guess",
                ["train", "--model", "unet", "--set", "model.first_guess=oi", "--set",
                 "model.first_guess_params={lx_deg: 0.56, ly_deg: 0.427, lt_days: 4.56, "
                 "noise: 0.58}", "--set", "train.resample_obs=0"], True),
    "eof": ("DINEOF (eof)", ["train", "--model", "eof"], True),
    "autoencoder": ("Autoencoder", ["train", "--model", "autoencoder"], True),
    "pinn": ("PINN (QG residual)", ["train", "--model", "pinn"], True),
}
COLUMNS = ("mu", "mu_anomaly", "sigma", "lambda_x_deg", "lambda_t_days", "rmse", "rmse_u",
           "rmse_v", "physics_residual", "physics_residual_truth")


@functools.cache
def _builtin_physics():
    """The built-in OSSE's QG constants (read once)."""
    import xarray as xr

    from backend.paths import builtin_dataset_path
    from data.physics import resolve_physics

    with xr.open_dataset(builtin_dataset_path()) as ds:
        return resolve_physics(ds.attrs)


def physics_of(run_dir: Path) -> dict:
    """``physics_residual`` and ``physics_residual_truth`` of a saved prediction, with the
    built-in OSSE's QG constants (for runs made before the runner reported them)."""
    import xarray as xr

    from metrics.physics import score_physics

    physics, note = _builtin_physics()
    with xr.open_dataset(run_dir / "prediction.nc") as pred:
        name = pred.attrs.get("oceanlab_reconstruction_var", "ssh")
        scores, _ = score_physics(pred[name].load(), pred["truth"].load(), physics,
                                  pred["mask"].astype(bool).load(), note=note)
    return scores


def run(words: list[str], runs_dir: Path, memo: dict) -> dict:
    """Run ``python -m app WORDS --json`` (or reuse the run made by the same words)."""
    key = shlex.join(words)
    if key in memo and (runs_dir / memo[key] / "metrics.json").exists():
        rid = memo[key]
    else:
        tick = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "app", *words, "--runs-dir", str(runs_dir),
                              "--json"], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"failed ({out.returncode}): python -m app {key}\n{out.stderr}")
        rid = json.loads(out.stdout.strip().splitlines()[-1])["run_id"]
        memo[key] = rid
        path = runs_dir / "commands.json"  # merged: another leaderboard may share the folder
        saved = json.loads(path.read_text()) if path.exists() else {}
        memo.update({k: v for k, v in saved.items() if k not in memo})
        path.write_text(json.dumps(memo, indent=1))
        print(f"# {time.perf_counter() - tick:6.0f} s  python -m app {key}", file=sys.stderr)
    info = json.loads((runs_dir / rid / "run.json").read_text())
    metrics = json.loads((runs_dir / rid / "metrics.json").read_text())
    if "physics_residual" not in metrics:  # a run made before the score existed
        metrics.update(physics_of(runs_dir / rid))
    seconds = float(info.get("timings", {}).get("total_s", np.nan))
    tuning = runs_dir / rid / "tuning.json"
    if tuning.exists():  # the search is part of the cost of the tuned row
        seconds += float(json.loads(tuning.read_text()).get("total_s", 0.0))
    return {"id": rid, "seconds": seconds, **{k: metrics.get(k) for k in COLUMNS}}


def _fmt(values: list[float], digits: int = 3) -> str:
    v = np.asarray([np.nan if x is None else x for x in values], dtype=float)
    if v.size == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}"


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--runs-dir", default="workspace/leaderboard")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--out", help="also write the table to this Markdown file")
    args = p.parse_args(argv)
    runs_dir = Path(args.runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    memo_path = runs_dir / "commands.json"
    memo = json.loads(memo_path.read_text()) if memo_path.exists() else {}

    lines = []
    for setting in args.settings:
        title, extra = SETTINGS[setting]
        results: dict[str, list[dict]] = {}
        commands: dict[str, str] = {}
        for row in args.rows:
            label, words, seeded = ROWS[row]
            words = [*words, *extra]
            if words[0] == "tune":
                words += ["--trials", str(args.trials)]
            seeds = args.seeds if seeded else [0]
            results[row] = [run([*words, "--seed", str(s)] if seeded else words, runs_dir, memo)
                            for s in seeds]
            commands[row] = "python -m app " + shlex.join(
                [*words, "--seed", "S"] if seeded else words)
        lines += [f"### {title}", "",
                  "| method | µ | µ anomaly | σ | λx (°) | λt (days) | RMSE (m) | RMSE u, v (m/s) "
                  "| PV residual | RMSE / tuned OI | λx / tuned OI | time per run |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        ref = results.get("oi-tuned", [None])[0]
        for row, res in results.items():
            col = {k: [r[k] for r in res] for k in (*COLUMNS, "seconds")}
            if ref is not None and ROWS[row][2]:
                ratio_rmse = _fmt([r["rmse"] / ref["rmse"] for r in res], 2)
                ratio_lx = _fmt([r["lambda_x_deg"] / ref["lambda_x_deg"] for r in res], 2)
            else:
                ratio_rmse = ratio_lx = "1" if row == "oi-tuned" else "—"
            uv = f"{_fmt(col['rmse_u'])}, {_fmt(col['rmse_v'])}"
            lines.append(
                f"| {ROWS[row][0]} | {_fmt(col['mu'])} | {_fmt(col['mu_anomaly'])} | "
                f"{_fmt(col['sigma'])} | {_fmt(col['lambda_x_deg'], 2)} | "
                f"{_fmt(col['lambda_t_days'], 1)} | {_fmt(col['rmse'], 4)} | {uv} | "
                f"{_fmt(col['physics_residual'], 2)} | {ratio_rmse} "
                f"| {ratio_lx} | {_minutes(np.nanmean(col['seconds']))} |")
        floor = [r["physics_residual_truth"] for res in results.values() for r in res
                 if r.get("physics_residual_truth") is not None]
        lines += ["", f"PV residual: RMS of the QG potential-vorticity equation's residual over "
                      f"RMS of its advection term, on the daily grid (lower is more "
                      f"dynamically consistent); the truth's over the same days, the floor, "
                      f"is {np.mean(floor):.2f}." if floor else ""]
        lines += ["", "Commands (S = 0, 1, 2 for the learned rows):", ""]
        lines += [f"- {ROWS[row][0]}: `{cmd}`" for row, cmd in commands.items()]
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
