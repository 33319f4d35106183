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
on a semaphore, which holds no lock and leaves the interpreter to the event
loop and the scripts whose turn it is. A script that waits for something
(its run's next records from the engine process, an engine slot, another
session's result in a cache) sets its turn aside meanwhile (`set_aside`), so a
waiting script never keeps another from running. A script that waited
``patience_s`` without a turn runs anyway (and is counted): a wait nobody set
aside, or a long one, slows the others but never stops them.

Pure Python (no Streamlit); the server uses one per process (`TURNS`), the
pages through `optlab.ui.turns`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from optlab.caps import CAPS


class PythonTurns:
    """At most ``turns`` holders at once (0: no limit); re-entrant per thread."""

    def __init__(self, turns: int, patience_s: float = 10.0) -> None:
        if turns < 0:
            raise ValueError(f"turns must be 0 (no limit) or more, not {turns}")
        self.turns = turns
        self.patience_s = patience_s
        self._free = threading.Semaphore(max(turns, 1))
        self._held = threading.local()
        self._lock = threading.Lock()
        self._waiting = 0
        self._taken = 0
        #: Waits that ran out of patience (the holder ran without a turn).
        self.overdue = 0

    def holding(self) -> bool:
        """Whether the calling thread holds a turn now."""
        return getattr(self._held, "owned", False)  # False again once the outer block ends

    def waiting(self) -> int:
        """Threads waiting for a turn now."""
        with self._lock:
            return self._waiting

    def taken(self) -> int:
        """Turns held now."""
        with self._lock:
            return self._taken

    def _give_back(self) -> None:
        with self._lock:
            self._taken -= 1
        self._free.release()

    def _take(self) -> bool:
        """Waits for a turn (at most ``patience_s``); whether it got one."""
        got = self._free.acquire(blocking=False)
        if not got:
            with self._lock:
                self._waiting += 1
            try:
                got = self._free.acquire(timeout=self.patience_s)
            finally:
                with self._lock:
                    self._waiting -= 1
        with self._lock:
            if got:
                self._taken += 1
            else:
                self.overdue += 1
        return got

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
                self._give_back()

    @contextlib.contextmanager
    def set_aside(self) -> Iterator[None]:
        """Gives the caller's turn back while it waits in the block, and waits for one
        again after it. Outside a `turn` block it does nothing."""
        if not self.holding():
            yield
            return
        self._held.owned = False
        self._give_back()
        try:
            yield
        finally:
            self._held.owned = self._take()


#: The server process's turns (``page_python`` cap).
TURNS = PythonTurns(CAPS.page_python)


def turn() -> contextlib.AbstractContextManager:
    """`PythonTurns.turn` of the server's turns: around a page's script run."""
    return TURNS.turn()


def set_aside() -> contextlib.AbstractContextManager:
    """`PythonTurns.set_aside` of the server's turns: around a page's blocking wait."""
    return TURNS.set_aside()
