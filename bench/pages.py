"""How fast the Results page answers a day step (issue 10: under 1 s).

    python bench/pages.py [--steps 5]

Runs the page with Streamlit's AppTest (the page script as a browser session runs it:
reading the run, every section, the figure cache; not the browser's own drawing) on a run
of the built-in OSSE made here (an OI run, a few seconds), then steps the day slider
forward one day at a time, as a user does, and times each step:

- with the next days drawn ahead in the background while the user looks at a day (what the
  page does), after a pause of 2 s per day (a user looking at the maps);
- the same steps with drawing ahead switched off (each day drawn when it is asked for):
  the reference, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streamlit.testing.v1 import AppTest  # noqa: E402

from app import ui  # noqa: E402
from backend import paths  # noqa: E402
from backend.config import build_config  # noqa: E402
from backend.runner import execute  # noqa: E402
from backend.store import RunStore  # noqa: E402

PAGE = Path(__file__).resolve().parent.parent / "app" / "pages" / "3_Results.py"


def steps(run_id: str, n: int, pause: float) -> list[float]:
    at = AppTest.from_file(str(PAGE), default_timeout=120)
    at.query_params["run"] = run_id
    at.run()
    times = []
    for k in range(1, n + 1):
        time.sleep(pause)
        slider = at.select_slider(key="results.day")
        t = time.perf_counter()
        slider.set_value(slider.options[k]).run()
        times.append(time.perf_counter() - t)
        assert not at.exception, at.exception
    ui.wait_for_prefetch()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    builtin = paths.ensure_builtin_dataset()
    home = Path(tempfile.mkdtemp(prefix="oceanlab-bench-pages-"))
    os.environ["OCEANLAB_HOME"] = str(home)
    store = RunStore(home / "runs")
    run = execute(build_config("interpolation", "oi", overrides={
        "data.path": str(builtin), "model.max_obs": 1500}), store)
    assert run.info()["status"] == "done", run.info().get("error")

    ahead = steps(run.id, args.steps, pause=2.0)
    original = ui.prefetch_figures
    ui.prefetch_figures = lambda items: None  # the reference: every day drawn on demand
    try:
        # another run folder, so that nothing drawn above is in the cache
        other = execute(build_config("interpolation", "oi", overrides={
            "data.path": str(builtin), "model.max_obs": 1500, "model.lt_days": 9.0}), store)
        on_demand = steps(other.id, args.steps, pause=2.0)
    finally:
        ui.prefetch_figures = original
    figures = {"day_step_s_median": round(statistics.median(ahead), 3),
               "day_step_s_max": round(max(ahead), 3),
               "on_demand_s_median": round(statistics.median(on_demand), 3),
               "ratio": round(statistics.median(ahead) / statistics.median(on_demand), 3),
               "steps": [round(x, 3) for x in ahead],
               "on_demand_steps": [round(x, 3) for x in on_demand]}
    print(f"Results day step, next days drawn ahead: median {figures['day_step_s_median']:.2f} s "
          f"(max {figures['day_step_s_max']:.2f} s; target < 1 s)")
    print(f"Results day step, each day drawn on demand: median "
          f"{figures['on_demand_s_median']:.2f} s; ratio {figures['ratio']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
