"""Every dashboard page runs headless (streamlit AppTest) on a tiny synthetic workspace.

Runs for the Results and Runs pages are written straight into a run store (run.json,
metrics.json, prediction.nc, diagnostics.nc, history.csv), so no training happens here:
interpolation runs from a noisy copy of the truth, forecast and downscaling runs through the
real task classes (``build``, ``prediction_dataset``, ``score``). The Experiment page is
tested with ``backend.jobs.submit`` replaced by a recorder, plus one slow end-to-end launch
of a real worker process.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from streamlit.testing.v1 import AppTest

from backend.store import Run, RunStore
from data.synthetic import add_noise, insert_nan, mock_field

APP = Path(__file__).resolve().parents[1] / "app"
TIMEOUT = 30
N_TIME, N_LAT, N_LON = 24, 12, 16


def page(name: str) -> AppTest:
    path = APP / name if name == "Home.py" else APP / "pages" / name
    return AppTest.from_file(str(path), default_timeout=TIMEOUT)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("OCEANLAB_HOME", str(home))
    return home


@pytest.fixture
def store(workspace: Path) -> RunStore:
    return RunStore(workspace / "runs")


def _mock() -> xr.Dataset:
    ds = mock_field(n_time=N_TIME, n_lat=N_LAT, n_lon=N_LON, land=True, seed=1)
    obs = insert_nan(ds["ssh"], 0.9, seed=2)
    obs.attrs = {"units": "m", "long_name": "along-track observations"}
    ds["ssh_obs"] = obs
    return ds


@pytest.fixture
def mock_nc(workspace: Path) -> Path:
    """A small NetCDF file: ``ssh`` (truth, land corner) and ``ssh_obs`` (10 % observed),
    in the workspace's ``datasets/`` folder (the default data root of the pages)."""
    ds = _mock().drop_vars("mask")
    ds.attrs.update(oceanlab_truth_var="ssh", oceanlab_obs_var="ssh_obs")
    path = workspace / "datasets" / "mock.nc"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path)
    return path.resolve()


METRICS = {
    "rmse": 0.0123, "mu": 0.91, "sigma": 0.012,
    "lambda_x_deg": None, "lambda_x_km": None, "lambda_t_days": None,
    "rmse_u": 0.05, "rmse_v": 0.04, "rmse_vorticity": 0.2,
    "notes": {k: "the PSD score has no 0.5 contour"
              for k in ("lambda_x_deg", "lambda_x_km", "lambda_t_days")},
}


def make_run(
    store: RunStore,
    run_id: str,
    *,
    status: str = "done",
    model: str = "unet",
    n_days: int = 12,
    history: bool = True,
    data_path: str = "mock.nc",
    diagnostics: bool = True,
) -> Run:
    """A finished interpolation run written directly into the store, as a worker would leave
    it (``diagnostics=False``: as a run made before diagnostics.nc existed)."""
    config = {"data": {"path": data_path}, "task": {"name": "interpolation"},
              "model": {"name": model}, "train": {"epochs": 3, "seed": 0, "device": "cpu"}}
    run = store.create(config, run_id=run_id, status="running")
    if status == "done":
        test = _mock().isel(time=slice(-n_days, None))
        truth = test["ssh"]
        pred = xr.Dataset({
            "ssh": add_noise(truth, 0.01, seed=3).assign_attrs(truth.attrs),
            "truth": truth,
            "obs": test["ssh_obs"],
            "mask": test["mask"].astype(np.int8),
        })
        pred.attrs["oceanlab_reconstruction_var"] = "ssh"
        run.write_prediction(pred)
        run.write_metrics(METRICS)
        if diagnostics:
            from metrics.diagnostics import mapping_diagnostics

            run.write_diagnostics(mapping_diagnostics(pred["ssh"], truth, test["mask"]))
        if history:
            run.write_history(pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.5, 0.3],
                                            "val_loss": [1.1, 0.6, 0.4]}))
        t = pd.DatetimeIndex(test["time"].values)
        run.update(status="done", timings={"total_s": 1.5}, device="cpu",
                   periods={"test": [str(t[0].date()), str(t[-1].date())]})
    elif status == "failed":
        run.update(status="failed", error="mock.nc: no such file")
    else:
        run.update(status=status)
    return run


#: Tiny task parameters for runs built with the real task classes.
TASK_PARAMS = {"forecast": {"history": 2, "horizon": 3}, "downscaling": {"factor": 2}}
TASK_MODELS = {"forecast": "persistence", "downscaling": "unet"}


def make_task_run(store: RunStore, run_id: str, task: str, *, model: str | None = None) -> Run:
    """A finished ``task`` run (forecast or downscaling) written into the store: the task built
    by its class on 40 days of mock data, a noisy copy of the truth as prediction, and the
    prediction.nc, metrics.json and diagnostics.nc that the task itself gives."""
    from backend.config import DataConfig, build_config
    from data.tasks import get_task

    ds = mock_field(n_time=40, n_lat=N_LAT, n_lon=N_LON, land=True, seed=1)
    cls = get_task(task)
    params = TASK_PARAMS.get(task, {})
    built = cls.build(ds, DataConfig(), cls.Params(**params), label="mock.nc")
    times = built.sample_times("test")
    if task == "forecast":
        target = built.at_leads(built.truth, times).drop_vars("valid_time")
    else:
        target = built.truth.sel(time=times)
    pred = built.prediction_dataset(add_noise(target, 0.01, seed=3), times)
    scores, diagnostics = built.score(pred)
    model = model or TASK_MODELS.get(task, "unet")
    config = build_config(task, model, overrides={
        "data.path": "mock.nc", **{f"task.{k}": v for k, v in params.items()}}).to_dict()
    run = store.create(config, run_id=run_id, status="running")
    run.write_prediction(pred)
    run.write_diagnostics(diagnostics)
    run.write_metrics(scores)
    test = built.times("test")
    run.update(status="done", timings={"total_s": 0.5}, device="cpu",
               periods={"test": [str(test[0].date()), str(test[-1].date())]})
    return run


def shown(markdown: str) -> str:
    """What a reader sees of Markdown escaped by :func:`app.ui.plain` (backslashes dropped)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def texts(elements) -> str:
    """The text of Streamlit elements as a reader sees it (Markdown escapes removed)."""
    return "\n".join(shown(str(e.value)) for e in elements)


# --------------------------------------------------------------------------- Home


def test_home_shows_workspace_and_run_counts(store: RunStore, workspace: Path):
    make_run(store, "20240101-000000-unet-aaaa")
    make_run(store, "20240101-000001-oi-bbbb", status="failed", model="oi")
    at = page("Home.py").run()
    assert not at.exception
    assert at.title[0].value == "OceanLab"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Runs"] == "2"
    assert metrics["Done"] == "1"
    assert metrics["Failed"] == "1"
    assert str(workspace.resolve()) in texts(at.markdown)
    assert "not generated yet" in texts(at.markdown)


# --------------------------------------------------------------------------- Data


def test_data_builtin_missing_generates_on_click(
    workspace: Path, mock_nc: Path, monkeypatch: pytest.MonkeyPatch
):
    import shutil

    from backend import paths

    def fake_generate(seed: int = 0) -> Path:
        target = paths.builtin_dataset_path(seed)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(mock_nc, target)
        return target

    monkeypatch.setattr(paths, "ensure_builtin_dataset", fake_generate)
    at = page("1_Data.py").run()
    assert not at.exception
    assert "not generated yet" in texts(at.info)
    at.button(key="data.generate").click().run()
    assert not at.exception
    assert not at.error
    assert paths.builtin_dataset_path().is_file()
    assert {m.label: m.value for m in at.metric}["Time steps"] == str(N_TIME)


def test_data_path_shows_map_and_summary(workspace: Path, mock_nc: Path):
    at = page("1_Data.py").run()
    at.radio(key="data.source").set_value("path").run()
    assert "Type the path" in texts(at.info)
    at.text_input(key="data.path").input(str(mock_nc)).run()
    assert not at.exception
    assert not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Grid (lat × lon)"] == f"{N_LAT} × {N_LON}"
    assert metrics["Time steps"] == str(N_TIME)
    assert metrics["Time range"] == "2012-10-01 → 2012-10-24"
    assert metrics["Ocean fraction"].endswith("%")
    table = at.dataframe[0].value
    assert set(table["variable"]) == {"ssh", "ssh_obs"}
    assert at.selectbox(key="data.var").value == "ssh"
    assert at.selectbox(key="data.obs").value == "ssh_obs"  # the file's observation variable
    assert "observations of ssh_obs" in texts(at.caption)
    assert any("observations of ssh\\_obs" in c.value for c in at.caption)  # escaped name
    at.select_slider(key="data.day").set_value("2012-10-05").run()
    assert not at.exception
    at.selectbox(key="data.obs").set_value("(none)").run()
    assert not at.exception
    assert at.session_state["dataset_path"] == str(mock_nc)


@pytest.mark.parametrize("kind", ["missing", "not_netcdf", "outside_roots"])
def test_data_bad_path_shows_one_error(workspace: Path, tmp_path: Path, kind: str):
    from app.ui import plain

    datasets = workspace / "datasets"
    datasets.mkdir(parents=True, exist_ok=True)
    bad = datasets / "nowhere" / "x.nc"
    if kind == "not_netcdf":
        bad = datasets / "notes.nc"
        bad.write_text("not a netcdf file\n")
    elif kind == "outside_roots":
        bad = tmp_path / "elsewhere.nc"
        bad.write_text("not a netcdf file\n")
    at = page("1_Data.py").run()
    at.radio(key="data.source").set_value("path").run()
    at.text_input(key="data.path").input(str(bad)).run()
    assert not at.exception
    assert len(at.error) == 1
    assert plain(str(bad.resolve() if kind == "not_netcdf" else bad)) in at.error[0].value
    assert "\n" not in at.error[0].value.strip()
    assert ("not a NetCDF" in at.error[0].value) == (kind == "not_netcdf")
    assert at.title[0].value == "Data"  # the page kept running


# --------------------------------------------------------------------------- Experiment


@pytest.fixture
def submitted(monkeypatch: pytest.MonkeyPatch, store: RunStore) -> list:
    """Replace the worker launch by a recorder that only queues the run in the store."""
    from backend import jobs

    calls: list = []

    def fake_submit(config, run_store, force=False):
        calls.append(config)
        return jobs.Submission(run_store.create(config.to_dict(), status="queued"), position=1)

    monkeypatch.setattr(jobs, "submit", fake_submit)
    return calls


def _experiment_on(mock_nc: Path) -> AppTest:
    at = page("2_Experiment.py").run()
    assert not at.exception
    at.radio(key="exp.source").set_value("path").run()
    at.text_input(key="exp.path").input(str(mock_nc)).run()
    assert not at.exception
    return at


def test_experiment_widgets_come_from_params(workspace: Path, mock_nc: Path):
    from models import registry

    at = _experiment_on(mock_nc)
    assert at.selectbox(key="exp.model").options == registry.available("interpolation")
    oi = registry.get("oi").Params.model_fields
    lx = at.number_input(key="exp.model.oi.lx_deg")
    assert lx.value == oi["lx_deg"].default
    assert lx.help.startswith(oi["lx_deg"].description)
    # a number or "auto": typed as text, read as YAML
    noise = at.text_input(key="exp.model.oi.noise")
    assert noise.value == "auto" and noise.help.startswith(oi["noise"].description)
    assert at.checkbox(key="exp.model.oi.remove_mean").value is True
    assert at.selectbox(key="exp.train.device").options == ["auto", "cpu", "cuda"]
    assert at.selectbox(key="exp.obs").options[:2] == ["default (ssh_obs)", "simulation"]
    if "unet" in registry.available("interpolation"):
        at.selectbox(key="exp.model").set_value("unet").run()
        assert not at.exception
        window = at.number_input(key="exp.model.unet.window")
        assert window.help.startswith(registry.get("unet").Params.model_fields["window"].description)


def test_experiment_launch_queues_run_and_shows_progress(
    workspace: Path, mock_nc: Path, submitted: list, store: RunStore
):
    at = _experiment_on(mock_nc)
    at.selectbox(key="exp.model").set_value("oi").run()
    at.number_input(key="exp.model.oi.lt_days").set_value(5.0)
    at.number_input(key="exp.train.seed").set_value(3)
    at.button(key="exp.launch").click().run()
    assert not at.exception
    assert not at.error
    (config,) = submitted
    assert config.model.name == "oi"
    assert config.model.lt_days == 5.0
    assert config.train.seed == 3
    assert config.data.path == str(mock_nc)
    assert config.data.var is None and config.data.obs is None  # the file's defaults
    (run,) = store.runs()
    assert run.status == "queued"
    assert at.session_state["current_run"] == run.id
    assert {m.label: m.value for m in at.metric}["Status"] == "queued"
    assert run.id in texts(at.subheader)
    assert at.button(key="exp.cancel")


def test_experiment_bad_parameter_shows_error(
    workspace: Path, mock_nc: Path, submitted: list, store: RunStore
):
    at = _experiment_on(mock_nc)
    at.selectbox(key="exp.model").set_value("oi").run()
    at.text_input(key="exp.model.oi.noise").set_value("0")
    at.button(key="exp.launch").click().run()
    assert not at.exception
    assert len(at.error) == 1
    assert "model.noise" in texts(at.error)
    assert submitted == [] and store.runs() == []


def test_experiment_task_first_lists_the_models_and_params_of_the_task(
    workspace: Path, mock_nc: Path
):
    from data.tasks import available_tasks, get_task
    from models import registry

    at = _experiment_on(mock_nc)
    assert at.selectbox(key="exp.task").options == available_tasks()
    assert at.selectbox(key="exp.task").value == "interpolation"
    assert at.selectbox(key="exp.obs")  # observations matter for interpolation
    assert at.number_input(key="exp.data.obs_noise")
    at.selectbox(key="exp.task").set_value("forecast").run()
    assert not at.exception
    assert at.selectbox(key="exp.model").options == registry.available("forecast")
    assert at.selectbox(key="exp.model").value == "persistence"  # the baseline, preselected
    history = at.number_input(key="exp.task.forecast.history")
    fields = get_task("forecast").Params.model_fields
    assert history.value == fields["history"].default
    assert history.help.startswith(fields["history"].description)
    assert at.number_input(key="exp.task.forecast.horizon").value == fields["horizon"].default
    assert at.selectbox(key="exp.task.forecast.mode").options == ["direct", "rollout"]
    keys = {w.key for w in [*at.selectbox, *at.number_input, *at.text_input]}
    assert "exp.obs" not in keys and "exp.data.obs_noise" not in keys  # hidden for forecasts
    assert not any(k.startswith("exp.task.interpolation.") for k in keys)
    assert "exp.task.forecast.name" not in keys
    assert "Variable to forecast" in [w.label for w in at.selectbox]


def test_experiment_launch_forecast_queues_a_forecast_config(
    workspace: Path, mock_nc: Path, submitted: list, store: RunStore
):
    from models import registry

    at = _experiment_on(mock_nc)
    at.selectbox(key="exp.task").set_value("forecast").run()
    model = "unet" if "unet" in registry.available("forecast") else "persistence"
    at.selectbox(key="exp.model").set_value(model).run()
    at.number_input(key="exp.task.forecast.history").set_value(3)
    at.number_input(key="exp.task.forecast.horizon").set_value(4)
    at.number_input(key="exp.train.epochs").set_value(1)
    loss = at.text_input(key="exp.train.loss")
    assert loss.value.startswith("[")  # the loss terms, edited as YAML
    at.button(key="exp.launch").click().run()
    assert not at.exception
    assert not at.error
    (config,) = submitted
    assert config.task.name == "forecast"
    assert (config.task.history, config.task.horizon) == (3, 4)
    assert config.model.name == model
    assert config.train.epochs == 1
    from backend.config import TrainConfig

    assert config.train.loss == TrainConfig().loss  # the YAML text read back unchanged
    assert config.data.path == str(mock_nc) and config.data.obs is None
    (run,) = store.runs()
    assert run.info()["config"]["task"]["name"] == "forecast"


@pytest.mark.parametrize("where", ["missing", "outside_roots"])
def test_experiment_bad_data_path_blocks_launch(
    workspace: Path, mock_nc: Path, tmp_path: Path, where: str
):
    from app.ui import plain

    bad = mock_nc.parent / "missing.nc"
    if where == "outside_roots":  # a real NetCDF file, but outside the data roots
        bad = tmp_path / "copy.nc"
        bad.write_bytes(mock_nc.read_bytes())
    at = _experiment_on(bad)
    assert len(at.error) == 1
    assert plain(str(bad)) in at.error[0].value
    assert "not an accessible dataset under the data roots" in at.error[0].value.replace("\\", "")
    assert at.button(key="exp.launch").disabled


def test_experiment_cancel_and_finished_run(workspace: Path, store: RunStore):
    queued = make_run(store, "20240101-000002-oi-cccc", status="queued")
    at = page("2_Experiment.py")
    at.session_state["current_run"] = queued.id
    at.run()
    assert not at.exception
    at.button(key="exp.cancel").click().run()
    assert not at.exception
    assert queued.status == "cancelled"
    assert "cancelled" in texts(at.warning)

    done = make_run(store, "20240101-000003-unet-dddd")
    at = page("2_Experiment.py")
    at.session_state["current_run"] = done.id
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table.set_index("key").loc["mu", "value"] == "0.91"
    assert "Results" in texts(at.markdown)  # link to the Results page
    assert not [b for b in at.button if b.key == "exp.cancel"]


@pytest.mark.slow
def test_experiment_real_worker_runs_oi(workspace: Path, mock_nc: Path, store: RunStore):
    """End to end: the page starts a real worker process, which records a finished run."""
    from backend import jobs

    at = _experiment_on(mock_nc)
    at.selectbox(key="exp.model").set_value("oi").run()
    at.button(key="exp.launch").click().run()
    assert not at.exception and not at.error
    (run,) = store.runs()
    deadline = time.monotonic() + 120
    try:
        while run.status in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        if run.status in ("queued", "running"):
            jobs.cancel(run)
    assert run.status == "done", run.info().get("error")
    at.run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Status"] == "done"
    assert "µ(RMSE)" in set(at.dataframe[0].value["score"])


# --------------------------------------------------------------------------- Results


def test_results_shows_maps_scores_history(store: RunStore):
    run = make_run(store, "20240101-000000-unet-aaaa")
    at = page("3_Results.py").run()
    assert not at.exception
    assert not at.error
    assert at.selectbox(key="results.run").value == run.id
    assert at.query_params["run"] == run.id
    scores = at.dataframe[0].value.set_index("key")
    assert scores.loc["mu", "value"] == "0.91"
    assert scores.loc["rmse", "units"] == "m"
    assert scores.loc["lambda_x_deg", "value"] == "—"
    assert "no 0.5 contour" in scores.loc["lambda_x_deg", "note"]
    assert "no 0.5 contour" in texts(at.caption)
    heads = texts(at.subheader)
    for head in ("Scores", "Maps", "RMSE over time", "PSD score", "Training history"):
        assert head in heads
    assert "not trained" not in texts(at.caption)
    at.select_slider(key="results.day").set_value(at.select_slider(key="results.day").options[3])
    at.run()
    assert not at.exception


def _headline(at: AppTest) -> dict[str, str]:
    return {shown(m.label): shown(m.value) for m in at.metric}


def _expected_headline(task: str, metrics: dict, units: str = "m") -> dict[str, str]:
    from app.ui import format_value
    from data.tasks import get_task
    from metrics.scores import info

    out = {}
    for key in get_task(task).headline_scores:
        unit = info(key).unit_text(units)
        out[f"{info(key).label} ({unit})" if unit else info(key).label] = format_value(metrics[key])
    return out


def test_results_of_a_forecast_run(store: RunStore):
    run = make_task_run(store, "20240101-000000-persistence-ffff", "forecast")
    metrics = run.metrics()
    at = page("3_Results.py").run()
    assert not at.exception
    assert not at.error
    assert _headline(at) == _expected_headline("forecast", metrics)
    table = at.dataframe[0].value.set_index("key")
    assert table.loc["skill_persistence", "score"] == "skill vs persistence"
    assert not any(k.endswith("_by_lead") for k in table.index)  # lists are curves, not cells
    heads = texts(at.subheader)
    for head in ("Scores", "Maps", "Skill by lead", "RMSE over start dates", "Training history"):
        assert head in heads
    assert "persistence" in texts(at.caption)
    by_lead = at.dataframe[1].value  # "Values by lead", read from diagnostics.nc
    assert list(by_lead["lead"]) == [1, 2, 3]
    np.testing.assert_allclose(by_lead["RMSE by lead"], metrics["rmse_by_lead"], rtol=1e-5)
    np.testing.assert_allclose(by_lead["ACC by lead"], metrics["acc_by_lead"], rtol=1e-5)
    assert at.select_slider(key="results.lead").options == ["1", "2", "3"]
    at.select_slider(key="results.lead").set_value(3).run()
    assert not at.exception
    start = at.select_slider(key="results.start")
    assert len(start.options) == len(run.prediction()["time"]) >= 2
    start.set_value(start.options[-1]).run()
    assert not at.exception and not at.error


def test_results_of_a_downscaling_run(store: RunStore):
    run = make_task_run(store, "20240101-000000-unet-dddd", "downscaling")
    metrics = run.metrics()
    at = page("3_Results.py").run()
    assert not at.exception
    assert not at.error
    assert _headline(at) == _expected_headline("downscaling", metrics)
    table = at.dataframe[0].value.set_index("key")
    assert table.loc["rmse_gain_bicubic", "score"] == "RMSE gain over bicubic"
    heads = texts(at.subheader)
    for head in ("Maps", "RMSE over time", "PSD score"):
        assert head in heads
    assert "bicubic" in texts(at.caption)  # RMSE over time against bicubic's
    assert "PSD score not available" in texts(at.info)  # 5 test days: from diagnostics.nc
    day = at.select_slider(key="results.day")
    day.set_value(day.options[-1]).run()
    assert not at.exception


def test_results_of_an_older_run_without_diagnostics(store: RunStore, monkeypatch):
    import metrics

    def refuse(*args, **kwargs):
        raise AssertionError("the Results page must not compute diagnostics")

    monkeypatch.setattr(metrics, "psd_score", refuse)
    monkeypatch.setattr(metrics, "rmse_over_time", refuse)
    make_run(store, "20240101-000000-unet-aaaa", diagnostics=False)
    at = page("3_Results.py").run()
    assert not at.exception
    assert "no diagnostics.nc" in texts(at.info)
    heads = texts(at.subheader)
    assert "Maps" in heads and "RMSE over time" not in heads
    assert _headline(at)["µ(RMSE)"] == "0.91"


def test_results_with_a_damaged_diagnostics_file(store: RunStore):
    from backend.store import DIAGNOSTICS_FILE

    run = make_task_run(store, "20240101-000000-persistence-ffff", "forecast")
    (run.path / DIAGNOSTICS_FILE).write_bytes(b"not a netcdf file")
    at = page("3_Results.py").run()
    assert not at.exception
    assert "No diagnostics to draw" in texts(at.info)
    assert DIAGNOSTICS_FILE in texts(at.info)
    assert "Maps" in texts(at.subheader)  # the maps are still drawn from prediction.nc


def test_results_run_from_query_params(store: RunStore):
    older = make_run(store, "20240101-000000-unet-aaaa")
    make_run(store, "20240102-000000-unet-bbbb")
    make_run(store, "20240103-000000-oi-cccc", status="failed", model="oi")
    at = page("3_Results.py")
    at.run()
    assert at.selectbox(key="results.run").options[0].startswith("20240102")  # newest done first
    assert len(at.selectbox(key="results.run").options) == 2
    at = page("3_Results.py")
    at.query_params["run"] = older.id
    at.run()
    assert not at.exception
    assert at.selectbox(key="results.run").value == older.id
    at = page("3_Results.py")
    at.query_params["run"] = "20240103-000000-oi-cccc"
    at.run()
    assert "is failed" in texts(at.warning)


def test_results_psd_unavailable_and_untrained_model(store: RunStore):
    make_run(store, "20240101-000000-oi-aaaa", model="oi", n_days=5, history=False)
    at = page("3_Results.py").run()
    assert not at.exception
    assert "PSD score not available" in texts(at.info)
    assert "not trained" in texts(at.caption)


def test_results_without_runs(workspace: Path):
    at = page("3_Results.py").run()
    assert not at.exception
    assert "No finished run" in texts(at.info)


# --------------------------------------------------------------------------- Runs


def test_runs_table_filter_and_delete(store: RunStore):
    keep = make_run(store, "20240101-000000-unet-aaaa")
    gone = make_run(store, "20240102-000000-oi-bbbb", status="failed", model="oi")
    before = {p.name: p.read_bytes() for p in keep.path.iterdir()}
    at = page("4_Runs.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["id"]) == [gone.id, keep.id]
    assert table.set_index("id").loc[keep.id, "mu"] == pytest.approx(0.91)
    at.multiselect(key="runs.status").set_value(["done"]).run()
    assert list(at.dataframe[0].value["id"]) == [keep.id]
    assert at.selectbox(key="runs.delete_id").options == ["—", keep.id]  # follows the filter
    at.multiselect(key="runs.status").set_value([]).run()  # emptied: every run, not none
    assert list(at.dataframe[0].value["id"]) == [gone.id, keep.id]

    at.selectbox(key="runs.delete_id").set_value(gone.id).run()
    assert at.button(key="runs.delete").disabled  # needs the confirmation first
    at.checkbox(key="runs.confirm").check().run()
    at.button(key="runs.delete").click().run()
    assert not at.exception
    assert f"Deleted run {gone.id}" in texts(at.success)
    assert not gone.path.exists()
    assert {p.name: p.read_bytes() for p in keep.path.iterdir()} == before
    assert [r.id for r in store.runs()] == [keep.id]


def test_runs_table_labels_scores_of_every_task(store: RunStore):
    make_run(store, "20240101-000000-unet-aaaa")
    forecast = make_task_run(store, "20240102-000000-persistence-ffff", "forecast")
    at = page("4_Runs.py").run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("id")
    assert table.loc[forecast.id, "task"] == "forecast"
    assert table.loc[forecast.id, "acc"] == pytest.approx(forecast.metrics()["acc"])
    assert "acc_by_lead" not in table.columns


def test_runs_active_run_is_not_deleted(store: RunStore, monkeypatch: pytest.MonkeyPatch):
    from app import ui
    from backend import record

    running = make_run(store, "20240101-000000-unet-aaaa", status="running")
    # its worker: the process executing a run holds its writer lock to the end (a running
    # run whose lock is free is recorded as lost by every reader)
    assert record.acquire(running.path)
    monkeypatch.setattr(ui, "worker_alive", lambda run: True)
    try:
        at = page("4_Runs.py").run()
        at.selectbox(key="runs.delete_id").set_value(running.id).run()
        assert not at.exception
        assert "cancel it before deleting" in texts(at.warning)
        assert not [b for b in at.button if b.key == "runs.delete"]
        assert running.path.exists()
        assert running.status == "running"
    finally:
        record.release(running.path)


def test_runs_empty(workspace: Path):
    at = page("4_Runs.py").run()
    assert not at.exception
    assert "No run yet" in texts(at.info)


# --------------------------------------------------------------------------- helpers


def test_scores_table_marks_missing_scores():
    from app.ui import scores_table

    table = scores_table(METRICS, "m").set_index("key")
    assert table.loc["rmse", "value"] == "0.0123"
    assert table.loc["rmse", "units"] == "m"
    assert table.loc["lambda_t_days", "value"] == "—"
    assert table.loc["lambda_t_days", "note"] == "the PSD score has no 0.5 contour"
    assert table.loc["mu", "note"] == ""
    assert table.loc["rmse", "better"] == "↓ lower" and table.loc["mu", "better"] == "↑ higher"


def test_scores_table_follows_the_score_registry():
    from app.ui import scores_table
    from metrics.scores import SCORES

    metrics = {"zz_custom": 1.5, "acc": 0.5, "rmse": 0.1, "rmse_by_lead": [0.1, 0.2],
               "notes": {}}
    table = scores_table(metrics, "m")
    assert list(table["key"]) == ["rmse", "acc", "zz_custom"]  # SCORES order, unknown after
    assert list(table["score"]) == [SCORES["rmse"].label, SCORES["acc"].label, "zz_custom"]


def test_results_shows_the_configuration_and_launches_it_again(store: RunStore, monkeypatch):
    """A 3-epoch UNet can be told from a 40-epoch one: Results says what differs from the
    defaults, shows the whole config, and launches the same settings again; the Runs table
    has the dataset and the settings."""
    from backend import jobs

    monkeypatch.setattr(jobs, "ensure_workers", lambda store, n: 0)
    run = make_run(store, "20240101-000000-unet-aaaa")
    at = page("3_Results.py").run()
    assert not at.exception
    assert "Configuration" in texts(at.subheader)
    summary = " ".join(shown(m.value) for m in at.markdown)
    assert "train.epochs=3" in summary and "train.device=cpu" in summary
    assert any("epochs: 3" in c.value for c in at.code)
    at.button(key="results.again").click().run()
    assert not at.exception and not at.error
    (again,) = [r for r in store.runs() if r.id != run.id]
    assert again.info()["status"] == "queued"
    assert again.info()["config"]["train"]["epochs"] == 3
    assert again.info()["config"]["data"]["path"] == run.info()["config"]["data"]["path"]

    table = page("4_Runs.py").run().dataframe[0].value.set_index("id")
    assert table.loc[run.id, "data"] == "mock.nc"
    assert "train.epochs=3" in table.loc[run.id, "settings"]


def test_experiment_form_survives_a_visit_to_another_page(workspace: Path):
    """The chosen model and epochs are still there after the user looked at another page
    (same session: AppTest keeps the session state between page switches)."""
    at = page("Home.py").run()
    at.switch_page("pages/2_Experiment.py").run()
    at.selectbox(key="exp.model").set_value("unet").run()
    at.number_input(key="exp.train.epochs").set_value(3).run()
    at.switch_page("pages/4_Runs.py").run()
    assert not at.exception
    at.switch_page("pages/2_Experiment.py").run()
    assert not at.exception
    assert at.selectbox(key="exp.model").value == "unet"
    assert at.number_input(key="exp.train.epochs").value == 3


def test_results_downloads_figures_scores_and_prediction(store: RunStore):
    make_run(store, "20240101-000000-unet-aaaa")
    at = page("3_Results.py").run()
    assert not at.exception
    assert "Downloads" in texts(at.subheader)
    names = at.selectbox(key="results.downloads.figure").options
    assert {"day maps", "history"} <= set(names)
    buttons = {b.label: b for b in at.get("download_button")}
    assert {"Download PNG", "Scores (CSV)", "Prediction (NetCDF)"} <= set(buttons)
    assert any(label.startswith("Animation for slides") for label in buttons)
    at.radio(key="results.downloads.fmt").set_value("pdf").run()
    assert not at.exception
    assert "Download PDF" in {b.label for b in at.get("download_button")}


def test_figure_export_is_png_or_pdf_at_presentation_resolution():
    from app import figures, ui

    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5]})
    png = ui._figure_export(("h", 1), "png", lambda: figures.history_figure(history))
    pdf = ui._figure_export(("h", 1), "pdf", lambda: figures.history_figure(history))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and pdf[:5] == b"%PDF-"
    import io as _io

    from PIL import Image

    width = Image.open(_io.BytesIO(png)).size[0]
    assert width > 7.0 * ui.EXPORT_DPI * 0.8  # the 7-inch figure at 200 dpi
