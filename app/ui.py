"""Helpers shared by the dashboard pages: caches, widgets generated from configs, tables.

Pages hold layout; everything they share lives here. Nothing in this module does science:
it calls ``backend``, ``data`` and ``metrics`` and formats what they return. Caches follow
STYLE.md: ``st.cache_resource`` for opened datasets (keyed on path + modification time),
``st.cache_data`` with ``max_entries`` for derived arrays and tables.
"""

from __future__ import annotations

import atexit
import io
import math
import os
import re
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import streamlit as st
import xarray as xr
import yaml
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from pydantic import BaseModel
from streamlit.errors import StreamlitAPIException

from backend import paths
from backend.store import DIAGNOSTICS_FILE, PREDICTION_FILE, Run, RunStore
from data.canonical import open_dataset
from metrics.scores import SCORES, ordered_keys
from metrics.scores import info as score_info

MISSING = "—"
ACTIVE_STATUSES = ("queued", "running")
CURRENT_RUN_KEY = "current_run"
DATASET_KEY = "dataset_path"
#: Status shown for a run folder whose run.json (or metrics.json) cannot be read.
UNREADABLE = "unreadable"


# --------------------------------------------------------------------------- untrusted text
#
# Text read from files (error messages, attributes, variable names, run ids, notes, anything
# in run.json or metrics.json) may hold Markdown, HTML, LaTeX or Streamlit directives. Every
# Streamlit element that renders Markdown (markdown, caption, error/warning/info/success,
# toast, metric label and value, progress text, widget labels, help tooltips) gets it through
# `plain` (or `literal` for a path or id in code style); st.text, st.code, st.dataframe and
# select-box options show text as it is.

_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")


def plain(text: Any) -> str:
    """``text`` escaped so that a Markdown element shows it literally.

    Every ASCII punctuation character gets a backslash (CommonMark allows escaping any of
    them), which disables emphasis, links, autolinks, images, HTML, entities, headings,
    lists, tables, LaTeX (``$``) and Streamlit's ``:colour[…]`` directives. Line breaks are
    kept as hard breaks. ``None`` becomes an empty string.
    """
    if text is None:
        return ""
    escaped = _PUNCTUATION.sub(r"\\\1", str(text))
    return "  \n".join(line.strip() for line in escaped.strip().splitlines())


def literal(text: Any) -> str:
    """``text`` as one Markdown code span (monospace, nothing inside interpreted).

    The fence is one backtick longer than the longest run of backticks in the text, as
    CommonMark requires; line breaks become spaces.
    """
    body = " ".join(str(text).split("\n")).replace("\r", " ")
    runs = [len(m) for m in re.findall(r"`+", body)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if body.startswith("`") or body.endswith("`") or not body.strip() else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def as_dict(value: Any) -> dict:
    """``value`` when it is a dict, else an empty dict (for fields of run.json)."""
    return value if isinstance(value, dict) else {}


def as_number(value: Any) -> float | None:
    """``value`` as a finite float when it is a real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def as_text(value: Any, default: str = "") -> str:
    """``value`` as a string (``default`` for None or an empty value)."""
    if value is None:
        return default
    text = value if isinstance(value, str) else str(value)
    return text if text.strip() else default


# --------------------------------------------------------------------------- page chrome


#: Widget keys (prefixes) whose values outlive a visit to another page: the Experiment form.
PERSISTED_PREFIXES = ("exp.",)
#: Keys under those prefixes that are buttons or panel state (never re-assigned).
NOT_PERSISTED = ("exp.launch", "exp.cancel", "exp.forget", "exp.force_new", "exp.panel.",
                 "exp.workers_started")


def persist_form_state() -> None:
    """Keep the Experiment form's choices (task, model, epochs, …) when the user visits
    another page and comes back: Streamlit forgets the values of widgets a page did not
    draw, unless they are assigned again on each run (its documented way to keep them)."""
    for key in list(st.session_state):
        key = str(key)
        if key.startswith(PERSISTED_PREFIXES) and not key.startswith(NOT_PERSISTED):
            try:
                st.session_state[key] = st.session_state[key]
            except Exception:  # noqa: BLE001, S112 (a widget whose value cannot be set: left alone)
                continue


def page_setup(title: str, icon: str = "🌊") -> None:
    """Page config and title; call first on every page."""
    st.set_page_config(page_title=f"{title} · OceanLab", page_icon=icon, layout="wide")
    st.session_state[DRAWN_KEY] = {}  # the figures this run of the page draws
    persist_form_state()
    st.title(title)


def page_link(page: str, label: str, *, icon: str | None = None,
              query_params: dict[str, str] | None = None) -> None:
    """``st.page_link`` that degrades to a plain link when the page is not registered.

    ``label`` is Markdown: pass untrusted parts through :func:`plain`.

    A page run on its own (``AppTest.from_file("app/pages/X.py")``, or ``streamlit run`` of
    one page) has no navigation; a relative link then still works in the browser.
    """
    try:
        st.page_link(page, label=label, icon=icon, query_params=query_params)
    except StreamlitAPIException:
        name = Path(page).stem.split("_", 1)[-1]
        query = urlencode(query_params or {})  # run ids are untrusted: percent-encoded
        st.markdown(f"[{label}](./{name}{'?' + query if query else ''})")


def show_figure(fig: Figure) -> None:
    """Draw a matplotlib figure and release it at once."""
    import matplotlib.pyplot as plt

    try:
        st.pyplot(fig, clear_figure=True)
    finally:
        plt.close(fig)


#: Resolution of the figures drawn through :func:`show_cached_figure` (st.pyplot's).
FIGURE_DPI = 200


@st.cache_data(max_entries=48, show_spinner=False)
def _figure_png(key: tuple, _build: Callable[[], Figure]) -> bytes:
    """The PNG of the figure ``_build()`` makes; ``key`` alone is the cache key (the builder,
    its name starting with ``_``, is not hashed)."""
    import matplotlib.pyplot as plt

    fig = _build()
    try:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return _fit_width(buffer.getvalue())


#: Widest image Streamlit shows as it is; a wider one it shrinks and re-encodes on every
#: run of the page (0.1–0.2 s per figure), so cached figures are shrunk once, here.
DISPLAY_MAX_PX = 1460


def _fit_width(png: bytes, max_px: int = DISPLAY_MAX_PX) -> bytes:
    """``png`` shrunk (Lanczos) to at most ``max_px`` pixels wide; unchanged when narrower.
    Downloads are drawn again at :data:`EXPORT_DPI`, never from this."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        if image.width <= max_px:
            return png
        height = max(1, round(image.height * max_px / image.width))
        small = image.resize((max_px, height), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        small.save(out, format="PNG", optimize=False)
    return out.getvalue()


def show_cached_figure(key: tuple, build: Callable[[], Figure]) -> None:
    """Draw the figure ``build()`` makes, cached as PNG bytes on ``key``.

    ``key`` must name everything the figure depends on: the run folder, the modification
    time of each file it reads (:func:`run_stamp`) and the widget values, so that drawing
    the same view again (a revisit, another session) calls no builder and reads no file.
    PNG bytes pickle where matplotlib figures may not, and ``max_entries`` bounds the memory
    (48 figures of a few hundred kB).
    """
    st.image(_figure_png(key, build), width="stretch")
    drawn = st.session_state.setdefault(DRAWN_KEY, {})
    drawn[str(key[0]) if key else "figure"] = (key, build)


def prefetch_figures(items: list[tuple[tuple, Callable[[], Figure]]]) -> None:
    """Render ``(key, build)`` figures into the figure cache in a background thread (the
    next days of a map, while the user looks at this one), so that stepping to them shows
    a cached image at once. Errors are left for the page to show when it draws them."""
    import threading

    def work() -> None:
        for key, build in items:
            try:
                _figure_png(key, build)
            except Exception:  # noqa: BLE001, S112 (the page reports it if it draws this one)
                continue

    thread = threading.Thread(target=work, name="prefetch-figures", daemon=True)
    _PREFETCHING[:] = [t for t in _PREFETCHING if t.is_alive()]  # a long-lived server
    _PREFETCHING.append(thread)
    thread.start()


_PREFETCHING: list = []


def wait_for_prefetch(timeout: float = 60.0) -> None:
    """Wait for the figures being prefetched (tests, benches, and the end of the process:
    a thread stopped in the middle of drawing at interpreter exit can abort the process)."""
    while _PREFETCHING:
        _PREFETCHING.pop().join(timeout)


atexit.register(wait_for_prefetch, 30.0)


#: Session key of the figures the current page drew: ``{name: (cache key, builder)}``.
DRAWN_KEY = "_figures_drawn"
#: Resolution of a figure downloaded for slides.
EXPORT_DPI = 200


@st.cache_data(max_entries=16, show_spinner=False)
def _figure_export(key: tuple, fmt: str, _build: Callable[[], Figure]) -> bytes:
    """The figure as ``fmt`` (png at :data:`EXPORT_DPI`, or pdf) for a download."""
    import matplotlib.pyplot as plt

    fig = _build()
    try:
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=EXPORT_DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def downloads_section(run: Run, key_prefix: str) -> None:
    """Downloads of what the page shows: any of its figures as PNG (presentation
    resolution) or PDF, the scores as CSV, the prediction as NetCDF."""
    st.subheader("Downloads")
    figure_downloads(key_prefix, run.id)
    metrics, _ = read_metrics(run)
    cols = st.columns(2)
    cols[0].download_button(
        "Scores (CSV)", scores_table(metrics).to_csv(index=False).encode(),
        file_name=f"{run.id}-scores.csv", mime="text/csv", key=f"{key_prefix}.scores_csv")
    pred = run.path / "prediction.nc"
    if pred.is_file():
        cols[1].download_button(
            "Prediction (NetCDF)", pred.read_bytes, file_name=f"{run.id}-prediction.nc",
            mime="application/x-netcdf", key=f"{key_prefix}.prediction_nc")

        def animation() -> bytes:  # made when clicked: a few seconds for 30 frames
            from app.animation import animation_bytes

            return animation_bytes(run, ".gif", days=30)

        st.download_button(
            "Animation for slides (GIF: truth, reconstruction, residual)", animation,
            file_name=f"{run.id}.gif", mime="image/gif", key=f"{key_prefix}.animation")


def figure_downloads(key_prefix: str, file_prefix: str) -> None:
    """Any figure this run of the page drew, as PNG (presentation resolution,
    :data:`EXPORT_DPI`) or PDF, made when the button is clicked."""
    drawn = st.session_state.get(DRAWN_KEY) or {}
    if not drawn:
        return
    cols = st.columns(3)
    name = cols[0].selectbox("Figure", sorted(drawn), key=f"{key_prefix}.figure")
    fmt = cols[1].radio("Format", ["png", "pdf"], horizontal=True, key=f"{key_prefix}.fmt")
    fig_key, build = drawn[name]
    safe = "".join(c if c.isalnum() else "-" for c in name).strip("-") or "figure"
    cols[2].download_button(  # made when clicked, not on every run of the page
        f"Download {fmt.upper()}", lambda: _figure_export(fig_key, fmt, build),
        file_name=f"{file_prefix}-{safe}.{fmt}", key=f"{key_prefix}.download_figure",
        mime="application/pdf" if fmt == "pdf" else "image/png")


def run_stamp(run: Run, *files: str) -> tuple:
    """``(run folder, mtime of each of files)``: the run part of a cache key."""
    return (str(run.path), *(file_mtime(run.path / name) for name in files))


@st.cache_resource(max_entries=8, show_spinner=False)
def _store_cached(root: str) -> RunStore:
    return RunStore(root)


def store() -> RunStore:
    """The run store of the workspace (``$OCEANLAB_HOME/runs``): one object per folder,
    shared by every session (``st.cache_resource``; it holds only its path)."""
    return _store_cached(str(paths.runs_dir()))


# --------------------------------------------------------------------------- datasets


def file_mtime(path: str | os.PathLike) -> float:
    """Modification time (0 when the path is missing or a glob): part of cache keys."""
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0


@st.cache_resource(max_entries=4, show_spinner="Opening dataset…")
def _open_cached(path: str, mtime: float) -> xr.Dataset:
    return open_dataset(path)


def open_cached(path: str | os.PathLike) -> xr.Dataset:
    """Canonical dataset (:func:`data.canonical.open_dataset`), shared across sessions and
    reopened when the file changes. Do not modify the returned object.

    Raises
    ------
    DataError : the path or its content cannot be used (message names the path).
    """
    return _open_cached(str(path), file_mtime(path))


@st.cache_data(max_entries=64, show_spinner=False)
def day_field(path: str, mtime: float, var: str, day: str) -> xr.DataArray:
    """One day ``(lat, lon)`` of ``var`` in the dataset at ``path``, loaded in memory."""
    ds = _open_cached(path, mtime)
    return ds[var].sel(time=pd.Timestamp(day), method="nearest").load()


@st.cache_data(max_entries=16, show_spinner=False)
def variable_style(path: str, mtime: float, var: str) -> tuple[Colormap, float, float]:
    """Colormap and limits covering every value of ``var`` (stable across days)."""
    from app.figures import field_style

    ds = _open_cached(path, mtime)
    da = ds[var]
    step = max(1, da.sizes.get("time", 1) // 120)  # a subsample of days bounds the cost
    sample = da.isel(time=slice(None, None, step)).values
    return field_style(var, dict(da.attrs), sample)


def open_or_error(path: str) -> xr.Dataset | None:
    """:func:`open_cached`, or None after showing one ``st.error`` line naming ``path``.

    ``path`` is the built-in dataset or one returned by :func:`dataset_picker` (checked
    against the data roots).
    """
    from oceanlab_errors import OceanLabError

    try:
        return open_cached(path)
    except OceanLabError as exc:
        st.error(plain(exc))
    except Exception as exc:  # noqa: BLE001 (a reader choking on a user's file is bad input)
        first = first_line(str(exc))
        st.error(plain(f"{path}: cannot be opened "
                       f"({type(exc).__name__}{': ' + first if first else ''})"))
    return None


def first_line(text: str | None) -> str:
    """The first non-blank line of ``text`` (empty string when there is none)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[0] if lines else ""


def time_labels(times: pd.DatetimeIndex) -> list[str]:
    """Dates as ``YYYY-MM-DD`` (with the hour when the steps are not whole days)."""
    whole_days = bool((times == times.normalize()).all())
    return [t.strftime("%Y-%m-%d" if whole_days else "%Y-%m-%d %H:%M") for t in times]


def obs_variable(ds: xr.Dataset, var: str) -> str | None:
    """The dataset's observation variable for overlays (``oceanlab_obs_var``), if any."""
    name = ds.attrs.get("oceanlab_obs_var")
    return name if name in ds.data_vars and name != var else None


def data_variables(ds: xr.Dataset) -> list[str]:
    """Gridded variables of a canonical dataset (without the mask)."""
    return [str(v) for v in ds.data_vars if v != "mask"]


def builtin_status() -> tuple[Path, bool]:
    """Path of the built-in OSSE and whether it exists already."""
    path = paths.builtin_dataset_path()
    return path, path.is_file()


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunInfo:
    """What the pages show of one run's ``run.json``, every field checked.

    A run.json that cannot be read (missing, not UTF-8, not JSON, not an object) gives
    status :data:`UNREADABLE` and the reason in ``error``; fields of an odd type fall back
    to their defaults, so pages can use them without further checks. Every text here comes
    from a file: show it with :func:`plain` (or :func:`literal`) in Markdown elements.
    """

    id: str
    status: str = UNREADABLE
    error: str = ""
    traceback: str = ""
    model: str = "?"
    task: str = ""
    device: str = ""
    data_path: str = ""
    seconds: float | None = None
    epoch: int | None = None
    epochs: int | None = None
    test_period: tuple[str, str] | None = None
    config: dict = dataclass_field(default_factory=dict)
    #: Unix times the run entered the queue, started and finished (None when not recorded).
    queued_unix: float | None = None
    started_unix: float | None = None
    finished_unix: float | None = None
    #: The latest progress (stage, done/total/unit, epoch/epochs, losses, eta_s), checked.
    progress: dict = dataclass_field(default_factory=dict)
    executor: str = ""
    #: What executed the run (precision, compilation, …) and the data cache's answer.
    execution: dict = dataclass_field(default_factory=dict)
    cache: dict = dataclass_field(default_factory=dict)

    @property
    def readable(self) -> bool:
        return self.status != UNREADABLE


def _whole(value: Any) -> int | None:
    x = as_number(value)
    return int(x) if x is not None and x == int(x) else None


def read_run(run: Run) -> RunInfo:
    """The checked content of ``run``'s run.json (never raises)."""
    try:
        info = run.info()
    except Exception as exc:  # noqa: BLE001 (a damaged or half-written run.json is data)
        return RunInfo(id=run.id, error=first_line(str(exc)) or type(exc).__name__)
    if not isinstance(info, dict):
        return RunInfo(id=run.id, error=f"{run.path / 'run.json'}: holds a "
                                        f"{type(info).__name__}, expected an object")
    config = as_dict(info.get("config"))
    data = as_dict(info.get("data"))
    progress = as_dict(info.get("progress"))
    periods = as_dict(info.get("periods"))
    test = periods.get("test")
    status = as_text(info.get("status"), "unknown")
    return RunInfo(
        id=run.id,
        status=status if status != UNREADABLE else "unknown",
        error=as_text(info.get("error")),
        traceback=as_text(info.get("traceback")),
        model=as_text(as_dict(config.get("model")).get("name"), "?"),
        task=as_text(as_dict(config.get("task")).get("name")),
        device=as_text(info.get("device")),
        data_path=as_text(data.get("path")) or as_text(as_dict(config.get("data")).get("path")),
        seconds=as_number(as_dict(info.get("timings")).get("total_s")),
        epoch=_whole(progress.get("epoch")),
        epochs=_whole(progress.get("epochs")),
        test_period=(as_text(test[0]), as_text(test[1]))
        if isinstance(test, list | tuple) and len(test) == 2 else None,
        config=config,
        queued_unix=as_number(info.get("queued_unix")),
        started_unix=as_number(info.get("started_unix")),
        finished_unix=as_number(info.get("finished_unix")),
        progress=progress,
        executor=as_text(info.get("executor")),
        execution=as_dict(info.get("execution")),
        cache=as_dict(info.get("cache")),
    )


def read_metrics(run: Run) -> tuple[dict, str]:
    """``metrics.json`` of ``run`` and, when it cannot be read, ``({}, reason)``."""
    try:
        metrics = run.metrics()
    except Exception as exc:  # noqa: BLE001 (damaged file: show the reason, keep going)
        return {}, first_line(str(exc)) or type(exc).__name__
    if not isinstance(metrics, dict):
        return {}, (f"{run.path / 'metrics.json'}: holds a {type(metrics).__name__}, "
                    "expected an object")
    return metrics, ""


def read_history(run: Run) -> pd.DataFrame:
    """``history.csv`` of ``run`` with numeric columns (empty when missing or unreadable)."""
    try:
        history = run.history()
    except Exception:  # noqa: BLE001 (binary or damaged file: no curve rather than a crash)
        return pd.DataFrame()
    return history.apply(pd.to_numeric, errors="coerce") if not history.empty else history


def runs_table(run_store: RunStore) -> pd.DataFrame:
    """:meth:`RunStore.table`, made safe to count, filter and show.

    Columns ``id``, ``status`` and ``error`` always exist (run columns first, then the scores
    in :data:`metrics.scores.SCORES` order, ``error`` last); ``status`` is a string
    (:data:`UNREADABLE` for folders that cannot be read) and columns mixing types are shown
    as text. Should the store fail as a whole, the rows are rebuilt from :func:`read_run`.
    """
    try:
        table = run_store.table()
        if not isinstance(table, pd.DataFrame):
            raise TypeError("RunStore.table did not return a DataFrame")
    except Exception:  # noqa: BLE001 (one damaged run.json must not hide all the others)
        rows = []
        for run in run_store.runs():
            info = read_run(run)
            rows.append({"id": run.id, "status": info.status, "task": info.task or None,
                         "model": info.model, "seconds": info.seconds,
                         "error": info.error or None})
        table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=["id", "status", "error"])
    table = table.copy()
    for col in ("id", "status", "error"):
        if col not in table:
            table[col] = None
    table["id"] = table["id"].map(lambda v: as_text(v, "?"))
    table["status"] = table["status"].map(lambda v: as_text(v, "unknown"))
    for col in table.columns:
        if table[col].dtype == object:
            kinds = {type(v) for v in table[col] if not _missing(v)}
            if kinds - {str}:
                table[col] = table[col].map(lambda v: None if _missing(v) else str(v))
    first = [c for c in ("id", "name", "tags", "status", "task", "model", "data", "settings",
                         "created", "seconds") if c in table]
    scores = [k for k in SCORES if k in table]  # the score registry's order
    rest = [c for c in table.columns if c not in first and c not in scores and c != "error"]
    return table[[*first, *scores, *rest, "error"]]


def with_queue_positions(table: pd.DataFrame, run_store: RunStore) -> pd.DataFrame:
    """``table`` (:func:`runs_table`) with a ``queue`` column after ``status``: the place of
    each queued run in the queue (1 = next to start), empty for the others; unchanged when
    nothing is queued."""
    from backend import jobs

    if table.empty or "id" not in table:
        return table
    try:
        positions = jobs.queue_positions(run_store)
    except Exception:  # noqa: BLE001 (a queue folder that cannot be read: no column)
        return table
    queued = table["status"] == "queued"
    if not positions or not queued.any():
        return table
    table = table.copy()
    column = table["id"].map(positions).where(queued).astype("Int64")
    table.insert(table.columns.get_loc("status") + 1, "queue", column)
    return table


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def run_label(run: Run) -> str:
    """``id · model · status`` for select boxes (whose options are shown as plain text)."""
    info = read_run(run)
    return f"{run.id} · {info.model} · {info.status}"


@st.cache_data(max_entries=32, show_spinner=False)
def _history_cached(run_dir: str, mtime: float) -> pd.DataFrame:
    return read_history(Run(Path(run_dir)))


def history(run: Run) -> pd.DataFrame:
    """:func:`read_history`, cached on the run folder and history.csv's modification time."""
    from backend.store import HISTORY_FILE

    return _history_cached(str(run.path), file_mtime(run.path / HISTORY_FILE))


def worker_alive(run: Run) -> bool:
    """Whether the worker process of ``run`` still runs (see :func:`backend.jobs.is_alive`)."""
    from backend import jobs

    return jobs.is_alive(run)


def done_runs(runs: list[Run]) -> list[Run]:
    """Runs with status ``done`` and a prediction file, in the given order."""
    return [run for run in runs
            if read_run(run).status == "done" and (run.path / PREDICTION_FILE).is_file()]


# --------------------------------------------------------------------------- live runs
#
# The queued and running runs of the workspace, whoever launched them (this tab, another tab,
# ``python -m app submit``), read from the run store by :func:`backend.jobs.active_runs`.

#: Seconds between two looks of the active runs panel at the run store.
PANEL_REFRESH_S = 2
#: Seconds a Cancel click waits for a running run's worker to record the end.
CANCEL_WAIT_S = 3.0
#: What a run does in a stage that reports no count of its own.
STAGE_WORDS = {"start": "starting", "load": "loading data", "fit": "fitting",
               "predict": "predicting the test period", "score": "scoring",
               "done": "writing the results"}


def format_duration(seconds: Any) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour on); ``—`` for None, NaN or a negative value."""
    x = as_number(seconds)
    if x is None or x < 0:
        return MISSING
    hours, rest = divmod(round(x), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, …, ``11th``, ``21st``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _count(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.3g}"


def queue_text(position: int | None, busy: int | None = None, slots: int | None = None) -> str:
    """``queued — 2nd in line, 1 of 1 slot busy`` (what a queued run waits for)."""
    where = f"{ordinal(position)} in line" if position else "waiting for a worker"
    if slots:
        where += f", {busy or 0} of {slots} slot{'' if slots == 1 else 's'} busy"
    return f"queued — {where}"


def progress_view(progress: Any, status: str, *, position: int | None = None,
                  busy: int | None = None, slots: int | None = None) -> tuple[float | None, str]:
    """The share done (None when the current stage has no count) and the words of a run's
    progress (``progress`` of run.json): ``epoch 3 / 20 · train loss 0.12``,
    ``solve: 120 / 365 days``, ``loading data``; a queued run's place in the queue.
    The text comes from a file: show it through :func:`plain`."""
    if status == "queued":
        return 0.0, queue_text(position, busy, slots)
    progress = as_dict(progress)
    stage = as_text(progress.get("stage"))
    done, total = as_number(progress.get("done")), as_number(progress.get("total"))
    epoch, epochs = _whole(progress.get("epoch")), _whole(progress.get("epochs"))
    if epoch is not None and epochs and stage in ("", "fit"):
        parts = [f"epoch {epoch} / {epochs}"]
        for key, label in (("train_loss", "train loss"), ("val_loss", "val loss")):
            value = as_number(progress.get(key))
            if value is not None:
                parts.append(f"{label} {value:.3g}")
        return min(1.0, max(0.0, epoch / epochs)), " · ".join(parts)
    if done is not None and total is not None and total > 0:
        unit = as_text(progress.get("unit"))
        text = f"{stage or 'working'}: {_count(done)} / {_count(total)}" + (f" {unit}" if unit else "")
        return min(1.0, max(0.0, done / total)), text
    if stage == "fit":
        return None, "fitting (first epoch under way)" if epochs else "fitting"
    return None, STAGE_WORDS.get(stage, stage or status)


def time_left_text(progress: Any) -> str:
    """``about 1:20 left in solve`` from the progress's ``eta_s`` (empty when unknown)."""
    progress = as_dict(progress)
    eta = as_number(progress.get("eta_s"))
    if eta is None:
        return ""
    stage = as_text(progress.get("stage"))
    return f"about {format_duration(eta)} left" + (f" in {stage}" if stage else "")


def elapsed_s(info: RunInfo, now: float | None = None) -> float | None:
    """Seconds a run has been running (since it started) or waiting (since it was queued);
    its total time once it has ended."""
    now = time.time() if now is None else now
    if info.status == "running" and info.started_unix is not None:
        return max(0.0, now - info.started_unix)
    if info.status == "queued" and info.queued_unix is not None:
        return max(0.0, now - info.queued_unix)
    if info.seconds is not None:
        return info.seconds
    if info.started_unix is not None and info.finished_unix is not None:
        return max(0.0, info.finished_unix - info.started_unix)
    return None


@st.cache_data(ttl=60, show_spinner=False)
def _configured_slots(env: str) -> int:
    from backend import jobs
    from oceanlab_errors import OceanLabError

    try:
        return jobs.slots()
    except OceanLabError:
        return 1


def slot_count(run_store: RunStore) -> int:
    """Runs executed at once: what the live slot workers say, else the setting
    (``OCEANLAB_SLOTS``, one per GPU)."""
    from backend import jobs

    try:
        workers = jobs.worker_status(run_store)
    except Exception:  # noqa: BLE001 (a slot folder that cannot be read: the setting)
        workers = []
    for worker in workers:
        n = as_number(as_dict(worker).get("slots"))
        if n is not None and n >= 1:
            return int(n)
    return _configured_slots(os.environ.get("OCEANLAB_SLOTS", ""))


def busy_slots(run_store: RunStore, active: list | None = None) -> int:
    """Slots executing a run now: running runs (of ``active``, a :func:`backend.jobs.active_runs`
    list, read when None) whose process is a live slot worker of the store. A run executed
    by ``python -m app train`` or a Dask cluster takes no slot."""
    from backend import jobs

    try:
        workers = [w for w in jobs.worker_status(run_store) if isinstance(w, dict)]
        if active is None:
            active = jobs.active_runs(run_store)
    except Exception:  # noqa: BLE001 (a store that cannot be read: say none)
        return 0
    pids = {w.get("pid") for w in workers if w.get("pid") is not None}
    busy = 0
    for item in active:
        if item.status != "running" or not pids:
            continue
        try:
            info = run_store.get(item.id).info()
        except Exception:  # noqa: BLE001 (ended and deleted meanwhile, or damaged)
            info = {}
        busy += as_dict(info.get("worker")).get("pid", info.get("pid")) in pids
    return min(busy, len(workers))


@st.cache_data(max_entries=32, show_spinner=False)
def _epoch_curve(run_dir: str, mtime: float, size: int) -> pd.DataFrame:
    rows = [e for e in Run(Path(run_dir)).events() if e.get("kind") == "epoch"]
    table = pd.DataFrame(rows)
    losses = [c for c in table.columns if str(c) in ("train_loss", "val_loss")]
    if table.empty or "epoch" not in table or not losses:
        return pd.DataFrame()
    table = table[["epoch", *losses]].apply(pd.to_numeric, errors="coerce")
    return table.dropna(subset=["epoch"]).drop_duplicates("epoch", keep="last").set_index("epoch")


def epoch_curve(run: Run) -> pd.DataFrame:
    """Losses by epoch from the run's events (index epoch; columns train_loss, val_loss),
    cached on events.jsonl's modification time and size; empty when there is none."""
    from backend.record import EVENTS_FILE

    try:
        stat = (run.path / EVENTS_FILE).stat()
    except OSError:
        return pd.DataFrame()
    try:
        return _epoch_curve(str(run.path), stat.st_mtime, stat.st_size)
    except Exception:  # noqa: BLE001 (an unreadable log: no curve rather than a crash)
        return pd.DataFrame()


def _cancel_from_panel(run_id: str, key_prefix: str) -> None:
    """Button callback: cancel one run, leave a message for the panel."""
    from backend import jobs
    from oceanlab_errors import RunError

    try:
        run = store().get(run_id)
        if not jobs.cancel(run, wait_s=CANCEL_WAIT_S):
            message = ("info", f"Run {plain(run_id)} had already ended.")
        elif read_run(run).status in ACTIVE_STATUSES:
            message = ("info", f"Cancel requested: run {plain(run_id)} stops in a moment.")
        else:
            message = ("success", f"Cancelled run {plain(run_id)}.")
    except RunError as exc:
        message = ("error", plain(exc))
    st.session_state[f"{key_prefix}.flash"] = message


def _fragment_rerun() -> bool:
    """Whether this script run reruns fragments only (a panel's timer or button)."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        return bool(ctx is not None and ctx.fragment_ids_this_run)
    except Exception:  # noqa: BLE001 (internal API: never worth a crash)
        return False


def active_runs_panel(key_prefix: str, *, when_empty: str | None = None,
                      title: str | None = None) -> None:
    """Every queued and running run of the workspace, whatever tab or process launched it,
    redrawn every :data:`PANEL_REFRESH_S` seconds: id, model and task, status, the place in
    the queue, a progress bar with its words, the elapsed time and an estimate of the time
    left, a live loss curve for runs with epochs, and a Cancel button (keys
    ``{key_prefix}.cancel.{run id}``). When a listed run ends the whole page is drawn again
    once (its tables then show the run). With no active run: ``when_empty`` as a caption,
    or nothing."""
    _active_runs_fragment(key_prefix, when_empty, title)


@st.fragment(run_every=PANEL_REFRESH_S)
def _active_runs_fragment(key_prefix: str, when_empty: str | None, title: str | None) -> None:
    from backend import jobs

    run_store = store()
    try:
        active = jobs.active_runs(run_store)
    except Exception as exc:  # noqa: BLE001 (a store that cannot be listed: say why)
        st.error(plain(f"{run_store.root}: the active runs cannot be listed "
                       f"({first_line(str(exc)) or type(exc).__name__})"))
        return
    seen_key = f"{key_prefix}.active_ids"
    before = set(st.session_state.get(seen_key) or ())
    ids = {a.id for a in active}
    st.session_state[seen_key] = sorted(ids)
    if before - ids and _fragment_rerun():
        st.rerun()  # a run ended: draw the whole page once, its tables included
    flash = st.session_state.pop(f"{key_prefix}.flash", None)
    if flash:  # (kind, Markdown already escaped by the callback)
        getattr(st, flash[0])(flash[1])
    if not active:
        if when_empty:
            st.caption(when_empty)
        return
    if title:
        st.subheader(title)
    busy = busy_slots(run_store, active)
    slots = slot_count(run_store)
    for item in active:
        _active_run_row(run_store, item, key_prefix, busy, slots)


def _active_run_row(run_store: RunStore, item: Any, key_prefix: str, busy: int,
                    slots: int) -> None:
    """One run of the panel (an :class:`backend.jobs.ActiveRun`)."""
    progress = as_dict(item.progress)
    with st.container(border=True):
        left, right = st.columns([6, 1], vertical_alignment="center")
        what = " · ".join(plain(x) for x in (item.model, item.task) if x)
        left.markdown(f"{literal(item.id)} · {what} · **{plain(item.status)}**")
        fraction, text = progress_view(progress, item.status, position=item.position,
                                       busy=busy, slots=slots)
        if fraction is not None:
            left.progress(fraction, text=plain(text))
        else:
            left.markdown(f"⏳ {plain(text)}")
        verb = "running for" if item.status == "running" else "waiting for"
        when = [f"{verb} {format_duration(item.elapsed_s)}"]
        if item.status == "running":
            left_text = time_left_text(progress)
            if left_text:
                when.append(left_text)
        if item.executor and item.executor != "local":
            when.append(f"executor {item.executor}")
        left.caption(plain(" · ".join(when)))
        right.button("Cancel", key=f"{key_prefix}.cancel.{item.id}", on_click=_cancel_from_panel,
                     args=(item.id, key_prefix),
                     help="a queued run leaves the queue; a running one stops within a second")
        if item.status == "running" and progress.get("epoch") is not None:
            try:
                curve = epoch_curve(run_store.get(item.id))
            except Exception:  # noqa: BLE001 (deleted meanwhile)
                curve = pd.DataFrame()
            if len(curve):
                left.line_chart(curve, x_label="epoch", y_label="loss", height=140)


@st.cache_resource(max_entries=12, show_spinner=False)  # Compare shows up to ~10 runs
def _prediction_cached(run_dir: str, mtime: float) -> xr.Dataset:
    return Run(Path(run_dir)).prediction()


def prediction(run: Run) -> xr.Dataset:
    """``prediction.nc`` of a run, in memory, cached on its path and modification time."""
    return _prediction_cached(str(run.path), file_mtime(run.path / PREDICTION_FILE))


def reconstruction_name(pred: xr.Dataset) -> str:
    """Name of the prediction variable (:func:`backend.compare.reconstruction_name`;
    RunError, one line, when there is none)."""
    from backend.compare import reconstruction_name as name_of

    return name_of(pred)


def ocean_mask(pred: xr.Dataset) -> xr.DataArray:
    """The prediction's ocean mask as bool ``(lat, lon)`` (True = ocean)."""
    if "mask" in pred:
        return pred["mask"].fillna(0) != 0
    truth = pred["truth"]
    return truth.notnull().any([d for d in truth.dims if d not in ("lat", "lon")])


def run_task(info: RunInfo, pred: xr.Dataset | None = None) -> str:
    """The task of a run: the prediction's ``oceanlab_task`` attribute (what the file holds),
    else ``task.name`` of run.json's config, else ``interpolation`` (runs made before tasks
    had names)."""
    attr = as_text(pred.attrs.get("oceanlab_task")) if pred is not None else ""
    return attr or info.task or "interpolation"


def headline_keys(task: str | None) -> tuple[str, ...]:
    """The scores shown large for ``task``: its class's ``headline_scores`` (an unknown task,
    from a plugin no longer installed, gets the base task's)."""
    from data.tasks import get_task
    from data.tasks.base import Task
    from oceanlab_errors import ConfigError

    try:
        return tuple(get_task(task or "interpolation").headline_scores)
    except ConfigError:
        return tuple(Task.headline_scores)


@st.cache_resource(max_entries=32, show_spinner=False)  # Compare: every chosen run's
def _diagnostics_cached(run_dir: str, mtime: float) -> xr.Dataset | None:
    return Run(Path(run_dir)).diagnostics()


def diagnostics(run: Run) -> tuple[xr.Dataset | None, str]:
    """``diagnostics.nc`` of a run (computed by the backend when the run was scored), cached
    on its path and modification time; ``(None, reason)`` when it is missing or unreadable.
    Do not modify the returned object."""
    path = run.path / DIAGNOSTICS_FILE
    if not path.is_file():
        return None, (f"this run has no {DIAGNOSTICS_FILE} (it was made before the backend "
                      "saved diagnostics); run the experiment again to see these curves")
    try:
        diag = _diagnostics_cached(str(run.path), file_mtime(path))
    except Exception as exc:  # noqa: BLE001 (a damaged file is data: say why, keep going)
        return None, first_line(str(exc)) or f"{path}: cannot be read ({type(exc).__name__})"
    if diag is None:  # removed between the check and the read
        return None, f"this run has no {DIAGNOSTICS_FILE}"
    return diag, ""


@st.cache_data(max_entries=16, show_spinner=False)
def psd_contour(run_dir: str, mtime: float, level: float = 0.5) -> list[np.ndarray]:
    """Lines of the ``level`` contour of the saved PSD score (drawing only, see
    :func:`metrics.psd_score_contour`)."""
    from metrics import psd_score_contour

    diag = _diagnostics_cached(run_dir, mtime)
    return psd_score_contour(diag["psd_score"], level)


def diagnostics_mtime(run: Run) -> float:
    """Modification time of ``diagnostics.nc`` (a cache key of :func:`psd_contour`)."""
    return file_mtime(run.path / DIAGNOSTICS_FILE)


def time_series(da: xr.DataArray, name: str = "") -> pd.Series:
    """A 1-D DataArray over ``time`` as a Series indexed by dates."""
    return pd.Series(np.asarray(da.values, dtype="float64"),
                     index=pd.DatetimeIndex(da["time"].values), name=name or da.name)


def lead_values(lead: xr.DataArray) -> np.ndarray:
    """Lead coordinate values as numbers of steps (timedeltas, if a reader decoded them as
    such, become days)."""
    values = np.asarray(lead.values)
    if np.issubdtype(values.dtype, np.timedelta64):
        return values / np.timedelta64(1, "D")
    return values


def lead_units(lead: xr.DataArray) -> str:
    """What one lead step is (``days`` for daily data), from the coordinate's ``units``."""
    return as_text(lead.attrs.get("units"), "time steps")


#: Per-lead diagnostics of a forecast (``metrics.forecast.score_forecast``): label → variable.
LEAD_RMSE = {"model": "rmse_forecast", "persistence": "rmse_persistence",
             "climatology": "rmse_climatology"}
LEAD_SKILL = {"skill vs persistence": "skill_persistence",
              "skill vs climatology": "skill_climatology", "ACC": "acc"}


def lead_curves(diag: xr.Dataset, names: dict[str, str]) -> dict[str, pd.Series]:
    """The per-lead variables ``names`` (label → variable) of ``diag`` present there, as
    Series indexed by lead."""
    out = {}
    for label, var in names.items():
        if var in diag and diag[var].dims == ("lead_time",):
            out[label] = pd.Series(np.asarray(diag[var].values, dtype="float64"),
                                   index=lead_values(diag["lead_time"]), name=label)
    return out


def lead_table(diag: xr.Dataset) -> pd.DataFrame:
    """Per-lead diagnostics as one row per lead (columns labelled by :data:`SCORES`)."""
    columns = {"lead": lead_values(diag["lead_time"])}
    for var, key in (("rmse_forecast", "rmse_by_lead"), ("rmse_persistence", None),
                     ("rmse_climatology", None), ("skill_persistence", "skill_persistence_by_lead"),
                     ("skill_climatology", "skill_climatology_by_lead"), ("acc", "acc_by_lead")):
        if var in diag and diag[var].dims == ("lead_time",):
            label = score_info(key).label if key else f"RMSE of {var.split('_', 1)[1]}"
            columns[label] = np.asarray(diag[var].values, dtype="float64")
    return pd.DataFrame(columns)


@st.cache_data(max_entries=16, show_spinner=False)
def field_limits(run_dir: str, mtime: float) -> tuple[float, float, float, float]:
    """Symmetric limits of the truth and of the residual over the whole test period."""
    from app.figures import shared_limits

    pred = _prediction_cached(run_dir, mtime)
    rec = pred[reconstruction_name(pred)]
    lo, hi = shared_limits(pred["truth"])
    rlo, rhi = shared_limits(rec - pred["truth"])
    return lo, hi, rlo, rhi


def on_lat_lon(da: xr.DataArray) -> xr.DataArray:
    """A field on a coarse grid (``lat_coarse``, ``lon_coarse``) renamed to ``lat``/``lon``
    for drawing."""
    names = {d: d.split("_")[0] for d in ("lat_coarse", "lon_coarse") if d in da.dims}
    return da.rename(names) if names else da


def scores_table(metrics: dict, data_units: str = "") -> pd.DataFrame:
    """``metrics.json`` as rows (score, key, value, units, better, note); None is ``—``.

    Rows follow :data:`metrics.scores.SCORES` (known scores first, unknown scalar keys
    after); list-valued scores (one value per forecast lead) are curves, not cells, and
    are left out. ``note`` holds the reason a score is missing.
    """
    metrics = as_dict(metrics)
    notes = as_dict(metrics.get("notes"))
    rows = []
    for key in ordered_keys(metrics, scalar_only=True):
        score = score_info(key)
        better = {"higher": "↑ higher", "lower": "↓ lower"}.get(score.better or "", "")
        rows.append({"score": score.label, "key": str(key),
                     "value": format_value(metrics.get(key)),
                     "units": score.unit_text(data_units), "better": better,
                     "note": as_text(notes.get(key))})
    return pd.DataFrame(rows, columns=["score", "key", "value", "units", "better", "note"])


def score_columns(columns: list[str]) -> dict[str, Any]:
    """``st.dataframe`` column settings labelling the score columns among ``columns`` from
    :data:`metrics.scores.SCORES` (label, unit, direction as help)."""
    out = {}
    for key in columns:
        if key in SCORES:
            score = SCORES[key]
            unit = score.unit_text("data units")
            label = f"{score.label} ({unit})" if unit else score.label
            why = f"; {score.better} is better" if score.better else ""
            out[key] = st.column_config.Column(label, help=f"{key}: {score.description}{why}")
    return out


def config_summary(config: dict) -> str:
    """The settings that tell a run apart (:func:`backend.config.summarize`); never raises."""
    from backend.config import summarize

    try:
        return summarize(as_dict(config))
    except Exception:  # noqa: BLE001 (a record of another version: show nothing rather than fail)
        return ""


def format_value(value: Any) -> str:
    """A score for display: 4 significant digits, ``—`` for None or NaN."""
    if value is None:
        return MISSING
    if isinstance(value, bool | str):
        return str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    return MISSING if not np.isfinite(x) else f"{x:.4g}"


def show_scores(metrics: dict, data_units: str = "", task: str | None = None) -> None:
    """The headline scores of ``task`` (its class's ``headline_scores``) as large numbers,
    then the table of every scalar score, with a caption listing why missing scores are
    missing."""
    table = scores_table(metrics, data_units)
    if table.empty:
        st.info("No scores recorded for this run.")
        return
    rows = table.set_index("key")
    headline = [k for k in headline_keys(task) if k in rows.index]
    for col, key in zip(st.columns(len(headline)) if headline else [], headline, strict=True):
        row = rows.loc[key]
        unit = f" ({row['units']})" if row["units"] else ""
        col.metric(plain(f"{row['score']}{unit}"), plain(row["value"]),
                   help=plain(row["note"]) or None)
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"note": st.column_config.TextColumn(
                     "note", help="why a score is missing (—)")})
    missing = table[table["value"] == MISSING]
    if len(missing):
        st.caption("— = not computable here: " + "; ".join(
            plain(f"{r.key}: {r.note}") for r in missing.itertuples() if r.note))


# --------------------------------------------------------------------------- config widgets


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            return args[0], optional
        return annotation, optional
    return annotation, False


def _bounds(field) -> dict[str, float]:
    out: dict[str, float] = {}
    for meta in field.metadata:
        if getattr(meta, "ge", None) is not None:
            out["min_value"] = meta.ge
        if getattr(meta, "le", None) is not None:
            out["max_value"] = meta.le
    return out


def _step(default: float) -> float:
    """A +/- step a tenth of the default's order of magnitude (0.002 → 0.0001, 7 → 0.1)."""
    if default == 0 or not np.isfinite(default):
        return 0.01
    return float(10.0 ** (np.floor(np.log10(abs(default))) - 1))


def _parse_text(text: str) -> Any:
    text = text.strip()
    if not text:
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def config_widgets(
    params_cls: type[BaseModel],
    key_prefix: str,
    *,
    skip: tuple[str, ...] = ("name",),
    values: dict[str, Any] | None = None,
    container: Any = None,
    columns: int = 2,
    section: str | None = None,
    hints: dict[str, tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """One widget per field of a pydantic model, with a human label and the field
    description and config key as help.

    ``bool`` → checkbox; ``int``/``float`` → number_input (``ge``/``le`` become the bounds;
    strict ``gt``/``lt`` are left to validation); ``Literal`` → selectbox; anything else
    (strings, optional values) → text_input read as a YAML scalar, empty = None.

    Parameters
    ----------
    params_cls : the model (a registered model's ``Params``, or a config section).
    key_prefix : widget keys are ``f"{key_prefix}.{field}"``.
    skip : fields without a widget.
    values : initial values instead of the field defaults.
    container : where to draw (default: the page); fields are laid out in ``columns``.
    section : the config section (``model``, ``task``, ``train``, ``data``) named in the
        help's config key (``model.lx_deg``); default: the second part of ``key_prefix``
        when it is one (``exp.model.oi`` → ``model``).
    hints : per field, ``(placeholder, extra help)`` for its text box (what an empty value
        means); optional fields without one say :func:`app.labels.empty_hint`.

    Labels come from :func:`app.labels.field_label` (title, table, or the name made
    readable); widget keys never depend on them.

    Returns
    -------
    ``{field: value}`` for every field drawn, to be validated by the config.
    """
    from app import labels

    parent = container if container is not None else st
    if section is None:
        parts = key_prefix.split(".")
        section = parts[1] if len(parts) > 1 and parts[1] in (
            "model", "task", "train", "data", "backend") else None
    names = [n for n in params_cls.model_fields if n not in skip]
    cols = parent.columns(columns) if names else []
    out: dict[str, Any] = {}
    for i, name in enumerate(names):
        field = params_cls.model_fields[name]
        col = cols[i % columns]
        default = (values or {}).get(name, field.get_default(call_default_factory=True))
        kind, optional = _unwrap_optional(field.annotation)
        key = f"{key_prefix}.{name}"
        label = labels.field_label(name, field, section)
        placeholder, extra_help = (hints or {}).get(name, (None, None))
        if placeholder is None and optional and default is None:
            placeholder = labels.empty_hint(name, section)
        help_text = labels.config_key_help(name, field.description, section, extra_help)
        if kind is bool and not optional:
            out[name] = col.checkbox(label, value=bool(default), help=help_text, key=key)
        elif kind in (int, float) and not optional:
            bounds = _bounds(field)
            if kind is int:
                out[name] = int(col.number_input(
                    label, value=int(default), step=1, help=help_text, key=key,
                    **{k: int(v) for k, v in bounds.items()}))
            else:
                out[name] = float(col.number_input(
                    label, value=float(default), step=_step(float(default)), format="%g",
                    help=help_text, key=key, **{k: float(v) for k, v in bounds.items()}))
        elif typing.get_origin(kind) is Literal:
            options = list(typing.get_args(kind)) + ([None] if optional else [])
            index = options.index(default) if default in options else 0
            out[name] = col.selectbox(label, options, index=index, help=help_text, key=key,
                                      placeholder=placeholder or "Choose an option")
        elif typing.get_origin(kind) in (list, dict):
            # Structured values (the loss terms) are edited as YAML, e.g. [{name: mse}].
            plain_default = [v.model_dump() if isinstance(v, BaseModel) else v for v in default] \
                if isinstance(default, list) else default
            text = yaml.safe_dump(plain_default, default_flow_style=True, sort_keys=False).strip()
            out[name] = _parse_text(col.text_input(label, value=text, help=help_text, key=key))
        else:
            text = "" if default is None else str(default)
            out[name] = _parse_text(col.text_input(label, value=text, help=help_text, key=key,
                                                   placeholder=placeholder))
    return out


def changed(values: dict[str, Any], params_cls: type[BaseModel]) -> dict[str, Any]:
    """The entries of ``values`` that differ from the fields' defaults."""
    fields = params_cls.model_fields
    return {k: v for k, v in values.items() if k not in fields or fields[k].default != v}


def dataset_picker(
    key_prefix: str, *, help_path: str | None = None, empty_hint: str | None = None
) -> tuple[str, str | None]:
    """Built-in OSSE or a NetCDF path typed by the user, accepted only under the data roots.

    The typed text goes through :func:`backend.paths.check_user_path`: a refused path shows
    one ``st.error`` (the same whether the file exists or not); an empty one shows
    ``empty_hint`` with ``st.info`` when given. The roots are listed under the text box.

    Returns
    -------
    ``(source, path)``: source ``"builtin"`` or ``"path"``; path is the built-in file's path
    (which may not exist yet), the checked path (a resolved file, or an absolute glob), or
    None when nothing usable was typed (the page has shown why).
    """
    remembered = st.session_state.get(DATASET_KEY)
    builtin = str(paths.builtin_dataset_path())
    choices = {"builtin": "Built-in OSSE (Gulf Stream box)", "path": "NetCDF file or glob",
               "upload": "Upload a file"}
    initial = 1 if remembered and remembered != builtin else 0
    source = st.radio("Dataset", list(choices), format_func=choices.get, index=initial,
                      horizontal=True, key=f"{key_prefix}.source")
    if source == "builtin":
        st.caption(literal(builtin))
        return "builtin", builtin
    from oceanlab_errors import DataError

    if source == "upload":
        return "upload", upload_picker(key_prefix)

    roots = paths.data_roots()
    example = roots[0] if roots else Path("/data")
    text = st.text_input("NetCDF path", value=remembered if initial else "",
                         placeholder=f"{example / 'file.nc'} or {example / '*.nc'}",
                         help=help_path, key=f"{key_prefix}.path")
    st.caption("Files (or globs of files) under the data roots "
               + (", ".join(literal(r) for r in roots) if roots else "(none configured)")
               + f"; set {literal(paths.DATA_ROOTS_ENV)} to change them.")
    if not text.strip():
        if empty_hint:
            st.info(empty_hint)
        return "path", None
    try:
        return "path", paths.check_user_path(text)
    except DataError as exc:
        st.error(plain(exc))
        return "path", None


def upload_picker(key_prefix: str) -> str | None:
    """A NetCDF file uploaded from the browser, stored by :func:`backend.paths.save_upload`
    in the workspace's ``uploads/`` folder under a generated name (never the user's); the
    stored path, or None (nothing uploaded, or refused: the page has said why)."""
    from oceanlab_errors import DataError

    limit = paths.upload_limit_mb()
    upload = st.file_uploader(
        f"NetCDF file (at most {limit} MB)", type=["nc", "nc4", "netcdf", "cdf", "h5"],
        key=f"{key_prefix}.upload", max_upload_size=limit,
        help=f"stored in {paths.uploads_dir()} under a name made from its content; larger "
             "files: put them under a data root and type their path")
    st.caption(f"Uploads of at most {limit} MB ({literal(paths.UPLOAD_MAX_ENV)}) are stored "
               f"in {literal(paths.uploads_dir())} under a generated name.")
    if upload is None:
        remembered = st.session_state.get(DATASET_KEY)
        if remembered and Path(remembered).parent == paths.uploads_dir().resolve():
            return remembered  # the file uploaded before, on another page
        return None
    saved = st.session_state.setdefault("_uploads", {})
    ident = (upload.file_id, upload.name, upload.size)
    if ident not in saved:
        try:
            upload.seek(0)
            saved[ident] = str(paths.save_upload(upload, upload.name, limit))
        except DataError as exc:
            st.error(plain(exc))
            return None
    path = saved[ident]
    st.caption(f"{plain(upload.name)} → {literal(path)}")
    return path


def remember_dataset(path: str | None) -> None:
    """Keep the dataset chosen on one page as the default of the others."""
    if path:
        st.session_state[DATASET_KEY] = path


def call_or_error(fn: Callable[[], Any]) -> tuple[Any, bool]:
    """Run ``fn``; show an :class:`~oceanlab_errors.OceanLabError` with ``st.error``.

    Returns ``(result, True)`` on success and ``(None, False)`` after an error.
    """
    from oceanlab_errors import OceanLabError

    try:
        return fn(), True
    except OceanLabError as exc:
        st.error(plain(exc))
        return None, False


# --------------------------------------------------------------------------- map views


def field_view(key: str, da: xr.DataArray) -> str:
    """The switch between SSH, geostrophic speed and relative vorticity ζ/f
    (:mod:`app.views`) for maps of ``da``; ``ssh`` (no switch) for a field that is not an
    SSH. The choice is kept in ``key`` and shared by the Results and Compare pages."""
    from app import views

    offered = views.available(da)
    if len(offered) == 1:
        return offered[0]
    if st.session_state.get(key) not in offered:
        st.session_state[key] = offered[0]
    return st.segmented_control(
        "Show", offered, key=key, format_func=views.VIEW_LABELS.get,
        help="the SSH, or the currents derived from it by geostrophy: the speed |u| and the "
             "relative vorticity ζ/f (as the current scores rmse_u, rmse_v and "
             "rmse_vorticity use them)") or offered[0]


@st.cache_data(max_entries=16, show_spinner=False)
def view_limits(run_dir: str, mtime: float, view: str) -> tuple[float, float, float, float]:
    """Colour limits of the truth and of the residual of ``view`` over the whole test
    period of a run (:func:`field_limits` for the SSH), cached on the prediction's
    modification time."""
    from app import views

    if view == "ssh":
        return field_limits(run_dir, mtime)
    pred = _prediction_cached(run_dir, mtime)
    truth = views.derive(pred["truth"], view)
    residual = views.derive(pred[reconstruction_name(pred)], view) - truth
    return (*views.limits(view, truth), *views.residual_limits(view, residual))
