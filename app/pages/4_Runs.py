"""Runs: the queued and running runs of the workspace live (progress, elapsed time, time
left, cancel), then every run in one sortable table; open or delete a run."""

from __future__ import annotations

import streamlit as st

from app import ui
from oceanlab_errors import RunError

FLASH_KEY = "runs.flash"
TARGET_KEY = "runs.delete_id"
CONFIRM_KEY = "runs.confirm"
STATUS_KEY = "runs.status"
#: The statuses the filter offered last time (a new one is added to the choice).
KNOWN_KEY = "runs.known_statuses"


def _delete(run_id: str) -> None:
    """Button callback: delete one run folder, then reset the delete widgets."""
    try:
        ui.store().delete(run_id)
        st.session_state[FLASH_KEY] = ("success", f"Deleted run {ui.plain(run_id)}.")
    except (RunError, OSError) as exc:
        st.session_state[FLASH_KEY] = ("error", ui.plain(f"{run_id}: not deleted ({exc})"))
    st.session_state[TARGET_KEY] = None
    st.session_state[CONFIRM_KEY] = False


def _cancel(run_id: str) -> None:
    from backend import jobs

    try:
        jobs.cancel(ui.store().get(run_id))
        st.session_state[FLASH_KEY] = ("success", f"Cancelled run {ui.plain(run_id)}.")
    except RunError as exc:
        st.session_state[FLASH_KEY] = ("error", ui.plain(exc))


def delete_section(ids: list[str]) -> None:
    """Pick a run, confirm, delete its folder (never touches another run)."""
    st.subheader("Delete a run")
    target = st.selectbox("Run to delete", [None, *ids], key=TARGET_KEY,
                          format_func=lambda r: "—" if r is None else r)
    if target is None:
        return
    try:
        run = ui.store().get(target)
    except RunError as exc:
        st.error(ui.plain(exc))
        return
    status = ui.read_run(run).status
    if status in ui.ACTIVE_STATUSES and ui.worker_alive(run):
        st.warning(f"Run {ui.plain(target)} is {status}; cancel it before deleting it.")
        st.button("Cancel this run", key="runs.cancel", on_click=_cancel, args=(target,))
        return
    confirm = st.checkbox(f"Yes, delete run {ui.plain(target)} and all its files",
                          key=CONFIRM_KEY)
    st.button("Delete", type="primary", disabled=not confirm, key="runs.delete",
              on_click=_delete, args=(target,))


def status_filter(statuses: list[str]) -> list[str]:
    """The statuses to show. Every status is shown at first; one that appears later (a run
    of the panel has ended: done, failed, cancelled) is added to the choice, so that a
    finished run is never hidden by a filter set before it existed."""
    known = set(st.session_state.get(KNOWN_KEY) or ())
    default: list[str] | None = statuses
    if STATUS_KEY in st.session_state:
        current = [s for s in st.session_state[STATUS_KEY] or () if s in statuses]
        st.session_state[STATUS_KEY] = current + [
            s for s in statuses if s not in known and s not in current]
        default = None  # the value is the session's
    st.session_state[KNOWN_KEY] = list(statuses)
    return st.multiselect("Status", statuses, default=default, key=STATUS_KEY)


def main() -> None:
    ui.page_setup("Runs")
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:  # (kind, Markdown already escaped by the callback)
        getattr(st, flash[0])(flash[1])
    store = ui.store()
    st.subheader("Queued and running")
    ui.active_runs_panel("runs.panel", when_empty="No run is queued or running.")
    st.subheader("All runs")
    table = ui.with_queue_positions(ui.runs_table(store), store)
    if table.empty:
        st.info(f"No run yet in {ui.literal(store.root)}: launch one on the Experiment page.")
        ui.page_link("pages/2_Experiment.py", "Go to Experiment", icon="🧪")
        return
    chosen = status_filter(sorted(table["status"].unique()))
    # an emptied filter filters nothing: every run, not none
    shown = table[table["status"].isin(chosen)] if chosen else table
    st.dataframe(
        shown.drop(columns="error") if shown["error"].isna().all() else shown,
        hide_index=True, width="stretch",
        column_config={
            **ui.score_columns(list(shown.columns)),  # labels, units and direction of scores
            "id": st.column_config.TextColumn("run id", pinned=True),
            "seconds": st.column_config.NumberColumn("time (s)", format="%.1f"),
            "data": st.column_config.TextColumn("data", help="the data file (built-in: the OSSE)"),
            "settings": st.column_config.TextColumn(
                "settings", help="what differs from the default config of the task and model, "
                                 "and the epochs and seed of trained models"),
            "queue": st.column_config.NumberColumn(
                "queue", format="%d", help="place in the queue of a queued run (1 = next)"),
            "error": st.column_config.TextColumn(
                "error", help="why a run failed, or why its folder cannot be read"),
        })
    st.caption(f"{len(shown)} of {len(table)} runs · click a column header to sort · "
               f"folder {ui.literal(store.root)}")

    broken = shown[shown["status"].isin(["failed", ui.UNREADABLE])]
    if len(broken):
        with st.expander(f"Errors of {len(broken)} failed or unreadable run(s)"):
            for row in broken.itertuples():
                error = row.error if isinstance(row.error, str) and row.error else None
                if error is None:  # an older store leaves the error of a run in run.json
                    try:
                        error = ui.read_run(store.get(row.id)).error
                    except RunError as exc:
                        error = str(exc)
                st.markdown(f"{ui.literal(row.id)} ({row.status}): {ui.plain(error or '?')}")

    done = shown[shown["status"] == "done"]["id"].tolist()  # the pickers follow the filter
    if done:
        st.subheader("Open a run")
        run_id = st.selectbox("Finished run", done, key="runs.open")
        ui.page_link("pages/3_Results.py", f"Results of {ui.plain(run_id)}", icon="🗺️",
                     query_params={"run": run_id})
    delete_section(shown["id"].tolist())


main()
