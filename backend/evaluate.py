"""Score an external reconstruction (another group's method, an operational product) against
a reference, and optionally save it as a run (``python -m app evaluate``, issue 10).

The reconstruction is scored on the reference's grid and over the times both files hold:

- both files are opened in canonical form (:func:`data.canonical.open_dataset`: names
  ``time``/``lat``/``lon``, ascending latitude, fill values masked);
- the variable of each file is the one given, else the file's ``oceanlab_truth_var``
  attribute (for the prediction first ``oceanlab_reconstruction_var``, which a run's
  ``prediction.nc`` carries), else the file's only numeric field; several candidates and no
  choice is a :class:`DataError` listing them;
- only the time steps present in both files are scored; none is a DataError naming both
  files;
- a prediction on the same grid (or on a larger grid holding every reference point) is
  taken as it is; on another grid it is interpolated linearly onto the reference's grid
  with xarray's ``interp`` (``regridded`` is True and ``notes["regridded"]`` says so);
  reference points outside the prediction's area are not scored; no common ocean point is a
  DataError naming both files;
- the scores are the interpolation task's (:func:`metrics.mapping.score_mapping`, the
  diagnostics of :func:`metrics.diagnostics.mapping_diagnostics`) plus the QG physics
  residual (:func:`metrics.physics.score_physics`, null with a note when the reference has
  no QG constants): the keys of a run's ``metrics.json``;
- the spatial means are weighted as ``area_weighting`` says (``auto``, the default:
  cos(latitude) when the reference's grid spans more than 15° of latitude, else none; see
  :mod:`metrics.weighting`), and the resolved value is recorded as ``metrics.json``'s
  ``area_weighting`` and the attribute of ``diagnostics.nc``.

:func:`import_evaluation` writes the result as a ``done`` run of model ``external`` whose
``prediction.nc`` looks like a run's (the reconstruction named like the truth variable,
``truth``, ``obs`` when the reference names one, ``mask``), so that the Results and Compare
pages show it beside the runs.

:func:`evaluate_tracks` scores a gridded reconstruction against along-track observations
instead of a gridded reference (``evaluate --tracks``, issue 11: the real-altimetry data
challenge 2021a, one mission held out): the map is interpolated onto the observations' points
and times, and the scores are :mod:`metrics.alongtrack`'s (``rmse_alongtrack``,
``mu_alongtrack``, ``sigma_alongtrack``, ``lambda_x_alongtrack_km``, ``n_alongtrack``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from oceanlab_errors import DataError

#: Degrees within which two grid coordinates are the same point.
COORD_TOL = 1e-4
#: Model name of an imported external reconstruction.
EXTERNAL_MODEL = "external"


@dataclass
class Evaluation:
    """What :func:`evaluate` finds.

    Attributes
    ----------
    scores : ``metrics.json`` content: score keys (float or None), ``notes`` and
        ``area_weighting`` (the resolved weighting, ``"none"`` or ``"cos(latitude)"``).
    diagnostics : what ``diagnostics.nc`` holds (RMSE over time, PSD score, physics maps).
    prediction : what ``prediction.nc`` holds (reconstruction, ``truth``, ``obs``, ``mask``).
    regridded : whether the prediction was interpolated onto the reference's grid.
    period : first and last scored time step (text).
    area_weighting : the resolved weighting of the spatial means; ``area_weighting_option``
        the option asked for (``auto``, ``none`` or ``cos(latitude)``).
    """

    ref: str
    pred: str
    var_ref: str
    var_pred: str
    scores: dict
    diagnostics: xr.Dataset
    prediction: xr.Dataset
    regridded: bool
    period: tuple[str, str]
    n_times: int
    notes: dict = field(default_factory=dict)
    seconds: float = 0.0
    area_weighting: str = "none"
    area_weighting_option: str = "auto"


def _time_text(t: pd.Timestamp) -> str:
    t = pd.Timestamp(t)
    return str(t.date()) if t == t.normalize() else t.isoformat()


def _range_text(values: np.ndarray) -> str:
    return f"{float(values.min()):.4g}..{float(values.max()):.4g}"


def choose_variable(ds: xr.Dataset, name: str | None, label: str, flag: str,
                    attrs: tuple[str, ...] = ("oceanlab_truth_var",)) -> str:
    """The variable of ``ds`` to score: ``name``, else the first of the ``attrs`` attributes
    naming a field, else the only field; DataError (one line) otherwise."""
    from data.tasks.base import check_field_var, field_names

    fields = [f for f in field_names(ds) if "time" in ds[f].dims]
    if name is not None:
        check_field_var(ds, name, "variable", field_names(ds), f"{flag} {name}: {label}")
        return name
    for attr in attrs:
        value = ds.attrs.get(attr)
        if isinstance(value, str) and value in fields:
            return value
    if len(fields) == 1:
        return fields[0]
    if not fields:
        raise DataError(f"{label}: no numeric (time, lat, lon) variable to score")
    raise DataError(f"{label}: {len(fields)} variables could be scored ({', '.join(fields)}) "
                    f"and the file names none (attribute oceanlab_truth_var); choose one "
                    f"with {flag} NAME")


def _matching_index(target: np.ndarray, source: np.ndarray) -> np.ndarray | None:
    """Positions in ``source`` of every value of ``target`` (within :data:`COORD_TOL`), or
    None when some value of ``target`` is not a point of ``source``."""
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.size == 0:
        return None
    pos = np.clip(np.searchsorted(source, target), 0, source.size - 1)
    prev = np.clip(pos - 1, 0, source.size - 1)
    best = np.where(np.abs(source[prev] - target) < np.abs(source[pos] - target), prev, pos)
    if np.all(np.abs(source[best] - target) <= COORD_TOL):
        return best
    return None


def _on_reference_grid(da: xr.DataArray, ref: xr.DataArray, pred_label: str,
                       ref_label: str) -> tuple[xr.DataArray, bool, str | None]:
    """``da`` on ``ref``'s lat/lon: selected when every reference point is a point of ``da``,
    else interpolated linearly. Returns the field, whether it was regridded, and a note."""
    lat_i = _matching_index(ref["lat"].values, da["lat"].values)
    lon_i = _matching_index(ref["lon"].values, da["lon"].values)
    if lat_i is not None and lon_i is not None:
        out = da.isel(lat=lat_i, lon=lon_i).assign_coords(lat=ref["lat"], lon=ref["lon"])
        return out, False, None
    plat, plon = da["lat"].values, da["lon"].values
    rlat, rlon = ref["lat"].values, ref["lon"].values
    if (plat.max() < rlat.min() or plat.min() > rlat.max() or plon.max() < rlon.min()
            or plon.min() > rlon.max()):
        raise DataError(f"{pred_label} and {ref_label}: no common area (prediction lat "
                        f"{_range_text(plat)}, lon {_range_text(plon)}; reference lat "
                        f"{_range_text(rlat)}, lon {_range_text(rlon)})")
    if da.sizes["lat"] < 2 or da.sizes["lon"] < 2:
        raise DataError(f"{pred_label}: the prediction's grid has fewer than 2 points along "
                        f"lat or lon and differs from the reference's; it cannot be "
                        f"interpolated onto {ref_label}")
    out = da.interp(lat=ref["lat"].values, lon=ref["lon"].values, method="linear")
    out = out.assign_coords(lat=ref["lat"], lon=ref["lon"])
    note = (f"the prediction ({da.sizes['lat']} lat x {da.sizes['lon']} lon, lat "
            f"{_range_text(plat)}, lon {_range_text(plon)}) was interpolated linearly "
            f"(xarray interp) onto the reference's grid ({ref.sizes['lat']} lat x "
            f"{ref.sizes['lon']} lon); reference points outside it are not scored")
    return out, True, note


def evaluate(ref_path: str | Path, pred_path: str | Path, var_ref: str | None = None,
             var_pred: str | None = None, area_weighting: str = "auto") -> Evaluation:
    """Score the reconstruction in ``pred_path`` against the reference in ``ref_path`` (see
    the module docstring), the spatial means weighted as ``area_weighting`` (``auto``,
    ``none`` or ``cos(latitude)``) says. DataError (one line naming the file or files) for
    unusable input, or an unknown ``area_weighting``.
    """
    from data.canonical import open_dataset
    from data.physics import resolve_physics
    from data.tasks.base import refuse_fill_values
    from metrics.diagnostics import mapping_diagnostics
    from metrics.mapping import score_mapping
    from metrics.physics import score_physics
    from metrics.weighting import AREA_WEIGHTING_CHOICES

    if area_weighting not in AREA_WEIGHTING_CHOICES:
        raise DataError(f"area weighting {area_weighting!r}: expected one of "
                        f"{', '.join(AREA_WEIGHTING_CHOICES)}")
    tic = time.perf_counter()
    ref_label, pred_label = str(ref_path), str(pred_path)
    ref_ds = open_dataset(ref_path)
    pred_ds = open_dataset(pred_path)
    var_ref = choose_variable(ref_ds, var_ref, ref_label, "--var-ref")
    var_pred = choose_variable(pred_ds, var_pred, pred_label, "--var-pred",
                               ("oceanlab_reconstruction_var", "oceanlab_truth_var"))
    truth_all = ref_ds[var_ref].astype(np.float32)
    rec_all = pred_ds[var_pred].astype(np.float32)
    refuse_fill_values(truth_all, var_ref, ref_label)
    refuse_fill_values(rec_all, var_pred, pred_label)

    t_ref = pd.DatetimeIndex(ref_ds["time"].values)
    t_pred = pd.DatetimeIndex(pred_ds["time"].values)
    common = t_ref.intersection(t_pred).sort_values()
    if common.empty:
        overlap = max(t_ref[0], t_pred[0]) <= min(t_ref[-1], t_pred[-1])
        why = ("their periods overlap but they share no time step" if overlap
               else "their periods do not overlap")
        raise DataError(f"{pred_label} and {ref_label}: no common time step to score ({why}; "
                        f"prediction {_time_text(t_pred[0])}/{_time_text(t_pred[-1])}, "
                        f"reference {_time_text(t_ref[0])}/{_time_text(t_ref[-1])})")

    truth = truth_all.sel(time=common).load()
    rec = rec_all.sel(time=common).load()
    rec, regridded, regrid_note = _on_reference_grid(rec, truth, pred_label, ref_label)
    rec = rec.transpose("time", "lat", "lon").astype(np.float32)
    mask = truth_all.notnull().any("time").load()
    valid = rec.notnull() & truth.notnull() & mask
    if not bool(valid.any()):
        raise DataError(f"{pred_label} and {ref_label}: no common area: no ocean point of the "
                        f"reference where the prediction has a value over the "
                        f"{len(common)} common time step(s)")
    # NaN off the reference's ocean, as a run's reconstruction
    rec = rec.where(mask)

    from metrics.weighting import resolve_area_weighting

    weighting = resolve_area_weighting(area_weighting, truth["lat"])
    scores = score_mapping(rec, truth, mask, area_weighting=weighting)
    diagnostics = mapping_diagnostics(rec, truth, mask, area_weighting=weighting)
    physics, physics_note = resolve_physics(ref_ds.attrs)
    extra, maps = score_physics(rec, truth, physics, mask, note=physics_note)
    notes = dict(scores.pop("notes", None) or {})
    notes.update(extra.pop("notes", {}) or {})
    scores.update(extra)
    if maps.data_vars or maps.attrs:
        for name, da in maps.data_vars.items():
            diagnostics[name] = da
        diagnostics.attrs.update(maps.attrs)
    own_notes = {}
    if regrid_note:
        own_notes["regridded"] = regrid_note
    dropped = len(t_ref) - len(common)
    if dropped:
        own_notes["period"] = (f"{len(common)} of the reference's {len(t_ref)} time steps are "
                               f"in the prediction; only those are scored")
    notes.update(own_notes)
    scores["notes"] = notes
    scores["area_weighting"] = weighting

    prediction = _prediction_dataset(rec, truth, mask, ref_ds, var_ref, common, pred_label,
                                     var_pred)
    period = (_time_text(common[0]), _time_text(common[-1]))
    return Evaluation(ref=ref_label, pred=pred_label, var_ref=var_ref, var_pred=var_pred,
                      scores=scores, diagnostics=diagnostics, prediction=prediction,
                      regridded=regridded, period=period, n_times=len(common), notes=notes,
                      seconds=round(time.perf_counter() - tic, 3), area_weighting=weighting,
                      area_weighting_option=area_weighting)


@dataclass
class TrackEvaluation:
    """What :func:`evaluate_tracks` finds.

    Attributes
    ----------
    scores : the keys of :data:`metrics.alongtrack.SCORE_KEYS` (float, int or None) and
        ``notes`` ({key: why it is None}).
    missions : the missions of the observations read (sorted).
    period : first and last time of the scored observations (text).
    n_read : observations read inside the map's latitudes and period (before the map's
        land and edges remove some); ``scores["n_alongtrack"]`` are those scored.
    """

    tracks: str
    pred: str
    var_tracks: str
    var_pred: str
    scores: dict
    missions: list[str]
    period: tuple[str, str]
    n_read: int
    segment_km: float
    notes: dict = field(default_factory=dict)
    seconds: float = 0.0


#: Along-track variables of the 2021a OSE files combined by ``evaluate --tracks --adt``:
#: the challenge's reference for maps of absolute dynamic topography
#: (``interp_on_alongtrack``: ``sla_unfiltered + mdt − lwe``).
ADT_TERMS: tuple[tuple[str, float], ...] = (("sla_unfiltered", 1.0), ("mdt", 1.0), ("lwe", -1.0))


def _read_adt_tracks(tracks_spec: str, read_tracks, kwargs: dict) -> xr.Dataset:
    """``sla_unfiltered + mdt − lwe`` of the along-track files, at the points where all three
    are defined (matched on time, position and mission)."""
    from data.alongtrack import parse_obs_spec

    pattern, named = parse_obs_spec(tracks_spec)
    if named is not None:
        raise DataError(f"--tracks {tracks_spec}: --adt combines "
                        f"{' + '.join(n for n, _ in ADT_TERMS[:2])} − {ADT_TERMS[2][0]}; give "
                        f"the files without :{named}")
    keys = ["time", "lat", "lon", "mission"]
    merged, first = None, None
    for name, sign in ADT_TERMS:
        part = read_tracks(pattern, name, **kwargs)
        first = part if first is None else first
        frame = pd.DataFrame({k: part[k].values for k in keys})
        frame[name] = sign * part["value"].values
        merged = frame if merged is None else merged.merge(frame, on=keys, how="inner")
    if merged.empty:
        raise DataError(f"--tracks {tracks_spec}: no point where "
                        f"{', '.join(n for n, _ in ADT_TERMS)} are all defined")
    merged = merged.sort_values("time", kind="stable")
    value = merged[[n for n, _ in ADT_TERMS]].sum(axis=1).to_numpy(np.float64)
    attrs = {k: v for k, v in first["value"].attrs.items() if k == "units"}
    attrs.update(long_name="sla_unfiltered + mdt - lwe",
                 source_variable="sla_unfiltered+mdt-lwe")
    return xr.Dataset({"value": ("obs", value, attrs)},
                      coords={k: ("obs", merged[k].to_numpy()) for k in keys},
                      attrs=dict(first.attrs))


def evaluate_tracks(tracks_spec: str, pred_path: str | Path, var_tracks: str | None = None,
                    var_pred: str | None = None, segment_km: float = 1000.0,
                    adt: bool = False) -> TrackEvaluation:
    """Score the gridded reconstruction in ``pred_path`` against along-track observations
    (``tracks_spec``: a file or glob that :func:`data.alongtrack.read_tracks`
    reads, e.g. the 2021a OSE's ``dt_gulfstream_c2_phy_l3_*.nc``) at the observations'
    points and times, with :func:`metrics.alongtrack.alongtrack_scores` (definitions of the
    2021a SSH mapping OSE data challenge: along-track RMSE, µ and σ over daily bins, λx from
    the along-track spectral score over ``segment_km`` windows).

    The prediction's variable is chosen as in :func:`evaluate`; only the observations
    within the prediction's box and period are read, converted to its ``units`` when it
    has them. The observed value is the along-track variable as it is (``var_tracks``, else
    the reader's choice: ``sla_unfiltered`` in the 2021a files), for maps of sea level
    anomaly; with ``adt`` it is ``sla_unfiltered + mdt − lwe`` (:data:`ADT_TERMS`), the
    challenge's reference for maps of absolute dynamic topography such as its own
    ``dc_maps``. DataError (one line) when nothing can be scored.
    """
    from data.alongtrack import read_tracks
    from data.canonical import open_dataset
    from data.tasks.base import refuse_fill_values
    from metrics.alongtrack import alongtrack_scores

    tic = time.perf_counter()
    pred_label = str(pred_path)
    if not (segment_km > 0):
        raise DataError(f"--segment-km {segment_km}: expected a length in km > 0")
    pred_ds = open_dataset(pred_path)
    var_pred = choose_variable(pred_ds, var_pred, pred_label, "--var-pred",
                               ("oceanlab_reconstruction_var", "oceanlab_truth_var"))
    rec = pred_ds[var_pred]
    refuse_fill_values(rec, var_pred, pred_label)
    rec = rec.transpose("time", "lat", "lon").astype(np.float64).load()
    t = pd.DatetimeIndex(rec["time"].values)
    lat = rec["lat"].values
    units = rec.attrs.get("units")
    lon = rec["lon"].values
    kwargs = {"lat_range": (float(np.min(lat)), float(np.max(lat))),
              "lon_range": (float(np.min(lon)), float(np.max(lon))),
              "period": (t.min().isoformat(), t.max().isoformat())}
    if isinstance(units, str) and units.strip():
        kwargs["target_units"] = units
    if adt:
        if var_tracks is not None:
            raise DataError(f"--var-ref {var_tracks}: --adt combines the along-track "
                            f"variables itself (sla_unfiltered + mdt − lwe)")
        tracks = _read_adt_tracks(tracks_spec, read_tracks, kwargs)
    else:
        tracks = read_tracks(tracks_spec, var_tracks, **kwargs)
    n_read = int(tracks.sizes.get("obs", 0))
    var_tracks = str(tracks["value"].attrs.get("source_variable") or var_tracks or "value")
    if n_read == 0:
        raise DataError(f"--tracks {tracks_spec} and {pred_label}: no along-track observation "
                        f"within the prediction's box (lon {_range_text(lon)}, lat "
                        f"{_range_text(lat)}) and period ({_time_text(t.min())}/"
                        f"{_time_text(t.max())})")
    scores = alongtrack_scores(rec, tracks, segment_km=segment_km)
    if not scores["n_alongtrack"]:
        raise DataError(f"--tracks {tracks_spec} and {pred_label}: none of the {n_read} "
                        f"observations read falls where the prediction has a value (lon "
                        f"{_range_text(rec['lon'].values)}, lat {_range_text(lat)}, "
                        f"{_time_text(t.min())}/{_time_text(t.max())}; land and the edges of "
                        f"the box and period are not scored)")
    missions = sorted({str(m) for m in np.unique(tracks["mission"].values)}) \
        if "mission" in tracks.variables else []
    times = tracks["time"].values
    period = (_time_text(pd.Timestamp(times.min())), _time_text(pd.Timestamp(times.max())))
    return TrackEvaluation(tracks=str(tracks_spec), pred=pred_label, var_tracks=var_tracks,
                           var_pred=var_pred, scores=scores, missions=missions, period=period,
                           n_read=n_read, segment_km=float(segment_km),
                           notes=dict(scores.get("notes") or {}),
                           seconds=round(time.perf_counter() - tic, 3))


def _prediction_dataset(rec: xr.DataArray, truth: xr.DataArray, mask: xr.DataArray,
                        ref_ds: xr.Dataset, var_ref: str, times: pd.DatetimeIndex,
                        pred_label: str, var_pred: str) -> xr.Dataset:
    """A run's ``prediction.nc``: the reconstruction named like the truth variable,
    ``truth``, ``obs`` (when the reference names one with ``oceanlab_obs_var``), ``mask``."""
    name = var_ref
    truth_attrs = dict(truth.attrs)
    data = {
        name: rec.astype(np.float32).assign_attrs(
            {**truth_attrs, "long_name": f"external reconstruction of {name}",
             "source": f"{pred_label} (variable {var_pred})"}),
        "truth": truth.astype(np.float32).assign_attrs(truth_attrs),
    }
    obs_var = ref_ds.attrs.get("oceanlab_obs_var")
    if isinstance(obs_var, str) and obs_var in ref_ds.data_vars and obs_var not in (var_ref, "mask"):
        data["obs"] = ref_ds[obs_var].sel(time=times).astype(np.float32).load()
    data["mask"] = mask.astype(np.int8).assign_attrs(long_name="ocean mask (1 = ocean)")
    ds = xr.Dataset(data)
    ds.attrs.update({"oceanlab_reconstruction_var": name, "oceanlab_task": "interpolation",
                     "oceanlab_external_source": pred_label, "Conventions": "CF-1.8"})
    return ds


def import_evaluation(ev: Evaluation, store) -> object:
    """Save ``ev`` as a ``done`` run of model ``external`` in ``store`` (a
    :class:`backend.store.RunStore`); returns the :class:`backend.store.Run`.

    run.json's config records the task (interpolation, with the ``area_weighting`` option
    asked for), the model ``external`` with the prediction file, its variable and
    fingerprint, and the reference as the data; the run's ``periods.test`` is the scored
    period. ``metrics.json`` records the resolved ``area_weighting``.
    """
    from backend import record as records
    from backend.store import now_iso
    from data.canonical import fingerprint

    pred_fp = fingerprint(ev.pred)
    ref_fp = fingerprint(ev.ref)
    config = {
        "task": {"name": "interpolation", "area_weighting": ev.area_weighting_option},
        "model": {"name": EXTERNAL_MODEL, "path": str(Path(ev.pred).resolve()),
                  "var": ev.var_pred, "fingerprint": pred_fp},
        "data": {"path": str(Path(ev.ref).resolve()), "var": ev.var_ref},
    }
    run = store.create(config, status="running")
    # this process is the run's writer until it is done (readers then never record it lost)
    records.acquire(run.path, wait_s=records.LOCK_WAIT_S)
    try:
        try:
            run.write_prediction(ev.prediction)
            run.write_metrics(ev.scores)
            run.write_diagnostics(ev.diagnostics)
        except BaseException:
            run.update(status="failed", error="the import was interrupted",
                       error_kind="internal")
            raise
        stamp = now_iso()
        run.update(status="done", started=stamp, finished=stamp, finished_unix=time.time(),
                   executor="evaluate",
                   data={"path": str(Path(ev.ref).resolve()), "fingerprint": ref_fp},
                   external={"path": str(Path(ev.pred).resolve()), "var": ev.var_pred,
                             "fingerprint": pred_fp, "regridded": ev.regridded},
                   periods={"test": list(ev.period)}, timings={"total_s": ev.seconds},
                   progress={"stage": "done", "done": 1, "total": 1, "eta_s": 0})
        run.event("end", status="done", error=None, seconds=ev.seconds)
    finally:
        records.release(run.path)
    return run


__all__ = ["ADT_TERMS", "EXTERNAL_MODEL", "Evaluation", "TrackEvaluation", "choose_variable", "evaluate",
           "evaluate_tracks", "import_evaluation"]
