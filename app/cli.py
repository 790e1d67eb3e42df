"""The command line: ``python -m app {generate,inspect,train,submit,tune,config,runs,cancel,dashboard}``.

Every command builds the same objects as the dashboard (an :class:`ExperimentConfig`, the
run store) and calls ``backend``.

Exit codes and what reaches the terminal:

* ``0`` done;
* ``2`` bad input of any kind: a flag argparse refuses, a config value out of range or of the
  wrong type, a file or folder that cannot be read or written. stderr holds exactly one line
  ``error: …`` naming the flag, file or setting and what is valid;
* ``1`` a bug: one line ``internal error: <Type>: <message> (details in FILE)``, the full
  traceback in ``FILE`` (``$OCEANLAB_HOME/logs/cli-*.log``, or the temporary folder when the
  workspace cannot be written); a failed run's own traceback stays in its ``run.json``;
* ``130`` interrupted (Ctrl-C): one line ``interrupted``.

No traceback reaches the terminal.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import shlex
import signal
import sys
import tempfile
import traceback
from datetime import datetime
from pathlib import Path

from oceanlab_errors import ConfigError, DataError, OceanLabError, RunError

COMMANDS = ("generate", "inspect", "train", "submit", "tune", "config", "runs", "cancel",
            "compare", "report", "evaluate", "export", "import", "animate", "dashboard")
#: Modules of ``app/commands/`` whose ``add(subparsers, cli)`` adds commands (issue 10: runs
#: compared, evaluated, shared and reported).
EXTRA_COMMANDS: tuple[str, ...] = ("compare", "evaluate", "share", "animate", "label")
#: ``train``/``config`` flags that are shortcuts for a config field.
FLAG_FIELDS = (("data", "data.path"), ("region", "data.region"), ("period", "data.period"),
               ("var", "data.var"), ("obs", "data.obs"),
               ("epochs", "train.epochs"), ("seed", "train.seed"), ("device", "train.device"),
               ("executor", "backend.executor"), ("scheduler", "backend.scheduler"))


# -- one line on stderr ----------------------------------------------------------------------
def _one_line(text: object) -> str:
    """``text`` on one line: line breaks written as ``\\n`` (a user value may hold one)."""
    return str(text).strip().replace("\r", "\\r").replace("\n", "\\n")


def _say(line: str) -> None:
    try:
        print(_one_line(line), file=sys.stderr)
    except (OSError, ValueError):  # stderr closed: nothing more to do
        pass


def _os_error_text(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else None
    what = exc.strerror or type(exc).__name__
    if where is None:
        return f"{what}" + (f" ({exc})" if str(exc) and str(exc) != what else "")
    return f"{where}: {what}"


# -- argparse, with one-line errors --------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line ``error: …`` and exit 2 (``--help`` unchanged)."""

    def error(self, message: str):
        if "required: command" in message:
            message += f" (one of: {', '.join(COMMANDS)}; see 'python -m app --help')"
        self.exit(2, f"error: {_one_line(message)}\n")


def _nonempty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty (leave the flag out for the default)")
    if "\x00" in text:
        raise argparse.ArgumentTypeError("must not contain a NUL character")
    return text


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1 (got {text!r})")
    return value


def _grid_values(text: str) -> tuple[str, list]:
    """``FIELD=V1,V2,…`` → ``(FIELD, [V1, V2, …])``, values read as YAML scalars like --set
    (``model.`` before the field is allowed)."""
    from backend.config import _yaml_scalar

    key, sep, values = text.partition("=")
    key = key.strip().removeprefix("model.")
    items = [v.strip() for v in values.split(",")]
    if not sep or not key or not values.strip() or not all(items):
        raise argparse.ArgumentTypeError(f"expected FIELD=V1,V2,… (got {text!r})")
    return key, [_yaml_scalar(v) for v in items]


def _seed(text: str) -> int:
    from backend.config import SEED_MAX

    value = _int(text)
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(
            f"a seed is an integer from 0 to 2**63-1 = {SEED_MAX} (got {text!r})")
    return value


def _metres(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of metres") from None
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number >= 0 (metres)")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a fraction from 0 to below 1")
    return value


def _port(text: str) -> int:
    value = _int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is an integer from 1 to 65535 (got {text!r})")
    return value


# -- checks of files and folders before anything is written -----------------------------------
def _writable_dir(path: Path, what: str, error: type[OceanLabError] = RunError,
                  target: Path | None = None) -> Path:
    """Create ``path`` (and its parents) if needed and check a file can be written in it.

    ``what`` names the flag or folder in messages; ``target`` is the file to be written in
    ``path`` when the flag names that file (``--out``).
    """
    if target is not None:
        label, folder = f"{what} {target}", f"its folder {path}"
    else:
        label = f"{what} {path}" if what.startswith("--") else f"{what} ({path})"
        folder = "this folder"
    try:
        if path.exists() and not path.is_dir():
            raise error(f"{label}: {'is a file' if target is None else folder + ' is a file'}, "
                        f"expected a folder")
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"{label}: cannot create {folder} ({exc.strerror or exc})") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".oceanlab-write-test-", dir=path)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise error(f"{label}: cannot write in {folder} ({exc.strerror or exc})") from None
    return path


def _check_data_file(text: str) -> None:
    """A data file given by path (not a glob) must exist, be a file and be readable; a
    directory must hold NetCDF files or be a Zarr store (checked like the loader does)."""
    if any(c in text for c in "*?["):
        return  # a glob: the loader says when nothing matches
    p = Path(text)
    try:
        if not p.exists():
            raise DataError(f"{text}: no such file")
        if p.is_dir():
            from data.canonical import _expand_paths

            _expand_paths(p)  # DataError unless *.nc files inside or a Zarr store
            return
        if not p.is_file():
            raise DataError(f"{text}: not a regular file, expected a NetCDF file")
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise DataError(f"{text}: cannot read this file ({exc.strerror or exc})") from None


# -- commands --------------------------------------------------------------------------------
def _cmd_generate(args) -> int:
    from backend import paths
    from data.osse import generate_osse

    out = Path(args.out).expanduser() if args.out is not None else paths.builtin_dataset_path(args.seed)
    if out.is_dir():
        raise DataError(f"--out {out}: is a directory; give a file name such as {out / 'osse.nc'}")
    if out.exists() and not out.is_file():
        raise DataError(f"--out {out}: exists and is not a regular file; give a file name")
    if args.if_missing and out.exists():
        # a built-in file made by an older recipe is outdated, not present
        if args.out is not None or paths.builtin_is_current(out):
            print(out)
            return 0
    if args.out is not None:
        _writable_dir(out.parent, "--out", DataError, target=out)
    else:
        _writable_dir(out.parent, "datasets folder", DataError)
    path = generate_osse(out, seed=args.seed, device=args.device, noise_std=args.noise,
                         swot=not args.no_swot, swot_noise_std=args.swot_noise,
                         sst=not args.no_sst, cloud_cover=args.cloud_cover)
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
    print(f"time: {t['n_time']} steps, {t['start']} .. {t['end']}, step {t.get('step_text') or t['step']}")
    print(f"ocean fraction: {summary['ocean_fraction']:.3f}")
    print("variables:")
    for name, v in summary["variables"].items():
        print(f"  {name}: dims {tuple(v['dims'])}, units {v['units']}, {v['long_name'] or ''}".rstrip(", "))
    return 0


def _agreed_name(section: str, flag: object, sets: dict, base: dict, config_path: str | None,
                 default: str) -> object:
    """The task or model name, which the flag, ``--set`` and the config file must agree on."""
    sources: list[tuple[str, object]] = []
    if flag is not None:
        sources.append((f"--{section} {flag}", flag))
    key = f"{section}.name"
    if key in sets:
        sources.append((f"--set {key}={sets[key]}", sets[key]))
    if "name" in base.get(section, {}):
        value = base[section]["name"]
        sources.append((f"{key}: {value} in {config_path}", value))
    for label, value in sources[1:]:
        if value != sources[0][1]:
            raise ConfigError(f"{sources[0][0]} contradicts {label}; give the {section} once")
    return sources[0][1] if sources else default


def _config_from_args(args):
    """The config of ``train``/``config``: the ``--config`` file, then the flags and ``--set``.

    A flag and a ``--set`` of the same field must agree, and so must the model (task) name
    wherever it is given (``--model``, ``--set model.name``, the file); the first
    contradiction is a ConfigError naming both.
    """
    from backend.config import build_config, load_yaml, parse_set

    config_path = getattr(args, "config", None)
    base = load_yaml(config_path) if config_path is not None else {}
    sets = parse_set(getattr(args, "set", None) or [])
    overrides = {}
    for flag, key in FLAG_FIELDS:
        value = getattr(args, flag, None)
        if value is None:
            continue
        if key in sets and sets[key] != value:
            raise ConfigError(f"--{flag} {value} contradicts --set {key}={sets[key]}; give it once")
        overrides[key] = value
    overrides.update(sets)
    model = _agreed_name("model", args.model, sets, base, config_path, "oi")
    task = _agreed_name("task", args.task, sets, base, config_path, "interpolation")
    return build_config(task=task, model=model, base=base, overrides=overrides)


def _cmd_config(args) -> int:
    print(_config_from_args(args).to_yaml(), end="")
    return 0


def _check_executor(config) -> None:
    if config.backend.executor == "dask" and not config.backend.scheduler:
        raise ConfigError("--executor dask needs --scheduler tcp://host:8786 (the address of "
                          "the Dask scheduler), or backend.scheduler in the config")
    if config.backend.executor == "local" and config.backend.scheduler:
        raise ConfigError(f"--scheduler {config.backend.scheduler} is for --executor dask; "
                          f"add --executor dask or leave --scheduler out")


def _cmd_train(args) -> int:
    """Run the experiment in this process (``--executor dask``: on the cluster, waiting for
    its end) and print its scores. An identical finished run is returned instead, unless
    ``--force``."""
    from backend import jobs
    from backend.runner import execute
    from backend.store import RunStore

    # Everything that can be refused is checked before the run folder exists.
    config = _config_from_args(args)
    _check_executor(config)
    labels = _labels(args)
    root = _checked_runs_root(config, args)
    store = RunStore(root)
    if not args.force:
        done = jobs.find_reusable(config, store)
        if done is not None:
            return _report_run(done, args, extra={"reused": True},
                               header=f"reused the finished run {done.id} (same task, model, "
                                      f"parameters, data, seed and code; --force runs again)")
    if config.backend.executor == "dask":
        from backend.executors import connect, dask_run

        connect(config.backend.scheduler).close()  # refuse an unreachable cluster up front
        run = store.create(config.to_dict(), status="queued")
        run.update(queued_unix=__import__("time").time(), executor="dask", **labels)
        dask_run(run.path, config.backend.scheduler)
        return _report_run(run, args, extra={"reused": False})
    run = store.create(config.to_dict(), status="queued")
    if labels:
        run.update(**labels)
    run = execute(config, store, run=run)
    return _report_run(run, args, extra={"reused": False})


def _labels(args) -> dict:
    """``name`` and ``tags`` of a new run from ``--name``/``--tag``, checked (RunError)."""
    from backend.store import check_name, check_tag

    out: dict = {}
    name = check_name(getattr(args, "name", None))
    if name:
        out["name"] = name
    tags = list(dict.fromkeys(check_tag(t) for t in getattr(args, "tag", None) or []))
    if tags:
        out["tags"] = tags
    return out


def _cmd_submit(args) -> int:
    """Queue the experiment and return its run id at once (see :mod:`backend.jobs`)."""
    from backend import jobs
    from backend.store import RunStore

    config = _config_from_args(args)
    _check_executor(config)
    root = _checked_runs_root(config, args)
    if config.backend.executor == "dask":
        from backend.executors import connect

        connect(config.backend.scheduler).close()
    sub = jobs.submit(config, RunStore(root), force=args.force, labels=_labels(args))
    status = sub.status
    if args.json:
        print(json.dumps({"run_id": sub.run.id, "status": status, "reused": sub.reused,
                          "position": sub.position, "path": str(sub.run.path)}))
    elif sub.reused:
        print(f"{sub.run.id}: done (reused: an identical run has finished; --force runs again)")
    elif sub.position is not None:
        print(f"{sub.run.id}: {status}, position {sub.position} in the queue")
    else:
        print(f"{sub.run.id}: {status}")
    return 0


def _checked_runs_root(config, args) -> Path:
    """The data file (or the built-in dataset's folder) and the runs folder of a command that
    makes a run, checked before anything runs; returns the runs folder."""
    from backend import paths

    if config.data.path:
        _check_data_file(config.data.path)
    from data.alongtrack import check_track_files

    check_track_files(config.data.obs)  # along-track files given as --obs: they exist
    if not config.data.path and not paths.builtin_dataset_path().exists():
        _writable_dir(paths.datasets_dir(), "datasets folder", DataError)
    return _writable_dir(paths.runs_dir(args.runs_dir),
                         "--runs-dir" if args.runs_dir else "runs folder")


def _report_run(run, args, extra: dict | None = None, header: str | None = None) -> int:
    """Print a finished run (``--json``: one object, with ``extra`` keys; else ``header`` then
    its scores), say its error in one line, and return the exit code: 0 done, 128 + signal
    cancelled, 2 bad input, 1 internal error."""
    info = run.info()
    metrics = run.metrics()
    if args.json:
        print(json.dumps({"run_id": run.id, "status": info["status"], "metrics": metrics,
                          **(extra or {}), "error": info.get("error")}, default=str))
    else:
        if header:
            print(header)
        print(f"run {run.id}: {info['status']}  ({run.path})")
        notes = metrics.get("notes") if isinstance(metrics.get("notes"), dict) else {}
        for k, v in metrics.items():
            if isinstance(v, dict | list) or (v is None and k in notes):
                continue  # notes are printed below; per-lead lists are in metrics.json
            text = f"{v:.4g}" if isinstance(v, int | float) and not isinstance(v, bool) else v
            print(f"  {k:>16}: {text}")
        for k, why in notes.items():
            print(f"  {k:>16}: null ({why})")
    if info.get("error"):
        if info.get("error_kind") == "internal":
            _say(f"internal error: {info['error']} (details in {run.path / 'run.json'})")
        else:
            _say(f"error: {info['error']}")
    if info["status"] == "done":
        return 0
    if info["status"] == "cancelled":  # stopped by a signal: the shell's 128 + signal number
        return 128 + (signal.SIGTERM if "SIGTERM" in str(info.get("error")) else signal.SIGINT)
    return 2 if info.get("error_kind") == "input" else 1


def _cmd_tune(args) -> int:
    """Search the model's parameters on the validation period (Optuna), then run the best
    as an ordinary run with its study in ``tuning.json``/``tuning.csv`` (see
    :mod:`backend.tuning`). Output and exit codes as ``train``."""
    from backend.store import RunStore
    from backend.tuning import DEFAULT_TRIALS, check_grid, check_search_space, metric_direction, tune

    # Everything that can be refused is checked before any trial runs.
    config = _config_from_args(args)
    metric_direction(args.metric)
    grid = None
    if args.grid:
        grid = {}
        for key, values in args.grid:
            if key in grid:
                raise ConfigError(f"--grid {key}: given twice; list all its values in one --grid")
            grid[key] = values
        check_grid(config, grid)
    else:
        check_search_space(config)
    root = _checked_runs_root(config, args)
    trials = args.trials if args.trials is not None or grid else DEFAULT_TRIALS
    result = tune(config, RunStore(root), n_trials=trials, metric=args.metric,
                  timeout=args.timeout, grid=grid)
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in result.best_params.items())
    return _report_run(
        result.run, args,
        extra={"best_params": result.best_params, "best_value": result.best_value,
               "metric": result.metric, "direction": result.direction,
               "n_trials": result.n_trials, "n_failed": result.n_failed},
        header=(f"tuned {config.model.name}: {result.n_trials} trials ({result.n_failed} "
                f"failed), best validation {result.metric} = {result.best_value:.4g} with "
                f"{params}"))


def _cmd_runs(args) -> int:
    from backend import paths
    from backend.store import RunStore

    root = paths.runs_dir(args.runs_dir)
    label = f"--runs-dir {root}" if args.runs_dir else f"runs folder ({root})"
    if root.exists() and not root.is_dir():
        raise RunError(f"{label}: is a file, expected a folder")
    try:
        table = RunStore(root).table()
    except OSError as exc:
        raise RunError(f"{label}: cannot read ({_os_error_text(exc)})") from None
    if not table.empty:
        from backend.jobs import queue_positions

        positions = queue_positions(RunStore(root))  # 1 = next to start
        table.insert(2, "position", [positions.get(i) for i in table["id"]])
        table["position"] = table["position"].astype("Int64")
    if args.tag and not table.empty:
        wanted = set(args.tag)
        table = table[[bool(wanted & {t.strip() for t in str(v).split(",")})
                       if isinstance(v, str) else False
                       for v in table.get("tags", [None] * len(table))]]
    if args.json:
        print(table.to_json(orient="records"))
        return 0
    if table.empty:
        print("no runs yet" if not args.tag else "no run has these tags")
        return 0
    cols = ["id", "name", "status", "position", "task", "model", "tags",
            *_headline_columns(table), "seconds"]
    if table["position"].isna().all():
        cols.remove("position")
    cols = [c for c in cols if c in table.columns]
    print(table[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    return 0


def _cmd_cancel(args) -> int:
    """Cancel a queued or running run (:func:`backend.jobs.cancel`: a queued run leaves the
    queue without starting; a running one's worker reads the request). Exit 0 when it was
    active (it ends ``cancelled``); 2 with one line for an unknown run or one already ended."""
    from backend import jobs, paths
    from backend.store import RunStore

    store = RunStore(paths.runs_dir(args.runs_dir))
    run = store.get(args.run_id)  # RunError (exit 2) naming the run and the store
    before = run.info().get("status")
    if not jobs.cancel(run):
        raise RunError(f"run {args.run_id} has already ended ({before}); nothing to cancel")
    status = run.info().get("status")
    if args.json:
        print(json.dumps({"run_id": run.id, "status": status, "was": before}))
    else:
        print(f"{run.id}: {before} → {status}" + ("" if status == "cancelled" else
              " (cancel requested; the worker records it when it stops)"))
    return 0


def _headline_columns(table) -> list[str]:
    """Score columns of the ``runs`` table: the union of the headline scores of the tasks in
    it (each task class's ``headline_scores``; a run without a task name is an interpolation
    run), in :data:`metrics.scores.SCORES` order. Per-lead lists are not columns."""
    from data.tasks import get_task
    from data.tasks.base import Task
    from metrics.scores import SCORES

    readable = table[table["status"] != "unreadable"] if "status" in table else table
    names = readable.get("task", [])
    keys: set[str] = set()
    for name in {n if isinstance(n, str) and n else "interpolation" for n in names}:
        try:
            keys.update(get_task(name).headline_scores)
        except ConfigError:  # a task registered by a plugin that is gone
            keys.update(Task.headline_scores)
    return [k for k in SCORES if k in keys] + sorted(keys - set(SCORES))


def _cmd_worker(args) -> int:
    """A slot worker (``--slot K``: executes queued runs until idle), or one queued run
    folder (``RUN_DIR``)."""
    from backend import jobs, paths

    if args.slot is not None:
        jobs.worker_loop(paths.runs_dir(args.runs_dir), args.slot, args.slots or 1)
        return 0
    if not args.run_dir:
        raise ConfigError("worker: give RUN_DIR or --slot K")
    jobs.run_queued(Path(args.run_dir))
    return 0


def _cmd_dashboard(args) -> int:
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    # Host names browsers may use (the DNS-rebinding guard); these flags replace the list of
    # .streamlit/config.toml, so the loopback names are repeated.
    allowed = [f"--server.allowedHosts={h}" for h in ("localhost", "127.0.0.1", "::1", *args.host)
               ] if args.host else []
    # From the repository root so that .streamlit/config.toml (offline settings) is read.
    return subprocess.call([sys.executable, "-m", "streamlit", "run", str(repo / "app" / "Home.py"),
                            "--server.port", str(args.port), "--server.address", args.address,
                            "--server.headless", "true", *allowed], cwd=repo)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m app", description="OceanLab command line")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write the built-in OSSE NetCDF (QG truth + nadir tracks)")
    g.add_argument("--out", type=_nonempty,
                   help="output path (default: $OCEANLAB_HOME/datasets/osse_gulfstream_seed<N>.nc)")
    g.add_argument("--seed", type=_seed, default=0, help="0 to 2**63-1")
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    g.add_argument("--if-missing", action="store_true",
                   help="do nothing when the file exists (a built-in file of an older recipe "
                        "is regenerated)")
    g.add_argument("--noise", type=_metres, default=0.02,
                   help="noise per nadir along-track sample (m; 0 = the data challenge's "
                        "noise-free setting)")
    g.add_argument("--swot-noise", type=_metres, default=0.02,
                   help="noise per SWOT swath pixel (m)")
    g.add_argument("--no-swot", action="store_true", help="leave out the SWOT-like swath")
    g.add_argument("--no-sst", action="store_true", help="leave out the SST tracer")
    g.add_argument("--cloud-cover", type=_fraction, default=0.0,
                   help="mean fraction of SST hidden by clouds each day (0 to below 1)")
    g.set_defaults(func=_cmd_generate)

    i = sub.add_parser("inspect", help="describe a NetCDF file: variables, grid, time, ocean fraction")
    i.add_argument("file", type=_nonempty)
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_cmd_inspect)

    def experiment_flags(sp, with_run_flags: bool):
        sp.add_argument("--task", type=_nonempty, default=None, help="a registered task (interpolation, forecast, downscaling, …); an "
                             "unknown name prints the valid ones")
        sp.add_argument("--model", type=_nonempty, default=None, help="a registered model valid for the task; an invalid one prints "
                             "the models of that task")
        sp.add_argument("--config", type=_nonempty, help="YAML file with data/task/model/train/limits sections")
        sp.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", default=[],
                        help="override any config field, e.g. --set model.lt_days=7")
        if with_run_flags:
            sp.add_argument("--data", type=_nonempty, help="NetCDF file, glob, directory of NetCDF files "
                                 "or Zarr store (default: the built-in OSSE)")
            sp.add_argument("--region", type=_nonempty, metavar="LON0,LON1,LAT0,LAT1",
                            help="keep only this box (degrees), cut before anything is loaded; "
                                 "lon0 > lon1 crosses the antimeridian")
            sp.add_argument("--period", type=_nonempty, metavar="START,END",
                            help="keep only these dates (END included), cut before anything is loaded")
            sp.add_argument("--var", type=_nonempty, help="variable to reconstruct")
            sp.add_argument("--obs", type=_nonempty, help="observation variable, 'simulation', or "
                            "along-track files PATH_OR_GLOB[:VARIABLE] (e.g. 'obs/*.nc:sla_unfiltered')")
            sp.add_argument("--epochs", type=_positive_int)
            sp.add_argument("--seed", type=_seed, help="0 to 2**63-1")
            sp.add_argument("--device", choices=["auto", "cpu", "cuda"])
            sp.add_argument("--runs-dir", type=_nonempty, help="run store folder (default: $OCEANLAB_HOME/runs)")
            sp.add_argument("--json", action="store_true", help="print one JSON object")

    def run_flags(sp):
        sp.add_argument("--force", action="store_true",
                        help="run even when an identical finished run exists (default: reuse it)")
        sp.add_argument("--executor", choices=["local", "dask"], default=None,
                        help="local worker processes (default) or a Dask cluster (--scheduler)")
        sp.add_argument("--scheduler", type=_nonempty, default=None, metavar="ADDRESS",
                        help="Dask scheduler address for --executor dask, e.g. tcp://host:8786")
        sp.add_argument("--name", default=None, metavar="NAME",
                        help="a name for the new run, shown beside its id")
        sp.add_argument("--tag", action="append", default=[], metavar="TAG",
                        help="a tag for the new run (repeatable)")

    t = sub.add_parser("train", help="train/fit a model, predict the test period, score, save the run")
    experiment_flags(t, True)
    run_flags(t)
    t.set_defaults(func=_cmd_train)

    su = sub.add_parser("submit", help="queue a run like train and print its id at once "
                                       "(follow it with runs, the dashboard; stop it with cancel)")
    experiment_flags(su, True)
    run_flags(su)
    su.set_defaults(func=_cmd_submit)

    def seconds(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid number of seconds: {text!r}") from None
        if not (value > 0 and value != float("inf")):
            raise argparse.ArgumentTypeError(f"must be a number of seconds > 0 (got {text!r})")
        return value

    tu = sub.add_parser("tune", help="search a model's parameters on the validation period "
                                     "(Optuna), then run the best like train")
    experiment_flags(tu, True)
    tu.add_argument("--trials", type=_positive_int, default=None,
                    help="number of trials (default 30; with --grid, the whole grid)")
    tu.add_argument("--grid", type=_grid_values, action="append", metavar="FIELD=V1,V2,…",
                    help="sweep these values of a model parameter instead of its search space "
                         "(repeatable: every combination once), e.g. --grid latent=8,32,128")
    tu.add_argument("--metric", type=_nonempty, default="rmse",
                    help="validation score to optimise (default rmse; lower-is-better scores are "
                         "minimised, higher-is-better ones such as mu maximised)")
    tu.add_argument("--timeout", type=seconds, default=None,
                    help="start no trial after this many seconds (the best so far is run)")
    tu.set_defaults(func=_cmd_tune)

    c = sub.add_parser("config", help="print the default config of a task and model as YAML")
    experiment_flags(c, False)
    c.set_defaults(func=_cmd_config)

    r = sub.add_parser("runs", help="list saved runs with status and scores")
    r.add_argument("--runs-dir", type=_nonempty)
    r.add_argument("--tag", action="append", default=[], metavar="TAG",
                   help="only runs with this tag (repeatable: any of them)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_cmd_runs)

    ca = sub.add_parser("cancel", help="cancel a queued or running run")
    ca.add_argument("run_id", type=_nonempty, metavar="RUN_ID")
    ca.add_argument("--runs-dir", type=_nonempty)
    ca.add_argument("--json", action="store_true", help="print run_id, status and was as JSON")
    ca.set_defaults(func=_cmd_cancel)

    w = sub.add_parser("worker", help=argparse.SUPPRESS)
    w.add_argument("run_dir", type=_nonempty, nargs="?")
    w.add_argument("--slot", type=_int, default=None)
    w.add_argument("--slots", type=_positive_int, default=None)
    w.add_argument("--runs-dir", type=_nonempty)
    w.set_defaults(func=_cmd_worker)

    for module in EXTRA_COMMANDS:  # commands kept in their own files (app/commands/)
        importlib.import_module(f"app.commands.{module}").add(sub, sys.modules[__name__])

    d = sub.add_parser("dashboard", help="start the Streamlit dashboard")
    d.add_argument("--port", type=_port, default=8501)
    d.add_argument("--address", type=_nonempty, default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1: this machine only; see the "
                        "README before opening it to a network)")
    d.add_argument("--host", action="append", default=[], type=_nonempty,
                   help="a host name browsers use to reach the dashboard (with --address "
                        "0.0.0.0); repeat for several; '*' accepts any")
    d.set_defaults(func=_cmd_dashboard)
    return p


# -- the entry point ---------------------------------------------------------------------------
def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


def write_crash_log(argv: list[str], exc: BaseException) -> Path | None:
    """Write the traceback of ``exc`` to ``$OCEANLAB_HOME/logs/cli-<time>-*.log`` (or the
    temporary folder when the workspace cannot be written); the file, or None."""
    text = (f"command: python -m app {shlex.join(argv)}\n"
            f"time: {datetime.now().isoformat(timespec='seconds')}\n"
            f"cwd: {os.getcwd()}\npython: {sys.version.split()[0]} ({sys.executable})\n\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folders = []
    try:
        from backend import paths

        folders.append(paths.home() / "logs")
    except Exception:  # the workspace itself is broken: the temporary folder still works
        pass
    folders.append(Path(tempfile.gettempdir()) / "oceanlab-logs")
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f"cli-{stamp}-", suffix=".log", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
                fh.write(text)
            return Path(name)
        except OSError:
            continue
    return None


def _silence_stdout() -> None:
    """After a broken pipe (``… | head``): send the rest of stdout nowhere, quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--region -60,-30,20,45`` as ``--region=-60,-30,20,45`` (argparse would read the
    value, which starts with a minus sign, as another flag)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if (argv[i] == "--region" and i + 1 < len(argv) and argv[i + 1][:1] == "-"
                and argv[i + 1][1:2] in tuple("0123456789.")):
            out.append(f"--region={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (see the module docstring)."""
    argv = _join_negative_values(list(sys.argv[1:] if argv is None else argv))
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help (0) or a one-line usage error (2)
            return _exit_code(exc)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        return args.func(args)
    except OceanLabError as exc:
        _say(f"error: {exc}")
        return 2
    except BrokenPipeError:
        _silence_stdout()
        return 1
    except OSError as exc:
        _say(f"error: {_os_error_text(exc)}")
        return 2
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except SystemExit:
        raise
    except BaseException as exc:  # a bug: one line here, the traceback in a log file
        log = write_crash_log(argv, exc)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        where = f"details in {log}" if log else "the traceback could not be saved"
        _say(f"internal error: {type(exc).__name__}{': ' + message if message else ''} ({where})")
        return 1
