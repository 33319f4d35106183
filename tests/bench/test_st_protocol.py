"""The websocket protocol client (bench/st_protocol.py) against real servers.

One real ``streamlit run app.py`` for the module: the playground's contour
and its paths, a learning-rate change that redraws them, the Sweeps page from
a share link, and a tiny CNN run started with Start and polled through the
page's fragment until "Finished". A second, tiny app (written here) has one
widget of every kind the client can set, echoes their values and raises on a
button: the values must arrive typed as the script expects, and the
exception must be reported. Failures of the protocol itself (an unknown
page, a run that never finishes, an ambiguous or wrong widget value) raise.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.load_actions import DEFAULT_PATHS, SWEEP_N, sweep_query
from bench.load_protocol import contour_paths, sweep_drawn
from bench.st_protocol import ProtocolError, RunTimeout, Session, trace_length
from tests.support.server import launch_app, stop_app

CNN_QUERY = (
    "page=cnn&data=synthetic&opt=sgd:lr=0.01,momentum=0.9&steps=6&train=256&test=50&batch=32&eval=3"
)
TINY_APP = """
import json
import time

import streamlit as st

values = {
    "count": st.number_input("count", value=3, step=1),
    "rate": st.number_input("rate", value=0.5),
    "name": st.text_input("name", value="ada"),
    "notes": st.text_area("notes", value=""),
    "on": st.checkbox("on"),
    "tog": st.toggle("toggle", key="tog"),
    "pick": st.selectbox("pick", ["a", "b", "c"], index=1),
    "radio": st.radio("radio", ["x", "y"]),
    "slide": st.slider("slide", 0, 10, 4),
    "range": st.slider("range", 0.0, 1.0, (0.2, 0.8)),
    "multi": st.multiselect("multi", ["p", "q", "r"], default=["p"]),
}
st.text(json.dumps({k: [v, type(v).__name__] for k, v in values.items()}))
st.number_input("twin", key="twin_a")
st.number_input("twin", key="twin_b")
if st.checkbox("slow"):
    time.sleep(30)
if st.button("boom"):
    raise ValueError("boom from the tiny app")
"""


def run(coro):
    """Runs one coroutine on a fresh event loop (each test is its own client)."""
    return asyncio.run(asyncio.wait_for(coro, 120))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real OptLab server for the module."""
    log = tmp_path_factory.mktemp("st_protocol") / "server.log"
    proc, url = launch_app(log)
    try:
        yield url
    finally:
        stop_app(proc, log)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server running the tiny app above."""
    root = tmp_path_factory.mktemp("tiny_app")
    (root / "app.py").write_text(TINY_APP)
    proc, url = launch_app(root / "server.log", root=root)
    try:
        yield url
    finally:
        stop_app(proc, root / "server.log")


def echoed(result) -> dict:
    """The tiny app's echo of its widgets' values and types."""
    (text,) = [n.proto.body for n in result.elements("text")]
    return json.loads(text)


# ------------------------------------------------------------------ the OptLab app


def test_home_shows_the_contour_with_every_optimizer_path(app: str) -> None:
    async def go():
        async with Session(app) as s:
            return await s.load("", "")

    result = run(go())
    assert result.status == "finished" and not result.exceptions
    assert result.page is not None and result.page.title == "Surface Playground"
    assert {p.url_pathname for p in result.pages} >= {"", "cnn-lab", "sweeps", "studies"}
    assert contour_paths(result) == DEFAULT_PATHS
    contour = next(c for c in result.charts if c["data"][0]["type"] == "contour")
    adam = next(t for t in contour["data"] if t.get("name") == "Adam (lr=0.1)")
    assert trace_length(adam["x"]) > 100  # a path of many steps, not an empty trace
    assert result.widget("slot1_lr").value == 0.1
    assert result.widget("steps").value == 500 and result.widget("steps").integer
    assert "Surface Playground" in result.texts


def test_changing_adams_learning_rate_redraws_its_path(app: str) -> None:
    async def go():
        async with Session(app) as s:
            before = await s.load("", "")
            after = await s.set("slot1_lr", 0.02)
            return before, after

    before, after = run(go())
    assert contour_paths(after) == [DEFAULT_PATHS[0], "Adam (lr=0.02)", DEFAULT_PATHS[2]]
    assert after.widget("slot1_lr").value == 0.02

    def adam(result, name):
        contour = next(c for c in result.charts if c["data"][0]["type"] == "contour")
        return next(t for t in contour["data"] if t.get("name") == name)

    assert adam(before, "Adam (lr=0.1)")["x"] != adam(after, "Adam (lr=0.02)")["x"]
    # The other paths are the same runs.
    assert adam(before, DEFAULT_PATHS[0])["x"] == adam(after, DEFAULT_PATHS[0])["x"]


def test_the_sweep_page_from_a_share_link(app: str) -> None:
    async def go():
        async with Session(app) as s:
            return await s.load("sweeps", sweep_query(4242))

    result = run(go())
    assert result.page is not None and result.page.url_pathname == "sweeps"
    assert not result.exceptions
    assert sweep_drawn(result, SWEEP_N, SWEEP_N)
    assert not sweep_drawn(result, SWEEP_N + 1, SWEEP_N)


def test_a_cnn_run_is_started_and_polled_until_finished(app: str) -> None:
    async def go():
        async with Session(app) as s:
            page = await s.load("cnn-lab", CNN_QUERY)
            started = await s.click("Start")
            polled, last = 0, started
            deadline = time.monotonic() + 90
            while s.fragments and time.monotonic() < deadline:
                await asyncio.sleep(min(s.fragments.values()))
                last = await s.tick() or last
                polled += 1
            return page, started, polled, last, dict(s.fragments)

    page, started, polled, last, fragments = run(go())
    assert page.page is not None and page.page.url_pathname == "cnn-lab"
    assert started.fragment_ids, "the running job registers a polling fragment"
    assert polled >= 1
    assert re.search(r"Finished 6 steps in", last.text), last.text[-2000:]
    assert not fragments, "polling stops when the job ends"
    # The fragment's st.rerun kept the page (the navigation's page hash was sent).
    assert last.status == "finished" and last.page.url_pathname == "cnn-lab"
    assert not last.exceptions


def test_an_unknown_page_is_an_error(app: str) -> None:
    async def go():
        async with Session(app) as s:
            await s.load("no-such-page", "")

    with pytest.raises(ProtocolError, match="asked for page 'no-such-page'"):
        run(go())


# ------------------------------------------------------------------ every widget kind


def test_every_widget_kind_arrives_typed(tiny: str) -> None:
    async def go():
        async with Session(tiny) as s:
            first = await s.load()
            for name, value in [
                ("count", 7),
                ("rate", 0.25),
                ("name", "grace"),
                ("notes", "two\nlines"),
                ("on", True),
                ("tog", True),
                ("pick", "c"),
                ("radio", 1),
                ("slide", 9),
                ("range", (0.1, 0.3)),
                ("multi", ["q", "r"]),
            ]:
                last = await s.set(name, value)
            return first, last

    first, last = run(go())
    assert echoed(first) == {
        "count": [3, "int"],
        "rate": [0.5, "float"],
        "name": ["ada", "str"],
        "notes": ["", "str"],
        "on": [False, "bool"],
        "tog": [False, "bool"],
        "pick": ["b", "str"],
        "radio": ["x", "str"],
        "slide": [4, "int"],
        "range": [[0.2, 0.8], "tuple"],
        "multi": [["p"], "list"],
    }
    assert echoed(last) == {
        "count": [7, "int"],
        "rate": [0.25, "float"],
        "name": ["grace", "str"],
        "notes": ["two\nlines", "str"],
        "on": [True, "bool"],
        "tog": [True, "bool"],
        "pick": ["c", "str"],
        "radio": ["y", "str"],
        "slide": [9, "int"],
        "range": [[0.1, 0.3], "tuple"],
        "multi": [["q", "r"], "list"],
    }


def test_wrong_widget_names_and_values_are_refused_before_sending(tiny: str) -> None:
    async def go():
        async with Session(tiny) as s:
            await s.load()
            with pytest.raises(LookupError, match=r"2 widgets are labelled 'twin'.*twin_a"):
                await s.set("twin", 1.0)
            with pytest.raises(LookupError, match="no widget labelled or keyed 'nope'"):
                await s.set("nope", 1)
            with pytest.raises(ValueError, match="'count' holds integers"):
                await s.set("count", 2.5)
            with pytest.raises(ValueError, match="'pick' has no option 'z'"):
                await s.set("pick", "z")
            with pytest.raises(ValueError, match="'name' wants a string"):
                await s.set("name", 3)
            with pytest.raises(ValueError, match="not a button"):
                await s.click("count")
            return await s.set("twin_b", 2.0)

    result = run(go())
    assert result.widget("twin_b").value == 2.0 and result.widget("twin_a").value == 0.0


def test_an_exception_in_the_script_is_reported(tiny: str) -> None:
    async def go():
        async with Session(tiny) as s:
            await s.load()
            boom = await s.click("boom")
            calm = await s.set("name", "after")  # the trigger is true for one run only
            return boom, calm

    boom, calm = run(go())
    assert boom.exceptions == ["ValueError: boom from the tiny app"]
    assert not calm.exceptions and echoed(calm)["name"] == ["after", "str"]


def test_a_run_that_never_finishes_raises(tiny: str) -> None:
    async def go():
        async with Session(tiny, timeout_s=1.0) as s:
            await s.load()
            await s.set("slow", True)

    with pytest.raises(RunTimeout, match="no script_finished within 1 s"):
        run(go())


def test_a_closed_server_port_is_a_lost_connection(tmp_path: Path) -> None:
    from bench.st_protocol import ConnectionLost
    from tests.support.server import free_port

    async def go():
        async with Session(f"http://127.0.0.1:{free_port()}", timeout_s=5) as s:
            await s.load()

    with pytest.raises(ConnectionLost, match=r"cannot open ws://127\.0\.0\.1"):
        run(go())
