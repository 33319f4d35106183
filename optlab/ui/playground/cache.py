"""The surface result cache: per-optimizer trajectories shared by every browser, and live runs.

Each optimizer's trajectory depends only on its own config and the shared
problem, never on its neighbours, so results are cached per slot: changing
one slot's learning rate recomputes that slot alone. The cache is
process-wide (a workshop's thirty browsers asking for the default comparison
compute it once) and holds immutable trajectories only, bounded by the
steps they record (about 250 bytes each): one 5000-step path weighs as much
as a hundred short ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import streamlit as st

from optlab.caps import CAPS
from optlab.surface.run import SurfaceRunConfig, run_surface
from optlab.surface.trajectory import Trajectory, TrajectoryCollector
from optlab.ui.cache import BoundedCache
from optlab.ui.engine import engine_slot, share_engine, waiting

#: How often the page redraws while a run is in progress, in seconds of the run's own
#: computing (with nobody waiting for a slot; ``REDRAW_EVERY_S * (1 + waiting)``
#: while others wait, see `run_cached`).
REDRAW_EVERY_S = 0.5
#: Time budget of one page run (its own turns of the engine); longer runs stop with what they have.
RUN_BUDGET_S = CAPS.page_run_s
#: Memory of one recorded step, about (its point, loss, gradient and the optimizer's
#: state figures).
STEP_BYTES = 250
#: Recorded steps the cache holds: about 30 MB (``CACHE_STEPS * STEP_BYTES``), 80 default
#: comparisons.
CACHE_STEPS = 120_000

TrajectoryCache = BoundedCache[SurfaceRunConfig, Trajectory]


def new_trajectory_cache(max_steps: int = CACHE_STEPS) -> TrajectoryCache:
    """A cache of single-optimizer trajectories bounded by the steps they record."""
    return BoundedCache(max_steps, weight=lambda tr: len(tr.step))


@st.cache_resource
def trajectory_cache() -> TrajectoryCache:
    """The process-wide cache (one per server)."""
    return new_trajectory_cache()


Progress = Callable[[list[Trajectory], int], None]


def run_cached(
    cfg: SurfaceRunConfig,
    on_progress: Progress | None = None,
    budget_s: float = RUN_BUDGET_S,
) -> tuple[list[Trajectory], bool]:
    """Runs the optimizers of ``cfg`` that are not cached yet, in lockstep.

    When another page is running every one of them right now (a class opening
    the same link together), it waits for that run and takes its results from
    the cache instead of computing them a second time.

    Args:
        cfg: The comparison.
        on_progress: Called with the trajectories so far (cached ones in
            full) and the current step, at most every `REDRAW_EVERY_S` of the
            run's own computing (its thread's CPU time); while k other page
            runs wait for an engine slot, at most every ``(1 + k) *
            REDRAW_EVERY_S`` (a redraw rebuilds the live chart with the slot
            held, so frequent redraws made everyone's wait longer). Neither a
            wait for its turn nor the interpreter lock held by other pages'
            threads calls for a redraw: a run the load slows down redraws no
            more often than it does alone, where a clock on the wall made a
            quick change under load pay for redraws it never paid alone.
        budget_s: Time budget of the run's own turns of the engine (the waits
            for a turn between them do not count); a run that exceeds it
            stops early.

    Returns:
        One trajectory per optimizer of ``cfg``, and whether the run finished
        (False when it was cut by the budget; partial results are not cached).
    """
    cache = trajectory_cache()
    keys = [cfg.select(i) for i in range(len(cfg.optimizers))]
    found, missing, claimed = cache.get_or_claim(keys)
    if not missing:
        return [found[k] for k in keys], True
    try:
        trajectories, finished = _run(keys, found, missing, on_progress, budget_s)
        if finished:
            for key, tr in zip(missing, trajectories, strict=True):
                cache.put(key, tr)
    finally:
        cache.in_flight.release(claimed)
    return _merge(keys, found, dict(zip(missing, trajectories, strict=True))), finished


def _merge(
    keys: list[SurfaceRunConfig],
    found: dict[SurfaceRunConfig, Trajectory],
    fresh: dict[SurfaceRunConfig, Trajectory],
) -> list[Trajectory]:
    return [found.get(k) or fresh[k] for k in keys]


def _run(
    keys: list[SurfaceRunConfig],
    found: dict[SurfaceRunConfig, Trajectory],
    missing: list[SurfaceRunConfig],
    on_progress: Progress | None,
    budget_s: float,
) -> tuple[list[Trajectory], bool]:
    """`run_cached`'s run of the ``missing`` optimizers, in turns of the engine:
    their trajectories, and whether the run finished within its budget."""
    todo = SurfaceRunConfig.merge(missing)
    collector = TrajectoryCollector(todo.optimizers)
    finished = True
    with engine_slot():
        records = run_surface(todo)
        try:
            # The run's own time: its turns of the engine, not its waits between them.
            started = now = time.monotonic()
            drawn = time.thread_time()
            for record in records:
                collector.add(record)
                if share_engine():
                    started += time.monotonic() - now
                now = time.monotonic()
                if now - started > budget_s:
                    finished = False
                    break
                every = REDRAW_EVERY_S * (1 + waiting())
                if on_progress is not None and time.thread_time() - drawn > every:
                    fresh = dict(zip(missing, collector.snapshot(), strict=True))
                    on_progress(_merge(keys, found, fresh), collector.steps_done)
                    drawn = time.thread_time()
        finally:
            records.close()
    return collector.snapshot(), finished


def run_seeds(
    cfg: SurfaceRunConfig,
    on_progress: Progress | None = None,
    on_seed: Callable[[int, int], None] | None = None,
) -> tuple[list[list[Trajectory]], bool]:
    """`run_cached` once per noise seed of ``cfg`` (one, unless it asks for several).

    Args:
        cfg: The comparison; ``cfg.problem.seeds`` runs of it.
        on_progress: Passed to the first seed's run, the one the paths show.
        on_seed: Called with (seed number from 1, seeds) before each further seed.

    Returns:
        Each seed's trajectories, the first seed's first, and whether every run
        finished; the seeds stop at the first run the time budget cut.
    """
    runs = cfg.seed_runs()
    first, finished = run_cached(runs[0], on_progress=on_progress)
    seeds = [first]
    for k, run in enumerate(runs[1:], start=2):
        if not finished:
            break
        if on_seed is not None:
            on_seed(k, len(runs))
        more, finished = run_cached(run)
        seeds.append(more)
    return seeds, finished
