"""``python -m app export RUN_ID… --out FILE.zip`` and ``python -m app import FILE.zip``:
move ended runs between workspaces (see :mod:`backend.share` for the archive, what is left
out, and what an import refuses, skips and renames)."""

from __future__ import annotations

import json
from pathlib import Path


def _runs_root(cli, args, create: bool) -> Path:
    from backend import paths

    root = paths.runs_dir(args.runs_dir)
    label = "--runs-dir" if args.runs_dir else "runs folder"
    if create:
        return cli._writable_dir(root, label)
    if root.exists() and not root.is_dir():
        from oceanlab_errors import RunError

        raise RunError(f"{label} {root}: is a file, expected a folder")
    return root


def _cmd_export(args, cli) -> int:
    from backend.share import export_runs
    from backend.store import RunStore

    out = Path(args.out).expanduser()
    if out.is_dir():
        from oceanlab_errors import RunError

        raise RunError(f"--out {out}: is a folder, expected a file name such as runs.zip")
    cli._writable_dir(out.parent if str(out.parent) else Path("."), "--out", target=out)
    result = export_runs(RunStore(_runs_root(cli, args, create=False)), args.run_ids, out,
                         with_checkpoints=args.with_checkpoints)
    if args.json:
        print(json.dumps({"archive": str(result.archive), "bytes": result.bytes,
                          "runs": [{"run_id": r["id"], "status": r["status"],
                                    "files": len(r["files"])} for r in result.runs]}))
    else:
        n_files = sum(len(r["files"]) for r in result.runs)
        print(f"exported {len(result.runs)} run{'s' if len(result.runs) != 1 else ''} "
              f"({n_files} files, {result.bytes / 1024 ** 2:.1f} MiB uncompressed) to "
              f"{result.archive}")
    return 0


def _cmd_import(args, cli) -> int:
    from backend.share import import_runs
    from backend.store import RunStore

    result = import_runs(RunStore(_runs_root(cli, args, create=True)), args.archive)
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    for item in result.imported:
        renamed = (f" (its id {item['original_id']} was taken)"
                   if item["run_id"] != item["original_id"] else "")
        print(f"imported {item['run_id']}{renamed}")
    for item in result.skipped:
        print(f"skipped {item['original_id']}: {item['reason']} ({item['run_id']})")
    if not result.imported and not result.skipped:  # pragma: no cover (a manifest lists runs)
        print("nothing to import")
    return 0


def add(sub, cli) -> None:
    e = sub.add_parser("export", help="write ended runs (predictions, scores, configs) to one "
                                      "zip file to share with another workspace")
    e.add_argument("run_ids", nargs="+", type=cli._nonempty, metavar="RUN_ID")
    e.add_argument("--out", type=cli._nonempty, required=True, metavar="FILE.zip",
                   help="the archive to write (replaced if it exists)")
    e.add_argument("--runs-dir", type=cli._nonempty,
                   help="run store folder (default: $OCEANLAB_HOME/runs)")
    e.add_argument("--with-checkpoints", action="store_true",
                   help="include Lightning's checkpoints/ (left out by default: the run's "
                        "weights are in model.safetensors)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=lambda args: _cmd_export(args, cli))

    i = sub.add_parser("import", help="add the runs of an exported zip file to the run store "
                                      "(never overwrites: an identical run is skipped, an "
                                      "id already taken gets a new id)")
    i.add_argument("archive", type=cli._nonempty, metavar="FILE.zip")
    i.add_argument("--runs-dir", type=cli._nonempty,
                   help="run store folder (default: $OCEANLAB_HOME/runs)")
    i.add_argument("--json", action="store_true",
                   help='print {"imported": [{"run_id", "original_id"}], "skipped": […]}')
    i.set_defaults(func=lambda args: _cmd_import(args, cli))
