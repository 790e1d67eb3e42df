"""``python -m app compare RUN_ID… [--runs-dir DIR] [--json] [--bootstrap]``: the scores of
saved runs side by side (best of each score marked ``*``), the config fields that differ,
and with ``--bootstrap`` and two runs the paired bootstrap of their RMSE difference
(:mod:`backend.compare`).

``python -m app report RUN_ID… --out FILE.html [--runs-dir DIR]``: the same in one
self-contained HTML file with maps of the same day (figures embedded as base64 PNG)."""

from __future__ import annotations

import argparse
import json
import math

from oceanlab_errors import ConfigError


def add(sub, cli) -> None:
    c = sub.add_parser("compare", help="compare saved runs: scores side by side, config "
                                       "differences, bootstrap of the RMSE difference")
    c.add_argument("run_ids", nargs="+", metavar="RUN_ID", type=cli._nonempty,
                   help="runs to compare (ids as listed by 'runs')")
    c.add_argument("--runs-dir", type=cli._nonempty,
                   help="run store folder (default: $OCEANLAB_HOME/runs)")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("--bootstrap", action="store_true",
                   help="with two runs on the same test period: paired bootstrap over test "
                        "days of their RMSE difference and its 95%% interval")
    c.add_argument("--resamples", type=cli._positive_int, default=2000,
                   help=argparse.SUPPRESS)
    c.set_defaults(func=run_compare)
    add_report(sub, cli)


def _number(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.4g}"


def _json_value(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def run_compare(args) -> int:
    from backend import paths
    from backend.compare import config_differences, data_units, leaderboard, paired_bootstrap
    from backend.store import RunStore
    from metrics.scores import info as score_info

    if len(set(args.run_ids)) != len(args.run_ids):
        raise ConfigError("compare: a run id is given twice; give each run once")
    if args.bootstrap and len(args.run_ids) != 2:
        raise ConfigError(f"compare --bootstrap: give exactly two runs "
                          f"(got {len(args.run_ids)})")
    store = RunStore(paths.runs_dir(args.runs_dir))
    runs = [store.get(rid) for rid in args.run_ids]  # RunError (exit 2) for an unknown run
    table = leaderboard(runs)
    best = dict(table.attrs.get("best") or {})
    keys = list(table.attrs.get("scores") or [])
    diffs = config_differences(runs)
    boot = paired_bootstrap(runs[0], runs[1], n=args.resamples) if args.bootstrap else None

    if args.json:
        records = [{k: _json_value(v) for k, v in row.items()}
                   for row in table.to_dict(orient="records")]
        print(json.dumps({"runs": [r.id for r in runs], "leaderboard": records, "best": best,
                          "config_differences": diffs, "bootstrap": boot}, default=str))
        return 0

    header = ["score", *[r.id for r in runs]]
    lines = []
    for _, row in table.iterrows():
        if row["name"]:
            print(f"{row['id']}: {row['name']}")
    for label, col in (("task", "task"), ("model", "model"), ("dataset", "dataset")):
        lines.append([label, *[str(v) for v in table[col]]])
    units = data_units(runs)
    for k in keys:
        s = score_info(k)
        unit = s.unit_text(units)
        name = f"{s.label} ({unit})" if unit else s.label
        cells = [_number(v) + ("*" if flag else "")
                 for v, flag in zip(table[k], table[f"{k}_best"])]
        lines.append([name, *cells])
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]
    for line in [header, *lines]:
        print("  ".join(str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i])
                        for i, c in enumerate(line)))
    print("* best of each score (lower or higher by the score's direction)")
    print()
    if diffs:
        print("config differences:")
        for key, values in diffs.items():
            print(f"  {key}: " + " | ".join(json.dumps(v, default=str) for v in values))
    else:
        print("config differences: none")
    if boot is not None:
        lo, hi = boot["interval"]
        print()
        print(f"RMSE {boot['run_a']} − {boot['run_b']}: {boot['difference']:.4g} "
              f"(95% interval {lo:.4g} … {hi:.4g}, paired bootstrap over {boot['n_days']} "
              f"test days, {boot['n']} resamples): "
              + ("the difference is real (interval excludes 0)" if boot["excludes_zero"]
                 else "not distinguishable from 0"))
    return 0


# -- report ---------------------------------------------------------------------------------------
def add_report(sub, cli) -> None:
    r = sub.add_parser("report", help="write one self-contained HTML report of saved runs "
                                      "(leaderboard, config differences, maps)")
    r.add_argument("run_ids", nargs="+", metavar="RUN_ID", type=cli._nonempty,
                   help="runs to report (ids as listed by 'runs')")
    r.add_argument("--out", required=True, type=cli._nonempty, help="the HTML file to write")
    r.add_argument("--runs-dir", type=cli._nonempty,
                   help="run store folder (default: $OCEANLAB_HOME/runs)")
    r.set_defaults(func=run_report)


def _png_tag(fig, alt: str) -> str:
    import base64
    import html
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _maps_section(runs) -> str:
    """One map per run of its reconstruction on the same test day (the middle day of the
    first run's test period), with the truth, on one shared colour scale."""
    import html

    import numpy as np

    from backend.compare import reconstruction_name, run_title
    from oceanlab_errors import RunError

    fields, notes = [], []
    day = None
    for run in runs:
        try:
            pred = run.prediction()
            rec = pred[reconstruction_name(pred)]
        except (RunError, OSError, ValueError, KeyError) as exc:
            notes.append(f"{run.id}: no map ({exc})")
            continue
        if "time" not in rec.dims:
            notes.append(f"{run.id}: no map (prediction without a time dimension)")
            continue
        if day is None:
            day = rec["time"].values[len(rec["time"]) // 2]
        if day not in rec["time"].values:
            notes.append(f"{run.id}: no map (its test period lacks {str(day)[:10]})")
            continue
        at = pred.sel(time=day)
        for dim in [d for d in at[rec.name].dims if d not in ("lat", "lon")]:
            at = at.isel({dim: 0})  # a forecast: its first lead
        mask = (at["mask"].fillna(0) != 0) if "mask" in at else None
        fields.append((run, at[rec.name], at.get("truth"), mask))
    parts = ["<h2>Maps</h2>"]
    if fields:
        from app.figures import runs_day_figure
        from app.views import quantity

        truth = fields[0][2]
        units = str(truth.attrs.get("units", "")) if truth is not None else ""
        shape = fields[0][1].shape
        same = [f for f in fields if f[1].shape == shape]
        notes += [f"{f[0].id}: no map (another grid)" for f in fields if f[1].shape != shape]
        fig = runs_day_figure(
            truth, {run_title(run): rec for run, rec, _, _ in same}, land_mask=fields[0][3],
            units=units, label=quantity("ssh", truth, units) if truth is not None else units,
            suptitle=f"{np.datetime_as_string(day, unit='D')}: one shared colour scale, "
                     "residuals below")
        parts.append(f"<p>Day {html.escape(str(day)[:10])}.</p>")
        parts.append(_png_tag(fig, "maps of the runs on the same day"))
    parts += [f"<p>{html.escape(n)}</p>" for n in notes]
    return "\n".join(parts)


def _curves_section(runs) -> str:
    """RMSE over time of every run on one axis, every run's PSD-score 0.5 contour and zonal
    spectrum, and for forecasts RMSE and skill by lead (from each run's diagnostics.nc)."""
    import html

    import numpy as np
    import pandas as pd

    from app import figures
    from backend.compare import run_title
    from metrics.mapping import psd_score_contour

    over_time, contours, spectra, truth_psd, by_lead, skill, notes = {}, {}, {}, None, {}, {}, []
    for run in runs:
        try:
            diag = run.diagnostics()
        except Exception as exc:  # noqa: BLE001 (a damaged file: the other runs still)
            notes.append(f"{run.id}: no curves ({str(exc).splitlines()[0] if str(exc) else exc})")
            continue
        if diag is None:
            notes.append(f"{run.id}: no diagnostics.nc")
            continue
        title = run_title(run)
        rmse = diag.get("rmse_t")
        if rmse is not None and "time" in rmse.dims:
            rmse = rmse.mean([d for d in rmse.dims if d != "time"]) if rmse.ndim > 1 else rmse
            over_time[title] = pd.Series(np.asarray(rmse.values, "float64"),
                                         index=pd.DatetimeIndex(rmse["time"].values), name=title)
        if "psd_score" in diag:
            try:
                contours[title] = psd_score_contour(diag["psd_score"], 0.5)
            except Exception:  # noqa: BLE001 (no 0.5 contour: the spectra still)
                contours[title] = []
            if "psd_x_rec" in diag:
                spectra[title] = diag["psd_x_rec"]
                if truth_psd is None and "psd_x_truth" in diag:
                    truth_psd = diag["psd_x_truth"]
        for var, out in (("rmse_forecast", by_lead), ("skill_persistence", skill)):
            if var in diag and diag[var].dims == ("lead_time",):
                lead = np.asarray(diag["lead_time"].values)
                if np.issubdtype(lead.dtype, np.timedelta64):
                    lead = lead / np.timedelta64(1, "D")
                out[title] = pd.Series(np.asarray(diag[var].values, "float64"), index=lead,
                                       name=title)
    parts = ["<h2>Curves</h2>"]
    if over_time:
        parts.append(_png_tag(figures.timeseries_figure(over_time, ylabel="RMSE",
                                                        title="RMSE over time"),
                              "RMSE over time of every run"))
    if contours:
        parts.append(_png_tag(figures.psd_overlay_figure(contours, spectra, truth_psd),
                              "PSD score contours and zonal spectra of every run"))
        parts.append("<p>Left: where each run's PSD score crosses 0.5 (it resolves the scales "
                     "above and right of its line). Right: zonal spectra against the truth's "
                     "(dashed).</p>")
    if by_lead:
        parts.append(_png_tag(figures.lead_curves_figure(
            by_lead, {f"{k} vs persistence": v for k, v in skill.items()},
            rmse_label="RMSE", lead_label="lead"), "forecast RMSE and skill by lead"))
    if len(parts) == 1:
        parts.append("<p>No run has curves in its diagnostics.nc.</p>")
    parts += [f"<p>{html.escape(n)}</p>" for n in notes]
    return "\n".join(parts)


def report_html(runs) -> str:
    """The HTML text of a report on ``runs``: leaderboard (best of each score in bold,
    marked *), config differences, the paired bootstrap for two runs, maps of the same day,
    each run's config. Self-contained: figures are base64 PNG, no script, no link."""
    import html
    from datetime import datetime, timezone

    from backend.compare import config_differences, data_units, leaderboard, paired_bootstrap
    from metrics.scores import info as score_info
    from oceanlab_errors import OceanLabError

    esc = html.escape
    table = leaderboard(runs)
    keys = list(table.attrs.get("scores") or [])
    ids = [r.id for r in runs]
    head = "".join(f"<th>{esc(i)}</th>" for i in ids)
    rows = []
    for col in ("name", "task", "model", "dataset"):
        if col == "name" and not table["name"].notna().any():
            continue
        rows.append(f"<tr><th>{col}</th>" + "".join(
            f"<td>{esc('' if v is None else str(v))}</td>" for v in table[col]) + "</tr>")
    units = data_units(runs)
    for k in keys:
        s = score_info(k)
        unit = s.unit_text(units)
        label = f"{s.label} ({unit})" if unit else s.label
        cells = "".join(
            f"<td><b>{esc(_number(v))}*</b></td>" if flag else f"<td>{esc(_number(v))}</td>"
            for v, flag in zip(table[k], table[f"{k}_best"]))
        rows.append(f"<tr><th>{esc(label)}</th>{cells}</tr>")
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>OceanLab report</title>",
        ("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
         "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
         "th{background:#f2f2f2}img{max-width:100%}pre{background:#f7f7f7;padding:8px}</style>"),
        "</head><body>",
        "<h1>OceanLab report</h1>",
        f"<p>{len(runs)} runs, written {esc(stamp)}.</p>",
        "<h2>Leaderboard</h2>",
        f"<table><tr><th>score</th>{head}</tr>{''.join(rows)}</table>",
        "<p>* best of each score (lower or higher by the score's direction)</p>",
        "<h2>Config differences</h2>",
    ]
    diffs = config_differences(runs)
    if diffs:
        parts.append(f"<table><tr><th>field</th>{head}</tr>" + "".join(
            f"<tr><th>{esc(k)}</th>" + "".join(
                f"<td>{esc(json.dumps(v, default=str))}</td>" for v in values) + "</tr>"
            for k, values in diffs.items()) + "</table>")
    else:
        parts.append("<p>none: the runs have the same config</p>")
    if len(runs) == 2:
        parts.append("<h2>RMSE difference</h2>")
        try:
            b = paired_bootstrap(runs[0], runs[1])
            lo, hi = b["interval"]
            parts.append(
                f"<p>RMSE {esc(b['run_a'])} − {esc(b['run_b'])} = {b['difference']:.4g} "
                f"(95% interval {lo:.4g} … {hi:.4g}, paired bootstrap over {b['n_days']} "
                f"test days): " + ("the difference is real (the interval excludes 0)"
                                   if b["excludes_zero"] else "not distinguishable from 0")
                + "</p>")
        except OceanLabError as exc:
            parts.append(f"<p>{esc(str(exc))}</p>")
    parts.append(_maps_section(runs))
    parts.append(_curves_section(runs))
    parts.append("<h2>Configs</h2>")
    for run in runs:
        config = run.info().get("config") or {}
        parts.append(f"<details><summary>{esc(run.id)}</summary><pre>"
                     f"{esc(json.dumps(config, indent=2, default=str))}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def run_report(args) -> int:
    from pathlib import Path

    from backend import paths
    from backend.store import RunStore, atomic_write_bytes
    from oceanlab_errors import RunError

    if len(set(args.run_ids)) != len(args.run_ids):
        raise ConfigError("report: a run id is given twice; give each run once")
    out = Path(args.out)
    if out.is_dir():
        raise RunError(f"--out {out}: is a folder, expected a file name")
    if not out.parent.is_dir():
        raise RunError(f"--out {out}: folder {out.parent} does not exist")
    store = RunStore(paths.runs_dir(args.runs_dir))
    runs = [store.get(rid) for rid in args.run_ids]  # RunError (exit 2) for an unknown run
    text = report_html(runs)
    try:
        atomic_write_bytes(out, text.encode("utf-8"))
    except OSError as exc:
        raise RunError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
    print(f"report on {len(runs)} runs written to {out}")
    return 0
