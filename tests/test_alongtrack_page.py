"""Along-track observation files picked on the Experiment page (issue 11): the glob is
checked against the data roots, the missions inside the dataset's box are listed with their
sample counts, and the held-out missions reach the config."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from tests.test_alongtrack import write_track
from tests.test_app_pages import page, store, submitted  # noqa: F401 (fixtures)


def shown(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def test_experiment_takes_track_files_and_a_held_out_mission(workspace, mock_ds, submitted,
                                                             store):
    data = workspace / "datasets"
    (data / "obs").mkdir(parents=True)
    grid = data / "grid.nc"
    mock_ds[["ssh"]].to_netcdf(grid)
    lat, lon = mock_ds["lat"].values, mock_ds["lon"].values
    days = pd.DatetimeIndex(mock_ds["time"].values)
    rng = np.random.default_rng(0)
    inside = {}
    for name, n in (("j3", 40), ("c2", 25)):
        times = days.repeat(n) + pd.to_timedelta(rng.uniform(-0.4, 0.4, n * len(days)), "D")
        la = rng.uniform(lat[0], lat[-1], times.size)
        lo = rng.uniform(lon[0], lon[-1] + 3.0, times.size)  # some east of the grid
        write_track(data / "obs" / f"{name}.nc", times.round("s"), la, lo,
                    rng.normal(0, 0.1, times.size), attrs={"mission": name})
        t = times.round("s")
        inside[name] = int(((lo <= lon[-1]) & (t >= days[0]) & (t <= days[-1])).sum())

    at = page("2_Experiment.py").run()
    at.radio(key="exp.source").set_value("path").run()
    at.text_input(key="exp.path").input(str(grid)).run()
    at.selectbox(key="exp.model").set_value("oi").run()
    at.selectbox(key="exp.obs").set_value("__track_files__").run()
    assert not at.exception
    at.text_input(key="exp.obs_files").input("/etc/*.nc").run()
    assert "not an accessible dataset under the data roots" in shown(
        " ".join(e.value for e in at.error))
    at.text_input(key="exp.obs_files").input(str(data / "obs" / "*.nc")).run()
    assert not at.exception and not at.error, at.error
    caption = shown(" ".join(c.value for c in at.caption))
    assert f"c2 {inside['c2']:,}" in caption and f"j3 {inside['j3']:,}" in caption
    at.multiselect(key="exp.holdout").set_value(["c2"]).run()
    at.button(key="exp.launch").click().run()
    assert not at.exception and not at.error, at.error
    (config,) = submitted
    assert config.data.obs == str(data / "obs" / "*.nc")
    assert config.data.holdout == "c2"
