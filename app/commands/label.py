"""``python -m app rename``, ``tag`` and ``delete``: name, tag and remove saved runs.

- ``rename RUN_ID NAME`` gives a run a name shown beside its id (``""`` removes it);
- ``tag RUN_ID… TAG… [--remove]`` adds (or removes) tags, which the Runs and Compare pages
  filter on; ``tag RUN_ID --list`` prints a run's tags;
- ``delete RUN_ID… --yes`` deletes run folders. Without ``--yes`` nothing is deleted: the
  command says what would be deleted and exits 2 (a script never deletes by accident). A
  queued or running run is refused (cancel it first).

All take ``--runs-dir DIR`` and ``--json``. Names and tags live in ``run.json`` (``name``,
``tags``, see :class:`backend.record.RunRecord`); nothing else of the run is touched.
"""

from __future__ import annotations

import json


def _store(cli, args):
    from backend import paths
    from backend.store import RunStore
    from oceanlab_errors import RunError

    root = paths.runs_dir(args.runs_dir)
    if not root.is_dir():
        label = f"--runs-dir {root}" if args.runs_dir else f"runs folder {root}"
        raise RunError(f"{label}: no run store here")
    return RunStore(root)


def _cmd_rename(args, cli) -> int:
    run = _store(cli, args).get(args.run_id)
    info = run.label(name=args.name)
    name = info.get("name")
    if args.json:
        print(json.dumps({"run_id": run.id, "name": name}))
    else:
        print(f"{run.id}: named {name!r}" if name else f"{run.id}: name removed")
    return 0


def _cmd_tag(args, cli) -> int:
    from backend.store import check_tag
    from oceanlab_errors import RunError

    store = _store(cli, args)
    # The run ids come first, then the tags: an argument naming a run of the store is a run.
    ids, tags = [], []
    for item in args.items:
        if not tags and (store.root / item / "run.json").is_file() and "/" not in item:
            ids.append(item)
        else:
            tags.append(item)
    if not ids:
        raise RunError(f"tag: {args.items[0]!r} is not a run of {store.root} "
                       "(python -m app runs lists them)")
    if not tags and not args.list:
        raise RunError("tag: name at least one tag after the run ids (or --list)")
    tags = [check_tag(t) for t in tags]  # every tag checked before any run changes
    runs = [store.get(i) for i in ids]
    out = []
    for run in runs:
        info = (run.label(remove=tags) if args.remove else run.label(add=tags)) if tags \
            else run.info()
        out.append({"run_id": run.id, "tags": list(info.get("tags") or [])})
    if args.json:
        print(json.dumps(out if len(out) > 1 else out[0]))
    else:
        for item in out:
            print(f"{item['run_id']}: tags {', '.join(item['tags']) or '(none)'}")
    return 0


def _cmd_delete(args, cli) -> int:
    from oceanlab_errors import RunError

    store = _store(cli, args)
    runs = [store.get(i) for i in dict.fromkeys(args.run_ids)]  # every id checked first
    if not args.yes:
        raise RunError(f"delete: would delete {len(runs)} run(s) ({', '.join(r.id for r in runs)})"
                       " with all their files; add --yes to delete")
    deleted, refused = [], []
    for run in runs:
        try:
            store.delete(run.id)
            deleted.append(run.id)
        except RunError as exc:
            refused.append({"run_id": run.id, "reason": str(exc)})
    if args.json:
        print(json.dumps({"deleted": deleted, "refused": refused}))
    else:
        for run_id in deleted:
            print(f"deleted {run_id}")
        for item in refused:
            print(f"not deleted: {item['reason']}")
    return 2 if refused else 0


def add(sub, cli) -> None:
    def runs_dir(p) -> None:
        p.add_argument("--runs-dir", type=cli._nonempty,
                       help="run store folder (default: $OCEANLAB_HOME/runs)")
        p.add_argument("--json", action="store_true", help="print JSON")

    r = sub.add_parser("rename", help="give a run a name shown beside its id (\"\" removes it)")
    r.add_argument("run_id", type=cli._nonempty, metavar="RUN_ID")
    r.add_argument("name", metavar="NAME")
    runs_dir(r)
    r.set_defaults(func=lambda args: _cmd_rename(args, cli))

    t = sub.add_parser("tag", help="add tags to runs (--remove: take them off); the Runs and "
                                   "Compare pages filter on tags")
    t.add_argument("items", nargs="+", type=cli._nonempty, metavar="RUN_ID… TAG…")
    t.add_argument("--remove", action="store_true", help="remove the tags instead")
    t.add_argument("--list", action="store_true", help="print the runs' tags (no tag given)")
    runs_dir(t)
    t.set_defaults(func=lambda args: _cmd_tag(args, cli))

    d = sub.add_parser("delete", help="delete runs and all their files (needs --yes)")
    d.add_argument("run_ids", nargs="+", type=cli._nonempty, metavar="RUN_ID")
    d.add_argument("--yes", action="store_true", help="really delete (without it: nothing is)")
    runs_dir(d)
    d.set_defaults(func=lambda args: _cmd_delete(args, cli))
