"""Compare: finished runs side by side (issue 10).

Choose runs from a filterable, sortable table; a leaderboard of their scores (best of each
score marked ★) with, for two runs on the same test period, the paired bootstrap of their
RMSE difference beside it; the same day of every run on one shared colour scale with truth
and residuals, and the difference map of any two runs; RMSE over time (and by lead for
forecasts) of every run on one axis; the config fields that differ; the self-contained HTML
report and the leaderboard as CSV. Scores, differences and the bootstrap come from
:mod:`backend.compare`; this page only lays them out. Every figure is cached through
:func:`app.ui.show_cached_figure` on the runs' folders and file modification times.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from app import figures, ui, views
from backend.compare import run_title
from backend.store import DIAGNOSTICS_FILE, METRICS_FILE, PREDICTION_FILE, RUN_FILE, Run, RunStore
from metrics.scores import info as score_info
from oceanlab_errors import RunError

RUNS_KEY = "compare.runs"
#: The map view (SSH, speed, vorticity), shared with the Results page.
VIEW_KEY = "maps.view"
FILTERS = (("task", "Task"), ("model", "Model"), ("data", "Dataset"))


# --------------------------------------------------------------------------- choosing runs


def filtered_table(table: pd.DataFrame) -> pd.DataFrame:
    """The runs table filtered by task, model, dataset and status (done only at first),
    sorted by the chosen score (best first); an emptied filter filters nothing."""
    table = table.copy()
    if "task" in table:
        table["task"] = table["task"].map(lambda v: ui.as_text(v, "interpolation"))
    cols = st.columns(6)
    for (col, label), where in zip(FILTERS, cols[:3]):
        if col not in table:
            continue
        values = sorted({ui.as_text(v, ui.MISSING) for v in table[col]})
        chosen = where.multiselect(label, values, key=f"compare.filter.{col}",
                                   placeholder="all")
        if chosen:
            table = table[table[col].map(lambda v: ui.as_text(v, ui.MISSING)).isin(chosen)]
    tags = table_tags(table)
    chosen = cols[3].multiselect("Tag", tags, key="compare.filter.tags", placeholder="all",
                                 help="runs with any of these tags (tag runs below)")
    if chosen:
        table = table[[bool(set(chosen) & set(split_tags(v))) for v in table.get(
            "tags", pd.Series([None] * len(table), index=table.index))]]
    statuses = sorted(table["status"].unique())
    chosen = cols[4].multiselect("Status", statuses, key="compare.filter.status",
                                 default=["done"] if "done" in statuses else None,
                                 placeholder="all")
    if chosen:
        table = table[table["status"].isin(chosen)]
    scores = [c for c in table.columns if c in figures_scores(table)]
    sort = cols[5].selectbox("Sort by", ["newest", *scores], key="compare.sort",
                             format_func=lambda k: k if k == "newest" else score_info(k).label)
    if sort != "newest":
        values = pd.to_numeric(table[sort], errors="coerce")
        ascending = score_info(sort).better != "higher"
        table = table.assign(_key=values).sort_values(
            "_key", ascending=ascending, na_position="last").drop(columns="_key")
    return table


def split_tags(value) -> list[str]:
    """The tags of a runs-table cell (``"a, b"``; empty for a run without tags)."""
    return [t.strip() for t in value.split(",") if t.strip()] if isinstance(value, str) else []


def table_tags(table: pd.DataFrame) -> list[str]:
    """Every tag of the runs in ``table``, sorted."""
    if "tags" not in table:
        return []
    return sorted({t for v in table["tags"] for t in split_tags(v)})


def figures_scores(table: pd.DataFrame) -> list[str]:
    """The score columns of the runs table that hold at least one number."""
    from metrics.scores import SCORES

    return [k for k in SCORES if k in table
            and pd.to_numeric(table[k], errors="coerce").notna().any()]


def choose_runs(store: RunStore) -> list[Run] | None:
    """The table of runs and the multiselect of the runs to compare (``compare.runs``)."""
    table = ui.runs_table(store)
    if table.empty:
        st.info(f"No run yet in {ui.literal(store.root)}: launch one on the Experiment page, "
                "then compare finished runs here.")
        ui.page_link("pages/2_Experiment.py", "Go to Experiment", icon="🧪")
        return None
    st.subheader("Runs")
    shown = filtered_table(table)
    keep = [c for c in shown.columns if c != "error" or shown["error"].notna().any()]
    st.dataframe(shown[keep], hide_index=True, width="stretch", height=min(38 * len(shown) + 40,
                                                                            320),
                 column_config={**ui.score_columns(keep),
                                "id": st.column_config.TextColumn("run id", pinned=True),
                                "seconds": st.column_config.NumberColumn("time (s)",
                                                                         format="%.1f")})
    manage_section(store, table, shown["id"].tolist())
    done = set(table.loc[table["status"] == "done", "id"])
    offered = [i for i in shown["id"] if i in done]
    previous = [i for i in st.session_state.get(RUNS_KEY) or () if i in done]
    options = offered + [i for i in previous if i not in offered]  # a filter keeps choices
    st.session_state[RUNS_KEY] = previous
    st.caption(f"{len(shown)} of {len(table)} runs · sort by a score above or click a column "
               "header · only finished runs can be compared")
    names = dict(zip(table["id"], table["name"])) if "name" in table else {}
    chosen = st.multiselect("Runs to compare", options, key=RUNS_KEY,
                            placeholder="choose two or more finished runs",
                            format_func=lambda r: f"{r} · {names[r]}"
                            if isinstance(names.get(r), str) else r)
    runs = []
    for run_id in chosen:
        try:
            runs.append(store.get(run_id))
        except Exception as exc:  # noqa: BLE001 (deleted or damaged meanwhile)
            st.warning(ui.plain(f"{run_id}: cannot be read ({ui.first_line(str(exc))})"))
    return runs


# --------------------------------------------------------------------------- name, tag, delete

FLASH_KEY = "compare.flash"


def _save_labels(run_id: str) -> None:
    """Button callback: write the name and tags typed for ``run_id`` into its run.json."""
    try:
        ui.store().get(run_id).label(name=st.session_state.get(f"compare.name.{run_id}") or None,
                                     tags=list(st.session_state.get(f"compare.tags.{run_id}")
                                               or []))
        st.session_state[FLASH_KEY] = ("success", f"Saved the name and tags of {ui.plain(run_id)}.")
    except (RunError, OSError) as exc:
        st.session_state[FLASH_KEY] = ("error", ui.plain(f"{run_id}: not saved "
                                                         f"({ui.first_line(str(exc))})"))


def _delete(run_id: str) -> None:
    """Button callback: delete one run (after its confirmation box), drop it from the choice."""
    try:
        ui.store().delete(run_id)
        st.session_state[FLASH_KEY] = ("success", f"Deleted run {ui.plain(run_id)}.")
        st.session_state[RUNS_KEY] = [r for r in st.session_state.get(RUNS_KEY) or ()
                                      if r != run_id]
        st.session_state["compare.manage"] = None
    except (RunError, OSError) as exc:
        st.session_state[FLASH_KEY] = ("error", ui.plain(f"{run_id}: not deleted "
                                                         f"({ui.first_line(str(exc))})"))
    st.session_state["compare.delete_confirm"] = False


def manage_section(store: RunStore, table: pd.DataFrame, ids: list[str]) -> None:
    """Name, tag or delete one run of the (filtered) table; deleting needs a confirmation."""
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        getattr(st, flash[0])(flash[1])
    with st.expander("Name, tag or delete a run"):
        if st.session_state.get("compare.manage") not in ids:
            st.session_state.pop("compare.manage", None)
        target = st.selectbox("Run", [None, *ids], key="compare.manage",
                              format_func=lambda r: "—" if r is None else r)
        if target is None:
            st.caption("Choose a run of the table above to name, tag or delete it.")
            return
        row = table.loc[table["id"] == target].iloc[0]
        current = split_tags(row.get("tags"))
        name = row.get("name")
        c1, c2 = st.columns(2)
        c1.text_input("Name", value=name if isinstance(name, str) else "",
                      key=f"compare.name.{target}", max_chars=80,
                      help="shown beside the run id in tables and reports; empty: no name")
        c2.multiselect("Tags", sorted(set(table_tags(table)) | set(current)), default=current,
                       key=f"compare.tags.{target}", accept_new_options=True,
                       help="type a new tag and press Enter; the Tag filter above uses them")
        st.button("Save name and tags", key="compare.save_labels", on_click=_save_labels,
                  args=(target,))
        status = str(row.get("status"))
        if status in ui.ACTIVE_STATUSES:
            st.caption(f"Run {ui.plain(target)} is {status}: cancel it on the Runs page "
                       "before deleting it.")
            return
        confirm = st.checkbox(f"Yes, delete run {ui.plain(target)} and all its files",
                              key="compare.delete_confirm")
        st.button("Delete this run", type="primary", disabled=not confirm,
                  key="compare.delete", on_click=_delete, args=(target,))


# --------------------------------------------------------------------------- leaderboard


def stamps(runs: list[Run], *files: str) -> tuple:
    return tuple(ui.run_stamp(r, *files) for r in runs)


@st.cache_data(max_entries=16, show_spinner=False)
def _leaderboard(key: tuple) -> pd.DataFrame:
    from backend.compare import leaderboard

    return leaderboard([Run(Path(s[0])) for s in key])


@st.cache_data(max_entries=16, show_spinner="Bootstrapping the RMSE difference…")
def _bootstrap(key: tuple) -> dict | str:
    """:func:`backend.compare.paired_bootstrap` of two runs, or the reason it cannot run."""
    from backend.compare import paired_bootstrap

    a, b = (Run(Path(s[0])) for s in key)
    try:
        return paired_bootstrap(a, b)
    except Exception as exc:  # noqa: BLE001 (different periods, damaged file: say why)
        return ui.first_line(str(exc)) or type(exc).__name__


@st.cache_data(max_entries=8, show_spinner="Writing the report…")
def _report(key: tuple) -> bytes:
    from app.commands.compare import report_html

    return report_html([Run(Path(s[0])) for s in key]).encode("utf-8")


def score_order(table: pd.DataFrame, task: str | None) -> list[str]:
    """The score columns holding a value, the task's headline scores first (for an
    interpolation: RMSE, µ, σ, λx, λt, as the data challenge lists them)."""
    keys = [k for k in table.attrs.get("scores") or [] if table[k].notna().any()]
    head = [k for k in ui.headline_keys(task) if k in keys] if task else []
    return head + [k for k in keys if k not in head]


def leaderboard_view(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The leaderboard as text cells: values to 4 digits, the best of each score with ★."""
    out = table[["id", "name", "task", "model", "dataset"]].copy()
    if not out["name"].notna().any():
        out = out.drop(columns="name")
    for k in keys:
        out[k] = [ui.format_value(v) + (" ★" if flag else "")
                  for v, flag in zip(table[k], table[f"{k}_best"])]
    return out


def bootstrap_text(runs: list[Run], task: str | None) -> None:
    """The paired bootstrap of the two runs, or why there is none."""
    st.markdown("**Is the RMSE difference real?**")
    if len(runs) != 2:
        st.caption("The paired bootstrap of the RMSE difference needs exactly two runs on the "
                   f"same test period ({len(runs)} chosen).")
        return
    result = _bootstrap(stamps(runs, PREDICTION_FILE))
    if isinstance(result, str):
        st.caption(f"No paired bootstrap: {ui.plain(result)}")
        return
    lo, hi = result["interval"]
    verdict = ("the difference is real (the interval excludes 0)" if result["excludes_zero"]
               else "not distinguishable from 0 (the interval holds 0)")
    st.markdown(ui.plain(
        f"RMSE {result['run_a']} − {result['run_b']} = {result['difference']:.4g} "
        f"(95 % interval {lo:.4g} … {hi:.4g}): {verdict}."))
    st.caption(ui.plain(f"Paired bootstrap over {result['n_days']} test days, "
                        f"{result['n']} resamples of the days; RMSE {result['rmse_a']:.4g} vs "
                        f"{result['rmse_b']:.4g}."))


def leaderboard_section(runs: list[Run], task: str | None) -> pd.DataFrame | None:
    st.subheader("Leaderboard")
    try:
        table = _leaderboard(stamps(runs, RUN_FILE, METRICS_FILE))
    except Exception as exc:  # noqa: BLE001 (a damaged run.json or metrics.json)
        st.error(ui.plain(f"No leaderboard: {ui.first_line(str(exc)) or type(exc).__name__}"))
        return None
    keys = score_order(table, task)
    left, right = st.columns([3, 1])
    with left:
        st.dataframe(leaderboard_view(table, keys), hide_index=True, width="stretch",
                     column_config={**ui.score_columns(keys),
                                    "id": st.column_config.TextColumn("run id", pinned=True)})
        st.caption("★ best of each score (lower or higher by the score's direction); "
                   "scores no chosen run has are left out.")
    with right:
        bootstrap_text(runs, task)
    return table


# --------------------------------------------------------------------------- maps


def day_field(pred, name: str, day: np.datetime64):
    """``name`` of ``pred`` on ``day`` (a forecast: its first lead)."""
    da = pred[name].sel(time=day)
    for dim in [d for d in da.dims if d not in ("lat", "lon")]:
        da = da.isel({dim: 0})
    return da


def maps_section(runs: list[Run], tasks: set[str]) -> None:
    st.subheader("The same day, side by side")
    if len(tasks) > 1:
        st.info("Maps need runs of the same task on the same grid; the chosen runs have "
                f"tasks {ui.plain(', '.join(sorted(tasks)))}.")
        return
    preds = {}
    for run in runs:
        try:
            pred = ui.prediction(run)
            name = ui.reconstruction_name(pred)
            if "truth" not in pred or "time" not in pred[name].dims:
                raise ValueError("prediction.nc has no truth or no time dimension")
            preds[run.id] = (run, pred, name)
        except Exception as exc:  # noqa: BLE001 (a damaged prediction.nc: the others still)
            st.warning(ui.plain(f"{run.id}: no map ({ui.first_line(str(exc)) or type(exc).__name__})"))
    if not preds:
        return
    first = next(iter(preds.values()))[1]
    same_grid = [rid for rid, (_, p, _) in preds.items()
                 if p.sizes.get("lat") == first.sizes.get("lat")
                 and p.sizes.get("lon") == first.sizes.get("lon")
                 and np.allclose(p["lat"].values, first["lat"].values)
                 and np.allclose(p["lon"].values, first["lon"].values)]
    if len(same_grid) < len(preds):
        st.info("Maps need runs on the same grid; "
                f"{ui.plain(', '.join(r for r in preds if r not in same_grid))} "
                "left out (another grid).")
        preds = {r: preds[r] for r in same_grid}
    days = None
    for _, pred, _ in preds.values():
        t = pd.DatetimeIndex(pred["time"].values)
        days = t if days is None else days.intersection(t)
    if days is None or not len(days):
        st.info("The chosen runs share no test day: nothing to show side by side.")
        return
    days = days.sort_values()
    labels = ui.time_labels(days)
    if st.session_state.get("compare.day") not in labels:
        st.session_state.pop("compare.day", None)  # another choice of runs: other days
    label = (st.select_slider("Day (common test days)", labels, key="compare.day")
             if len(labels) > 1 else labels[0])
    day = days[labels.index(label)].to_datetime64()
    chosen = list(preds.values())
    units = ui.as_text(first["truth"].attrs.get("units"))
    key = tuple(ui.run_stamp(r, PREDICTION_FILE) for r, _, _ in chosen)
    view = ui.field_view(VIEW_KEY, first["truth"])
    quantity = views.quantity(view, first["truth"], units)

    def build():
        truth = views.derive(day_field(chosen[0][1], "truth", day), view)
        recs = {run_title(r): views.derive(day_field(p, n, day), view) for r, p, n in chosen}
        residuals = [rec - truth for rec in recs.values()]
        return figures.runs_day_figure(
            truth, recs, land_mask=ui.ocean_mask(chosen[0][1]), units=units, suptitle=label,
            cmap=views.cmap(view), label=quantity,
            limits=views.limits(view, truth, *recs.values()) if view != "ssh" else None,
            residual_limits=views.residual_limits(view, *residuals) if view != "ssh" else None)

    ui.show_cached_figure(("compare day maps", key, label, units, view), build)
    st.caption("Truth and every run on one shared colour scale; below, each run's residual "
               "(run − truth) on one shared scale." +
               ({"speed": " Geostrophic speed (g/f)|∇η| of each field, from 0 to the 99.5th "
                          "percentile of the day's speeds.",
                 "vorticity": " Relative vorticity ζ/f of each field's geostrophic flow, on "
                              "a symmetric scale (99.5th percentile of |ζ/f|)."}.get(view, ""))
               + (" Forecasts: the first lead of the start date." if "forecast" in tasks else ""))
    if len(chosen) < 2:
        return
    st.markdown("**Difference between two runs**")
    ids = [r.id for r, _, _ in chosen]
    for key in ("compare.diff_a", "compare.diff_b"):
        if st.session_state.get(key) not in ids:
            st.session_state.pop(key, None)
    c1, c2 = st.columns(2)
    a = c1.selectbox("Run A", ids, index=0, key="compare.diff_a")
    b = c2.selectbox("Run B", ids, index=1, key="compare.diff_b")
    if a == b:
        st.caption("Choose two different runs to see their difference.")
        return
    (ra, pa, na), (rb, pb, nb) = preds[a], preds[b]

    def build_diff():
        diff = (views.derive(day_field(pa, na, day), view)
                - views.derive(day_field(pb, nb, day), view)).where(ui.ocean_mask(pa))
        lo, hi = views.residual_limits(view, diff)
        return figures.map_figure(diff, title=f"{run_title(ra)} − {run_title(rb)}", vmin=lo,
                                  vmax=hi, land_mask=ui.ocean_mask(pa),
                                  units=f"difference of {quantity}")

    ui.show_cached_figure(("compare difference", ui.run_stamp(ra, PREDICTION_FILE),
                           ui.run_stamp(rb, PREDICTION_FILE), label, units, view), build_diff)


# --------------------------------------------------------------------------- curves


def curves_section(runs: list[Run], units: str) -> None:
    st.subheader("Curves")
    over_time, by_lead, skill, missing = {}, {}, {}, []
    for run in runs:
        diag, reason = ui.diagnostics(run)
        if diag is None:
            missing.append(f"{run.id}: {reason}")
            continue
        if "rmse_t" in diag and "time" in diag["rmse_t"].dims:
            rmse = diag["rmse_t"]
            if rmse.dims != ("time",):
                rmse = rmse.mean([d for d in rmse.dims if d != "time"])
            over_time[run.id] = ui.time_series(rmse, run.id)
        curves = ui.lead_curves(diag, {"model": "rmse_forecast"})
        if curves:
            by_lead[run.id] = curves["model"]
        curves = ui.lead_curves(diag, {"skill": "skill_persistence"})
        if curves:
            skill[run.id] = curves["skill"]
    ylabel = f"RMSE ({units})" if units else "RMSE"
    if over_time:
        key = (("compare rmse over time",
                tuple(ui.run_stamp(r, DIAGNOSTICS_FILE) for r in runs), units))
        ui.show_cached_figure(key, lambda: figures.timeseries_figure(
            over_time, ylabel=ylabel, title="RMSE over time"))
        st.caption("Spatial RMSE over ocean points each test day, one line per run"
                   + (" (forecasts: mean over leads)." if by_lead else "."))
    if by_lead:
        key = (("compare rmse by lead",
                tuple(ui.run_stamp(r, DIAGNOSTICS_FILE) for r in runs), units))
        ui.show_cached_figure(key, lambda: figures.lead_curves_figure(
            by_lead, {f"{k} vs persistence": v for k, v in skill.items()},
            rmse_label=ylabel, lead_label="lead"))
        st.caption("Forecast RMSE by lead (left) and skill against persistence (right; "
                   "above 0: better than holding the initial state).")
    psd_overlay(runs)
    if not over_time and not by_lead:
        st.info("No curves: no chosen run has RMSE over time in its diagnostics.nc.")
    for line in missing:
        st.caption(f"No curves of {ui.plain(line)}")


def psd_overlay(runs: list[Run]) -> None:
    """Every run's PSD-score 0.5 contour on one (wavelength, period) plane, and their zonal
    spectra over the truth's."""
    contours, spectra, truth, km = {}, {}, None, None
    for run in runs:
        diag, _ = ui.diagnostics(run)
        if diag is None or "psd_score" not in diag:
            continue
        title = run_title(run)
        try:
            contours[title] = ui.psd_contour(str(run.path), ui.diagnostics_mtime(run))
        except Exception:  # noqa: BLE001 (a score without a 0.5 contour: the spectra still)
            contours[title] = []
        if "psd_x_rec" in diag:
            spectra[title] = diag["psd_x_rec"]
            truth = diag["psd_x_truth"] if truth is None and "psd_x_truth" in diag else truth
        metrics, _ = ui.read_metrics(run)
        lx, lkm = ui.as_number(metrics.get("lambda_x_deg")), ui.as_number(metrics.get("lambda_x_km"))
        km = km or (lkm / lx if lx and lkm else None)
    if not contours:
        return
    key = ("compare psd", tuple(ui.run_stamp(r, DIAGNOSTICS_FILE, RUN_FILE) for r in runs), km)
    ui.show_cached_figure(key, lambda: figures.psd_overlay_figure(
        contours, spectra, truth, km_per_degree=km))
    st.caption("Left: where each run's PSD score (1 − PSD(run − truth) / PSD(truth)) crosses "
               "0.5; a run resolves the scales above and right of its line, so the line "
               "nearest the lower left corner resolves the finest scales (λx, λt). Right: "
               "the zonal spectrum of each run against the truth's (dashed); a run below the "
               "truth at short wavelengths is smoother than the truth.")


# --------------------------------------------------------------------------- config, downloads


def config_section(runs: list[Run]) -> None:
    from backend.compare import config_differences

    st.subheader("Config differences")
    try:
        diffs = config_differences(runs)
    except Exception as exc:  # noqa: BLE001 (a damaged run.json)
        st.error(ui.plain(f"No config differences: {ui.first_line(str(exc))}"))
        return
    if not diffs:
        st.caption("None: the chosen runs have the same config.")
        return
    table = pd.DataFrame(
        {run.id: [json.dumps(v[i], default=str) for v in diffs.values()]
         for i, run in enumerate(runs)}, index=pd.Index(list(diffs), name="field"))
    st.dataframe(table.reset_index(), hide_index=True, width="stretch")
    st.caption("Only the fields whose values differ between the chosen runs.")


def downloads_section(runs: list[Run], table: pd.DataFrame | None) -> None:
    st.subheader("Downloads")
    ui.figure_downloads("compare.downloads", "oceanlab-compare")
    left, right = st.columns(2)
    key = stamps(runs, RUN_FILE, PREDICTION_FILE, METRICS_FILE, DIAGNOSTICS_FILE)

    def report() -> bytes:  # written when clicked (2–3 s for ten runs), not on every render
        try:
            return _report(key)
        except Exception as exc:  # noqa: BLE001 (a damaged run: say so in the file)
            why = ui.first_line(str(exc)) or type(exc).__name__
            return (f"<!DOCTYPE html><html><body><p>No report: {html.escape(why)}</p>"
                    "</body></html>").encode()

    left.download_button("Download the report (HTML)", report, file_name="oceanlab-report.html",
                         mime="text/html", key="compare.report",
                         help="one self-contained file: leaderboard, config differences, "
                              "bootstrap, maps, curves, each run's config")
    if table is not None:
        scores = [c for c in table.columns if not c.endswith("_best")]
        right.download_button("Leaderboard (CSV)", table[scores].to_csv(index=False).encode(),
                              file_name="leaderboard.csv", mime="text/csv", key="compare.csv")


def main() -> None:
    ui.page_setup("Compare")
    store = ui.store()
    runs = choose_runs(store)
    if runs is None:
        return
    if not runs:
        st.info("Choose finished runs above to compare them.")
        return
    tasks = {ui.run_task(ui.read_run(r)) for r in runs}
    task = next(iter(tasks)) if len(tasks) == 1 else None
    table = leaderboard_section(runs, task)
    if len(tasks) > 1:
        st.caption(f"The runs have different tasks ({ui.plain(', '.join(sorted(tasks)))}): "
                   "their scores are side by side, but maps need the same grid and task.")
    from backend.compare import data_units

    try:
        units = data_units(runs)
    except Exception:  # noqa: BLE001
        units = ""
    maps_section(runs, tasks)
    curves_section(runs, units)
    config_section(runs)
    downloads_section(runs, table)


main()
