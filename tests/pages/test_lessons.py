"""The Lessons page under AppTest: every lesson opens, reads its link, and shows its code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from optlab.lessons import LESSONS, get_lesson, run_lesson
from optlab.lessons.link import lesson_from_params, lesson_to_params
from optlab.rooms import DB_ENV, RoomStore
from optlab.ui.room import state as room
from tests.support.resources import APP

pytestmark = pytest.mark.usefixtures("one_thread")


def open_lessons(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page("pages/lessons_page.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_each_lesson_shows_its_findings_and_the_code_that_computed_them() -> None:
    at = open_lessons()
    for lesson in LESSONS:
        at.selectbox(key="lessons_chosen").set_value(lesson.key).run()
        assert not at.exception, (lesson.key, [e.message for e in at.exception])
        assert at.header[0].value == f"{lesson.number}. {lesson.title}"
        run = run_lesson(lesson)
        codes = [c.value.rstrip("\n") for c in at.code]
        assert codes == [script.rstrip("\n") for script in run.scripts()], lesson.key
        markdown = " ".join(m.value for m in at.markdown)
        if lesson.key not in ("training-loop", "per-layer-lr"):  # they read the CNN
            assert run.findings() in markdown
        assert at.query_params["lesson"] == lesson.key


def test_a_link_opens_its_lesson_with_its_values() -> None:
    at = open_lessons(lesson="change-lr", optimizer="SGD with momentum 0.9", at="40")
    assert at.header[0].value == "3. Changing the learning rate, two ways"
    assert at.selectbox(key="lessons_change-lr_optimizer").value == "SGD with momentum 0.9"
    assert at.slider(key="lessons_change-lr_at").value == 40
    markdown = " ".join(m.value for m in at.markdown)
    assert "`momentum_buffer`" in markdown
    assert at.query_params["at"] == "40" and at.query_params["factor"] == "0.5"
    # Changing a control changes the link (what a presenter's push sends).
    at.slider(key="lessons_change-lr_at").set_value(20).run()
    assert at.query_params["at"] == "20"


def test_a_bad_link_says_why_and_opens_lesson_one() -> None:
    at = open_lessons(lesson="momentum", momentum="7")
    assert "momentum: must be between 0 and 1.1, got 7" in at.warning[0].value
    assert at.header[0].value == "1. The training loop"


def test_the_link_round_trips() -> None:
    for lesson in LESSONS:
        lesson_values = lesson.defaults
        params = lesson_to_params(lesson, lesson_values)
        assert lesson_from_params(params) == (lesson, lesson_values)
    assert lesson_from_params({"surface": ["beale"]}) is None
    with pytest.raises(ValueError, match="lesson: given 2 times"):
        lesson_from_params({"lesson": ["closure", "momentum"]})
    with pytest.raises(ValueError, match="factor: expected a number"):
        lesson_from_params({"lesson": ["change-lr"], "factor": ["big"]})
    assert get_lesson("closure").control("line_search").parse("none") == "none"


def push_and_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, set_up: Callable[[AppTest], None]
) -> tuple[dict[str, list[str]], AppTest]:
    """A presenter opens the Lessons page in a room of its own, ``set_up`` chooses a
    lesson and its values, and the presenter pushes it; an attendee on lesson 1 then
    presses Load. Returns the pushed query and the attendee's page after the Load."""
    monkeypatch.setenv(DB_ENV, str(tmp_path / "rooms.sqlite"))
    room.room_store.clear()
    store = RoomStore(tmp_path / "rooms.sqlite")
    try:
        keys = store.create()
        host = AppTest.from_file(APP, default_timeout=180)
        host.query_params.update({"room": keys.code, "host": keys.token})
        host.run()  # the presenter's link, on the playground
        host.switch_page("pages/lessons_page.py").run()
        set_up(host)
        host.button(key="room_push").click().run()
        assert not host.exception, [e.message for e in host.exception]
        setup = store.state(keys.code).setup
        assert setup.page == "lessons"
        # An attendee on lesson 1 loads it: the page reads the pushed link afresh.
        ada = store.join(keys.code, "Ada")
        at = AppTest.from_file(APP, default_timeout=180)
        at.session_state[room.CODE], at.session_state[room.ATTENDEE] = keys.code, ada.id
        at.session_state[room.NAME], at.session_state[room.TOKEN] = ada.name, None
        at.query_params.update({"room": keys.code})
        at.run()
        at.switch_page("pages/lessons_page.py").run()
        assert at.header[0].value == "1. The training loop"
        at.button(key="room_load").click().run()
        assert not at.exception, [e.message for e in at.exception]
        return setup.query, at
    finally:
        store.close()
        room.room_store.clear()


def test_a_presenter_pushes_a_lesson_and_an_attendee_loads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def set_up(host: AppTest) -> None:
        host.selectbox(key="lessons_chosen").set_value("momentum").run()
        host.number_input(key="lessons_momentum_momentum").set_value(1.05).run()

    query, at = push_and_load(tmp_path, monkeypatch, set_up)
    assert query == {"lesson": ["momentum"], "momentum": ["1.05"]}
    assert at.header[0].value == "7. Momentum in a ravine"
    assert at.number_input(key="lessons_momentum_momentum").value == 1.05
