"""How fast the Compare page renders ten runs (issue 10: under 3 s once cached).

    python bench/compare_page.py [--runs 10]

Makes ``--runs`` small finished OI runs of the built-in OSSE (``model.max_obs=1500``, each
with another ``model.lt_days``: a few seconds each) in a temporary OCEANLAB_HOME, then runs
the Compare page with Streamlit's AppTest (the page script as a browser session runs it:
reading the runs, the leaderboard, maps, curves, config differences and the report; not the
browser's own drawing), chooses every run in ``compare.runs`` and times

- the first render with them chosen (nothing cached yet),
- a second render of the same choice in a fresh session (the figure, leaderboard and report
  caches warm): the figure the issue's target is about.

Prints the figures and one JSON line; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streamlit.testing.v1 import AppTest

from backend import paths
from backend.config import build_config
from backend.runner import execute
from backend.store import RunStore

PAGE = Path(__file__).resolve().parent.parent / "app" / "pages" / "5_Compare.py"
TARGET_S = 3.0


def render(ids: list[str]) -> tuple[float, float]:
    """(seconds of the page's first run with no choice, seconds of the run with ``ids``
    chosen) in a fresh AppTest session."""
    at = AppTest.from_file(str(PAGE), default_timeout=600)
    t = time.perf_counter()
    at.run()
    empty = time.perf_counter() - t
    assert not at.exception, at.exception
    box = at.multiselect(key="compare.runs")
    t = time.perf_counter()
    box.set_value(ids).run()
    chosen = time.perf_counter() - t
    assert not at.exception, at.exception
    assert len(at.image) >= 1, "no map drawn"
    return empty, chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    builtin = paths.ensure_builtin_dataset()
    home = Path(tempfile.mkdtemp(prefix="oceanlab-bench-compare-"))
    os.environ["OCEANLAB_HOME"] = str(home)
    store = RunStore(home / "runs")
    ids = []
    t = time.perf_counter()
    for k in range(args.runs):
        run = execute(build_config("interpolation", "oi", overrides={
            "data.path": str(builtin), "model.max_obs": 1500,
            "model.lt_days": 3.0 + 1.5 * k}), store)
        assert run.info()["status"] == "done", run.info().get("error")
        ids.append(run.id)
    making = time.perf_counter() - t

    first_empty, first = render(ids)
    second_empty, second = render(ids)
    figures = {"runs": len(ids), "first_render_s": round(first, 3),
               "cached_render_s": round(second, 3),
               "page_without_choice_s": [round(first_empty, 3), round(second_empty, 3)],
               "target_cached_s": TARGET_S, "making_runs_s": round(making, 1),
               "cpus": os.cpu_count()}
    print(f"Compare page, {len(ids)} runs chosen: first render {first:.2f} s, "
          f"second render (cached) {second:.2f} s (target < {TARGET_S:g} s after caching)")
    print(f"(the page before any choice: {first_empty:.2f} s, then {second_empty:.2f} s; "
          f"making the runs took {making:.0f} s)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
