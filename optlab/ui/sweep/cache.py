"""Running sweeps for a page: a shared result cache, an engine slot, a progress bar.

Sweep results depend only on their `SweepConfig`, so one server-wide cache
serves every browser (a workshop's thirty default sweeps run once). Sweeps
share the playground's engine slots, so two cores are never asked for more
than two runs at once.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from optlab.sweep.config import SweepConfig
from optlab.sweep.run import SweepResult, run_sweep
from optlab.ui.cache import BoundedCache
from optlab.ui.engine import engine_slot

#: Results kept per server (a 100 x 100 sweep with its paths is about 5 MB).
MAX_RESULTS = 32


@st.cache_resource
def sweep_cache() -> BoundedCache[SweepConfig, SweepResult]:
    """The process-wide cache (one per server)."""
    return BoundedCache(MAX_RESULTS)


def sweep_cached(cfg: SweepConfig, label: str = "Sweeping") -> SweepResult:
    """The result of ``cfg``, from the cache or run now with a progress bar."""
    cache = sweep_cache()
    if (found := cache.get(cfg)) is not None:
        return found
    steps = cfg.problem.steps
    bar = st.progress(0.0, text=f"{label}: {cfg.cells:,} runs of {steps} steps…")
    report: Callable[[int, int], None] = lambda step, total: bar.progress(  # noqa: E731
        step / total, text=f"{label}: step {step} of {total} for {cfg.cells:,} configurations"
    )
    try:
        with engine_slot():
            result = run_sweep(cfg, on_progress=report)
    finally:
        bar.empty()
    cache.put(cfg, result)
    return result
