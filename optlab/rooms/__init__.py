"""Workshop rooms: a presenter shares setups and poses challenges to a class.

The presenter opens a room (`RoomStore.create`: a short code for the class and
a token for the presenter's URL only), pushes any page's share link to it
(`Setup`) and poses playground challenges (`Challenge`). Attendees join with
the code and a display name, load pushed setups when they choose, and submit
playground links, which the server verifies by running them (`verify`) before
they reach the leaderboard. Storage is SQLite: in memory for one server
process, or a shared file (``OPTLAB_ROOMS_DB``) for replicas.
"""

from optlab.rooms.challenge import (
    DEFAULT_TARGET,
    Challenge,
    Result,
    config_for,
    first_steps,
    reached_in,
    verify,
)
from optlab.rooms.identity import CODE_ALPHABET, CODE_LENGTH, clean_name, normalise_code
from optlab.rooms.setups import HOST_KEY, PERSONAL_KEYS, ROOM_KEY, Setup
from optlab.rooms.store import (
    DB_ENV,
    Attendee,
    Entry,
    Keys,
    NotPresenter,
    RoomError,
    RoomState,
    RoomStore,
)

__all__ = [
    "CODE_ALPHABET",
    "CODE_LENGTH",
    "DB_ENV",
    "DEFAULT_TARGET",
    "HOST_KEY",
    "PERSONAL_KEYS",
    "ROOM_KEY",
    "Attendee",
    "Challenge",
    "Entry",
    "Keys",
    "NotPresenter",
    "Result",
    "RoomError",
    "RoomState",
    "RoomStore",
    "Setup",
    "clean_name",
    "config_for",
    "first_steps",
    "normalise_code",
    "reached_in",
    "verify",
]
