"""``python -m app animate RUN_ID --out FILE.gif|.mp4 [--fps N] [--frames N] [--lead K]
[--runs-dir DIR]``: an animation of a finished run over its test period (truth,
reconstruction, residual; :mod:`app.animation`) for slides. MP4 needs ffmpeg."""

from __future__ import annotations


def add(sub, cli) -> None:
    a = sub.add_parser("animate", help="write an animation (GIF or MP4) of a run over its "
                                       "test period: truth, reconstruction, residual")
    a.add_argument("run_id", metavar="RUN_ID", type=cli._nonempty,
                   help="the run to animate (id as listed by 'runs')")
    a.add_argument("--out", required=True, type=cli._nonempty,
                   help="the file to write: .gif, or .mp4 when ffmpeg is installed")
    a.add_argument("--fps", type=cli._positive_int, default=4,
                   help="frames per second (default 4)")
    a.add_argument("--frames", type=cli._positive_int, default=None,
                   help="at most this many frames, days evenly spread over the test period "
                        "(default: every day, at most 60)")
    a.add_argument("--lead", type=cli._int, default=0,
                   help="for a forecast: index of the lead drawn (default 0, the first)")
    a.add_argument("--dpi", type=cli._positive_int, default=100,
                   help="pixels per inch of the frames (default 100: 1200 × 400 pixels)")
    a.add_argument("--runs-dir", type=cli._nonempty,
                   help="run store folder (default: $OCEANLAB_HOME/runs)")
    a.set_defaults(func=run_animate)


def run_animate(args) -> int:
    from pathlib import Path

    from app.animation import _check_out, animate_run
    from backend import paths
    from backend.store import RunStore

    out = Path(args.out)
    _check_out(out)  # suffix, ffmpeg and folder checked before the run is read
    store = RunStore(paths.runs_dir(args.runs_dir))
    run = store.get(args.run_id)  # RunError (exit 2) for an unknown run
    path = animate_run(run, out, fps=args.fps, days=args.frames, dpi=args.dpi,
                       lead=args.lead)
    print(f"animation of run {run.id} written to {path}")
    return 0
