"""The typed experiment config and the run store."""

from __future__ import annotations

import json
import threading

import pandas as pd
import pytest
import xarray as xr
import yaml

from backend.config import ExperimentConfig, build_config, load_yaml, parse_set
from backend.store import RunStore
from oceanlab_errors import ConfigError, RunError


def test_defaults_and_round_trip_through_json():
    cfg = build_config(model="oi")
    assert cfg.model.name == "oi"
    assert cfg.model.lt_days == 7.0 and cfg.model.lx_deg == 1.0
    again = ExperimentConfig(**json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert yaml.safe_load(cfg.to_yaml()) == cfg.to_dict()


def test_set_overrides_every_section():
    cfg = build_config(model="unet", overrides=parse_set(
        ["model.window=5", "train.epochs=3", "data.obs=simulation", "task.gap_days=2", "train.flips=false",
         "limits.max_memory_gb=2"]))
    assert cfg.model.window == 5 and cfg.train.epochs == 3 and cfg.limits.max_memory_gb == 2
    assert cfg.data.obs == "simulation" and cfg.task.gap_days == 2 and cfg.train.flips is False


def test_training_settings_given_under_model_are_read_as_train():
    """Configs written before the train section existed (model.lr, model.batch_size…)."""
    cfg = build_config(model="unet", overrides=parse_set(["model.lr=0.01", "model.batch_size=4"]))
    assert cfg.train.lr == 0.01 and cfg.train.batch_size == 4
    assert "lr" not in cfg.to_dict()["model"]


def test_every_task_and_model_pair_has_a_config():
    from data.tasks import available_tasks
    from models import registry

    for task in available_tasks():
        models = registry.available(task)
        assert models, task
        for model in models:
            cfg = build_config(task=task, model=model)
            assert cfg.task.name == task and cfg.model.name == model
            again = ExperimentConfig(**cfg.to_dict())
            assert again == cfg and type(again.task) is type(cfg.task)


def test_yaml_file_then_set(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text("model: {name: oi, lt_days: 5}\ntrain: {seed: 4}\n")
    cfg = build_config(base=load_yaml(p), overrides={"model.noise": 0.1})
    assert (cfg.model.lt_days, cfg.model.noise, cfg.train.seed) == (5, 0.1, 4)


@pytest.mark.parametrize("overrides, message", [
    ({"model.lx_deg": -1}, "model.lx_deg"),
    ({"model.nope": 1}, "not a parameter of model 'oi'; valid: lx_deg"),
    ({"train.device": "tpu"}, "train.device"),
    ({"bogus.x": 1}, "section one of"),
    ({"model.window": 4}, None),
])
def test_bad_values_are_one_line_config_errors(overrides, message):
    model = "unet" if "model.window" in overrides else "oi"
    with pytest.raises(ConfigError) as info:
        build_config(model=model, overrides=overrides)
    assert "\n" not in str(info.value)
    if message:
        assert message in str(info.value)


def test_unknown_model_lists_choices():
    from models import registry

    with pytest.raises(ConfigError, match="choose one of: " + ", ".join(registry.available())):
        build_config(model="transformer")


def test_bad_yaml_names_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_yaml(p)


def test_run_store_writes_atomically_and_lists(tmp_path):
    store = RunStore(tmp_path / "runs")
    a = store.create({"model": {"name": "oi"}, "task": {"name": "interpolation"}}, status="queued")
    b = store.create({"model": {"name": "unet"}, "task": {"name": "interpolation"}}, status="queued")
    a.update(status="done")
    a.write_metrics({"rmse": 0.05, "mu": 0.8, "notes": {}})
    a.write_history(pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5]}))
    ds = xr.Dataset({"ssh": ("x", [1.0, 2.0])})
    a.write_prediction(ds)
    assert a.prediction()["ssh"].values.tolist() == [1.0, 2.0]
    assert a.history()["train_loss"].tolist() == [1.0, 0.5]
    table = store.table().set_index("id")
    assert table.loc[a.id, "status"] == "done" and table.loc[a.id, "mu"] == 0.8
    assert table.loc[b.id, "status"] == "queued"
    leftovers = [p.name for p in a.path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    store.delete(b.id)
    assert [r.id for r in store.runs()] == [a.id]
    with pytest.raises(RunError):
        store.get(b.id)


def test_readers_never_see_a_partial_run_json(tmp_path):
    run = RunStore(tmp_path).create({"model": {"name": "oi"}})
    stop = threading.Event()
    errors = []

    def writer():
        k = 0
        while not stop.is_set():
            run.update(progress={"epoch": k, "payload": "x" * 5000})
            k += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(300):
            try:
                run.info()
            except RunError as exc:  # a half-written file would show up here
                errors.append(exc)
    finally:
        stop.set()
        t.join()
    assert errors == []


def test_a_corrupt_run_does_not_hide_the_others(tmp_path):
    store = RunStore(tmp_path)
    good = store.create({"model": {"name": "oi"}})
    bad = store.create({"model": {"name": "oi"}})
    (bad.path / "run.json").write_text("{ not json")
    table = store.table().set_index("id")
    assert table.loc[bad.id, "status"] == "unreadable"
    assert table.loc[good.id, "status"] == "queued"
