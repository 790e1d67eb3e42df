"""Human labels of the Experiment form, the defaults of its empty periods, and the Data page's
overlay and time step (walkthrough findings: raw config keys as labels, no hint of what an
empty period becomes, text cut off in metrics, the overlay reset by a change of variable)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pydantic import BaseModel, Field
from streamlit.testing.v1 import AppTest

from app.labels import config_key_help, empty_hint, fallback_label, field_label, period_hint
from data.synthetic import insert_nan, mock_field

APP = Path(__file__).resolve().parents[1] / "app"
N_TIME = 24  # 2012-10-01 … 2012-10-24, daily


def page(name: str) -> AppTest:
    return AppTest.from_file(str(APP / "pages" / name), default_timeout=30)


def shown(elements) -> str:
    """Text of Streamlit elements as read (Markdown backslash escapes dropped)."""
    import re

    return "\n".join(re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", str(e.value)) for e in elements)


@pytest.fixture
def three_vars_nc(workspace: Path) -> Path:
    """``ssh`` (truth), ``ssh_obs`` (10 % observed) and ``sst``, daily over 24 days, in the
    workspace's ``datasets/`` folder (the pages' default data root)."""
    ds = mock_field(n_time=N_TIME, n_lat=12, n_lon=16, land=True, seed=1).drop_vars("mask")
    ds["ssh_obs"] = insert_nan(ds["ssh"], 0.9, seed=2)
    ds["sst"] = (20 + 3 * ds["ssh"]).assign_attrs(units="degC")
    ds.attrs.update(oceanlab_truth_var="ssh", oceanlab_obs_var="ssh_obs")
    path = workspace / "datasets" / "three.nc"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path)
    return path.resolve()


# --------------------------------------------------------------------------- labels


def test_labels_of_known_fields_carry_their_units():
    from backend.config import TrainConfig
    from data.tasks import get_task
    from models import registry

    oi = registry.get("oi").Params.model_fields
    assert field_label("lx_deg", oi["lx_deg"], "model") == "Zonal length scale Lx (°)"
    assert field_label("ly_deg", oi["ly_deg"], "model") == "Meridional length scale Ly (°)"
    assert field_label("lt_days", oi["lt_days"], "model") == "Time scale Lt (days)"
    assert field_label("lr", TrainConfig.model_fields["lr"], "train") == "Learning rate"
    assert field_label("epochs", section="train") == "Epochs"
    assert field_label("patch_size", section="train") == "Patch size (grid points)"
    assert field_label("window", section="model") == "Input window (time steps)"
    assert field_label("obs_noise", section="data") == "Simulated observation noise (data units)"
    history = get_task("forecast").Params.model_fields["history"]
    assert field_label("history", history, "task") == "History (time steps)"
    assert field_label("test_period", section="task") == "Test period"
    # the same name, another meaning in another section
    assert field_label("precision", section="model") == "Solver precision"
    assert field_label("precision", section="train") == "Precision"


def test_label_fallback_spells_units_and_a_title_wins():
    assert fallback_label("lx_deg") == "Lx (°)"
    assert fallback_label("wait_days") == "Wait (days)"
    assert fallback_label("max_memory_gb") == "Max memory (GB)"
    assert fallback_label("radius_km") == "Radius (km)"
    assert fallback_label("some_new_flag") == "Some new flag"
    assert fallback_label("days") == "Days"  # a unit alone is the name, not a suffix
    assert field_label("brand_new_scale_deg") == "Brand new scale (°)"

    class Params(BaseModel):
        lx_deg: float = Field(1.0, title="Custom title (°)")

    assert field_label("lx_deg", Params.model_fields["lx_deg"], "model") == "Custom title (°)"


def test_every_form_field_has_a_readable_label():
    from backend.config import DataConfig, TrainConfig
    from data.tasks import available_tasks, get_task
    from models import registry

    sections = [("train", TrainConfig), ("data", DataConfig)]
    sections += [("task", get_task(t).Params) for t in available_tasks()]
    sections += [("model", registry.get(m).Params) for m in registry.available()]
    for section, cls in sections:
        for name, field in cls.model_fields.items():
            label = field_label(name, field, section)
            assert label and "_" not in label and label != name, (section, name, label)


def test_help_keeps_the_config_key_and_empty_fields_say_their_default():
    text = config_key_help("lx_deg", "zonal decorrelation length (degrees)", "model")
    assert text == "zonal decorrelation length (degrees)\n\nconfig key: `model.lx_deg`"
    assert config_key_help("seed", None, "train") == "config key: `train.seed`"
    assert empty_hint("early_stopping_patience", "train") == "empty: train every epoch"
    assert empty_hint("window_days", "model") == "empty: task.climatology_window_days"
    assert empty_hint("something_else", "model") == "empty: automatic"


def test_period_hint_states_the_rule_and_the_dates_of_a_dataset():
    placeholder, help_text = period_hint("test", 7)
    assert placeholder == "empty: last 15 % of the steps"
    assert "`oceanlab_test_period`" in help_text and "70 %" in help_text
    assert "gap_days = 7" in help_text
    assert period_hint("train", 7)[0] == "empty: first 70 % of the steps"
    assert period_hint("val", 7)[0] == "empty: next 15 %, after a gap"

    times = pd.date_range("2012-10-01", periods=N_TIME)
    # 24 steps: gap min(7, 21 // 10) = 2, 20 usable: train 14, validation 3, test 3
    assert period_hint("train", 7, times)[0] == "empty: 2012-10-01/2012-10-14"
    assert period_hint("val", 7, times)[0] == "empty: 2012-10-17/2012-10-19"
    placeholder, help_text = period_hint("test", 7, times)
    assert placeholder == "empty: 2012-10-22/2012-10-24"
    assert help_text.endswith("The dataset covers 2012-10-01/2012-10-24 (24 time steps); "
                              "empty here gives 2012-10-22/2012-10-24, from the automatic "
                              "split.")
    # no gap: 24 usable, test and validation 4 steps each
    assert period_hint("test", 0, times)[0] == "empty: 2012-10-21/2012-10-24"
    # the file's own period wins over the automatic split
    attrs = {"oceanlab_test_period": "2012-10-20/2012-10-24"}
    placeholder, help_text = period_hint("test", 7, times, attrs)
    assert placeholder == "empty: 2012-10-20/2012-10-24"
    assert help_text.endswith("empty here gives the period of the file's "
                              "`oceanlab_test_period` attribute (the placeholder).")
    # a file's text is shown as the placeholder (plain text), never in the Markdown help
    attrs = {"oceanlab_test_period": "[x](http://evil.example)"}
    placeholder, help_text = period_hint("test", 7, times, attrs)
    assert placeholder == "empty: [x](http://evil.example)" and "evil" not in help_text
    hourly = pd.date_range("2012-10-01 06:00", periods=30, freq="6h")
    assert period_hint("test", 7, hourly)[0] == \
        "empty: 2012-10-07 18:00/2012-10-08 12:00"


# --------------------------------------------------------------------------- Experiment page


def _experiment_on(path: Path) -> AppTest:
    at = page("2_Experiment.py").run()
    assert not at.exception
    at.radio(key="exp.source").set_value("path").run()
    at.text_input(key="exp.path").input(str(path)).run()
    assert not at.exception and not at.error
    return at


def test_experiment_shows_human_labels_with_the_config_key_in_help(three_vars_nc: Path):
    at = _experiment_on(three_vars_nc)
    at.selectbox(key="exp.model").set_value("oi").run()
    assert not at.exception
    lx = at.number_input(key="exp.model.oi.lx_deg")  # the widget key is unchanged
    assert lx.label == "Zonal length scale Lx (°)"
    assert lx.help.endswith("config key: `model.lx_deg`")
    assert at.number_input(key="exp.model.oi.lt_days").label == "Time scale Lt (days)"
    assert at.number_input(key="exp.train.lr").label == "Learning rate"
    assert "config key: `train.lr`" in at.number_input(key="exp.train.lr").help
    assert at.selectbox(key="exp.train.device").label == "Device"
    noise = at.number_input(key="exp.data.obs_noise")
    assert noise.label == "Simulated observation noise (data units)"
    assert "config key: `data.obs_noise`" in noise.help
    assert "config key: `data.var`" in at.selectbox(key="exp.var").help
    # the file's default is named, not "Choose an option" (a None value shows the placeholder)
    assert at.selectbox(key="exp.var").value is None
    assert at.selectbox(key="exp.var").placeholder == "default (ssh)"
    assert at.selectbox(key="exp.obs").placeholder == "default (ssh_obs)"
    widgets = [*at.number_input, *at.text_input, *at.selectbox, *at.checkbox]
    labels = {w.key: w.label for w in widgets if w.key and w.key.startswith("exp.")}
    raw = {k: v for k, v in labels.items() if v == k.rsplit(".", 1)[-1] or "_" in v}
    assert not raw, raw  # no raw config key is a label
    # the same for a forecast with a trained model
    at.selectbox(key="exp.task").set_value("forecast").run()
    assert not at.exception
    assert at.number_input(key="exp.task.forecast.history").label == "History (time steps)"
    assert at.number_input(key="exp.task.forecast.horizon").label == "Horizon (time steps)"
    help_text = at.number_input(key="exp.task.forecast.history").help
    assert help_text.startswith("time steps of the past")
    assert help_text.endswith("config key: `task.history`")


def test_experiment_period_fields_state_their_default(three_vars_nc: Path):
    at = page("2_Experiment.py").run()  # the built-in OSSE, not generated: the rule only
    assert not at.exception
    test = at.text_input(key="exp.task.interpolation.test_period")
    assert test.label == "Test period"
    assert test.value == ""
    assert test.placeholder == "empty: last 15 % of the steps"
    assert "`oceanlab_test_period`" in test.help and "config key: `task.test_period`" in test.help
    assert at.text_input(key="exp.task.interpolation.train_period").placeholder == \
        "empty: first 70 % of the steps"

    at.radio(key="exp.source").set_value("path").run()
    at.text_input(key="exp.path").input(str(three_vars_nc)).run()
    assert not at.exception
    test = at.text_input(key="exp.task.interpolation.test_period")
    assert test.placeholder == "empty: 2012-10-22/2012-10-24"
    assert "The dataset covers 2012-10-01/2012-10-24 (24 time steps)" in test.help
    assert at.text_input(key="exp.task.interpolation.val_period").placeholder == \
        "empty: 2012-10-17/2012-10-19"
    assert "The dataset covers 2012-10-01 → 2012-10-24: 24 time steps of 1 day." in \
        shown(at.caption)
    # the hint follows the gap: none left out, test = the last 4 of 24 steps
    at.number_input(key="exp.task.interpolation.gap_days").set_value(0).run()
    assert at.text_input(key="exp.task.interpolation.test_period").placeholder == \
        "empty: 2012-10-21/2012-10-24"


def test_experiment_shows_a_long_device_name_in_full(workspace: Path):
    from backend.store import RunStore
    from tests.test_app_pages import make_run

    run = make_run(RunStore(workspace / "runs"), "20240101-000000-oi-dev0", model="oi")
    run.update(device="cuda (NVIDIA H200 141GB HBM3e)", executor="local")
    at = page("2_Experiment.py")
    at.session_state["current_run"] = run.id
    at.run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Status"] == "done" and "Device" not in metrics  # not a cut-off metric
    assert "Device: cuda (NVIDIA H200 141GB HBM3e)" in shown(at.markdown).replace("**", "")


# --------------------------------------------------------------------------- Data page


def _data_on(path: Path) -> AppTest:
    at = page("1_Data.py").run()
    at.radio(key="data.source").set_value("path").run()
    at.text_input(key="data.path").input(str(path)).run()
    assert not at.exception and not at.error
    return at


def test_data_overlay_survives_a_change_of_variable(three_vars_nc: Path):
    at = _data_on(three_vars_nc)
    assert at.selectbox(key="data.var").value == "ssh"
    assert at.selectbox(key="data.obs").value == "ssh_obs"  # the file's observations
    at.selectbox(key="data.obs").set_value("(none)").run()
    at.selectbox(key="data.var").set_value("sst").run()
    assert not at.exception
    assert at.selectbox(key="data.obs").value == "(none)"  # not reset to the default
    at.selectbox(key="data.obs").set_value("ssh").run()
    at.selectbox(key="data.var").set_value("ssh_obs").run()
    assert at.selectbox(key="data.obs").value == "ssh"
    assert "observations of ssh on this day" in shown(at.caption)
    # the variable now mapped cannot overlay itself; the choice comes back with another one
    at.selectbox(key="data.var").set_value("ssh").run()
    assert at.selectbox(key="data.obs").value == "ssh_obs"
    at.selectbox(key="data.var").set_value("sst").run()
    assert at.selectbox(key="data.obs").value == "ssh"
    assert not at.exception


def test_data_page_shows_time_step_and_range_readably(three_vars_nc: Path):
    at = _data_on(three_vars_nc)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Time step"] == "1 day"
    assert metrics["Time range"] == "2012-10-01 → 2012-10-24"
    assert "time step 1 day" in shown(at.caption)
    everything = shown([*at.caption, *at.markdown]) + str(metrics)
    assert "00:00:00" not in everything and "1 days" not in everything
