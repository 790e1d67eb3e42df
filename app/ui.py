"""Helpers shared by the dashboard pages: caches, widgets generated from configs, tables.

Pages hold layout; everything they share lives here. Nothing in this module does science:
it calls ``backend``, ``data`` and ``metrics`` and formats what they return. Caches follow
STYLE.md: ``st.cache_resource`` for opened datasets (keyed on path + modification time),
``st.cache_data`` with ``max_entries`` for derived arrays and tables.
"""

from __future__ import annotations

import math
import os
import re
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


def page_setup(title: str, icon: str = "🌊") -> None:
    """Page config and title; call first on every page."""
    st.set_page_config(page_title=f"{title} · OceanLab", page_icon=icon, layout="wide")
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


def store() -> RunStore:
    """The run store of the workspace (``$OCEANLAB_HOME/runs``)."""
    return RunStore(paths.runs_dir())


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
    first = [c for c in ("id", "status", "task", "model", "created", "seconds") if c in table]
    scores = [k for k in SCORES if k in table]  # the score registry's order
    rest = [c for c in table.columns if c not in first and c not in scores and c != "error"]
    return table[[*first, *scores, *rest, "error"]]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def run_label(run: Run) -> str:
    """``id · model · status`` for select boxes (whose options are shown as plain text)."""
    info = read_run(run)
    return f"{run.id} · {info.model} · {info.status}"


def worker_alive(run: Run) -> bool:
    """Whether the worker process of ``run`` still runs (see :func:`backend.jobs.is_alive`)."""
    from backend import jobs

    return jobs.is_alive(run)


def done_runs(runs: list[Run]) -> list[Run]:
    """Runs with status ``done`` and a prediction file, in the given order."""
    return [run for run in runs
            if read_run(run).status == "done" and (run.path / PREDICTION_FILE).is_file()]


@st.cache_resource(max_entries=4, show_spinner="Loading prediction…")
def _prediction_cached(run_dir: str, mtime: float) -> xr.Dataset:
    return Run(Path(run_dir)).prediction()


def prediction(run: Run) -> xr.Dataset:
    """``prediction.nc`` of a run, in memory, cached on its path and modification time."""
    return _prediction_cached(str(run.path), file_mtime(run.path / PREDICTION_FILE))


#: Variables of ``prediction.nc`` that are not the prediction itself (inputs, references).
NOT_PREDICTION = ("truth", "obs", "mask", "initial", "climatology", "bicubic", "coarse")


def reconstruction_name(pred: xr.Dataset) -> str:
    """Name of the prediction variable of a prediction dataset
    (attribute ``oceanlab_reconstruction_var``, else the first variable that is no input)."""
    name = pred.attrs.get("oceanlab_reconstruction_var")
    if name in pred.data_vars:
        return str(name)
    others = [str(v) for v in pred.data_vars if v not in NOT_PREDICTION]
    if not others:
        raise KeyError("prediction.nc holds no reconstruction variable")
    return others[0]


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


@st.cache_resource(max_entries=8, show_spinner=False)
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
) -> dict[str, Any]:
    """One widget per field of a pydantic model, with the field description as help.

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

    Returns
    -------
    ``{field: value}`` for every field drawn, to be validated by the config.
    """
    parent = container if container is not None else st
    names = [n for n in params_cls.model_fields if n not in skip]
    cols = parent.columns(columns) if names else []
    out: dict[str, Any] = {}
    for i, name in enumerate(names):
        field = params_cls.model_fields[name]
        col = cols[i % columns]
        default = (values or {}).get(name, field.get_default(call_default_factory=True))
        kind, optional = _unwrap_optional(field.annotation)
        key = f"{key_prefix}.{name}"
        label = name
        help_text = field.description
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
            out[name] = col.selectbox(label, options, index=index, help=help_text, key=key)
        elif typing.get_origin(kind) in (list, dict):
            # Structured values (the loss terms) are edited as YAML, e.g. [{name: mse}].
            plain_default = [v.model_dump() if isinstance(v, BaseModel) else v for v in default] \
                if isinstance(default, list) else default
            text = yaml.safe_dump(plain_default, default_flow_style=True, sort_keys=False).strip()
            out[name] = _parse_text(col.text_input(label, value=text, help=help_text, key=key))
        else:
            text = "" if default is None else str(default)
            out[name] = _parse_text(col.text_input(label, value=text, help=help_text, key=key))
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
    choices = {"builtin": "Built-in OSSE (Gulf Stream box)", "path": "NetCDF file or glob"}
    initial = 1 if remembered and remembered != builtin else 0
    source = st.radio("Dataset", list(choices), format_func=choices.get, index=initial,
                      horizontal=True, key=f"{key_prefix}.source")
    if source == "builtin":
        st.caption(literal(builtin))
        return "builtin", builtin
    from oceanlab_errors import DataError

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
