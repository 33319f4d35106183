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
from collections.abc import Callable, Iterable, Iterator

import streamlit as st

from optlab.caps import CAPS
from optlab.surface.run import StepRecord, SurfaceRunConfig, run_surface
from optlab.surface.trajectory import Trajectory, TrajectoryCollector
from optlab.ui.cache import BoundedCache
from optlab.ui.engine import engine_process, engine_slot, share_engine, waiting
from optlab.worker.client import Job, run_or_fallback

#: How often the page redraws while a run is in progress, in seconds of the run's own
#: computing (alone on the engine; ``REDRAW_EVERY_S * (1 + others)`` while others
#: share it, see `run_cached`).
REDRAW_EVERY_S = 0.5
#: Time budget of one page run (CPU seconds of its own computing); longer runs stop
#: with what they have.
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
            run's own computing (CPU time, on the engine process or in this
            thread); while k other runs share the engine (other jobs of the
            engine process, or runs waiting for a slot here), at most every
            ``(1 + k) * REDRAW_EVERY_S``: a redraw rebuilds the live chart,
            CPU every other page waits for. Neither a wait for a turn nor the
            interpreter lock held by other pages' threads calls for a redraw:
            a run the load slows down redraws no more often than it does
            alone, where a clock on the wall made a quick change under load
            pay for redraws it never paid alone.
        budget_s: Time budget of the run's own computing, in CPU seconds (the
            waits for a turn do not count); a run that exceeds it stops early.

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
    """`run_cached`'s run of the ``missing`` optimizers, on the engine process or
    (without one, or for a run it cannot take) in turns of this process's engine:
    their trajectories, and whether the run finished within its budget."""
    todo = SurfaceRunConfig.merge(missing)
    engine = engine_process()

    def redraw(collector: TrajectoryCollector) -> None:
        fresh = dict(zip(missing, collector.snapshot(), strict=True))
        on_progress(_merge(keys, found, fresh), collector.steps_done)

    draw = redraw if on_progress is not None else None

    def remote(job: Job):
        chunks = ((a[2], a[3]) for a in job if a[0] == "records")
        return _follow(todo, chunks, budget_s, draw, lambda: engine.running_jobs() - 1)

    def local():
        chunks = _turns(todo)
        try:
            return _follow(todo, chunks, budget_s, draw, waiting)
        finally:
            chunks.close()

    return run_or_fallback(engine, optimizer_keys(todo), "surface", todo, remote, local)


Chunks = Iterable[tuple[list[StepRecord], float]]


def _follow(
    cfg: SurfaceRunConfig,
    chunks: Chunks,
    budget_s: float,
    redraw: Callable[[TrajectoryCollector], None] | None = None,
    crowd: Callable[[], int] = lambda: 0,
) -> tuple[list[Trajectory], bool]:
    """The trajectories of ``cfg``'s records, arriving in chunks with the CPU seconds
    each took, and whether they came within ``budget_s`` (the records stop being
    read past it); ``redraw`` is called as `run_cached` says, ``crowd()`` the runs
    sharing the engine."""
    collector = TrajectoryCollector(cfg.optimizers)
    spent = drawn = 0.0
    for records, seconds in chunks:
        collector.extend(records)
        spent += seconds
        if spent > budget_s:
            return collector.snapshot(), False
        if redraw is not None and spent - drawn > REDRAW_EVERY_S * (1 + crowd()):
            redraw(collector)
            drawn = spent
    return collector.snapshot(), True


def keep_run(cfg: SurfaceRunConfig, chunks: Chunks, budget_s: float = RUN_BUDGET_S) -> None:
    """Caches a run of ``cfg`` computed by another job (its records in chunks, with the
    CPU seconds each took) as `run_cached` caches one it computed: each optimizer's
    trajectory, and nothing when the run went past its budget."""
    trajectories, finished = _follow(cfg, chunks, budget_s)
    if finished:
        cache = trajectory_cache()
        for i, trajectory in enumerate(trajectories):
            cache.put(cfg.select(i), trajectory)


def _turns(todo: SurfaceRunConfig) -> Iterator[tuple[list[StepRecord], float]]:
    """``todo``'s records one by one with the CPU seconds each took, computed in
    this thread in turns of the engine (`share_engine` between two steps)."""
    with engine_slot():
        records = run_surface(todo)
        try:
            while True:
                cpu = time.thread_time()
                record = next(records, None)
                if record is None:
                    return
                yield [record], time.thread_time() - cpu
                share_engine()
        finally:
            records.close()


def optimizer_keys(cfg: SurfaceRunConfig) -> set[str]:
    """The registry keys of ``cfg``'s optimizers (what the engine process must know)."""
    return {opt.key for opt in cfg.optimizers}


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
