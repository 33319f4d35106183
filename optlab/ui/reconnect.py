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
The entry point wraps a session's first run in `first_run`, which notes the
number boxes' values the browser sent; each page's first-visit set-up ends
with `keep_sent_numbers`, which writes them over the link's.

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

#: Set on a session's first run: later runs are not first runs.
SEEN = "session_seen"
#: The number boxes' values the browser sent with a session's first run, by key.
SENT = "sent_numbers"


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
    """Around a page's run: on a session's first run, what the browser sent is
    noted for the page's set-up (`keep_sent_numbers`), and forgotten after it."""
    state = st.session_state
    if state.get(SEEN):
        yield
        return
    state[SEEN] = True
    state[SENT] = sent_numbers()
    try:
        yield
    finally:
        state.pop(SENT, None)


def keep_sent_numbers(state: MutableMapping[str, Any]) -> None:
    """Writes the numbers the browser sent with a session's first run over the values
    the page's set-up just wrote from its link or defaults: only where the set-up
    wrote a number under the same key, in the set-up's type (an int stays an int).

    A page script can run without the entry point: a server process's first run is
    in Streamlit's pages/-folder mode (see app.py), which runs a page file named like
    the page's URL directly, as a replica that just started does for a page that
    failed over to it. Such a run is a session's first, and reads the numbers here.
    """
    if SENT in state:
        numbers = state.pop(SENT)
    elif not state.get(SEEN):
        state[SEEN] = True
        numbers = sent_numbers()
    else:
        return
    for key, value in numbers.items():
        current = state.get(key)
        if isinstance(current, bool) or not isinstance(current, int | float):
            continue
        if isinstance(current, int):
            if not float(value).is_integer():
                continue
            value = int(value)
        state[key] = value
