"""A page that outlived its server session keeps the number the user just typed.

The browser test (tests/browser/test_faults.py, ``outlives``) drives the real
thing: a stream dropped for longer than ``server.disconnectedSessionTTL``. Here
every page meets the same moment through AppTest: the page (its element tree and
its URL) stays, the server's session is replaced by an empty one, and the next
change is that new session's first run, carrying every widget's value.
"""

from __future__ import annotations

import pytest
from streamlit.runtime.state import SafeSessionState, SessionState
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.app_test import TESTING_KEY, _AppTestSessionState

from optlab.ui.reconnect import SEEN, keep_sent_numbers, sent_numbers, write_numbers
from tests.pages.test_navigation import PAGES as NAVIGATED
from tests.pages.test_navigation import no_problems
from tests.support.resources import APP

#: A page, one of its number boxes, and a value no link or default gives it.
PAGES = {
    **NAVIGATED,
    "studies": ("pages/studies.py", "st_steps", 77),
    "lessons": ("pages/lessons_page.py", "lessons_training-loop_lr", 0.123),
}


def rerun_in_a_new_session(at: AppTest) -> AppTest:
    """Reruns with every widget's value, as the page holds them, in a new, empty
    session: what the server does for a page that comes back after its session
    expired (or to another replica). The page keeps its URL. (AppTest's own set-up
    of a session, on the streamlit version requirements.txt pins.)"""
    sent = at._tree.get_widget_states()  # read from the old session, as the page shows them
    fresh = SessionState()
    fresh[TESTING_KEY] = {}
    at._session_state = SafeSessionState(fresh, lambda: None)
    at.session_state = _AppTestSessionState(at._session_state)
    return at._run(sent)


@pytest.mark.parametrize("name", list(PAGES))
def test_a_new_session_keeps_the_number_that_woke_it(name, monkeypatch, tmp_path):
    monkeypatch.setenv("OPTLAB_CACHE_DIR", str(tmp_path))  # no CIFAR-10: the quick synthetic set
    monkeypatch.delenv("OPTLAB_DATA_DIR", raising=False)
    path, key, value = PAGES[name]
    # AppTest starts every run as a server process's first: in pages/-folder mode, so
    # the Playground and Studies pages run their files without the entry point (the
    # case `keep_sent_numbers` marks the session seen by itself), the others through it.
    at = AppTest.from_file(APP, default_timeout=180).run()
    if name != "playground":
        at.switch_page(path).run()
    no_problems(at)
    before = at.number_input(key=key).value
    assert before != value
    link = dict(at.query_params)

    at.number_input(key=key).set_value(value)
    rerun_in_a_new_session(at)
    no_problems(at)
    assert at.number_input(key=key).value == value
    assert at.session_state[key] == value
    assert at.session_state[SEEN]  # read on the first run, never again
    if name != "studies":  # the Studies page mirrors its link only when a study runs
        assert at.query_params != link  # the link follows the kept value

    # The session's later runs are ordinary ones: a change is a change.
    at.number_input(key=key).set_value(before).run()
    no_problems(at)
    assert at.number_input(key=key).value == before


def test_a_fresh_page_sends_no_numbers_and_keeps_its_link(monkeypatch, tmp_path):
    """A first visit carries no widget state: the share link decides."""
    monkeypatch.setenv("OPTLAB_CACHE_DIR", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["opt"] = ["sgd:lr=0.0321", "adam"]
    at.run()
    no_problems(at)
    assert at.number_input(key="slot0_lr").value == 0.0321


def test_only_number_boxes_are_read_from_what_the_browser_sent():
    """Read from real widgets' wire values: a number box's double, with its key; a
    selectbox, a checkbox, a text box and an unkeyed number box are not carried."""

    def script():
        import streamlit as st

        from optlab.ui.reconnect import sent_numbers

        st.session_state["sent"] = sent_numbers()
        st.number_input("a", key="a", value=1.5)
        st.number_input("n", key="n", value=3)
        st.number_input("unkeyed", value=2.0)
        st.selectbox("s", [10, 20], key="s")
        st.checkbox("c", key="c")
        st.text_input("t", key="t", value="4")

    at = AppTest.from_function(script).run()
    assert at.session_state["sent"] == {}  # a first run: nothing sent
    at.number_input(key="a").set_value(2.5)
    at.selectbox(key="s").set_value(20)
    at.run()
    assert at.session_state["sent"] == {"a": 2.5, "n": 3.0}
    assert sent_numbers() == {}  # outside a script run


@pytest.mark.parametrize(
    ("wrote", "sent", "kept"),
    [
        (0.001, 0.0345, 0.0345),  # a float box
        (50, 12.0, 12),  # an int box stays an int
        (50, 12.5, 50),  # ...and takes no fraction
        (True, 0.0, True),  # a checkbox's key is not a number box's
        ("adam", 1.0, "adam"),  # nor is a choice
        (None, 1.0, None),  # a key the set-up did not write is left alone
    ],
)
def test_the_sent_numbers_are_written_only_over_numbers_the_set_up_wrote(wrote, sent, kept):
    state = {}
    if wrote is not None:
        state["k"] = wrote
    write_numbers(state, {"k": sent})
    assert state.get("k") == kept
    assert type(state.get("k")) is type(kept)


def test_keep_sent_numbers_reads_nothing_twice():
    """After a session's first run, a page visited for the first time keeps its
    set-up's values; outside a script run nothing was sent, and the session is seen."""
    state = {SEEN: True, "k": 0.5}
    keep_sent_numbers(state)
    assert state == {SEEN: True, "k": 0.5}
    state = {"k": 0.5}
    keep_sent_numbers(state)
    assert state == {SEEN: True, "k": 0.5}
