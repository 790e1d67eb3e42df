"""Live pages (issue 9, §3 Pages and §6): the active runs panel of the Experiment and Runs
pages, Launch through the queue (queued / started / reused, Force), and a Results page that
recomputes nothing when the same run is shown again.

Runs "of another process" are written straight into the run store (``RunStore.create``,
``run.update``, ``run.event``); a running one has its writer lock taken by the test, as the
worker executing it would hold it (a running run whose lock is free is recorded as lost by
every reader). No worker process starts: ``jobs.ensure_workers`` is replaced where a Launch
would start one.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app import ui
from backend import jobs, record
from backend.store import Run, RunStore
from tests.test_app_pages import make_run, make_task_run, page, shown, texts

OI = {"task": {"name": "interpolation"}, "model": {"name": "oi"}, "data": {}, "train": {}}
UNET = {**OI, "model": {"name": "unet"}}


@pytest.fixture
def store(workspace: Path) -> RunStore:
    return RunStore(workspace / "runs")


@pytest.fixture
def held() -> list:
    """Run folders whose writer lock the test holds (as their worker would) and slot locks
    it holds (as slot workers do); released after."""
    held: list = []
    yield held
    for item in held:
        if isinstance(item, int):
            record.unlock_file(item)
        else:
            record.release(item)


def slot_worker(store: RunStore, held: list, slot: int, slots: int) -> None:
    """This process as the live slot worker ``slot`` of ``slots`` (its lock and its
    ``slot-K.json``, as ``python -m app worker --slot K`` writes them)."""
    folder = store.root / jobs.SLOTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    fd = record.try_lock_file(folder / f"slot-{slot}.lock")
    assert fd is not None
    held.append(fd)
    (folder / f"slot-{slot}.json").write_text(json.dumps(
        {"slot": slot, "slots": slots, "pid": os.getpid(), "started": "2024-01-01"}))


def running(store: RunStore, held: list, run_id: str, config: dict, *, started_ago: float,
            progress: dict) -> Run:
    """A run that another process executes: status running since ``started_ago`` seconds,
    its latest ``progress``, its writer lock held (the process is this one: a slot worker
    when :func:`slot_worker` made it one)."""
    from backend.liveness import identity

    run = store.create(config, run_id=run_id, status="queued")
    assert record.acquire(run.path)
    held.append(run.path)
    run.update(status="running", started_unix=time.time() - started_ago,
               queued_unix=time.time() - started_ago - 1, executor="local",
               pid=os.getpid(), worker=identity(),
               progress={**progress, "stage_started": time.time() - started_ago})
    run.event("start", executor="local")
    return run


def queued(store: RunStore, run_id: str, config: dict, *, waiting: float) -> Run:
    """A run in the queue (run folder and queue entry), as ``jobs.submit`` leaves it."""
    run = store.create(config, run_id=run_id, status="queued")
    run.update(queued_unix=time.time() - waiting, executor="local")
    run.event("queued", executor="local")
    jobs._enqueue(store, run)
    return run


def progress_bars(at: AppTest) -> list[tuple[int, str]]:
    """``(percent, text as a reader sees it)`` of every progress bar."""
    return [(p.proto.value, shown(p.proto.text)) for p in at.get("progress")]


def read(elements) -> str:
    """What a reader sees of Markdown elements, code spans included (no backticks)."""
    return texts(elements).replace("`", "")


def seconds(text: str, after: str) -> int:
    """The ``m:ss`` duration following ``after`` in ``text``, in seconds."""
    match = re.search(re.escape(after) + r" (\d+):(\d\d)", text)
    assert match, f"no '{after} m:ss' in {text!r}"
    return int(match[1]) * 60 + int(match[2])


def chart_data(element) -> pd.DataFrame:
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    return convert_arrow_bytes_to_pandas_df(element.proto.datasets[0].data.data)


@pytest.fixture
def workspace_runs(store: RunStore, held: list) -> dict:
    """Two running runs (an OI solving days, a UNet training with a loss curve) executed by
    the two slot workers, and two queued ones, all launched "elsewhere"."""
    for slot in (0, 1):
        slot_worker(store, held, slot, 2)
    oi = running(store, held, "20240101-000000-oi-solve", OI, started_ago=83,
                 progress={"stage": "solve", "done": 12, "total": 365, "unit": "days",
                           "eta_s": 95.0})
    unet = running(store, held, "20240101-000001-unet-train", UNET, started_ago=30,
                   progress={"stage": "fit", "epoch": 3, "epochs": 10, "train_loss": 0.25,
                             "val_loss": 0.5, "eta_s": 70.0})
    for epoch, (train, val) in enumerate([(1.0, 1.2), (0.5, 0.7), (0.25, 0.5)], start=1):
        unet.event("epoch", epoch=epoch, epochs=10, train_loss=train, val_loss=val)
    first = queued(store, "20240101-000002-oi-first", OI, waiting=20)
    second = queued(store, "20240101-000003-unet-second", UNET, waiting=10)
    return {"oi": oi, "unet": unet, "first": first, "second": second}


# --------------------------------------------------------------------------- the panel


@pytest.mark.parametrize("name", ["4_Runs.py", "2_Experiment.py"])
def test_panel_lists_runs_of_other_processes(workspace_runs: dict, name: str):
    at = page(name).run()
    assert not at.exception, at.exception
    ids = [r.id for r in workspace_runs.values()]
    # one line per run, running first (oldest first), then the queue in order
    heads = [m for m in read(at.markdown).splitlines() if m.startswith("20240101-")]
    assert [h.split(" · ")[0] for h in heads] == ids
    assert heads[0] == "20240101-000000-oi-solve · oi · interpolation · **running**"
    assert heads[2].endswith("**queued**")

    bars = progress_bars(at)
    assert bars == [
        (3, "solve: 12 / 365 days"),  # the OI's days solved, not an empty bar
        (30, "epoch 3 / 10 · train loss 0.25 · val loss 0.5"),
        (0, "queued — 1st in line, 2 of 2 slots busy"),
        (0, "queued — 2nd in line, 2 of 2 slots busy"),
    ]
    lines = [c for c in texts(at.caption).splitlines()
             if c.startswith(("running for", "waiting for"))]
    assert len(lines) == 4
    assert 83 <= seconds(lines[0], "running for") <= 83 + 20
    assert "about 1:35 left in solve" in lines[0]
    assert 30 <= seconds(lines[1], "running for") <= 30 + 20
    assert "about 1:10 left in fit" in lines[1]
    assert 20 <= seconds(lines[2], "waiting for") <= 20 + 20
    assert 10 <= seconds(lines[3], "waiting for") <= 10 + 20

    # the live loss curve of the training run: its three epochs, both losses
    (chart,) = at.get("vega_lite_chart")
    curve = chart_data(chart)
    by_series = {k: list(g.sort_values("epoch").iloc[:, -1])
                 for k, g in curve.groupby(curve.columns[1])}
    assert by_series == {"train_loss": [1.0, 0.5, 0.25], "val_loss": [1.2, 0.7, 0.5]}

    keys = {b.key for b in at.button}
    prefix = "runs.panel" if name == "4_Runs.py" else "exp.panel"
    assert {f"{prefix}.cancel.{i}" for i in ids} <= keys


def test_panel_shows_text_of_run_files_as_plain_text(store: RunStore, held: list):
    evil = "**bold** <script>x</script> [link](http://example.com) $x$"
    config = {**OI, "model": {"name": evil}, "task": {"name": evil}}
    running(store, held, "20240101-000000-x-evil", config, started_ago=3,
            progress={"stage": evil, "done": 1, "total": 4, "unit": evil, "eta_s": 9})
    at = page("4_Runs.py").run()
    assert not at.exception
    values = [str(e.value) for e in [*at.markdown, *at.caption]]
    values += [p.proto.text for p in at.get("progress")]
    for value in values:
        assert "**bold**" not in value and "<script>" not in value and "](http" not in value
    assert f"{evil}: 1 / 4 {evil}" in [t for _, t in progress_bars(at)]
    assert f"about 0:09 left in {evil}" in texts(at.caption)


def test_runs_table_shows_queue_positions(workspace_runs: dict):
    at = page("4_Runs.py").run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("id")
    assert table.loc[workspace_runs["first"].id, "queue"] == 1
    assert table.loc[workspace_runs["second"].id, "queue"] == 2
    assert pd.isna(table.loc[workspace_runs["oi"].id, "queue"])
    assert list(table.columns[:3]) == ["status", "queue", "task"]


def test_panel_when_nothing_is_active(store: RunStore):
    make_run(store, "20240101-000000-unet-aaaa")
    at = page("4_Runs.py").run()
    assert not at.exception
    assert "No run is queued or running." in texts(at.caption)
    assert not at.get("progress")
    at = page("2_Experiment.py").run()
    assert not at.exception
    assert "Queued and running" not in texts(at.subheader)  # nothing drawn on Experiment


def test_cancel_a_queued_run_from_the_panel(workspace_runs: dict, store: RunStore):
    first, second = workspace_runs["first"], workspace_runs["second"]
    at = page("4_Runs.py").run()
    at.button(key=f"runs.panel.cancel.{first.id}").click().run()
    assert not at.exception
    info = first.info()
    assert info["status"] == "cancelled"
    assert info["error"] == "cancelled before it started"
    assert first.id not in jobs.queue_positions(store)  # it left the queue at once
    assert jobs.queue_positions(store) == {second.id: 1}
    assert f"Cancelled run {first.id}." in read(at.success)
    # the panel no longer lists it, the next one moved up, the others are untouched
    assert not [b for b in at.button if b.key == f"runs.panel.cancel.{first.id}"]
    assert (0, "queued — 1st in line, 2 of 2 slots busy") in progress_bars(at)
    assert workspace_runs["oi"].info()["status"] == "running"
    assert at.dataframe[0].value.set_index("id").loc[first.id, "status"] == "cancelled"


def test_experiment_current_run_shows_elapsed_time_and_days(workspace_runs: dict):
    oi = workspace_runs["oi"]
    at = page("2_Experiment.py")
    at.session_state["current_run"] = oi.id
    at.run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Status"] == "running"
    minutes, secs = metrics["Time"].split(":")  # elapsed m:ss, not "…"
    assert 83 <= int(minutes) * 60 + int(secs) <= 83 + 20
    assert progress_bars(at).count((3, "solve: 12 / 365 days")) == 2  # panel and details
    assert at.button(key="exp.cancel")


# --------------------------------------------------------------------------- Launch


@pytest.fixture
def no_workers(monkeypatch: pytest.MonkeyPatch) -> list:
    """``jobs.ensure_workers`` replaced by a recorder: launches queue, nothing executes."""
    calls: list = []
    monkeypatch.setattr(jobs, "ensure_workers", lambda store, n: calls.append(n) or 0)
    return calls


@pytest.fixture
def mock_nc(workspace: Path) -> Path:
    from tests.test_app_pages import _mock

    ds = _mock().drop_vars("mask")
    ds.attrs.update(oceanlab_truth_var="ssh", oceanlab_obs_var="ssh_obs")
    path = workspace / "datasets" / "mock.nc"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path)
    return path.resolve()


def _launch_oi(mock_nc: Path, at: AppTest | None = None) -> AppTest:
    if at is None:
        at = page("2_Experiment.py").run()
        at.radio(key="exp.source").set_value("path").run()
        at.text_input(key="exp.path").input(str(mock_nc)).run()
        at.selectbox(key="exp.model").set_value("oi").run()
    at.button(key="exp.launch").click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    return at


def test_launch_while_the_slot_is_busy_says_queued(
    mock_nc: Path, store: RunStore, held: list, no_workers: list,
    monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("OCEANLAB_SLOTS", "1")
    slot_worker(store, held, 0, 1)
    busy = running(store, held, "20240101-000000-unet-busy", UNET, started_ago=5,
                   progress={"stage": "load"})
    at = _launch_oi(mock_nc)
    (new,) = [r for r in store.runs() if r.id != busy.id]
    assert new.info()["status"] == "queued"
    assert jobs.queue_positions(store) == {new.id: 1}
    # the page warmed the slot workers of one slot on its first load, and the launch asked again
    assert no_workers == [1, 1]
    assert at.session_state["current_run"] == new.id
    assert f"Run {new.id} queued, position 1 (the slot is busy)" in read(at.info)
    assert (0, "queued — 1st in line, 1 of 1 slot busy") in progress_bars(at)
    assert {m.label: m.value for m in at.metric}["Status"] == "queued"

    # a second launch from the same form queues behind it
    _launch_oi(mock_nc, at)
    (newest,) = [r for r in store.runs() if r.id not in (busy.id, new.id)]
    assert jobs.queue_positions(store) == {new.id: 1, newest.id: 2}
    assert f"Run {newest.id} queued, position 2 (the slot is busy)" in read(at.info)


def test_launch_with_a_free_slot_says_started(mock_nc: Path, store: RunStore, held: list,
                                              no_workers: list):
    # two slot workers, one of them busy; a run of `python -m app train` takes no slot
    slot_worker(store, held, 0, 2)
    slot_worker(store, held, 1, 2)
    busy = running(store, held, "20240101-000000-unet-busy", UNET, started_ago=5,
                   progress={"stage": "load"})
    cli = running(store, held, "20240101-000001-unet-cli", UNET, started_ago=5,
                  progress={"stage": "load"})
    cli.update(pid=None, worker={"pid": -1, "started": None, "host": "elsewhere"})
    at = _launch_oi(mock_nc)
    (run,) = [r for r in store.runs() if r.id not in (busy.id, cli.id)]
    assert f"Run {run.id} started (2 of 2 slots busy)." in read(at.success)
    assert not at.info or "queued" not in read(at.info)


def test_launch_of_a_finished_config_is_reused_then_forced(
    mock_nc: Path, store: RunStore, no_workers: list
):
    from backend.reuse import current_code_version, data_fingerprint, reuse_key

    at = _launch_oi(mock_nc)
    (first,) = store.runs()
    # the worker finished it: done, with the key of its result
    jobs._dequeue(store, first.id)
    config = first.info()["config"]
    first.update(status="done", reuse_key=reuse_key(config, data_fingerprint(mock_nc),
                                                    current_code_version()))

    _launch_oi(mock_nc, at)  # the same form again
    assert [r.id for r in store.runs()] == [first.id]  # nothing new was queued
    assert (f"Reused: identical finished run {first.id} (same task, model, parameters, data, "
            "seed and code)") in read(at.info)
    assert at.session_state["current_run"] == first.id
    assert f"Results of {first.id}" in texts(at.markdown)  # the link to its results
    assert f"run={first.id}" in texts(at.markdown)

    at.button(key="exp.force_new").click().run()
    assert not at.exception
    (forced,) = [r for r in store.runs() if r.id != first.id]
    assert forced.info()["status"] == "queued"
    assert forced.info()["config"] == config
    assert at.session_state["current_run"] == forced.id
    assert f"Run {forced.id} started" in read(at.success)
    assert "Reused" not in read(at.info)

    # the checkbox beside Launch forces too
    jobs._dequeue(store, forced.id)
    forced.update(status="cancelled")
    at.checkbox(key="exp.force").check().run()
    _launch_oi(mock_nc, at)
    assert len(store.runs()) == 3


# --------------------------------------------------------------------------- Results cache


FIGURE_BUILDERS = ("comparison_maps_figure", "timeseries_figure", "psd_score_figure",
                   "history_figure", "residual_maps_figure", "lead_curves_figure")


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Calls of every figure builder of the Results page and of ``xarray.open_dataset``."""
    import xarray as xr

    from app import figures

    calls: dict = {}

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return fn(*args, **kwargs)
        return wrapper

    from app import ui

    ui.wait_for_prefetch()  # nothing of an earlier test is drawn while this one counts
    for name in FIGURE_BUILDERS:
        monkeypatch.setattr(figures, name, counting(name, getattr(figures, name)))
    monkeypatch.setattr(xr, "open_dataset", counting("open_dataset", xr.open_dataset))
    yield calls
    ui.wait_for_prefetch()


def test_results_revisit_recomputes_nothing(store: RunStore, counted: dict):
    run = make_run(store, "20240101-000000-unet-aaaa")
    at = page("3_Results.py").run()
    assert not at.exception and not at.error
    ui.wait_for_prefetch()
    first = dict(counted)
    # the first day's maps, and the next two days' drawn ahead in the background
    assert first["comparison_maps_figure"] == 3
    for name in ("comparison_maps_figure", "timeseries_figure", "psd_score_figure",
                 "history_figure", "open_dataset"):
        assert first.get(name, 0) >= 1, (name, first)
    images = len(at.get("image"))
    assert images >= 4  # maps, RMSE over time, PSD score, history

    again = page("3_Results.py")  # another visit (a new session) of the same run
    again.query_params["run"] = run.id
    again.run()
    assert not again.exception
    ui.wait_for_prefetch()
    assert counted == first  # no figure drawn, no file opened again
    assert len(again.get("image")) == images
    assert again.dataframe[0].value.set_index("key").loc["mu", "value"] == "0.91"

    # another day on the slider: only the figures showing that day are drawn
    day = again.select_slider(key="results.day")
    day.set_value(day.options[2]).run()
    assert not again.exception
    ui.wait_for_prefetch()
    # day 2 was ready (drawn ahead): only days 3 and 4 are drawn, ahead again
    assert counted["comparison_maps_figure"] == first["comparison_maps_figure"] + 2
    # the RMSE curve marks the day: drawn ahead like the maps (day 2 ready, 3 and 4 drawn)
    assert counted["timeseries_figure"] == first["timeseries_figure"] + 2
    assert counted["psd_score_figure"] == first["psd_score_figure"]
    assert counted.get("open_dataset") == first.get("open_dataset")
    second = dict(counted)
    day.set_value(day.options[2]).run()  # the same day again
    ui.wait_for_prefetch()
    assert counted == second

    # a rewritten prediction is read and drawn again (its modification time is in the keys)
    pred = run.prediction()
    time.sleep(0.01)
    run.write_prediction(pred)
    page("3_Results.py").run()
    ui.wait_for_prefetch()
    assert counted["open_dataset"] > second["open_dataset"]
    assert counted["comparison_maps_figure"] > second["comparison_maps_figure"]


def test_forecast_results_revisit_recomputes_nothing(store: RunStore, counted: dict):
    make_task_run(store, "20240101-000000-persistence-ffff", "forecast")
    at = page("3_Results.py").run()
    assert not at.exception and not at.error
    first = dict(counted)
    assert first.get("lead_curves_figure") == 1 and first.get("comparison_maps_figure") == 1
    page("3_Results.py").run()
    assert counted == first


# --------------------------------------------------------------------------- helpers


def test_progress_words():
    from app import ui

    assert ui.progress_view({"stage": "solve", "done": 120, "total": 365, "unit": "days"},
                            "running") == (120 / 365, "solve: 120 / 365 days")
    assert ui.progress_view({"stage": "fit windows", "done": 3, "total": 8,
                             "unit": "windows", "epoch": 40, "epochs": 100},
                            "running") == (3 / 8, "fit windows: 3 / 8 windows")
    assert ui.progress_view({"stage": "fit", "epoch": 2, "epochs": 8}, "running") == (
        0.25, "epoch 2 / 8")
    assert ui.progress_view({"stage": "load"}, "running") == (None, "loading data")
    assert ui.progress_view({"stage": "predict", "epoch": 8, "epochs": 8}, "running") == (
        None, "predicting the test period")
    assert ui.progress_view({}, "queued", position=3, busy=2, slots=2) == (
        0.0, "queued — 3rd in line, 2 of 2 slots busy")
    assert ui.progress_view("garbage", "running") == (None, "running")
    assert ui.progress_view({"stage": "solve", "done": "x", "total": 0}, "running") == (
        None, "solve")
    assert ui.time_left_text({"stage": "solve", "eta_s": 3725}) == "about 1:02:05 left in solve"
    assert ui.time_left_text({"eta_s": None}) == ""
    assert [ui.format_duration(x) for x in (0, 59.6, 61, 3600, None, -1, float("nan"))] == [
        "0:00", "1:00", "1:01", "1:00:00", "—", "—", "—"]
    assert [ui.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]


def test_elapsed_time_of_a_run():
    from app import ui

    now = 1_000_000.0
    assert ui.elapsed_s(ui.RunInfo(id="a", status="running", started_unix=now - 42), now) == 42
    assert ui.elapsed_s(ui.RunInfo(id="a", status="queued", queued_unix=now - 7), now) == 7
    assert ui.elapsed_s(ui.RunInfo(id="a", status="done", seconds=1.5), now) == 1.5
    assert ui.elapsed_s(ui.RunInfo(id="a", status="running"), now) is None
