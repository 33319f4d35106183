"""Turns at the interpreter: how many page scripts of one server run Python at once.

A Python process runs one thread's Python at a time (the interpreter lock). A
thread that wants the lock waits up to the switch interval (5 ms) for the thread
that holds it, so under a class's load the server's event loop, which answers
the health check and carries every page's messages, waited behind every page
script that was building a figure, once for each time it needed the lock.
With the engine process (`optlab.worker`) the pages' threads no longer wait in
torch calls, so thirty of them ran Python at once in each replica and a health
check took up to 1.6 s (docs/load-test.md).

`PythonTurns` lets at most ``turns`` page scripts run at once; the others wait
in line (`FairSlots`), which holds no lock and leaves the interpreter to the
event loop and the scripts whose turn it is. A script that waits for something
(its run's next records from the engine process, an engine slot, another
session's result in a cache) sets its turn aside meanwhile (`set_aside`), so a
waiting script never keeps another from running. A script that waited
``patience_s`` without a turn runs anyway (and is counted): a wait nobody set
aside, or a long one, slows the others but never stops them.

The line is ordered by the CPU time each script's thread has had in its turns
so far (least attained service first), then first come, first served. A new
script (a page opened, a widget's rerun, a fragment's poll) has had none and
goes ahead of the scripts back from a wait, which have. First come, first
served, a short page waited behind the long ones that asked first: at N = 30
the CNN lab's first load (0.05 s alone, the shortest page) was the one action
over 1.5 x its ideal; with this order it was within it in every run
measured (docs/load-test.md, 7 December).

Pure Python (no Streamlit); the server uses one per process (`TURNS`), the
pages through `optlab.ui.turns`.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator

from optlab.caps import CAPS


class FairSlots:
    """``slots`` slots handed out by rank (lowest first), then first come, first
    served (all of the engine's slots' waiters have rank 0).

    A slot given back goes straight to the first waiter in line, so a thread that
    asks later, or gives one back and asks again at once, cannot take it first.
    With ``threading.Semaphore`` it can: a freed slot goes to whichever thread
    asks before the woken waiter runs, and that waiter queues again at the back:
    a script back from a short wait went ahead of scripts that had waited
    longer (tests/test_turns.py). Holds no lock while waiting.
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"at least one slot is needed, not {slots}")
        self._free = slots
        #: (rank, arrival, ticket): a heap, whose first entry is served next.
        self._queue: list[tuple[float, int, threading.Event]] = []
        self._arrivals = itertools.count()
        self._lock = threading.Lock()

    def _line_up(self, rank: float) -> threading.Event:
        """A ticket in line (the caller holds the lock)."""
        ticket = threading.Event()
        heapq.heappush(self._queue, (rank, next(self._arrivals), ticket))
        return ticket

    def _serve_next(self) -> None:
        """Hands a slot to the first waiter in line (the caller holds the lock)."""
        heapq.heappop(self._queue)[2].set()

    def acquire(
        self,
        blocking: bool = True,
        timeout: float | None = None,
        waiting: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        rank: float = 0.0,
    ) -> bool:
        """Takes a slot, queueing for one behind the waiters of a lower rank and the
        earlier ones of the same (the wait inside ``waiting()``); False when
        ``blocking`` is False and none is free now, or when ``timeout`` seconds
        passed first (the place in line is given up)."""
        with self._lock:
            if self._free and not self._queue:
                self._free -= 1
                return True
            if not blocking:
                return False
            ticket = self._line_up(rank)
        return self._wait(ticket, timeout, waiting)

    def release(self) -> None:
        """Gives a slot back: to the first waiter in line, or free."""
        with self._lock:
            if self._queue:
                self._serve_next()
            else:
                self._free += 1

    def pass_on(
        self, waiting: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    ) -> bool:
        """Hands the caller's slot to the first waiter in line and queues for one
        again, at rank 0; whether it did (False, and the slot kept, when nobody
        waits)."""
        with self._lock:
            if not self._queue:
                return False
            self._serve_next()
            ticket = self._line_up(0.0)
        return self._wait(ticket, None, waiting)

    def _wait(
        self,
        ticket: threading.Event,
        timeout: float | None,
        waiting: Callable[[], contextlib.AbstractContextManager],
    ) -> bool:
        with waiting():
            if ticket.wait(timeout):  # set by `release` or `pass_on`: the slot is ours
                return True
        with self._lock:
            if ticket.is_set():  # handed over as the time ran out
                return True
            self._queue = [entry for entry in self._queue if entry[2] is not ticket]
            heapq.heapify(self._queue)
        return False

    def waiting(self) -> int:
        """Threads waiting for a slot now."""
        with self._lock:
            return len(self._queue)

    def free(self) -> int:
        """Slots nobody holds now."""
        with self._lock:
            return self._free


class PythonTurns:
    """At most ``turns`` holders at once (0: no limit); re-entrant per thread. A
    holder that sets its turn aside asks again ranked by the CPU time its thread
    had in this turn so far, behind every waiter that had less."""

    def __init__(self, turns: int, patience_s: float = 10.0) -> None:
        if turns < 0:
            raise ValueError(f"turns must be 0 (no limit) or more, not {turns}")
        self.turns = turns
        self.patience_s = patience_s
        self._slots = FairSlots(max(turns, 1))
        self._held = threading.local()
        self._lock = threading.Lock()
        #: Waits that ran out of patience (the holder ran without a turn).
        self.overdue = 0

    def holding(self) -> bool:
        """Whether the calling thread holds a turn now."""
        return getattr(self._held, "owned", False)  # False again once the outer block ends

    def waiting(self) -> int:
        """Threads waiting for a turn now."""
        return self._slots.waiting()

    def taken(self) -> int:
        """Turns held now."""
        return max(self.turns, 1) - self._slots.free()

    def _take(self, used_s: float = 0.0) -> bool:
        """Waits for a turn in line, ranked by ``used_s`` (at most ``patience_s``);
        whether it got one. The turn's CPU time goes on from ``used_s``."""
        got = self._slots.acquire(timeout=self.patience_s, rank=used_s)
        if not got:
            with self._lock:
                self.overdue += 1
        self._held.cpu_origin = time.thread_time() - used_s
        return got

    def _used(self) -> float:
        """CPU seconds the calling thread had in its turn so far."""
        return time.thread_time() - self._held.cpu_origin

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Holds a turn for the block, waiting for one. Inside another `turn` block of
        the same thread (a fragment inside its page), the outer turn serves."""
        if not self.turns:
            yield
            return
        depth = getattr(self._held, "depth", 0)
        if depth:
            self._held.depth = depth + 1
            try:
                yield
            finally:
                self._held.depth = depth
            return
        owned = self._take()
        self._held.depth, self._held.owned = 1, owned
        try:
            yield
        finally:
            owned = self._held.owned  # `set_aside` may have lost it to impatience
            self._held.depth, self._held.owned = 0, False
            if owned:
                self._slots.release()

    @contextlib.contextmanager
    def set_aside(self) -> Iterator[None]:
        """Gives the caller's turn back while it waits in the block, and waits for one
        again after it. Outside a `turn` block it does nothing."""
        if not self.holding():
            yield
            return
        self._held.owned = False
        used_s = self._used()
        self._slots.release()
        try:
            yield
        finally:
            self._held.owned = self._take(used_s)


#: The server process's turns (``page_python`` cap).
TURNS = PythonTurns(CAPS.page_python)


def turn() -> contextlib.AbstractContextManager:
    """`PythonTurns.turn` of the server's turns: around a page's script run."""
    return TURNS.turn()


def set_aside() -> contextlib.AbstractContextManager:
    """`PythonTurns.set_aside` of the server's turns: around a page's blocking wait."""
    return TURNS.set_aside()
