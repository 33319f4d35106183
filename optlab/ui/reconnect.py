"""A page that outlived its server session keeps the numbers its browser sent.

Streamlit keeps a closed page's session for ``server.disconnectedSessionTTL``
(120 s by default). A page that comes back later (a laptop woken from sleep, a
stream the server's keep-alive dropped from a starved tab, a replica that died
behind the proxy) gets a new, empty session. The browser does not rerun on that
reconnection: its first message to the new session is the rerun of the user's
next change, carrying every widget's value, the change included.

Each page fills its widgets from the share link on a session's first run, and
the address bar mirrors the *previous* run, so it would overwrite that change:
the box the user had just typed into snaps back, and the page reruns as before.
Each page's first-visit set-up ends with `keep_sent_numbers`, which, on a
session's first run, writes the number boxes' values the browser sent over
the link's; the entry point's `first_run` marks every session seen after its
first run, whichever page it ran.

Only ``st.number_input`` values are carried: their wire format (a double) is
theirs alone, and a number changes no page's layout. A choice (a selectbox, a
radio) can change which widgets exist and runs an ``on_change`` callback that a
new session has not registered, so its pending change is left to the link.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, MutableMapping
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.state.common import is_element_id, user_key_from_element_id

#: Set once a session has had its first run.
SEEN = "session_seen"


def sent_numbers() -> dict[str, float]:
    """The values of the keyed number inputs the browser sent with this run (none on
    a fresh page: its first rerun carries no widget state)."""
    ctx = get_script_run_ctx()
    if ctx is None:
        return {}
    numbers = {}
    for widget in ctx.session_state.get_widget_states():
        if widget.WhichOneof("value") != "double_value" or not is_element_id(widget.id):
            continue
        key = user_key_from_element_id(widget.id)
        if key is not None:
            numbers[key] = widget.double_value
    return numbers


@contextlib.contextmanager
def first_run() -> Iterator[None]:
    """Around a page's run: after it, however it ended, the session has had its first
    run, so a page first visited later (after a page with no set-up) does not take
    the widgets its navigation sent for a reconnection's."""
    try:
        yield
    finally:
        st.session_state[SEEN] = True


def keep_sent_numbers(state: MutableMapping[str, Any]) -> None:
    """On a session's first run, writes the numbers the browser sent over the values
    the page's set-up just wrote from its link or defaults (`write_numbers`).

    A page script can also run without the entry point: a server process's first
    run is in Streamlit's pages/-folder mode (see app.py), which runs a page file
    named like the page's URL directly, as a replica that just started does for a
    page that failed over to it. That run is a session's first too.
    """
    if state.get(SEEN):
        return
    state[SEEN] = True
    write_numbers(state, sent_numbers())


def write_numbers(state: MutableMapping[str, Any], numbers: dict[str, float]) -> None:
    """Writes ``numbers`` only where the set-up wrote a number under the same key, in
    the set-up's type (an int stays an int, and takes no fraction)."""
    for key, value in numbers.items():
        current = state.get(key)
        if isinstance(current, bool) or not isinstance(current, int | float):
            continue
        if isinstance(current, int):
            if not float(value).is_integer():
                continue
            value = int(value)
        state[key] = value
