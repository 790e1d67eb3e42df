"""The Data page's observation coverage and loader notes (issue 11), values checked against
the file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from data.synthetic import insert_nan, mock_field
from tests.test_app_pages import store, submitted  # noqa: F401 (fixtures)

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


def test_region_and_period_chosen_on_the_data_page_reach_the_experiment(workspace, submitted):
    from tests.test_app_pages import page

    ds = mock_field(n_time=8, n_lat=10, n_lon=12, land=True, seed=1).drop_vars("mask")
    path = workspace / "datasets" / "cut.nc"
    path.parent.mkdir(parents=True)
    ds.to_netcdf(path)
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    at.radio(key="data.source").set_value("path").run()
    at.text_input(key="data.path").input(str(path)).run()
    lon = [s for s in at.slider if s.label.startswith("Longitude")][0]
    lo, hi = lon.value
    lon.set_value((lo, round(lo + (hi - lo) / 2, 4))).run()
    period = [s for s in at.slider if s.label == "Period"][0]
    period.set_value((period.value[0], period.value[0] + (period.value[1] - period.value[0]) / 2))
    at.run()
    assert not at.exception and not at.error
    cut = at.session_state["data.selection"]
    lon_values = ds["lon"].values
    kept = ((lon_values >= cut["region"][0]) & (lon_values <= cut["region"][1])).sum()
    assert 0 < kept < len(lon_values)
    assert f"Kept: 10 × {kept} cells" in shown(" ".join(c.value for c in at.caption))

    exp = page("2_Experiment.py")
    exp.session_state["data.selection"] = cut
    exp.session_state["dataset_path"] = str(path.resolve())
    exp.run()
    exp.radio(key="exp.source").set_value("path").run()
    exp.text_input(key="exp.path").input(str(path.resolve())).run()
    assert not exp.exception
    assert exp.checkbox(key="exp.use_cut").value is True
    exp.selectbox(key="exp.model").set_value("oi").run()
    exp.button(key="exp.launch").click().run()
    assert not exp.exception and not exp.error, exp.error
    (config,) = submitted
    assert config.data.region == cut["region"] and config.data.period == cut["period"]


def test_loader_notes_name_renames_flips_and_wraps(tmp_path):
    from data.canonical import open_dataset

    ds = mock_field(n_time=4, n_lat=6, n_lon=8, land=False, seed=1).drop_vars("mask")
    ds = ds.isel(lat=slice(None, None, -1)).rename(lat="latitude", lon="longitude")
    ds["longitude"] = ds["longitude"] + 360.0
    path = tmp_path / "odd.nc"
    ds.to_netcdf(path)
    out = open_dataset(path)
    notes = out.attrs["oceanlab_notes"].split("; ")
    assert "renamed latitude → lat" in notes and "renamed longitude → lon" in notes
    assert "lat: latitude stored north to south: flipped to south to north" in notes
    assert "lon: 0…360 turned into −180…180" in notes
    assert (out["lat"].diff("lat") > 0).all()
    np.testing.assert_allclose(out["ssh"].isel(time=0, lat=0).values,
                               ds["ssh"].isel(time=0, latitude=-1).values, rtol=1e-6)
