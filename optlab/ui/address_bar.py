"""The address bar: a page's share link, read on a session's first visit and mirrored.

Every page keeps its URL equal to the link of its current settings (one
`optlab.links` table per page), so the address bar is always a share link.
"""

from __future__ import annotations

import streamlit as st

from optlab.links.table import Params
from optlab.ui.room import push
from optlab.ui.room.state import with_room
from optlab.ui.view import with_view


def link_params() -> dict[str, list[str]]:
    """The page's query parameters, each key with all its values."""
    return {k: st.query_params.get_all(k) for k in st.query_params}


def mirror_url(params: Params) -> None:
    """Makes the URL's query hold exactly ``params`` (a share link of the page), the
    view the session is in (``view=presenter``) and its room (``room=CODE``), and
    sends the presenter's push if this run asked for one: this is where a page's
    current settings become its link, after the room panel drew its button."""
    params = with_view(with_room(dict(params)))
    wanted = {k: v if isinstance(v, list) else [v] for k, v in params.items()}
    if link_params() != wanted:
        st.query_params.from_dict(params)
    push.send(wanted)
