"""The Data page's observation coverage and loader notes (issue 11), values checked against
the file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from data.synthetic import insert_nan, mock_field

PAGE = Path(__file__).resolve().parents[1] / "app" / "pages" / "1_Data.py"


def shown(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def test_coverage_counts_and_loader_notes(workspace):
    ds = mock_field(n_time=8, n_lat=10, n_lon=12, land=True, seed=1).drop_vars("mask")
    obs = insert_nan(ds["ssh"], 0.8, seed=2)
    obs[3] = np.nan  # a day without any observation
    ds["ssh_obs"] = obs.assign_attrs(units="m")
    ds = ds.isel(lat=slice(None, None, -1))  # stored north to south: the loader flips it
    path = workspace / "datasets" / "cov.nc"
    path.parent.mkdir(parents=True)
    ds.attrs.update(oceanlab_truth_var="ssh", oceanlab_obs_var="ssh_obs")
    ds.to_netcdf(path)
    counts = obs.notnull().sum(("lat", "lon")).values

    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    at.radio(key="data.source").set_value("path").run()
    at.text_input(key="data.path").input(str(path)).run()
    assert not at.exception and not at.error, at.error
    assert at.selectbox(key="data.obs").value == "ssh_obs"
    text = shown(" ".join(c.value for c in at.caption))
    assert f"{counts.sum():,} observed cells in all" in text
    assert f"{counts.mean():.0f} per step on average" in text
    assert "1 steps without any observation" in text
    assert "Observation coverage" in " ".join(s.value for s in at.subheader)
    at.selectbox(key="data.obs").set_value("(none)").run()
    assert "Choose an observation variable" in " ".join(c.value for c in at.caption)
