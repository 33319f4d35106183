"""Rooms, attendees, pushed setups, challenges and their entries, in SQLite.

One implementation serves both deployments:

- one server process (the default): an in-memory database owned by the
  process-wide store;
- several ``streamlit run`` replicas behind a load balancer: ``OPTLAB_ROOMS_DB``
  names a file in the shared runs folder, opened in WAL mode with a busy
  timeout, so every replica sees every room.

Streamlit runs each session's script in its own thread, so one connection is
shared under a lock; writes run in ``BEGIN IMMEDIATE`` transactions, so two
processes never both read and then write the same room. Every presenter
action checks the token here, in the engine (`NotPresenter` otherwise), and a
room nobody used for `Caps.room_idle_s` expires.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from optlab.caps import CAPS, Caps
from optlab.rooms.challenge import Challenge, Result, verify
from optlab.rooms.identity import (
    clean_name,
    new_code,
    new_token,
    normalise_code,
    token_hash,
    token_matches,
    unique_name,
)
from optlab.rooms.setups import Setup

#: The environment variable naming a database file shared by replicas.
DB_ENV = "OPTLAB_ROOMS_DB"
#: How long a write waits for another process's transaction (milliseconds).
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    code TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    created REAL NOT NULL,
    active REAL NOT NULL,
    setup TEXT,
    setup_version INTEGER NOT NULL DEFAULT 0,
    challenge_id INTEGER
);
CREATE TABLE IF NOT EXISTS attendees (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    joined REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attendees_by_room ON attendees (code);
CREATE TABLE IF NOT EXISTS challenges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code TEXT NOT NULL,
    spec TEXT NOT NULL,
    posed REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    challenge_id INTEGER NOT NULL,
    attendee_id TEXT NOT NULL,
    name TEXT NOT NULL,
    optimizer TEXT NOT NULL,
    settings TEXT NOT NULL,
    steps INTEGER NOT NULL,
    link TEXT NOT NULL,
    submitted REAL NOT NULL,
    UNIQUE (challenge_id, attendee_id, settings)
);
"""


class RoomError(ValueError):
    """A room action that cannot be done, with a message for the person who tried."""


class NotPresenter(RoomError):
    """A presenter action without the room's presenter token."""


@dataclass(frozen=True)
class Keys:
    """A new room's code and its presenter token (the token is shown only once)."""

    code: str
    token: str


@dataclass(frozen=True)
class Attendee:
    """Someone who joined a room.

    Attributes:
        id: A random identifier the attendee's session keeps.
        code: The room's code.
        name: The display name (with a number added if the typed one was taken).
    """

    id: str
    code: str
    name: str


@dataclass(frozen=True)
class RoomState:
    """What everyone in a room sees.

    Attributes:
        code: The room's code.
        attendees: How many have joined.
        setup: The last pushed setup, if any.
        setup_version: 0 before any push, then one more per push.
        challenge: The open challenge, if any.
        challenge_id: Its identifier (entries belong to it).
    """

    code: str
    attendees: int
    setup: Setup | None
    setup_version: int
    challenge: Challenge | None
    challenge_id: int | None


@dataclass(frozen=True)
class Entry:
    """One leaderboard row: an attendee's optimizer and its verified steps."""

    id: int
    name: str
    optimizer: str
    settings: str
    steps: int
    link: dict[str, list[str]]
    submitted: float


def _challenge_json(challenge: Challenge) -> str:
    return json.dumps(
        {"surface": challenge.surface, "target": challenge.target, "start": challenge.start}
    )


def _challenge_from_json(text: str) -> Challenge:
    data = json.loads(text)
    return Challenge(data["surface"], data["target"], tuple(data["start"]))


class RoomStore:
    """Every room of a server (or of several replicas sharing one file).

    Args:
        path: A database file shared by replicas; None for an in-memory database.
        caps: The limits (rooms, attendees, entries, name length, idle time).
        clock: Seconds since the epoch (tests inject their own).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        caps: Caps = CAPS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.caps, self.clock = caps, clock
        self.path = None if path is None else os.fspath(path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.path or ":memory:",
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # transactions are opened explicitly
            check_same_thread=False,  # shared by sessions' threads, under the lock
        )
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if self.path is not None:
                self._db.execute("PRAGMA journal_mode = WAL")
            with self._write() as db:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RoomStore:
        """The store ``$OPTLAB_ROOMS_DB`` names (a shared file), else an in-memory one."""
        env = os.environ if environ is None else environ
        path = env.get(DB_ENV, "").strip()
        return cls(path or None)

    def close(self) -> None:
        """Closes the connection."""
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: the lock for this process's threads, ``BEGIN IMMEDIATE``
        for other processes."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    # --- rooms ----------------------------------------------------------------------

    def _expired(self, active: float) -> bool:
        return self.clock() - active > self.caps.room_idle_s

    def _delete(self, db: sqlite3.Connection, codes: Sequence[str]) -> None:
        for code in codes:
            db.execute(
                "DELETE FROM entries WHERE challenge_id IN "
                "(SELECT id FROM challenges WHERE code = ?)",
                (code,),
            )
            for table in ("challenges", "attendees", "rooms"):
                db.execute(f"DELETE FROM {table} WHERE code = ?", (code,))

    def _purge(self, db: sqlite3.Connection) -> None:
        cutoff = self.clock() - self.caps.room_idle_s
        old = [r["code"] for r in db.execute("SELECT code FROM rooms WHERE active < ?", (cutoff,))]
        self._delete(db, old)

    def _room_row(self, db: sqlite3.Connection, code: object) -> sqlite3.Row:
        """The room's row; raises RoomError for a malformed, unknown or expired code."""
        try:
            code = normalise_code(code)
        except ValueError as err:
            raise RoomError(str(err)) from None
        row = db.execute("SELECT * FROM rooms WHERE code = ?", (code,)).fetchone()
        if row is None:
            raise RoomError(f"There is no room {code} on this server; check the code")
        if self._expired(row["active"]):
            hours = self.caps.room_idle_s / 3600
            raise RoomError(f"Room {code} has expired (unused for {hours:g} h); ask for a new code")
        return row

    def _touch(self, db: sqlite3.Connection, code: str) -> None:
        db.execute("UPDATE rooms SET active = ? WHERE code = ?", (self.clock(), code))

    def _presenter_row(self, db: sqlite3.Connection, code: object, token: object) -> sqlite3.Row:
        row = self._room_row(db, code)
        if not token_matches(token, row["token_hash"]):
            raise NotPresenter(f"Only the presenter of room {row['code']} can do that")
        return row

    def create(self) -> Keys:
        """Opens a room; returns its code and the presenter's token.

        Raises:
            RoomError: the server has `Caps.rooms` rooms open.
        """
        with self._write() as db:
            self._purge(db)
            (count,) = db.execute("SELECT COUNT(*) FROM rooms").fetchone()
            if count >= self.caps.rooms:
                raise RoomError(
                    f"This server has its most rooms open ({self.caps.rooms}); "
                    "close one or wait until an unused one expires"
                )
            code = new_code()
            while db.execute("SELECT 1 FROM rooms WHERE code = ?", (code,)).fetchone():
                code = new_code()
            token, now = new_token(), self.clock()
            db.execute(
                "INSERT INTO rooms (code, token_hash, created, active) VALUES (?, ?, ?, ?)",
                (code, token_hash(token), now, now),
            )
        return Keys(code, token)

    def close_room(self, code: object, token: object) -> None:
        """Closes a room for everyone (presenter only)."""
        with self._write() as db:
            row = self._presenter_row(db, code, token)
            self._delete(db, [row["code"]])

    def is_presenter(self, code: object, token: object) -> bool:
        """Whether ``token`` is the presenter token of a live room ``code``."""
        try:
            with self._read() as db:
                self._presenter_row(db, code, token)
        except RoomError:
            return False
        return True

    def state(self, code: object) -> RoomState:
        """What the room shows now (reading does not keep a room alive).

        Raises:
            RoomError: a malformed, unknown or expired code.
        """
        with self._read() as db:
            row = self._room_row(db, code)
            (count,) = db.execute(
                "SELECT COUNT(*) FROM attendees WHERE code = ?", (row["code"],)
            ).fetchone()
            challenge = None
            if row["challenge_id"] is not None:
                spec = db.execute(
                    "SELECT spec FROM challenges WHERE id = ?", (row["challenge_id"],)
                ).fetchone()
                challenge = _challenge_from_json(spec["spec"])
        setup = None if row["setup"] is None else Setup.from_json(row["setup"])
        return RoomState(
            row["code"], count, setup, row["setup_version"], challenge, row["challenge_id"]
        )

    # --- attendees ------------------------------------------------------------------

    def join(self, code: object, name: object) -> Attendee:
        """Adds an attendee; a name already taken in the room gets a number (``Ada 2``).

        Raises:
            RoomError: a bad code or name, an expired room, or a full one.
        """
        most = self.caps.room_name_length
        try:
            name = clean_name(name, most)
        except ValueError as err:
            raise RoomError(str(err)) from None
        with self._write() as db:
            row = self._room_row(db, code)
            code = row["code"]
            taken = {
                r["name"] for r in db.execute("SELECT name FROM attendees WHERE code = ?", (code,))
            }
            if len(taken) >= self.caps.room_attendees:
                raise RoomError(
                    f"Room {code} is full ({self.caps.room_attendees} attendees); ask the presenter"
                )
            attendee = Attendee(new_token(), code, unique_name(name, taken, most))
            db.execute(
                "INSERT INTO attendees (id, code, name, joined) VALUES (?, ?, ?, ?)",
                (attendee.id, code, attendee.name, self.clock()),
            )
            self._touch(db, code)
        return attendee

    def attendee(self, code: object, attendee_id: object) -> Attendee | None:
        """The attendee ``attendee_id`` of a live room, or None (left, or room gone)."""
        try:
            with self._read() as db:
                row = self._room_row(db, code)
                found = db.execute(
                    "SELECT name FROM attendees WHERE id = ? AND code = ?",
                    (str(attendee_id), row["code"]),
                ).fetchone()
        except RoomError:
            return None
        return None if found is None else Attendee(str(attendee_id), row["code"], found["name"])

    def leave(self, code: object, attendee_id: object) -> None:
        """Removes an attendee (their leaderboard entries stay)."""
        with self._write() as db:
            row = self._room_row(db, code)
            db.execute(
                "DELETE FROM attendees WHERE id = ? AND code = ?", (str(attendee_id), row["code"])
            )

    # --- the presenter's actions ----------------------------------------------------

    def push(self, code: object, token: object, setup: Setup) -> int:
        """Shares a setup with the room; returns its version (one more per push).

        Raises:
            NotPresenter: without the room's token.
        """
        if not isinstance(setup, Setup):
            raise RoomError(f"setup: expected a Setup, got {type(setup).__name__}")
        with self._write() as db:
            row = self._presenter_row(db, code, token)
            version = row["setup_version"] + 1
            db.execute(
                "UPDATE rooms SET setup = ?, setup_version = ?, active = ? WHERE code = ?",
                (setup.to_json(), version, self.clock(), row["code"]),
            )
        return version

    def pose(self, code: object, token: object, challenge: Challenge) -> int:
        """Opens a challenge (closing the one before); returns its identifier.

        Raises:
            NotPresenter: without the room's token.
        """
        if not isinstance(challenge, Challenge):
            raise RoomError(f"challenge: expected a Challenge, got {type(challenge).__name__}")
        with self._write() as db:
            row = self._presenter_row(db, code, token)
            cursor = db.execute(
                "INSERT INTO challenges (code, spec, posed) VALUES (?, ?, ?)",
                (row["code"], _challenge_json(challenge), self.clock()),
            )
            db.execute(
                "UPDATE rooms SET challenge_id = ?, active = ? WHERE code = ?",
                (cursor.lastrowid, self.clock(), row["code"]),
            )
        return int(cursor.lastrowid)

    def close_challenge(self, code: object, token: object) -> None:
        """Closes the open challenge (its leaderboard stays readable by identifier).

        Raises:
            NotPresenter: without the room's token.
        """
        with self._write() as db:
            row = self._presenter_row(db, code, token)
            db.execute(
                "UPDATE rooms SET challenge_id = NULL, active = ? WHERE code = ?",
                (self.clock(), row["code"]),
            )

    # --- entries --------------------------------------------------------------------

    def submit(
        self,
        code: object,
        attendee_id: object,
        params: Mapping[str, Sequence[str]],
        claimed: Mapping[str, int] | None = None,
    ) -> list[Result]:
        """Verifies a playground link against the open challenge and records each
        optimizer that reached the target (an attendee's better result for the same
        settings replaces their earlier one).

        The run is computed here, outside the lock; the client's numbers only
        have to agree with it (`optlab.rooms.challenge.verify`).

        Raises:
            RoomError: not an attendee, no open challenge, a link that is not the
                challenge's, a wrong claim, or the challenge is full.
        """
        state = self.state(code)
        attendee = self.attendee(state.code, attendee_id)
        if attendee is None:
            raise RoomError(f"Join room {state.code} before submitting")
        if state.challenge is None or state.challenge_id is None:
            raise RoomError(f"Room {state.code} has no open challenge")
        try:
            results = verify(state.challenge, params, claimed)
        except ValueError as err:
            raise RoomError(f"Not submitted: {err}") from None
        link = json.dumps({k: list(v) for k, v in params.items()}, sort_keys=True)
        with self._write() as db:
            row = self._room_row(db, state.code)
            if row["challenge_id"] != state.challenge_id:
                raise RoomError("The presenter closed that challenge; nothing was submitted")
            (count,) = db.execute(
                "SELECT COUNT(*) FROM entries WHERE challenge_id = ?", (state.challenge_id,)
            ).fetchone()
            new = [
                r
                for r in results
                if not db.execute(
                    "SELECT 1 FROM entries WHERE challenge_id = ? AND attendee_id = ? "
                    "AND settings = ?",
                    (state.challenge_id, attendee.id, r.settings),
                ).fetchone()
            ]
            if count + len(new) > self.caps.room_entries:
                raise RoomError(
                    f"The challenge has its most entries ({self.caps.room_entries}); "
                    "nothing was submitted"
                )
            now = self.clock()
            for r in results:
                db.execute(
                    "INSERT INTO entries (challenge_id, attendee_id, name, optimizer, settings,"
                    " steps, link, submitted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (challenge_id, attendee_id, settings) DO UPDATE SET"
                    " steps = excluded.steps, link = excluded.link,"
                    " submitted = excluded.submitted WHERE excluded.steps < entries.steps",
                    (
                        state.challenge_id,
                        attendee.id,
                        attendee.name,
                        r.optimizer,
                        r.settings,
                        r.steps,
                        link,
                        now,
                    ),
                )
            self._touch(db, state.code)
        return results

    def leaderboard(self, code: object, challenge_id: int | None = None) -> list[Entry]:
        """The entries of a challenge (the open one by default), fewest steps first,
        then the earliest submitted."""
        with self._read() as db:
            row = self._room_row(db, code)
            wanted = row["challenge_id"] if challenge_id is None else challenge_id
            rows = db.execute(
                "SELECT e.* FROM entries e JOIN challenges c ON c.id = e.challenge_id"
                " WHERE c.code = ? AND e.challenge_id = ? ORDER BY e.steps, e.submitted, e.id",
                (row["code"], wanted),
            ).fetchall()
        return [
            Entry(
                r["id"],
                r["name"],
                r["optimizer"],
                r["settings"],
                r["steps"],
                json.loads(r["link"]),
                r["submitted"],
            )
            for r in rows
        ]
