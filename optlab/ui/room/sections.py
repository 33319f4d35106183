"""The Room page's sections: create or join, the presenter's room, the attendee's room.

The presenter's room shows the code big enough for the back row of a
projector, the attendees' link, the challenge form and a leaderboard that
polls the room; any entry can be opened on the projector. Every presenter
action goes through the store, which checks the token.
"""

from __future__ import annotations

import contextlib
import html
from urllib.parse import urlsplit

import pandas as pd
import streamlit as st

from optlab.links.table import parse_float
from optlab.numbers import number_text
from optlab.rooms import DEFAULT_TARGET, ROOM_KEY, Challenge, Entry, RoomError
from optlab.surface.surfaces import SURFACES, get_surface
from optlab.ui.room import state as room
from optlab.ui.room.panel import ROOM_PATH, join, open_setup
from optlab.ui.turns import fragment

#: The playground's script (a leaderboard entry opens there).
PLAYGROUND = "pages/playground.py"
#: The room code's style: monospace, letters spaced, about 8 rem tall on a projector.
_CODE_STYLE = (
    "font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-weight: 700; "
    "font-size: 7rem; line-height: 1.05; letter-spacing: 0.18em; margin: 0.1em 0 0.2em;"
)


def _attendee_link(code: str) -> str:
    """The link attendees open: the Room page of this server with the code."""
    url = st.context.url or ""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    return f"{origin}/{ROOM_PATH}?{ROOM_KEY}={code}"


def start() -> None:
    """Outside any room: create one (the presenter) or join one with its code."""
    present, attend = st.columns(2, gap="large")
    with present:
        st.subheader("Present")
        st.write(
            "Open a room for your class: they join with its code, you push setups "
            "to them and pose challenges."
        )
        if st.button("Create a room", type="primary", icon=":material/co_present:"):
            try:
                keys = room.room_store().create()
            except RoomError as err:
                st.error(str(err), icon=":material/error:")
            else:
                room.enter(keys.code, token=keys.token)
                st.rerun()
    with attend:
        st.subheader("Join")
        pending = st.session_state.get(room.PENDING, "")
        with st.form("room_join"):
            code = st.text_input("Room code", value=pending, max_chars=20, key="room_join_code")
            name = st.text_input(
                "Your name",
                max_chars=room.room_store().caps.room_name_length,
                help="Shown on the leaderboard.",
                key="room_join_name",
            )
            if st.form_submit_button("Join", type="primary"):
                join(code, name)


def _show_code(code: str) -> None:
    st.html(f'<div data-testid="room-code" style="{_CODE_STYLE}">{html.escape(code)}</div>')


def _challenge_form(me: room.Member) -> None:
    keys = [s.key for s in SURFACES if s.f_min is not None]
    with st.form("room_pose"):
        st.markdown("**Pose a playground challenge**")
        left, right = st.columns(2)
        surface = left.selectbox(
            "Surface",
            keys,
            format_func=lambda k: get_surface(k).label,
            key="room_pose_surface",
        )
        target = right.text_input(
            "Reach f below", value=f"{DEFAULT_TARGET:g}", key="room_pose_target"
        )
        if st.form_submit_button("Pose the challenge", type="primary"):
            try:
                challenge = Challenge(surface, parse_float(target, "target"))
                room.room_store().pose(me.code, me.token, challenge)
            except ValueError as err:
                st.error(str(err), icon=":material/error:")
            else:
                st.rerun()


def _entries_table(entries: list[Entry]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "rank": rank,
                "name": e.name,
                "optimizer": e.optimizer,
                "settings": e.settings,
                "steps": number_text(e.steps),
            }
            for rank, e in enumerate(entries, 1)
        ]
    )


@fragment(run_every=room.POLL_S)
def _leaderboard(code: str) -> None:
    try:
        entries = room.room_store().leaderboard(code)
    except RoomError as err:
        st.warning(str(err))
        return
    st.subheader("Leaderboard")
    if not entries:
        st.info(
            "No entries yet: attendees submit from the playground.", icon=":material/hourglass:"
        )
        return
    st.table(_entries_table(entries), hide_index=True)
    by_id = {e.id: e for e in entries}
    choice = st.selectbox(
        "Show an entry on the projector",
        list(by_id),
        format_func=lambda i: f"{by_id[i].name}: {by_id[i].optimizer}, {by_id[i].steps} steps",
        key="room_show_entry",
    )
    if st.button("Open it in the playground", key="room_show", icon=":material/slideshow:"):
        open_setup(PLAYGROUND, "", by_id[choice].link)


def presenter(me: room.Member) -> None:
    """The presenter's room: the code, the link, pushing, the challenge, the board."""
    store = room.room_store()
    try:
        now = store.state(me.code)
    except RoomError as err:
        st.error(str(err), icon=":material/error:")
        return
    st.caption("Room code")
    _show_code(me.code)
    link = _attendee_link(me.code)
    st.markdown(f"Attendees open **{link}** or type the code on the Room page.")
    people = "attendee has" if now.attendees == 1 else "attendees have"
    st.write(f"{now.attendees} {people} joined.")
    st.caption(
        "Your own address holds your presenter token (host=...): share the link above, "
        "never your address bar. To share a setup, open its page and press **Push this "
        "page to the room** in the sidebar."
    )
    if now.setup is not None:
        page = now.setup.page or "the playground"
        st.write(f"Last pushed: setup {now.setup_version}, {page}.")
    if now.challenge is None:
        _challenge_form(me)
    else:
        st.markdown(f"### Challenge\n{now.challenge.text}.")
        if st.button("Close the challenge", key="room_close_challenge"):
            try:
                store.close_challenge(me.code, me.token)
            except RoomError as err:
                st.error(str(err), icon=":material/error:")
            else:
                st.rerun()
        _leaderboard(me.code)
    st.divider()
    if st.button("Close the room", key="room_close", icon=":material/logout:"):
        try:
            store.close_room(me.code, me.token)
        except RoomError as err:
            st.error(str(err), icon=":material/error:")
        room.leave_session()
        st.rerun()


def attendee(me: room.Member) -> None:
    """An attendee's room: the code, their name, the challenge, and leaving."""
    store = room.room_store()
    try:
        now = store.state(me.code)
    except RoomError as err:
        st.error(str(err), icon=":material/error:")
        return
    st.markdown(f"You are in room **{me.code}** as **{html.escape(me.name)}**.")
    st.write(
        "When the presenter shares a setup, a notice with a **Load** button appears in "
        "the sidebar; your own work stays until you press it."
    )
    if now.challenge is not None:
        st.markdown(f"### Challenge\n{now.challenge.text}.")
        st.write(
            "Run it on the playground, then press **Submit to the challenge** under "
            "the summary: the server reruns your link to check the steps."
        )
    if st.button("Leave the room", key="room_leave", icon=":material/logout:"):
        # A room that is gone already needs no leaving.
        with contextlib.suppress(RoomError):
            store.leave(me.code, me.attendee)
        room.leave_session()
        st.rerun()
