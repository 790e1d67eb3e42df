"""The Present page (large figures, one per screen) and its slides (:mod:`app.slides`) on
two real small OI runs that differ only in ``model.lt_days``, made once per module with
``backend.runner.execute`` and copied into each test's workspace."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from backend.config import build_config
from backend.runner import execute
from backend.store import RunStore
from tests.test_compare_page import make_oi_runs

PAGE = Path(__file__).resolve().parents[1] / "app" / "pages" / "6_Present.py"
LT_DAYS = (3.0, 12.0)


@pytest.fixture(scope="module")
def made_runs(tmp_path_factory) -> tuple[Path, list[str]]:
    """A run store holding two finished OI runs (ids in LT_DAYS order)."""
    return make_oi_runs(tmp_path_factory.mktemp("present"), LT_DAYS)


@pytest.fixture
def store(made_runs, workspace: Path) -> RunStore:
    shutil.copytree(made_runs[0], workspace / "runs")
    return RunStore(workspace / "runs")


def titles_of(slides) -> list[str]:
    return [s.title for s in slides]


def short(run_id: str) -> str:
    """How slides label a run without a name: its id without the date and time."""
    return re.sub(r"^\d{8}-\d{6}-", "", run_id)


def test_build_slides_titles_in_order(store, made_runs):
    from app.slides import build_slides

    ids = made_runs[1]
    notes: list[str] = []
    slides = build_slides([store.get(i) for i in ids], notes=notes)
    assert notes == []
    kinds = [s.kind for s in slides]
    assert kinds == ["title", "leaderboard", "day", "rmse_time", "psd", "spectra", "config",
                     "run_maps", "run_maps"]
    titles = titles_of(slides)
    assert titles[0] == "Comparing 2 runs"
    assert titles[1] == "Leaderboard"
    assert titles[2].startswith("The same day, side by side: ")
    assert titles[3:7] == ["RMSE over time", "PSD score: the scales each run resolves",
                           "Zonal spectra", "Config differences"]
    day = titles[2].rsplit(": ", 1)[1]
    assert titles[7:] == [f"{short(ids[0])}: {day}", f"{short(ids[1])}: {day}"]  # same day

    board = slides[1].table
    rmse = {i: store.get(i).metrics()["rmse"] for i in ids}
    best = min(rmse, key=rmse.get)
    row = board.loc[next(k for k in board.index if k.startswith("RMSE ("))]
    starred = [c for c, v in row.items() if v.endswith("★")]
    assert len(starred) == 1 and starred[0].startswith(short(best))
    assert slides[6].table.index.tolist() == ["model.lt_days"]

    one = build_slides([store.get(ids[0])], title="My project")
    assert [s.kind for s in one] == ["title", "leaderboard", "rmse_time", "psd", "spectra",
                                     "run_maps"]  # one run: no side by side, no differences
    assert one[0].title == "My project"


@pytest.mark.parametrize("kind", ["title", "leaderboard", "day", "rmse_time", "run_maps"])
def test_slide_figures_are_projector_size_with_large_fonts(store, made_runs, kind):
    import matplotlib.pyplot as plt
    from matplotlib.text import Text
    from PIL import Image

    from app import slides as deck

    slides = deck.build_slides([store.get(i) for i in made_runs[1]])
    slide = next(s for s in slides if s.kind == kind)
    fig = slide.figure()
    try:
        width, height = fig.get_size_inches()
        assert (round(width, 2), round(height, 2)) == (13.33, 7.5)
        assert width / height == pytest.approx(16 / 9, rel=0.01)
        assert fig.dpi >= 110
        from matplotlib.table import Table

        texts = fig.findobj(Text) + [c.get_text() for t in fig.findobj(Table)
                                     for c in t.get_celld().values()]
        sizes = [t.get_fontsize() for t in texts if t.get_visible() and t.get_text().strip()]
        assert sizes and min(sizes) >= deck.SMALL  # nothing page-sized left
        assert np.median(sizes) >= 14
        assert sorted(sizes)[-2] >= deck.FONT_SIZE  # besides the title: the slide's fonts
        if kind != "title":
            assert fig.get_suptitle() == slide.title
            assert fig._suptitle.get_fontsize() >= 24
    finally:
        plt.close(fig)
    png = deck.render_png(slide)
    image = Image.open(io.BytesIO(png))
    assert image.size == (int(deck.SIZE[0] * 200), 1500)  # 200 dpi, 16:9, never cropped


def test_slides_of_a_damaged_run_are_left_out(store, made_runs):
    from app.slides import build_slides

    ids = made_runs[1]
    (store.root / ids[1] / "diagnostics.nc").write_bytes(b"garbage")
    notes: list[str] = []
    slides = build_slides([store.get(i) for i in ids], notes=notes)
    assert any(ids[1] in n for n in notes)
    assert "rmse_time" in [s.kind for s in slides]  # the other run's curve is still there


# --------------------------------------------------------------------------- the page


def page() -> AppTest:
    return AppTest.from_file(str(PAGE), default_timeout=60)


def counter(at: AppTest) -> str:
    return next(str(m.value) for m in at.markdown if " / " in str(m.value) and "<div" in
                str(m.value))


def test_page_shows_the_compare_runs_and_steps_with_next(store, made_runs):
    ids = made_runs[1]
    at = page()
    at.session_state["compare.runs"] = ids
    at.run()
    assert not at.exception, at.exception
    assert ">1 / 9<" in counter(at)
    assert at.multiselect(key="present.runs").value == ids
    assert at.query_params["runs"] == ",".join(ids)
    assert at.query_params["slide"] == "1"
    assert len(at.image) == 1
    assert at.button(key="present.previous").disabled
    labels = {b.proto.label for b in at.get("download_button")}
    assert "Download this slide (PNG)" in labels

    at.button(key="present.next").click().run()
    assert not at.exception, at.exception
    assert ">2 / 9<" in counter(at)
    assert at.session_state["present.slide"] == 1
    assert at.query_params["slide"] == "2"
    assert len(at.image) == 1

    at.selectbox(key="present.slide").set_value(8).run()  # the picker: the last slide
    assert not at.exception, at.exception
    assert ">9 / 9<" in counter(at)
    assert at.button(key="present.next").disabled
    at.button(key="present.previous").click().run()
    assert ">8 / 9<" in counter(at) and at.query_params["slide"] == "8"


def test_query_params_choose_runs_and_slide(store, made_runs):
    ids = made_runs[1]
    at = page()
    at.query_params["runs"] = f"{ids[1]},../../etc,nope"
    at.query_params["slide"] = "3"
    at.run()
    assert not at.exception, at.exception
    assert at.multiselect(key="present.runs").value == [ids[1]]
    warnings = "\n".join(str(w.value) for w in at.warning)
    assert "not in the run store" in warnings
    assert ">3 / 6<" in counter(at)  # one run: title, leaderboard, rmse, psd, spectra, maps
    assert len(at.image) == 1


def test_full_screen_hides_the_sidebar(store, made_runs):
    at = page()
    at.session_state["compare.runs"] = made_runs[1][:1]
    at.run()
    css = "\n".join(str(m.value) for m in at.markdown)
    assert 'section[data-testid="stSidebar"]' in css
    at.toggle(key="present.full_screen").set_value(False).run()
    assert not at.exception
    css = "\n".join(str(m.value) for m in at.markdown)
    assert "stSidebar" not in css


def test_no_runs_chosen_and_no_runs_at_all(store, workspace):
    at = page().run()
    assert not at.exception, at.exception
    assert "Choose the runs to present" in "\n".join(str(i.value) for i in at.info)
    assert not at.image
    shutil.rmtree(workspace / "runs")
    at = page().run()
    assert not at.exception, at.exception
    assert "No finished run yet" in "\n".join(str(i.value) for i in at.info)


def test_forecast_runs_get_the_lead_slide(workspace: Path, made_runs):
    from app.slides import build_slides

    nc = made_runs[0].parent / "mock.nc"
    store = RunStore(workspace / "runs")
    runs = []
    for model in ("persistence", "climatology"):
        config = build_config("forecast", model, overrides={
            "data.path": str(nc), "data.var": "ssh", "task.history": 1, "task.horizon": 3})
        run = execute(config, store)
        assert run.status == "done", run.info().get("error")
        runs.append(run)
    notes: list[str] = []
    slides = build_slides(runs, notes=notes)
    assert notes == []
    kinds = [s.kind for s in slides]
    assert kinds == ["title", "leaderboard", "day", "rmse_time", "lead", "config", "run_maps",
                     "run_maps"]
    assert slides[4].title == "Forecast RMSE and skill by lead"
    assert slides[2].caption.endswith("(forecasts: the first lead).")


def test_short_labels_only_when_they_still_differ():
    from app.slides import short_labels

    assert short_labels({"20240101-000000-oi-ab12": "20240101-000000-oi-ab12",
                         "x": "my run"}) == {"20240101-000000-oi-ab12": "oi-ab12",
                                             "x": "my run"}
    clash = {"20240101-000000-oi-ab12": "20240101-000000-oi-ab12",
             "20240202-000000-oi-ab12": "20240202-000000-oi-ab12"}
    assert short_labels(clash) == clash


def test_dollars_in_names_and_title_are_drawn_literally(store, made_runs):
    from app import slides as deck

    ids = made_runs[1]
    store.get(ids[0]).update(name="cost $x_{1")  # unbalanced mathtext: would fail to draw
    slides = deck.build_slides([store.get(i) for i in ids], title="Talk $a$ and $b")
    assert slides[0].title == "Talk $a$ and $b"
    for slide in slides[:2] + [s for s in slides if s.kind in ("rmse_time", "config")]:
        assert deck.render_png(slide)[:4] == b"\x89PNG"
