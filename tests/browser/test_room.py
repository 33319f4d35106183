"""A workshop in two real browsers against a real server: the presenter creates a
room, an attendee joins with the code, loads a pushed setup, submits to a challenge,
and the presenter's live leaderboard shows the entry; a link without the token
cannot push. Screenshots of the presenter's room page go to ``artifacts/``."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.resources import ARTIFACTS

#: The setup the presenter pushes: a Rosenbrock run that Adam finishes in about 1,100 steps.
SETUP = "/?surface=rosenbrock&steps=1500&opt=adam:lr%3D0.05&opt=sgd"
PROJECTOR = {"width": 1024, "height": 768}
DESKTOP = {"width": 1440, "height": 900}


#: Whether the sidebar's inputs named by ``want``'s keys show its values.
SIDEBAR_VALUES = """(want) => Object.entries(want).every(([label, value]) =>
  [...document.querySelectorAll('[data-testid=stSidebar] input')]
    .some(i => i.getAttribute('aria-label') === label && i.value === value))"""


def query(tab) -> dict[str, list[str]]:
    return parse_qs(urlsplit(tab.url).query)


@pytest.fixture
def tabs(browser, app_url):
    """Three browsers' tabs (own contexts: separate sessions)."""
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(3)]
    pages = [c.new_page() for c in contexts]
    for tab in pages:
        tab.set_default_timeout(30_000)
    yield pages
    for c in contexts:
        c.close()


def test_presenter_and_attendee_share_a_setup_and_a_challenge(tabs, app_url):
    host, guest, eve = tabs
    # The presenter creates a room: a code on screen, code and token in the address only.
    host.goto(app_url)  # a fresh server's first deep link 404s (see conftest)
    host.get_by_role("heading", name="Surface Playground").wait_for()
    host.goto(f"{app_url}/rooms")
    host.get_by_role("button", name="Create a room").click()
    code = host.get_by_test_id("room-code").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-9]{5}", code)
    host.wait_for_url(re.compile(rf"room={code}"))
    token = query(host)["host"][0]

    # The attendee joins with the typed code.
    guest.goto(f"{app_url}/rooms")
    guest.get_by_role("textbox", name="Room code").fill(code.lower())
    guest.get_by_role("textbox", name="Your name").fill("  Ada ")
    guest.get_by_role("button", name="Join").click()
    guest.get_by_text(f"You are in room {code} as Ada").wait_for()
    assert query(guest)["room"] == [code] and "host" not in query(guest)

    # The presenter opens a setup (the presenter link works in a new session) and pushes it.
    host.goto(f"{app_url}{SETUP}&room={code}&host={token}")
    host.get_by_role("button", name="Push this page to the room").click()
    host.get_by_text(f"Pushed setup 1 to room {code}").wait_for()

    # The attendee's page polls: a notice, and nothing changes until Load.
    notice = guest.get_by_text("The presenter shared a new setup: Surface Playground")
    notice.wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    guest.screenshot(path=str(ARTIFACTS / "room_attendee_notice.png"))
    assert urlsplit(guest.url).path.endswith("/rooms")
    guest.get_by_role("button", name="Load", exact=True).click()
    guest.wait_for_url(re.compile(rf"{re.escape(app_url)}/\?.*opt=adam"))  # the home page
    params = query(guest)
    assert params["opt"] == ["adam:lr=0.05", "sgd"] and params["steps"] == ["1500"]
    assert params["room"] == [code] and "host" not in params
    # The loaded setup's run computes first (on the suite's shared server, after others').
    guest.get_by_role("heading", name="Summary").wait_for(timeout=90_000)

    # The presenter poses a challenge; the attendee's playground offers to submit.
    host.get_by_role("link", name="Room").click()
    host.get_by_role("button", name="Pose the challenge").click()
    host.get_by_text("No entries yet").wait_for()
    guest.get_by_role("button", name="Submit to the challenge").click()
    done = guest.get_by_text("Submitted and verified by the server: Adam (lr=0.05)")
    done.wait_for()
    done.scroll_into_view_if_needed()
    guest.screenshot(path=str(ARTIFACTS / "room_attendee_submitted.png"))

    # The leaderboard polls and shows the verified entry.
    board = host.get_by_test_id("stTable")
    board.get_by_text("Ada", exact=True).wait_for()
    row = board.locator("tr").filter(has_text="Ada").inner_text()
    assert "Adam (lr=0.05)" in row and "adam:lr=0.05" in row

    # Someone with the attendees' link (no token) joins and has nothing to push with;
    # a made-up token is refused.
    eve.goto(f"{app_url}/rooms?room={code}&host=not-the-token")
    eve.get_by_text("This presenter link is not valid").wait_for()
    sidebar = eve.get_by_test_id("stSidebar")
    sidebar.get_by_role("textbox", name="Your name").fill("Ada")
    sidebar.get_by_role("button", name="Join").click()
    eve.get_by_text(f"You joined room {code} as Ada 2 (that name was taken)").wait_for()
    assert eve.get_by_role("button", name="Push this page to the room").count() == 0
    assert "host" not in query(eve)

    # The presenter shows the entry on the projector: the playground with its link.
    host.set_viewport_size(DESKTOP)
    host.screenshot(path=str(ARTIFACTS / "room_presenter_1440.png"))
    host.get_by_role("button", name="Open it in the playground").click()
    host.wait_for_url(re.compile(rf"{re.escape(app_url)}/\?.*opt=adam(%3A|:)lr(%3D|=)0.05"))
    assert query(host)["host"] == [token]

    # Presenter view on a 1024x768 projector: a new session from the presenter's link.
    host.set_viewport_size(PROJECTOR)
    host.goto(f"{app_url}/rooms?room={code}&host={token}&view=presenter")
    big = host.get_by_test_id("room-code")
    big.wait_for()
    box = big.bounding_box()
    assert box["height"] >= 100 and box["x"] + box["width"] <= PROJECTOR["width"]
    host.screenshot(path=str(ARTIFACTS / "room_presenter_1024.png"))
    board = host.get_by_test_id("stTable")
    board.get_by_text("Ada", exact=True).wait_for()
    board.scroll_into_view_if_needed()
    host.screenshot(path=str(ARTIFACTS / "room_presenter_1024_board.png"))
    overflow = host.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0


def test_a_pushed_cnn_lab_carries_the_presenters_settings(tabs, app_url):
    """The presenter changes CNN lab settings (one committed with Enter, one typed
    and pushed at once, as a hurried presenter does) and pushes: the attendee's
    Load opens the CNN lab with exactly those settings, not the lab's defaults."""
    host, guest, _ = tabs
    host.goto(app_url)  # a fresh server's first deep link 404s (see conftest)
    host.get_by_role("heading", name="Surface Playground").wait_for()
    host.goto(f"{app_url}/rooms")
    host.get_by_role("button", name="Create a room").click()
    code = host.get_by_test_id("room-code").inner_text().strip()
    guest.goto(f"{app_url}/rooms?room={code}")
    guest.get_by_test_id("stSidebar").get_by_role("textbox", name="Your name").fill("Bo")
    guest.get_by_test_id("stSidebar").get_by_role("button", name="Join").click()
    guest.get_by_text(f"You are in room {code} as Bo").wait_for()

    side = host.get_by_test_id("stSidebar")
    side.get_by_test_id("stSidebarNav").get_by_text("CNN lab").click()
    host.get_by_role("heading", name="CNN lab").wait_for()
    batch = side.get_by_label("Batch size", exact=True)
    batch.fill("32")
    batch.press("Enter")
    host.wait_for_url(re.compile(r"[?&]batch=32(&|$)"))
    # Typed, then Push at once: the number arrives with the click, in the same run.
    side.get_by_label("Seed", exact=True).fill("7")
    side.get_by_role("button", name="Push this page to the room").click()
    host.get_by_text(f"Pushed setup 1 to room {code}").wait_for()

    guest.get_by_text("The presenter shared a new setup: CNN lab").wait_for()
    guest.get_by_role("button", name="Load", exact=True).click()
    guest.wait_for_url(re.compile(rf"{re.escape(app_url)}/cnn-lab\?.*seed=7"))
    params = query(guest)
    assert params["batch"] == ["32"] and params["seed"] == ["7"], params
    assert params["room"] == [code] and "host" not in params
    guest.get_by_role("heading", name="CNN lab").wait_for()
    # The sidebar's inputs show the pushed values (read in the browser until the
    # page's run has drawn them: a rerun leaves stale copies until it ends).
    guest.wait_for_function(SIDEBAR_VALUES, arg={"Batch size": "32", "Seed": "7"})
