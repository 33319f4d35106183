"""The room panel in every page's sidebar, and the room in every page's address bar.

`room_panel` runs from the entry point before the page: it reads the room
from the link (``?room=CODE`` offers to join; ``&host=TOKEN`` makes the
session the presenter once the store accepts the token), keeps the room in
the address bar across page switches, and draws the panel: a join form, the
presenter's "Push this page" button, or an attendee's notice of a new setup,
which polls the room and never replaces the attendee's work until they press
Load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from optlab.rooms import HOST_KEY, ROOM_KEY, RoomError, normalise_code
from optlab.ui.address_bar import link_params
from optlab.ui.cnn.settings import INITIALISED as CNN_INITIALISED
from optlab.ui.lessons.page import INITIALISED as LESSONS_INITIALISED
from optlab.ui.playground.settings import INITIALISED as PLAYGROUND_INITIALISED
from optlab.ui.room import push
from optlab.ui.room import state as room
from optlab.ui.studies.settings import INITIALISED as STUDIES_INITIALISED
from optlab.ui.turns import fragment
from optlab.ui.view import with_view

#: The Room page's URL path (the presenter pushes other pages, not this one).
ROOM_PATH = "rooms"
#: Per page URL path, the session key that says the page read its link already:
#: Load drops it, so the page reads the pushed link as on a first visit.
FIRST_VISIT = {
    "": PLAYGROUND_INITIALISED,
    "cnn-lab": CNN_INITIALISED,
    "sweeps": "sw_initialised",
    "studies": STUDIES_INITIALISED,
    "lessons": LESSONS_INITIALISED,
}


def _read_link() -> None:
    """Takes the room and the presenter's token from the address bar."""
    state = st.session_state
    code_text, token = st.query_params.get(ROOM_KEY), st.query_params.get(HOST_KEY)
    if not code_text:
        return
    try:
        code = normalise_code(code_text)
    except ValueError as err:
        room.flash(f"This link's room could not be used: {err}", "error")
        del st.query_params[ROOM_KEY]
        st.query_params.pop(HOST_KEY, None)
        return
    me = room.member()
    if me is not None and me.code == code and (not token or me.token == token):
        return
    if token:
        if room.room_store().is_presenter(code, token):
            room.enter(code, token=token)
            return
        room.flash(
            f"This presenter link is not valid for room {code} (a wrong token, or the "
            "room has expired); you can join it as an attendee.",
            "error",
        )
        del st.query_params[HOST_KEY]
    if me is None and state.get(room.PENDING) != code:
        state[room.PENDING] = code


def _check_membership() -> None:
    """Leaves a room that expired, was closed, or no longer lists the attendee."""
    me = room.member()
    if me is None:
        return
    store = room.room_store()
    try:
        now = store.state(me.code)
    except RoomError as err:
        room.leave_session()
        room.flash(f"You left the room: {err}", "warning")
        return
    if me.attendee is not None and store.attendee(me.code, me.attendee) is None:
        room.leave_session()
        room.flash(f"You are no longer in room {me.code}; join it again to take part.", "warning")
        return
    st.session_state[room.SHOWN_CHALLENGE] = now.challenge_id


def keep_room_in_link() -> None:
    """The address bar holds the session's room (page switches drop it), and the
    presenter's token only in the presenter's own address bar."""
    current = link_params()
    kept = {k: v for k, v in current.items() if k not in (ROOM_KEY, HOST_KEY)}
    wanted = {**kept, **{k: [v] for k, v in room.with_room({}).items()}}
    if wanted != current:
        # One update, so the browser's history gets one entry, not one per key.
        st.query_params.from_dict(wanted)


def open_setup(page: StreamlitPage | str, url_path: str, query: Mapping[str, list[str]]) -> None:
    """Opens ``page`` (whose URL path is ``url_path``) with a share link's query, as on
    a first visit; keeps the session's view and room in the address bar."""
    if flag := FIRST_VISIT.get(url_path):
        st.session_state.pop(flag, None)
    st.switch_page(page, query_params=with_view(room.with_room(dict(query))))


def join(code: str, name: str) -> None:
    """Joins ``code`` as ``name`` and reruns, or shows why not."""
    try:
        attendee = room.room_store().join(code, name)
    except RoomError as err:
        st.error(str(err), icon=":material/error:")
        return
    room.enter(attendee.code, attendee=attendee.id, name=attendee.name)
    taken = "" if attendee.name == " ".join(name.split()) else " (that name was taken)"
    room.flash(f"You joined room {attendee.code} as {attendee.name}{taken}.", "success")
    st.rerun()


def _join_form(code: str) -> None:
    with st.form("room_join_link", border=False):
        st.markdown(f"**Join room {code}**")
        name = st.text_input(
            "Your name", max_chars=room.room_store().caps.room_name_length, key="room_link_name"
        )
        if st.form_submit_button("Join", type="primary"):
            join(code, name)


def _presenter_panel(me: room.Member, page: StreamlitPage, unsent: bool) -> None:
    st.markdown(f"**Room {me.code}** · you present")
    if page.url_path == ROOM_PATH:
        st.caption("Open the page to share, then push it from here.")
        return
    if unsent:
        st.warning(push.NOT_PUSHED, icon=":material/error:")
    if st.button("Push this page to the room", key="room_push", icon=":material/cast:"):
        # Sent once the page mirrors its link in this run (see optlab.ui.room.push):
        # a setting changed with this click is not in the address bar yet.
        push.ask(page.url_path)


@fragment(run_every=room.POLL_S)
def _attendee_panel(pages: Sequence[StreamlitPage]) -> None:
    me = room.member()
    if me is None:
        return
    try:
        now = room.room_store().state(me.code)
    except RoomError as err:
        st.warning(str(err))
        return
    if now.challenge_id != st.session_state.get(room.SHOWN_CHALLENGE):
        st.rerun()  # the whole page: the playground shows the new challenge's button
    st.markdown(f"**Room {me.code}** · {me.name}")
    if now.challenge is not None:
        st.caption(f"Challenge: {now.challenge.text}.")
    seen = st.session_state.get(room.SEEN, 0)
    if now.setup is None or now.setup_version <= seen:
        return
    target = next((p for p in pages if p.url_path == now.setup.page), None)
    title = target.title if target is not None else "a page this server does not have"
    st.info(f"The presenter shared a new setup: {title}.", icon=":material/cast:")
    load, dismiss = st.columns(2)
    if load.button("Load", key="room_load", type="primary", disabled=target is None):
        st.session_state[room.SEEN] = now.setup_version
        open_setup(target, now.setup.page, now.setup.query)
    if dismiss.button("Dismiss", key="room_dismiss"):
        st.session_state[room.SEEN] = now.setup_version
        st.rerun(scope="fragment")


def room_panel(page: StreamlitPage, pages: Sequence[StreamlitPage]) -> None:
    """Every run, before the page: reads the room from the link, keeps it there, and
    draws the sidebar's room panel (nothing for a session outside any room).

    Args:
        page: The page about to run (the presenter pushes its link).
        pages: Every page of the app (a pushed setup names one by URL path).
    """
    # A push asked for in the last run and never sent: its page stopped before it
    # stated a link (invalid settings).
    unsent = push.left_over() is not None
    _read_link()
    _check_membership()
    keep_room_in_link()
    me, pending = room.member(), st.session_state.get(room.PENDING)
    flash = st.session_state.pop(room.FLASH, None)
    if me is None and not pending and flash is None:
        return
    with st.sidebar:
        st.divider()
        if flash is not None:
            kind, message = flash
            getattr(st, kind)(message)
        if me is None:
            if pending:
                _join_form(pending)
        elif me.presenter:
            _presenter_panel(me, page, unsent)
        else:
            _attendee_panel(pages)
