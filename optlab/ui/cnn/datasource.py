"""The CNN page's main-area notice when the chosen images are not on this server.

A share link carries its data source (and a typed CIFAR-10 folder), so a link
made on a server with CIFAR-10 can open on one without it. The page then says
so above everything else and offers what this server has, the synthetic shapes
or its own copy of CIFAR-10, keeping every other setting of the link.
"""

from __future__ import annotations

import streamlit as st

from optlab.train.data import LoadedData
from optlab.ui.cnn import jobs, settings


def _use_synthetic() -> None:
    st.session_state[settings.DATA] = settings.SYNTHETIC
    st.session_state.pop(settings.LINK_DATA, None)


def _use_own_cifar() -> None:
    st.session_state[settings.DATA_DIR] = ""
    st.session_state.pop(settings.LINK_DATA, None)


def missing_data_notice(data: LoadedData | None) -> None:
    """A warning with the ways on when CIFAR-10 is chosen but not to be had here."""
    state = st.session_state
    if data is not None or state[settings.DATA] != settings.CIFAR:
        return
    folder = state[settings.DATA_DIR].strip()
    why = jobs.cifar_data(folder)[1]
    from_link = state.get(settings.LINK_DATA) == settings.CIFAR
    subject = "This link trains on CIFAR-10" if from_link else "CIFAR-10 is chosen"
    where = f" from the folder {folder}" if folder else ""
    own = jobs.cifar_data("")[0] if folder else None
    st.warning(
        f"{subject}{where}, but this server does not have it ({why}). "
        "Every other setting is kept: train on the synthetic shapes instead"
        + (", or on this server's own CIFAR-10" if own is not None else "")
        + (", or download CIFAR-10 in the sidebar" if jobs.can_download(folder) else "")
        + ".",
        icon=":material/cloud_off:",
    )
    left, right = st.columns(2)
    left.button(
        "Train on the synthetic shapes",
        icon=":material/category:",
        on_click=_use_synthetic,
        key="cnn_use_synthetic",
        width="stretch",
    )
    if own is not None:
        right.button(
            "Use this server's CIFAR-10",
            icon=":material/folder_open:",
            on_click=_use_own_cifar,
            key="cnn_use_own_cifar",
            help=own.source,
            width="stretch",
        )
