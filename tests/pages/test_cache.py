"""The pages' run helpers: the shared result caches and the cap on concurrent runs."""

from __future__ import annotations

import threading
import time

from optlab.optim.config import OptimizerConfig
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.trajectory import collect
from optlab.ui import engine
from optlab.ui.cache import BoundedCache
from optlab.ui.playground import cache as runs


def single(steps: int, lr: float = 0.01) -> SurfaceRunConfig:
    return SurfaceRunConfig((OptimizerConfig.create("adam", lr=lr),), problem=Problem(steps=steps))


def test_cache_is_bounded_by_recorded_steps_not_entries() -> None:
    cache = runs.new_trajectory_cache(max_steps=1000)
    small = [(single(99, lr), collect(single(99, lr))[0]) for lr in (0.01, 0.02, 0.03)]
    for key, tr in small:
        cache.put(key, tr)
    assert cache.weight == 300
    cache.get(small[0][0])  # recently used: survives the eviction below
    big_key = single(800)
    cache.put(big_key, collect(big_key)[0])
    assert cache.weight <= 1000
    assert cache.get(big_key) is not None and cache.get(small[0][0]) is not None
    assert cache.get(small[1][0]) is None  # least recently used went first
    cache.put(big_key, collect(big_key)[0])  # replacing an entry does not double-count
    assert cache.weight <= 1000


def test_runs_beyond_the_cap_wait_for_a_free_slot(monkeypatch) -> None:
    monkeypatch.setattr(runs, "trajectory_cache", lambda: runs.new_trajectory_cache())
    slots = engine.EngineTurns(1)
    monkeypatch.setattr(engine, "run_slots", lambda: slots)
    slots.acquire()  # another user's run holds the only slot
    done = threading.Event()
    result: list = []

    def user() -> None:
        result.append(runs.run_cached(single(50)))
        done.set()

    thread = threading.Thread(target=user, daemon=True)
    thread.start()
    time.sleep(0.5)
    assert not done.is_set()  # queued, not computing
    slots.release()
    assert done.wait(30)
    (trajectories, finished) = result[0]
    assert finished and trajectories[0].status == "done"
    assert slots.acquire(blocking=False)  # the run gave its slot back


def test_a_cache_counts_entries_by_default_and_keeps_the_newest_alone() -> None:
    """The sweeps' cache: a count; one entry over the budget still stays, alone."""
    cache: BoundedCache[str, int] = BoundedCache(2)
    for key in "abc":
        cache.put(key, 1)
    assert len(cache) == 2 and cache.get("a") is None and cache.get("c") == 1
    heavy: BoundedCache[str, str] = BoundedCache(3, weight=len)
    heavy.put("x", "a" * 10)
    assert len(heavy) == 1 and heavy.get("x") == "a" * 10 and heavy.weight == 10
    heavy.put("y", "bb")
    assert heavy.get("x") is None and heavy.weight == 2


def test_the_sweep_cache_is_bounded_by_bytes_not_entries() -> None:
    from optlab.sweep.config import Axis, SweepConfig
    from optlab.sweep.run import run_sweep
    from optlab.ui.sweep.cache import new_sweep_cache

    def sweep(n: int) -> SweepConfig:
        return SweepConfig(
            optimizer=OptimizerConfig.create("sgd"),
            x=Axis("lr", 1e-4, 1e-2, n, "log"),
            y=Axis("momentum", 0.0, 0.9, n),
            problem=Problem(steps=20),
        )

    small = [(sweep(n), run_sweep(sweep(n))) for n in (5, 6, 7)]
    big = run_sweep(sweep(60))
    # Its arrays, paths first: 3600 cells x 21 path points x 2 float32 coordinates.
    assert big.nbytes > 3600 * 21 * 2 * 4
    cache = new_sweep_cache(budget_mb=(big.nbytes + small[2][1].nbytes) / 2**20)
    for cfg, result in small:
        cache.put(cfg, result)
    assert len(cache) == 3 and cache.weight == sum(r.nbytes for _, r in small)
    cache.get(small[2][0])  # recently used: stays beside the big one
    cache.put(big.config, big)
    assert cache.get(big.config) is big and cache.get(small[2][0]) is small[2][1]
    assert cache.get(small[0][0]) is None and cache.get(small[1][0]) is None
    assert cache.weight <= (big.nbytes + small[2][1].nbytes)
