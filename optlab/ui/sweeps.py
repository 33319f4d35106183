"""Running sweeps for a page: a shared result cache, an engine slot, a progress bar.

Sweep results depend only on their `SweepConfig`, so one server-wide LRU
serves every browser (a workshop's thirty default sweeps run once). The
sweeps share the playground's engine slots, so two cores are never asked
for more than two runs at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import streamlit as st

from optlab.sweep import SweepConfig, SweepResult, run_sweep
from optlab.ui.runs import run_slots

#: Results kept per server (a 100 x 100 sweep with its paths is about 5 MB).
MAX_RESULTS = 32


class SweepCache:
    """A thread-safe LRU of finished sweeps keyed by config."""

    def __init__(self, max_items: int = MAX_RESULTS) -> None:
        self._items: OrderedDict[SweepConfig, SweepResult] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_items

    def get(self, key: SweepConfig) -> SweepResult | None:
        """The cached result of ``key``, or None."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: SweepConfig, value: SweepResult) -> None:
        """Stores a result, evicting the least recently used."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)


@st.cache_resource
def sweep_cache() -> SweepCache:
    """The process-wide cache (one per server)."""
    return SweepCache()


def sweep_cached(cfg: SweepConfig, label: str = "Sweeping") -> SweepResult:
    """The result of ``cfg``, from the cache or run now with a progress bar."""
    cache = sweep_cache()
    if (found := cache.get(cfg)) is not None:
        return found
    bar = st.progress(0.0, text=f"{label}: {cfg.cells:,} runs of {cfg.steps} steps…")
    report: Callable[[int, int], None] = lambda step, total: bar.progress(  # noqa: E731
        step / total, text=f"{label}: step {step} of {total} for {cfg.cells:,} configurations"
    )
    slots = run_slots()
    if not slots.acquire(blocking=False):
        with st.spinner("Waiting for a free engine slot (other users are running)…"):
            slots.acquire()
    try:
        result = run_sweep(cfg, on_progress=report)
    finally:
        slots.release()
        bar.empty()
    cache.put(cfg, result)
    return result
