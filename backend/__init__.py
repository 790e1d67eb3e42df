"""Backend room: configs, job runner, device choice, caches and the run store.

Never imports streamlit.
"""
