"""The load test's browser sessions say who closed a lost websocket.

Streamlit's page closes a websocket itself when it has not opened within 15 s
and then connects again: under a heavy load that is a slow server, not a
connection the server dropped. The harness records each socket's life in the
page (`bench.load_browser.WATCH_SOCKETS`); here a real Chromium talks to a
real websocket server and to a port that never answers, on 127.0.0.1.

With the browser tests, not the harness's (tests/bench): the session's sync
Playwright keeps an event loop running in the main thread, where the protocol
client's tests call ``asyncio.run`` (tests/bench runs first).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from websockets.sync.server import serve

from bench.load_actions import Numbering
from bench.load_browser import (
    CLOSED_SOCKETS,
    PAGE_STATE,
    STREAMS,
    WATCH_SOCKETS,
    BrowserSession,
    came_back,
    describe_close,
    describe_page,
    describe_pending,
)

pytestmark = pytest.mark.browser


class _Blank(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>blank</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[tuple[str, int, int]]:
    """A page's URL; a websocket server that answers a socket's first message with one
    of its own and closes it (code 1011); and a port that accepts connections and
    never answers."""
    page = ThreadingHTTPServer(("127.0.0.1", 0), _Blank)

    def close_on_message(ws) -> None:
        ws.recv()
        ws.send("one message")
        ws.close(1011, "bye")

    ws = serve(close_on_message, "127.0.0.1", 0)
    silent = socket.create_server(("127.0.0.1", 0))
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (page, ws)]
    for t in threads:
        t.start()
    try:
        yield (
            f"http://127.0.0.1:{page.server_address[1]}/",
            ws.socket.getsockname()[1],
            silent.getsockname()[1],
        )
    finally:
        page.shutdown()
        ws.shutdown()
        silent.close()


@contextmanager
def watched_page(browser) -> Iterator[tuple]:
    """A fresh context and page whose websockets `WATCH_SOCKETS` records; closed after."""
    context = browser.new_context()
    try:
        context.add_init_script(WATCH_SOCKETS)
        yield context, context.new_page()
    finally:
        context.close()


def test_a_lost_socket_says_whether_the_server_closed_it_or_the_page_gave_up(
    browser, servers
) -> None:
    url, ws_port, silent_port = servers
    with watched_page(browser) as (_, page):
        page.goto(url)
        page.evaluate(
            """([ws, silent]) => {
              const s = new WebSocket(`ws://127.0.0.1:${ws}/_stcore/stream`);
              s.onopen = () => s.send('hello');
              const t = new WebSocket(`ws://127.0.0.1:${silent}/_stcore/stream`);
              setTimeout(() => t.close(), 300);  // as Streamlit's page does after 15 s
              new WebSocket(`ws://127.0.0.1:${silent}/other`);  // not Streamlit's: ignored
            }""",
            [ws_port, silent_port],
        )
        page.wait_for_function(f"() => ({CLOSED_SOCKETS})().length === 2", timeout=15_000)
        by_port = {e["url"].split(":")[2].split("/")[0]: e for e in page.evaluate(CLOSED_SOCKETS)}
    served, silent = by_port[str(ws_port)], by_port[str(silent_port)]
    assert served["openS"] is not None and served["code"] == 1011 and not served["byPage"]
    assert served["messages"] == 1 and served["lastMessageS"] <= served["closeS"]
    assert describe_close(served) == (
        f"opened in {served['openS']:.1f} s, closed by the server after "
        f"{served['closeS']:.1f} s (code 1011); 1 message(s) read, the last "
        f"{served['closeS'] - served['lastMessageS']:.1f} s before the close"
    )
    assert silent["openS"] is None and silent["byPage"] and silent["closeS"] >= 0.3
    assert describe_close(silent) == (
        f"never opened; the page gave up on it after {silent['closeS']:.1f} s and connected again"
    )


def test_a_page_that_opened_a_stream_again_after_a_drop_came_back(browser, servers) -> None:
    """The page's own record read as the harness reads it after an action: a stream the
    server closed, then one open now (a reconnection); until the new one opens, not."""
    url, ws_port, _ = servers
    with watched_page(browser) as (_, page):
        page.goto(url)
        page.evaluate(
            """(ws) => { const s = new WebSocket(`ws://127.0.0.1:${ws}/_stcore/stream`);
                         s.onopen = () => s.send('hello'); }""",
            ws_port,
        )
        page.wait_for_function(f"() => ({CLOSED_SOCKETS})().length === 1", timeout=15_000)
        dropped = page.evaluate(STREAMS)
        # Connected again: the server closes a stream only after its first message.
        page.evaluate("(ws) => { new WebSocket(`ws://127.0.0.1:${ws}/_stcore/stream`); }", ws_port)
        page.wait_for_function(f"() => ({STREAMS})().at(-1).openS !== null", timeout=15_000)
        back = page.evaluate(STREAMS)
    assert len(dropped) == 1 and not came_back(dropped)
    assert len(back) == 2 and back[0]["code"] == 1011 and back[1]["closeS"] is None
    assert came_back(back)


def test_a_timed_out_tab_says_how_far_its_page_got(browser, servers) -> None:
    """What the harness reports of a tab whose action never ended: its document, its
    charts and status, each stream, the requests still unanswered, those that failed,
    and the page's console errors."""
    url, ws_port, silent_port = servers
    with watched_page(browser) as (context, page):
        # The harness's own session, on Playwright's sync page: it only subscribes.
        session = BrowserSession(0, context, page, url, 60, Numbering())
        page.goto(url)
        page.evaluate(
            """([ws, silent]) => {
              const s = new WebSocket(`ws://127.0.0.1:${ws}/_stcore/stream`);
              s.onopen = () => s.send('hello');
              const script = document.createElement('script');
              script.src = `http://127.0.0.1:${silent}/static/js/index.js?v=1`;
              document.head.appendChild(script);
              console.error('Failed to load resource: 408');
            }""",
            [ws_port, silent_port],
        )
        page.wait_for_function(f"() => ({CLOSED_SOCKETS})().length === 1", timeout=15_000)
        page.wait_for_timeout(1000)
        waiting = describe_pending(session.pending, time.monotonic())
        page.evaluate("() => window.stop()")  # the script never arrives
        page.wait_for_timeout(500)
        state = page.evaluate(PAGE_STATE)
    assert re.fullmatch(r"1 request\(s\) unanswered: GET index\.js for [1-9]\d* s", waiting)
    assert not session.pending
    assert session.failed == ["GET index.js: net::ERR_ABORTED"]
    assert session.console == ["error: Failed to load resource: 408"]
    assert state["ready"] == "complete" and state["charts"] == 0 and state["status"] == ""
    [(opened, closed, messages, by_page)] = state["sockets"]
    assert opened is not None and closed >= opened and messages == 1 and not by_page
    text = describe_page(state)
    assert text.startswith(f"the page, {state['ageS']:.0f} s old: document complete, 0 chart(s)")
    assert f"opened at {opened:.1f} s, closed at {closed:.1f} s by the server, 1 message(s)" in text
