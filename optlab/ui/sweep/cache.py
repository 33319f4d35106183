"""Running sweeps for a page: a shared result cache, an engine slot, a progress bar.

Sweep results depend only on their `SweepConfig`, so one server-wide cache
serves every browser (a workshop's thirty default sweeps run once). Sweeps
share the playground's engine slots, so two cores are never asked for more
than two runs at once.
"""

from __future__ import annotations

import contextlib
import time

import streamlit as st

from optlab.sweep.config import SweepConfig
from optlab.sweep.run import SweepResult, run_sweep
from optlab.ui.cache import BoundedCache
from optlab.ui.engine import engine_process, engine_slot, share_engine
from optlab.ui.playground.cache import keep_run
from optlab.worker.client import Job, run_or_fallback

#: How often the progress bar moves at most.
BAR_EVERY_S = 0.25
#: Shown while another page runs the very same sweep (a class following one link).
SHARED_TEXT = "Another page is running this same sweep: its result shows here when it ends…"
#: Bytes of results kept per server: a 20 x 20 sweep with its paths holds about
#: 0.2 MB, a 100 x 100 one about 4.4 MB, the largest (200 x 200) about 18 MB.
CACHE_MB = 64


def new_sweep_cache(budget_mb: float = CACHE_MB) -> BoundedCache[SweepConfig, SweepResult]:
    """A cache of sweep results bounded by the bytes their arrays hold."""
    return BoundedCache(budget_mb * 2**20, weight=lambda result: result.nbytes)


@st.cache_resource
def sweep_cache() -> BoundedCache[SweepConfig, SweepResult]:
    """The process-wide cache (one per server)."""
    return new_sweep_cache()


def sweep_cached(
    cfg: SweepConfig, label: str = "Sweeping", replay: bool = False, cell: int | None = None
) -> SweepResult:
    """The result of ``cfg``, from the cache or run now with a progress bar (or, when
    another page is running the same sweep, that run's, once it is done).

    The sweep runs on the engine process (`optlab.worker`), or, without one, in
    this thread, taking turns with the other runs waiting for the engine
    (between steps, `share_engine`). Its bar moves at most every
    `BAR_EVERY_S`: each move is a message to the browser. On the engine process
    the bar moves while the page waits, its interpreter turn set aside
    (`Job.read`): the page waits in line once, for the result.

    With ``replay``, a sweep the engine process runs replays ``cell`` (the best
    one when None) in the same job, and the replay goes to the trajectory cache,
    where the page's `run_cached` of it finds it: a second job was a second wait
    for the page's turn, at the back of the line under load.
    """
    cache = sweep_cache()
    if (found := cache.get(cfg)) is not None:
        return found
    shared = st.spinner(SHARED_TEXT) if cfg in cache.in_flight else contextlib.nullcontext()
    with shared:
        done, missing, _ = cache.get_or_claim([cfg])
    if not missing:
        return done[cfg]
    try:
        steps = cfg.problem.steps
        bar = st.progress(0.0, text=f"{label}: {cfg.cells:,} runs of {steps} steps…")
        moved = time.monotonic()

        def report(step: int, total: int) -> None:
            nonlocal moved
            share_engine()
            if (now := time.monotonic()) - moved >= BAR_EVERY_S:
                moved = now
                text = f"{label}: step {step} of {total} for {cfg.cells:,} configurations"
                bar.progress(step / total, text=text)

        def remote(job: Job) -> SweepResult:
            replayed = []
            bar_moves = job.read(BAR_EVERY_S, on_progress=lambda answer: report(*answer[2:]))
            for answer in bar_moves:
                if answer[0] == "records":
                    replayed.append((answer[2], answer[3]))
                else:
                    result: SweepResult = answer[2]
                    if replayed:  # the engine replayed this cell, which exists then
                        keep_run(cfg.cell_run(result.cell_or_best(cell)), replayed)
                    return result
            raise AssertionError("the engine process ended a sweep without its result")

        def local() -> SweepResult:
            with engine_slot():
                return run_sweep(cfg, on_progress=report)

        try:
            key = {cfg.optimizer.key}
            job = ("sweep_replay", (cfg, cell)) if replay else ("sweep", cfg)
            result = run_or_fallback(engine_process(), key, *job, remote, local)
        finally:
            bar.empty()
        cache.put(cfg, result)
    finally:
        cache.in_flight.release([cfg])
    return result
