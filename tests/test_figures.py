"""Figures of app/figures.py: pure matplotlib, offline maps, shared colour scales."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from cartopy.mpl.geoaxes import GeoAxes
from matplotlib.figure import Figure

from app import figures
from data.synthetic import insert_nan, mock_field

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def day() -> xr.Dataset:
    ds = mock_field(n_time=2, n_lat=10, n_lon=14, land=True, seed=4).isel(time=0)
    ds["obs"] = insert_nan(ds["ssh"], 0.8, seed=1)
    return ds


@pytest.fixture
def no_coastline_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point cartopy at empty folders: no Natural Earth file is on disk."""
    import cartopy

    monkeypatch.setitem(cartopy.config, "data_dir", str(tmp_path / "data"))
    monkeypatch.setitem(cartopy.config, "pre_existing_data_dir", str(tmp_path / "pre"))
    return tmp_path


def _render(fig: Figure) -> None:
    """Draw the figure to PNG bytes: where lazy artists (coastlines, gridlines) would fail."""
    fig.savefig(io.BytesIO(), format="png", dpi=50)


def test_map_figure_axes_and_scale(day: xr.Dataset):
    fig = figures.map_figure(day["ssh"], title="ssh", vmin=-0.3, vmax=0.3, obs=day["obs"],
                             land_mask=day["mask"])
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # the map and its colour bar
    geo = [ax for ax in fig.axes if isinstance(ax, GeoAxes)]
    assert len(geo) == 1 and geo[0].get_title() == "ssh"
    assert geo[0].collections[0].get_clim() == (-0.3, 0.3)
    _render(fig)


def test_map_figure_defaults_and_all_land_never_raise(day: xr.Dataset):
    fig = figures.map_figure(day["ssh"])  # limits and colormap chosen from the data
    lo, hi = fig.axes[0].collections[0].get_clim()
    assert lo == -hi and hi >= float(np.nanmax(np.abs(day["ssh"].values)))
    _render(fig)
    all_nan = day["ssh"] * np.nan
    _render(figures.map_figure(all_nan, land_mask=np.zeros(all_nan.shape, bool)))


def test_maps_figure_panels_share_a_scale(day: xr.Dataset):
    lo, hi = figures.shared_limits(day["ssh"])
    panels = [
        figures.MapPanel(day["ssh"], "truth", vmin=lo, vmax=hi, land_mask=day["mask"]),
        figures.MapPanel(None, "obs", vmin=lo, vmax=hi, obs=day["obs"], land_mask=day["mask"]),
        figures.MapPanel(day["ssh"] * 0.9, "rec", vmin=lo, vmax=hi),
        figures.MapPanel(day["ssh"] * 0.1, "residual"),
    ]
    fig = figures.maps_figure(panels, ncols=2)
    geo = [ax for ax in fig.axes if isinstance(ax, GeoAxes)]
    assert len(geo) == 4 and len(fig.axes) == 8
    for ax in geo[:3]:  # the field, or the observation points, on the shared scale
        assert (lo, hi) in [c.get_clim() for c in ax.collections]
    _render(fig)


def test_comparison_maps_truth_inputs_prediction_residual(day: xr.Dataset):
    truth, pred = day["ssh"], day["ssh"] * 0.9
    coarse = truth.coarsen(lat=2, lon=2, boundary="pad").mean()  # its own grid
    fig = figures.comparison_maps_figure(
        truth, pred, inputs=[figures.MapPanel(coarse, "Coarse input")],
        prediction_title="Output (unet)", limits=(-0.5, 0.5), residual_limits=(-0.1, 0.1),
        land_mask=day["mask"], units="m", suptitle="2012-10-01")
    geo = [ax for ax in fig.axes if isinstance(ax, GeoAxes)]
    assert [ax.get_title() for ax in geo] == ["Truth", "Coarse input", "Output (unet)",
                                              "Residual (output − truth)"]
    for ax in geo[:3]:  # truth, input and prediction on one scale
        assert ax.collections[0].get_clim() == (-0.5, 0.5)
    assert geo[3].collections[0].get_clim() == (-0.1, 0.1)
    residual = geo[3].collections[0].get_array()
    expected = np.where(day["mask"].values, (pred - truth).values, np.nan)
    np.testing.assert_allclose(np.ma.filled(residual, np.nan).reshape(expected.shape), expected,
                               rtol=1e-6)
    _render(fig)


def test_shared_limits_symmetric_and_cover_the_data():
    a = np.array([[-0.2, 0.1], [np.nan, 0.05]])
    b = xr.DataArray([0.35, -0.1])
    lo, hi = figures.shared_limits(a, b)
    assert lo == -hi == -0.35
    for x in (a, b.values):
        finite = x[np.isfinite(x)]
        assert lo <= finite.min() and finite.max() <= hi
    assert figures.shared_limits(a, symmetric=False) == (-0.2, 0.1)
    assert figures.shared_limits(np.full(3, np.nan)) == (-1.0, 1.0)
    assert figures.shared_limits(np.zeros(3)) == (-1.0, 1.0)
    lo, hi = figures.shared_limits(np.full(3, 2.0), symmetric=False)
    assert lo < 2.0 < hi


def test_field_style_balance_for_anomalies():
    import cmocean

    cmap, lo, hi = figures.field_style("ssh", {}, np.array([-0.1, 0.3]))
    assert cmap is cmocean.cm.balance and (lo, hi) == (-0.3, 0.3)
    cmap, lo, hi = figures.field_style("sst", {"units": "degC"}, np.array([12.0, 20.0]))
    assert cmap is cmocean.cm.thermal and (lo, hi) == (12.0, 20.0)


def test_natural_earth_lookup_finds_files_on_disk_only(no_coastline_files: Path):
    assert figures.natural_earth_coastline() is None
    shp = (no_coastline_files / "pre" / "shapefiles" / "natural_earth" / "physical"
           / "ne_110m_coastline.shp")
    shp.parent.mkdir(parents=True)
    shp.write_bytes(b"")
    assert figures.natural_earth_coastline() == ("110m", shp)


def test_offline_fallback_draws_the_land_mask(
    day: xr.Dataset, no_coastline_files: Path, monkeypatch: pytest.MonkeyPatch
):
    def no_download(*args, **kwargs):
        raise AssertionError("coastlines must not be requested when Natural Earth is absent")

    monkeypatch.setattr(GeoAxes, "coastlines", no_download)
    fig = figures.map_figure(day["ssh"], land_mask=day["mask"])
    ax = fig.axes[0]
    assert len(ax.collections) >= 2  # the field and the grey land (plus its outline)
    _render(fig)


def test_coastline_used_when_on_disk(day: xr.Dataset, monkeypatch: pytest.MonkeyPatch):
    calls = []
    monkeypatch.setattr(figures, "natural_earth_coastline", lambda: ("50m", Path("x.shp")))
    monkeypatch.setattr(GeoAxes, "coastlines",
                        lambda self, resolution="auto", **kw: calls.append(resolution))
    figures.map_figure(day["ssh"], land_mask=day["mask"])
    assert calls == ["50m"]


def test_cartopy_never_downloads(no_coastline_files: Path):
    import cartopy.io.shapereader as shpreader

    assert isinstance(
        __import__("cartopy").config["downloaders"][("shapefiles", "natural_earth")],
        figures._OfflineDownloader)
    with pytest.raises(figures.OfflineDownloadError):
        shpreader.natural_earth(resolution="110m", category="physical", name="coastline")


def test_curve_figures():
    t = pd.date_range("2012-10-01", periods=10, freq="D")
    fig = figures.timeseries_figure({"RMSE": pd.Series(np.linspace(0.1, 0.2, 10), index=t)},
                                    ylabel="RMSE (m)", mark=t[3])
    assert len(fig.axes) == 1
    _render(fig)
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.2, 0.7]})
    fig = figures.history_figure(history)
    assert [line.get_label() for line in fig.axes[0].lines] == ["train_loss", "val_loss"]
    _render(fig)


def test_lead_curves_figure():
    leads = [1, 2, 3]
    rmse = {"model": pd.Series([0.01, 0.02, 0.03], index=leads),
            "persistence": pd.Series([0.02, 0.04, 0.06], index=leads)}
    skill = {"skill vs persistence": pd.Series([0.5, 0.5, 0.5], index=leads),
             "ACC": pd.Series([0.9, 0.8, 0.7], index=leads)}
    fig = figures.lead_curves_figure(rmse, skill, rmse_label="RMSE (m)", lead_label="lead (days)",
                                     mark=2)
    left, right = fig.axes
    assert [ln.get_label() for ln in left.lines[:2]] == ["model", "persistence"]
    np.testing.assert_array_equal(left.lines[1].get_xydata(), [[1, 0.02], [2, 0.04], [3, 0.06]])
    assert [ln.get_label() for ln in right.lines[:2]] == ["skill vs persistence", "ACC"]
    assert left.get_xlabel() == "lead (days)" and left.get_ylabel() == "RMSE (m)"
    _render(fig)
    assert len(figures.lead_curves_figure(rmse).axes) == 1  # no skill: one panel


def test_psd_score_figure_draws_the_given_contour():
    ft = np.array([0.05, 0.1, 0.2, 0.4])
    fl = np.array([0.25, 0.5, 1.0, 2.0])
    score = xr.DataArray(np.linspace(1.0, 0.0, 16).reshape(4, 4),
                         dims=("freq_time", "freq_lon"),
                         coords={"freq_time": ft, "freq_lon": fl})
    line = np.array([[1.0, 20.0], [2.0, 5.0]])
    fig = figures.psd_score_figure(score, [line], lambda_x=1.0, lambda_t=5.0)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert np.array_equal(ax.lines[0].get_xydata(), line)
    _render(fig)


def test_residual_maps_figure_shares_a_scale_from_zero(day: xr.Dataset):
    residual = (day["ssh"] ** 2 * 10).rename("physics_residual_map")
    truth = residual * 0.5
    fig = figures.residual_maps_figure(residual, truth, land_mask=day["mask"], value=0.81,
                                       floor=0.42)
    geo = [ax for ax in fig.axes if isinstance(ax, GeoAxes)]
    assert len(geo) == 2 and len(fig.axes) == 4  # two maps, two colour bars
    assert "0.81" in geo[0].get_title() and "0.42" in geo[1].get_title()
    top = float(np.nanpercentile(np.concatenate([residual.values.ravel(),
                                                 truth.values.ravel()]), 99))
    for ax in geo:
        assert ax.collections[0].get_clim() == pytest.approx((0.0, top))
    _render(fig)
    alone = figures.residual_maps_figure(residual.where(False))  # all NaN: still drawn
    assert len([ax for ax in alone.axes if isinstance(ax, GeoAxes)]) == 1
    _render(alone)


def test_tuning_figure_one_panel_per_parameter():
    table = pd.DataFrame({
        "number": [0, 1, 2, 3, 4, 5], "state": ["COMPLETE"] * 5 + ["FAIL"],
        "value": [0.09, 0.06, 0.05, 0.052, 0.05, None], "duration_s": [1.0] * 6,
        "latent": [2, 4, 8, 16, 16, 64], "activation": ["relu", "gelu", "relu", "gelu", "relu",
                                                          "gelu"],
        "error": [None] * 5 + ["out of memory"]})
    assert figures.tuning_parameters(table) == ["latent", "activation"]
    fig = figures.tuning_figure(table, metric="RMSE (m)", best=2)
    latent, activation = fig.axes
    assert latent.get_xscale() == "log"  # completed trials span 2 … 16: a factor 8
    assert latent.get_ylabel() == "RMSE (m)" and "1 failed" in latent.get_title()
    points = latent.collections[0].get_offsets()
    assert len(points) == 5  # the failed trial has no value
    # the line joins the mean per latent size: 16 was tried twice (0.052, 0.05)
    np.testing.assert_allclose(latent.lines[0].get_xydata(),
                               [[2, 0.09], [4, 0.06], [8, 0.05], [16, 0.051]])
    star = latent.collections[1].get_offsets()
    np.testing.assert_allclose(star, [[8, 0.05]])
    assert [t.get_text() for t in activation.get_xticklabels()] == ["gelu", "relu"]
    _render(fig)
    with pytest.raises(ValueError, match="no parameter"):
        figures.tuning_figure(table[["number", "state", "value"]])


def test_figures_import_without_streamlit():
    code = "import sys, app.figures; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_psd_score_figure_has_a_km_axis_and_history_whole_epochs():
    ft = np.array([0.05, 0.1, 0.2, 0.4])
    fl = np.array([0.25, 0.5, 1.0, 2.0])
    score = xr.DataArray(np.linspace(1.0, 0.0, 16).reshape(4, 4),
                         dims=("freq_time", "freq_lon"),
                         coords={"freq_time": ft, "freq_lon": fl})
    fig = figures.psd_score_figure(score, lambda_x=1.0, km_per_degree=85.0)
    top = fig.axes[0].child_axes[0]
    assert top.get_xlabel() == "wavelength (km)"
    _render(fig)
    lo, hi = fig.axes[0].get_xlim()
    assert top.get_xlim() == pytest.approx((lo * 85.0, hi * 85.0))
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.5, 0.4]})
    fig = figures.history_figure(history)
    _render(fig)
    ticks = [t for t in fig.axes[0].get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)
