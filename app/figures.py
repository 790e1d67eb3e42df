"""Figures shared by the dashboard pages and reports: pure matplotlib, no streamlit.

Every function returns a :class:`matplotlib.figure.Figure` built with the object-oriented
API (``Figure()``, never ``pyplot.figure``), so figures are not registered with pyplot's
global state, cannot leak between Streamlit reruns and render with the Agg canvas.

Maps use cartopy's PlateCarree projection. Coastlines come from Natural Earth *only when the
shapefile is already on disk* (:func:`natural_earth_coastline`); otherwise, and always in
addition, the data's own land mask is drawn (grey land, dark outline) with gridlines, so a map
is clean and useful offline. :func:`configure_cartopy_offline` (run on import) replaces
cartopy's downloaders by ones that refuse to download: nothing here ever touches the network.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

if "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")  # no GUI backend in a server (figures here never need pyplot)

import cartopy
import cartopy.crs as ccrs

with warnings.catch_warnings():  # cmocean 4.0 trips a matplotlib 3.11 deprecation on import
    warnings.simplefilter("ignore", DeprecationWarning)
    import cmocean
import numpy as np
import pandas as pd
import xarray as xr
from cartopy.io import Downloader
from matplotlib.colors import Colormap, ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
)


def plain_label(label: object) -> str:
    """``label`` shown literally by matplotlib: every ``$`` escaped, so that text from a file
    (a variable name, a ``units`` attribute, a history column) is never parsed as mathtext,
    which would draw it oddly or fail the whole figure on a syntax error.

    Every label drawn by this module goes through it; do not pass mathtext here.
    """
    return "" if label is None else str(label).replace("$", r"\$")


#: Natural Earth coastline resolutions tried, finest first.
COASTLINE_RESOLUTIONS: tuple[str, ...] = ("50m", "110m")
LAND_COLOUR = "0.82"
COAST_COLOUR = "0.25"


# --------------------------------------------------------------------------- offline cartopy


class OfflineDownloadError(RuntimeError):
    """Raised instead of downloading when cartopy asks for a file that is not on disk."""


class _OfflineDownloader(Downloader):
    """A cartopy downloader that finds files already on disk and never downloads."""

    def acquire_resource(self, target_path, format_dict):
        raise OfflineDownloadError(
            f"{target_path}: not on disk, and OceanLab never downloads map data")


def configure_cartopy_offline() -> None:
    """Make every cartopy shapefile lookup offline (files on disk are still used).

    Replaces the Natural Earth and GSHHS downloaders in ``cartopy.config['downloaders']`` by
    :class:`_OfflineDownloader` with the same path templates. Idempotent.
    """
    downloaders = cartopy.config.setdefault("downloaders", {})
    for key in (("shapefiles", "natural_earth"), ("shapefiles", "gshhs")):
        current = downloaders.get(key)
        if isinstance(current, _OfflineDownloader):
            continue
        target = getattr(current, "target_path_template", None) or (
            "{config[data_dir]}/" + "/".join(key) + "/{category}/ne_{resolution}_{name}.shp")
        pre = getattr(current, "pre_downloaded_path_template", "") or ""
        downloaders[key] = _OfflineDownloader("offline://", target, pre)


configure_cartopy_offline()


def natural_earth_coastline(
    resolutions: Sequence[str] = COASTLINE_RESOLUTIONS,
) -> tuple[str, Path] | None:
    """The first Natural Earth coastline shapefile already on disk, or None.

    Looks in ``cartopy.config['pre_existing_data_dir']`` and ``cartopy.config['data_dir']``
    for ``shapefiles/natural_earth/physical/ne_<res>_coastline.shp``.

    Returns
    -------
    ``(resolution, path)`` of the file found, or None when no coastline is available.
    """
    for res in resolutions:
        for key in ("pre_existing_data_dir", "data_dir"):
            base = cartopy.config.get(key)
            if not base:
                continue
            path = (Path(base) / "shapefiles" / "natural_earth" / "physical"
                    / f"ne_{res}_coastline.shp")
            if path.is_file():
                return res, path
    return None


# --------------------------------------------------------------------------- colour scales


def shared_limits(*arrays: object, symmetric: bool = True) -> tuple[float, float]:
    """Colour limits covering every finite value of ``arrays``.

    Parameters
    ----------
    *arrays : arrays or DataArrays (any shape; NaN ignored; None skipped).
    symmetric : if True, ``(-m, m)`` with ``m`` the largest absolute value (for anomalies,
        centred on zero); else ``(min, max)``.

    Returns
    -------
    (vmin, vmax) with ``vmin < vmax``; ``(-1, 1)`` when there is no finite value, and a
    small interval around a constant value.
    """
    lo, hi, found = np.inf, -np.inf, False
    for a in arrays:
        if a is None:
            continue
        values = np.asarray(getattr(a, "values", a), dtype="float64")
        values = values[np.isfinite(values)]
        if values.size:
            found = True
            lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
    if not found:
        return -1.0, 1.0
    if symmetric:
        m = max(abs(lo), abs(hi))
        return (-m, m) if m > 0 else (-1.0, 1.0)
    if hi > lo:
        return lo, hi
    pad = abs(lo) * 0.05 or 1.0
    return lo - pad, hi + pad


def diverging(da: xr.DataArray | np.ndarray) -> bool:
    """Whether a field holds both negative and positive values (an anomaly-like field)."""
    values = np.asarray(getattr(da, "values", da), dtype="float64")
    values = values[np.isfinite(values)]
    return bool(values.size) and values.min() < 0 < values.max()


def field_style(
    name: str, attrs: dict | None, *arrays: object
) -> tuple[Colormap, float, float]:
    """Colormap and limits for a field: cmocean ``balance`` on symmetric limits for
    anomalies (values of both signs), a sequential cmocean map on (min, max) otherwise.

    Parameters
    ----------
    name : variable name; with ``attrs`` (``standard_name``, ``long_name``) it picks the
        sequential map (thermal for temperature, haline for salinity, deep otherwise).
    *arrays : the values the scale must cover.
    """
    if any(diverging(a) for a in arrays if a is not None):
        return cmocean.cm.balance, *shared_limits(*arrays, symmetric=True)
    words = " ".join([name, *(str(v) for v in (attrs or {}).values())]).lower()
    if "temp" in words or "sst" in words:
        cmap = cmocean.cm.thermal
    elif "sal" in words:
        cmap = cmocean.cm.haline
    else:
        cmap = cmocean.cm.deep
    return cmap, *shared_limits(*arrays, symmetric=False)


# --------------------------------------------------------------------------- maps


@dataclass
class MapPanel:
    """One map of a figure.

    Attributes
    ----------
    data : field ``(lat, lon)`` drawn as cells, or None for observations only.
    title : panel title.
    cmap, vmin, vmax : colour scale of the field and of the observation points.
    obs : observations ``(lat, lon)``, NaN where nothing was observed; drawn as points.
    land_mask : ``(lat, lon)`` bool, True = ocean; default: where ``data`` is finite.
    units : label of the colour bar.
    """

    data: xr.DataArray | None
    title: str = ""
    cmap: Colormap | str | None = None
    vmin: float | None = None
    vmax: float | None = None
    obs: xr.DataArray | None = None
    land_mask: xr.DataArray | np.ndarray | None = None
    units: str = ""
    #: A box (lon0, lon1, lat0, lat1) outlined on the map: a chosen region.
    box: tuple[float, float, float, float] | None = None
    #: Eddies contoured on the map (:func:`draw_eddies`): an EddySet of
    #: :mod:`data.eddies` or a class mask ``(lat, lon)`` (1 cyclonic, 2 anticyclonic).
    eddies: object = None


def _lat_lon(da: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    if "lat" not in da.coords or "lon" not in da.coords:
        raise ValueError(f"map fields need 'lat' and 'lon' coordinates; got {tuple(da.coords)}")
    return np.asarray(da["lat"].values, "float64"), np.asarray(da["lon"].values, "float64")


def cell_edges(x: np.ndarray) -> tuple[float, float]:
    """The outer edges of sorted cell centres ``x`` (half a median step beyond each end)."""
    x = np.asarray(x, dtype="float64")
    half = 0.5 * float(np.median(np.diff(x))) if x.size > 1 else 0.5
    return float(x.min()) - half, float(x.max()) + half


def _projection(lon: np.ndarray) -> ccrs.PlateCarree:
    # A domain given in 0..360 that crosses the antimeridian is drawn centred on 180°.
    return ccrs.PlateCarree(central_longitude=180.0 if lon.max() > 180.0 else 0.0)


def draw_land(ax, lat: np.ndarray, lon: np.ndarray, ocean: np.ndarray) -> None:
    """Grey land and a dark outline from an ocean mask ``(lat, lon)`` (True = ocean)."""
    land = ~np.asarray(ocean, dtype=bool)
    if not land.any():
        return
    data = ccrs.PlateCarree()
    ax.pcolormesh(lon, lat, np.where(land, 1.0, np.nan), cmap=ListedColormap([LAND_COLOUR]),
                  shading="nearest", transform=data, zorder=2)
    if land.all() or lat.size < 2 or lon.size < 2:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ax.contour(lon, lat, land.astype(float), levels=[0.5], colors=COAST_COLOUR,
                   linewidths=0.8, transform=data, zorder=3)


def _marker_size(ax, n_lat: int, n_lon: int) -> float:
    """Scatter size (points²) of about one grid cell on ``ax``, kept between 3 and 40."""
    root = ax.figure
    while not hasattr(root, "get_size_inches"):  # a map in a sub-figure
        root = root.figure if root.figure is not root else root._parent
    width, height = root.get_size_inches()
    box = ax.get_position()
    cell = min(box.width * width * 72 / max(n_lon, 1), box.height * height * 72 / max(n_lat, 1))
    return float(np.clip((1.1 * cell) ** 2, 3.0, 40.0))


def _degree_ticks(ax, lon: tuple[float, float], lat: tuple[float, float], crs) -> None:
    """Longitude/latitude ticks (°W/°E, °S/°N) on the left and bottom of a map, with light
    grid lines: plain axis ticks, several times cheaper to draw than cartopy's labelled
    gridliner (which dominated the drawing of a day's maps)."""
    from cartopy.mpl.ticker import LatitudeFormatter, LongitudeFormatter

    locator = MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10])
    xs = [v for v in locator.tick_values(*lon) if lon[0] <= v <= lon[1]]
    ys = [v for v in locator.tick_values(*lat) if lat[0] <= v <= lat[1]]
    ax.set_xticks(xs, crs=crs)
    ax.set_yticks(ys, crs=crs)
    ax.xaxis.set_major_formatter(LongitudeFormatter())
    ax.yaxis.set_major_formatter(LatitudeFormatter())
    ax.tick_params(labelsize=7, length=2)
    ax.grid(True, linewidth=0.3, color="0.4", alpha=0.6, linestyle="--")


def draw_map(ax, panel: MapPanel, *, coastline: tuple[str, Path] | None = None):
    """Draw ``panel`` on the GeoAxes ``ax``; returns the mappable for a colour bar (or None).

    Land comes from ``panel.land_mask`` (or the field's NaN); a Natural Earth coastline
    is added only when ``coastline`` (from :func:`natural_earth_coastline`) is given.
    """
    ref = panel.data if panel.data is not None else panel.obs
    if ref is None:
        raise ValueError("a map panel needs data or obs")
    ref = ref.squeeze(drop=True)
    lat, lon = _lat_lon(ref)
    data_crs = ccrs.PlateCarree()
    cmap = panel.cmap or cmocean.cm.balance
    vmin, vmax = panel.vmin, panel.vmax
    if vmin is None or vmax is None:
        lo, hi = shared_limits(panel.data, panel.obs)
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    mappable = None
    if panel.data is not None:
        values = np.asarray(panel.data.squeeze(drop=True).transpose("lat", "lon").values)
        mappable = ax.pcolormesh(lon, lat, values, cmap=cmap, vmin=vmin, vmax=vmax,
                                 shading="nearest", transform=data_crs, zorder=1)
    if panel.land_mask is not None:
        ocean = np.asarray(getattr(panel.land_mask, "values", panel.land_mask), dtype=bool)
    elif panel.data is not None:
        ocean = np.isfinite(values)
    else:
        ocean = np.ones((lat.size, lon.size), dtype=bool)
    draw_land(ax, lat, lon, ocean)
    if panel.obs is not None:
        obs = np.asarray(panel.obs.squeeze(drop=True).transpose("lat", "lon").values)
        iy, ix = np.nonzero(np.isfinite(obs))
        if iy.size:
            points = ax.scatter(lon[ix], lat[iy], c=obs[iy, ix], cmap=cmap, vmin=vmin,
                                vmax=vmax, s=_marker_size(ax, lat.size, lon.size),
                                edgecolors="0.15", linewidths=0.15, transform=data_crs,
                                zorder=4)
            mappable = mappable if mappable is not None else points
    if panel.eddies is not None:
        draw_eddies(ax, panel.eddies, lat, lon)
    if coastline is not None:
        ax.coastlines(resolution=coastline[0], color=COAST_COLOUR, linewidth=0.7, zorder=5)
    if panel.box is not None:
        b0, b1, c0, c1 = panel.box
        ax.plot([b0, b1, b1, b0, b0], [c0, c0, c1, c1, c0], color="k", linewidth=1.6,
                linestyle="--", transform=data_crs, zorder=6)
    x0, x1 = cell_edges(lon)
    y0, y1 = cell_edges(lat)
    ax.set_extent([x0, x1, y0, y1], crs=data_crs)
    _degree_ticks(ax, (x0, x1), (y0, y1), data_crs)
    ax.set_title(plain_label(panel.title), fontsize=9)
    return mappable


def maps_figure(
    panels: Sequence[MapPanel],
    *,
    ncols: int = 2,
    panel_size: tuple[float, float] = (4.2, 3.6),
    suptitle: str | None = None,
) -> Figure:
    """A grid of maps, each with its own colour bar (panels may share vmin/vmax).

    The figure holds one GeoAxes per panel plus one colour-bar axes per panel that has
    something coloured.
    """
    if not panels:
        raise ValueError("maps_figure needs at least one panel")
    ncols = max(1, min(ncols, len(panels)))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    coastline = natural_earth_coastline()
    for i, panel in enumerate(panels):
        ref = panel.data if panel.data is not None else panel.obs
        lon = _lat_lon(ref)[1] if ref is not None else np.zeros(1)
        ax = fig.add_subplot(nrows, ncols, i + 1, projection=_projection(lon))
        mappable = draw_map(ax, panel, coastline=coastline)
        if mappable is not None:
            fig.colorbar(mappable, ax=ax, shrink=0.85, pad=0.02,
                         label=plain_label(panel.units) or None)
    if suptitle:
        fig.suptitle(plain_label(suptitle), fontsize=11)
    return fig


def map_figure(
    da2d: xr.DataArray,
    *,
    title: str = "",
    cmap: Colormap | str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    obs: xr.DataArray | None = None,
    land_mask: xr.DataArray | np.ndarray | None = None,
    units: str | None = None,
    box: tuple[float, float, float, float] | None = None,
    eddies: object = None,
) -> Figure:
    """One map of a field ``(lat, lon)`` with optional observation points; two axes (map,
    colour bar). ``box`` (lon0, lon1, lat0, lat1) is outlined dashed (a chosen region);
    ``eddies`` (an EddySet or a class mask) are contoured, cyclones blue, anticyclones red.

    Parameters
    ----------
    da2d : field with ``lat`` and ``lon`` coordinates (a singleton time is squeezed).
    title : axes title.
    cmap, vmin, vmax : colour scale (default: cmocean balance on :func:`shared_limits` of the
        field and the observations).
    obs : observations on the same grid, NaN where none; drawn as points on the same scale.
    land_mask : ocean mask ``(lat, lon)`` (True = ocean); default: where the field is finite.
    units : colour-bar label (default: ``da2d.attrs['units']``).
    """
    panel = MapPanel(da2d, title=title, cmap=cmap, vmin=vmin, vmax=vmax, obs=obs,
                     land_mask=land_mask,
                     units=units if units is not None else str(da2d.attrs.get("units", "")),
                     box=box, eddies=eddies)
    return maps_figure([panel], ncols=1, panel_size=(6.4, 5.0))


def comparison_maps_figure(
    truth: xr.DataArray,
    prediction: xr.DataArray,
    *,
    inputs: Sequence[MapPanel] = (),
    prediction_title: str = "Prediction",
    truth_title: str = "Truth",
    limits: tuple[float, float] | None = None,
    residual_limits: tuple[float, float] | None = None,
    land_mask: xr.DataArray | np.ndarray | None = None,
    units: str = "",
    suptitle: str | None = None,
    ncols: int | None = None,
    cmap: Colormap | str | None = None,
    label: str | None = None,
    panel_size: tuple[float, float] = (3.9, 3.3),
) -> Figure:
    """Truth, the inputs of a method and its prediction on one row with one shared colour
    bar, and the residual below the prediction with its own.

    Parameters
    ----------
    truth, prediction : fields ``(lat, lon)`` on the same grid.
    inputs : what the method saw (observations, an initial state, a coarse field), drawn
        after the truth; a panel without ``cmap``/limits takes the truth's scale (a coarse
        field keeps its own grid, and its own land where it is NaN). An input with a scale
        of its own gets a colour bar of its own.
    limits : colour limits of truth, inputs and prediction (default: symmetric over the
        truth and the prediction); ``residual_limits`` those of prediction − truth
        (default: symmetric over the residual).
    land_mask : ocean mask ``(lat, lon)`` (True = ocean) of truth, prediction and residual.
    cmap : colour map of the fields (default cmocean ``balance``; residuals always use it).
    label : the shared colour bar's label: the variable and its unit (default ``units``).
    ncols : maps per row of the fields, the residual under the prediction (default: one
        row of every field and the residual).

    Returns
    -------
    A figure of two sub-figures (fields, residual), each with one colour bar.
    """
    residual = prediction - truth
    if land_mask is not None:
        residual = residual.where(np.asarray(getattr(land_mask, "values", land_mask), bool))
    lo, hi = limits if limits is not None else shared_limits(truth, prediction)
    rlo, rhi = residual_limits if residual_limits is not None else shared_limits(residual)
    balance = cmocean.cm.balance
    cmap = cmap or balance
    fields = [MapPanel(truth, truth_title, cmap, lo, hi, land_mask=land_mask)]
    for panel in inputs:
        fields.append(MapPanel(
            panel.data, panel.title, panel.cmap or cmap,
            lo if panel.vmin is None else panel.vmin, hi if panel.vmax is None else panel.vmax,
            obs=panel.obs, land_mask=panel.land_mask, units=panel.units))
    fields.append(MapPanel(prediction, prediction_title, cmap, lo, hi, land_mask=land_mask))
    what = prediction_title.split(" (")[0].lower()
    res_label = residual_label(label, units)
    residuals = [MapPanel(residual, f"Residual ({what} − truth)", balance, rlo, rhi,
                          land_mask=land_mask)]
    groups = [(fields, label if label is not None else units), (residuals, res_label)]
    if ncols is None or ncols >= len(fields):  # one row: the fields, then the residual
        return _grouped_maps(groups, ncols=0, panel_size=panel_size, suptitle=suptitle)
    return _grouped_maps(groups, ncols=max(1, ncols), panel_size=panel_size,
                         suptitle=suptitle, shift=[0, (len(fields) - 1) % ncols])


def residual_label(label: str | None, units: str = "") -> str:
    """The residuals' colour-bar label: ``residual (m)`` for a field in ``units``, else
    ``residual of <label>`` (a derived field such as ζ/f)."""
    if units and (not label or label == units or label.endswith(f"({units})")):
        return f"residual ({units})"
    return f"residual of {label}" if label else "residual"


def _grouped_maps(
    groups: Sequence[tuple[Sequence[MapPanel], str]],
    *,
    ncols: int,
    panel_size: tuple[float, float],
    suptitle: str | None = None,
    shift: Sequence[int] = (),
) -> Figure:
    """Groups of maps, one sub-figure each, each group with ONE colour bar (its first
    panel's scale; a panel with another scale gets a bar of its own, labelled with its
    ``units``). Groups are stacked in rows of ``ncols`` maps, ``shift[g]`` empty cells
    before group ``g``'s first map (a residual under its prediction); ``ncols=0`` puts
    every group side by side on one row instead."""
    groups = [(list(p), label) for p, label in groups if p]
    if ncols == 0:
        widths = [len(p) for p, _ in groups]
        fig = Figure(figsize=(panel_size[0] * sum(widths) + 1.1 * len(groups),
                              panel_size[1] + 0.7), layout="constrained")
        subs = (fig.subfigures(1, len(groups), width_ratios=[w + 0.3 for w in widths])
                if len(groups) > 1 else [fig])
        cols, rows, shift = widths, [1] * len(groups), []
    else:
        rows = [-(-(len(p) + (shift[g] if g < len(shift) else 0)) // ncols)
                for g, (p, _) in enumerate(groups)]
        cols = [ncols] * len(groups)
        fig = Figure(figsize=(panel_size[0] * ncols + 1.4, panel_size[1] * sum(rows) + 0.7),
                     layout="constrained")
        subs = (fig.subfigures(len(groups), 1, height_ratios=rows) if len(groups) > 1
                else [fig])
    coastline = natural_earth_coastline()
    for g, (sub, (panels, label), nrows, n_cols) in enumerate(zip(subs, groups, rows, cols)):
        first = panels[0]
        axes, mappable = [], None
        for i, panel in enumerate(panels):
            ref = panel.data if panel.data is not None else panel.obs
            lon = _lat_lon(ref)[1]
            at = i + 1 + (shift[g] if g < len(shift) else 0)
            ax = sub.add_subplot(nrows, n_cols, at, projection=_projection(lon))
            m = draw_map(ax, panel, coastline=coastline)
            if (panel.vmin, panel.vmax, panel.cmap) == (first.vmin, first.vmax, first.cmap):
                axes.append(ax)
                mappable = m if m is not None else mappable
            elif m is not None:  # a panel on a scale of its own: its own bar
                sub.colorbar(m, ax=ax, shrink=0.8, pad=0.02,
                             label=plain_label(panel.units) or None)
        if mappable is not None:
            sub.colorbar(mappable, ax=axes, shrink=0.85, pad=0.02,
                         label=plain_label(label) or None)
    if suptitle:
        fig.suptitle(plain_label(suptitle), fontsize=11)
    return fig


# --------------------------------------------------------------------------- curves


def timeseries_figure(
    series: dict[str, pd.Series],
    *,
    ylabel: str = "",
    title: str = "",
    mark: object | None = None,
    size: tuple[float, float] = (7.0, 2.8),
) -> Figure:
    """Lines over a shared x axis (e.g. RMSE over time), one per named series.

    ``mark`` (an x value, e.g. the day shown on the maps) is drawn as a dashed vertical line.
    """
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    for label, s in series.items():
        ax.plot(s.index, s.values, marker="o", markersize=2.5, linewidth=1.2,
                label=plain_label(label))
    if mark is not None:
        ax.axvline(mark, color="0.3", linestyle="--", linewidth=0.8)
    ax.set_ylabel(plain_label(ylabel))
    ax.set_title(plain_label(title), fontsize=10)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return fig


def lead_curves_figure(
    rmse: dict[str, pd.Series],
    skill: dict[str, pd.Series] | None = None,
    *,
    rmse_label: str = "RMSE",
    lead_label: str = "lead",
    mark: float | None = None,
    size: tuple[float, float] = (10.0, 3.4),
) -> Figure:
    """Per-lead curves of a forecast: RMSE of the model and of its references (left), and
    skill scores and anomaly correlation (right, with the zero line: no better than the
    reference below it).

    Parameters
    ----------
    rmse : label → Series indexed by lead (e.g. model, persistence, climatology).
    skill : label → Series indexed by lead (skill vs persistence, vs climatology, ACC);
        None or empty draws the left panel only.
    rmse_label, lead_label : axis labels.
    mark : a lead to mark with a dashed vertical line (the lead shown on the maps).
    """
    panels = [(rmse, rmse_label, "RMSE by lead")]
    if skill:
        panels.append((skill, "skill, ACC", "Skill and ACC by lead"))
    fig = Figure(figsize=(size[0] if len(panels) > 1 else size[0] / 2, size[1]),
                 layout="constrained")
    for i, (curves, ylabel, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for label, s in curves.items():
            ax.plot(np.asarray(s.index, dtype="float64"), np.asarray(s.values, dtype="float64"),
                    marker="o", markersize=3.5, linewidth=1.4, label=plain_label(label))
        if i == 1:
            ax.axhline(0.0, color="0.3", linewidth=0.8)
        if mark is not None:
            ax.axvline(mark, color="0.3", linestyle="--", linewidth=0.8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(plain_label(lead_label))
        ax.set_ylabel(plain_label(ylabel))
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if curves:
            ax.legend(fontsize=8)
    return fig


def history_figure(history: pd.DataFrame, *, size: tuple[float, float] = (7.0, 2.8)) -> Figure:
    """Loss curves of a training history (columns ``epoch`` and ``*loss*``), log y axis."""
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    x = history["epoch"] if "epoch" in history else np.arange(1, len(history) + 1)
    positive = True
    for col in [c for c in history.columns if "loss" in str(c)]:
        y = pd.to_numeric(history[col], errors="coerce")
        positive &= bool((y.dropna() > 0).all())
        ax.plot(x, y, marker="o", markersize=2.5, linewidth=1.2, label=plain_label(col))
    if positive and len(history):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def psd_score_figure(
    score: xr.DataArray,
    contour: Sequence[np.ndarray] = (),
    *,
    lambda_x: float | None = None,
    lambda_t: float | None = None,
    level: float = 0.5,
    size: tuple[float, float] = (6.0, 4.2),
    km_per_degree: float | None = None,
) -> Figure:
    """The PSD score over (wavelength, period) with its ``level`` contour; with
    ``km_per_degree`` (at the domain's latitude) a second wavelength axis in km on top.

    Parameters
    ----------
    score : ``(freq_time, freq_lon)`` from :func:`metrics.psd_score` (cycles per day, cycles
        per degree, positive frequencies).
    contour : lines from :func:`metrics.psd_score_contour` (columns wavelength in degrees,
        period in days); drawn as they are, so the figure shows the contour the scores used.
    lambda_x, lambda_t : resolved scales to mark (degrees, days).
    """
    score = score.transpose("freq_time", "freq_lon")
    x = 1.0 / np.asarray(score["freq_lon"].values, dtype="float64")
    y = 1.0 / np.asarray(score["freq_time"].values, dtype="float64")
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    values = np.ma.masked_invalid(np.asarray(score.values, dtype="float64"))
    mesh = ax.pcolormesh(x, y, np.clip(values, 0.0, 1.0), cmap="RdYlGn", vmin=0.0, vmax=1.0,
                         shading="nearest")
    for i, line in enumerate(contour):
        ax.plot(line[:, 0], line[:, 1], color="k", linewidth=1.5,
                label=f"PSD score = {level:g}" if i == 0 else None)
    if lambda_x is not None:
        ax.axvline(lambda_x, color="k", linestyle=":", linewidth=1.0,
                   label=f"λx = {lambda_x:.2f}°")
    if lambda_t is not None:
        ax.axhline(lambda_t, color="k", linestyle="--", linewidth=1.0,
                   label=f"λt = {lambda_t:.1f} days")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("wavelength (degrees of longitude)")
    ax.set_ylabel("period (days)")
    if km_per_degree is not None and np.isfinite(km_per_degree) and km_per_degree > 0:
        k = float(km_per_degree)
        top = ax.secondary_xaxis("top", functions=(lambda d: d * k, lambda km: km / k))
        top.set_xlabel("wavelength (km)")
        top.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        top.xaxis.set_minor_formatter(NullFormatter())
    fig.colorbar(mesh, ax=ax, label="PSD score")
    if contour or lambda_x is not None or lambda_t is not None:
        ax.legend(fontsize=8, loc="lower right")
    return fig


def psd_overlay_figure(
    contours: dict[str, Sequence[np.ndarray]],
    spectra: dict[str, xr.DataArray] | None = None,
    truth_spectrum: xr.DataArray | None = None,
    *,
    level: float = 0.5,
    km_per_degree: float | None = None,
    size: tuple[float, float] = (11.0, 4.2),
) -> Figure:
    """Several runs' PSD scores on one figure (the Compare page): left, every run's
    ``level`` contour on the (wavelength, period) plane, the scales each resolves lying
    above and right of its line; right, the zonal wavenumber spectra of every run's
    reconstruction over the truth's (a run under the truth at short wavelengths is
    smoother than the truth).

    Parameters
    ----------
    contours : label → lines from :func:`metrics.psd_score_contour` (columns wavelength in
        degrees, period in days), as the runs' scores used them.
    spectra : label → ``psd_x_rec(freq_lon)`` of the run's diagnostics.nc; ``truth_spectrum``
        the truth's ``psd_x_truth`` (drawn black, dashed).
    km_per_degree : a second wavelength axis in km on top of both panels.
    """
    spectra = spectra or {}
    fig = Figure(figsize=size, layout="constrained")
    panels = 2 if spectra else 1
    ax = fig.add_subplot(1, panels, 1)
    colours = [f"C{i}" for i in range(10)]
    for n, (label, lines) in enumerate(contours.items()):
        for i, line in enumerate(lines):
            ax.plot(line[:, 0], line[:, 1], color=colours[n % 10], linewidth=1.8,
                    label=plain_label(label) if i == 0 else None)
    ax.set_title(f"PSD score = {level:g} contour of each run", fontsize=10)
    ax.set_ylabel("period (days)")
    axes = [ax]
    if spectra:
        sx = fig.add_subplot(1, panels, 2)
        if truth_spectrum is not None:
            sx.plot(1.0 / truth_spectrum["freq_lon"].values, truth_spectrum.values, color="k",
                    linestyle="--", linewidth=1.5, label="truth")
        for n, (label, psd) in enumerate(spectra.items()):
            sx.plot(1.0 / psd["freq_lon"].values, psd.values, color=colours[n % 10],
                    linewidth=1.4, label=plain_label(label))
        sx.set_yscale("log")
        sx.invert_xaxis()  # long waves on the left, as on the spectrum's usual axis
        units = str(next(iter(spectra.values())).attrs.get("units", ""))
        sx.set_ylabel(plain_label(f"PSD {units}" if units else "PSD"))
        sx.set_title("Zonal wavenumber spectrum (mean over time and latitude)", fontsize=10)
        sx.legend(fontsize=8)
        axes.append(sx)
    for a in axes:
        a.set_xscale("log")
        if a is ax:
            a.set_yscale("log")
        for axis in (a.xaxis, a.yaxis) if a is ax else (a.xaxis,):
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())
        a.set_xlabel("wavelength (degrees of longitude)")
        a.grid(alpha=0.3, which="both")
        if km_per_degree is not None and np.isfinite(km_per_degree) and km_per_degree > 0:
            k = float(km_per_degree)
            top = a.secondary_xaxis("top", functions=(lambda d, k=k: d * k,
                                                      lambda km, k=k: km / k))
            top.set_xlabel("wavelength (km)")
            top.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
            top.xaxis.set_minor_formatter(NullFormatter())
    if contours:
        ax.legend(fontsize=8, loc="lower right")
    return fig


# --------------------------------------------------------------------------- physics residual


def residual_maps_figure(
    residual: xr.DataArray,
    truth: xr.DataArray | None = None,
    *,
    land_mask: xr.DataArray | np.ndarray | None = None,
    value: float | None = None,
    floor: float | None = None,
    suptitle: str | None = None,
) -> Figure:
    """Maps of the QG potential-vorticity residual (``physics_residual_map`` of
    ``diagnostics.nc``): the method's and, when given, the truth's (the floor), on one
    sequential scale from 0.

    Parameters
    ----------
    residual, truth : ``(lat, lon)``, RMS over time of the residual R at each point divided by
        the global RMS of J(ψ, q) (dimensionless); NaN where no valid interior point.
    land_mask : ocean mask ``(lat, lon)`` (True = ocean).
    value, floor : the run's ``physics_residual`` and ``physics_residual_truth``, shown in
        the panel titles.

    Returns
    -------
    :func:`maps_figure` of one or two panels (each with its colour bar), scale 0 … the 99th
    percentile of both maps.
    """
    maps = [residual] + ([truth] if truth is not None else [])
    finite = np.concatenate([np.asarray(m.values, dtype="float64").ravel() for m in maps])
    finite = finite[np.isfinite(finite)]
    top = float(np.percentile(finite, 99)) if finite.size else 1.0
    top = top if top > 0 else 1.0

    def title(what: str, score: float | None) -> str:
        return what + (f": {score:.3g} overall" if score is not None else "")

    panels = [MapPanel(residual, title("Prediction", value), cmocean.cm.amp, 0.0, top,
                       land_mask=land_mask, units="RMS(R) / RMS(J)")]
    if truth is not None:
        panels.append(MapPanel(truth, title("Truth (the floor)", floor), cmocean.cm.amp, 0.0,
                               top, land_mask=land_mask, units="RMS(R) / RMS(J)"))
    return maps_figure(panels, ncols=len(panels), suptitle=suptitle)


# --------------------------------------------------------------------------- tuning

#: Columns of ``tuning.csv`` (backend.tuning) that are not searched parameters.
TUNING_COLUMNS = ("number", "state", "value", "duration_s", "error")


def tuning_parameters(table: pd.DataFrame) -> list[str]:
    """The searched parameters of a ``tuning.csv`` table: every column but
    :data:`TUNING_COLUMNS`, in the table's order."""
    return [str(c) for c in table.columns if str(c) not in TUNING_COLUMNS]


def tuning_figure(
    table: pd.DataFrame,
    *,
    metric: str = "value",
    best: int | None = None,
    params: Sequence[str] | None = None,
    panel_size: tuple[float, float] = (4.0, 3.0),
) -> Figure:
    """The tuning metric against each searched parameter, one panel per parameter.

    Parameters
    ----------
    table : ``tuning.csv`` of ``python -m app tune`` (columns ``number``, ``state``,
        ``value``, ``duration_s``, one per parameter, ``error``). Trials without a value
        (failed) are left out of the points and counted in the panel titles.
    metric : y-axis label (the score searched, e.g. ``rmse``).
    best : ``number`` of the best trial, drawn as a star.
    params : parameters to draw (default :func:`tuning_parameters`).

    Numeric parameters are drawn on their own axis (logarithmic when positive and spanning
    a factor of 8 or more, as latent sizes or length scales), with the mean value per
    parameter value joined by a line (a grid sweep: the curve of the metric against it);
    other parameters (choices) as categories.
    """
    params = list(params) if params is not None else tuning_parameters(table)
    if not params:
        raise ValueError("tuning_figure: the table has no parameter column")
    values = pd.to_numeric(table.get("value"), errors="coerce") if "value" in table else None
    if values is None:
        raise ValueError("tuning_figure: the table has no 'value' column")
    ok = values.notna()
    ncols = min(3, len(params))
    nrows = -(-len(params) // ncols)
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    numbers = pd.to_numeric(table.get("number"), errors="coerce") if "number" in table else None
    is_best = (numbers == best) & ok if numbers is not None and best is not None else None
    for i, name in enumerate(params):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        raw = table[name]
        numeric = pd.to_numeric(raw, errors="coerce")
        keep = ok & raw.notna()
        if bool(keep.any()) and bool(numeric[keep].notna().all()):
            x = numeric[keep].astype("float64")
            ax.scatter(x, values[keep], s=22, alpha=0.8, label="trial")
            curve = values[keep].groupby(x).mean().sort_index()
            if len(curve) > 1:
                ax.plot(curve.index, curve.values, linewidth=1.0, color="0.4")
            if (x > 0).all() and x.max() >= 8 * x.min():
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
            where = x
        else:
            labels = raw[keep].astype(str)
            order = list(dict.fromkeys(sorted(labels)))
            where = labels.map({v: k for k, v in enumerate(order)}).astype("float64")
            ax.scatter(where, values[keep], s=22, alpha=0.8, label="trial")
            ax.set_xticks(range(len(order)), [plain_label(v) for v in order], fontsize=8)
        if is_best is not None and bool((is_best & keep).any()):
            sel = is_best[keep].to_numpy()
            ax.scatter(np.asarray(where)[sel], np.asarray(values[keep])[sel], marker="*",
                       s=160, color="tab:red", zorder=3, label="best")
        failed = int((~ok).sum())
        ax.set_title(plain_label(name + (f" ({failed} failed)" if failed else "")), fontsize=10)
        ax.set_xlabel(plain_label(name))
        ax.set_ylabel(plain_label(metric))
        ax.grid(alpha=0.3)
        if i == 0 and is_best is not None and bool(is_best.any()):
            ax.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------- compare runs


def runs_day_figure(
    truth: xr.DataArray | None,
    reconstructions: dict[str, xr.DataArray],
    *,
    land_mask: xr.DataArray | np.ndarray | None = None,
    units: str = "",
    suptitle: str | None = None,
    per_row: int = 4,
    panel_size: tuple[float, float] = (3.6, 3.0),
    cmap: Colormap | str | None = None,
    limits: tuple[float, float] | None = None,
    residual_limits: tuple[float, float] | None = None,
    label: str | None = None,
) -> Figure:
    """The same day of several runs side by side (the Compare page): the truth and every
    run's reconstruction on one shared colour scale with one colour bar, then every run's
    residual (reconstruction − truth) on one shared symmetric scale with one colour bar.

    Parameters
    ----------
    truth : field ``(lat, lon)``, or None (no truth panel and no residuals).
    reconstructions : label → field ``(lat, lon)`` on the truth's grid.
    land_mask : ocean mask ``(lat, lon)`` (True = ocean) of every panel.
    per_row : at most this many maps per row (the rows wrap).
    cmap, limits, residual_limits : colour map and limits of the fields (default cmocean
        ``balance`` symmetric over every field) and of the residuals (symmetric).
    label : the fields' colour-bar label: the variable and its unit (default ``units``).

    Returns
    -------
    A figure of two sub-figures (fields, residuals), each a grid of GeoAxes and one colour
    bar shared by its maps.
    """
    if not reconstructions:
        raise ValueError("runs_day_figure needs at least one reconstruction")
    ocean = None if land_mask is None else np.asarray(getattr(land_mask, "values", land_mask),
                                                      dtype=bool)
    fields = ([("Truth", truth)] if truth is not None else []) + list(reconstructions.items())
    residuals = []
    if truth is not None:
        for name, rec in reconstructions.items():
            res = rec - truth
            if ocean is not None:
                res = res.where(ocean)
            residuals.append((f"{name} − truth", res))
    lo, hi = limits if limits is not None else shared_limits(*(f for _, f in fields))
    rlo, rhi = (residual_limits if residual_limits is not None
                else shared_limits(*(r for _, r in residuals)))
    cmap = cmap or cmocean.cm.balance
    label = label if label is not None else units
    groups = [([MapPanel(da, title, cmap, lo, hi, land_mask=land_mask) for title, da in fields],
               label)]
    if residuals:
        groups.append(([MapPanel(da, title, cmocean.cm.balance, rlo, rhi, land_mask=land_mask)
                        for title, da in residuals],
                       residual_label(label, units)))
    ncols = max(1, min(per_row, max(len(g[0]) for g in groups)))
    # residuals under their reconstructions when every field fits on one row
    shift = [0, 1 if truth is not None and len(fields) <= ncols else 0]
    return _grouped_maps(groups, ncols=ncols, panel_size=panel_size, suptitle=suptitle,
                         shift=shift)


# --------------------------------------------------------------------------- eddies

#: Eddy classes of a class mask (0 is the background) and their names.
EDDY_CLASSES: dict[int, str] = {1: "cyclonic", 2: "anticyclonic"}
#: Contour colour of each eddy class: cyclones blue, anticyclones red.
EDDY_COLOURS: dict[str, str] = {"cyclonic": "#1f5fd1", "anticyclonic": "#d62728"}
#: Names of the classes of a class mask, in id order (the confusion matrix's labels).
CLASS_LABELS: tuple[str, ...] = ("background", "cyclonic", "anticyclonic")


def _eddy_mask(eddies: object) -> xr.DataArray | np.ndarray | None:
    """The class mask of ``eddies``: its ``mask`` (an EddySet) or itself (a mask)."""
    if eddies is None:
        return None
    if isinstance(eddies, (xr.DataArray, np.ndarray)):
        return eddies
    return getattr(eddies, "mask", None)


def _eddy_table(eddies: object) -> pd.DataFrame | None:
    table = getattr(eddies, "eddies", None)
    return table if isinstance(table, pd.DataFrame) else None


def _rings(value: object) -> list[np.ndarray]:
    """The closed contours of one eddy as ``(n, 2)`` arrays of (lon, lat): from one
    ``(n, 2)`` array, a pair of lon and lat arrays, a stack of rings or a list of them;
    nothing from None, NaN or anything unreadable."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return []
    try:
        arr = np.asarray(value, dtype="float64")
    except (TypeError, ValueError):  # a ragged list of rings
        if isinstance(value, (list, tuple)):
            return [r for item in value for r in _rings(item)]
        return []
    if arr.ndim == 2 and arr.shape[1] == 2 and arr.shape[0] >= 2:
        return [arr]
    if arr.ndim == 2 and arr.shape[0] == 2 and arr.shape[1] > 2:
        return [arr.T]
    if arr.ndim == 3 and arr.shape[2] == 2:
        return list(arr)
    return []


def draw_eddies(ax, eddies: object, lat: np.ndarray, lon: np.ndarray) -> int:
    """Contour ``eddies`` on the map ``ax``: cyclones blue, anticyclones red (white halo).

    ``eddies`` is an EddySet of :mod:`data.eddies` (``mask`` and a table ``eddies`` with
    ``kind``, ``lon``, ``lat`` and ``contour``) or a class mask ``(lat, lon)`` (0 background,
    1 cyclonic, 2 anticyclonic). The table's contours are drawn when it has any, with a dot
    at each centre; otherwise the boundary of each class of the mask (its 0.5 contour).
    Returns the number of contours drawn from the table (0 when drawn from the mask).
    """
    from matplotlib import patheffects

    data_crs = ccrs.PlateCarree()
    # a white halo keeps a red contour visible over the red of an anticyclone (and blue)
    halo = [patheffects.withStroke(linewidth=3.4, foreground="white")]
    table = _eddy_table(eddies)
    drawn = 0
    if table is not None and len(table) and "contour" in table and "kind" in table:
        for row in table.itertuples(index=False):
            colour = EDDY_COLOURS.get(str(row.kind))
            if colour is None:
                continue
            for ring in _rings(row.contour):
                ax.plot(ring[:, 0], ring[:, 1], color=colour, linewidth=1.6,
                        path_effects=halo, transform=data_crs, zorder=5, label=str(row.kind))
                drawn += 1
        if drawn:
            if {"lon", "lat"} <= set(table.columns):
                for kind, colour in EDDY_COLOURS.items():
                    rows = table[table["kind"] == kind]
                    if len(rows):
                        ax.plot(rows["lon"].to_numpy(float), rows["lat"].to_numpy(float),
                                linestyle="none", marker="o", markersize=2.5, color=colour,
                                transform=data_crs, zorder=5)
            return drawn
    mask = _eddy_mask(eddies)
    if mask is None:
        return 0
    if isinstance(mask, xr.DataArray):
        if "lat" in mask.coords and "lon" in mask.coords:
            mask = mask.squeeze(drop=True)
            lat, lon = _lat_lon(mask)
            mask = mask.transpose("lat", "lon")
        values = np.asarray(mask.values, dtype="float64")
    else:
        values = np.asarray(mask, dtype="float64")
    values = np.nan_to_num(values.squeeze(), nan=0.0)
    if values.shape != (lat.size, lon.size) or lat.size < 2 or lon.size < 2:
        return 0
    for cls, kind in EDDY_CLASSES.items():
        inside = (values == cls).astype("float64")
        if not inside.any():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lines = ax.contour(lon, lat, inside, levels=[0.5], colors=[EDDY_COLOURS[kind]],
                               linewidths=1.6, transform=data_crs, zorder=5)
        lines.set_path_effects(halo)
    return 0


def _eddy_legend(fig) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, linewidth=1.6, label=k) for k, c in EDDY_COLOURS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8,
               frameon=False)


def eddy_maps_figure(
    ssh: xr.DataArray | None,
    reference: object,
    predicted: object,
    *,
    land_mask: xr.DataArray | np.ndarray | None = None,
    units: str = "",
    titles: Sequence[str] = ("Reference", "Prediction"),
    suptitle: str | None = None,
    limits: tuple[float, float] | None = None,
    panel_size: tuple[float, float] = (4.6, 3.9),
) -> Figure:
    """The eddies of a reference and of a prediction side by side, over the SSH.

    Parameters
    ----------
    ssh : SSH ``(lat, lon)`` drawn under both panels (cmocean balance, one colour bar shared
        by both), or a pair of fields (one per panel, same scale), or None: the class maps
        themselves in light colours, with no colour bar.
    reference, predicted : EddySet (:mod:`data.eddies`) or class mask ``(lat, lon)``
        (0 background, 1 cyclonic, 2 anticyclonic); contoured by :func:`draw_eddies`,
        cyclones blue and anticyclones red.
    land_mask : ocean mask ``(lat, lon)`` (True = ocean).
    units : the colour bar's label.
    titles : the two panels' titles.
    limits : SSH colour limits (default: symmetric over the SSH).

    Returns
    -------
    A figure of two GeoAxes, one colour bar (when there is SSH) and a legend of the classes.
    """
    fields = list(ssh) if isinstance(ssh, (tuple, list)) else [ssh, ssh]
    if fields[0] is None:
        classes = ListedColormap(["white", "#c6dbef", "#fcbba1"])
        fields = [_eddy_mask(e) for e in (reference, predicted)]
        if any(f is None for f in fields):
            raise ValueError("eddy_maps_figure needs SSH or two class masks to draw")
        fields = [f if isinstance(f, xr.DataArray) else xr.DataArray(f, dims=("lat", "lon"))
                  for f in fields]
        panels = [MapPanel(f.astype("float64"), str(t), classes, -0.5, 2.5,
                           land_mask=land_mask, eddies=e)
                  for f, t, e in zip(fields, titles, (reference, predicted), strict=False)]
    else:
        lo, hi = limits if limits is not None else shared_limits(*fields)
        panels = [MapPanel(f, str(t), cmocean.cm.balance, lo, hi, land_mask=land_mask,
                           units=units, eddies=e)
                  for f, t, e in zip(fields, titles, (reference, predicted), strict=False)]
    fig = Figure(figsize=(panel_size[0] * 2 + 1.2, panel_size[1] + 0.9), layout="constrained")
    coastline = natural_earth_coastline()
    axes, mappable = [], None
    for i, panel in enumerate(panels):
        lon = _lat_lon(panel.data)[1]
        ax = fig.add_subplot(1, 2, i + 1, projection=_projection(lon))
        m = draw_map(ax, panel, coastline=coastline)
        axes.append(ax)
        mappable = mappable if mappable is not None else m
    if ssh is not None and mappable is not None:
        fig.colorbar(mappable, ax=axes, shrink=0.85, pad=0.02, label=plain_label(units) or None)
    _eddy_legend(fig)
    if suptitle:
        fig.suptitle(plain_label(suptitle), fontsize=11)
    return fig


def class_confusion(reference: object, predicted: object, *, n_classes: int = 3,
                    where: object = None) -> np.ndarray:
    """The confusion matrix of two class maps: ``[i, j]`` counts the cells of reference
    class ``i`` predicted as class ``j`` (numpy ``bincount``).

    ``reference`` and ``predicted`` are arrays of class ids of one shape (any dims); cells
    that are NaN, outside ``0..n_classes-1`` or False in ``where`` (broadcast, e.g. an ocean
    mask ``(lat, lon)`` against ``(time, lat, lon)``) are left out.
    """
    ref = np.asarray(getattr(reference, "values", reference), dtype="float64")
    pred = np.asarray(getattr(predicted, "values", predicted), dtype="float64")
    if ref.shape != pred.shape:
        raise ValueError(f"reference {ref.shape} and prediction {pred.shape} differ in shape")
    keep = (np.isfinite(ref) & np.isfinite(pred) & (ref >= 0) & (ref < n_classes)
            & (pred >= 0) & (pred < n_classes))
    if where is not None:
        keep &= np.broadcast_to(np.asarray(getattr(where, "values", where), dtype=bool),
                                ref.shape)
    ids = ref[keep].astype("int64") * n_classes + pred[keep].astype("int64")
    return np.bincount(ids, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def confusion_matrix_figure(
    matrix: np.ndarray,
    labels: Sequence[str] = CLASS_LABELS,
    normalise: bool = True,
    *,
    title: str = "",
    size: tuple[float, float] = (4.6, 3.8),
) -> Figure:
    """A confusion matrix: rows the reference class, columns the predicted class.

    With ``normalise`` each row is divided by its total (the share of the reference class
    predicted as each class: the diagonal is each class's recall) and coloured by it, and
    each cell reads ``share`` over ``count``; otherwise cells are coloured and labelled by
    their counts.
    """
    counts = np.asarray(matrix, dtype="float64")
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"a confusion matrix is square; got shape {counts.shape}")
    n = counts.shape[0]
    labels = [plain_label(v) for v in labels][:n] + [str(i) for i in range(len(labels), n)]
    if normalise:
        totals = counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            shown = np.where(totals > 0, counts / totals, 0.0)
        vmax = 1.0
    else:
        shown, vmax = counts, max(float(counts.max()), 1.0)
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=vmax)
    for i in range(n):
        for j in range(n):
            count = f"{counts[i, j]:,.0f}"
            text = f"{shown[i, j]:.1%}\n{count}" if normalise else count
            dark = shown[i, j] > 0.6 * vmax
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    ax.set_xticks(range(n), labels, fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("reference class")
    fig.colorbar(image, ax=ax, shrink=0.85,
                 label="share of the reference class" if normalise else "cells")
    if title:
        ax.set_title(plain_label(title), fontsize=10)
    return fig
