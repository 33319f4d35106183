"""Running surface comparisons for a page: per-optimizer caching and live progress.

Each optimizer's trajectory depends only on its own config and the shared
settings (surface, start, steps, noise, seed), never on its neighbours, so
results are cached per slot: changing one slot's learning rate recomputes
that slot alone. The cache is process-wide (a workshop's thirty browsers
asking for the default comparison compute it once) and holds immutable
trajectories only.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import streamlit as st

from optlab.caps import CAPS
from optlab.optimizers import OptimizerConfig
from optlab.surface_run import SurfaceRunConfig, run_surface
from optlab.trajectory import Trajectory, TrajectoryCollector, collect

#: How often the page redraws while a run is in progress.
REDRAW_EVERY_S = 0.5
#: Wall-clock budget of one page run; longer runs stop with what they have.
RUN_BUDGET_S = CAPS.page_run_s
#: Runs computing at once per server; others wait their turn.
MAX_CONCURRENT_RUNS = CAPS.page_runs


class TrajectoryCache:
    """A thread-safe LRU of finished trajectories keyed by single-optimizer configs.

    Its values are immutable (frozen `Trajectory` tuples) and only whole entries
    are added or evicted, under a lock, so sessions can share it. The size is
    bounded by the number of recorded steps it holds (about 250 bytes each),
    not by entries: one 5000-step path weighs as much as a hundred short ones.
    The default, 120,000 steps (about 30 MB), holds 80 default comparisons.
    """

    def __init__(self, max_steps: int = 120_000) -> None:
        self._items: OrderedDict[SurfaceRunConfig, Trajectory] = OrderedDict()
        self._lock = threading.Lock()
        self._max_steps = max_steps
        self._steps = 0

    def get(self, key: SurfaceRunConfig) -> Trajectory | None:
        """The cached trajectory for ``key``, or None."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: SurfaceRunConfig, value: Trajectory) -> None:
        """Stores a finished trajectory, evicting the least recently used."""
        with self._lock:
            if key in self._items:
                self._steps -= len(self._items.pop(key).step)
            self._items[key] = value
            self._steps += len(value.step)
            while self._steps > self._max_steps and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._steps -= len(old.step)

    @property
    def steps(self) -> int:
        """Recorded steps held, the measure of its size."""
        with self._lock:
            return self._steps


@st.cache_resource
def trajectory_cache() -> TrajectoryCache:
    """The process-wide cache (one per server)."""
    return TrajectoryCache()


@st.cache_resource
def run_slots() -> threading.BoundedSemaphore:
    """Caps concurrent runs per server: a workshop's thirty clicks share two cores."""
    return threading.BoundedSemaphore(MAX_CONCURRENT_RUNS)


@st.cache_resource(show_spinner="Starting the engine…")
def warm_up() -> bool:
    """Runs one tiny step once per server process.

    The first autograd backward in a process costs about a second (lazy
    initialisation inside torch); paying it at start-up keeps it off the first
    user's first click.
    """
    collect(SurfaceRunConfig((OptimizerConfig("sgd"),), steps=1))
    return True


Progress = Callable[[list[Trajectory], int], None]


def run_cached(
    cfg: SurfaceRunConfig,
    on_progress: Progress | None = None,
    budget_s: float = RUN_BUDGET_S,
) -> tuple[list[Trajectory], bool]:
    """Runs the optimizers of ``cfg`` that are not cached yet, in lockstep.

    Args:
        cfg: The comparison.
        on_progress: Called with the trajectories so far (cached ones in
            full) and the current step, at most every `REDRAW_EVERY_S`.
        budget_s: Wall-clock budget; a run that exceeds it stops early.

    Returns:
        One trajectory per optimizer of ``cfg``, and whether the run finished
        (False when it was cut by the budget; partial results are not cached).
    """
    cache = trajectory_cache()
    keys = [cfg.select(i) for i in range(len(cfg.optimizers))]
    found: dict[SurfaceRunConfig, Trajectory] = {k: t for k in keys if (t := cache.get(k))}
    missing = list(dict.fromkeys(k for k in keys if k not in found))
    if not missing:
        return [found[k] for k in keys], True

    todo = SurfaceRunConfig.merge(missing)
    collector = TrajectoryCollector(todo.optimizers)
    finished = True

    def merged() -> list[Trajectory]:
        fresh = dict(zip(missing, collector.snapshot(), strict=True))
        return [found.get(k) or fresh[k] for k in keys]

    slots = run_slots()
    if not slots.acquire(blocking=False):
        with st.spinner("Waiting for a free engine slot (other users are running)…"):
            slots.acquire()
    records = run_surface(todo)
    try:
        started = last_draw = time.monotonic()
        for record in records:
            collector.add(record)
            now = time.monotonic()
            if now - started > budget_s:
                finished = False
                break
            if on_progress is not None and now - last_draw > REDRAW_EVERY_S:
                on_progress(merged(), collector.steps_done)
                last_draw = now
    finally:
        records.close()
        slots.release()
    if finished:
        for key, tr in zip(missing, collector.snapshot(), strict=True):
            cache.put(key, tr)
    return merged(), finished
