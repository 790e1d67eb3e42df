"""The command line: ``python -m app {generate,inspect,train,config,runs,dashboard}``.

Every command builds the same objects as the dashboard (an :class:`ExperimentConfig`, the
run store) and calls ``backend``. Bad input prints one line ``error: …`` on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from data.errors import OceanLabError


def _cmd_generate(args) -> int:
    from backend import paths
    from data.osse import generate_osse

    out = Path(args.out) if args.out else paths.builtin_dataset_path(args.seed)
    if args.if_missing and out.exists():
        print(out)
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    path = generate_osse(out, seed=args.seed, device=args.device)
    print(path)
    return 0


def _cmd_inspect(args) -> int:
    from data.canonical import open_dataset, summarize

    summary = summarize(open_dataset(args.file))
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    g, t = summary["grid"], summary["time"]
    print(f"file: {summary['path']}")
    print(f"grid: {g['n_lat']} lat x {g['n_lon']} lon, lat {g['lat_range'][0]:.3f}..{g['lat_range'][1]:.3f} "
          f"(step {g['dlat_deg']}), lon {g['lon_range'][0]:.3f}..{g['lon_range'][1]:.3f} (step {g['dlon_deg']})")
    print(f"time: {t['n_time']} steps, {t['start']} .. {t['end']}, step {t['step']}")
    print(f"ocean fraction: {summary['ocean_fraction']:.3f}")
    print("variables:")
    for name, v in summary["variables"].items():
        print(f"  {name}: dims {tuple(v['dims'])}, units {v['units']}, {v['long_name'] or ''}".rstrip(", "))
    return 0


def _config_from_args(args):
    from backend.config import build_config, load_yaml, parse_set

    base = load_yaml(args.config) if getattr(args, "config", None) else {}
    overrides = {}
    for flag, key in (("data", "data.path"), ("var", "data.var"), ("obs", "data.obs"),
                      ("epochs", "train.epochs"), ("seed", "train.seed"), ("device", "train.device")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    overrides.update(parse_set(getattr(args, "set", None) or []))
    model = args.model or (base.get("model") or {}).get("name") or "oi"
    task = args.task or (base.get("task") or {}).get("name") or "interpolation"
    return build_config(task=task, model=model, base=base, overrides=overrides)


def _cmd_config(args) -> int:
    print(_config_from_args(args).to_yaml(), end="")
    return 0


def _cmd_train(args) -> int:
    from backend import paths
    from backend.runner import execute
    from backend.store import RunStore

    config = _config_from_args(args)
    if config.data.path and not Path(config.data.path).exists() and not any(c in config.data.path for c in "*?["):
        raise OceanLabError(f"{config.data.path}: no such file")
    store = RunStore(paths.runs_dir(args.runs_dir))
    run = execute(config, store)
    info = run.info()
    metrics = run.metrics()
    if args.json:
        print(json.dumps({"run_id": run.id, "status": info["status"], "metrics": metrics,
                          "error": info.get("error")}, default=str))
    else:
        print(f"run {run.id}: {info['status']}  ({run.path})")
        for k, v in metrics.items():
            if not isinstance(v, dict):
                print(f"  {k:>16}: {v if v is None else f'{v:.4g}'}")
        for k, why in (metrics.get("notes") or {}).items():
            print(f"  {k:>16}: null ({why})")
    if info.get("error"):
        hint = f" (traceback in {run.path / 'run.json'})" if info.get("error_kind") == "internal" else ""
        print(f"error: {info['error']}{hint}", file=sys.stderr)
    if info["status"] == "done":
        return 0
    return 2 if info.get("error_kind") == "input" else 1


def _cmd_runs(args) -> int:
    from backend import paths
    from backend.store import RunStore

    table = RunStore(paths.runs_dir(args.runs_dir)).table()
    if args.json:
        print(table.to_json(orient="records"))
        return 0
    if table.empty:
        print("no runs yet")
        return 0
    cols = [c for c in ("id", "status", "model", "rmse", "mu", "sigma", "lambda_x_deg", "lambda_t_days", "seconds")
            if c in table.columns]
    print(table[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    return 0


def _cmd_worker(args) -> int:
    """Run a queued run folder (used by the dashboard's job launcher)."""
    from backend.jobs import run_queued

    run_queued(Path(args.run_dir))
    return 0


def _cmd_dashboard(args) -> int:
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    # From the repository root so that .streamlit/config.toml (offline settings) is read.
    return subprocess.call([sys.executable, "-m", "streamlit", "run", str(repo / "app" / "Home.py"),
                            "--server.port", str(args.port), "--server.headless", "true"], cwd=repo)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app", description="OceanLab command line")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write the built-in OSSE NetCDF (QG truth + nadir tracks)")
    g.add_argument("--out", help="output path (default: $OCEANLAB_HOME/datasets/osse_gulfstream_seed<N>.nc)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    g.add_argument("--if-missing", action="store_true", help="do nothing when the file exists")
    g.set_defaults(func=_cmd_generate)

    i = sub.add_parser("inspect", help="describe a NetCDF file: variables, grid, time, ocean fraction")
    i.add_argument("file")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_cmd_inspect)

    def experiment_flags(sp, with_run_flags: bool):
        sp.add_argument("--task", default=None, help="interpolation")
        sp.add_argument("--model", default=None, help="registered model name (oi, unet)")
        sp.add_argument("--config", help="YAML file with data/task/model/train sections")
        sp.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", default=[],
                        help="override any config field, e.g. --set model.lt_days=7")
        if with_run_flags:
            sp.add_argument("--data", help="NetCDF file or glob (default: the built-in OSSE)")
            sp.add_argument("--var", help="variable to reconstruct")
            sp.add_argument("--obs", help="observation variable, or 'simulation'")
            sp.add_argument("--epochs", type=int)
            sp.add_argument("--seed", type=int)
            sp.add_argument("--device", choices=["auto", "cpu", "cuda"])
            sp.add_argument("--runs-dir", help="run store folder (default: $OCEANLAB_HOME/runs)")
            sp.add_argument("--json", action="store_true", help="print one JSON object")

    t = sub.add_parser("train", help="train/fit a model, predict the test period, score, save the run")
    experiment_flags(t, True)
    t.set_defaults(func=_cmd_train)

    c = sub.add_parser("config", help="print the default config of a task and model as YAML")
    experiment_flags(c, False)
    c.set_defaults(func=_cmd_config)

    r = sub.add_parser("runs", help="list saved runs with status and scores")
    r.add_argument("--runs-dir")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_cmd_runs)

    w = sub.add_parser("worker", help=argparse.SUPPRESS)
    w.add_argument("run_dir")
    w.set_defaults(func=_cmd_worker)

    d = sub.add_parser("dashboard", help="start the Streamlit dashboard")
    d.add_argument("--port", type=int, default=8501)
    d.set_defaults(func=_cmd_dashboard)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except OceanLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
