"""Shared fixtures: an isolated workspace and small seeded NetCDF files."""

from __future__ import annotations

import os

import numpy as np
import pytest

from data.synthetic import add_noise, insert_nan, mock_field

os.environ.setdefault("OMP_NUM_THREADS", "2")
# Slot workers started by a test (a page's Launch, a submit) leave after 4 idle seconds, even
# where a test file overrides the ``workspace`` fixture below; all are stopped at the end.
os.environ["OCEANLAB_WORKER_IDLE_S"] = "4"


@pytest.fixture(autouse=True, scope="session")
def _no_worker_outlives_the_session(tmp_path_factory):
    yield
    stop_workers(tmp_path_factory.getbasetemp())


@pytest.fixture(autouse=True)
def workspace(tmp_path, monkeypatch):
    """Every test gets its own OCEANLAB_HOME so nothing leaks into ./workspace; slot workers
    a test starts (backend.jobs) exit after 4 idle seconds and are stopped at its end."""
    home = tmp_path / "workspace"
    monkeypatch.setenv("OCEANLAB_HOME", str(home))
    monkeypatch.setenv("OCEANLAB_WORKER_IDLE_S", "4")
    monkeypatch.delenv("OCEANLAB_SLOTS", raising=False)
    yield home
    stop_workers(tmp_path)


def stop_workers(under) -> None:
    """Kill the slot workers (``python -m app worker --slot``) whose run store lies under
    ``under``."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if "worker" in cmd and "--slot" in cmd and any(str(under) in c for c in cmd):
            try:
                proc.kill()
                proc.wait(5)
            except (psutil.Error, psutil.TimeoutExpired):
                pass


@pytest.fixture
def mock_ds():
    """60 days on a 20 x 24 grid with a land corner and a gappy noisy observation variable."""
    ds = mock_field(n_time=60, n_lat=20, n_lon=24, land=True, seed=1)
    ds["ssh_obs"] = add_noise(insert_nan(ds["ssh"], 0.85, seed=2), 0.01, seed=3)
    ds["ssh_obs"].attrs = {"units": "m", "long_name": "observed ssh"}
    return ds


@pytest.fixture
def mock_nc(tmp_path, mock_ds):
    """``mock_ds`` written to NetCDF (without the derived mask), as a user's file would be."""
    path = tmp_path / "mock.nc"
    mock_ds.drop_vars("mask").to_netcdf(path)
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)
