"""Slides of the Present page: large figures, one per screen, for a projector.

No streamlit here: :func:`build_slides` decides which slides the chosen runs have (their
titles, kinds and figure builders), :meth:`Slide.figure` draws one at projector size
(16:9, :data:`SIZE` inches, fonts of :data:`FONT_SIZE` points) and :func:`render_png` turns
it into the PNG the page shows and offers for download. The figures are those of
:mod:`app.figures` (drawn inside a larger ``rc_context``, their explicitly small texts scaled
up) plus the title slide, the tables (leaderboard, config differences) and the overlays of
several runs (PSD score contours, zonal spectra) drawn here.

Slides, in order, each only when the runs have what it shows: the title; the leaderboard
(best of each score ★); the same day side by side (two runs or more of one task on one grid);
RMSE over time; the PSD score and the zonal spectra; forecast RMSE and skill by lead; the
config differences (two runs or more); then the maps of each run.
"""

from __future__ import annotations

import io
import json
import math
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

    from backend.store import Run

#: Figure size of a slide (inches): 16:9, PowerPoint's widescreen slide.
SIZE = (13.333, 7.5)
#: Screen resolution of a slide figure (the PNG download uses :data:`EXPORT_DPI`).
DPI = 120
EXPORT_DPI = 200
#: Base font size of a slide (points); the slide title is :data:`TITLE_SIZE`.
FONT_SIZE = 17
TITLE_SIZE = 26
#: Texts the figures set explicitly below this size (panel titles 9, legends 8: sized for a
#: page, not a room) are scaled by ``FONT_SIZE / 9``; the latitude and longitude labels of
#: maps are :data:`GRID_LABEL_SIZE`.
SMALL = 12.0
GRID_LABEL_SIZE = 14
#: Rows of a table slide (more rows: more slides).
TABLE_ROWS = 10
#: Matplotlib settings of every slide figure.
RC = {
    "font.size": FONT_SIZE,
    "axes.titlesize": FONT_SIZE + 2,
    "axes.labelsize": FONT_SIZE,
    "xtick.labelsize": FONT_SIZE - 1,
    "ytick.labelsize": FONT_SIZE - 1,
    "legend.fontsize": FONT_SIZE - 1,
    "figure.titlesize": TITLE_SIZE,
    "lines.linewidth": 2.5,
    "lines.markersize": 6,
    "figure.dpi": DPI,
    "savefig.dpi": EXPORT_DPI,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}

Loader = Callable[["Run"], Any]


@dataclass(frozen=True)
class Slide:
    """One screen: ``title``, ``kind`` (``title``, ``leaderboard``, ``day``, ``rmse_time``,
    ``psd``, ``spectra``, ``lead``, ``config``, ``run_maps``), the builder of its figure
    (any size, any fonts: :meth:`figure` makes it a slide), a caption for the presenter and,
    for the tables, the table itself."""

    title: str
    kind: str
    build: Callable[[], Figure] = field(repr=False, compare=False)
    caption: str = ""
    table: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    def figure(self) -> Figure:
        """The slide figure: :data:`SIZE` at :data:`DPI`, fonts of :data:`FONT_SIZE`, the
        slide title on top (drawn once, so that its ticks and labels exist at that size)."""
        with slide_style():
            fig = self.build()
            fig.set_size_inches(*SIZE)
            fig.set_dpi(DPI)
            if self.kind != "title":
                fig.suptitle(_plain(self.title), fontsize=TITLE_SIZE, fontweight="bold")
            enlarge_grid_labels(fig)
            fig.draw_without_rendering()  # ticks, grid labels: made now, in the slide style
            enlarge_small_texts(fig)
        return fig


def slide_style():
    """The ``rc_context`` of slide figures (large fonts, thick lines, white background)."""
    import matplotlib

    return matplotlib.rc_context(RC)


def enlarge_small_texts(fig: Figure) -> None:
    """Scale the texts a figure set explicitly small (below :data:`SMALL` points) by
    ``FONT_SIZE / 9`` (a panel title of 9 points becomes :data:`FONT_SIZE`)."""
    from matplotlib.text import Text

    factor = FONT_SIZE / 9.0
    for text in fig.findobj(Text):
        size = text.get_fontsize()
        if size < SMALL:
            text.set_fontsize(size * factor)


def enlarge_grid_labels(fig: Figure) -> None:
    """The latitude and longitude labels of cartopy maps at :data:`GRID_LABEL_SIZE` points
    (they are made at the first draw, from these styles)."""
    for ax in fig.get_axes():
        if hasattr(ax, "projection"):  # a map: its degree ticks (app.figures._degree_ticks)
            ax.tick_params(labelsize=GRID_LABEL_SIZE)
        for gl in [a for a in ax.artists if hasattr(a, "xlabel_style")]:  # Gridliner
            gl.xlabel_style = {**(gl.xlabel_style or {}), "size": GRID_LABEL_SIZE}
            gl.ylabel_style = {**(gl.ylabel_style or {}), "size": GRID_LABEL_SIZE}


def render_png(slide: Slide, dpi: int = EXPORT_DPI) -> bytes:
    """The slide as a 16:9 PNG (no tight crop: every slide the same size)."""
    fig = slide.figure()
    try:
        buffer = io.BytesIO()
        with slide_style():
            fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return buffer.getvalue()


# --------------------------------------------------------------------------- helpers


def run_label(row: dict | pd.Series, run_id: str) -> str:
    """A run's name when it has one, else its id."""
    name = row.get("name") if row is not None else None
    return name if isinstance(name, str) and name.strip() else run_id


def short_labels(labels: dict[str, str]) -> dict[str, str]:
    """``{run id: label}`` with the date and time dropped from labels that are bare run
    ids (``20240101-120000-unet-ab12`` → ``unet-ab12``), when the shorter labels still tell
    the runs apart: legends and column headers a room can read."""
    out = {}
    for run_id, label in labels.items():
        match = re.fullmatch(r"\d{8}-\d{6}-(.+)", label)
        out[run_id] = match.group(1) if match and label == run_id else label
    return out if len(set(out.values())) == len(out) else dict(labels)


def _plain(text: Any) -> str:
    """Text from a file or a user drawn literally (:func:`app.figures.plain_label`: no
    mathtext, so a ``$`` in a run name or a talk title cannot break a slide)."""
    from app.figures import plain_label

    return plain_label(text)


def _text(value: Any, default: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    return str(value)


def period_of(run: Run) -> tuple[str, str] | None:
    """``periods.test`` of run.json (first and last day), or None."""
    try:
        test = (run.info().get("periods") or {}).get("test")
    except Exception:  # noqa: BLE001 (a damaged run.json: no period)
        return None
    if isinstance(test, list | tuple) and len(test) == 2:
        return str(test[0])[:10], str(test[1])[:10]
    return None


def format_value(value: Any) -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "—"
    return f"{x:.4g}" if math.isfinite(x) else "—"


def _wrap(text: str, width: int) -> str:
    text = str(text)
    if len(text) <= width:
        return text
    return "\n".join(textwrap.wrap(text.replace("-", "- "), width)).replace("- ", "-")[:3 * width]


def _reconstruction(pred: xr.Dataset) -> str:
    from backend.compare import reconstruction_name

    return reconstruction_name(pred)


def _ocean(pred: xr.Dataset) -> xr.DataArray:
    if "mask" in pred:
        return pred["mask"].fillna(0) != 0
    truth = pred["truth"]
    return truth.notnull().any([d for d in truth.dims if d not in ("lat", "lon")])


def _on_day(da: xr.DataArray, day) -> xr.DataArray:
    """``da`` on ``day`` (its first lead, for a forecast), as ``(lat, lon)``."""
    if "time" in da.dims:
        da = da.sel(time=day)
    for dim in [d for d in da.dims if d not in ("lat", "lon")]:
        da = da.isel({dim: 0})
    return da


def _day_label(day) -> str:
    return str(pd.Timestamp(day).date())


def _header(label: str, width: int) -> str:
    """A column header: ``label`` wrapped to ``width`` characters, at most two lines."""
    lines = _wrap(label, width).split("\n")
    return "\n".join(lines[:2])


def _chars(n_columns: int, first_width: float) -> int:
    """How many characters of :data:`FONT_SIZE` fit in one of ``n_columns`` columns."""
    inches = SIZE[0] * (1 - first_width) / max(n_columns, 1)
    return max(8, int(inches * 72 / (0.62 * FONT_SIZE)))


def _table_figure(table: pd.DataFrame, *, first_width: float = 0.34,
                  best: pd.DataFrame | None = None, note: str = "") -> Figure:
    """``table`` (row labels in its index) drawn as a large table; cells where ``best``
    is True in bold on light green; ``note`` under the table."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    n = len(table.columns)
    widths = [first_width] + [(1 - first_width) / max(n, 1)] * n
    cells = [[_plain(idx), *(_plain(v) for v in row)]
             for idx, row in zip(table.index, table.values)]
    header = [_plain(_text(table.index.name)), *(_plain(c) for c in table.columns)]
    header_lines = max(str(h).count("\n") + 1 for h in header)
    # rows of at most 10 % of the height, the header 6.5 % a line, from the top down
    line, room = 0.065, 1.0 - (0.08 if note else 0.0)
    row = min(0.1, (room - line * header_lines) / max(len(cells), 1))
    total = line * header_lines + row * len(cells)
    drawn = ax.table(cellText=cells, colLabels=header, colWidths=widths, loc="center",
                     bbox=[0, 1 - total, 1, total], cellLoc="center")
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(FONT_SIZE)
    for (r, c), cell in drawn.get_celld().items():
        cell.set_edgecolor("0.75")
        cell.set_height(line * header_lines if r == 0 else row)
        if r == 0:
            cell.set_facecolor("#dfe7f2")
            cell.get_text().set_fontweight("bold")
        elif c == 0:
            cell.get_text().set_horizontalalignment("left")
            cell.PAD = 0.02
        elif best is not None and bool(best.iloc[r - 1, c - 1]):
            cell.set_facecolor("#d9f2d9")
            cell.get_text().set_fontweight("bold")
    if note:
        ax.text(0.0, 1 - total - 0.02, note, transform=ax.transAxes, fontsize=FONT_SIZE - 2,
                color="0.35", va="top")
    return fig


# --------------------------------------------------------------------------- the slides


def _title_slide(runs: list[Run], board: pd.DataFrame | None, labels: dict,
                 title: str | None) -> Slide:
    rows = {r["id"]: r for r in board.to_dict("records")} if board is not None else {}
    periods = {period_of(r) for r in runs} - {None}
    lines = []
    for run in runs:
        row = rows.get(run.id, {})
        parts = [_text(row.get("model"), "?"), _text(row.get("task"), "interpolation"),
                 _text(row.get("dataset"), "")]
        period = period_of(run)
        if period and len(periods) > 1:
            parts.append(f"test {period[0]} → {period[1]}")
        lines.append((labels[run.id], " · ".join(p for p in parts if p)))
    heading = title or (f"Comparing {len(runs)} runs" if len(runs) > 1 else
                        f"Run {labels[runs[0].id]}")
    sub = (f"Test period {next(iter(periods))[0]} → {next(iter(periods))[1]}"
           if len(periods) == 1 else "")

    def build() -> Figure:
        from matplotlib.figure import Figure

        fig = Figure(figsize=SIZE)
        fig.text(0.5, 0.80, _plain(_wrap(heading, 48)), ha="center", va="center", fontsize=36,
                 fontweight="bold")
        if sub:
            fig.text(0.5, 0.67, _plain(sub), ha="center", va="center", fontsize=FONT_SIZE + 5,
                     color="0.25")
        shown = lines[:8]
        top, step = 0.54, min(0.075, 0.46 / max(len(shown), 1))
        for i, (label, what) in enumerate(shown):
            y = top - i * step
            fig.text(0.47, y, _plain(_wrap(label, 40).split("\n")[0]), ha="right", va="center",
                     fontsize=FONT_SIZE + 3, fontweight="bold")
            fig.text(0.50, y, _plain(what), ha="left", va="center", fontsize=FONT_SIZE + 3)
        if len(lines) > len(shown):
            fig.text(0.5, top - len(shown) * step, f"… and {len(lines) - len(shown)} more",
                     ha="center", fontsize=FONT_SIZE)
        fig.text(0.5, 0.04, "OceanLab", ha="center", fontsize=FONT_SIZE - 2, color="0.45")
        return fig

    return Slide(heading, "title", build, caption="The runs presented: model, task, dataset.")


def _leaderboard_slides(board: pd.DataFrame, labels: dict, units: str) -> list[Slide]:
    from metrics.scores import info as score_info

    keys = [k for k in board.attrs.get("scores") or [] if board[k].notna().any()]
    if not keys:
        return []
    labels = [labels.get(i, i) for i in board["id"]]
    width = _chars(len(labels), 0.34)
    columns = [f"{_header(label, width)}\n{_text(model, '?')}"
               for label, model in zip(labels, board["model"])]
    rows, best = [], []
    for k in keys:
        score = score_info(k)
        unit = score.unit_text(units)
        arrow = {"lower": " ↓", "higher": " ↑"}.get(score.better or "", "")
        label = score.label + (f" ({unit})" if unit else "") + arrow
        rows.append((label, [format_value(v) + (" ★" if flag else "")
                             for v, flag in zip(board[k], board[f"{k}_best"])]))
        best.append(list(board[f"{k}_best"]))
    table = pd.DataFrame([r[1] for r in rows], columns=columns,
                         index=pd.Index([r[0] for r in rows], name="score"))
    flags = pd.DataFrame(best, columns=columns, index=table.index)
    chunks = [slice(i, i + TABLE_ROWS) for i in range(0, len(table), TABLE_ROWS)]
    slides = []
    for j, part in enumerate(chunks):
        title = "Leaderboard" + (f" ({j + 1}/{len(chunks)})" if len(chunks) > 1 else "")
        piece, marks = table.iloc[part], flags.iloc[part]
        slides.append(Slide(
            title, "leaderboard",
            lambda piece=piece, marks=marks: _table_figure(
                piece, best=marks, note="★ best of each score · ↓ lower is better · "
                                        "↑ higher is better"),
            caption="Best of each score marked ★ (by the score's direction).", table=piece))
    return slides


def _day_slide(runs: list[Run], preds: dict, labels: dict, units: str) -> Slide | None:
    """The same day of every run (one task, one grid, a common test day) with residuals."""
    usable = {}
    for run in runs:
        pred = preds.get(run.id)
        if pred is None or "truth" not in pred or "time" not in pred.dims:
            continue
        usable[run.id] = pred
    if len(usable) < 2:
        return None
    first = next(iter(usable.values()))
    for pred in usable.values():
        if (pred.sizes.get("lat") != first.sizes.get("lat")
                or pred.sizes.get("lon") != first.sizes.get("lon")
                or not np.allclose(pred["lat"].values, first["lat"].values)
                or not np.allclose(pred["lon"].values, first["lon"].values)
                or pred.attrs.get("oceanlab_task") != first.attrs.get("oceanlab_task")):
            return None
    days = None
    for pred in usable.values():
        t = pd.DatetimeIndex(pred["time"].values)
        days = t if days is None else days.intersection(t)
    if days is None or not len(days):
        return None
    day = days.sort_values()[len(days) // 2]
    forecast = any("lead_time" in p.dims for p in usable.values())

    def build() -> Figure:
        from app.figures import runs_day_figure

        truth = _on_day(first["truth"], day)
        recs = {labels[rid]: _on_day(p[_reconstruction(p)], day) for rid, p in usable.items()}
        from app.views import quantity

        label = quantity("ssh", truth, units) if truth is not None else units
        return runs_day_figure(truth, recs, land_mask=_ocean(first), units=units, per_row=4,
                               panel_size=(3.0, 2.6), label=label)

    return Slide(f"The same day, side by side: {_day_label(day)}", "day", build,
                 caption="Truth and every run on one colour scale; below, each run's residual "
                         "(run − truth) on one scale"
                         + (" (forecasts: the first lead)." if forecast else "."))


def _rmse_time_slide(runs: list[Run], diags: dict, labels: dict, units: str) -> Slide | None:
    series = {}
    for run in runs:
        diag = diags.get(run.id)
        if diag is None or "rmse_t" not in diag or "time" not in diag["rmse_t"].dims:
            continue
        rmse = diag["rmse_t"]
        if rmse.dims != ("time",):
            rmse = rmse.mean([d for d in rmse.dims if d != "time"])
        series[labels[run.id]] = pd.Series(np.asarray(rmse.values, dtype="float64"),
                                           index=pd.DatetimeIndex(rmse["time"].values))
    if not series:
        return None

    def build() -> Figure:
        from app.figures import timeseries_figure

        fig = timeseries_figure(series, ylabel=f"RMSE ({units})" if units else "RMSE")
        for ax in fig.axes:
            if ax.get_legend() is None and len(series) == 1:
                ax.legend()
        return fig

    means = "; ".join(f"{k} {v.mean():.4g}" for k, v in series.items())
    return Slide("RMSE over time", "rmse_time", build,
                 caption=f"Spatial RMSE over ocean points each test day; mean {means}.")


def _psd_slide(runs: list[Run], diags: dict, labels: dict, metrics: dict) -> Slide | None:
    have = [r for r in runs if diags.get(r.id) is not None and "psd_score" in diags[r.id]]
    if not have:
        return None
    if len(have) == 1:
        run = have[0]
        m = metrics.get(run.id, {})

        def number(key):
            try:
                x = float(m.get(key))
            except (TypeError, ValueError):
                return None
            return x if math.isfinite(x) else None

        lambda_x, lambda_t, km = number("lambda_x_deg"), number("lambda_t_days"), number(
            "lambda_x_km")

        def build() -> Figure:
            from app.figures import psd_score_figure
            from metrics import psd_score_contour

            score = diags[run.id]["psd_score"]
            return psd_score_figure(score, psd_score_contour(score, 0.5), lambda_x=lambda_x,
                                    lambda_t=lambda_t,
                                    km_per_degree=km / lambda_x if km and lambda_x else None)

        title = "PSD score" + (f": {labels[run.id]}" if len(runs) > 1 else "")
        return Slide(title, "psd", build,
                     caption="1 − PSD(rec − truth) / PSD(truth) over wavelength and period; the "
                             "0.5 contour bounds the scales the method resolves.")

    def build_all() -> Figure:
        from app.figures import psd_overlay_figure
        from metrics import psd_score_contour

        fig = psd_overlay_figure(
            {labels[r.id]: psd_score_contour(diags[r.id]["psd_score"], 0.5)  # escaped there
             for r in have}, size=SIZE)
        ax = fig.axes[0]
        for i, run in enumerate(have):  # each run's λx, dotted in its colour
            lx = metrics.get(run.id, {}).get("lambda_x_deg")
            if isinstance(lx, int | float) and math.isfinite(lx):
                ax.axvline(lx, color=f"C{i}", linestyle=":", linewidth=1.5)
        return fig

    return Slide("PSD score: the scales each run resolves", "psd", build_all,
                 caption="The 0.5 contour of each run's PSD score: above and right of its line "
                         "a run resolves the scales; dotted, its λx. Closer to the lower left "
                         "is better.")


def _spectra_slide(runs: list[Run], diags: dict, labels: dict, units: str) -> Slide | None:
    curves, truth = {}, None
    for run in runs:
        diag = diags.get(run.id)
        if diag is None or "psd_x_rec" not in diag or diag["psd_x_rec"].ndim != 1:
            continue
        rec = diag["psd_x_rec"]
        curves[labels[run.id]] = rec
        if truth is None and "psd_x_truth" in diag and diag["psd_x_truth"].ndim == 1:
            truth = diag["psd_x_truth"]
    if not curves:
        return None

    def xy(da):
        freq = np.asarray(da[da.dims[0]].values, dtype="float64")
        values = np.asarray(da.values, dtype="float64")
        keep = (freq > 0) & np.isfinite(values) & (values > 0)
        return 1.0 / freq[keep], values[keep]

    def build() -> Figure:
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter

        fig = Figure(figsize=SIZE, layout="constrained")
        ax = fig.add_subplot()
        if truth is not None:
            ax.plot(*xy(truth), color="k", linewidth=3.0, label="truth")
        for label, da in curves.items():
            ax.plot(*xy(da), label=_plain(label))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.invert_xaxis()  # large scales on the left
        ax.set_xlabel("wavelength (degrees of longitude)")
        ax.set_ylabel(f"power spectral density ({units}² · degree)" if units
                      else "power spectral density")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        return fig

    return Slide("Zonal spectra", "spectra", build,
                 caption="Power by wavelength of the truth and of each reconstruction: a "
                         "curve falling below the truth's at small scales has smoothed them.")


def _lead_slide(runs: list[Run], diags: dict, labels: dict, units: str) -> Slide | None:
    def lead_values(lead) -> np.ndarray:
        values = np.asarray(lead.values)
        if np.issubdtype(values.dtype, np.timedelta64):
            return values / np.timedelta64(1, "D")
        return values

    rmse, skill = {}, {}
    persistence = None
    for run in runs:
        diag = diags.get(run.id)
        if diag is None or "lead_time" not in diag.dims:
            continue
        lead = lead_values(diag["lead_time"])
        for var, target, label in (("rmse_forecast", rmse, labels[run.id]),
                                    ("skill_persistence", skill,
                                     f"{labels[run.id]} vs persistence")):
            if var in diag and diag[var].dims == ("lead_time",):
                target[label] = pd.Series(np.asarray(diag[var].values, dtype="float64"),
                                          index=lead)
        if persistence is None and "rmse_persistence" in diag \
                and diag["rmse_persistence"].dims == ("lead_time",):
            persistence = pd.Series(np.asarray(diag["rmse_persistence"].values, "float64"),
                                    index=lead)
    if not rmse:
        return None
    if persistence is not None:
        rmse["persistence"] = persistence

    def build() -> Figure:
        from app.figures import lead_curves_figure

        return lead_curves_figure(rmse, skill, rmse_label=f"RMSE ({units})" if units else "RMSE",
                                  lead_label="lead (days)")

    return Slide("Forecast RMSE and skill by lead", "lead", build,
                 caption="Left: RMSE by lead (persistence: the initial state held). Right: "
                         "skill against persistence (above 0: better than persistence).")


def _config_slides(runs: list[Run], labels: dict) -> list[Slide]:
    from backend.compare import config_differences

    diffs = config_differences(runs)
    if not diffs:
        return []

    def cell(v) -> str:
        text = v if isinstance(v, str) else json.dumps(v, default=str)
        return text if len(text) <= width else text[:width - 1] + "…"

    width = _chars(len(runs), 0.3)
    table = pd.DataFrame({_header(labels[r.id], width): [cell(v[i]) for v in diffs.values()]
                          for i, r in enumerate(runs)},
                         index=pd.Index(list(diffs), name="setting"))
    chunks = [slice(i, i + TABLE_ROWS) for i in range(0, len(table), TABLE_ROWS)]
    return [Slide("Config differences" + (f" ({j + 1}/{len(chunks)})" if len(chunks) > 1
                                          else ""),
                  "config", lambda piece=table.iloc[part]: _table_figure(piece, first_width=0.3),
                  caption="Only the settings whose values differ between the runs.",
                  table=table.iloc[part])
            for j, part in enumerate(chunks)]


def _run_maps_slide(run: Run, pred: xr.Dataset, label: str, units: str,
                    day=None) -> Slide | None:
    if "truth" not in pred or "time" not in pred.dims:
        return None
    times = pd.DatetimeIndex(pred["time"].values)
    if not len(times):
        return None
    if day is None or pd.Timestamp(day) not in times:
        day = times[len(times) // 2]
    task = str(pred.attrs.get("oceanlab_task") or "")

    def build() -> Figure:
        from app.figures import MapPanel, comparison_maps_figure

        name = _reconstruction(pred)
        mask = _ocean(pred)
        inputs = []
        if "obs" in pred and task != "forecast":
            inputs = [MapPanel(None, "Observations", obs=_on_day(pred["obs"], day),
                               land_mask=mask)]
        elif "coarse" in pred:
            coarse = _on_day(pred["coarse"], day)
            names = {d: d.split("_")[0] for d in ("lat_coarse", "lon_coarse")
                     if d in coarse.dims}
            inputs = [MapPanel(coarse.rename(names) if names else coarse, "Coarse input")]
        return comparison_maps_figure(
            _on_day(pred["truth"], day), _on_day(pred[name], day), inputs=inputs,
            prediction_title="Prediction", land_mask=mask, units=units)

    return Slide(f"{label}: {_day_label(day)}", "run_maps", build,
                 caption="Truth, " + ("the input, " if task != "forecast" else "")
                         + "the prediction and its residual (prediction − truth) on one day"
                         + (" (the first lead)." if task == "forecast" else "."))


def build_slides(runs: list[Run], *, title: str | None = None,
                 prediction: Loader | None = None, diagnostics: Loader | None = None,
                 notes: list[str] | None = None) -> list[Slide]:
    """The slides of ``runs``, in order, each only when the runs have what it shows.

    ``prediction`` and ``diagnostics`` read a run's prediction.nc and diagnostics.nc (default
    :meth:`Run.prediction` and :meth:`Run.diagnostics`; the page passes its cached readers);
    what cannot be read leaves its slides out, the reason appended to ``notes``.
    """
    from backend.compare import data_units, leaderboard

    if not runs:
        return []
    notes = notes if notes is not None else []
    read_pred = prediction or (lambda r: r.prediction())
    read_diag = diagnostics or (lambda r: r.diagnostics())

    def attempt(what: str, fn, default=None):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 (one damaged file: the other slides still)
            text = str(exc).strip().splitlines()
            notes.append(f"{what}: {text[0] if text else type(exc).__name__}")
            return default

    board = attempt("leaderboard", lambda: leaderboard(runs))
    labels = {}
    if board is not None:
        labels = {row["id"]: run_label(row, row["id"]) for row in board.to_dict("records")}
    labels = short_labels({r.id: labels.get(r.id, r.id) for r in runs})
    units = attempt("units", lambda: data_units(runs), "") or ""
    preds = {r.id: attempt(f"{r.id} prediction", lambda r=r: read_pred(r)) for r in runs}
    diags = {r.id: attempt(f"{r.id} diagnostics", lambda r=r: read_diag(r)) for r in runs}
    metrics = {r.id: attempt(f"{r.id} metrics", r.metrics, {}) or {} for r in runs}

    slides = [_title_slide(runs, board, labels, title)]
    if board is not None:
        slides += attempt("leaderboard", lambda: _leaderboard_slides(board, labels, units), [])
    day = attempt("same day", lambda: _day_slide(runs, preds, labels, units))
    slides += [s for s in (
        day,
        attempt("RMSE over time", lambda: _rmse_time_slide(runs, diags, labels, units)),
        attempt("PSD score", lambda: _psd_slide(runs, diags, labels, metrics)),
        attempt("spectra", lambda: _spectra_slide(runs, diags, labels, units)),
        attempt("lead curves", lambda: _lead_slide(runs, diags, labels, units)),
    ) if s is not None]
    if len(runs) > 1:
        slides += attempt("config differences", lambda: _config_slides(runs, labels), [])
    common_day = day.title.rsplit(": ", 1)[-1] if day is not None else None
    for run in runs:
        if preds.get(run.id) is None:
            continue
        slide = attempt(f"{run.id} maps", lambda run=run: _run_maps_slide(
            run, preds[run.id], labels[run.id], units, common_day))
        if slide is not None:
            slides.append(slide)
    return slides

