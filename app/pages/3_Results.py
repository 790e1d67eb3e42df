"""Results: maps, residuals, scores and diagnostics of one finished run."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])  # the repository, for `streamlit run`
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import cmocean  # noqa: E402
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from app import figures, ui  # noqa: E402
from backend.store import PREDICTION_FILE, Run  # noqa: E402
from data.errors import RunError  # noqa: E402


def choose_run() -> Run | None:
    """The run to show: from ``?run=ID`` when it is done, else the newest done run.

    ``?run=`` is looked up among the run folders listed in the store, never joined to a path,
    so no id (``..``, ``../x``, an absolute path) reaches a file outside the run store.
    """
    store = ui.store()
    every = {r.id: r for r in store.runs()}
    runs = ui.done_runs(list(every.values()))
    wanted = st.query_params.get("run")
    ids = [r.id for r in runs]
    if wanted and wanted not in ids:
        if wanted in every:
            info = ui.read_run(every[wanted])
            if info.readable:
                st.warning(f"Run {ui.plain(wanted)} is {ui.plain(info.status)}: its results "
                           "appear here when it is done.")
            else:
                st.warning(f"Run {ui.plain(wanted)} cannot be read: {ui.plain(info.error)}")
        else:
            st.warning(f"No run {ui.plain(wanted)} in the run store.")
    if not runs:
        st.info("No finished run yet: launch one on the Experiment page.")
        ui.page_link("pages/2_Experiment.py", "Go to Experiment", icon="🧪")
        return None
    labels = {r.id: ui.run_label(r) for r in runs}
    run_id = st.selectbox("Run (newest first)", ids,
                          index=ids.index(wanted) if wanted in ids else 0,
                          format_func=labels.get, key="results.run")
    if st.query_params.get("run") != run_id:
        st.query_params["run"] = run_id  # the address of this view can be shared
    return next(r for r in runs if r.id == run_id)


def header(run: Run) -> None:
    info = ui.read_run(run)
    parts = [f"model **{ui.plain(info.model)}**",
             f"data {ui.literal(info.data_path or 'built-in')}"]
    if info.test_period:
        parts.append(ui.plain(f"test period {info.test_period[0]} → {info.test_period[1]}"))
    if info.device:
        parts.append(f"device {ui.plain(info.device)}")
    if info.seconds is not None:
        parts.append(f"{info.seconds:.1f} s")
    st.markdown(" · ".join(parts))


def maps(pred, run_dir: str, mtime: float, units: str) -> pd.Timestamp:
    """Truth, observations, reconstruction and residual on the chosen day; returns the day."""
    rec_name = ui.reconstruction_name(pred)
    times = pd.DatetimeIndex(pred["time"].values)
    labels = ui.time_labels(times)
    if len(labels) > 1:
        day = st.select_slider("Day of the test period", labels, key="results.day")
    else:
        day = labels[0]
    i = labels.index(day)
    mask = ui.ocean_mask(pred)
    truth = pred["truth"].isel(time=i)
    rec = pred[rec_name].isel(time=i)
    residual = (rec - truth).where(mask)
    lo, hi, rlo, rhi = ui.field_limits(run_dir, mtime)
    balance = cmocean.cm.balance
    panels = [
        figures.MapPanel(truth, "Truth", balance, lo, hi, land_mask=mask, units=units),
        figures.MapPanel(None, "Observations", balance, lo, hi, obs=pred["obs"].isel(time=i),
                         land_mask=mask, units=units),
        figures.MapPanel(rec, f"Reconstruction ({rec_name})", balance, lo, hi, land_mask=mask,
                         units=units),
        figures.MapPanel(residual, "Residual (reconstruction − truth)", balance, rlo, rhi,
                         land_mask=mask, units=units),
    ]
    ui.show_figure(figures.maps_figure(panels, ncols=2, suptitle=day))
    st.caption("Truth, observations and reconstruction share one colour scale, symmetric "
               "about zero and covering the truth over the test period; the residual has "
               "its own symmetric scale.")
    return times[i]


def main() -> None:
    ui.page_setup("Results")
    run = choose_run()
    if run is None:
        return
    header(run)
    try:
        pred = ui.prediction(run)
        ui.reconstruction_name(pred)
        missing = [v for v in ("truth", "obs") if v not in pred]
        if missing:
            raise KeyError(f"no variable {', '.join(missing)}")
    except (RunError, OSError, ValueError, KeyError) as exc:
        st.error(ui.plain(f"{run.path / PREDICTION_FILE}: cannot be read "
                          f"({ui.first_line(str(exc)) or type(exc).__name__})"))
        return
    run_dir, mtime = str(run.path), ui.file_mtime(run.path / PREDICTION_FILE)
    units = ui.as_text(pred["truth"].attrs.get("units"))
    metrics, problem = ui.read_metrics(run)
    if problem:
        st.warning(ui.plain(problem))

    st.subheader("Scores")
    ui.show_scores(metrics, units)

    st.subheader("Maps")
    day = maps(pred, run_dir, mtime, units)

    left, right = st.columns(2)
    with left:
        st.subheader("RMSE over time")
        rmse = ui.rmse_series(run_dir, mtime)
        ui.show_figure(figures.timeseries_figure(
            {"RMSE": rmse}, ylabel=f"RMSE ({units})" if units else "RMSE", mark=day))
        st.caption(f"Spatial RMSE over ocean points each day; mean {rmse.mean():.4g} "
                   f"{ui.plain(units)}. The dashed line is the day shown on the maps.")
    with right:
        st.subheader("PSD score")
        score, lines, reason = ui.psd_diagnostic(run_dir, mtime)
        if score is None:
            st.info(f"PSD score not available: {ui.plain(reason)}")
        else:
            ui.show_figure(figures.psd_score_figure(
                score, lines, lambda_x=ui.as_number(metrics.get("lambda_x_deg")),
                lambda_t=ui.as_number(metrics.get("lambda_t_days"))))
            st.caption("1 − PSD(rec − truth) / PSD(truth) over wavelength and period; the "
                       "0.5 contour bounds the scales the method resolves (λx, λt).")

    st.subheader("Training history")
    history = ui.read_history(run)
    if history.empty or not any("loss" in str(c) for c in history.columns):
        st.caption("No training history: this model is not trained.")
    else:
        ui.show_figure(figures.history_figure(history))


main()
