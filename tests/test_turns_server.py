"""The pages' turns in a real Streamlit server: a page's run holds one, and so does a
fragment's rerun on its timer (which runs only the fragment, not the page around
it). A tiny app written here reports what it holds; the protocol client drives it."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

import pytest

from bench.st_protocol import Session
from tests.support.resources import ROOT
from tests.support.server import launch_app, stop_app

TINY_APP = """
import streamlit as st

from optlab import turns
from optlab.ui.turns import fragment, page_turn

with page_turn():
    st.text(f"page holds a turn: {turns.TURNS.holding()}")

    @fragment(run_every=60)
    def tick():
        st.text(f"fragment holds a turn: {turns.TURNS.holding()}")

    tick()
st.text(f"after the page: {turns.TURNS.holding()}")
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("turns_app")
    (root / "app.py").write_text(TINY_APP)
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc, url = launch_app(root / "server.log", env=env, root=root)
    try:
        yield url
    finally:
        stop_app(proc, root / "server.log")


def test_a_page_and_its_fragments_reruns_each_hold_a_turn(tiny: str) -> None:
    async def go():
        async with Session(tiny) as s:
            page = await s.load()
            assert page.status == "finished", page.exceptions
            assert page.texts == [
                "page holds a turn: True",
                "fragment holds a turn: True",
                "after the page: False",
            ]
            assert s.fragments  # the fragment's timer is registered
            rerun = await s.tick()  # what the browser does on the timer
            assert rerun is not None and rerun.status == "fragment_finished"
            assert "fragment holds a turn: True" in rerun.texts
            assert "page holds a turn: True" in rerun.texts  # the page's part stays

    in_own_thread(go)


def in_own_thread(go) -> None:
    """Runs the coroutine function ``go`` on an event loop of its own thread: the
    browser tests' Playwright leaves one running in the main thread, where
    ``asyncio.run`` refuses to start (the suite runs them first)."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(asyncio.wait_for(go(), 120))
        except BaseException as err:  # re-raised in the test's thread
            failed.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(150)
    assert not thread.is_alive(), "the protocol client did not finish"
    if failed:
        raise failed[0]
