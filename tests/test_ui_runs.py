"""The page's run helper: the shared trajectory cache and the cap on concurrent runs."""

from __future__ import annotations

import threading
import time

from optlab.optimizers import OptimizerConfig
from optlab.surface_run import SurfaceRunConfig
from optlab.trajectory import collect
from optlab.ui import runs


def single(steps: int, lr: float = 0.01) -> SurfaceRunConfig:
    return SurfaceRunConfig((OptimizerConfig.create("adam", lr=lr),), steps=steps)


def test_cache_is_bounded_by_recorded_steps_not_entries() -> None:
    cache = runs.TrajectoryCache(max_steps=1000)
    small = [(single(99, lr), collect(single(99, lr))[0]) for lr in (0.01, 0.02, 0.03)]
    for key, tr in small:
        cache.put(key, tr)
    assert cache.steps == 300
    cache.get(small[0][0])  # recently used: survives the eviction below
    big_key = single(800)
    cache.put(big_key, collect(big_key)[0])
    assert cache.steps <= 1000
    assert cache.get(big_key) is not None and cache.get(small[0][0]) is not None
    assert cache.get(small[1][0]) is None  # least recently used went first
    cache.put(big_key, collect(big_key)[0])  # replacing an entry does not double-count
    assert cache.steps <= 1000


def test_runs_beyond_the_cap_wait_for_a_free_slot(monkeypatch) -> None:
    monkeypatch.setattr(runs, "trajectory_cache", lambda: runs.TrajectoryCache())
    slots = threading.BoundedSemaphore(1)
    monkeypatch.setattr(runs, "run_slots", lambda: slots)
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
