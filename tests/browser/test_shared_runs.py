"""Shared runs in real browsers: attendees pressing Start on the same comparison join one
training, each keeps their own Stop, a live change forks, a finished one replays.

One server, several browser contexts (each its own Streamlit session, as
attendees' laptops are). What the pages say is read from the page itself.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager

import pytest

from tests.browser.test_cnn import cnn_lab, no_exception, server_env, sidebar, tiny_run
from tests.support.resources import ARTIFACTS
from tests.support.server import serve_app

pytestmark = pytest.mark.browser

WATCHING = re.compile(r"(\d+) people are watching this run")


def watching(tab) -> int:
    """How many watchers the page says the run has (0: it says nothing)."""
    found = WATCHING.search(tab.locator("[data-testid=stMain]").inner_text())
    return int(found[1]) if found else 0


def wait_watching(tab, n: int) -> None:
    deadline = time.monotonic() + 30
    while watching(tab) != n:
        assert time.monotonic() < deadline, f"the page never said {n} people are watching"
        tab.wait_for_timeout(250)


@contextmanager
def screenshots_on_failure(**tabs):
    """Saves every tab's page to the artifacts when the test fails, to see why."""
    try:
        yield
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        for name, tab in tabs.items():
            tab.screenshot(path=str(ARTIFACTS / f"shared_runs_failed_{name}.png"), full_page=True)
        raise


def start(tab) -> None:
    sidebar(tab).get_by_role("button", name="Start").click()


def test_attendees_share_one_run_stop_alone_fork_on_a_change_and_replay(browser, tmp_path):
    with (
        serve_app(tmp_path / "server.log", env=server_env(tmp_path / "cache")) as url,
        cnn_lab(browser, url) as alice,
        cnn_lab(browser, url) as bob,
        cnn_lab(browser, url) as carol,
        screenshots_on_failure(alice=alice, bob=bob, carol=carol),
    ):
        for tab in (alice, bob, carol):
            tiny_run(tab, steps=3000)
        start(alice)
        alice.get_by_text(re.compile(r"Step [\d,]+ of 3,000")).wait_for()
        start(bob)
        bob.get_by_text("so you joined their training").wait_for()
        start(carol)
        carol.get_by_text("so you joined their training").wait_for()
        for tab in (alice, bob, carol):
            wait_watching(tab, 3)
        alice.get_by_text("Others pressed Start on this identical comparison").wait_for()
        # The whole stream from step 1: the joiners' progress is the same run's.
        bob.get_by_text(re.compile(r"Step [\d,]+ of 3,000")).wait_for()

        # Bob stops: the run goes on for the two others; he keeps a stopped copy.
        sidebar(bob).get_by_role("button", name="Stop").click()
        bob.get_by_text(re.compile(r"shared run goes on for 2 other people")).wait_for()
        wait_watching(alice, 2)
        assert alice.get_by_text(re.compile(r"Stopped at step")).count() == 0

        # Carol changes an optimizer: her own copy from that step; Alice's run is unchanged.
        carol.get_by_text("Change a running optimizer").click()
        value = carol.get_by_label("Value", exact=True)
        value.fill("0.05")
        value.press("Enter")
        carol.get_by_role("button", name="Apply at the next step").click()
        carol.get_by_text("on your own copy of the shared run").wait_for()
        # One trainer on this server: her copy waits for it, and says about how long.
        carol.get_by_text(re.compile(r"number 1 in the queue .* About \d+:\d\d to wait")).wait_for()
        deadline = time.monotonic() + 30
        while watching(alice) != 0:  # alone again: the page no longer speaks of watchers
            assert time.monotonic() < deadline, "Alice's page still counts Carol"
            alice.wait_for_timeout(250)
        ARTIFACTS.mkdir(exist_ok=True)
        bob.screenshot(path=str(ARTIFACTS / "shared_run_stopped_copy.png"), full_page=True)
        carol.screenshot(path=str(ARTIFACTS / "shared_run_forked.png"), full_page=True)
        sidebar(alice).get_by_role("button", name="Stop").click()
        alice.get_by_text(re.compile(r"Stopped at step [\d,]+ \(stopped by you\)")).wait_for()
        # The trainer is free: Carol's copy trains, with her change; Alice's had none.
        carol.get_by_text("Change a running optimizer").click()
        carol.get_by_text(re.compile(r"Applied before step [\d,]+: SGD")).wait_for()
        assert alice.get_by_text(re.compile(r"Applied before step")).count() == 0
        sidebar(carol).get_by_role("button", name="Stop").click()
        carol.get_by_text(re.compile(r"Stopped at step [\d,]+ \(stopped by you\)")).wait_for()

        # A finished comparison replays at once for the next attendee.
        tiny_run(alice, steps=6)
        tiny_run(bob, steps=6)
        start(alice)
        alice.get_by_text(re.compile(r"Finished 6 steps")).wait_for(timeout=120_000)
        start(bob)
        bob.get_by_text("finished earlier on this server, so its results are replayed").wait_for()
        bob.get_by_text("Replayed 6 steps.").wait_for()
        for tab in (alice, bob, carol):
            no_exception(tab)
