"""The server's engine slots: how many 2-D runs and sweeps compute at once, and warm-up.

Thirty browsers share two cores: runs beyond `MAX_CONCURRENT_RUNS` wait for a
slot (with a spinner) instead of slowing everyone down, and a long run takes
turns with the runs waiting (`EngineTurns`). With the ``engine_process``
cap the runs compute in an engine process instead (`engine_process`,
`optlab.worker`), whose threads compute side by side. The first autograd
backward in a process costs about a second (lazy initialisation inside
torch), so the server pays it once at start-up, not on someone's first click.
Warm-up then freezes the objects start-up made (modules, torch's and plotly's
tables: ~250,000) out of the garbage collector's full passes: each would
otherwise walk them all, ~110 ms holding the GIL that training and every
other session wait for.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Iterator

import streamlit as st

from optlab.caps import CAPS
from optlab.optim.config import OptimizerConfig
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.trajectory import collect
from optlab.turns import FairSlots, set_aside
from optlab.worker.client import EngineProcess

#: Runs computing at once per server; others wait their turn.
MAX_CONCURRENT_RUNS = CAPS.page_runs
#: How long a run computes before passing its slot to a waiting run.
TURN_S = CAPS.page_turn_ms / 1000


class EngineTurns:
    """The engine's slots, handed out in turns.

    At most ``slots`` runs compute at once. Runs that find no free slot queue,
    first come, first served: a slot given back goes straight to the longest
    waiter, so a run that gives one back and asks again cannot jump the queue.
    A run that has computed for ``turn_s`` while others wait passes its slot on
    and queues again (`Turn.share`, between two steps): round robin. Without
    it every run waited for the whole of the runs ahead of it, so a quick
    change waited as long behind a long run as a long run did; with turns a
    run's wait grows with its own size, as each of N sessions sharing the
    cores fairly would see (docs/load-test.md).

    Pure Python (no Streamlit): the pages use one per server (`run_slots`).
    """

    def __init__(self, slots: int, turn_s: float = TURN_S, clock=time.monotonic) -> None:
        if slots < 1:
            raise ValueError(f"the engine needs at least one slot, not {slots}")
        self.turn_s = turn_s
        self.clock = clock
        self._slots = FairSlots(slots)

    def acquire(self, blocking: bool = True) -> bool:
        """Takes a slot, queueing behind earlier waiters for one (no interpreter turn
        held meanwhile); False when ``blocking`` is False and none is free now."""
        return self._slots.acquire(blocking, waiting=set_aside)

    def release(self) -> None:
        """Gives a slot back: to the longest waiter, or free."""
        self._slots.release()

    def pass_turn(self) -> bool:
        """Hands the caller's slot to the longest waiter and queues for one again;
        whether it did (False, and the slot kept, when nobody waits)."""
        return self._slots.pass_on(waiting=set_aside)

    def waiting(self) -> int:
        """Runs waiting for a slot now."""
        return self._slots.waiting()

    def free(self) -> int:
        """Slots nobody holds now."""
        return self._slots.free()

    @contextlib.contextmanager
    def turn(self) -> Iterator[Turn]:
        """Holds a slot for a block (waiting for one): the block calls
        ``turn.share()`` between its steps."""
        self.acquire()
        try:
            yield Turn(self)
        finally:
            self.release()


class Turn:
    """One holder's use of an `EngineTurns` slot: when its turn began."""

    def __init__(self, turns: EngineTurns) -> None:
        self.turns = turns
        self.began = turns.clock()

    def share(self) -> bool:
        """Between two steps of a run: once this turn has lasted ``turn_s`` and
        others wait, passes the slot on and waits for the next turn; whether it did."""
        turns = self.turns
        if turns.clock() - self.began < turns.turn_s:
            return False
        passed = turns.pass_turn()
        self.began = turns.clock()
        return passed


@st.cache_resource
def run_slots() -> EngineTurns:
    """Caps concurrent runs per server: a workshop's thirty clicks share two cores."""
    return EngineTurns(MAX_CONCURRENT_RUNS)


#: The `engine_slot` blocks each thread is inside (a page's script runs in one),
#: and its turn while it holds one.
_held = threading.local()


def waiting() -> int:
    """How many page runs are waiting for an engine slot now.

    A run holding a slot redraws its live chart less often while others wait
    (`optlab.ui.playground.cache.run_cached`): every redraw rebuilds a figure
    with the slot held, which under load made each run, and so the queue
    behind it, longer. Cheap inside `engine_slot` (a run asks at every step):
    it skips `run_slots`' cache lookup.
    """
    turn: Turn | None = getattr(_held, "turn", None)
    return (turn.turns if turn is not None else run_slots()).waiting()


def share_engine() -> bool:
    """Called between two steps of a run inside `engine_slot`: passes the slot to a
    waiting run once this one's turn is over (`Turn.share`); whether it did.
    Outside an `engine_slot` block it does nothing."""
    turn: Turn | None = getattr(_held, "turn", None)
    return turn.share() if turn is not None else False


@contextlib.contextmanager
def engine_slot() -> Iterator[None]:
    """Holds one of the server's engine slots, waiting (with a spinner) for a free one.

    Re-entrant per thread: a block inside another (a sweep and its best cell's
    replay, computed in one turn) runs in the outer block's slot instead of
    queueing again behind everyone else. The runs inside call `share_engine`
    between their steps, so that a long run takes turns with the others.
    """
    depth = getattr(_held, "depth", 0)
    if depth:
        _held.depth = depth + 1
        try:
            yield
        finally:
            _held.depth = depth
        return
    slots = run_slots()
    if not slots.acquire(blocking=False):
        with st.spinner("Waiting for a free engine slot (other users are running)…"):
            slots.acquire()
    _held.depth, _held.turn = 1, Turn(slots)
    try:
        yield
    finally:
        _held.depth, _held.turn = 0, None
        slots.release()


#: One per server process, started by `warm_up`. A module's object rather than a
#: cached resource: clearing Streamlit's caches must not orphan a running process.
_ENGINE = EngineProcess() if CAPS.engine_process else None


def engine_process() -> EngineProcess | None:
    """The server's engine process (`optlab.worker`), or None where the
    ``engine_process`` cap turns it off and runs compute in the pages' threads."""
    return _ENGINE


def computing() -> contextlib.AbstractContextManager:
    """The block of a page step that computes: an engine slot where runs compute in
    the page's threads; nothing where they go to the engine process (whose threads
    compute side by side; a run it cannot take gets a slot of its own here)."""
    return contextlib.nullcontext() if engine_process() is not None else engine_slot()


@st.cache_resource(show_spinner="Starting the engine…")
def warm_up() -> bool:
    """Runs one tiny step once per server process (see the module docstring), and
    starts the engine process without waiting for it."""
    if (engine := engine_process()) is not None:
        engine.start()
    collect(SurfaceRunConfig((OptimizerConfig("sgd"),), Problem(steps=1)))
    gc.collect()
    gc.freeze()
    return True
