"""Map views (issue 10): SSH, geostrophic speed and relative vorticity ζ/f on the Results
and Compare pages, one shared colour bar per group of maps, and the Compare page's overlaid
PSD scores. Values are checked against hand-derived ones on constructed fields."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from app import figures, views
from metrics.currents import EARTH_RADIUS, EARTH_ROTATION, GRAVITY


def grid(field, lat, lon, **attrs) -> xr.DataArray:
    return xr.DataArray(field, dims=("lat", "lon"), coords={"lat": lat, "lon": lon},
                        name="ssh", attrs={"units": "m", **attrs})


def test_speed_of_a_uniform_slope_is_g_over_f_times_the_slope():
    lat = np.linspace(35.0, 45.0, 41)
    lon = np.linspace(-5.0, 5.0, 41)  # at lon 0, dη/dy = 0: the flow is v alone
    slope = 1e-6  # metres of SSH per metre eastward
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    x = EARTH_RADIUS * np.cos(np.deg2rad(lat2)) * np.deg2rad(lon2)
    speed = views.derive(grid(slope * x, lat, lon), "speed")
    f = 2 * EARTH_ROTATION * np.sin(np.deg2rad(lat))
    expected = GRAVITY / f * slope  # v = (g/f) dη/dx
    np.testing.assert_allclose(speed.sel(lon=0.0).values[1:-1], expected[1:-1], rtol=1e-3)
    assert speed.attrs["units"] == "m s-1"


def test_vorticity_at_the_centre_of_a_gaussian_eddy():
    """ζ/f at the centre of η = A exp(−r²/2L²) is (g/f²) ∇²η = −2 g A / (f² L²)."""
    lat0, amp, length = 40.0, 0.3, 60e3
    lat = lat0 + np.linspace(-2.0, 2.0, 161)
    lon = np.linspace(-62.0, -58.0, 161)
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    y = EARTH_RADIUS * np.deg2rad(lat2 - lat0)
    x = EARTH_RADIUS * np.cos(np.deg2rad(lat0)) * np.deg2rad(lon2 + 60.0)
    eta = amp * np.exp(-(x**2 + y**2) / (2 * length**2))
    zeta = views.derive(grid(eta, lat, lon), "vorticity")
    f0 = 2 * EARTH_ROTATION * np.sin(np.deg2rad(lat0))
    expected = -2 * GRAVITY * amp / (f0**2 * length**2)
    assert float(zeta.sel(lat=lat0, lon=-60.0, method="nearest")) == pytest.approx(expected,
                                                                                   rel=0.05)
    assert expected < -0.1  # a high is anticyclonic: ζ/f < 0 in the north


def test_views_offered_only_for_ssh_like_fields():
    lat, lon = np.linspace(30, 40, 5), np.linspace(-60, -50, 6)
    zeros = np.zeros((5, 6))
    assert views.available(grid(zeros, lat, lon)) == views.VIEWS
    sst = grid(zeros, lat, lon).rename("sst").assign_attrs(units="degC",
                                                           long_name="sea surface temp")
    assert views.available(sst) == ("ssh",)
    cm = grid(zeros, lat, lon).rename("sla").assign_attrs(units="cm")
    assert views.available(cm) == views.VIEWS
    with pytest.raises(ValueError, match="unknown map view"):
        views.derive(grid(zeros, lat, lon), "salinity")


def test_limits_are_robust_for_derived_fields_and_exact_for_ssh():
    values = np.r_[np.linspace(-1.0, 1.0, 999), 1000.0]  # one spike next to a coast
    lo, hi = views.limits("vorticity", values)
    assert lo == -hi and 0.9 < hi < 2.0
    assert views.limits("speed", np.abs(values))[0] == 0.0
    assert views.limits("ssh", values) == (-1000.0, 1000.0)
    assert views.quantity("vorticity", xr.DataArray([0.0])) == "relative vorticity ζ/f"
    truth = xr.DataArray([0.0], name="truth", attrs={"long_name": "sea surface height"})
    assert views.quantity("ssh", truth, "m") == "sea surface height (m)"
    assert figures.residual_label("sea surface height (m)", "m") == "residual (m)"
    assert figures.residual_label("relative vorticity ζ/f", "m") == \
        "residual of relative vorticity ζ/f"


def colour_bars(fig) -> list:
    """The colour-bar axes of a figure (its ``axes`` hold those of its sub-figures)."""
    return [ax for ax in fig.axes if hasattr(ax, "_colorbar")]


def test_comparison_maps_share_one_colour_bar_for_the_fields():
    lat, lon = np.linspace(30, 40, 12), np.linspace(-60, -50, 14)
    rng = np.random.default_rng(0)
    truth = grid(rng.normal(size=(12, 14)), lat, lon)
    pred = truth + 0.1 * rng.normal(size=(12, 14))
    obs = truth.where(rng.random((12, 14)) < 0.2)
    fig = figures.comparison_maps_figure(
        truth, pred, inputs=[figures.MapPanel(None, "Observations", obs=obs)],
        prediction_title="Reconstruction (ssh)", units="m", label="ssh (m)")
    bars = colour_bars(fig)
    assert len(bars) == 2  # one for truth, observations and reconstruction; one residual
    labels = sorted(b.get_ylabel() for b in bars)
    assert labels == ["residual (m)", "ssh (m)"]
    maps = [ax for sub in fig.subfigs for ax in sub.axes if not hasattr(ax, "_colorbar")]
    assert [ax.get_title() for ax in maps] == [
        "Truth", "Observations", "Reconstruction (ssh)", "Residual (reconstruction − truth)"]


def test_psd_overlay_draws_one_contour_per_run_and_the_spectra():
    line = np.array([[1.0, 30.0], [2.0, 10.0], [4.0, 5.0]])
    freq = xr.DataArray([0.1, 0.2, 0.4], dims="freq_lon", name="freq_lon")
    psd = xr.DataArray([1.0, 0.1, 0.01], dims="freq_lon", coords={"freq_lon": freq},
                       attrs={"units": "(m)^2 / (cycles per degree)"})
    fig = figures.psd_overlay_figure({"a": [line], "b": [line * 1.5]},
                                     {"a": psd, "b": psd * 0.5}, psd, km_per_degree=85.0)
    left, right = fig.axes[0], fig.axes[1]
    assert [ln.get_label() for ln in left.get_lines()] == ["a", "b"]
    assert [ln.get_label() for ln in right.get_lines()] == ["truth", "a", "b"]
    np.testing.assert_allclose(right.get_lines()[0].get_xdata(), [10.0, 5.0, 2.5])


# --------------------------------------------------------------------------- the pages


@pytest.fixture
def store(workspace):
    from backend.store import RunStore

    return RunStore(workspace / "runs")


def test_results_switches_the_maps_to_speed_and_vorticity(store):
    from tests.test_app_pages import make_run, make_task_run, page, texts

    make_run(store, "20240101-000000-unet-aaaa")
    at = page("3_Results.py").run()
    assert not at.exception
    switch = at.get("button_group")[0]
    assert [o.content for o in switch.proto.options] == list(views.VIEW_LABELS.values())
    for view in ("vorticity", "speed"):
        at.session_state["maps.view"] = view
        at.run()
        assert not at.exception and not at.error
        assert "SSH points" in texts(at.caption)  # observations only on the SSH view
    make_task_run(store, "20240102-000000-persistence-ffff", "forecast")
    at = page("3_Results.py").run()
    at.session_state["maps.view"] = "vorticity"
    at.run()
    assert not at.exception and not at.error
    assert "ζ/f" in texts(at.caption)


def test_compare_switches_the_maps_and_overlays_psd(store):
    from tests.test_app_pages import make_run, page, texts

    a = make_run(store, "20240101-000000-unet-aaaa")
    b = make_run(store, "20240101-000001-oi-bbbb", model="oi")
    at = page("5_Compare.py").run()
    at.multiselect(key="compare.runs").set_value([a.id, b.id]).run()
    assert not at.exception
    at.session_state["maps.view"] = "vorticity"
    at.run()
    assert not at.exception and not at.error
    assert "Relative vorticity" in texts(at.caption)
    assert "crosses 0.5" in texts(at.caption) or "PSD" not in str(a.diagnostics())
