"""An animation of a run over its test period (issue 10, "Presenting"): truth,
reconstruction and residual side by side, one frame per day, saved as GIF or MP4 for slides.

Plain matplotlib (no cartopy, nothing fetched): ``pcolormesh`` on lat/lon, land masked by
the prediction's ``mask``. Truth and reconstruction share one colour scale (the truth's 2–98
percentiles over the whole test period); the residual (reconstruction − truth) has a scale
symmetric around zero (98th percentile of its absolute value). Frames are drawn one by one
(``FuncAnimation`` updating the meshes with ``set_array``), never all held in memory. The
file is written beside ``out`` under a temporary name and renamed into place.

No streamlit here: the CLI (``python -m app animate``) and the Results page use it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from oceanlab_errors import ConfigError, RunError

if TYPE_CHECKING:
    from backend.store import Run

#: Output formats and their matplotlib writer.
SUFFIXES = {".gif": "pillow", ".mp4": "ffmpeg"}
#: At most this many frames when no count is given (evenly subsampled days).
MAX_FRAMES = 60
#: Figure size in inches: pixels are ``dpi × FIGSIZE`` (both even at whole dpi, for H.264).
FIGSIZE = (12.0, 4.0)
#: Percentiles of the truth setting the shared colour scale of truth and reconstruction.
PERCENTILES = (2.0, 98.0)


def frame_indices(n_days: int, days: int | None = None) -> np.ndarray:
    """Indices of the days drawn: all ``n_days`` when they are at most ``days`` (default
    :data:`MAX_FRAMES`), else ``days`` indices evenly spread from the first to the last."""
    limit = MAX_FRAMES if days is None else int(days)
    if limit < 1:
        raise ConfigError(f"frames: must be at least 1 (got {days})")
    if n_days <= limit:
        return np.arange(n_days)
    return np.unique(np.round(np.linspace(0, n_days - 1, limit)).astype(int))


def _limits(values: np.ndarray, symmetric: bool) -> tuple[float, float]:
    """Colour limits from the finite ``values``: truth-like (2–98 percentiles) or symmetric
    (± the 98th percentile of the absolute value); a small interval around a constant and
    (-1, 1) without any finite value."""
    v = values[np.isfinite(values)]
    if not v.size:
        return -1.0, 1.0
    if symmetric:
        m = float(np.percentile(np.abs(v), PERCENTILES[1]))
        if not m > 0:
            m = float(np.abs(v).max()) or 1.0
        return -m, m
    lo, hi = (float(x) for x in np.percentile(v, PERCENTILES))
    if not hi > lo:
        pad = max(abs(lo) * 1e-3, 1e-9)
        lo, hi = lo - pad, hi + pad
    return lo, hi


def _day_text(value) -> str:
    value = np.asarray(value)
    if np.issubdtype(value.dtype, np.datetime64):
        return str(np.datetime_as_string(value, unit="D"))
    text = str(value.item() if value.ndim == 0 else value)
    return text[:10] if len(text) >= 10 and text[4:5] == "-" else text


def _fields(run: Run, lead: int):
    """Truth, reconstruction (float64, ``(time, lat, lon)``), the ocean mask ``(lat, lon)``,
    the frame titles' date texts, the units and the reconstruction's name."""
    from backend.compare import reconstruction_name

    if run.status != "done":
        raise RunError(f"run {run.id} is not done (status: {run.status}); "
                       "only a finished run can be animated")
    pred = run.prediction()
    try:
        name = reconstruction_name(pred)
    except RunError as exc:
        raise RunError(f"run {run.id}: {exc}") from None
    if "truth" not in pred:
        raise RunError(f"run {run.id}: prediction.nc holds no 'truth' variable to animate")
    rec, truth = pred[name], pred["truth"]
    if "time" not in truth.dims or "time" not in rec.dims:
        raise RunError(f"run {run.id}: prediction.nc has no time dimension to animate")
    for dim in ("lat", "lon"):
        if dim not in truth.dims or dim not in rec.dims:
            raise RunError(f"run {run.id}: prediction.nc has no {dim!r} dimension to map")
    extra = [d for d in rec.dims if d not in ("time", "lat", "lon")]
    if "lead_time" in extra:
        n_leads = rec.sizes["lead_time"]
        if not 0 <= lead < n_leads:
            raise ConfigError(f"lead: run {run.id} has leads 0 … {n_leads - 1} "
                              f"(got {lead})")
    elif lead:
        raise ConfigError(f"lead: run {run.id} is no forecast (no lead_time); leave out --lead")
    titles = [_day_text(t) for t in rec["time"].values]
    if "lead_time" in extra:
        lead_da = rec["lead_time"]
        unit = str(lead_da.attrs.get("units", "")).strip()
        lead_text = f"lead {_day_text(lead_da.values[lead])}{' ' + unit if unit else ''}"
        valid = rec.coords.get("valid_time")
        if valid is not None and set(valid.dims) == {"time", "lead_time"}:
            valid = valid.isel(lead_time=lead).values
            titles = [f"{_day_text(v)} (start {s}, {lead_text})" for s, v in zip(titles, valid)]
        else:
            titles = [f"start {s}, {lead_text}" for s in titles]
    picks = {d: (lead if d == "lead_time" else 0) for d in extra}
    rec = rec.isel(picks).transpose("time", "lat", "lon")
    truth = truth.isel({d: v for d, v in picks.items() if d in truth.dims})
    if [d for d in truth.dims if d not in ("time", "lat", "lon")]:
        raise RunError(f"run {run.id}: truth dims {truth.dims} do not match the "
                       f"reconstruction's {rec.dims}")
    truth = truth.transpose("time", "lat", "lon")
    if truth.shape != rec.shape:
        raise RunError(f"run {run.id}: reconstruction {dict(rec.sizes)} and truth "
                       f"{dict(truth.sizes)} differ in shape")
    if "mask" in pred:
        ocean = (pred["mask"].fillna(0) != 0).transpose("lat", "lon").values
    else:
        ocean = truth.notnull().any("time").values
    units = str(truth.attrs.get("units", "") or rec.attrs.get("units", ""))
    return (truth.values.astype("float64"), rec.values.astype("float64"), ocean, titles,
            units, name, truth["lat"].values, truth["lon"].values)


def _check_out(out: Path) -> str:
    """The writer name for ``out``'s suffix; ConfigError for another suffix, RunError
    without ffmpeg for .mp4 or when the folder is missing."""
    import matplotlib.animation as manim

    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(f"--out {out}: unknown suffix {out.suffix or '(none)'!r}; "
                          "use .gif or .mp4")
    writer = SUFFIXES[suffix]
    if not manim.writers.is_available(writer):
        if writer == "ffmpeg":
            raise RunError(f"--out {out}: ffmpeg is missing, so no MP4 can be written; "
                           "install ffmpeg or use .gif")
        raise RunError(f"--out {out}: the matplotlib writer {writer!r} is not available")
    if out.is_dir():
        raise RunError(f"--out {out}: is a folder, expected a file name")
    if not out.parent.is_dir():
        raise RunError(f"--out {out}: folder {out.parent} does not exist")
    return writer


def animate_run(run: Run, out: Path | str, *, fps: int = 4, days: int | None = None,
                dpi: int = 100, lead: int = 0) -> Path:
    """Write an animation of ``run``'s test period to ``out`` (``.gif`` or ``.mp4``).

    Parameters
    ----------
    run : a finished run (:class:`backend.store.Run`).
    out : the file; its suffix picks the format (MP4 needs ffmpeg).
    fps : frames per second.
    days : at most this many frames (days evenly subsampled over the test period); None:
        every test day up to :data:`MAX_FRAMES`.
    dpi : pixels per inch; frames are ``dpi × FIGSIZE`` pixels.
    lead : for a forecast, the index of the lead drawn (0: the first lead).

    Returns the path written. Errors are OceanLabError subclasses with one-line messages.
    """
    import matplotlib.animation as manim
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out)
    if int(fps) < 1:
        raise ConfigError(f"fps: must be at least 1 (got {fps})")
    if int(dpi) < 10:
        raise ConfigError(f"dpi: must be at least 10 (got {dpi})")
    writer_name = _check_out(out)
    truth, rec, ocean, titles, units, name, lat, lon = _fields(run, int(lead))
    truth[:, ~ocean] = np.nan
    rec[:, ~ocean] = np.nan
    resid = rec - truth
    lo, hi = _limits(truth, symmetric=False)
    rlo, rhi = _limits(resid, symmetric=True)
    picks = frame_indices(truth.shape[0], days)

    fig = Figure(figsize=FIGSIZE, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3, sharex=True, sharey=True)
    meshes = []
    first = int(picks[0])
    for ax, field, title, (vmin, vmax), cmap in (
            (axes[0], truth, "Truth", (lo, hi), "viridis"),
            (axes[1], rec, f"Reconstruction ({name})", (lo, hi), "viridis"),
            (axes[2], resid, "Residual (reconstruction − truth)", (rlo, rhi), "RdBu_r")):
        # values beyond the scale (it leaves out the extreme 2 %) take the end colours
        ax.set_facecolor("0.8")  # land and missing values
        mesh = ax.pcolormesh(lon, lat, np.ma.masked_invalid(field[first]), shading="auto",
                             cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("longitude")
        fig.colorbar(mesh, ax=ax, shrink=0.85, label=units or None, extend="both")
        meshes.append((mesh, field))
    axes[0].set_ylabel("latitude")
    suptitle = fig.suptitle(f"{run.id}: {titles[first]}")

    def draw(i: int):
        for mesh, field in meshes:
            mesh.set_array(np.ma.masked_invalid(field[i]))
        suptitle.set_text(f"{run.id}: {titles[i]}")
        return [m for m, _ in meshes] + [suptitle]

    anim = manim.FuncAnimation(fig, draw, frames=[int(i) for i in picks], blit=False,
                               repeat=False, cache_frame_data=False)
    writer = (manim.PillowWriter(fps=int(fps)) if writer_name == "pillow"
              else manim.FFMpegWriter(fps=int(fps), codec="h264",
                                      extra_args=["-pix_fmt", "yuv420p"]))
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=out.suffix.lower(),
                               dir=out.parent)
    os.close(fd)
    try:
        anim.save(tmp, writer=writer, dpi=dpi)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, out)
    except OSError as exc:
        raise RunError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
    except (RuntimeError, ValueError, subprocess.SubprocessError) as exc:  # writer failure
        raise RunError(f"--out {out}: writing the animation failed "
                       f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                       ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def animation_bytes(run: Run, suffix: str = ".gif", **kw) -> bytes:
    """The animation of ``run`` (keywords as :func:`animate_run`) as bytes, for a download
    button; written through a temporary folder that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="oceanlab-anim-") as folder:
        path = animate_run(run, Path(folder) / f"{run.id}{suffix}", **kw)
        return path.read_bytes()
