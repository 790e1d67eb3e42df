"""The dashboard's eddy views (issue 12): eddy contours over the SSH, the confusion matrix of
the classes, the Results page of a segmentation run and the Data page's eddy overlay.

The figures are checked on a synthetic EddySet-like object (two Gaussian eddies, one of each
sign); the Results page on a segmentation run written straight into a run store; the Data
page's overlay with a small stand-in detector (a module put in ``sys.modules`` for the test
only) and, once it is installed, with the real :mod:`data.eddies`.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.colors import to_hex
from streamlit.testing.v1 import AppTest

from app import figures
from backend.store import RunStore

APP = Path(__file__).resolve().parents[1] / "app"
TIMEOUT = 60
BLUE, RED = figures.EDDY_COLOURS["cyclonic"], figures.EDDY_COLOURS["anticyclonic"]


@dataclass
class FakeEddySet:
    """The shape of :class:`data.eddies.EddySet`: a class mask and a table of eddies."""

    mask: xr.DataArray
    eddies: pd.DataFrame


def two_eddies(shift: float = 0.0, n_lat: int = 21, n_lon: int = 31) -> xr.DataArray:
    """SSH (m) with an anticyclone (a high, west) and a cyclone (a low, east)."""
    lat = np.linspace(30.0, 40.0, n_lat)
    lon = np.linspace(-70.0, -55.0, n_lon)
    x, y = np.meshgrid(lon, lat)
    ssh = (0.3 * np.exp(-((x + 66 - shift) ** 2 + (y - 35) ** 2) / 2)
           - 0.3 * np.exp(-((x + 59 - shift) ** 2 + (y - 35) ** 2) / 2))
    return xr.DataArray(ssh, dims=("lat", "lon"), coords={"lat": lat, "lon": lon},
                        name="ssh", attrs={"units": "m"})


def class_mask(ssh: xr.DataArray, level: float = 0.15) -> xr.DataArray:
    """0 background, 1 cyclonic (SSH below −level), 2 anticyclonic (above level)."""
    values = np.where(ssh.values < -level, 1, np.where(ssh.values > level, 2, 0))
    return xr.DataArray(values.astype(np.int8), dims=ssh.dims, coords=ssh.coords)


def fake_detect(ssh: xr.DataArray, params=None) -> FakeEddySet:
    """A stand-in detector: the class mask of :func:`class_mask` and one circle per eddy
    around each extremum."""
    ssh = ssh.squeeze(drop=True).transpose("lat", "lon")
    values = np.nan_to_num(ssh.values)
    rows = []
    t = np.linspace(0, 2 * np.pi, 33)
    for kind, at in (("anticyclonic", np.argmax(values)), ("cyclonic", np.argmin(values))):
        i, j = np.unravel_index(at, values.shape)
        lon, lat = float(ssh["lon"][j]), float(ssh["lat"][i])
        rows.append({"kind": kind, "lon": lon, "lat": lat, "radius_km": 90.0,
                     "amplitude_m": float(abs(values[i, j])),
                     "contour": np.c_[lon + np.cos(t), lat + np.sin(t)]})
    return FakeEddySet(class_mask(ssh), pd.DataFrame(rows))


def line_colours(fig) -> set[str]:
    """The colours of every line and contour drawn on the maps of ``fig``."""
    found = set()
    for ax in fig.axes:
        for line in ax.lines:
            found.add(to_hex(line.get_color()))
        for coll in ax.collections:
            for colour in np.atleast_2d(coll.get_edgecolor()):
                if len(colour):
                    found.add(to_hex(colour))
    return found


def colour_bars(fig) -> int:
    return sum(ax.get_label() == "<colorbar>" for ax in fig.axes)


# --------------------------------------------------------------------------- figures


def test_eddy_maps_contour_both_classes_with_one_colour_bar():
    ssh = two_eddies()
    reference = fake_detect(ssh)
    predicted = class_mask(two_eddies(shift=0.5))  # a mask: contoured from its boundary
    fig = figures.eddy_maps_figure(ssh, reference, predicted, units="SSH (m)",
                                   titles=("Reference", "Prediction"), suptitle="day 1")
    assert colour_bars(fig) == 1
    maps = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert [ax.get_title() for ax in maps] == ["Reference", "Prediction"]
    left, right = maps
    # the reference's contours come from its table (one ring per eddy + the centres)
    assert {to_hex(line.get_color()) for line in left.lines} == {BLUE, RED}
    assert {line.get_label() for line in left.lines if len(line.get_xdata()) > 2} == {
        "cyclonic", "anticyclonic"}
    # the prediction's come from the mask's class boundaries
    right_colours = {to_hex(c) for coll in right.collections
                     for c in np.atleast_2d(coll.get_edgecolor()) if len(c)}
    assert {BLUE, RED} <= right_colours
    fig.canvas.draw()  # renders (halo path effects included)


def test_eddy_maps_from_masks_only_and_without_ssh():
    ssh = two_eddies()
    mask = class_mask(ssh)
    fig = figures.eddy_maps_figure(ssh, mask, mask)
    assert {BLUE, RED} <= line_colours(fig)
    assert colour_bars(fig) == 1
    fig = figures.eddy_maps_figure(None, mask, mask)  # no SSH: the class maps, no bar
    assert {BLUE, RED} <= line_colours(fig)
    assert colour_bars(fig) == 0
    fig.canvas.draw()


def test_eddy_table_without_contours_falls_back_to_the_mask():
    ssh = two_eddies()
    found = fake_detect(ssh)
    found.eddies["contour"] = None
    fig = figures.map_figure(ssh, eddies=found)
    ax = fig.axes[0]
    assert not ax.lines  # nothing from the table
    assert {BLUE, RED} <= line_colours(fig)


def test_contour_rings_accept_the_usual_shapes():
    ring = np.c_[np.arange(5.0), np.arange(5.0) + 1]
    assert len(figures._rings(ring)) == 1
    assert len(figures._rings((ring[:, 0], ring[:, 1]))) == 1
    assert len(figures._rings([ring, ring[:3]])) == 2  # a ragged list of rings
    assert figures._rings(None) == [] and figures._rings(float("nan")) == []


def test_class_confusion_counts_exactly():
    reference = np.array([[0, 0, 1, 1], [2, 2, 2, 0]])
    predicted = np.array([[0, 1, 1, 1], [2, 0, 1, 0]])
    matrix = figures.class_confusion(reference, predicted)
    assert matrix.tolist() == [[2, 1, 0], [0, 2, 0], [1, 1, 1]]
    # NaN, out-of-range ids and cells outside ``where`` are left out
    ref = np.array([[0.0, np.nan, 1, 5], [2, 2, 2, 0]])
    where = np.array([True, True, True, False])  # broadcast over rows
    matrix = figures.class_confusion(ref, predicted, where=where)
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 0], [1, 1, 1]]
    with pytest.raises(ValueError, match="differ in shape"):
        figures.class_confusion(reference, predicted[:, :2])


def test_confusion_matrix_figure_writes_exact_cells():
    matrix = np.array([[50, 30, 20], [0, 8, 2], [1, 0, 3]])
    fig = figures.confusion_matrix_figure(matrix, figures.CLASS_LABELS, normalise=True)
    ax = fig.axes[0]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
             for t in ax.texts}
    assert cells[(0, 0)] == "50.0%\n50"
    assert cells[(0, 1)] == "30.0%\n30"
    assert cells[(1, 1)] == "80.0%\n8"
    assert cells[(1, 0)] == "0.0%\n0"
    assert cells[(2, 2)] == "75.0%\n3"
    assert [t.get_text() for t in ax.get_xticklabels()] == list(figures.CLASS_LABELS)
    assert colour_bars(fig) == 1
    raw = figures.confusion_matrix_figure(matrix, normalise=False)
    assert sorted(t.get_text() for t in raw.axes[0].texts) == sorted(
        str(v) for v in matrix.ravel())
    with pytest.raises(ValueError, match="square"):
        figures.confusion_matrix_figure(np.ones((2, 3)))


# --------------------------------------------------------------------------- Results page


def page(name: str) -> AppTest:
    return AppTest.from_file(str(APP / "pages" / name), default_timeout=TIMEOUT)


def texts(elements) -> str:
    import re

    return "\n".join(re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", str(e.value)) for e in elements)


SEG_METRICS = {"iou_cyclonic": 0.71, "iou_anticyclonic": 0.64, "dice_mean": 0.8,
               "pixel_accuracy": 0.93, "eddy_precision": 0.75, "eddy_recall": 0.6,
               "eddy_f1": 0.6667, "radius_error_km": 12.5, "amplitude_error_m": 0.021}


def segmentation_prediction(n_days: int = 5) -> xr.Dataset:
    """What a segmentation run leaves in prediction.nc: the predicted classes, the
    reference masks (``truth``), the input SSH (``input``) and the ocean mask."""
    times = pd.date_range("2013-01-01", periods=n_days, freq="D")
    ssh = xr.concat([two_eddies(shift=0.3 * k) for k in range(n_days)], "time")
    ssh = ssh.assign_coords(time=times)
    truth = xr.concat([class_mask(s) for s in ssh], "time").assign_coords(time=times)
    predicted = xr.concat([class_mask(s, level=0.1) for s in ssh.shift(lon=1)], "time")
    predicted = predicted.assign_coords(time=times)
    mask = xr.ones_like(ssh.isel(time=0), dtype=np.int8)
    mask[:3, :4] = 0  # a land corner
    pred = xr.Dataset({"classes": predicted.astype(np.int8),
                       "truth": truth.astype(np.int8),
                       "input": ssh.where(mask == 1).assign_attrs(units="m"),
                       "mask": mask})
    pred.attrs.update(oceanlab_reconstruction_var="classes", oceanlab_task="segmentation")
    return pred


def make_segmentation_run(store: RunStore, run_id: str, metrics: dict | None = None):
    config = {"data": {"path": "mock.nc"}, "task": {"name": "segmentation"},
              "model": {"name": "unet"}, "train": {"epochs": 1, "seed": 0, "device": "cpu"}}
    run = store.create(config, run_id=run_id, status="running")
    pred = segmentation_prediction()
    run.write_prediction(pred)
    run.write_metrics(SEG_METRICS if metrics is None else metrics)
    t = pd.DatetimeIndex(pred["time"].values)
    run.update(status="done", timings={"total_s": 1.0}, device="cpu",
               periods={"test": [str(t[0].date()), str(t[-1].date())]})
    return run, pred


def test_results_of_a_segmentation_run(workspace: Path):
    store = RunStore(workspace / "runs")
    _, pred = make_segmentation_run(store, "20240101-000000-unet-seg0")
    at = page("3_Results.py").run()
    assert not at.exception, at.exception
    assert not at.error
    heads = texts(at.subheader)
    for head in ("Scores", "Eddies", "Confusion matrix", "Object scores"):
        assert head in heads
    assert "Physics residual" not in heads
    captions = texts(at.caption)
    assert "outlined in blue" in captions and "in red" in captions
    # the confusion matrix over the ocean cells of the test period, as numpy counts it
    ocean = pred["mask"].values.astype(bool)
    expected = figures.class_confusion(pred["truth"].values, pred["classes"].values,
                                       where=ocean)
    total = int(expected.sum())
    assert total == ocean.sum() * pred.sizes["time"]
    assert f"({total:,} cells)" in captions
    assert f"Pixel accuracy {np.trace(expected) / total:.1%}" in captions
    # the object scores' own table (the whole scores table comes first)
    tables = [df.value for df in at.dataframe if "eddy_f1" in set(df.value.get("key", []))]
    assert len(tables) == 2
    objects = tables[1]
    objects = objects.set_index("key")
    assert list(objects.index) == ["eddy_precision", "eddy_recall", "eddy_f1",
                                   "radius_error_km", "amplitude_error_m"]
    assert objects.loc["eddy_precision", "value"] == "0.75"
    assert "matched" in captions
    # another day redraws the maps
    slider = at.select_slider(key="results.day")
    slider.set_value(slider.options[3]).run()
    assert not at.exception
    assert at.select_slider(key="results.day").value == slider.options[3]


def test_results_segmentation_without_ssh_or_object_scores(workspace: Path):
    store = RunStore(workspace / "runs")
    config = {"data": {"path": "mock.nc"}, "task": {"name": "segmentation"},
              "model": {"name": "okubo_weiss"}, "train": {"epochs": 1, "seed": 0}}
    run = store.create(config, run_id="20240101-000000-okubo_weiss-seg1", status="running")
    pred = segmentation_prediction(n_days=1).drop_vars(["input", "mask"])
    run.write_prediction(pred)
    run.write_metrics({"iou_cyclonic": 0.5})
    run.update(status="done")
    at = page("3_Results.py").run()
    assert not at.exception, at.exception
    assert not at.error
    assert "No SSH in prediction.nc" in texts(at.caption)
    assert "no object score" in texts(at.info)


def test_results_segmentation_without_truth_is_one_error(workspace: Path):
    store = RunStore(workspace / "runs")
    config = {"data": {"path": "mock.nc"}, "task": {"name": "segmentation"},
              "model": {"name": "unet"}, "train": {"epochs": 1, "seed": 0}}
    run = store.create(config, run_id="20240101-000000-unet-seg2", status="running")
    run.write_prediction(segmentation_prediction(n_days=2).drop_vars("truth"))
    run.write_metrics({})
    run.update(status="done")
    at = page("3_Results.py").run()
    assert not at.exception
    assert len(at.error) == 1
    assert "no variable truth" in texts(at.error)


# --------------------------------------------------------------------------- Data page


@pytest.fixture
def ssh_nc(workspace: Path) -> Path:
    """Four days of the two eddies (``ssh``, m) in the workspace's datasets/ folder."""
    times = pd.date_range("2013-01-01", periods=4, freq="D")
    ssh = xr.concat([two_eddies(shift=0.5 * k) for k in range(4)], "time")
    ds = xr.Dataset({"ssh": ssh.assign_coords(time=times)})
    ds.attrs["oceanlab_truth_var"] = "ssh"
    path = workspace / "datasets" / "eddies.nc"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path)
    return path.resolve()


def data_page_on(path: Path) -> AppTest:
    at = page("1_Data.py").run()
    at.radio(key="data.source").set_value("path").run()
    at.text_input(key="data.path").input(str(path)).run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def stand_in_detector(monkeypatch: pytest.MonkeyPatch):
    """A stand-in ``data.eddies`` (for this test only): both methods use
    :func:`fake_detect`."""
    import data

    module = types.ModuleType("data.eddies")
    module.detect_contour = fake_detect
    module.detect_okubo_weiss = fake_detect
    monkeypatch.setitem(sys.modules, "data.eddies", module)
    monkeypatch.setattr(data, "eddies", module, raising=False)
    return module


def test_data_page_overlays_eddies_with_counts(ssh_nc: Path, stand_in_detector):
    at = data_page_on(ssh_nc)
    assert at.checkbox(key="data.eddies").value is False
    at.checkbox(key="data.eddies").check().run()
    assert not at.exception, at.exception
    assert not at.error and not at.warning
    assert at.selectbox(key="data.eddies_method").value == "contour"
    assert "1 cyclone, 1 anticyclone detected" in texts(at.caption)
    at.selectbox(key="data.eddies_method").set_value("okubo_weiss").run()
    assert not at.exception
    assert "Okubo-Weiss" in texts(at.caption)
    at.select_slider(key="data.day").set_value("2013-01-03").run()
    assert not at.exception
    assert "1 cyclone, 1 anticyclone detected" in texts(at.caption)


def test_data_page_without_eddy_detection_says_so(ssh_nc: Path,
                                                  monkeypatch: pytest.MonkeyPatch):
    import data

    monkeypatch.setitem(sys.modules, "data.eddies", None)  # import raises ImportError
    monkeypatch.delattr(data, "eddies", raising=False)
    at = data_page_on(ssh_nc)
    at.checkbox(key="data.eddies").check().run()
    assert not at.exception, at.exception
    assert "eddy detection not available" in texts(at.info)


def test_data_page_offers_no_eddies_for_a_field_that_is_not_ssh(workspace: Path):
    times = pd.date_range("2013-01-01", periods=2, freq="D")
    sst = xr.concat([two_eddies() + 20 for _ in times], "time").assign_coords(time=times)
    ds = xr.Dataset({"sst": sst.rename("sst").assign_attrs(units="degC")})
    path = workspace / "datasets" / "sst.nc"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path)
    at = data_page_on(path.resolve())
    assert not at.exception
    assert not [c for c in at.checkbox if c.key == "data.eddies"]


def test_data_page_overlay_with_the_real_detector(ssh_nc: Path):
    pytest.importorskip("data.eddies")
    at = data_page_on(ssh_nc)
    at.checkbox(key="data.eddies").check().run()
    assert not at.exception, at.exception
    for method in ("contour", "okubo_weiss"):
        at.selectbox(key="data.eddies_method").set_value(method).run()
        assert not at.exception, at.exception
        assert not at.warning, texts(at.warning)
        assert "detected (" in texts(at.caption)


def test_real_detector_eddysets_draw():
    eddies = pytest.importorskip("data.eddies")
    ssh = two_eddies(n_lat=41, n_lon=61)
    for detect in (eddies.detect_contour, eddies.detect_okubo_weiss):
        found = detect(ssh)
        assert set(np.unique(found.mask.values)) <= {0, 1, 2}
        fig = figures.eddy_maps_figure(ssh, found, found.mask, units="m")
        assert colour_bars(fig) == 1
        fig.canvas.draw()
