"""The Room page, the sidebar's room panel and the playground's submit button under
`streamlit.testing.v1.AppTest`: real scripts, a real room store on a file the test
opens too (as a second replica would), no browser.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from optlab.rooms import DB_ENV, Challenge, RoomStore, Setup
from optlab.ui.room import state as room
from tests.support.resources import APP

TIMEOUT = 120
#: A playground link that Adam takes about 1,100 steps to finish (f < 1e-3).
CHALLENGE_LINK = {"surface": "rosenbrock", "steps": "1500", "opt": ["adam:lr=0.05", "sgd"]}


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RoomStore]:
    """The test's view of the app's rooms: the same database file."""
    path = tmp_path / "rooms.sqlite"
    monkeypatch.setenv(DB_ENV, str(path))
    room.room_store.clear()  # the app opens the file the test names
    other = RoomStore(path)
    yield other
    other.close()
    room.room_store.clear()


def problems(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def messages(at: AppTest, kind: str) -> list[str]:
    return [e.value for e in getattr(at, kind)]


def room_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("pages/room.py").run()
    problems(at)
    return at


def playground(query: dict[str, str | list[str]]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(query)
    at.run()
    problems(at)
    return at


def join(at: AppTest, code: str, name: str) -> AppTest:
    at.text_input(key="room_join_code").set_value(code)
    at.text_input(key="room_join_name").set_value(name)
    at.button(key="FormSubmitter:room_join-Join").click().run()
    problems(at)
    return at


def test_the_presenter_creates_a_room_and_poses_a_challenge(store):
    at = room_page()
    assert [b.label for b in at.button][:1] == ["Create a room"]
    at.button[0].click().run()
    problems(at)
    code, token = at.session_state[room.CODE], at.session_state[room.TOKEN]
    assert store.is_presenter(code, token)
    assert code in at.get("html")[0].proto.body  # shown big
    assert any(f"/rooms?room={code}" in m.value for m in at.markdown)
    at.text_input(key="room_pose_target").set_value("0")
    at.button(key="FormSubmitter:room_pose-Pose the challenge").click().run()
    problems(at)
    assert "cannot be reached" in messages(at, "error")[0]
    at.text_input(key="room_pose_target").set_value("banana")
    at.button(key="FormSubmitter:room_pose-Pose the challenge").click().run()
    assert "target: expected a number" in messages(at, "error")[0]
    at.selectbox(key="room_pose_surface").set_value("booth")
    at.text_input(key="room_pose_target").set_value("0.01")
    at.button(key="FormSubmitter:room_pose-Pose the challenge").click().run()
    problems(at)
    assert store.state(code).challenge == Challenge("booth", 0.01)
    assert "No entries yet" in messages(at, "info")[0]
    at.button(key="room_close").click().run()
    problems(at)
    assert room.CODE not in at.session_state
    assert not store.is_presenter(code, token)


@pytest.mark.parametrize(
    ("code", "name", "message"),
    [
        ("", "Ada", "type the code the presenter shows"),
        ("0000", "Ada", "is not a room code"),
        ("ZZZZZ", "Ada", "There is no room ZZZZZ"),
        (None, " ", "type the name"),
    ],
)
def test_bad_joins_get_a_clear_message(store, code, name, message):
    keys = store.create()
    at = join(room_page(), keys.code if code is None else code, name)
    assert message in messages(at, "error")[0]
    assert room.CODE not in at.session_state


def test_an_attendee_joins_by_code_and_leaves(store):
    keys = store.create()
    store.join(keys.code, "Ada")
    at = join(room_page(), f" {keys.code.lower()} ", "Ada")
    assert at.session_state[room.NAME] == "Ada 2"
    assert any(f"in room **{keys.code}** as **Ada 2**" in m.value for m in at.markdown)
    assert store.state(keys.code).attendees == 2
    at.button(key="room_leave").click().run()
    problems(at)
    assert store.state(keys.code).attendees == 1 and room.CODE not in at.session_state
    assert "room" not in at.query_params and room.PENDING not in at.session_state


def test_a_link_offers_to_join_from_the_sidebar_and_keeps_the_room(store):
    keys = store.create()
    at = playground({"room": keys.code.lower()})
    assert any(f"Join room {keys.code}" in m.value for m in at.sidebar.markdown)
    assert at.sidebar.text_input(key="room_link_name").label == "Your name"
    assert at.query_params["room"] == keys.code  # the playground's own link keeps it
    assert room.CODE not in at.session_state  # nobody joins without a name


def as_attendee(store: RoomStore, code: str, query: dict[str, str | list[str]]) -> AppTest:
    """The playground of a session that joined ``code`` as Ada (AppTest reruns only
    the page script, so the session starts in the room rather than joining in it)."""
    ada = store.join(code, "Ada")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state[room.CODE], at.session_state[room.ATTENDEE] = code, ada.id
    at.session_state[room.NAME], at.session_state[room.TOKEN] = ada.name, None
    at.query_params.update({"room": code, **query})
    at.run()
    problems(at)
    return at


def test_a_pushed_setup_is_announced_and_changes_nothing_by_itself(store):
    keys = store.create()
    store.push(keys.code, keys.token, Setup.from_query("", {"surface": "beale", "steps": "77"}))
    at = as_attendee(store, keys.code, {})
    assert "The presenter shared a new setup: Surface Playground." in messages(at, "info")
    assert [b.label for b in at.sidebar.button][:2] == ["Load", "Dismiss"]
    assert at.session_state["surface"] == "rosenbrock" and at.query_params["room"] == keys.code


def test_an_attendee_submits_and_the_server_verifies(store):
    keys = store.create()
    store.pose(keys.code, keys.token, Challenge("rosenbrock"))
    at = as_attendee(store, keys.code, CHALLENGE_LINK)
    assert any("Adam (lr=0.05) at step" in m.value for m in at.markdown)
    at.button(key="room_submit").click().run()
    problems(at)
    (done,) = messages(at, "success")
    (entry,) = store.leaderboard(keys.code)
    assert (entry.name, entry.settings) == ("Ada", "adam:lr=0.05")
    assert f"Adam (lr=0.05): {entry.steps} steps" in done
    assert entry.link["opt"] == CHALLENGE_LINK["opt"]


def test_a_run_on_another_problem_cannot_be_submitted(store):
    keys = store.create()
    store.pose(keys.code, keys.token, Challenge("rosenbrock"))
    at = as_attendee(store, keys.code, {"surface": "booth", "steps": "50"})
    assert any("the challenge is on Rosenbrock" in m for m in messages(at, "info"))
    assert not [b for b in at.button if b.key == "room_submit"]


def test_an_attendee_of_a_closed_room_is_told_and_leaves_it(store):
    keys = store.create()
    ada = store.join(keys.code, "Ada")
    store.close_room(keys.code, keys.token)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state[room.CODE], at.session_state[room.ATTENDEE] = keys.code, ada.id
    at.query_params["room"] = keys.code
    at.run()
    problems(at)
    assert f"There is no room {keys.code}" in messages(at, "warning")[0]
    assert room.CODE not in at.session_state and "room" not in at.query_params


def test_the_presenter_link_needs_the_right_token(store):
    keys = store.create()
    at = playground({"room": keys.code, "host": "forged"})
    assert "This presenter link is not valid" in messages(at, "error")[0]
    assert room.TOKEN not in at.session_state or at.session_state[room.TOKEN] is None
    assert "host" not in at.query_params
    at = playground({"room": keys.code, "host": keys.token})
    assert at.session_state[room.TOKEN] == keys.token
    assert next(b.label for b in at.sidebar.button) == "Push this page to the room"
    assert at.query_params["host"] == keys.token


@pytest.mark.parametrize("code", ["!!", "x" * 500, "ABCD0"])
def test_a_malformed_room_link_is_reported_not_raised(store, code):
    at = playground({"room": code})
    assert "This link's room could not be used" in messages(at, "error")[0]
    assert "room" not in at.query_params
