"""Results: scores, maps and diagnostics of one finished run, as its task produces them.

Interpolation: truth, observations, reconstruction and residual, RMSE over time, PSD score.
Forecast: per-lead curves against persistence and climatology, maps of a chosen start and
lead. Downscaling: coarse input, truth, output and residual, RMSE over time against bicubic.
Every task: the map of the QG potential-vorticity residual of the prediction beside the
truth's (the floor), and, for a run made by ``python -m app tune``, the tuning metric against
each searched parameter (from ``tuning.csv``). Every curve is read from the run's
``diagnostics.nc`` (computed by the backend) or ``tuning.csv``; this page only draws.

Every figure is drawn once per view: :func:`app.ui.show_cached_figure` keeps its PNG under a
key of the run folder, the modification times of the files it reads and the widget values,
and the files themselves are cached on their modification time (``ui.prediction``,
``ui.diagnostics``, ``ui.history``), so coming back to a run recomputes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st
import xarray as xr

from app import figures, ui, views
from backend.store import DIAGNOSTICS_FILE, HISTORY_FILE, PREDICTION_FILE, Run
from backend.tuning import TUNING_CSV
from metrics.scores import info as score_info
from oceanlab_errors import OceanLabError, RunError

#: Figures of the days around the one shown, drawn in the background once this run of the
#: page has drawn everything (see :func:`main`); the page module runs afresh each time.
AHEAD: list = []
#: Session key of the map view (SSH, speed, vorticity), shared with the Compare page.
VIEW_KEY = "maps.view"
VIEW_CAPTIONS = {
    "ssh": "Truth, input and prediction share one colour scale, symmetric about zero and "
           "covering the truth over the test period; the residual has its own symmetric "
           "scale.",
    "speed": "Geostrophic speed |u| = (g/f)|∇η| of each field (m/s), on one scale from 0 to "
             "the 99.5th percentile of the truth's speed over the test period; the residual "
             "is the difference of speeds. NaN next to land (centred differences).",
    "vorticity": "Relative vorticity ζ/f of the geostrophic flow of each field (a local "
                 "Rossby number: eddies are its blobs, cyclones positive in the north), on "
                 "one symmetric scale (the 99.5th percentile of the truth's |ζ/f|); the "
                 "residual is the difference of ζ/f. NaN next to land.",
}
#: Variables each task's prediction.nc must hold besides the prediction (others: truth).
REQUIRED = {"interpolation": ("truth", "obs"), "forecast": ("truth", "initial"),
            "downscaling": ("truth", "coarse"), "segmentation": ("truth",)}


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


def header(info: ui.RunInfo, task: str) -> None:
    parts = [f"task **{ui.plain(task)}**", f"model **{ui.plain(info.model)}**",
             f"data {ui.literal(info.data_path or 'built-in')}"]
    if info.test_period:
        parts.append(ui.plain(f"test period {info.test_period[0]} → {info.test_period[1]}"))
    if info.device:
        parts.append(f"device {ui.plain(info.device)}")
    if info.seconds is not None:
        parts.append(f"{info.seconds:.1f} s")
    st.markdown(" · ".join(parts))


def config_section(run: Run, info: ui.RunInfo) -> None:
    """The run's settings: what differs from the defaults, the whole config, and a button
    that launches the same settings again (a new run, even though this one has finished)."""
    st.subheader("Configuration")
    st.markdown(ui.plain(ui.config_summary(info.config)) or "defaults")
    with st.expander("Whole configuration (YAML)"):
        import yaml

        st.code(yaml.safe_dump(info.config, sort_keys=False), language="yaml")
    if info.model == "external":  # an evaluated file (python -m app evaluate --import)
        st.caption("An imported reconstruction: there is nothing to launch again.")
        return
    if st.button("Launch again with these settings", key="results.again",
                 help="a new run with exactly this configuration (queued like a launch)"):
        from pydantic import ValidationError

        from backend import jobs
        from backend.config import ExperimentConfig

        try:
            sub = jobs.submit(ExperimentConfig(**info.config), ui.store(), force=True)
        except (ValidationError, OceanLabError) as exc:
            st.error(ui.plain(f"cannot launch this configuration again: "
                              f"{ui.first_line(str(exc))}"))
            return
        st.success(f"Run {ui.plain(sub.run.id)} launched with these settings "
                   f"({ui.plain(sub.status)}); follow it on the Runs page.")


def pick(label: str, options: list, key: str, format_func=str):
    """A slider over ``options`` (the only option when there is one)."""
    if len(options) > 1:
        return st.select_slider(label, options, key=key, format_func=format_func)
    return options[0]


def no_diagnostics(reason: str) -> None:
    st.info(f"No diagnostics to draw: {ui.plain(reason)}.")


# --------------------------------------------------------------------------- interpolation


def day_maps(pred: xr.Dataset, run: Run, units: str, *, inputs: str, title: str) -> pd.Timestamp:
    """Truth, the input (``obs`` points or the ``coarse`` field), the prediction and the
    residual on the chosen day; returns the day."""
    rec_name = ui.reconstruction_name(pred)
    times = pd.DatetimeIndex(pred["time"].values)
    labels = ui.time_labels(times)
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    with right:
        view = ui.field_view(VIEW_KEY, pred["truth"])
    with left:
        day = pick("Day of the test period", labels, "results.day")
    i = labels.index(day)
    mtime = ui.file_mtime(run.path / PREDICTION_FILE)
    label = views.quantity(view, pred["truth"], units)

    def build(i: int = i):
        mask = ui.ocean_mask(pred)
        lo, hi, rlo, rhi = ui.view_limits(str(run.path), mtime, view)
        if inputs == "obs" and "obs" in pred and view == "ssh":
            panels = [figures.MapPanel(None, "Observations", obs=pred["obs"].isel(time=i),
                                       land_mask=mask)]
        elif inputs == "coarse" and "coarse" in pred:
            factor = pred.attrs.get("oceanlab_downscaling_factor")
            what = f"{factor}×{factor} block means" if factor else "block means"
            coarse = views.derive(ui.on_lat_lon(pred["coarse"].isel(time=i)), view)
            panels = [figures.MapPanel(coarse, f"Coarse input ({what})")]
        else:
            panels = []
        return figures.comparison_maps_figure(
            views.derive(pred["truth"].isel(time=i), view),
            views.derive(pred[rec_name].isel(time=i), view), inputs=panels,
            prediction_title=f"{title} ({rec_name})", limits=(lo, hi),
            residual_limits=(rlo, rhi), land_mask=mask, units=units, suptitle=labels[i],
            cmap=views.cmap(view), label=label)

    def key(j: int) -> tuple:
        return ("day maps", *ui.run_stamp(run, PREDICTION_FILE), inputs, title, view, j)

    ui.show_cached_figure(key(i), build)
    # the colour limits are read here, in the page's thread (NetCDF reading is not
    # thread-safe); the days drawn ahead then use the cached ones and arrays in memory
    ui.view_limits(str(run.path), mtime, view)
    # the next days (and the one before) are drawn while the user looks at this one, once
    # this run of the page has drawn everything (main() starts them: no competition)
    AHEAD.extend((key(j), lambda j=j: build(j))
                 for j in (i + 1, i + 2, i - 1) if 0 <= j < len(times))
    st.caption(VIEW_CAPTIONS[view] + (
        " Observations are SSH points: they are drawn on the SSH view only."
        if inputs == "obs" and view != "ssh" else ""))
    return times[i]


def rmse_over_time(diag: xr.Dataset, run: Run, units: str, day: pd.Timestamp,
                   reference: tuple[str, str] | None = None) -> None:
    """``rmse_t`` of the diagnostics (and a reference's, e.g. bicubic) over time."""
    st.subheader("RMSE over time")
    if "rmse_t" not in diag or diag["rmse_t"].dims != ("time",):
        st.info("diagnostics.nc holds no RMSE over time for this run.")
        return
    rmse = ui.time_series(diag["rmse_t"])
    series = {"model": rmse}
    if reference is not None and reference[1] in diag:
        series[reference[0]] = ui.time_series(diag[reference[1]])

    def key(d) -> tuple:
        return ("rmse over time", *ui.run_stamp(run, DIAGNOSTICS_FILE), units, str(d), reference)

    def build(d=day):
        return figures.timeseries_figure(series, ylabel=f"RMSE ({units})" if units else "RMSE",
                                         mark=d)

    ui.show_cached_figure(key(day), build)
    days = list(rmse.index)
    if day in days:  # the curve marks the day shown: the next days' marks drawn ahead too
        i = days.index(day)
        AHEAD.extend((key(days[j]), lambda j=j: build(days[j]))
                     for j in (i + 1, i + 2, i - 1) if 0 <= j < len(days))
    means = "; ".join(f"{name} {s.mean():.4g}" for name, s in series.items())
    st.caption(f"Spatial RMSE over ocean points each day; mean {ui.plain(means)} "
               f"{ui.plain(units)}. The dashed line is the day shown on the maps.")


def psd_section(diag: xr.Dataset, run: Run, metrics: dict) -> None:
    st.subheader("PSD score")
    if "psd_score" not in diag:
        reason = ui.as_text(diag.attrs.get("psd_score_unavailable"), "not in diagnostics.nc")
        st.info(f"PSD score not available: {ui.plain(reason)}")
        return
    lambda_x = ui.as_number(metrics.get("lambda_x_deg"))
    lambda_t = ui.as_number(metrics.get("lambda_t_days"))
    km = ui.as_number(metrics.get("lambda_x_km"))
    km_per_degree = km / lambda_x if km is not None and lambda_x else None
    ui.show_cached_figure(
        ("psd score", *ui.run_stamp(run, DIAGNOSTICS_FILE), lambda_x, lambda_t, km_per_degree),
        lambda: figures.psd_score_figure(
            diag["psd_score"], ui.psd_contour(str(run.path), ui.diagnostics_mtime(run)),
            lambda_x=lambda_x, lambda_t=lambda_t, km_per_degree=km_per_degree))
    st.caption("1 − PSD(rec − truth) / PSD(truth) over wavelength and period; the "
               "0.5 contour bounds the scales the method resolves (λx, λt).")


def mapping_results(pred: xr.Dataset, run: Run, diag: xr.Dataset | None, reason: str,
                    metrics: dict, units: str, task: str) -> None:
    """Interpolation and downscaling (and tasks this page does not know, drawn alike)."""
    st.subheader("Maps")
    if task == "downscaling":
        day = day_maps(pred, run, units, inputs="coarse", title="Output")
    else:
        day = day_maps(pred, run, units, inputs="obs", title="Reconstruction")
    if diag is None:
        no_diagnostics(reason)
        return
    left, right = st.columns(2)
    with left:
        reference = ("bicubic", "rmse_t_bicubic") if task == "downscaling" else None
        rmse_over_time(diag, run, units, day, reference)
    with right:
        psd_section(diag, run, metrics)


# --------------------------------------------------------------------------- forecast


def skill_by_lead(diag: xr.Dataset | None, run: Run, reason: str, units: str, step: str,
                  lead: float) -> None:
    """RMSE of the model, persistence and climatology by lead; skills and ACC by lead."""
    if diag is None:
        no_diagnostics(reason)
        return
    rmse = ui.lead_curves(diag, ui.LEAD_RMSE)
    skill = ui.lead_curves(diag, ui.LEAD_SKILL)
    if not rmse:
        st.info("diagnostics.nc holds no per-lead curves for this run.")
        return
    ui.show_cached_figure(
        ("skill by lead", *ui.run_stamp(run, DIAGNOSTICS_FILE), units, step, lead),
        lambda: figures.lead_curves_figure(
            rmse, skill, rmse_label=f"RMSE ({units})" if units else "RMSE",
            lead_label=f"lead ({step})", mark=lead))
    weighting = ui.as_text(diag.attrs.get("area_weighting"))
    st.caption("The model against persistence (the initial state held) and the day-of-year "
               "climatology of the training split. Skill = 1 − MSE / MSE of the reference "
               "(above 0: better than it); ACC = anomaly correlation against the climatology. "
               "The dashed line is the lead shown on the maps."
               + (f" Area weighting: {ui.plain(weighting)}." if weighting else ""))
    with st.expander("Values by lead"):
        st.dataframe(lead_table(str(run.path), ui.diagnostics_mtime(run)), hide_index=True,
                     width="stretch")


def forecast_results(pred: xr.Dataset, run: Run, diag: xr.Dataset | None, reason: str,
                     units: str) -> None:
    """Per-lead curves against persistence and climatology, then the maps of one start
    and lead, and the RMSE over start dates at that lead."""
    leads = [float(v) if not float(v).is_integer() else int(v)
             for v in ui.lead_values(pred["lead_time"])]
    step = ui.lead_units(pred["lead_time"])
    starts = pd.DatetimeIndex(pred["time"].values)
    labels = ui.time_labels(starts)

    st.subheader("Skill by lead")
    curves = st.container()  # drawn below, once the lead shown on the maps is known

    st.subheader("Maps")
    cols = st.columns(2)
    with cols[0]:
        start = pick("Forecast start (last input step)", labels, "results.start")
    with cols[1]:
        lead = pick(f"Lead ({step})", leads, "results.lead")
    i, j = labels.index(start), leads.index(lead)

    with curves:
        skill_by_lead(diag, run, reason, units, step, lead)
    forecast_maps(pred, run, i, j, units, start, f"lead {lead} ({step})")
    rmse_over_starts(diag, run, j, units, lead, step, starts[i])


def forecast_maps(pred: xr.Dataset, run: Run, i: int, j: int, units: str, start: str,
                  lead: str) -> None:
    """Truth at the valid time, initial state, forecast and residual of start ``i``
    (labelled ``start``), lead ``j`` (labelled ``lead``)."""
    name = ui.reconstruction_name(pred)
    valid = ""
    if "valid_time" in pred.coords:
        valid = ui.time_labels(pd.DatetimeIndex([pred["valid_time"].values[i, j]]))[0]

    view = ui.field_view(VIEW_KEY, pred["truth"])

    def build():
        mask = ui.ocean_mask(pred)
        lo, hi, rlo, rhi = ui.view_limits(str(run.path),
                                          ui.file_mtime(run.path / PREDICTION_FILE), view)
        initial = figures.MapPanel(views.derive(pred["initial"].isel(time=i), view),
                                   f"Initial state ({start})", land_mask=mask)
        return figures.comparison_maps_figure(
            views.derive(pred["truth"].isel(time=i, lead_time=j), view),
            views.derive(pred[name].isel(time=i, lead_time=j), view),
            inputs=[initial],
            truth_title=f"Truth at the valid time{f' ({valid})' if valid else ''}",
            prediction_title=f"Forecast ({name})", limits=(lo, hi), residual_limits=(rlo, rhi),
            land_mask=mask, units=units, cmap=views.cmap(view),
            label=views.quantity(view, pred["truth"], units),
            suptitle=f"start {start} · {lead}" + (f" · valid {valid}" if valid else ""))

    ui.show_cached_figure(("forecast maps", *ui.run_stamp(run, PREDICTION_FILE), i, j, units,
                           start, lead, view), build)
    st.caption("Truth, initial state and forecast share one colour scale covering the truth "
               "over every start and lead; the residual has its own symmetric scale."
               + ("" if view == "ssh" else " " + VIEW_CAPTIONS[view].split(";")[0] + "."))


def rmse_over_starts(diag: xr.Dataset | None, run: Run, j: int, units: str, lead: float,
                     step: str, start: pd.Timestamp) -> None:
    """``rmse_t(time, lead_time)`` of the diagnostics at lead ``j``, over start dates."""
    if diag is None or "rmse_t" not in diag or set(diag["rmse_t"].dims) != {"time", "lead_time"}:
        return
    st.subheader("RMSE over start dates")
    ui.show_cached_figure(
        ("rmse over starts", *ui.run_stamp(run, DIAGNOSTICS_FILE), j, units, str(start)),
        lambda: figures.timeseries_figure(
            {f"lead {lead}": ui.time_series(diag["rmse_t"].isel(lead_time=j),
                                            name=f"lead {lead}")},
            ylabel=f"RMSE ({units})" if units else "RMSE", mark=start))
    st.caption(f"Spatial RMSE of the forecasts at lead {lead} ({ui.plain(step)}), by start "
               "date; the dashed line is the start shown on the maps.")


# --------------------------------------------------------------------------- segmentation

#: Variables of a segmentation run's prediction.nc that may hold the SSH the eddies were
#: found in (the input maps first), drawn under the contours.
SEGMENTATION_SSH = ("input", "ssh_input", "ssh", "truth_ssh", "ssh_truth")
#: Object scores of a segmentation run (eddies matched one to one), in the order shown.
OBJECT_SCORES = ("eddy_precision", "eddy_recall", "eddy_f1", "radius_error_km",
                 "amplitude_error_m")


def _ssh_variable(pred: xr.Dataset, rec_name: str) -> str | None:
    """The SSH maps of a segmentation prediction (``input`` first), or None."""
    for name in SEGMENTATION_SSH:
        if name != rec_name and name in pred and {"lat", "lon"} <= set(pred[name].dims):
            return name
    return None


def _day(da: xr.DataArray, i: int) -> xr.DataArray:
    """Day ``i`` of ``da`` as ``(lat, lon)``: any other dimension (a channel) at its first."""
    if "time" in da.dims:
        da = da.isel(time=i)
    extra = {d: 0 for d in da.dims if d not in ("lat", "lon")}
    return (da.isel(extra) if extra else da).transpose("lat", "lon")


@st.cache_data(max_entries=16, show_spinner=False)
def ssh_limits(run_dir: str, mtime: float, name: str) -> tuple[float, float]:
    """Symmetric colour limits of the SSH ``name`` over the test period (its 99.5th
    percentile of |SSH|), cached on the run folder and prediction.nc's modification time."""
    import numpy as np

    values = np.abs(np.asarray(ui.prediction(Run(Path(run_dir)))[name].values, "float64"))
    values = values[np.isfinite(values)]
    m = float(np.percentile(values, 99.5)) if values.size else 0.0
    return (-m, m) if m > 0 else (-1.0, 1.0)


@st.cache_data(max_entries=16, show_spinner=False)
def confusion(run_dir: str, mtime: float):
    """The 3×3 confusion matrix (reference class × predicted class) of the whole test
    period over ocean cells, cached on the run folder and prediction.nc's modification
    time."""
    pred = ui.prediction(Run(Path(run_dir)))
    name = ui.reconstruction_name(pred)
    truth = pred["truth"].transpose(..., "lat", "lon")
    predicted = pred[name].transpose(*truth.dims)
    ocean = ui.ocean_mask(pred).transpose("lat", "lon")
    return figures.class_confusion(truth.values, predicted.values,
                                   n_classes=len(figures.CLASS_LABELS), where=ocean.values)


def object_scores(metrics: dict) -> None:
    """The eddy-by-eddy scores of ``metrics.json`` (precision, recall, F1, radius and
    amplitude errors of the matched eddies)."""
    st.subheader("Object scores")
    notes = ui.as_dict(metrics.get("notes"))
    rows = [{"score": score_info(k).label, "key": k, "value": ui.format_value(metrics.get(k)),
             "units": score_info(k).unit_text(""), "note": ui.as_text(notes.get(k))}
            for k in OBJECT_SCORES if k in metrics]
    if not rows:
        st.info("metrics.json holds no object score (eddy precision, recall, F1) for this run.")
        return
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption("Each eddy of the prediction is matched to at most one eddy of the reference "
               "(the detector's eddies of the truth) by overlap: precision = matched / "
               "predicted eddies, recall = matched / reference eddies, F1 their harmonic "
               "mean; the radius and amplitude errors are the mean absolute differences over "
               "the matched pairs.")


def segmentation_results(pred: xr.Dataset, run: Run, diag: xr.Dataset | None, reason: str,
                         metrics: dict, units: str) -> None:
    """Eddy detection and segmentation: the eddies of the reference (``truth`` masks) and of
    the prediction on a chosen day over the SSH, the confusion matrix of the classes over
    the test period, and the object scores."""
    import numpy as np

    st.subheader("Eddies")
    rec_name = ui.reconstruction_name(pred)
    times = pd.DatetimeIndex(pred["time"].values) if "time" in pred.dims else None
    labels = ui.time_labels(times) if times is not None else ["the only map"]
    day = pick("Day of the test period", labels, "results.day")
    i = labels.index(day)
    ssh_name = _ssh_variable(pred, rec_name)
    ssh_units = ui.as_text(pred[ssh_name].attrs.get("units")) if ssh_name else ""
    mtime = ui.file_mtime(run.path / PREDICTION_FILE)

    def build(i: int = i):
        mask = ui.ocean_mask(pred)
        ssh = _day(pred[ssh_name], i) if ssh_name else None
        limits = ssh_limits(str(run.path), mtime, ssh_name) if ssh_name else None
        return figures.eddy_maps_figure(
            ssh, _day(pred["truth"], i), _day(pred[rec_name], i), land_mask=mask,
            units=f"SSH ({ssh_units})" if ssh_units else "SSH",
            titles=("Reference eddies (truth)", f"Predicted eddies ({rec_name})"),
            suptitle=labels[i] if times is not None else None, limits=limits)

    ui.show_cached_figure(("eddy maps", *ui.run_stamp(run, PREDICTION_FILE), ssh_name, i), build)
    ocean = np.asarray(ui.ocean_mask(pred).transpose("lat", "lon").values, dtype=bool)
    shares = []
    for what, name in (("reference", "truth"), ("prediction", rec_name)):
        sea = np.nan_to_num(np.asarray(_day(pred[name], i).values, "float64"))[ocean]
        n = max(sea.size, 1)
        shares.append(f"{what} {(sea == 1).sum() / n:.1%} cyclonic, "
                      f"{(sea == 2).sum() / n:.1%} anticyclonic cells")
    st.caption(ui.plain(
        ("SSH of the day (" + ssh_name + ") under the contours; " if ssh_name else
         "No SSH in prediction.nc: the class maps themselves are drawn; ")
        + "cyclones (class 1) are outlined in blue, anticyclones (class 2) in red. "
        + "; ".join(shares) + "."))

    st.subheader("Confusion matrix")
    try:
        matrix = confusion(str(run.path), mtime)
    except (ValueError, KeyError, OSError, RunError) as exc:
        st.warning(ui.plain(f"confusion matrix not available: {ui.first_line(str(exc))}"))
    else:
        left, right = st.columns([3, 2])
        with left:
            ui.show_cached_figure(
                ("confusion", *ui.run_stamp(run, PREDICTION_FILE)),
                lambda: figures.confusion_matrix_figure(matrix, figures.CLASS_LABELS,
                                                        normalise=True))
        with right:
            total = int(matrix.sum())
            right_share = float(np.trace(matrix)) / total if total else 0.0
            st.caption(ui.plain(
                f"Every ocean cell of every day of the test period ({total:,} cells): rows "
                "the reference class, columns the predicted class; each cell the share of "
                "its reference class (the diagonal is each class's recall) over the count. "
                f"Pixel accuracy {right_share:.1%}."))
    object_scores(metrics)


# --------------------------------------------------------------------------- every task


def physics_section(pred: xr.Dataset, run: Run, diag: xr.Dataset | None,
                    metrics: dict) -> None:
    """The QG PV residual of the prediction beside the truth's floor (``metrics.json``) and
    its map (``physics_residual_map`` of ``diagnostics.nc``)."""
    keys = ("physics_residual", "physics_residual_truth")
    has_map = diag is not None and "physics_residual_map" in diag
    if not has_map and not any(k in metrics for k in keys):
        st.caption("No physics residual recorded for this run (made before it was computed).")
        return
    st.subheader("Physics residual")
    notes = ui.as_dict(metrics.get("notes"))
    value, floor = (ui.as_number(metrics.get(k)) for k in keys)
    parts = [f"{label} {ui.format_value(v)}" for label, v in
             (("prediction", value), ("truth (the floor)", floor))]
    st.markdown(ui.plain(f"{score_info(keys[0]).label}, RMS(R) / RMS(J): " + " · ".join(parts)))
    if value is None:
        why = ui.as_text(notes.get(keys[0])) or ui.as_text(
            diag.attrs.get("physics_residual_unavailable") if diag is not None else None)
        st.info(ui.plain(f"Physics residual not available: {why or 'not computed'}"))
    if has_map:
        ui.show_cached_figure(
            ("physics residual", *ui.run_stamp(run, DIAGNOSTICS_FILE, PREDICTION_FILE), value,
             floor),
            lambda: figures.residual_maps_figure(
                diag["physics_residual_map"], diag.get("physics_residual_map_truth"),
                land_mask=ui.ocean_mask(pred), value=value, floor=floor))
    st.caption("R = ∂q/∂t + J(ψ, q) + β ∂ψ/∂x of the 1.5-layer QG equation (q = ∇²ψ − ψ/Ld², "
               "ψ = g η / f0) with centred differences on the daily grid, interior ocean points; "
               "the maps show RMS(R) over time at each point / RMS(J) over the domain. The "
               "truth is not 0 (its forcing and dissipation are not in R, and daily sampling "
               "of fast advection): compare the prediction with it. A smoother field than the "
               "truth can score below the floor, so read it with the RMSE.")


@st.cache_data(max_entries=16, show_spinner=False)
def lead_table(run_dir: str, mtime: float) -> pd.DataFrame:
    """The per-lead table of the run's diagnostics.nc (:func:`app.ui.lead_table`), cached on
    its modification time."""
    diag, _ = ui.diagnostics(Run(Path(run_dir)))
    return ui.lead_table(diag) if diag is not None else pd.DataFrame()


@st.cache_data(max_entries=16, show_spinner=False)
def tuning_table(path: str, mtime: float) -> pd.DataFrame:
    """``tuning.csv`` (one row per trial), cached on its path and modification time."""
    return pd.read_csv(path)


def tuning_section(run: Run, units: str) -> None:
    """For a run made by ``python -m app tune``: the search's metric against each searched
    parameter (the autoencoder's reconstruction error against its latent size, for
    example). Nothing for other runs."""
    path = run.path / TUNING_CSV
    if not path.is_file():
        return
    st.subheader("Tuning")
    try:
        table = tuning_table(str(path), ui.file_mtime(path))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        st.warning(ui.plain(f"{path}: cannot be read ({ui.first_line(str(exc))})"))
        return
    params = figures.tuning_parameters(table)
    if "value" not in table or not params or not len(table):
        st.info(ui.plain(f"{TUNING_CSV} holds no trial with parameters and a value."))
        return
    try:
        tuned = ui.as_dict(run.info().get("tuned"))
    except Exception:  # noqa: BLE001 (run.json was read above; a race is not worth a crash)
        tuned = {}
    metric = ui.as_text(tuned.get("metric"), "value")
    direction = ui.as_text(tuned.get("direction"))
    if not direction:
        better = score_info(metric).better
        direction = "maximize" if better == "higher" else "minimize"
    values = pd.to_numeric(table["value"], errors="coerce")
    best = None
    if values.notna().any() and "number" in table:
        row = values.idxmax() if direction == "maximize" else values.idxmin()
        best = ui.as_number(table.loc[row, "number"])
    unit = score_info(metric).unit_text(units)
    label = score_info(metric).label + (f" ({unit})" if unit else "")
    best = int(best) if best is not None else None
    ui.show_cached_figure(
        ("tuning", *ui.run_stamp(run, TUNING_CSV), label, best, tuple(params)),
        lambda: figures.tuning_figure(table, metric=label, best=best, params=params))
    failed = int(values.isna().sum())
    st.caption(ui.plain(
        f"{len(table)} trials scored on the validation period"
        f"{f' ({failed} failed)' if failed else ''}; {metric} "
        f"({'higher' if direction == 'maximize' else 'lower'} is better) against each searched "
        "parameter, the line joining the mean per value; the star is the best trial, whose "
        "parameters this run used on the test period."))
    with st.expander("Trials"):
        st.dataframe(table, hide_index=True, width="stretch")


# --------------------------------------------------------------------------- page


def load_prediction(run: Run, task: str | None) -> xr.Dataset | None:
    """prediction.nc, or None after one ``st.error`` naming the file and what is wrong."""
    try:
        pred = ui.prediction(run)
        ui.reconstruction_name(pred)
        needed = REQUIRED.get(task or ui.as_text(pred.attrs.get("oceanlab_task")), ("truth",))
        missing = [v for v in needed if v not in pred]
        if missing:
            raise KeyError(f"no variable {', '.join(missing)}")
    except (RunError, OSError, ValueError, KeyError) as exc:
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        st.error(ui.plain(f"{run.path / PREDICTION_FILE}: cannot be read "
                          f"({ui.first_line(str(text)) or type(exc).__name__})"))
        return None
    return pred


def main() -> None:
    ui.page_setup("Results")
    run = choose_run()
    if run is None:
        return
    info = ui.read_run(run)
    pred = load_prediction(run, None)
    if pred is None:
        header(info, ui.run_task(info))
        return
    task = ui.run_task(info, pred)
    header(info, task)
    if info.task and info.task != task:
        st.warning(ui.plain(f"run.json says task {info.task}, prediction.nc holds a {task} "
                            f"prediction; drawn as {task}."))
    units = ui.as_text(pred["truth"].attrs.get("units"))
    metrics, problem = ui.read_metrics(run)
    if problem:
        st.warning(ui.plain(problem))

    st.subheader("Scores")
    ui.show_scores(metrics, units, task)

    diag, reason = ui.diagnostics(run)
    if task == "segmentation":
        segmentation_results(pred, run, diag, reason, metrics, units)
    elif task == "forecast" and "lead_time" in pred.dims:
        forecast_results(pred, run, diag, reason, units)
    else:
        mapping_results(pred, run, diag, reason, metrics, units, task)
    if task != "segmentation":  # class maps: no QG potential vorticity to speak of
        physics_section(pred, run, diag, metrics)

    config_section(run, info)

    st.subheader("Training history")
    history = ui.history(run)
    if history.empty or not any("loss" in str(c) for c in history.columns):
        st.caption("No training history: this model is not trained.")
    else:
        ui.show_cached_figure(("history", *ui.run_stamp(run, HISTORY_FILE)),
                              lambda: figures.history_figure(history))
    tuning_section(run, units)
    ui.downloads_section(run, "results.downloads")


main()
if AHEAD:  # everything of this run is drawn: now the days around it, in the background
    ui.prefetch_figures(AHEAD)
