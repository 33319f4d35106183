"""Fault tolerance, end to end: headless Chromium against real `streamlit run` servers.

What happens when things go wrong around a training job: a tab is closed while
its job trains (the orphan is cancelled and its trainer freed for the next
browser), the websocket drops and reconnects (the page picks up the same job),
and an optimizer plugin raises inside ``step()`` (the job fails cleanly, with
its message on the page, and other users' jobs and the Surface Playground go
on); and a page that falls behind reading its stream is dropped by the server's
keep-alive and comes back to its session. Each test starts its own server with
an empty cache folder, so the CNN
lab trains on its synthetic shapes; the helpers that drive the CNN lab are
those of ``tests/browser/test_cnn.py``.
"""

from __future__ import annotations

import re
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from tests.browser.test_cnn import (
    LIVE_POINTS,
    LIVE_TRACES,
    no_exception,
    result_rows,
    server_env,
    settle,
    sidebar,
    tiny_run,
)
from tests.support.server import PATHS_ARE, serve_app

pytestmark = pytest.mark.browser

#: A cheap share link for the first page load of a fresh server: the playground's
#: default comparison (three optimizers, 500 steps) would cost the test seconds.
CHEAP_HOME = "/?opt=sgd&steps=5"
#: Seconds a job may go unpolled before the server cancels it (the ``job_idle_s`` cap,
#: 30 s by default; shorter here, still many times the page's 1 s poll).
IDLE_TIMEOUT_S = 15
#: Streamlit's hidden config option that honours `window.streamlitDebug.disconnectWebsocket()`
#: (global.e2eTest; without it, or global.developmentMode, the server only logs a warning).
E2E_ENV = {"STREAMLIT_GLOBAL_E2E_TEST": "true"}

QUEUED = re.compile(r"Waiting for a free trainer: number (\d+) in the queue")


def open_lab(browser, url: str, sockets: list | None = None):
    """A new context and tab on the CNN lab, reached from / via the sidebar navigation.

    ``sockets`` collects the tab's websockets (Playwright's objects), if given.
    """
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        if sockets is not None:
            tab.on("websocket", lambda ws: sockets.append(ws))
        tab.goto(url + CHEAP_HOME)
        tab.get_by_role("heading", name="Surface Playground").wait_for()
        tab.get_by_test_id("stSidebarNav").get_by_text("CNN lab").click()
        tab.get_by_role("heading", name="CNN lab").wait_for()
        sidebar(tab).get_by_role("button", name="Start").wait_for()
        assert tab.url.split("?")[0].endswith("/cnn-lab")
    except BaseException:
        context.close()
        raise
    return context, tab


def progress(tab, total: int):
    return tab.get_by_text(re.compile(rf"Step ([\d,]+) of {total:,} · epoch"))


def shown_step(tab, total: int) -> int:
    text = progress(tab, total).first.inner_text()
    return int(re.search(r"Step ([\d,]+)", text)[1].replace(",", ""))


def start(tab) -> None:
    button = sidebar(tab).get_by_role("button", name="Start")
    expect(button).to_be_enabled()
    button.click()


def finishes_normally(tab, steps: int) -> None:
    """The job runs to its end: success message, a "done" row per optimizer, no exception."""
    try:
        tab.get_by_text(re.compile(rf"Finished {steps:,} steps in")).wait_for(timeout=150_000)
    except PlaywrightTimeoutError:
        shown = progress(tab, steps)
        pytest.fail(
            f"not finished: {shown.first.inner_text() if shown.count() else 'no progress bar'}"
        )
    tab.get_by_role("heading", name="Inside the trained models").wait_for()
    rows = result_rows(tab, "done")
    assert [r[0] for r in rows] == ["SGD (lr=0.01, momentum=0.9)", "Adam"]
    accuracies = [r[i] for r in rows for i in (1, 2)]  # written as percentages: "55.0%"
    assert all(a.endswith("%") and 0 <= float(a[:-1]) <= 100 for a in accuracies), rows
    expect(sidebar(tab).get_by_role("button", name="Start")).to_be_enabled()
    expect(sidebar(tab).get_by_role("button", name="Stop")).to_be_disabled()
    no_exception(tab)


def test_closed_tab_frees_its_trainer_for_the_next_browser(browser, tmp_path):
    env = server_env(
        tmp_path / "cache", OPTLAB_MAX_JOBS="1", OPTLAB_CAP_JOB_IDLE_S=str(IDLE_TIMEOUT_S)
    )
    with serve_app(tmp_path / "server.log", env=env) as url:
        first, tab = open_lab(browser, url)
        second, other = None, None
        try:
            second, other = open_lab(browser, url)
            tiny_run(tab, steps=3000)  # minutes of training: it cannot end by itself here
            tiny_run(other, steps=10)

            start(tab)
            progress(tab, 3000).wait_for()
            tab.wait_for_function(f"() => ({LIVE_POINTS})() > 0")
            points = tab.evaluate(LIVE_POINTS)
            tab.wait_for_function(f"() => ({LIVE_POINTS})() > {points}", timeout=30_000)
            assert 0 < shown_step(tab, 3000) < 3000

            # The user closes the tab mid-training: nothing polls its job any more.
            first.close()
            closed = time.monotonic()
            first = None

            start(other)
            queued = other.get_by_text(QUEUED)
            queued.wait_for(timeout=15_000)
            message = queued.inner_text()
            assert QUEUED.search(message)[1] == "1", message
            assert "(1 training at a time on this server)" in message, message
            assert time.monotonic() - closed < IDLE_TIMEOUT_S  # still queued behind the orphan

            # The orphan is cancelled an idle timeout after its last poll; the queued job starts.
            progress(other, 10).wait_for(timeout=45_000)
            waited = time.monotonic() - closed
            print(f"the queued job started {waited:.1f} s after the first tab closed")
            assert waited < IDLE_TIMEOUT_S + 10, f"the queued job started {waited:.1f} s later"
            expect(other.get_by_text(QUEUED)).to_have_count(0)
            finishes_normally(other, 10)
        finally:
            for context in (first, second):
                if context is not None:
                    context.close()


def test_dropped_websocket_reconnects_to_the_same_running_job(browser, tmp_path):
    steps = 150  # still running when the page first shows its curves (40 was not, once)
    env = server_env(tmp_path / "cache", OPTLAB_MAX_JOBS="1", **E2E_ENV)
    with serve_app(tmp_path / "server.log", env=env) as url:
        sockets = []
        context, tab = open_lab(browser, url, sockets)
        try:
            tiny_run(tab, steps=steps)
            start(tab)
            progress(tab, steps).wait_for()
            tab.wait_for_function(f"() => ({LIVE_POINTS})() > 0")
            before = tab.evaluate(LIVE_POINTS)
            step_before = shown_step(tab, steps)
            assert step_before < steps

            # Streamlit's own debug hook: the server closes this page's websocket.
            assert tab.evaluate("() => typeof window.streamlitDebug?.disconnectWebsocket") == (
                "function"
            )
            dropped = [ws for ws in sockets if not ws.is_closed()]
            assert len(dropped) == 1, [ws.url for ws in sockets]
            with tab.expect_websocket(timeout=30_000) as reconnect:
                tab.evaluate("() => window.streamlitDebug.disconnectWebsocket()")
            fresh = reconnect.value
            assert fresh.url.endswith("/_stcore/stream")
            for _ in range(50):  # the close event may arrive just after the new socket's
                if dropped[0].is_closed():
                    break
                tab.wait_for_timeout(100)
            assert dropped[0].is_closed()
            assert not fresh.is_closed()

            # The page picks its job up again (same session): the curves and the step go on.
            tab.wait_for_function(f"() => ({LIVE_POINTS})() > {before}", timeout=30_000)
            deadline = time.monotonic() + 30
            while shown_step(tab, steps) <= step_before and time.monotonic() < deadline:
                tab.wait_for_timeout(200)
            assert shown_step(tab, steps) > step_before
            no_exception(tab)
            finishes_normally(tab, steps)
            # Nothing was lost across the drop: one batch-loss point per step per optimizer.
            traces = tab.evaluate(LIVE_TRACES)
            batch = {t["name"]: t["points"] for t in traces if t["name"].endswith("(batch loss)")}
            assert batch == {
                "SGD (lr=0.01, momentum=0.9) (batch loss)": steps,
                "Adam (batch loss)": steps,
            }, traces
            assert sum(t["points"] for t in traces) > before
            assert len([ws for ws in sockets if not ws.is_closed()]) == 1
        finally:
            context.close()
        log = (tmp_path / "server.log").read_text(errors="replace")
        assert "Client tried to disconnect websocket" not in log


BOOM_PLUGIN = '''
"""An optimizer plugin that passes the loader's smoke test, then raises from its 5th step."""

import torch

from optlab.optim import HParam, OptimizerSpec


class Boom(torch.optim.Optimizer):
    def __init__(self, params, lr=0.01):
        if not lr >= 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        super().__init__(params, dict(lr=lr))
        self.calls = 0

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.calls += 1
        if self.calls >= 5:
            raise RuntimeError("plugin exploded")
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])
        return loss


BOOM_SPEC = OptimizerSpec(
    key="boom",
    label="Boom",
    factory=Boom,
    hparams=(
        HParam("lr", 0.01, 0.0, 1000.0, log=True, low_open=True, help="learning rate γ"),
    ),
    rule=r"\\theta_t = \\theta_{t-1} - \\gamma\\, g_t \\quad (t \\le 4)",
    notes=("Raises RuntimeError from its fifth step on: a fault-tolerance test.",),
)

OPTLAB_OPTIMIZERS = (BOOM_SPEC,)
'''


def write_boom_plugin(folder: Path) -> Path:
    folder.mkdir()
    (folder / "boom.py").write_text(textwrap.dedent(BOOM_PLUGIN).lstrip())
    return folder


def pick_optimizer(tab, slot: int, label: str, key: str) -> None:
    """Chooses ``label`` in the sidebar's optimizer selectbox number ``slot`` (from 1)."""
    box = sidebar(tab).get_by_role("combobox", name=f"Optimizer {slot}")
    box.click()
    box.fill(label)  # the list is long: filter it, as a user would
    tab.get_by_role("option", name=label, exact=True).click()
    settle(tab)
    # The address bar is the page's share link: the slot now holds the plugin.
    tab.wait_for_function("key => location.search.includes('opt=' + key)", arg=key)


def test_a_raising_plugin_fails_its_own_run_only(browser, tmp_path):
    plugins = write_boom_plugin(tmp_path / "plugins")
    env = server_env(tmp_path / "cache", OPTLAB_MAX_JOBS="1", OPTLAB_PLUGINS=str(plugins))
    with serve_app(tmp_path / "server.log", env=env) as url:
        contexts = []
        try:
            boom_context, boom = open_lab(browser, url)
            contexts.append(boom_context)
            normal_context, normal = open_lab(browser, url)
            contexts.append(normal_context)
            pick_optimizer(boom, 1, "Boom", "boom")
            assert "opt=adam" in boom.url  # slot 2 keeps its default, Adam
            tiny_run(boom, steps=40)
            tiny_run(normal, steps=10)

            # Both users press Start together; one trainer on this server.
            start(boom)
            start(normal)

            failed = boom.get_by_text("training failed:")
            failed.wait_for(timeout=60_000)
            assert failed.inner_text().strip() == "training failed: RuntimeError: plugin exploded"
            settle(boom)
            expect(sidebar(boom).get_by_role("button", name="Start")).to_be_enabled()
            expect(sidebar(boom).get_by_role("button", name="Stop")).to_be_disabled()
            # Four steps trained; the fifth raised inside Boom's step() and ended the job.
            assert shown_step(boom, 40) == 4
            names = {t["name"] for t in boom.evaluate(LIVE_TRACES)}
            assert {"Boom", "Adam"} <= names
            rows = result_rows(boom, "failed at step 4")
            assert [r[0] for r in rows] == ["Boom", "Adam"]
            no_exception(boom)

            # The other user's job was not touched by the failure: it runs to its end.
            finishes_normally(normal, 10)
            no_exception(boom)

            # On the Surface Playground the same plugin fails the run, not the page.
            surface_context = browser.new_context(viewport={"width": 1400, "height": 1000})
            contexts.append(surface_context)
            surface = surface_context.new_page()
            surface.set_default_timeout(60_000)
            # Plain SGD at lr=0.01 leaves Rosenbrock (the default) before its 5th step
            # (the page reports that as diverged); the quadratic keeps it going.
            surface.goto(f"{url}/?surface=quadratic&opt=boom:lr=0.01")
            shown = surface.get_by_text("The run failed:")
            shown.wait_for()
            assert shown.inner_text().strip() == "The run failed: RuntimeError: plugin exploded"
            no_exception(surface)
            # ... and the engine is free for the next comparison.
            surface.goto(f"{url}/?opt=sgd&opt=adam&steps=20")
            surface.get_by_role("heading", name="Summary").wait_for()
            expect(surface.get_by_text("The run failed:")).to_have_count(0)
            no_exception(surface)
        finally:
            for context in contexts:
                context.close()


#: Blocks the page's main thread for the given milliseconds, 50 ms from now (after a
#: widget's rerun request has gone out): a browser that falls behind its stream, as a
#: starved tab does.
BLOCK_PAGE = """(ms) => setTimeout(() => {
  const began = performance.now();
  while (performance.now() - began < ms) {}
}, 50)"""


@contextmanager
def home_with_keepalive(browser, tmp_path: Path, **env: str):
    """A server whose keep-alive pings every 3 s (``env``: more of its settings), and
    a tab on its home page, drawn and settled, that records its sockets."""
    from bench.load_actions import DEFAULT_PATHS
    from bench.load_browser import WATCH_SOCKETS

    env = server_env(tmp_path / "cache", STREAMLIT_SERVER_WEBSOCKET_PING_INTERVAL="3", **env)
    with serve_app(tmp_path / "server.log", env=env) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            context.add_init_script(WATCH_SOCKETS)
            tab = context.new_page()
            tab.set_default_timeout(60_000)
            tab.goto(url)
            tab.wait_for_function(PATHS_ARE, arg=DEFAULT_PATHS)
            settle(tab)
            yield tab
        finally:
            context.close()


def set_adam_lr(tab, lr: str, block_ms: int = 0) -> None:
    """Types ``lr`` into Adam's box (the home comparison's second optimizer) and waits
    until the comparison is drawn with it; with ``block_ms``, the page is blocked
    that long while the rerun's elements come in."""
    from bench.load_actions import DEFAULT_PATHS
    from optlab.optim.config import OptimizerConfig

    box = tab.get_by_label("lr", exact=True).nth(1)
    box.fill(lr)
    box.press("Enter")
    if block_ms:
        tab.evaluate(BLOCK_PAGE, block_ms)
        tab.wait_for_timeout(block_ms + 1000)
    want = list(DEFAULT_PATHS)
    want[1] = OptimizerConfig.create("adam", lr=float(lr)).label
    tab.wait_for_function(PATHS_ARE, arg=want)
    settle(tab)


def test_a_page_that_falls_behind_its_stream_is_dropped_and_comes_back(browser, tmp_path):
    """The server's keep-alive (Streamlit's uvicorn pings every
    ``server.websocketPingInterval`` seconds, 30 by default, 3 here, and drops a
    stream whose answer is later than that) drops a page that stops reading while
    the server sends it a rerun: Chromium answers pings for a page only as the page
    reads what came before them. The page connects again to the same session and
    loses nothing. The load test's niced Chromium tabs lost their streams this way
    (docs/load-test.md: closed by the server, code 1006)."""
    from bench.load_browser import CLOSED_SOCKETS

    with home_with_keepalive(browser, tmp_path) as tab:
        # Blocked with nothing coming in, the page keeps its stream.
        tab.evaluate(BLOCK_PAGE, 12_000)
        tab.wait_for_timeout(13_000)
        assert tab.evaluate(CLOSED_SOCKETS) == []

        # Blocked while the server sends a rerun's elements: dropped.
        set_adam_lr(tab, "0.0234", block_ms=12_000)
        set_adam_lr(tab, "0.0345")
        (closed,) = tab.evaluate(CLOSED_SOCKETS)
        assert closed["openS"] is not None and not closed["byPage"]
        assert closed["code"] == 1006  # no close frame read: the stream was backed up
        sockets = tab.evaluate("() => window.__optlabSockets")
        assert len(sockets) == 2 and sockets[1]["closeS"] is None
        # The same session: the changed value stayed, and the next change drew too.
        assert tab.get_by_label("lr", exact=True).nth(1).input_value() == "0.0345"
        no_exception(tab)


def test_a_page_that_outlives_its_session_keeps_the_change_it_sends(browser, tmp_path):
    """A page dropped for longer than ``server.disconnectedSessionTTL`` (2 s here,
    120 s by default) comes back to a new, empty session, and the browser's first
    message to it is the rerun of the user's next change. The page's set-up fills
    the widgets from the share link, which mirrors the run before that change: the
    lr the user had just typed snapped back and the page drew the old comparison
    (the load test's tabs met this after a keep-alive drop). The number the browser
    sent is kept (optlab.ui.reconnect)."""
    from bench.load_browser import CLOSED_SOCKETS

    ttl = {"STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": "2"}
    with home_with_keepalive(browser, tmp_path, **ttl) as tab:
        # Blocked for 20 s while the rerun's elements come in: the keep-alive drops
        # the stream within 6 s, and the session is gone 2 s later, long before the
        # page can connect again.
        set_adam_lr(tab, "0.0234", block_ms=20_000)
        (closed,) = tab.evaluate(CLOSED_SOCKETS)
        assert closed["code"] == 1006 and not closed["byPage"]
        # The new session's first run: the number typed is the number drawn.
        for lr in ("0.0345", "0.0456"):
            set_adam_lr(tab, lr)
            assert tab.get_by_label("lr", exact=True).nth(1).input_value() == lr
        assert "0.0456" in tab.url  # the link follows it
        no_exception(tab)
