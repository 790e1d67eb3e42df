"""Eddy detectors and scores (issue 12) on constructed fields: Gaussian eddies of known
radius, amplitude and sign."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from data.eddies import (
    COLUMNS,
    EddyParams,
    EddySet,
    detect_contour,
    detect_okubo_weiss,
    mask_objects,
    mask_over_time,
)
from metrics.eddies import match_eddies, object_scores, pixel_scores
from oceanlab_errors import DataError

KM_PER_DEG = 6371.0 * np.pi / 180


def gaussian_field(eddies, lat0=30.0, lat1=40.0, lon0=-70.0, lon1=-58.0, step=0.1,
                   units="m") -> xr.DataArray:
    """SSH = Σ A exp(−r²/2σ²) for ``eddies`` = [(lon, lat, A (m), σ (km)), …]."""
    lat = np.arange(lat0, lat1 + step / 2, step)
    lon = np.arange(lon0, lon1 + step / 2, step)
    x, y = np.meshgrid(lon, lat)
    ssh = np.zeros_like(x)
    for lo, la, amp, sigma in eddies:
        dx = (x - lo) * KM_PER_DEG * np.cos(np.deg2rad(la))
        dy = (y - la) * KM_PER_DEG
        ssh += amp * np.exp(-(dx**2 + dy**2) / (2 * sigma**2))
    scale = {"m": 1.0, "cm": 100.0}[units]
    return xr.DataArray(ssh * scale, dims=("lat", "lon"), coords={"lat": lat, "lon": lon},
                        name="ssh", attrs={"units": units})


@pytest.mark.parametrize("amp, kind", [(0.3, "anticyclonic"), (-0.2, "cyclonic")])
@pytest.mark.parametrize("highpass", [0.0, 500.0])
def test_contour_finds_a_gaussian_eddy_with_its_radius_and_sign(amp, kind, highpass):
    sigma = 60.0
    ssh = gaussian_field([(-64.0, 35.0, amp, sigma)])
    found = detect_contour(ssh, EddyParams(highpass_km=highpass))
    assert isinstance(found, EddySet)
    assert list(found.eddies.columns[:len(COLUMNS)]) == COLUMNS
    assert len(found.eddies) == 1
    eddy = found.eddies.iloc[0]
    assert eddy["kind"] == kind
    assert abs(eddy["lon"] + 64.0) < 0.1 and abs(eddy["lat"] - 35.0) < 0.1
    # the speed contour of a Gaussian is r = σ (cells of 0.1°: within 10 %)
    assert eddy["radius_km"] == pytest.approx(sigma, rel=0.1)
    if not highpass:  # amplitude: extremum − outermost closed contour (≈ the background)
        assert eddy["amplitude_m"] == pytest.approx(abs(amp), abs=0.02)
    assert eddy["contour"] is not None and eddy["contour"].shape[1] == 2
    mask = found.mask
    assert mask.dtype == np.int8 and mask.dims == ("lat", "lon")
    code = 1 if kind == "cyclonic" else 2
    assert set(np.unique(mask.values)) == {0, code}
    assert int((mask == code).sum()) == found.eddies.iloc[0]["pixels"]


def test_okubo_weiss_finds_a_gaussian_eddy_with_its_radius_and_sign():
    sigma = 60.0
    ssh = gaussian_field([(-66.0, 35.0, 0.3, sigma), (-61.0, 35.0, -0.3, sigma)])
    found = detect_okubo_weiss(ssh)
    table = found.eddies.sort_values("lon")
    assert list(table["kind"]) == ["anticyclonic", "cyclonic"]
    for (_, eddy), lon in zip(table.iterrows(), (-66.0, -61.0), strict=True):
        assert abs(eddy["lon"] - lon) < 0.1 and abs(eddy["lat"] - 35.0) < 0.1
        # W < 0 inside r = σ; the threshold −0.2 σ_W shrinks it a little
        assert 0.8 * sigma < eddy["radius_km"] < 1.1 * sigma
    # the class follows ζ: the high (west) is anticyclonic, the low cyclonic
    west = found.mask.sel(lon=-66.0, lat=35.0, method="nearest")
    east = found.mask.sel(lon=-61.0, lat=35.0, method="nearest")
    assert int(west) == 2 and int(east) == 1


def test_southern_hemisphere_high_is_anticyclonic_too():
    """ζ of a high is positive south of the equator, but ζ·f < 0: still anticyclonic."""
    ssh = gaussian_field([(-64.0, -35.0, 0.3, 60.0), (-60.0, -35.0, -0.3, 60.0)],
                         lat0=-40.0, lat1=-30.0)
    for detect in (detect_contour, detect_okubo_weiss):
        found = detect(ssh).eddies.sort_values("lon")
        assert list(found["kind"]) == ["anticyclonic", "cyclonic"]


def test_units_and_thresholds():
    ssh_cm = gaussian_field([(-64.0, 35.0, 0.3, 60.0)], units="cm")
    eddy = detect_contour(ssh_cm, {"highpass_km": 0}).eddies.iloc[0]
    assert eddy["amplitude_m"] == pytest.approx(0.3, abs=0.02)
    # an eddy below the amplitude threshold or too small is not one
    weak = gaussian_field([(-64.0, 35.0, 0.005, 60.0)])
    assert detect_contour(weak, {"highpass_km": 0}).eddies.empty
    small = gaussian_field([(-64.0, 35.0, 0.3, 10.0)])
    assert detect_contour(small, {"pixel_min": 50}).eddies.empty
    with pytest.raises(DataError, match="one map"):
        detect_contour(xr.concat([ssh_cm, ssh_cm], "time"))


def test_two_extrema_in_one_contour_are_two_eddies_not_one():
    """Two close highs: no contour around both is accepted; each gets its own."""
    ssh = gaussian_field([(-64.6, 35.0, 0.3, 30.0), (-63.4, 35.0, 0.3, 30.0)])
    found = detect_contour(ssh, {"highpass_km": 0})
    assert len(found.eddies) == 2
    assert set(found.eddies["kind"]) == {"anticyclonic"}
    assert sorted(found.eddies["lon"].round(0)) == [-65.0, -63.0]


def test_land_and_edges_do_not_close_contours():
    ssh = gaussian_field([(-64.0, 35.0, 0.3, 60.0)])
    land = ssh.where(~((ssh.lon > -64.3) & (ssh.lon < -63.7) & (ssh.lat > 34.95)
                       & (ssh.lat < 35.05)))
    found = detect_contour(land, {"highpass_km": 0})
    assert np.all(found.mask.values[np.isnan(land.values)] == 0)
    # an eddy cut by the domain's edge has no closed contour
    edge = gaussian_field([(-70.0, 35.0, 0.3, 60.0)])
    assert detect_contour(edge, {"highpass_km": 0}).eddies.empty


def test_mask_over_time_matches_the_single_map_detectors():
    maps = [gaussian_field([(-66.0 + k, 35.0, 0.3, 50.0), (-61.0, 36.0 - k, -0.2, 40.0)])
            for k in range(3)]
    ssh = xr.concat(maps, "time").assign_coords(time=pd.date_range("2020-01-01", periods=3))
    for method, detect in (("contour", detect_contour), ("okubo_weiss", detect_okubo_weiss)):
        masks = mask_over_time(ssh, method)
        assert masks.dims == ("time", "lat", "lon") and masks.dtype == np.int8
        for k in range(3):
            np.testing.assert_array_equal(masks.values[k], detect(maps[k]).mask.values)
    with pytest.raises(DataError, match="unknown eddy detector"):
        mask_over_time(ssh, "watershed")


def test_pixel_scores_on_known_masks():
    ref = np.zeros((10, 10), np.int8)
    ref[2:6, 2:6] = 1  # 16 cells
    pred = np.zeros_like(ref)
    pred[2:6, 4:8] = 1  # 16 cells, 8 shared
    pred[8, 8] = 2
    s = pixel_scores(pred, ref)
    assert s["iou_cyclonic"] == pytest.approx(8 / 24)
    assert s["dice_cyclonic"] == pytest.approx(0.5)
    assert s["iou_anticyclonic"] == 0.0 and s["dice_anticyclonic"] == 0.0
    assert s["dice_mean"] == pytest.approx(0.25)
    assert s["pixel_accuracy"] == pytest.approx(1 - 17 / 100)
    same = pixel_scores(ref, ref)
    assert same["iou_cyclonic"] == 1.0 and same["iou_anticyclonic"] is None
    assert same["dice_mean"] == 1.0


def test_object_scores_match_by_centroid_and_report_errors():
    ref_ssh = gaussian_field([(-66.0, 35.0, 0.3, 50.0), (-61.0, 35.0, -0.3, 50.0)])
    pred_ssh = gaussian_field([(-65.8, 35.0, 0.25, 60.0), (-61.0, 38.0, -0.3, 50.0)])
    p = EddyParams(highpass_km=0)
    ref = detect_contour(ref_ssh, p)
    pred = detect_contour(pred_ssh, p)
    pairs = match_eddies(pred.eddies, ref.eddies, match_km=50)
    assert len(pairs) == 1  # the anticyclones (18 km apart); the cyclones are 330 km apart
    lat, lon = ref_ssh["lat"].values, ref_ssh["lon"].values
    scores, per_map = object_scores(pred.mask.values, ref.mask.values, pred_ssh.values,
                                    ref_ssh.values, lat, lon, match_km=50)
    assert scores["eddy_precision"] == 0.5 and scores["eddy_recall"] == 0.5
    assert scores["eddy_f1"] == 0.5
    assert scores["radius_error_km"] == pytest.approx(10.0, abs=4.0)
    assert scores["amplitude_error_m"] > 0
    assert per_map.to_dict("records") == [{"n_pred": 2, "n_ref": 2, "n_matched": 1}]
    table = mask_objects(ref.mask.values, ref_ssh.values, lat, lon)
    assert sorted(table["kind"]) == ["anticyclonic", "cyclonic"]
