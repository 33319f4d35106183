"""The load test's browser sessions: one Chromium context and tab each, driven by
Playwright's async API (Debian's Chromium, never ``playwright install``)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

from bench.load_actions import (
    DEFAULT_PATHS,
    SWEEP_N,
    ActionError,
    LoadSession,
    Numbering,
    Record,
    adam_lr,
    sweep_query,
)
from tests.support.server import CHROMIUM, CHROMIUM_ARGS, PATHS_ARE

# The browser tests' flags, plus no throttling of pages Chromium deems in the background.
LOAD_CHROMIUM_ARGS = [
    *CHROMIUM_ARGS,
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]

IDLE = "() => !document.querySelector('[data-testid=stStatusWidget]')"
# The sweep heatmap's grid size and the replay path (tests/browser/test_sweep.py).
SWEEP_DONE = """([nx, ny]) => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const g = plots.find(g => g._fullData && g._fullData.some(t => t.name === 'cells'));
  // One clickable point per cell (the heatmap itself is drawn from the cells' edges).
  if (!g || g._fullData.find(t => t.name === 'cells').x.length !== nx * ny) return false;
  const r = plots.find(g => g._fullData && g._fullData.length && g._fullData[0].type === 'contour');
  return !!(r && r._fullData.some(t => t.mode === 'lines+markers'));
}"""
# Runs before the page's own scripts: records each Streamlit websocket's life (whether it
# opened, when, the messages the page read, its close code, and whether the page itself
# closed it) in window.__optlabSockets. Playwright's "close" event says only that a socket closed;
# Streamlit's page closes one itself when it has not opened within 15 s (and then
# connects again), which is a slow server, not a dropped connection.
WATCH_SOCKETS = """(() => {
  const Native = window.WebSocket;
  const log = (window.__optlabSockets = []);
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      const began = performance.now();
      const entry = {url: String(url), openS: null, closeS: null, code: null, byPage: false,
                     messages: 0, lastMessageS: null};
      log.push(entry);
      this.watched = entry;
      this.addEventListener('open', () => { entry.openS = (performance.now() - began) / 1000; });
      this.addEventListener('message', () => {
        entry.messages += 1;
        entry.lastMessageS = (performance.now() - began) / 1000;
      });
      this.addEventListener('close', e => {
        entry.closeS = (performance.now() - began) / 1000;
        entry.code = e.code;
      });
    }
    close(...args) {
      if (this.watched.closeS === null) this.watched.byPage = true;
      return super.close(...args);
    }
  };
})()"""
# Every stream socket of the current document, oldest first, as WATCH_SOCKETS recorded them.
STREAMS = """() => (window.__optlabSockets || []).filter(e => e.url.includes('/_stcore/stream'))"""
# The closed ones among them.
CLOSED_SOCKETS = f"() => ({STREAMS})().filter(e => e.closeS !== null)"
MAIN_TEXT = """() => {
  const m = document.querySelector('[data-testid=stMain]');
  return {text: m ? m.innerText : '',
          exceptions: document.querySelectorAll('[data-testid=stException]').length};
}"""


_LAUNCHER = """\
#!{python}
# Runs {executable} at nice {nice}, and the session it leads at autogroup nice {nice}.
import os
import sys

if os.getsid(0) == os.getpid():
    try:
        with open("/proc/self/autogroup", "w") as group:
            group.write("{nice}")
    except OSError:
        pass
os.nice({nice})
os.execv({executable!r}, [{executable!r}, *sys.argv[1:]])
"""


def niced(executable: str, nice: int, folder: Path) -> str:
    """A launcher in ``folder`` that runs ``executable`` at nice ``nice``; ``executable``
    itself for 0.

    A nice value alone does not keep Chromium off the server's cores. Chromium
    sets its processes' own priorities (as root its browser and GPU processes
    run at nice -8), and where the kernel groups processes by session
    (``/proc/sys/kernel/sched_autogroup_enabled``, on by default) a nice value
    only counts within its session: the cores are shared between sessions
    first. Playwright starts the browser in a session of its own, so the
    launcher, when it leads its session, also sets that session's autogroup
    nice, which covers every process Chromium starts. Run outside a session of
    its own, it leaves its caller's session alone.
    """
    if nice <= 0:
        return executable
    script = folder / f"nice{nice}-{Path(executable).name}"
    script.write_text(_LAUNCHER.format(python=sys.executable, executable=executable, nice=nice))
    script.chmod(0o755)
    return str(script)


async def launch_chromium(playwright, webgl: bool, nice: int = 0, folder: Path | None = None):
    """Debian's headless Chromium with the load test's flags (no WebGL unless asked:
    the playground's hidden 3-D tab would be rendered in software on the server's cores),
    at nice ``nice`` (its launcher written in ``folder``): Chromium sessions alongside the
    protocol client only check that the pages render, and should not take the cores the
    server is measured on."""
    return await playwright.chromium.launch(
        executable_path=niced(CHROMIUM, nice, folder or Path(tempfile.gettempdir())),
        args=LOAD_CHROMIUM_ARGS + ([] if webgl else ["--disable-3d-apis"]),
        headless=True,
    )


class BrowserSession(LoadSession):
    """One browser context and its tab, driving the app through the actions."""

    def __init__(self, idx: int, context, page, url: str, timeout_s: float, counter: Numbering):
        self.idx = idx
        self.context = context
        self.page = page
        self.url = url
        self.timeout_s = timeout_s
        self.counter = counter
        self.sockets: set = set()
        self.retired: set = set()
        self.lost: list[str] = []
        self._reported = 0
        #: Requests of the tab that failed (a script cut off, say), as ``name: why``.
        self.failed: list[str] = []
        #: Requests of the tab with no response yet, and when each was sent.
        self.pending: dict = {}
        #: The page's console errors and warnings (Streamlit's own say why it cannot connect).
        self.console: list[str] = []
        #: Lost streams the page connected again after, its action finished (`came_back`).
        self.reconnects: list[str] = []
        page.on("websocket", self._on_websocket)
        page.on("request", self._on_request)
        page.on("requestfinished", self._on_finished)
        page.on("requestfailed", self._on_failed)
        page.on("console", self._on_console)

    @classmethod
    async def open(cls, browser, idx: int, url: str, timeout_s: float, counter: Numbering):
        context = await browser.new_context(viewport={"width": 1400, "height": 1000})
        await context.add_init_script(WATCH_SOCKETS)
        page = await context.new_page()
        page.set_default_timeout(timeout_s * 1000)
        return cls(idx, context, page, url, timeout_s, counter)

    def _on_websocket(self, ws) -> None:
        if "/_stcore/stream" not in ws.url:
            return

        def closed(_=None) -> None:
            if ws not in self.retired:
                self.lost.append(f"websocket closed ({ws.url})")

        def failed(error=None) -> None:
            if ws not in self.retired:
                self.lost.append(f"websocket error: {error}")

        ws.on("close", closed)
        ws.on("socketerror", failed)
        self.sockets.add(ws)

    def _on_request(self, request) -> None:
        self.pending[request] = time.monotonic()

    def _on_finished(self, request) -> None:
        self.pending.pop(request, None)

    def _on_failed(self, request) -> None:
        self.pending.pop(request, None)
        self.failed.append(f"{request.method} {_name(request.url)}: {request.failure}")

    def _on_console(self, message) -> None:
        if message.type in ("error", "warning"):
            self.console.append(f"{message.type}: {message.text[:200]}")

    def _retire_sockets(self) -> None:
        self.retired |= self.sockets

    async def goto(self, path: str) -> None:
        self._retire_sockets()  # navigating away closes them: not an error
        await self.page.goto(f"{self.url}{path}")

    async def close(self) -> None:
        self._retire_sockets()
        with contextlib.suppress(Exception):
            await self.context.close()

    async def idle(self) -> None:
        await self.page.wait_for_function(IDLE)

    # The actions. Each returns when its result is on the page.

    async def home(self, rec: Record) -> None:
        await self.goto("/")
        await self.page.wait_for_function(PATHS_ARE, arg=DEFAULT_PATHS)
        await self.idle()

    async def lr_change(self, rec: Record) -> None:
        from optlab.optim.config import OptimizerConfig

        value = adam_lr(self.counter())
        want = list(DEFAULT_PATHS)
        want[1] = OptimizerConfig.create("adam", lr=float(value)).label
        box = self.page.get_by_label("lr", exact=True).nth(1)
        await box.fill(value)
        await box.press("Enter")
        await self.page.wait_for_function(PATHS_ARE, arg=want)
        await self.idle()

    async def sweep(self, rec: Record) -> None:
        await self.goto(f"/sweeps?{sweep_query(self.counter())}")
        await self.page.wait_for_function(SWEEP_DONE, arg=[SWEEP_N, SWEEP_N])
        await self.idle()

    async def cnn_page(self, rec: Record) -> None:
        await self.goto(f"/cnn-lab?{self.next_cnn_query()}")
        start = self.page.get_by_test_id("stSidebar").get_by_role("button", name="Start")
        await start.wait_for()
        await self.idle()
        if not await start.is_enabled():
            raise ActionError("other", "the CNN lab's Start button is disabled")

    async def cnn_job(self, rec: Record) -> None:
        start = self.page.get_by_test_id("stSidebar").get_by_role("button", name="Start")
        await start.click()
        limit = self.limit_s("cnn_job")
        deadline = time.monotonic() + limit
        try:
            while True:
                seen = await self.page.evaluate(MAIN_TEXT)
                text = seen["text"]
                if seen["exceptions"]:
                    raise ActionError("exception", "exception box on the CNN lab")
                if self.job_finished(text, rec):
                    break
                if time.monotonic() > deadline:
                    raise ActionError("timeout", f"no 'Finished' within {limit:.0f} s")
                await asyncio.sleep(0.5)
        finally:
            rec.running_now.discard(self.idx)
        await self.idle()

    def _lost(self) -> tuple[str, str] | None:
        """A websocket lost since the last action ended (it explains whatever else happened)."""
        if len(self.lost) > self._reported:
            self._reported = len(self.lost)
            return "websocket", self.lost[-1]
        return None

    async def _who_closed(self, message: str) -> str:
        """``message`` with what the page recorded of its closed sockets (`WATCH_SOCKETS`)."""
        with contextlib.suppress(Exception):
            closed = await self.page.evaluate(CLOSED_SOCKETS)
            if closed:
                return f"{message}: {'; '.join(describe_close(e) for e in closed)}"
            # Each document keeps its own record: a navigation starts a new one.
            return f"{message}: none of this page's streams closed (an earlier page's did)"
        return message

    async def check(self) -> tuple[str, str] | None:
        lost = self._lost()
        if lost:
            message = await self._who_closed(lost[1])
            streams = []
            with contextlib.suppress(Exception):
                streams = await self.page.evaluate(STREAMS)
            if not came_back(streams):
                return lost[0], message
            # The action finished on a stream the page opened again: a reconnection.
            self.reconnects.append(message)
        if await self.page.locator("[data-testid=stException]").count():
            return "exception", "exception box after the action"
        return None

    def take_reconnects(self) -> list[str]:
        taken, self.reconnects = self.reconnects, []
        return taken

    async def explain(self, kind: str, message: str) -> tuple[str, str]:
        if kind in ("timeout", "other"):  # an exception box explains a wait that never ended
            with contextlib.suppress(Exception):
                box = self.page.locator("[data-testid=stException]")
                if await box.count():
                    text = (await box.first.inner_text(timeout=5000)).strip()
                    kind, message = "exception", f"{text[:200]} (after {message})"
        lost = self._lost()
        if lost:
            return lost[0], await self._who_closed(lost[1])
        if kind == "timeout":
            with contextlib.suppress(Exception):
                state = await asyncio.wait_for(self.page.evaluate(PAGE_STATE), 10)
                message = f"{message} ({describe_page(state)})"
            if self.failed:
                shown = "; ".join(self.failed[-3:])
                message = f"{message}; {len(self.failed)} request(s) failed, the last: {shown}"
            if self.pending:
                message = f"{message}; {describe_pending(self.pending, time.monotonic())}"
            if self.console:
                shown = " | ".join(self.console[-3:])
                message = f"{message}; console ({len(self.console)}), the last: {shown}"
        return kind, message


def came_back(streams: list[dict]) -> bool:
    """Whether a page whose stream closed has connected again: its document's streams
    (`STREAMS`, oldest first) end with one open now, after one that closed.

    The server's keep-alive drops the stream of a page that falls behind reading it
    (a tab short of CPU); Streamlit's page then connects again to the same session
    and loses nothing (tests/browser/test_faults.py). An action that finished on
    such a page counts it as a reconnection, not an error; a page that never came
    back fails its action, which counts.
    """
    if len(streams) < 2 or not any(e["closeS"] is not None for e in streams[:-1]):
        return False
    last = streams[-1]
    return last["openS"] is not None and last["closeS"] is None


def _name(url: str) -> str:
    """A request's file name, as short as a report line wants it."""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1][:60]


def describe_pending(pending: dict, now: float) -> str:
    """The requests still waiting for a response (oldest first, three at most), in words."""
    oldest = sorted(pending.items(), key=lambda item: item[1])
    shown = ", ".join(f"{r.method} {_name(r.url)} for {now - t:.0f} s" for r, t in oldest[:3])
    return f"{len(pending)} request(s) unanswered: {shown}"


#: What a tab shows when an action timed out: how far its document got, its charts, the
#: status widget's text, and each of its streams (`WATCH_SOCKETS`), times from its start.
PAGE_STATE = """() => ({
  ready: document.readyState,
  ageS: performance.now() / 1000,
  charts: document.querySelectorAll('.js-plotly-plot').length,
  status: (document.querySelector('[data-testid=stStatusWidget]') || {}).innerText || '',
  sockets: (window.__optlabSockets || []).map(e => [e.openS, e.closeS, e.messages, e.byPage]),
})"""


def describe_page(state: dict) -> str:
    """`PAGE_STATE` in words."""
    streams = [
        f"opened {'never' if o is None else f'at {o:.1f} s'}"
        + ("" if c is None else f", closed at {c:.1f} s by {'the page' if by else 'the server'}")
        + f", {n} message(s)"
        for o, c, n, by in state["sockets"]
    ]
    status = " ".join(state["status"].split())[:80]
    return (
        f"the page, {state['ageS']:.0f} s old: document {state['ready']}, "
        f"{state['charts']} chart(s), status {status or 'none'!r}; "
        f"streams: {'; '.join(streams) or 'none'}"
    )


def describe_close(entry: dict) -> str:
    """One closed socket as `WATCH_SOCKETS` recorded it, in words."""
    if entry["openS"] is None:
        how = "never opened"
        if entry["byPage"]:
            how += f"; the page gave up on it after {entry['closeS']:.1f} s and connected again"
        return how
    who = "the page" if entry["byPage"] else "the server"
    said = f"opened in {entry['openS']:.1f} s, closed by {who} after {entry['closeS']:.1f} s "
    said += f"(code {entry['code']}); {entry['messages']} message(s) read"
    if entry["lastMessageS"] is not None:
        said += f", the last {entry['closeS'] - entry['lastMessageS']:.1f} s before the close"
    return said
