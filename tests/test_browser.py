"""One real-browser test: the dashboard served by Streamlit, driven in headless Chromium.

Chromium comes from Debian (``apt-get install chromium``; ``.ci/run`` installs it) and is
driven with Playwright through ``executable_path``: Playwright's own browser download does not
work offline. Without Chromium the test is skipped locally, but it fails in CI.
"""

from __future__ import annotations

import os
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
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
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
