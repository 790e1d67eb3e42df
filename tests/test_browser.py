"""Real-browser tests: the dashboard served by Streamlit, driven in headless Chromium.

One opens a saved interpolation run on the Runs and Results pages; the other launches a
forecast run (the ``persistence`` model, on a small file inside the data roots) from the
Experiment page, waits for the worker to finish it and opens its per-lead curves in Results.

Chromium comes from Debian (``apt-get install chromium``; ``.ci/run`` installs it) and is
driven with Playwright through ``executable_path``: Playwright's own browser download does not
work offline. Without Chromium the test is skipped locally, but it fails in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from backend.store import RunStore
from tests.test_app_pages import make_run

BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]
#: Every Streamlit element that shows an exception (a traceback reached the page).
EXCEPTION = '[data-testid="stException"]'

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(workspace, tmp_path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    store = RunStore(workspace / "runs")
    make_run(store, "20240101-000000-unet-aaaa")
    port = _free_port()
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/Home.py", "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the dashboard did not start: " + (tmp_path / "streamlit.log").read_text()[-2000:])
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_runs_and_results_pages_render_in_a_real_browser(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(f"{server}/Runs")
        # the runs table is a canvas grid; its accessible (hidden) cells carry the text
        page.get_by_text("20240101-000000-unet-aaaa").first.wait_for(state="attached", timeout=60_000)

        page.goto(f"{server}/Results?run=20240101-000000-unet-aaaa")
        page.get_by_text("RMSE over time").first.wait_for(timeout=60_000)
        # the four maps and the curves are drawn as images once the script has finished
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=\"stImage\"] img, "
            "[data-testid=\"stFullScreenFrame\"] img').length >= 2", timeout=60_000)
        body = page.inner_text("body")
        page.screenshot(path=str(tmp_path / "results.png"), full_page=True)
        browser.close()
    assert "Scores" in body and "0.91" in body  # µ of the saved run
    assert "Traceback" not in body and "Error" not in body.split("Scores")[0]


def _choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the Streamlit select box labelled ``label``."""
    from playwright.sync_api import expect

    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    combo = page.get_by_role("combobox", name=label, exact=True)  # the box's text input
    # A rerun still in flight (after the previous choice) can redraw the page and detach the
    # open list; then close it and open it again.
    for attempt in range(3):
        combo.click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=10_000)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")
            page.wait_for_timeout(1_000)
    expect(combo).to_have_value(option, timeout=30_000)


def _images(page, at_least: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=\"stImage\"] img, "
        "[data-testid=\"stFullScreenFrame\"] img').length >= n", arg=at_least, timeout=60_000)


def test_forecast_run_launched_from_the_experiment_page(server, workspace, tmp_path):
    """Experiment: task forecast, model persistence, a small file typed in; the worker runs it;
    Results shows the scores and the per-lead curves, without an exception on any page."""
    from playwright.sync_api import sync_playwright

    from data.synthetic import mock_field

    data = workspace / "datasets" / "forecast.nc"
    data.parent.mkdir(parents=True, exist_ok=True)
    mock_field(n_time=60, n_lat=12, n_lon=16, land=True, seed=5).drop_vars("mask").to_netcdf(data)
    store = RunStore(workspace / "runs")
    before = {r.id for r in store.runs()}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(f"{server}/Experiment")
        page.get_by_role("button", name="Launch").wait_for(timeout=60_000)
        _choose(page, "Task", "forecast")
        page.get_by_text("Task parameters").wait_for(timeout=30_000)
        _choose(page, "Model", "persistence")
        page.get_by_text("NetCDF file or glob").click()
        path_box = page.get_by_label("NetCDF path")
        path_box.fill(str(data.resolve()))
        path_box.press("Enter")
        page.get_by_text("Variable to forecast").wait_for(timeout=30_000)
        # while the page reruns, the old (disabled) button can still be shown beside the new
        launch = page.get_by_role("button", name="Launch").and_(
            page.locator("button:not([disabled])"))
        launch.first.wait_for(timeout=30_000)
        launch.first.click()
        # the page says what the Launch did: a free slot took it (or it waits in the queue)
        page.get_by_text(re.compile(r"started \(\d of \d slots? busy\)|queued, position \d"))\
            .first.wait_for(timeout=30_000)

        deadline = time.monotonic() + 90
        runs: list = []
        while time.monotonic() < deadline:
            runs = [r for r in store.runs() if r.id not in before]
            if runs and runs[0].status not in ("queued", "running"):
                break
            time.sleep(0.5)
        assert runs, "no run was queued: " + page.inner_text("body")[-2000:]
        (run,) = runs
        info = run.info()
        assert info["status"] == "done", info.get("error")
        assert info["config"]["task"]["name"] == "forecast"
        assert info["config"]["model"]["name"] == "persistence"
        assert page.locator(EXCEPTION).count() == 0

        page.goto(f"{server}/Results?run={run.id}")
        page.get_by_text("Skill by lead").first.wait_for(timeout=60_000)
        _images(page, 3)  # the per-lead curves, the maps, the RMSE over start dates
        body = page.inner_text("body")
        page.screenshot(path=str(tmp_path / "forecast.png"), full_page=True)
        exceptions = page.locator(EXCEPTION).count()
        browser.close()
    assert exceptions == 0 and "Traceback" not in body
    assert "skill vs persistence" in body and "ACC" in body
    assert f"{run.metrics()['acc']:.4g}" in body


from tests.test_compare_page import made_runs  # noqa: F401 (the module's OI runs fixture)


def test_compare_page_two_oi_runs_leaderboard_maps_and_report(server, workspace, made_runs,  # noqa: F811
                                                               tmp_path):
    """Compare (issue 10): two finished OI runs chosen in the multiselect; the leaderboard
    lists both with a ★, a map is drawn, and the HTML report downloads, holds both run ids,
    links nothing outside itself and opens in the browser."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright

    source, all_ids = made_runs
    ids = all_ids[:2]
    for rid in ids:
        shutil.copytree(source / rid, workspace / "runs" / rid)
    report = tmp_path / "report.html"
    shot = tmp_path / "compare.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1400}, accept_downloads=True)
        page.goto(f"{server}/Compare")
        combo = page.get_by_role("combobox", name="Runs to compare")
        combo.wait_for(timeout=120_000)
        for rid in ids:
            # a rerun after the previous choice can redraw the list: reopen it and retry
            for attempt in range(4):
                try:
                    combo.click(timeout=30_000)
                    page.get_by_role("option", name=rid, exact=True).click(timeout=15_000)
                    break
                except PlaywrightTimeout:
                    if attempt == 3:
                        raise
                    page.keyboard.press("Escape")
                    page.wait_for_timeout(1_000)
            page.keyboard.press("Escape")
            page.get_by_text("Leaderboard", exact=True).first.wait_for(timeout=120_000)
        # the leaderboard: the data frame (a canvas grid; its hidden cells carry the text)
        # holding a best score marked ★
        board = page.locator('[data-testid="stDataFrame"]').filter(
            has=page.get_by_text(re.compile(r"\d ★")))
        expect(board).to_have_count(1, timeout=120_000)
        for rid in ids:
            expect(board.get_by_text(rid, exact=True).first).to_be_attached(timeout=60_000)
        download = page.get_by_role("button", name="Download the report (HTML)")
        download.wait_for(timeout=120_000)
        page.wait_for_function(
            "n => document.querySelectorAll('[data-testid=\"stImage\"] img, "
            "[data-testid=\"stFullScreenFrame\"] img').length >= n", arg=1, timeout=120_000)
        body = page.inner_text("body")
        exceptions = page.locator(EXCEPTION).count()
        page.screenshot(path=str(shot), full_page=True)
        with page.expect_download(timeout=120_000) as got:
            download.click()
        got.value.save_as(str(report))

        html = report.read_text(encoding="utf-8")
        page.goto(report.resolve().as_uri())
        page.wait_for_load_state("load", timeout=60_000)
        report_text = page.inner_text("body")
        browser.close()
    if os.environ.get("OCEANLAB_ARTIFACTS"):
        out = Path(os.environ["OCEANLAB_ARTIFACTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, out / "compare.png")
    assert exceptions == 0 and "Traceback" not in body
    assert all(rid in html for rid in ids)
    assert "http://" not in html and "https://" not in html
    assert all(rid in report_text for rid in ids)
