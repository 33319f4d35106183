"""The pages' run helpers: the shared result caches and the cap on concurrent runs."""

from __future__ import annotations

import threading
import time

import pytest

from optlab.optim.config import OptimizerConfig
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig, run_surface
from optlab.surface.trajectory import collect
from optlab.ui import engine
from optlab.ui.cache import BoundedCache, InFlight
from optlab.ui.playground import cache as runs

# The turns of the engine that pages take when they compute in their own threads
# (the engine process, tests/worker, takes turns by itself).
pytestmark = pytest.mark.usefixtures("in_page_threads")


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


def test_a_run_computed_by_another_job_is_cached_as_its_own_run_would_be(monkeypatch) -> None:
    """`keep_run` (a sweep's replay, computed in the sweep's job): each optimizer's
    trajectory cached under its slot's key, as `run_cached` caches it, and nothing for
    a run past its CPU budget, which `run_cached` would have cut."""
    kept = runs.new_trajectory_cache()
    monkeypatch.setattr(runs, "trajectory_cache", lambda: kept)
    pair = SurfaceRunConfig(
        (OptimizerConfig.create("adam", lr=0.011), OptimizerConfig.create("sgd", lr=0.003)),
        Problem(steps=40),
    )
    records = list(run_surface(pair))
    runs.keep_run(pair, [(records[:30], 0.2), (records[30:], 0.2)], budget_s=0.3)
    assert kept.get(pair.select(0)) is None and kept.get(pair.select(1)) is None
    runs.keep_run(pair, [(records[:30], 0.2), (records[30:], 0.2)], budget_s=0.5)
    assert [kept.get(pair.select(0)), kept.get(pair.select(1))] == collect(pair)
    # What `run_cached` finds there it does not compute again.
    monkeypatch.setattr(runs, "run_surface", None)
    assert runs.run_cached(pair) == (collect(pair), True)


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


def test_in_flight_claims_free_keys_and_waits_only_when_every_key_is_taken() -> None:
    flight: InFlight[str] = InFlight()
    assert flight.claim(["a", "b", "a"]) == ["a", "b"]
    assert "a" in flight and len(flight) == 2
    # Sharing only some keys: the free one is claimed at once, nothing waited for.
    assert flight.claim(["b", "c"]) == ["c"]
    waited: list = []
    thread = threading.Thread(target=lambda: waited.append(flight.claim(["a", "c"])))
    thread.start()
    time.sleep(0.3)
    assert waited == []  # every key is another request's: it waits
    flight.release(["a", "b"])
    time.sleep(0.1)
    assert waited == []  # "c" is still being computed
    flight.release(["c"])
    thread.join(10)
    assert waited == [None] and len(flight) == 0
    assert flight.claim(["a"]) == ["a"]  # released keys can be claimed again


def _hold_the_only_slot(monkeypatch) -> engine.EngineTurns:
    slots = engine.EngineTurns(1)
    monkeypatch.setattr(engine, "run_slots", lambda: slots)
    slots.acquire()
    return slots


def _start(target, *args) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(target(*args)), daemon=True)
    thread.start()
    return thread, out


def _wait_until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_an_identical_run_waits_for_the_first_and_shares_its_result(monkeypatch) -> None:
    """A class opening one link together: the second page does not compute the same
    trajectories again, it waits for the first page's run and gets its results."""
    cache = runs.new_trajectory_cache()
    monkeypatch.setattr(runs, "trajectory_cache", lambda: cache)
    slots = _hold_the_only_slot(monkeypatch)
    cfg = SurfaceRunConfig(
        (OptimizerConfig.create("adam", lr=0.05), OptimizerConfig.create("sgd", lr=1e-3)),
        problem=Problem(steps=80),
    )
    first, first_out = _start(runs.run_cached, cfg)
    _wait_until(lambda: len(cache.in_flight) == 2)  # claimed, queued for the engine
    second, second_out = _start(runs.run_cached, cfg)
    # A third page shares one optimizer only: it computes both of its own at once.
    other = SurfaceRunConfig(
        (OptimizerConfig.create("adam", lr=0.05), OptimizerConfig.create("rmsprop")),
        problem=Problem(steps=80),
    )
    third, third_out = _start(runs.run_cached, other)
    _wait_until(lambda: len(cache.in_flight) == 3)
    time.sleep(0.2)
    assert first_out == second_out == third_out == []
    slots.release()
    for thread in (first, second, third):
        thread.join(60)
    (mine, done), (theirs, also_done) = first_out[0], second_out[0]
    assert done and also_done
    # SGD is the first page's alone: the second got that very object. (Adam the third
    # page computed too, and may have stored its equal copy first.)
    assert theirs[1] is mine[1]
    assert theirs[0].loss == mine[0].loss
    assert third_out[0][1] and third_out[0][0][0].loss == mine[0].loss
    assert third_out[0][0][0] is not mine[0]  # computed again, not waited for
    assert len(cache.in_flight) == 0


def test_a_run_cut_short_leaves_the_waiting_page_to_run_it_itself(monkeypatch) -> None:
    cache = runs.new_trajectory_cache()
    monkeypatch.setattr(runs, "trajectory_cache", lambda: cache)
    slots = _hold_the_only_slot(monkeypatch)
    cfg = single(3000)
    cut, cut_out = _start(lambda: runs.run_cached(cfg, budget_s=0.005))
    _wait_until(lambda: cfg.select(0) in cache.in_flight)
    whole, whole_out = _start(runs.run_cached, cfg)
    time.sleep(0.2)
    slots.release()
    cut.join(60)
    whole.join(60)
    (partial, finished), (full, full_finished) = cut_out[0], whole_out[0]
    assert not finished and len(partial[0].step) < 3001
    assert full_finished and len(full[0].step) == 3001
    assert cache.get(cfg.select(0)) is full[0]


def test_an_identical_sweep_waits_for_the_first_and_shares_its_result(monkeypatch) -> None:
    from optlab.sweep.config import Axis, SweepConfig
    from optlab.ui.sweep import cache as sweeps

    cache = sweeps.new_sweep_cache()
    monkeypatch.setattr(sweeps, "sweep_cache", lambda: cache)
    slots = _hold_the_only_slot(monkeypatch)
    cfg = SweepConfig(
        optimizer=OptimizerConfig.create("sgd"),
        x=Axis("lr", 1e-4, 1e-2, 8, "log"),
        y=Axis("momentum", 0.0, 0.9, 8),
        problem=Problem(steps=30),
    )
    first, first_out = _start(sweeps.sweep_cached, cfg)
    _wait_until(lambda: cfg in cache.in_flight)
    second, second_out = _start(sweeps.sweep_cached, cfg)
    time.sleep(0.2)
    assert first_out == second_out == []
    slots.release()
    first.join(60)
    second.join(60)
    assert first_out[0] is second_out[0] is cache.get(cfg)
    assert len(cache.in_flight) == 0
