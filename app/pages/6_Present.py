"""Present: large figures, one per screen, for a projector (the end of a project session).

The runs presented are those of ``?runs=ID1,ID2`` (looked up among the listed runs, never
joined to a path), else those chosen on the Compare page (``compare.runs``), else the ones
chosen here. Which slides exist and how each is drawn is :mod:`app.slides`; this page shows
one slide at a time with Previous / Next buttons, a counter and a picker (no keyboard
needed), keeps the slide in ``present.slide`` and in ``?slide=N`` (a URL reopens the same
slide), hides the sidebar in full screen, and offers each slide as a 200 dpi PNG. Slide
images are cached on the runs' folders and file modification times, and the next slide is
drawn while the current one is shown, so stepping through a talk waits for nothing.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import slides as deck
from app import ui
from backend.store import DIAGNOSTICS_FILE, METRICS_FILE, PREDICTION_FILE, RUN_FILE, Run

RUNS_KEY = "present.runs"
SLIDE_KEY = "present.slide"
COMPARE_KEY = "compare.runs"
FULL_SCREEN_CSS = """
<style>
section[data-testid="stSidebar"], div[data-testid="stSidebarCollapsedControl"],
button[data-testid="stExpandSidebarButton"] {display: none;}
div.block-container, div[data-testid="stMainBlockContainer"] {
  padding-top: 1.2rem; padding-bottom: 0.5rem; max-width: 100%;}
header[data-testid="stHeader"] {height: 0; min-height: 0; background: transparent;}
div[data-testid="stImage"] img, div[data-testid="stFullScreenFrame"] img {
  max-height: 84vh; object-fit: contain;}
h1 {display: none;}
</style>
"""


# --------------------------------------------------------------------------- choosing runs


def requested_ids() -> list[str] | None:
    """The ids of ``?runs=`` (None when the address names none)."""
    raw = st.query_params.get("runs")
    if not raw:
        return None
    return [i.strip() for i in str(raw).split(",") if i.strip()]


def choose_runs() -> list[Run] | None:
    """The runs to present (None: no finished run at all)."""
    store = ui.store()
    listed = {r.id: r for r in store.runs()}
    done = {r.id: r for r in ui.done_runs(list(listed.values()))}
    if not done:
        st.info("No finished run yet: launch one on the Experiment page, then present it "
                "here.")
        ui.page_link("pages/2_Experiment.py", "Go to Experiment", icon="🧪")
        return None
    if RUNS_KEY not in st.session_state:
        wanted = requested_ids()
        if wanted is not None:
            missing = [i for i in wanted if i not in done]
            for run_id in missing:
                what = "is not finished" if run_id in listed else "is not in the run store"
                st.warning(f"Run {ui.plain(run_id)} {what}: left out.")
            chosen = [i for i in wanted if i in done]
        else:
            chosen = [i for i in st.session_state.get(COMPARE_KEY) or () if i in done]
        st.session_state[RUNS_KEY] = list(dict.fromkeys(chosen))
    else:
        st.session_state[RUNS_KEY] = [i for i in st.session_state[RUNS_KEY] if i in done]
    ids = list(done)
    labels = {i: ui.run_label(done[i]) for i in ids}
    chosen = st.session_state[RUNS_KEY]
    with st.expander("Runs and title", expanded=not chosen):
        st.multiselect("Runs to present", ids, key=RUNS_KEY, format_func=labels.get,
                       placeholder="choose one or more finished runs",
                       help="by default the runs chosen on the Compare page")
        st.text_input("Title of the talk", key="present.title",
                      placeholder="shown on the first slide (default: Comparing N runs)")
    chosen = st.session_state[RUNS_KEY]
    if chosen:
        st.query_params["runs"] = ",".join(chosen)
    elif "runs" in st.query_params:
        del st.query_params["runs"]
    return [done[i] for i in chosen]


# --------------------------------------------------------------------------- slides


def stamps(runs: list[Run]) -> tuple:
    """The cache key of everything the slides read."""
    return tuple(ui.run_stamp(r, RUN_FILE, METRICS_FILE, PREDICTION_FILE, DIAGNOSTICS_FILE)
                 for r in runs)


def _diagnostics(run: Run):
    diag, reason = ui.diagnostics(run)
    if diag is None and (run.path / DIAGNOSTICS_FILE).is_file():
        raise ValueError(reason)
    return diag


@st.cache_resource(max_entries=4, show_spinner="Preparing the slides…")
def _deck(key: tuple, title: str) -> tuple[list[deck.Slide], list[str]]:
    """The slides of the runs in ``key`` (their folders and file times) and what was left
    out; the figures themselves are drawn when shown (:func:`_png`)."""
    notes: list[str] = []
    runs = [Run(Path(s[0])) for s in key]
    return deck.build_slides(runs, title=title or None, prediction=ui.prediction,
                             diagnostics=_diagnostics, notes=notes), notes


@st.cache_data(max_entries=64, show_spinner=False)
def _png(key: tuple, title: str, index: int) -> bytes:
    """The PNG (200 dpi, 16:9) of slide ``index`` of the deck ``(key, title)``."""
    slides, _ = _deck(key, title)
    return deck.render_png(slides[index])


def go(step: int, count: int) -> None:
    """Button callback: the previous or next slide."""
    current = st.session_state.get(SLIDE_KEY, 0)
    st.session_state[SLIDE_KEY] = min(max(int(current) + step, 0), count - 1)


def initial_slide(count: int) -> None:
    """``present.slide`` from ``?slide=N`` (1-based) on the first visit, kept in range."""
    if SLIDE_KEY not in st.session_state:
        try:
            wanted = int(str(st.query_params.get("slide", "1"))) - 1
        except ValueError:
            wanted = 0
        st.session_state[SLIDE_KEY] = wanted
    value = st.session_state[SLIDE_KEY]
    if not isinstance(value, int) or not 0 <= value < count:
        st.session_state[SLIDE_KEY] = min(max(int(value) if isinstance(value, int) else 0, 0),
                                          count - 1)


def navigation(slides: list[deck.Slide]) -> int:
    """Previous, the counter, Next, the slide picker; returns the slide shown."""
    count = len(slides)
    initial_slide(count)
    current = st.session_state[SLIDE_KEY]
    cols = st.columns([1.2, 0.9, 1.2, 5, 1.6], vertical_alignment="center")
    cols[0].button("◀ Previous", key="present.previous", width="stretch",
                   disabled=current == 0, on_click=go, args=(-1, count))
    cols[1].markdown(f"<div style='text-align:center;font-size:1.4rem;font-weight:600'>"
                     f"{current + 1} / {count}</div>", unsafe_allow_html=True)
    cols[2].button("Next ▶", key="present.next", width="stretch", type="primary",
                   disabled=current == count - 1, on_click=go, args=(1, count))
    titles = [s.title for s in slides]
    index = cols[3].selectbox("Slide", list(range(count)), key=SLIDE_KEY,
                              format_func=lambda i: f"{i + 1}. {titles[i]}",
                              label_visibility="collapsed")
    cols[4].toggle("Full screen", key="present.full_screen",
                   help="hide the sidebar and the page title; turn off to leave the page")
    if st.query_params.get("slide") != str(index + 1):
        st.query_params["slide"] = str(index + 1)  # the address reopens this slide
    return index


def main() -> None:
    ui.page_setup("Present")
    st.session_state.setdefault("present.full_screen", True)
    if st.session_state["present.full_screen"]:
        st.markdown(FULL_SCREEN_CSS, unsafe_allow_html=True)
    runs = choose_runs()
    if runs is None:
        return
    if not runs:
        st.info("Choose the runs to present above (or on the Compare page): one slide per "
                "screen, Previous / Next to step through them.")
        st.toggle("Full screen", key="present.full_screen")
        return
    key = stamps(runs)
    title = str(st.session_state.get("present.title") or "").strip()
    slides, notes = _deck(key, title)
    index = navigation(slides)
    slide = slides[index]
    try:
        with st.spinner("Drawing the slide…"):
            png = _png(key, title, index)
    except Exception as exc:  # noqa: BLE001 (a damaged file: say so, the other slides work)
        st.error(ui.plain(f"This slide cannot be drawn: "
                          f"{ui.first_line(str(exc)) or type(exc).__name__}"))
    else:
        st.image(png, width="stretch")
        left, right = st.columns([5, 1.6], vertical_alignment="center")
        left.caption(ui.plain(slide.caption))
        safe = "".join(c if c.isalnum() else "-" for c in slide.title).strip("-")[:60]
        right.download_button("Download this slide (PNG)", png, mime="image/png",
                              file_name=f"slide-{index + 1:02d}-{safe or 'slide'}.png",
                              key="present.download", width="stretch")
    for note in notes:
        st.caption(ui.plain(f"Left out: {note}"))
    if index + 1 < len(slides):  # drawn now, shown at once on Next
        try:
            _png(key, title, index + 1)
        except Exception:  # noqa: BLE001, S110 (reported when that slide is shown)
            pass


main()
