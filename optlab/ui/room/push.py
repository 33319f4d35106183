"""The presenter's push: asked for in the sidebar, sent once the page has stated its link.

The room panel draws "Push this page to the room" from the entry point, before
the page runs; a setting changed in the same interaction (a number typed and
the button clicked at once arrive together) reaches the address bar only when
the page mirrors its link, later in that run. So the button only asks for a
push, and the push is sent with the link the page states in this run:
`optlab.ui.address_bar.mirror_url` sends it, and the entry point sends it after
a page that mirrors no link (the Update rules page). A page whose settings do
not validate states no link and stops; its ask is left over, and the next run's
panel says that nothing was pushed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from optlab.rooms import RoomError, Setup
from optlab.ui.room import state as room

#: Session key: the URL path of the page whose push the presenter asked for.
ASKED = "room_push_asked"
#: What the presenter reads when the page stated no link to push.
NOT_PUSHED = "Nothing was pushed: this page's settings have an error. Fix it and push again."


def ask(url_path: str) -> None:
    """Asks for a push of the page at ``url_path`` once it states its link in this run."""
    st.session_state[ASKED] = url_path


def left_over() -> str | None:
    """The page whose push the last run asked for and never sent (forgotten now)."""
    return st.session_state.pop(ASKED, None)


def send(params: Mapping[str, Sequence[str] | str]) -> None:
    """Pushes ``params``, the page's current link, if the presenter asked for a push in
    this run (once); personal keys (room, token, view) never leave the session."""
    url_path = st.session_state.pop(ASKED, None)
    me = room.member()
    if url_path is None or me is None or not me.presenter:
        return
    try:
        version = room.room_store().push(me.code, me.token, Setup.from_query(url_path, params))
    except (RoomError, ValueError) as err:
        st.toast(f"Not pushed: {err}", icon=":material/error:")
    else:
        st.toast(f"Pushed setup {version} to room {me.code}.", icon=":material/cast:")


def after_page(params: Mapping[str, Sequence[str] | str], *, mirrors: bool) -> None:
    """At the end of a run whose page ran to its end: a page that ``mirrors`` no link is
    pushed as its address bar stands (``params``); a page that does mirror one but
    stated none in this run had invalid settings, so nothing is pushed."""
    if not mirrors:
        send(params)
    elif left_over() is not None:
        st.toast(NOT_PUSHED, icon=":material/error:")
