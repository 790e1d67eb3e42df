"""The Compare and Results pages timed in a real browser (issue 10: ten runs compared in
under 3 s once cached, a day step on Results in under 1 s).

    python bench/browser_pages.py [--runs 10] [--steps 5] [--pause 2] [--json]

Makes ``--runs`` small finished OI runs of the built-in OSSE (``model.max_obs=1500``, each
with another ``model.lt_days``: about a second each) in a temporary OCEANLAB_HOME (the
built-in file is copied from ``./workspace/datasets`` when it is current there, else made:
about a minute), serves the dashboard with ``streamlit run app/Home.py`` on a free port and
drives it in headless Chromium (Debian's ``/usr/bin/chromium`` through Playwright) as a user
does:

- Compare, fresh server (cold): choose the runs one by one in "Runs to compare", each choice
  waited for; the figure is the render after the last choice (the first time these ten runs
  are drawn together: leaderboard, maps, curves, config differences and the report made);
- Compare, a fresh browser session (warm: the server's caches hold every figure): the same
  choices again, the figure is again the render after the last one; then a rerun of the
  page (the ``r`` key) with the ten runs chosen;
- Results of one run (``?run=ID``): the day slider focused and stepped with ArrowRight
  ``--steps`` times, ``--pause`` seconds between steps (a user looking at the maps).

A render is done when, after the click or key press (time taken in the page, at the event),
the app has gone through a run of its script and is back at ``notRunning`` (the
``data-test-script-state`` of ``stApp``), no element is stale, the maps image has a new
source (not for the rerun: same figure) and every image has loaded. Times are measured in
the page (``performance.now``), from the event to the first animation frame meeting that.
The server is started through a few lines that time each run of a page's script, so each
render is also split into: the script run starts, the seconds the server ran the script, the
run ends as the browser sees it, the render is done.

Prints each figure, a summary (``compare_10_runs_warm_s``, ``compare_10_runs_cold_s``,
``results_day_step_median_s``, ``results_day_step_max_s``) and their ratios to the targets;
``--json`` adds one JSON line. Asserts nothing about the figures. The Streamlit server (and
any slot worker of the temporary store) is stopped at the end, even after an error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]
COMPARE_TARGET_S = 3.0
STEP_TARGET_S = 1.0
TIMEOUT_MS = 180_000

#: Installed in every document before the app loads: the time of the last click and of the
#: last key press the bench makes, and every change of the app's script state.
INIT_SCRIPT = """
window.__ol = {click: null, key: null, states: []};
document.addEventListener('click', () => { window.__ol.click = performance.now(); }, true);
document.addEventListener('keydown', (e) => {
  if (e.key === 'ArrowRight' || e.key === 'r') window.__ol.key = performance.now();
}, true);
new MutationObserver((records) => {
  for (const r of records) {
    window.__ol.states.push({state: r.target.getAttribute('data-test-script-state'),
                             t: performance.now()});
  }
}).observe(document, {subtree: true, attributes: true,
                      attributeFilter: ['data-test-script-state']});
"""

#: ``performance.now()`` once the render that the last ``a.event`` started is done, else
#: false (see the module's docstring); ``a.old`` is the maps image's source before it.
DONE = """
(a) => {
  const ol = window.__ol, t0 = ol[a.event];
  if (t0 === null) return false;
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (!ol.states.some((s) => s.t >= t0 && s.state !== 'notRunning')) return false;
  if (document.querySelector('[data-stale="true"]')) return false;
  if (document.querySelector('[data-testid="stException"]')) return 'exception';
  const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
  if (imgs.length < a.images) return false;
  if (a.old !== null && imgs[0].getAttribute('src') === a.old) return false;
  if (!imgs.every((i) => i.complete && i.naturalWidth > 0)) return false;
  if (a.text && !document.body.innerText.includes(a.text)) return false;
  const now = performance.now(), after = ol.states.filter((s) => s.t >= t0);
  const start = after.find((s) => s.state !== 'notRunning');
  const end = after.filter((s) => s.state === 'notRunning').pop();
  return {total: now - t0, start: start.t - t0, end: end.t - t0,
          epoch: performance.timeOrigin + t0};
}
"""


#: Starts ``streamlit`` (the arguments after ``-c BOOT``) with every run of a page's script
#: timed: ``start (epoch s) seconds`` appended to $OCEANLAB_BENCH_SCRIPT_LOG, so that the
#: time the server spends running the script can be told from the rest.
BOOT = """
import os, sys, time
from streamlit.runtime.scriptrunner import script_runner as _sr
_orig, _log = _sr.ScriptRunner._run_script, os.environ["OCEANLAB_BENCH_SCRIPT_LOG"]
def _timed(self, rerun_data):
    t, c = time.time(), time.perf_counter()
    try:
        return _orig(self, rerun_data)
    finally:
        with open(_log, "a") as f:
            f.write(f"{t:.4f} {time.perf_counter() - c:.4f}\\n")
_sr.ScriptRunner._run_script = _timed
from streamlit.web.cli import main
sys.argv = ["streamlit", *sys.argv[1:]]
main()
"""
SCRIPT_LOG: list[Path] = []


def script_seconds(since_epoch: float) -> float:
    """Seconds the server spent running page scripts that started after ``since_epoch``."""
    total = 0.0
    for _ in range(40):  # the line is written just after the run ends: the browser can be first
        if SCRIPT_LOG and SCRIPT_LOG[0].exists():
            for line in SCRIPT_LOG[0].read_text().splitlines():
                start, seconds = (float(v) for v in line.split())
                if start >= since_epoch - 0.01:
                    total += seconds
            if total:
                return total
        time.sleep(0.05)
    return float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def builtin_dataset() -> Path:
    """The built-in OSSE in the (temporary) workspace: a current copy from ./workspace, or
    generated."""
    from backend import paths

    target = paths.builtin_dataset_path()
    source = REPO / "workspace" / "datasets" / target.name
    if not target.exists() and paths.builtin_is_current(source):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return paths.ensure_builtin_dataset()


def make_runs(n: int) -> list[str]:
    from backend import paths
    from backend.config import build_config
    from backend.runner import execute
    from backend.store import RunStore

    builtin = builtin_dataset()
    store = RunStore(paths.home() / "runs")
    ids = []
    for k in range(n):
        run = execute(build_config("interpolation", "oi", overrides={
            "data.path": str(builtin), "model.max_obs": 1500,
            "model.lt_days": 3.0 + 1.5 * k}), store)
        assert run.info()["status"] == "done", run.info().get("error")
        ids.append(run.id)
    return ids


def start_server(home: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    SCRIPT_LOG[:] = [home / "script-runs.log"]
    env = {**os.environ, "OCEANLAB_HOME": str(home), "OCEANLAB_BENCH_SCRIPT_LOG": str(SCRIPT_LOG[0]),
           "OCEANLAB_DATA_ROOTS": str(home / "datasets"), "OCEANLAB_WORKER_IDLE_S": "4"}
    log = open(log_path, "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(
        [sys.executable, "-c", BOOT, "run", "app/Home.py", "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    proc._bench_log = log  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.3)
    stop_server(proc, home)
    raise RuntimeError("the dashboard did not start: " + log_path.read_text()[-2000:])


def stop_server(proc: subprocess.Popen | None, home: Path) -> None:
    """Stop the Streamlit server and every slot worker whose run store lies under ``home``."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if proc is not None and getattr(proc, "_bench_log", None):
        proc._bench_log.close()
    try:
        import psutil
    except ImportError:
        return
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info.get("cmdline") or []
        if "worker" in cmd and "--slot" in cmd and any(str(home) in c for c in cmd):
            try:
                p.kill()
                p.wait(5)
            except (psutil.Error, psutil.TimeoutExpired):
                pass


# --------------------------------------------------------------------------- the browser


def maps_src(page) -> str | None:
    return page.evaluate(
        "() => { const i = document.querySelector('[data-testid=\"stImage\"] img');"
        " return i ? i.getAttribute('src') : null; }")


#: Where the time of each render went: (seconds from the event to the app's script run
#: starting, to its end as the browser saw it, to the render done), in order of measurement.
PHASES: list[tuple[str, float, float, float, float]] = []


def wait_done(page, event: str, *, old: str | None = None, images: int = 1,
              text: str | None = None, label: str = "") -> float:
    """Seconds from the last ``event`` ('click' or 'key') to the end of its render."""
    handle = page.wait_for_function(DONE, arg={"event": event, "old": old, "images": images,
                                               "text": text},
                                    polling="raf", timeout=TIMEOUT_MS)
    value = handle.json_value()
    if value == "exception":
        raise RuntimeError("the page shows an exception: " + page.inner_text("body")[-3000:])
    server = script_seconds(value["epoch"] / 1000)
    PHASES.append((label, value["start"] / 1000, server, value["end"] / 1000,
                   value["total"] / 1000))
    return value["total"] / 1000.0


def wait_idle(page) -> None:
    page.wait_for_function(
        "() => { const a = document.querySelector('[data-testid=\"stApp\"]');"
        " return a && a.getAttribute('data-test-script-state') === 'notRunning'"
        " && !document.querySelector('[data-stale=\"true\"]'); }",
        polling="raf", timeout=TIMEOUT_MS)


def choose_runs(page, ids: list[str], label: str) -> list[float]:
    """Choose ``ids`` one by one in "Runs to compare", waiting for each render; the seconds
    of each."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    combo = page.get_by_role("combobox", name="Runs to compare")
    combo.wait_for(timeout=TIMEOUT_MS)
    wait_idle(page)
    times = []
    for k, rid in enumerate(ids):
        old = maps_src(page)
        for attempt in range(4):
            try:
                combo.click(timeout=30_000)
                page.get_by_role("option", name=rid, exact=True).click(timeout=15_000)
                break
            except PlaywrightTimeout:
                if attempt == 3:
                    raise
                page.keyboard.press("Escape")
                page.wait_for_timeout(500)
        # one run chosen: no map yet at first, so nothing to compare the source with
        times.append(wait_done(page, "click", old=old if k else None, images=1,
                               text="Leaderboard", label=f"{label}, run {k + 1} chosen"))
        page.keyboard.press("Escape")  # close the list (not a key the page listens to)
    return times


def explained(measure):
    """``measure(browser, url, ...)`` that, when the page does not get where it should, fails
    with the end of the page's text (an exception the page shows, say)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    def run(browser, url, *args):
        try:
            return measure(browser, url, *args)
        except PlaywrightTimeout as exc:
            texts = [pg.inner_text("body")[-2500:] for ctx in browser.contexts
                     for pg in ctx.pages]
            raise RuntimeError(f"{measure.__name__}: {str(exc).splitlines()[0]}; the page "
                               f"shows:\n" + "\n---\n".join(texts)) from exc
    return run


@explained
def compare_page(browser, url: str, ids: list[str]) -> dict:
    context = browser.new_context(viewport={"width": 1400, "height": 1400})
    context.add_init_script(INIT_SCRIPT)
    page = context.new_page()
    t = time.perf_counter()
    page.goto(f"{url}/Compare")
    page.get_by_role("combobox", name="Runs to compare").wait_for(timeout=TIMEOUT_MS)
    wait_idle(page)
    open_cold = time.perf_counter() - t
    cold = choose_runs(page, ids, "Compare cold")
    page.screenshot(path=str(Path(tempfile.gettempdir()) / "bench-compare.png"), full_page=True)
    context.close()

    # a fresh session: nothing chosen, every figure cached on the server
    context = browser.new_context(viewport={"width": 1400, "height": 1400})
    context.add_init_script(INIT_SCRIPT)
    page = context.new_page()
    t = time.perf_counter()
    page.goto(f"{url}/Compare")
    page.get_by_role("combobox", name="Runs to compare").wait_for(timeout=TIMEOUT_MS)
    wait_idle(page)
    open_warm = time.perf_counter() - t
    warm = choose_runs(page, ids, "Compare warm")
    # a rerun of the page with the runs chosen (the "r" key, as Streamlit's menu's Rerun)
    reruns = []
    for _ in range(2):
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        wait_idle(page)
        page.keyboard.press("r")
        reruns.append(wait_done(page, "key", images=1, text="Leaderboard",
                                 label=f"Compare rerun, {len(ids)} runs"))
    context.close()
    return {"open_cold_s": open_cold, "open_warm_s": open_warm, "cold_s": cold,
            "warm_s": warm, "rerun_s": reruns}


@explained
def results_page(browser, url: str, run_id: str, steps: int, pause: float) -> dict:
    context = browser.new_context(viewport={"width": 1400, "height": 1400})
    context.add_init_script(INIT_SCRIPT)
    page = context.new_page()
    t = time.perf_counter()
    page.goto(f"{url}/Results?run={run_id}")
    page.get_by_text("RMSE over time").first.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => { const i = [...document.querySelectorAll('[data-testid=\"stImage\"] img')];"
        " return i.length >= 2 && i.every((x) => x.complete && x.naturalWidth > 0); }",
        polling="raf", timeout=TIMEOUT_MS)
    wait_idle(page)
    opened = time.perf_counter() - t
    slider = page.get_by_role("slider").first
    times, labels = [], []
    for _ in range(steps):
        page.wait_for_timeout(pause * 1000)
        old = maps_src(page)
        slider.focus()
        page.keyboard.press("ArrowRight")
        times.append(wait_done(page, "key", old=old, images=2,
                               label=f"Results day step {len(times) + 1}"))
        labels.append(slider.get_attribute("aria-valuetext") or slider.get_attribute(
            "aria-valuenow"))
    page.screenshot(path=str(Path(tempfile.gettempdir()) / "bench-results.png"), full_page=True)
    context.close()
    return {"open_s": opened, "steps_s": times, "days": labels}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--pause", type=float, default=2.0, help="seconds between day steps")
    ap.add_argument("--json", action="store_true", help="also print one JSON line")
    ap.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="oceanlab-bench-browser-"))
    os.environ["OCEANLAB_HOME"] = str(home)
    proc = None
    try:
        t = time.perf_counter()
        ids = make_runs(args.runs)
        making = time.perf_counter() - t
        print(f"{len(ids)} OI runs made in {making:.0f} s under {home}", flush=True)
        proc, url = start_server(home, home / "streamlit.log")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            try:
                compare = compare_page(browser, url, ids)
                results = results_page(browser, url, ids[0], args.steps, args.pause)
            finally:
                browser.close()
    finally:
        stop_server(proc, home)
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)

    n = len(ids)
    cold, warm = compare["cold_s"][-1], compare["warm_s"][-1]
    rerun = min(compare["rerun_s"])
    steps = results["steps_s"]
    median, worst = statistics.median(steps), max(steps)
    r3 = lambda xs: [round(x, 3) for x in xs]
    print(f"Compare, fresh server: page opened in {compare['open_cold_s']:.2f} s; choosing "
          f"1…{n} runs: {' '.join(f'{x:.2f}' for x in compare['cold_s'])} s")
    print(f"Compare, fresh session (cached): page opened in {compare['open_warm_s']:.2f} s; "
          f"choosing 1…{n} runs: {' '.join(f'{x:.2f}' for x in compare['warm_s'])} s; "
          f"rerun with {n} chosen: {' '.join(f'{x:.2f}' for x in compare['rerun_s'])} s")
    print(f"Results: page opened in {results['open_s']:.2f} s; day steps "
          f"({args.pause:g} s apart): {' '.join(f'{x:.2f}' for x in steps)} s")
    print("where the time went (s from the event): the script run starts; seconds the server "
          "ran the page's script; the run ends as the browser sees it; the render is done")
    for label, start, server, end, total in PHASES:
        print(f"  {label:32s} {start:6.2f} {server:6.2f} {end:6.2f} {total:6.2f}")
    print(f"compare_{n}_runs_warm_s {warm:.3f}")
    print(f"compare_{n}_runs_cold_s {cold:.3f}")
    print(f"compare_{n}_runs_rerun_s {rerun:.3f}")
    print(f"results_day_step_median_s {median:.3f}")
    print(f"results_day_step_max_s {worst:.3f}")
    print(f"ratio compare_{n}_runs_warm_s / {COMPARE_TARGET_S:g} s target "
          f"{warm / COMPARE_TARGET_S:.2f}")
    print(f"ratio results_day_step_median_s / {STEP_TARGET_S:g} s target "
          f"{median / STEP_TARGET_S:.2f}")
    print(f"ratio results_day_step_max_s / {STEP_TARGET_S:g} s target "
          f"{worst / STEP_TARGET_S:.2f}")
    if args.json:
        print(json.dumps({
            "runs": n, f"compare_{n}_runs_warm_s": round(warm, 3),
            f"compare_{n}_runs_cold_s": round(cold, 3), f"compare_{n}_runs_rerun_s": round(rerun, 3),
            "results_day_step_median_s": round(median, 3),
            "results_day_step_max_s": round(worst, 3),
            "compare_target_s": COMPARE_TARGET_S, "step_target_s": STEP_TARGET_S,
            "compare_choice_cold_s": r3(compare["cold_s"]),
            "compare_choice_warm_s": r3(compare["warm_s"]), "compare_rerun_s": r3(compare["rerun_s"]),
            "compare_open_s": [round(compare["open_cold_s"], 3), round(compare["open_warm_s"], 3)],
            "results_open_s": round(results["open_s"], 3), "results_steps_s": r3(steps),
            "results_days": results["days"], "making_runs_s": round(making, 1),
            "phases": [[label, *r3(rest)] for label, *rest in PHASES],
            "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
