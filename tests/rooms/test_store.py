"""The room store: rooms, attendees, presenter actions, entries, caps and expiry.

Every test uses a real SQLite database (in memory, or a file two stores share)
and a clock the test moves by hand.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from optlab.caps import CAPS
from optlab.rooms import (
    DB_ENV,
    Challenge,
    NotPresenter,
    RoomError,
    RoomStore,
    Setup,
)

ADAM = "adam:lr=0.05"
LINK = {"surface": ["rosenbrock"], "steps": ["2000"], "opt": [ADAM]}


class Clock:
    """A clock the test sets."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> RoomStore:
    store = RoomStore(clock=clock)
    yield store
    store.close()


def test_a_room_has_a_code_the_presenter_token_and_no_stored_secret(store):
    keys = store.create()
    assert len(keys.code) == 5 and keys.token
    assert store.is_presenter(keys.code, keys.token)
    assert store.is_presenter(keys.code.lower(), keys.token)
    row = store._db.execute("SELECT * FROM rooms").fetchone()
    assert keys.token not in [str(v) for v in tuple(row)]  # only its hash is kept
    state = store.state(keys.code)
    assert (state.attendees, state.setup, state.setup_version, state.challenge) == (
        0,
        None,
        0,
        None,
    )


def test_attendees_join_with_a_name_and_duplicates_get_a_number(store):
    keys = store.create()
    ada = store.join(keys.code, "  Ada ")
    again = store.join(keys.code.lower(), "ADA")
    assert (ada.name, again.name) == ("Ada", "ADA 2")
    assert ada.id != again.id and store.state(keys.code).attendees == 2
    assert store.attendee(keys.code, ada.id) == ada
    store.leave(keys.code, ada.id)
    assert store.attendee(keys.code, ada.id) is None
    assert store.state(keys.code).attendees == 1


@pytest.mark.parametrize(
    ("code", "name", "message"),
    [
        ("nope!", "Ada", "is not a room code"),
        ("ZZZZZ", "Ada", "There is no room ZZZZZ"),
        (None, "Ada", "expected text"),
    ],
)
def test_bad_codes_are_refused_clearly(store, code, name, message):
    store.create()
    with pytest.raises(RoomError, match=message):
        store.join(code, name)


def test_bad_names_are_refused_clearly(store):
    keys = store.create()
    with pytest.raises(RoomError, match="at most 30 characters"):
        store.join(keys.code, "x" * 31)
    with pytest.raises(RoomError, match="type the name"):
        store.join(keys.code, "  ")


def test_caps_on_rooms_attendees_and_entries(clock):
    caps = replace(CAPS, rooms=2, room_attendees=2, room_entries=2)
    store = RoomStore(caps=caps, clock=clock)
    keys = store.create()
    store.create()
    with pytest.raises(RoomError, match=r"most rooms open \(2\)"):
        store.create()
    ada, bob = store.join(keys.code, "Ada"), store.join(keys.code, "Bob")
    with pytest.raises(RoomError, match=r"is full \(2 attendees\)"):
        store.join(keys.code, "Cy")
    store.pose(keys.code, keys.token, Challenge("rosenbrock", target=0.1))
    store.submit(keys.code, ada.id, LINK)
    store.submit(keys.code, ada.id, LINK)  # the same entry again: replaces, adds nothing
    store.submit(keys.code, bob.id, LINK)
    with pytest.raises(RoomError, match=r"most entries \(2\)"):
        store.submit(keys.code, bob.id, {**LINK, "opt": ["adam:lr=0.06"]})
    assert len(store.leaderboard(keys.code)) == 2
    store.close_room(keys.code, keys.token)
    store.create()  # closing one frees its place


def test_rooms_expire_after_the_idle_time_and_use_keeps_them_alive(store, clock):
    keys = store.create()
    ada = store.join(keys.code, "Ada")
    clock.now += CAPS.room_idle_s - 1
    store.push(keys.code, keys.token, Setup("sweeps", (("page", ("sweep",)),)))
    clock.now += CAPS.room_idle_s - 1
    assert store.state(keys.code).setup_version == 1  # still alive: the push counted
    clock.now += 2
    with pytest.raises(RoomError, match=r"Room .* has expired \(unused for 4 h\)"):
        store.state(keys.code)
    with pytest.raises(RoomError, match="has expired"):
        store.join(keys.code, "Bob")
    assert store.attendee(keys.code, ada.id) is None
    assert not store.is_presenter(keys.code, keys.token)
    store.create()  # purges the expired room
    assert store._db.execute("SELECT COUNT(*) FROM attendees").fetchone()[0] == 0
    with pytest.raises(RoomError, match="There is no room"):
        store.state(keys.code)


def test_every_presenter_action_checks_the_token(store):
    keys, other = store.create(), store.create()
    ada = store.join(keys.code, "Ada")
    setup = Setup("", (("surface", ("beale",)),))
    for token in (None, "", ada.id, other.token, keys.token + "x", "x" * 10_000):
        with pytest.raises(NotPresenter, match=f"Only the presenter of room {keys.code}"):
            store.push(keys.code, token, setup)
        with pytest.raises(NotPresenter):
            store.pose(keys.code, token, Challenge("rosenbrock"))
        with pytest.raises(NotPresenter):
            store.close_challenge(keys.code, token)
        with pytest.raises(NotPresenter):
            store.close_room(keys.code, token)
        assert not store.is_presenter(keys.code, token)
    state = store.state(keys.code)
    assert (state.setup_version, state.challenge) == (0, None)
    assert store.push(keys.code, keys.token, setup) == 1
    assert store.push(keys.code, keys.token, setup) == 2
    assert store.state(keys.code).setup == setup


def test_submissions_are_verified_and_ranked_fewest_steps_then_earliest(store, clock):
    keys = store.create()
    ada, bob, cy = (store.join(keys.code, n) for n in ("Ada", "Bob", "Cy"))
    with pytest.raises(RoomError, match="no open challenge"):
        store.submit(keys.code, ada.id, LINK)
    store.pose(keys.code, keys.token, Challenge("rosenbrock", target=0.1))
    with pytest.raises(RoomError, match="Join room"):
        store.submit(keys.code, "someone-else", LINK)
    slow = {**LINK, "opt": ["adam:lr=0.02"]}
    slow_steps = store.submit(keys.code, ada.id, slow)[0].steps
    clock.now += 1
    fast_steps = store.submit(keys.code, bob.id, LINK)[0].steps
    clock.now += 1
    store.submit(keys.code, cy.id, LINK)  # ties with Bob, later
    assert fast_steps < slow_steps
    board = store.leaderboard(keys.code)
    assert [(e.name, e.steps) for e in board] == [
        ("Bob", fast_steps),
        ("Cy", fast_steps),
        ("Ada", slow_steps),
    ]
    assert board[0].link == LINK and board[0].settings == ADAM
    # A better run of the same settings replaces the entry; a worse one does not.
    clock.now += 1
    store.submit(keys.code, ada.id, {**slow, "steps": ["3000"]})
    assert [e.name for e in store.leaderboard(keys.code)] == ["Bob", "Cy", "Ada"]
    with pytest.raises(RoomError, match=r"Not submitted: .* at step 1, but the server.s run"):
        store.submit(keys.code, ada.id, LINK, {ADAM: 1})
    with pytest.raises(RoomError, match=r"Not submitted: .*could not be read"):
        store.submit(keys.code, ada.id, {"opt": ["bogus"]})


def test_a_new_challenge_starts_an_empty_board_and_the_old_one_stays_readable(store):
    keys = store.create()
    ada = store.join(keys.code, "Ada")
    first = store.pose(keys.code, keys.token, Challenge("rosenbrock", target=0.1))
    store.submit(keys.code, ada.id, LINK)
    second = store.pose(keys.code, keys.token, Challenge("booth"))
    assert store.state(keys.code).challenge == Challenge("booth")
    assert store.leaderboard(keys.code) == []
    assert len(store.leaderboard(keys.code, first)) == 1
    store.close_challenge(keys.code, keys.token)
    assert store.state(keys.code).challenge is None and second != first
    with pytest.raises(RoomError, match="no open challenge"):
        store.submit(keys.code, ada.id, LINK)


def test_two_stores_on_one_file_see_each_others_writes(tmp_path: Path):
    path = tmp_path / "rooms.sqlite"
    one = RoomStore.from_env({DB_ENV: str(path)})
    two = RoomStore(path)
    assert one.path == str(path)
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    keys = one.create()
    ada = two.join(keys.code, "Ada")
    assert one.attendee(keys.code, ada.id) == ada
    assert two.is_presenter(keys.code, keys.token)
    setup = Setup("cnn-lab", (("page", ("cnn",)), ("steps", ("100",))))
    two.push(keys.code, keys.token, setup)
    assert one.state(keys.code).setup == setup
    one.pose(keys.code, keys.token, Challenge("rosenbrock", target=0.1))
    two.submit(keys.code, ada.id, LINK)
    assert [e.name for e in one.leaderboard(keys.code)] == ["Ada"]
    one.close(), two.close()


def test_the_default_store_is_in_memory_and_private():
    one, two = RoomStore.from_env({}), RoomStore.from_env({DB_ENV: "  "})
    keys = one.create()
    assert one.path is None and two.path is None
    with pytest.raises(RoomError, match="There is no room"):
        two.state(keys.code)


@pytest.mark.parametrize("shared", [False, True])
def test_many_threads_join_one_room_at_once(tmp_path: Path, shared: bool):
    """Streamlit runs each session in its own thread; with a file, two stores race."""
    path = tmp_path / "rooms.sqlite" if shared else None
    stores = [RoomStore(path), RoomStore(path)] if shared else [RoomStore()]
    keys = stores[0].create()
    errors: list[BaseException] = []

    def join(i: int) -> None:
        try:
            stores[i % len(stores)].join(keys.code, "Ada")
        except BaseException as err:  # reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=join, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    names = {r[0] for r in stores[0]._db.execute("SELECT name FROM attendees")}
    assert len(names) == 40 and "Ada" in names and "Ada 40" in names


def test_setups_drop_personal_keys_and_refuse_malformed_ones():
    setup = Setup.from_query(
        "", {"surface": "beale", "room": ["ABCDE"], "host": "t", "view": "presenter"}
    )
    assert setup.query == {"surface": ["beale"]}
    # The presenter's own CNN run stays theirs.
    cnn = Setup.from_query("cnn-lab", {"seed": "7", "run": "0123456789abcdef"})
    assert cnn.query == {"seed": ["7"]}
    assert Setup.from_json(setup.to_json()) == setup
    with pytest.raises(ValueError, match="not a page"):
        Setup("../etc/passwd")
    with pytest.raises(ValueError, match="at most 40 keys"):
        Setup.from_query("", {f"k{i}": "v" for i in range(41)})
    with pytest.raises(ValueError, match="text of at most"):
        Setup.from_query("", {"expr": "x" * 5000})
    with pytest.raises(ValueError, match="not a stored setup"):
        Setup.from_json("{}")
