"""The load test's protocol sessions: each one a simulated browser tab that speaks
Streamlit's websocket protocol (`bench.st_protocol`), so one process drives
many sessions without a browser each.

They do what `bench.load_browser.BrowserSession` does and wait for the same
results: a page load is a new websocket session (a browser navigation opens
a new one too), a learning-rate change is a rerun with the new widget value,
the CNN job presses Start and then reruns the page's polling fragment on its
``run_every`` timer until "Finished" is shown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

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
from bench.st_protocol import (
    ConnectionLost,
    ProtocolError,
    RunResult,
    RunTimeout,
    Session,
    trace_length,
)

T = TypeVar("T")

#: The Adam slot's learning rate on the playground (the second slot's "lr").
ADAM_LR_KEY = "slot1_lr"
#: How often the CNN lab's polling fragment is rerun when it names no interval.
DEFAULT_TICK_S = 0.5


def contour_paths(result: RunResult) -> list[str] | None:
    """The names of the optimizer paths on the playground's contour chart (as the
    browser tests' ``PATH_NAMES`` reads them), or None without a contour chart."""
    for chart in result.charts:
        data = chart.get("data") or []
        if data and data[0].get("type") == "contour":
            return [
                t.get("name")
                for t in data
                if t.get("type") in ("scatter", "scattergl")
                and str(t.get("mode", "")).startswith("lines")
            ]
    return None


def sweep_drawn(result: RunResult, nx: int, ny: int) -> bool:
    """Whether the sweep's heatmap has one clickable cell per grid point and the best
    cell's replay (a contour with a ``lines+markers`` path) is drawn."""
    charts = [c.get("data") or [] for c in result.charts]
    cells = [t for data in charts for t in data if t.get("name") == "cells"]
    if not cells or trace_length(cells[0].get("x")) != nx * ny:
        return False
    return any(
        data and data[0].get("type") == "contour"
        for data in charts
        if any(t.get("mode") == "lines+markers" for t in data)
    )


class ProtocolSession(LoadSession):
    """One simulated tab, driving the app through the actions over the websocket."""

    def __init__(self, idx: int, url: str, timeout_s: float, counter: Numbering) -> None:
        self.idx = idx
        self.url = url
        self.timeout_s = timeout_s
        self.counter = counter
        self.session: Session | None = None
        self.last: RunResult | None = None
        self._leaving: set[asyncio.Task] = set()  # the closes of pages left

    async def navigate(self, page: str, query: str, rec: Record) -> RunResult:
        """Loads a page in a new websocket session, closing the old one (a navigation).

        The old one closes alongside, as a browser leaving a page closes its stream:
        the next page's load does not wait for the server's half of the closing
        handshake, which under load waits for the server's event loop. Each close's
        time goes to ``rec.closes`` (reported, not counted in any action)."""
        self._leave(rec)
        self.session = Session(self.url, self.timeout_s)
        await self.session.connect()
        self.last = await self.session.load(page, query)
        return self.last

    def _leave(self, rec: Record | None) -> None:
        """Starts closing the page's websocket, if one is open, without waiting."""
        if self.session is None:
            return
        old, self.session = self.session, None

        async def close() -> None:
            t0 = time.monotonic()
            await old.close()
            if rec is not None:
                rec.closes.append(time.monotonic() - t0)

        task = asyncio.create_task(close())
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)

    def _current(self) -> Session:
        if self.session is None:
            raise ActionError("other", "no page is loaded")
        return self.session

    async def close(self) -> None:
        self._leave(None)
        await asyncio.gather(*self._leaving)

    async def check(self) -> tuple[str, str] | None:
        if self.last is not None and self.last.exceptions:
            return "exception", f"exception element: {self.last.exceptions[0][:200]}"
        return None

    async def explain(self, kind: str, message: str) -> tuple[str, str]:
        if self.last is not None and self.last.exceptions:
            return "exception", f"{self.last.exceptions[0][:200]} (after {message})"
        return kind, message

    # The actions. Each returns when its result is on the page.

    async def home(self, rec: Record) -> None:
        result = await self._guard(self.navigate("", "", rec))
        if (paths := contour_paths(result)) != DEFAULT_PATHS:
            raise ActionError("other", f"the contour's paths are {paths}, not {DEFAULT_PATHS}")

    async def lr_change(self, rec: Record) -> None:
        from optlab.optim.config import OptimizerConfig

        value = adam_lr(self.counter())
        want = list(DEFAULT_PATHS)
        want[1] = OptimizerConfig.create("adam", lr=float(value)).label
        self.last = await self._guard(self._current().set(ADAM_LR_KEY, float(value)))
        if (paths := contour_paths(self.last)) != want:
            raise ActionError("other", f"the contour's paths are {paths}, not {want}")

    async def sweep(self, rec: Record) -> None:
        query = sweep_query(self.counter())
        result = await self._guard(self.navigate("sweeps", query, rec))
        if not sweep_drawn(result, SWEEP_N, SWEEP_N):
            raise ActionError("other", "the sweep's heatmap or its best cell's replay is missing")

    async def cnn_page(self, rec: Record) -> None:
        result = await self._guard(self.navigate("cnn-lab", self.next_cnn_query(), rec))
        start = [n for n in result.elements("button") if n.proto.label == "Start"]
        if not start:
            raise ActionError("other", "the CNN lab has no Start button")
        if start[0].proto.disabled:
            raise ActionError("other", "the CNN lab's Start button is disabled")

    async def cnn_job(self, rec: Record) -> None:
        session = self._current()
        self.last = await self._guard(session.click("Start"))
        limit = self.limit_s("cnn_job")
        deadline = time.monotonic() + limit
        try:
            while True:
                text = self.last.text
                if self.last.exceptions:
                    raise ActionError("exception", "exception element on the CNN lab")
                if self.job_finished(text, rec):
                    break
                if not session.fragments:
                    raise ActionError("job", "the page stopped polling without 'Finished'")
                if time.monotonic() > deadline:
                    raise ActionError("timeout", f"no 'Finished' within {limit:.0f} s")
                # The frontend reruns a fragment on its run_every timer.
                interval = min(session.fragments.values(), default=DEFAULT_TICK_S)
                await asyncio.sleep(max(interval, 0.1))
                ticked = await self._guard(session.tick())
                if ticked is not None:
                    self.last = ticked
        finally:
            rec.running_now.discard(self.idx)

    async def _guard(self, run: Awaitable[T]) -> T:
        """Awaits a run, turning the protocol's failures into the load test's kinds."""
        try:
            return await run
        except ConnectionLost as err:
            raise ActionError("websocket", str(err)) from err
        except RunTimeout as err:
            raise ActionError("timeout", str(err)) from err
        except ProtocolError as err:
            raise ActionError("other", f"protocol: {err}") from err
