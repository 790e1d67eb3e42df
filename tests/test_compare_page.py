"""The Compare page (issue 10) headless (streamlit AppTest) on real small OI runs.

Three OI runs that differ only in ``model.lt_days`` are made once per module with
``backend.runner.execute`` and copied into each test's workspace.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from backend.compare import paired_bootstrap
from backend.config import build_config
from backend.runner import execute
from backend.store import RunStore
from data.synthetic import add_noise, insert_nan, mock_field

PAGE = Path(__file__).resolve().parents[1] / "app" / "pages" / "5_Compare.py"
LT_DAYS = (3.0, 12.0, 6.0)


def page() -> AppTest:
    return AppTest.from_file(str(PAGE), default_timeout=30)


def shown(markdown: str) -> str:
    """What a reader sees of Markdown escaped by :func:`app.ui.plain`."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def texts(elements) -> str:
    return "\n".join(shown(str(e.value)) for e in elements)


def make_oi_runs(root: Path, lt_days: tuple[float, ...]) -> tuple[Path, list[str]]:
    """A run store under ``root`` holding finished OI runs on a small mock file that differ
    only in ``model.lt_days`` (ids in ``lt_days`` order); also used by the Present tests."""
    ds = mock_field(n_time=60, n_lat=20, n_lon=24, land=True, seed=1)
    ds["ssh_obs"] = add_noise(insert_nan(ds["ssh"], 0.85, seed=2), 0.01, seed=3)
    ds["ssh_obs"].attrs = {"units": "m", "long_name": "observed ssh"}
    nc = root / "mock.nc"
    ds.drop_vars("mask").to_netcdf(nc)
    store = RunStore(root / "runs")
    ids = []
    for lt in lt_days:
        config = build_config(model="oi", overrides={
            "data.path": str(nc), "data.var": "ssh", "data.obs": "ssh_obs",
            "model.lt_days": lt})
        run = execute(config, store)
        assert run.status == "done", run.info().get("error")
        ids.append(run.id)
    return root / "runs", ids


@pytest.fixture(scope="module")
def made_runs(tmp_path_factory) -> tuple[Path, list[str]]:
    """A run store holding three finished OI runs (ids in LT_DAYS order)."""
    return make_oi_runs(tmp_path_factory.mktemp("compare"), LT_DAYS)


@pytest.fixture
def store(made_runs, workspace: Path) -> RunStore:
    shutil.copytree(made_runs[0], workspace / "runs")
    return RunStore(workspace / "runs")


@pytest.fixture
def reports(monkeypatch):
    """The HTML files the page hands to the browser (download buttons' data)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    seen = []
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        seen.append((mimetype, filename, path_or_data))
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return seen


def chosen(ids: list[str]) -> AppTest:
    at = page().run()
    assert not at.exception
    at.multiselect(key="compare.runs").set_value(ids).run()
    assert not at.exception, at.exception
    return at


def dataframe_with(at: AppTest, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_two_runs_leaderboard_bootstrap_maps_config_and_report(store, made_runs, reports):
    ids = made_runs[1][:2]
    at = chosen(ids)
    runs = [store.get(i) for i in ids]

    board = dataframe_with(at, "dataset").set_index("id")
    rmse = {i: store.get(i).metrics()["rmse"] for i in ids}
    best = min(rmse, key=rmse.get)
    other = next(i for i in ids if i != best)
    assert board.loc[best, "rmse"].endswith("★")
    assert not board.loc[other, "rmse"].endswith("★")
    assert board.loc[best, "rmse"].startswith(f"{rmse[best]:.4g}")
    scores = [c for c in board.columns if c not in ("task", "model", "dataset", "name")]
    assert scores[:4] == ["rmse", "mu", "sigma", "lambda_x_deg"]  # the data challenge's order

    diffs = dataframe_with(at, "field")
    assert diffs["field"].tolist() == ["model.lt_days"]
    assert diffs[ids[0]].tolist() == ["3.0"] and diffs[ids[1]].tolist() == ["12.0"]

    boot = paired_bootstrap(runs[0], runs[1])
    text = texts(at.markdown)
    lo, hi = boot["interval"]
    assert f"{boot['difference']:.4g}" in text
    assert f"95 % interval {lo:.4g} … {hi:.4g}" in text
    assert ("real" in text) == boot["excludes_zero"]

    assert len(at.image) >= 2  # the day maps and the difference map
    at.select_slider(key="compare.day").set_value(at.select_slider(key="compare.day").options[0])
    at.run()
    assert not at.exception

    labels = {b.proto.label for b in at.get("download_button")}
    assert {"Download the report (HTML)", "Leaderboard (CSV)", "Download PNG"} <= labels
    figures_offered = at.selectbox(key="compare.downloads.figure").options
    assert {"compare day maps", "compare difference", "compare rmse over time",
            "compare psd"} <= set(figures_offered)
    # the report is written when its button is clicked: the page's builder, called here
    mod = __import__("importlib").import_module("app.commands.compare")
    report = mod.report_html(runs)
    assert all(i in report for i in ids)
    assert "http:" not in report.lower() and "https:" not in report.lower()
    csv = [d for m, _, d in reports if m == "text/csv"][-1]
    csv = csv.decode() if isinstance(csv, bytes) else csv
    assert all(i in csv for i in ids) and "rmse" in csv.splitlines()[0]


def test_three_runs_have_no_bootstrap_but_curves(store, made_runs):
    at = chosen(made_runs[1])
    assert not at.exception
    assert "exactly two runs" in texts(at.caption)
    board = dataframe_with(at, "dataset")
    assert board["rmse"].str.endswith("★").sum() == 1
    assert "Curves" in texts(at.subheader)


def test_filters_keep_done_runs_and_sort(store, made_runs):
    run = store.create({"model": {"name": "unet"}, "task": {"name": "interpolation"}},
                       run_id="20240101-000000-unet-fail", status="running")
    run.update(status="failed", error="mock.nc: no such file")
    at = page().run()
    assert not at.exception
    assert set(at.multiselect(key="compare.runs").options) == set(made_runs[1])
    assert at.multiselect(key="compare.filter.status").value == ["done"]
    at.selectbox(key="compare.sort").set_value("rmse").run()
    assert not at.exception
    table = dataframe_with(at, "status")
    assert list(table["rmse"]) == sorted(table["rmse"])


def test_no_runs_says_so(workspace: Path):
    at = page().run()
    assert not at.exception
    assert "No run yet" in texts(at.info)


def test_damaged_run_folders_do_not_crash(store, made_runs):
    ids = made_runs[1]
    bad = store.root / "20240101-000000-oi-junk"
    bad.mkdir()
    (bad / "run.json").write_text("{not json")
    (store.root / ids[2] / "prediction.nc").write_bytes(b"garbage")
    (store.root / ids[2] / "diagnostics.nc").write_bytes(b"garbage")
    at = chosen([ids[0], ids[2]])
    assert not at.exception
    assert "no map" in texts(at.warning) or "No " in texts(at.caption)
    board = dataframe_with(at, "dataset")
    assert set(board["id"]) == {ids[0], ids[2]}


def test_runs_of_different_tasks_show_the_leaderboard_without_maps(store, made_runs):
    import json

    rid = made_runs[1][1]
    path = store.root / rid / "run.json"
    info = json.loads(path.read_text())
    info["config"]["task"] = {"name": "forecast"}
    path.write_text(json.dumps(info))
    at = chosen(made_runs[1][:2])
    assert not at.exception
    assert "same grid and task" in texts(at.caption) + texts(at.info)
    assert np.isfinite(len(dataframe_with(at, "dataset")))


def test_every_kind_of_damaged_run_can_be_chosen(workspace: Path, monkeypatch):
    """The damaged run folders of the security tests: the page lists them and comparing
    every finished one (a good one among them) never raises."""
    from app import ui
    from tests.test_app_pages import make_run
    from tests.test_dashboard_security import DAMAGED, _write_damaged

    monkeypatch.setattr(ui, "worker_alive", lambda run: False)
    store = RunStore(workspace / "runs")
    make_run(store, "20240101-000000-unet-good")
    for kind in DAMAGED:
        _write_damaged(workspace / "runs", kind)
    at = page().run()
    assert not at.exception, at.exception
    at.multiselect(key="compare.filter.status").set_value([]).run()  # every status
    assert not at.exception, at.exception
    options = at.multiselect(key="compare.runs").options
    assert "20240101-000000-unet-good" in options
    at.multiselect(key="compare.runs").set_value(options).run()
    assert not at.exception, at.exception


def test_runs_day_figure_shares_one_scale_per_row_group():
    from matplotlib.collections import QuadMesh

    from app.figures import runs_day_figure, shared_limits

    ds = mock_field(n_time=2, n_lat=10, n_lon=12, land=True, seed=1)
    truth = ds["ssh"].isel(time=0)
    recs = {"a": add_noise(truth, 0.01, seed=1), "b": add_noise(truth, 0.05, seed=2)}
    fig = runs_day_figure(truth, recs, land_mask=ds["mask"], units="m")
    limits = {}
    for sub in fig.subfigs:
        clims = {m.get_clim() for ax in sub.axes for m in ax.collections
                 if isinstance(m, QuadMesh) and m.get_cmap().name != "from_list"
                 and m.get_array() is not None and m.norm.vmin is not None
                 and m.get_clim() != (None, None) and m.get_cmap().N > 2}
        limits[len(limits)] = clims
    fields = shared_limits(truth, *recs.values())
    assert limits[0] == {fields}  # truth and both runs: one scale
    assert len(limits[1]) == 1 and limits[1] != {fields}  # residuals: their own scale
    assert len(fig.subfigs[0].axes) == 3 + 1 and len(fig.subfigs[1].axes) == 2 + 1  # + bars


def test_name_tag_filter_and_delete_with_confirmation(store, made_runs):
    """A run is named and tagged on the page; the Tag filter then shows only tagged runs;
    deleting needs the confirmation box and removes exactly that run."""
    a, b, c = made_runs[1]
    at = page().run()
    at.selectbox(key="compare.manage").set_value(a).run()
    at.text_input(key=f"compare.name.{a}").input("Lt 3 days")
    at.multiselect(key=f"compare.tags.{a}").set_value(["baseline", "week 3"])
    at.button(key="compare.save_labels").click().run()
    assert not at.exception, at.exception
    info = store.get(a).info()
    assert info["name"] == "Lt 3 days" and info["tags"] == ["baseline", "week 3"]
    assert "Saved the name and tags" in texts(at.success)

    at.multiselect(key="compare.filter.tags").set_value(["week 3"]).run()
    assert not at.exception
    assert dataframe_with(at, "status")["id"].tolist() == [a]
    assert at.multiselect(key="compare.runs").options == [f"{a} · Lt 3 days"]  # named
    at.multiselect(key="compare.filter.tags").set_value([]).run()

    at.selectbox(key="compare.manage").set_value(b).run()
    assert at.button(key="compare.delete").proto.disabled  # nothing without the confirmation
    assert (store.root / b).is_dir()
    at.checkbox(key="compare.delete_confirm").check().run()
    at.button(key="compare.delete").click().run()
    assert not at.exception, at.exception
    assert not (store.root / b).exists()
    assert (store.root / a).is_dir() and (store.root / c).is_dir()
    assert set(dataframe_with(at, "status")["id"]) == {a, c}


def test_an_invalid_tag_is_refused_in_one_line(store, made_runs):
    a = made_runs[1][0]
    at = page().run()
    at.selectbox(key="compare.manage").set_value(a).run()
    at.multiselect(key=f"compare.tags.{a}").set_value(["a,b"])
    at.button(key="compare.save_labels").click().run()
    assert not at.exception
    assert "invalid tag" in texts(at.error)
    assert store.get(a).info().get("tags", []) == []
