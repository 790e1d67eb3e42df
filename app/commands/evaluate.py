"""``python -m app evaluate``: score an external reconstruction against a reference.

``python -m app evaluate --ref REF.nc --pred PRED.nc [--var-ref NAME] [--var-pred NAME]
[--area-weighting {auto,none,cos(latitude)}] [--json] [--import] [--runs-dir DIR]`` scores the prediction on the reference's grid and
over the time steps both hold (regridding the prediction linearly when the grids differ, and
saying so), with the keys of a run's ``metrics.json``; ``--import`` saves it as a ``done``
run of model ``external`` so that it joins the comparisons (see :mod:`backend.evaluate`).
``--area-weighting`` (default ``auto``: cos(latitude) when the reference spans more than 15°
of latitude, else none) weights the spatial means; the value used is printed and recorded
(``metrics.json``'s ``area_weighting``).

``--json`` prints one object: ``scores`` (the score keys), ``notes``, ``regridded``,
``period`` ``[first, last]``, ``n_times``, the files and variables, ``run_id`` (null without
``--import``), ``area_weighting`` (the value used: ``none`` or ``cos(latitude)``), and every
score key again at the top level for scripts.

``python -m app evaluate --tracks SPEC --pred PRED.nc [--var-ref NAME | --adt] [--var-pred NAME]
[--segment-km KM] [--json]`` scores the gridded prediction against along-track observations
instead (an along-track file or a glob of them, such as the held-out mission of the
2021a SSH mapping OSE data challenge; ``--var-ref`` names their variable, ``--adt`` takes
``sla_unfiltered + mdt − lwe`` as that challenge does for maps of absolute dynamic
topography): the map is
interpolated onto the observations' points and times and the scores are
:mod:`metrics.alongtrack`'s (``rmse_alongtrack``, ``mu_alongtrack``, ``sigma_alongtrack``,
``lambda_x_alongtrack_km``, ``n_alongtrack``). ``--json`` prints ``scores``, ``notes``,
``tracks``, ``missions``, ``period``, ``n_read``, ``segment_km``, the prediction and the
variables, ``run_id`` (null: ``--import`` is refused with ``--tracks``), and every score key
again at the top level.
"""

from __future__ import annotations

import json


def _cmd_evaluate(args, cli) -> int:
    from backend import paths
    from backend.evaluate import evaluate, import_evaluation
    from backend.store import RunStore
    from oceanlab_errors import DataError

    if args.tracks is not None:
        return _cmd_evaluate_tracks(args, cli)
    if args.adt:
        raise DataError("--adt: only with --tracks (it chooses the along-track reference)")
    for flag, path in (("--ref", args.ref), ("--pred", args.pred)):
        try:
            cli._check_data_file(path)
        except DataError as exc:
            raise DataError(f"{flag} {exc}") from None
    root = None
    if args.do_import:  # refuse an unusable run store before scoring
        root = cli._writable_dir(paths.runs_dir(args.runs_dir),
                                 "--runs-dir" if args.runs_dir else "runs folder")
    ev = evaluate(args.ref, args.pred, var_ref=args.var_ref, var_pred=args.var_pred,
                  area_weighting=args.area_weighting)
    run = import_evaluation(ev, RunStore(root)) if root is not None else None
    scores = {k: v for k, v in ev.scores.items() if k not in ("notes", "area_weighting")}
    if args.json:
        out = {**scores, "scores": scores, "notes": ev.notes,
               "area_weighting": ev.area_weighting, "regridded": ev.regridded,
               "period": list(ev.period), "n_times": ev.n_times, "ref": ev.ref,
               "pred": ev.pred, "var_ref": ev.var_ref, "var_pred": ev.var_pred,
               "run_id": run.id if run is not None else None}
        print(json.dumps(out, default=str))
        return 0
    print(f"scored {ev.pred} ({ev.var_pred}) against {ev.ref} ({ev.var_ref}): "
          f"{ev.n_times} time step{'s' if ev.n_times != 1 else ''}, {ev.period[0]} .. "
          f"{ev.period[1]}")
    if ev.regridded:
        print(f"regridded: {ev.notes.get('regridded', 'yes')}")
    if "period" in ev.notes:
        print(f"period: {ev.notes['period']}")
    print(f"area weighting: {ev.area_weighting}"
          + (" (auto)" if ev.area_weighting_option == "auto" else ""))
    for k, v in scores.items():
        print(f"  {k:>22}: {'null (' + str(ev.notes.get(k, 'not computable')) + ')' if v is None else f'{v:.4g}'}")
    if run is not None:
        print(f"imported as run {run.id}: done  ({run.path})")
    return 0


def _cmd_evaluate_tracks(args, cli) -> int:
    from backend.evaluate import evaluate_tracks
    from oceanlab_errors import DataError

    if args.do_import:
        raise DataError("--import: not available with --tracks (a run's pages need a gridded "
                        "truth); score with --tracks, or import against a gridded --ref")
    try:
        cli._check_data_file(args.pred)
    except DataError as exc:
        raise DataError(f"--pred {exc}") from None
    ev = evaluate_tracks(args.tracks, args.pred, var_tracks=args.var_ref,
                         var_pred=args.var_pred, segment_km=args.segment_km, adt=args.adt)
    scores = {k: v for k, v in ev.scores.items() if k != "notes"}
    if args.json:
        out = {**scores, "scores": scores, "notes": ev.notes, "tracks": ev.tracks,
               "missions": ev.missions, "period": list(ev.period), "n_read": ev.n_read,
               "segment_km": ev.segment_km, "pred": ev.pred, "var_tracks": ev.var_tracks,
               "var_pred": ev.var_pred, "run_id": None}
        print(json.dumps(out, default=str))
        return 0
    print(f"scored {ev.pred} ({ev.var_pred}) against the along-track observations {ev.tracks} "
          f"({ev.var_tracks}; {', '.join(ev.missions) or 'no mission named'}): "
          f"{scores['n_alongtrack']} of {ev.n_read} points, {ev.period[0]} .. {ev.period[1]}")
    for k, v in scores.items():
        text = ("null (" + str(ev.notes.get(k, "not computable")) + ")" if v is None
                else str(v) if isinstance(v, int) else f"{v:.4g}")
        print(f"  {k:>22}: {text}")
    return 0


def add(sub, cli) -> None:
    """Add the ``evaluate`` command to ``sub`` (the subparsers of :func:`app.cli.build_parser`)."""
    e = sub.add_parser("evaluate", help="score an external reconstruction (another method, an "
                                        "operational product) against a reference file")
    ref = e.add_mutually_exclusive_group(required=True)
    ref.add_argument("--ref", type=cli._nonempty, default=None, metavar="REF.nc",
                     help="the reference (truth) NetCDF: its grid and period are scored")
    ref.add_argument("--tracks", type=cli._nonempty, default=None, metavar="SPEC",
                     help="score against along-track observations instead of a gridded "
                          "reference: an along-track file or a glob of them ('dir/*.nc', "
                          "e.g. the held-out mission of the 2021a OSE data challenge); "
                          "along-track RMSE, µ, σ and λx")
    e.add_argument("--pred", type=cli._nonempty, required=True, metavar="PRED.nc",
                   help="the reconstruction NetCDF (regridded linearly onto the reference's "
                        "grid when the grids differ)")
    e.add_argument("--var-ref", type=cli._nonempty, default=None, metavar="NAME",
                   help="variable of the reference (default: its oceanlab_truth_var "
                        "attribute, else its only variable); with --tracks, the along-track "
                        "variable (default: the reader's choice, sla_unfiltered in the 2021a "
                        "layout)")
    e.add_argument("--segment-km", type=float, default=1000.0, metavar="KM",
                   help="with --tracks: length of the along-track windows of the spectral "
                        "score (default 1000, the data challenge's)")
    e.add_argument("--var-pred", type=cli._nonempty, default=None, metavar="NAME",
                   help="variable of the reconstruction (default: its "
                        "oceanlab_reconstruction_var or oceanlab_truth_var attribute, else "
                        "its only variable)")
    e.add_argument("--area-weighting", choices=("auto", "none", "cos(latitude)"),
                   default="auto",
                   help="weight the spatial means of the scores by cos(latitude): auto "
                        "(default) does when the reference spans more than 15 degrees of "
                        "latitude; the value used is recorded")
    e.add_argument("--adt", action="store_true",
                   help="with --tracks: score against sla_unfiltered + mdt - lwe of the "
                        "along-track files (the 2021a challenge's reference, for maps of "
                        "absolute dynamic topography such as its dc_maps); default: the "
                        "along-track variable as it is (for maps of sea level anomaly)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--import", dest="do_import", action="store_true",
                   help="save the result as a run (model 'external') in the run store")
    e.add_argument("--runs-dir", type=cli._nonempty, default=None,
                   help="run store folder for --import (default: $OCEANLAB_HOME/runs)")
    e.set_defaults(func=lambda args: _cmd_evaluate(args, cli))
