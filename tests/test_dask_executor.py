"""Runs executed on a Dask cluster land in the run store exactly as local ones (issue 9 §5).

One ``distributed.LocalCluster`` with one worker *process* (``processes=True``: like a real
cluster, the run executes in another process that only shares the filesystem) serves the
module. Two identical queued OI runs on a tiny grid, one through :func:`dask_run`, one
through :func:`backend.jobs.run_queued` in this process, must give the same files, scores,
prediction and recorded config.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from backend import executors, jobs
from backend.config import build_config
from backend.store import RunStore
from data.synthetic import add_noise, insert_nan, mock_field
from oceanlab_errors import ConfigError, RunError

distributed = pytest.importorskip("distributed")

#: Files whose content or presence legitimately differs between a Dask and a local run.
IGNORED = {executors.EXECUTOR_FILE}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One worker process with one thread; its OCEANLAB_HOME is a temporary folder (the
    worker inherits this process's environment when it starts)."""
    home = tmp_path_factory.mktemp("dask-home")
    before = os.environ.get("OCEANLAB_HOME")
    os.environ["OCEANLAB_HOME"] = str(home)
    try:
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as lc:
            yield lc
    finally:
        if before is None:
            os.environ.pop("OCEANLAB_HOME", None)
        else:
            os.environ["OCEANLAB_HOME"] = before


@pytest.fixture(scope="module")
def tiny_nc(tmp_path_factory) -> Path:
    """40 days on a 12 x 14 grid with gappy noisy observations: the OI takes a second."""
    ds = mock_field(n_time=40, n_lat=12, n_lon=14, land=True, seed=1)
    ds["ssh_obs"] = add_noise(insert_nan(ds["ssh"], 0.85, seed=2), 0.01, seed=3)
    path = tmp_path_factory.mktemp("data") / "tiny.nc"
    ds.drop_vars("mask").to_netcdf(path)
    return path


def _oi_config(data: Path | str):
    return build_config(task="interpolation", model="oi", overrides={
        "data.path": str(data), "data.var": "ssh", "data.obs": "ssh_obs"})


def _files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*")
            if p.is_file() and p.name not in IGNORED}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_dask_run_lands_in_the_store_as_a_local_run(tmp_path, cluster, tiny_nc):
    store = RunStore(tmp_path / "runs")
    config = _oi_config(tiny_nc)
    on_dask = store.create(config.to_dict(), status="queued")
    here = store.create(config.to_dict(), status="queued")
    assert on_dask.id != here.id

    assert executors.dask_run(on_dask.path, cluster.scheduler_address) == "done"
    assert jobs.run_queued(here.path).info()["status"] == "done"

    a, b = on_dask.info(), here.info()
    assert a["status"] == b["status"] == "done"
    assert a["config"] == b["config"] == config.to_dict()
    assert a.get("executor") == "dask"
    assert a["worker"]["pid"] != os.getpid()  # executed in the worker process
    assert b["worker"]["pid"] == os.getpid()
    # torch's threads in the worker: its cores over its one task thread (not the nanny's 1)
    if a.get("device", "").startswith("cpu"):
        assert a["device"] == f"cpu ({len(os.sched_getaffinity(0))} threads)"
    assert _files(on_dask.path) == _files(here.path)
    assert {"run.json", "metrics.json", "prediction.nc", "diagnostics.nc"} <= _files(on_dask.path)
    assert json.loads((on_dask.path / "metrics.json").read_text()) == \
        json.loads((here.path / "metrics.json").read_text())
    with xr.open_dataset(on_dask.path / "prediction.nc") as pa, \
            xr.open_dataset(here.path / "prediction.nc") as pb:
        xr.testing.assert_equal(pa.load(), pb.load())
        assert np.isfinite(pa["ssh"].values).any()
    with xr.open_dataset(on_dask.path / "diagnostics.nc") as da, \
            xr.open_dataset(here.path / "diagnostics.nc") as db:
        xr.testing.assert_equal(da.load(), db.load())

    trace = json.loads((on_dask.path / executors.EXECUTOR_FILE).read_text())
    assert trace["executor"] == "dask" and trace["scheduler"] == cluster.scheduler_address
    assert trace["key"] == executors.task_key(on_dask.id) and on_dask.id in trace["key"]
    assert "submitted" in trace and "resources" not in trace  # device auto: no GPU asked


def test_dask_submit_returns_at_once_and_the_run_ends_done(tmp_path, cluster, tiny_nc):
    store = RunStore(tmp_path / "runs")
    run = store.create(_oi_config(tiny_nc).to_dict(), status="queued")
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        # Keep the only worker thread busy for a while: the run cannot start before it.
        busy = client.submit(time.sleep, 3, pure=False)
        distributed.fire_and_forget(busy)
        deadline = time.monotonic() + 30
        while not any(busy.key in keys for keys in client.processing().values()):
            assert time.monotonic() < deadline, "the worker never took the sleep task"
            time.sleep(0.05)
        t0 = time.monotonic()
        key = executors.dask_submit(run.path, cluster.scheduler_address)
        assert time.monotonic() - t0 < 2.5
    assert run.id in key
    assert run.info()["status"] == "queued"  # returned at once, before the run started
    # The submitting client has disconnected: fire_and_forget keeps the task alive.
    assert executors.wait_for_end(run.path, timeout_s=120) == "done"
    assert run.metrics()


def test_a_failing_run_fails_through_dask_as_locally(tmp_path, cluster):
    store = RunStore(tmp_path / "runs")
    config = _oi_config(tmp_path / "no-such-file.nc")
    on_dask = store.create(config.to_dict(), status="queued")
    here = store.create(config.to_dict(), status="queued")
    assert executors.dask_run(on_dask.path, cluster.scheduler_address) == "failed"
    jobs.run_queued(here.path)
    a, b = on_dask.info(), here.info()
    assert a["status"] == b["status"] == "failed"
    assert a["error"] and a["error"] == b["error"] and "no-such-file.nc" in a["error"]
    assert a.get("error_kind") == b.get("error_kind")
    assert "\n" not in a["error"]


def test_a_run_cancelled_while_queued_is_not_started_by_the_worker(tmp_path, cluster):
    store = RunStore(tmp_path / "runs")
    run = store.create({"model": {"name": "oi"}})
    assert jobs.cancel(run) is True
    assert executors.dask_run(run.path, cluster.scheduler_address) == "cancelled"
    assert run.info()["status"] == "cancelled"


def test_cancel_stops_a_run_executing_in_a_dask_worker(tmp_path, cluster, tiny_nc):
    """The worker's thread sees ``cancel.request`` (no signal reaches a Dask worker) and
    records the end itself; the worker is free for the next run afterwards."""
    store = RunStore(tmp_path / "runs")
    endless = build_config(model="unet", overrides={
        "data.path": str(tiny_nc), "data.var": "ssh", "data.obs": "ssh_obs",
        "model.window": 3, "model.base_channels": 4, "model.depth": 1,
        "model.patch_size": 8, "model.batch_size": 2, "model.steps_per_epoch": 5,
        "train.epochs": 100000})
    run = store.create(endless.to_dict(), status="queued")
    executors.dask_submit(run.path, cluster.scheduler_address)

    def training():
        info = run.info()
        assert info["status"] in ("queued", "running"), info.get("error")
        return (info.get("progress") or {}).get("epoch", 0) >= 1
    _wait(training, timeout=180)
    assert jobs.cancel(run, wait_s=60) is True
    info = run.info()
    assert info["status"] == "cancelled" and info["error"] == "cancelled by the user"
    assert executors.wait_for_end(run.path, timeout_s=5) == "cancelled"
    # the worker thread was released: a next run executes
    nxt = store.create(_oi_config(tiny_nc).to_dict(), status="queued")
    assert executors.dask_run(nxt.path, cluster.scheduler_address) == "done"


def _wait(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s"
        time.sleep(0.2)


def test_a_folder_the_worker_cannot_see_is_one_clear_error(tmp_path):
    with pytest.raises(RunError) as info:
        executors.execute_on_worker(str(tmp_path / "elsewhere" / "20260101-000000-oi-abcd"))
    text = str(info.value)
    assert "is not visible from the Dask worker on" in text and "OCEANLAB_HOME" in text
    assert "\n" not in text


def test_submit_refuses_what_is_not_a_run_folder(tmp_path, cluster):
    with pytest.raises(RunError, match="not a run folder"):
        executors.dask_submit(tmp_path, cluster.scheduler_address)


@pytest.mark.parametrize("address", ["localhost:8786", "http://host:8786", "tcp://host",
                                     "", "tcp://host:8786/path", "tcp://a b:1"])
def test_connect_refuses_a_malformed_address_at_once(address):
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as info:
        executors.connect(address, timeout_s=1)
    assert time.monotonic() - t0 < 1
    text = str(info.value)
    assert text.startswith("--scheduler ") and "cannot connect to a Dask scheduler" in text
    assert "\n" not in text


def test_connect_to_nothing_fails_in_one_line_within_the_timeout():
    address = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as info:
        executors.connect(address, timeout_s=1.5)
    assert time.monotonic() - t0 < 1.5 + 5
    text = str(info.value)
    assert text.startswith(f"--scheduler {address}: cannot connect to a Dask scheduler there (")
    assert "\n" not in text


def test_without_distributed_the_message_names_the_package(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_distributed(name, *args, **kwargs):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError("No module named 'distributed'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    with pytest.raises(ConfigError, match="needs the Python package 'distributed'") as info:
        executors.connect("tcp://127.0.0.1:8786", timeout_s=1)
    assert "\n" not in str(info.value)


def test_a_cuda_run_asks_for_a_gpu_only_where_workers_declare_one(tmp_path, cluster):
    store = RunStore(tmp_path / "runs")
    cfg = build_config(model="oi", overrides={"train.device": "cuda"}).to_dict()
    run = store.create(cfg)
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        assert executors._resources(client, run) is None  # the worker declares no GPU
        fake = {"workers": {"tcp://10.0.0.1:1": {"resources": {"GPU": 1}}}}
        client.scheduler_info = lambda *a, **k: fake
        assert executors._resources(client, run) == {"GPU": 1}
        auto = store.create(build_config(model="oi").to_dict())
        assert executors._resources(client, auto) is None
        four = store.create({**cfg, "train": {**cfg["train"], "devices": 4}})
        with pytest.raises(ConfigError, match="asks for 4 GPUs") as info:
            executors._resources(client, four)
        assert "\n" not in str(info.value)
        fake["workers"]["tcp://10.0.0.2:1"] = {"resources": {"GPU": 4}}
        assert executors._resources(client, four) == {"GPU": 4}


def test_executors_are_the_config_choices():
    from backend.config import BackendConfig

    assert executors.EXECUTORS == ("local", "dask")
    choices = BackendConfig.model_fields["executor"].annotation.__args__
    assert set(choices) == set(executors.EXECUTORS)
