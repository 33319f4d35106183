"""A session's place in a room: the process-wide store and the session's keys.

A session is in at most one room, either as its presenter (it holds the
token, checked by the store on every presenter action) or as an attendee (it
holds the attendee's id). The room's code, and the presenter's token, ride in
the address bar (``?room=CODE``, ``&host=TOKEN``) on every page, so a reload
or a shared link keeps the session in its room.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from optlab.rooms import HOST_KEY, ROOM_KEY, RoomStore

#: Session keys: the room, the presenter's token, the attendee's id and name.
CODE, TOKEN, ATTENDEE, NAME = "room_code", "room_token", "room_attendee", "room_name"
#: A room code from a link (``?room=CODE``) the session has not joined yet.
PENDING = "room_pending"
#: The last pushed setup's version the attendee loaded or dismissed.
SEEN = "room_seen_setup"
#: The challenge the page showed on its last full run (a new one reruns the page,
#: so the playground's submit button appears without a click).
SHOWN_CHALLENGE = "room_shown_challenge"
#: A message for the next run (set before a rerun), shown by the panel.
FLASH = "room_flash"
#: Seconds between two looks at the room (pushed setups, the leaderboard).
POLL_S = 2.0


@st.cache_resource(show_spinner=False)
def room_store() -> RoomStore:
    """The server's rooms: in memory, or the file ``$OPTLAB_ROOMS_DB`` names."""
    return RoomStore.from_env()


@dataclass(frozen=True)
class Member:
    """The session's place in a room.

    Attributes:
        code: The room's code.
        token: The presenter's token (None for an attendee).
        attendee: The attendee's id (None for the presenter).
        name: The attendee's display name ("" for the presenter).
    """

    code: str
    token: str | None
    attendee: str | None
    name: str

    @property
    def presenter(self) -> bool:
        """Whether the session presents the room."""
        return self.token is not None


def member() -> Member | None:
    """The session's room membership, if any."""
    state = st.session_state
    code = state.get(CODE)
    if not code:
        return None
    return Member(code, state.get(TOKEN), state.get(ATTENDEE), state.get(NAME, ""))


def enter(
    code: str, *, token: str | None = None, attendee: str | None = None, name: str = ""
) -> None:
    """Makes the session the presenter (with ``token``) or an attendee of ``code``."""
    state = st.session_state
    state[CODE], state[TOKEN], state[ATTENDEE], state[NAME] = code, token, attendee, name
    state.pop(PENDING, None)
    # What was pushed before joining is offered too: the attendee has seen nothing yet.
    state[SEEN] = 0


def leave_session() -> None:
    """Forgets the session's room, here and in the address bar (the store is told by
    the caller), so the next run does not offer to join it again."""
    for key in (CODE, TOKEN, ATTENDEE, NAME, PENDING, SEEN, SHOWN_CHALLENGE):
        st.session_state.pop(key, None)
    for key in (ROOM_KEY, HOST_KEY):
        st.query_params.pop(key, None)


def flash(message: str, kind: str = "info") -> None:
    """Leaves ``message`` for the panel to show on the next run."""
    st.session_state[FLASH] = (kind, message)


def with_room(params: dict[str, Any]) -> dict[str, Any]:
    """A page's link parameters, with the session's room (and the presenter's token)."""
    me = member()
    if me is not None:
        extra = {ROOM_KEY: me.code, **({HOST_KEY: me.token} if me.token else {})}
    elif pending := st.session_state.get(PENDING):
        extra = {ROOM_KEY: pending}
    else:
        return params
    return {**{k: v for k, v in params.items() if k not in (ROOM_KEY, HOST_KEY)}, **extra}
