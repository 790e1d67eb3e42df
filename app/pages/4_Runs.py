"""Runs: every run of the workspace in one sortable table; open or delete a run."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])  # the repository, for `streamlit run`
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from app import ui  # noqa: E402
from data.errors import RunError  # noqa: E402

FLASH_KEY = "runs.flash"
TARGET_KEY = "runs.delete_id"
CONFIRM_KEY = "runs.confirm"


def _delete(run_id: str) -> None:
    """Button callback: delete one run folder, then reset the delete widgets."""
    try:
        ui.store().delete(run_id)
        st.session_state[FLASH_KEY] = ("success", f"Deleted run {run_id}.")
    except (RunError, OSError) as exc:
        st.session_state[FLASH_KEY] = ("error", f"{run_id}: not deleted ({exc})")
    st.session_state[TARGET_KEY] = None
    st.session_state[CONFIRM_KEY] = False


def _cancel(run_id: str) -> None:
    from backend import jobs

    try:
        jobs.cancel(ui.store().get(run_id))
        st.session_state[FLASH_KEY] = ("success", f"Cancelled run {run_id}.")
    except RunError as exc:
        st.session_state[FLASH_KEY] = ("error", str(exc))


def delete_section(ids: list[str]) -> None:
    """Pick a run, confirm, delete its folder (never touches another run)."""
    st.subheader("Delete a run")
    target = st.selectbox("Run to delete", [None, *ids], key=TARGET_KEY,
                          format_func=lambda r: "—" if r is None else r)
    if target is None:
        return
    try:
        run = ui.store().get(target)
        status = run.status
    except RunError as exc:
        st.error(str(exc))
        return
    if status in ui.ACTIVE_STATUSES and ui.worker_alive(run):
        st.warning(f"Run {target} is {status}; cancel it before deleting it.")
        st.button("Cancel this run", key="runs.cancel", on_click=_cancel, args=(target,))
        return
    confirm = st.checkbox(f"Yes, delete run {target} and all its files", key=CONFIRM_KEY)
    st.button("Delete", type="primary", disabled=not confirm, key="runs.delete",
              on_click=_delete, args=(target,))


def main() -> None:
    ui.page_setup("Runs")
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        getattr(st, flash[0])(flash[1])
    store = ui.store()
    table = store.table()
    if table.empty:
        st.info(f"No run yet in `{store.root}`: launch one on the Experiment page.")
        ui.page_link("pages/2_Experiment.py", "Go to Experiment", icon="🧪")
        return
    statuses = sorted(str(s) for s in table["status"].dropna().unique())
    chosen = st.multiselect("Status", statuses, default=statuses, key="runs.status")
    shown = table[table["status"].isin(chosen)]
    st.dataframe(
        shown, hide_index=True, width="stretch",
        column_config={
            "id": st.column_config.TextColumn("run id", pinned=True),
            "seconds": st.column_config.NumberColumn("time (s)", format="%.1f"),
        })
    st.caption(f"{len(shown)} of {len(table)} runs · click a column header to sort · "
               f"folder `{store.root}`")

    failed = shown[shown["status"] == "failed"]["id"].tolist()
    if failed:
        with st.expander(f"Errors of {len(failed)} failed run(s)"):
            for run_id in failed:
                try:
                    st.markdown(f"`{run_id}`: {store.get(run_id).info().get('error') or '?'}")
                except RunError as exc:
                    st.markdown(f"`{run_id}`: {exc}")

    done = table[table["status"] == "done"]["id"].tolist()
    if done:
        st.subheader("Open a run")
        run_id = st.selectbox("Finished run", done, key="runs.open")
        ui.page_link("pages/3_Results.py", f"Results of {run_id}", icon="🗺️",
                     query_params={"run": run_id})
    delete_section(table["id"].tolist())


main()
