"""Data: choose the built-in OSSE or a NetCDF file, look at its maps and its summary."""

from __future__ import annotations

import zlib
from pathlib import Path

import pandas as pd
import streamlit as st
import xarray as xr

from app import figures, ui, views
from backend import paths
from data.canonical import describe_step, summarize

NO_OVERLAY = "(none)"
#: The overlay selector, and the overlay the user chose last (kept apart from the widget:
#: the selector's options change with the variable, which would reset its value).
OVERLAY_KEY = "data.obs"
OVERLAY_CHOICE_KEY = "data.obs_choice"


def remember_overlay() -> None:
    """Selector callback: the user's overlay, kept across changes of the variable."""
    st.session_state[OVERLAY_CHOICE_KEY] = st.session_state.get(OVERLAY_KEY)


def overlay_value(overlays: list[str], default: str | None) -> str:
    """The overlay to show: the user's last choice while it is an option (not the variable
    now mapped, and in this dataset), else ``default`` (the file's observation variable),
    else none."""
    choice = st.session_state.get(OVERLAY_CHOICE_KEY)
    if choice in overlays:
        return choice
    return default if default in overlays else NO_OVERLAY


def generate_builtin() -> None:
    """Offer to generate the missing built-in OSSE."""
    st.info("The built-in OSSE is not generated yet: a year of quasi-geostrophic eddies in a "
            "Gulf Stream-sized box, observed along the tracks of four nadir altimeters. "
            "Generating it takes a minute or two (`python -m app generate` does the same).")
    if st.button("Generate the built-in dataset", key="data.generate", type="primary"):
        with st.spinner("Simulating the QG truth and sampling it along tracks…"):
            _, ok = ui.call_or_error(paths.ensure_builtin_dataset)
        if ok:
            st.rerun()


def step_text(time_summary: dict) -> str:
    """The time step as people write it (``1 day``, ``6 hours``), never a Timedelta's
    ``1 days 00:00:00``; ``one time step`` for a single step."""
    text = time_summary.get("step_text")
    if text:
        return str(text)
    if time_summary.get("step"):
        return describe_step(time_summary["step"]) or str(time_summary["step"])
    return "one time step"


def show_summary(ds) -> None:
    """Grid, time range, ocean fraction and the variables table."""
    summary = summarize(ds)
    g, t = summary["grid"], summary["time"]
    step = step_text(t)
    cols = st.columns(4)
    cols[0].metric("Grid (lat × lon)", f"{g['n_lat']} × {g['n_lon']}")
    cols[1].metric("Time steps", t["n_time"])
    cols[2].metric("Time step", step)
    cols[3].metric("Ocean fraction", f"{summary['ocean_fraction']:.1%}")
    # the dates are too long for a quarter-width metric (cut off with …): a row of their own
    st.metric("Time range", f"{t['start']} → {t['end']}")
    st.caption(
        f"lat {g['lat_range'][0]:.2f}…{g['lat_range'][1]:.2f}°, "
        f"lon {g['lon_range'][0]:.2f}…{g['lon_range'][1]:.2f}°, "
        f"steps {g['dlat_deg'] or 0:.3g}° × {g['dlon_deg'] or 0:.3g}°, time step {step}")
    table = pd.DataFrame([
        {"variable": name, "long name": v["long_name"] or "", "units": v["units"] or "",
         "dims": " × ".join(v["dims"]), "shape": " × ".join(map(str, v["shape"]))}
        for name, v in summary["variables"].items()
    ])
    st.dataframe(table, hide_index=True, width="stretch")


#: The region and period chosen here: ``{"path", "region", "period"}``, which the
#: Experiment page applies (data.region, data.period) while the same dataset is chosen.
SELECTION_KEY = "data.selection"


def _edges(values) -> tuple[float, float]:
    """The outer cell edges of sorted cell centres, to 4 decimals (slider bounds)."""
    lo, hi = figures.cell_edges(values)
    return round(lo, 4), round(hi, 4)


def region_section(ds, path: str) -> tuple[float, float, float, float] | None:
    """Sliders of the region (cell edges) and period to keep; the choice is outlined on the
    map, sized, and handed to the Experiment page. Returns the box when it is not the whole
    grid."""
    import numpy as np

    lon0, lon1 = _edges(ds["lon"].values)
    lat0, lat1 = _edges(ds["lat"].values)
    step_lon = float(np.median(np.diff(ds["lon"].values))) if ds.sizes["lon"] > 1 else 0.1
    step_lat = float(np.median(np.diff(ds["lat"].values))) if ds.sizes["lat"] > 1 else 0.1
    times = pd.DatetimeIndex(ds["time"].values)
    prefix = f"data.cut.{zlib.crc32(str(path).encode())}"  # another file: sliders afresh
    c1, c2, c3 = st.columns(3)
    lon = c1.slider("Longitude (°E)", lon0, lon1, (lon0, lon1), step=round(step_lon, 4),
                    key=f"{prefix}.lon", format="%.2f")
    lat = c2.slider("Latitude (°N)", lat0, lat1, (lat0, lat1), step=round(step_lat, 4),
                    key=f"{prefix}.lat", format="%.2f")
    if len(times) > 1:
        period = c3.slider("Period", times[0].date(), times[-1].date(),
                           (times[0].date(), times[-1].date()), key=f"{prefix}.period")
    else:
        period = (times[0].date(), times[0].date())
        c3.caption(f"Period: {period[0]} (one time step)")
    whole = (lon == (lon0, lon1) and lat == (lat0, lat1)
             and period == (times[0].date(), times[-1].date()))
    keep_lon = (ds["lon"] >= lon[0]) & (ds["lon"] <= lon[1])
    keep_lat = (ds["lat"] >= lat[0]) & (ds["lat"] <= lat[1])
    keep_t = (times >= pd.Timestamp(period[0])) & (times <= pd.Timestamp(period[1]) +
                                                    pd.Timedelta(hours=23, minutes=59))
    n_lon, n_lat, n_t = int(keep_lon.sum()), int(keep_lat.sum()), int(keep_t.sum())
    n_vars = len(ui.data_variables(ds))
    mb = n_lon * n_lat * n_t * 4 * n_vars / 2**20
    full = ds.sizes["lon"] * ds.sizes["lat"] * len(times) * 4 * n_vars / 2**20
    if whole:
        st.session_state.pop(SELECTION_KEY, None)
        st.caption(ui.plain(f"The whole dataset: {ds.sizes['lat']} × {ds.sizes['lon']} cells × "
                            f"{len(times)} steps, {full:,.0f} MB as float32. Narrow the "
                            "sliders to cut a region and period for the experiment."))
        return None
    if not (n_lon and n_lat and n_t):
        st.error("The region and period keep no grid cell or time step: widen them.")
        st.session_state.pop(SELECTION_KEY, None)
        return None
    region = [round(lon[0], 4), round(lon[1], 4), round(lat[0], 4), round(lat[1], 4)]
    dates = [str(period[0]), str(period[1])]
    st.session_state[SELECTION_KEY] = {"path": str(path), "region": region, "period": dates}
    st.caption(ui.plain(
        f"Kept: {n_lat} × {n_lon} cells × {n_t} steps, {mb:,.0f} MB as float32 of the "
        f"{full:,.0f} MB of the whole dataset, cut before anything is loaded. The Experiment "
        f"page uses this region and period (data.region {','.join(f'{v:g}' for v in region)},"
        f" data.period {','.join(dates)}; on the command line --region and --period)."))
    return tuple(region)


#: The eddy detectors offered on the map (``data.eddies.detect_<method>``) and their labels.
EDDY_METHODS = {"contour": "closed SSH contours", "okubo_weiss": "Okubo-Weiss parameter"}


def eddy_detector(method: str):
    """``data.eddies.detect_<method>``, or None when eddy detection is not installed."""
    try:
        from data import eddies
    except ImportError:
        return None
    return getattr(eddies, f"detect_{method}", None)


@st.cache_resource(max_entries=32, show_spinner="Detecting eddies…")
def detect_eddies(path: str, mtime: float, var: str, day: str, method: str):
    """The eddies of ``var`` on ``day`` found by ``method`` (an EddySet), cached on the
    file, its modification time, the variable, the day and the method."""
    detector = eddy_detector(method)
    if detector is None:
        raise ImportError("eddy detection not available")
    return detector(ui.day_field(path, mtime, var, day))


def eddy_controls(da) -> str | None:
    """The eddy overlay's checkbox and method (for an SSH-like variable); the chosen
    method, or None when no eddies are to be drawn."""
    if not views.is_ssh(da):
        return None
    if not st.checkbox("Overlay detected eddies", key="data.eddies",
                       help="contour the eddies a detector finds in this day's field: "
                            "cyclones blue, anticyclones red"):
        return None
    return st.selectbox("Eddy detector", list(EDDY_METHODS), format_func=EDDY_METHODS.get,
                        key="data.eddies_method")


def eddy_overlay(path: str, mtime: float, var: str, day: str, method: str | None):
    """The EddySet to draw and a caption counting its eddies; (None, note) when there is
    nothing to draw (no method chosen, no detector, or the detection failed)."""
    if method is None:
        return None, None
    if eddy_detector(method) is None:
        st.info("eddy detection not available")
        return None, None
    try:
        found = detect_eddies(path, mtime, var, day, method)
    except Exception as exc:  # noqa: BLE001 (a detector failure must not break the page)
        st.warning(ui.plain(f"eddy detection failed: {ui.first_line(str(exc))}"))
        return None, None
    table = getattr(found, "eddies", None)
    kinds = (table["kind"].astype(str).value_counts()
             if isinstance(table, pd.DataFrame) and "kind" in table else pd.Series(dtype=int))
    n_c, n_a = int(kinds.get("cyclonic", 0)), int(kinds.get("anticyclonic", 0))
    return found, (f"{n_c} cyclone{'s' * (n_c != 1)}, {n_a} anticyclone{'s' * (n_a != 1)} "
                   f"detected ({EDDY_METHODS.get(method, method)}): cyclones outlined in "
                   "blue, anticyclones in red")


def show_map(ds, path: str, box=None) -> str:
    """A map of one variable on one day, with observations overlaid as points."""
    variables = ui.data_variables(ds)
    default = ds.attrs.get("oceanlab_truth_var")
    left, right = st.columns([1, 3])
    with left:
        var = st.selectbox("Variable", variables,
                           index=variables.index(default) if default in variables else 0,
                           key="data.var")
        overlays = [NO_OVERLAY] + [v for v in variables if v != var]
        # set before the selector is drawn: its options change with the variable
        st.session_state[OVERLAY_KEY] = overlay_value(overlays, ui.obs_variable(ds, var))
        overlay = st.selectbox(
            "Observations overlaid", overlays, on_change=remember_overlay,
            help="drawn as points where the variable is not NaN, on the same colour scale",
            key=OVERLAY_KEY)
        labels = ui.time_labels(pd.DatetimeIndex(ds["time"].values))
        if len(labels) > 1:
            day = st.select_slider("Day", options=labels, key="data.day")
        else:
            day = labels[0]
            st.caption(f"Day: {day} (one time step)")
        method = eddy_controls(ds[var])
    mtime = ui.file_mtime(path)
    field = ui.day_field(path, mtime, var, day)
    cmap, vmin, vmax = ui.variable_style(path, mtime, var)
    obs = ui.day_field(path, mtime, overlay, day) if overlay != NO_OVERLAY else None
    with right:  # drawn once per (file, modification time, variable, overlay, day)
        found, eddy_note = eddy_overlay(str(path), mtime, var, day, method)
        ui.show_cached_figure(
            ("data map", str(path), mtime, var, overlay, day, box,
             method if found is not None else None),
            lambda: figures.map_figure(
                field, title=f"{var} · {day}", cmap=cmap, vmin=vmin, vmax=vmax, obs=obs,
                land_mask=ds["mask"], units=str(ds[var].attrs.get("units", "")), box=box,
                eddies=found))
        notes = [eddy_note] if eddy_note else []
        if obs is not None:
            notes.append(f"{int(obs.notnull().sum())} observations of {ui.plain(overlay)} "
                         "on this day")
        coast = figures.natural_earth_coastline()
        notes.append(f"coastline: Natural Earth {coast[0]}" if coast else
                     "land from the data's own mask (Natural Earth coastlines are not "
                     "installed; nothing is downloaded)")
        st.caption(" · ".join(notes))
    return overlay


@st.cache_data(max_entries=8, show_spinner="Counting the observations…")
def coverage(path: str, mtime: float, var: str) -> tuple[pd.Series, xr.DataArray]:
    """Observed cells of ``var`` per time step, and the fraction of steps observing each
    cell (the file read lazily, one time chunk at a time), cached on the file's
    modification time."""
    ds = ui.open_cached(path)  # cached on the same modification time
    seen = ds[var].notnull()
    counts = seen.sum(("lat", "lon")).compute()
    fraction = seen.mean("time").compute()
    fraction = fraction.where(ds["mask"]).assign_attrs(units="fraction of time steps")
    return (pd.Series(counts.values.astype(int), index=pd.DatetimeIndex(ds["time"].values),
                      name=var), fraction)


def show_coverage(ds, path: str, overlay: str) -> None:
    """How much the observations cover: observed cells per time step and, on a map, the
    share of time steps observing each cell."""
    if overlay == NO_OVERLAY:
        st.caption("Choose an observation variable (Observations overlaid, above) to see its "
                   "coverage.")
        return
    mtime = ui.file_mtime(path)
    counts, fraction = coverage(path, mtime, overlay)
    ocean = int(ds["mask"].sum())
    left, right = st.columns(2)
    with left:
        ui.show_cached_figure(
            ("data coverage counts", str(path), mtime, overlay),
            lambda: figures.timeseries_figure({overlay: counts},
                                              ylabel="observed cells",
                                              title=f"{overlay}: observed cells per step"))
    with right:
        ui.show_cached_figure(
            ("data coverage map", str(path), mtime, overlay),
            lambda: figures.map_figure(fraction, title=f"{overlay}: share of steps observed",
                                       cmap="viridis", vmin=0.0,
                                       vmax=max(float(fraction.max()), 1e-6),
                                       land_mask=ds["mask"], units="fraction of steps"))
    share = counts.mean() / ocean if ocean else 0.0
    st.caption(ui.plain(
        f"{counts.sum():,} observed cells in all; {counts.mean():.0f} per step on average "
        f"({share:.1%} of the {ocean:,} ocean cells), from {counts.min():,} to "
        f"{counts.max():,}; {int((counts == 0).sum())} steps without any observation."))


def show_loader_notes(ds) -> None:
    """What the loader changed in the file (renamed coordinates, flipped latitude, masked
    fill values, converted units, the cut region and period), one line each."""
    notes = [n for n in str(ds.attrs.get("oceanlab_notes") or "").split("; ") if n]
    if not notes:
        st.caption("The loader changed nothing: the file is used as it is.")
        return
    st.markdown("\n".join(f"- {ui.plain(n)}" for n in notes))


def main() -> None:
    ui.page_setup("Data")
    st.caption("Choose a dataset and look at it before using it in an experiment.")
    source, path = ui.dataset_picker(
        "data", empty_hint="Type the path of a NetCDF file (or a glob such as `dir/*.nc`) "
                           "with time, latitude and longitude coordinates, under one of the "
                           "data roots listed above.")
    if source == "builtin" and not Path(path).is_file():
        generate_builtin()
        return
    if path is None:  # nothing typed, or refused: the picker has said why
        return
    ds = ui.open_or_error(path)
    if ds is None:
        return
    ui.remember_dataset(path)
    st.subheader("Region and period")
    box = region_section(ds, path)
    st.subheader("Map")
    overlay = show_map(ds, path, box)
    st.subheader("Observation coverage")
    show_coverage(ds, path, overlay)
    st.subheader("Summary")
    show_summary(ds)
    st.subheader("What the loader changed")
    show_loader_notes(ds)


main()
