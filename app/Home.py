"""OceanLab dashboard: ``streamlit run app/Home.py`` (or ``python -m app dashboard``).

The pages in ``app/pages/`` are Streamlit's classic multipage layout, so each one also runs
on its own (``AppTest.from_file("app/pages/1_Data.py")``).
"""

from __future__ import annotations

import streamlit as st

from app import ui
from backend import paths


def main() -> None:
    ui.page_setup("OceanLab")
    st.markdown(
        "Deep-learning experiments on gridded ocean fields, for three tasks: **interpolation** "
        "(map sea surface height from satellite tracks, judged by the scores of the SSH mapping "
        "data challenge: µ and σ of the RMSE, resolved scales λx and λt), **forecast** (the next "
        "days from the last ones, judged lead by lead against persistence and climatology) and "
        "**downscaling** (the fine field from its block means, against bicubic interpolation). "
        "Learned networks and classical baselines run side by side.")

    table = ui.runs_table(ui.store())
    statuses = table["status"].value_counts()
    cols = st.columns(4)
    cols[0].metric("Runs", len(table))
    cols[1].metric("Done", int(statuses.get("done", 0)))
    cols[2].metric("Active", int(sum(statuses.get(s, 0) for s in ui.ACTIVE_STATUSES)))
    cols[3].metric("Failed", int(statuses.get("failed", 0)))
    unreadable = int(statuses.get(ui.UNREADABLE, 0))
    if unreadable:
        st.caption(f"{unreadable} run folder(s) cannot be read: see the Runs page.")

    builtin, exists = ui.builtin_status()
    st.markdown(f"**Workspace** {ui.literal(paths.home())} (set `OCEANLAB_HOME` to move it): "
                f"`datasets/`, `runs/`, `cache/`.")
    st.markdown(f"**Built-in dataset** {ui.literal(builtin)} — "
                + ("ready." if exists else "not generated yet (Data page, or the first run)."))
    st.markdown("**Data roots** (paths typed on the pages must lie under them; set "
                f"`{paths.DATA_ROOTS_ENV}` to change them): "
                + (", ".join(ui.literal(r) for r in paths.data_roots()) or "none"))

    st.subheader("Start here")
    ui.page_link("pages/1_Data.py", "Data: choose a dataset, look at its maps", icon="📂")
    ui.page_link("pages/2_Experiment.py", "Experiment: set up and launch a run", icon="🧪")
    ui.page_link("pages/3_Results.py", "Results: maps, residuals and scores of a run", icon="🗺️")
    ui.page_link("pages/4_Runs.py", "Runs: every run, sortable; delete old ones", icon="📋")
    ui.page_link("pages/5_Compare.py", "Compare: leaderboard, maps and curves of several runs; "
                 "name, tag, report", icon="⚖️")
    ui.page_link("pages/6_Present.py", "Present: large figures, one per screen, for a talk",
                 icon="📽️")

    st.subheader("The same from the command line")
    st.code(
        "python -m app generate                            # the built-in OSSE\n"
        "python -m app inspect FILE.nc                     # what the Data page summarises\n"
        "python -m app train --model oi                    # one run, recorded in the run store\n"
        "python -m app train --task forecast --model unet  # leads 1…7 against persistence\n"
        "python -m app runs                                # the Runs table\n"
        "streamlit run app/Home.py                         # this dashboard",
        language="bash")


main()
