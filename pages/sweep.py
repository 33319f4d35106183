"""Sweeps: thousands of 2-D runs at once, fair tuning, basins of attraction."""

import contextlib

import streamlit as st

from optlab.ui.address_bar import link_params, mirror_url
from optlab.ui.sweep import settings, sidebar
from optlab.ui.sweep.modes import MODES

state = st.session_state
settings.initialise(state, link_params())

with st.sidebar:
    mode = st.radio(
        "Mode",
        list(settings.MODES),
        key=settings.MODE,
        persist_state="session",
        format_func=settings.MODES.__getitem__,
        on_change=sidebar.on_mode_change,
    )
    sidebar.problem_section()
    if mode == settings.FAIR:
        sidebar.fair_section()
    else:
        swept = () if mode == settings.BASINS else (state["sw_x_name"], state["sw_y_name"])
        sidebar.optimizer_section(swept)
        if mode == settings.SWEEP:
            sidebar.axes_section()
        else:
            sidebar.basin_section()

st.title(settings.MODES[mode])
if warning := state.pop(settings.LINK_WARNING, None):
    st.warning(warning)
# The address bar is a share link; settings that do not parse are reported below
# and the URL keeps the last good ones.
with contextlib.suppress(ValueError):
    mirror_url(settings.share_params(state))
MODES[mode]()
