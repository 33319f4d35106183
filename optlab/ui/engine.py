"""The server's engine slots: how many 2-D runs and sweeps compute at once, and warm-up.

Thirty browsers share two cores: runs beyond `MAX_CONCURRENT_RUNS` wait for a
slot (with a spinner) instead of slowing everyone down. The first autograd
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
from collections.abc import Iterator

import streamlit as st

from optlab.caps import CAPS
from optlab.optim.config import OptimizerConfig
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.trajectory import collect

#: Runs computing at once per server; others wait their turn.
MAX_CONCURRENT_RUNS = CAPS.page_runs


@st.cache_resource
def run_slots() -> threading.BoundedSemaphore:
    """Caps concurrent runs per server: a workshop's thirty clicks share two cores."""
    return threading.BoundedSemaphore(MAX_CONCURRENT_RUNS)


#: How many `engine_slot` blocks each thread is inside (a page's script runs in one).
_held = threading.local()
#: Page runs waiting for a slot now (`waiting`).
_waiting = [0]
_waiting_lock = threading.Lock()


def waiting() -> int:
    """How many page runs are waiting for an engine slot now.

    A run holding a slot redraws its live chart less often while others wait
    (`optlab.ui.playground.cache.run_cached`): every redraw rebuilds a figure
    with the slot held, which under load made each run, and so the queue
    behind it, longer.
    """
    return _waiting[0]


@contextlib.contextmanager
def engine_slot() -> Iterator[None]:
    """Holds one of the server's engine slots, waiting (with a spinner) for a free one.

    Re-entrant per thread: a block inside another (a sweep and its best cell's
    replay, computed in one turn) runs in the outer block's slot instead of
    queueing again behind everyone else.
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
        with _waiting_lock:
            _waiting[0] += 1
        try:
            with st.spinner("Waiting for a free engine slot (other users are running)…"):
                slots.acquire()
        finally:
            with _waiting_lock:
                _waiting[0] -= 1
    _held.depth = 1
    try:
        yield
    finally:
        _held.depth = 0
        slots.release()


@st.cache_resource(show_spinner="Starting the engine…")
def warm_up() -> bool:
    """Runs one tiny step once per server process (see the module docstring)."""
    collect(SurfaceRunConfig((OptimizerConfig("sgd"),), Problem(steps=1)))
    gc.collect()
    gc.freeze()
    return True
