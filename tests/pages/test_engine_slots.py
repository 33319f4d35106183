"""The engine slots: how many page runs compute at once, and one turn per page step.

A sweep and its best cell's replay compute in one turn of the engine (the
replay's block sits inside the sweep's): under load, a second turn meant
queueing again behind every other page's run (docs/load-test.md).
"""

from __future__ import annotations

import threading
import time

import pytest

from optlab.ui import engine

# The turns of the engine that pages take when they compute in their own threads
# (the engine process, tests/worker, takes turns by itself).
# Its runs are timed against threads competing for the interpreter: alone on the machine.
pytestmark = [pytest.mark.usefixtures("in_page_threads"), pytest.mark.quiet]


@pytest.fixture
def one_slot(monkeypatch: pytest.MonkeyPatch) -> engine.EngineTurns:
    slots = engine.EngineTurns(1)
    monkeypatch.setattr(engine, "run_slots", lambda: slots)
    return slots


def _in_thread(work) -> tuple[bool, list]:
    """Runs ``work`` in a thread (as a page's script runs); whether it ended within 5 s."""
    out: list = []
    t = threading.Thread(target=lambda: out.append(work()), daemon=True)
    t.start()
    t.join(timeout=5)
    return not t.is_alive(), out


def test_a_block_inside_another_runs_in_the_outer_blocks_slot(one_slot) -> None:
    def nested() -> list[bool]:
        seen = []
        with engine.engine_slot():
            with engine.engine_slot():  # with one slot, queueing again would never end
                seen.append(one_slot.acquire(blocking=False))
            # Still held by the outer block after the inner one ended.
            seen.append(one_slot.acquire(blocking=False))
        seen.append(one_slot.acquire(blocking=False))  # released at the end
        one_slot.release()
        return seen

    ended, out = _in_thread(nested)
    assert ended, "the inner block waited for the slot its own thread holds"
    assert out == [[False, False, True]]


def test_another_thread_still_waits_for_a_held_slot(one_slot) -> None:
    inside, leave = threading.Event(), threading.Event()

    def holder() -> None:
        with engine.engine_slot(), engine.engine_slot():
            inside.set()
            leave.wait(5)

    t = threading.Thread(target=holder, daemon=True)
    t.start()
    assert inside.wait(5)
    ended, out = _in_thread(lambda: one_slot.acquire(blocking=False))
    assert ended and out == [False]
    assert not one_slot.acquire(blocking=False)  # the holder's nesting took one slot, not two
    leave.set()
    t.join(5)
    assert one_slot.acquire(blocking=False)
    one_slot.release()


def test_a_failing_block_gives_its_slot_back(one_slot) -> None:
    def fails() -> bool:
        with pytest.raises(RuntimeError), engine.engine_slot(), engine.engine_slot():
            raise RuntimeError("a run failed")
        return one_slot.acquire(blocking=False)

    ended, out = _in_thread(fails)
    assert ended and out == [True]
    one_slot.release()


def test_runs_waiting_for_a_slot_are_counted_while_they_wait(one_slot) -> None:
    inside, leave = threading.Event(), threading.Event()

    def holder() -> None:
        with engine.engine_slot():
            inside.set()
            leave.wait(5)

    def waiter() -> None:
        with engine.engine_slot():
            pass

    first = threading.Thread(target=holder, daemon=True)
    first.start()
    assert inside.wait(5)
    assert engine.waiting() == 0
    second = threading.Thread(target=waiter, daemon=True)
    second.start()
    deadline = time.monotonic() + 5
    while engine.waiting() != 1:
        assert time.monotonic() < deadline, "the waiting run was not counted"
        time.sleep(0.01)
    leave.set()
    first.join(5)
    second.join(5)
    assert engine.waiting() == 0


def test_a_run_redraws_less_often_while_others_wait(monkeypatch) -> None:
    """Each redraw rebuilds the live chart holding the slot: with k runs waiting, a run
    redraws at most every (1 + k) redraw intervals."""
    from optlab.optim.config import OptimizerConfig
    from optlab.surface.problem import Problem
    from optlab.surface.run import SurfaceRunConfig
    from optlab.ui.playground import cache

    monkeypatch.setattr(cache, "REDRAW_EVERY_S", 0.002)

    def redraws(waiting: int) -> tuple[int, float]:
        """Redraws of a fresh run while ``waiting`` runs wait, and the run's seconds."""
        monkeypatch.setattr(cache, "waiting", lambda: waiting)
        # A learning rate no other run asks for: computed, not taken from the cache.
        lr = 0.0123457 + waiting * 1e-7
        cfg = SurfaceRunConfig((OptimizerConfig.create("adam", lr=lr),), Problem(steps=1500))
        count = [0]
        started = time.monotonic()
        cache.run_cached(cfg, on_progress=lambda trs, step: count.__setitem__(0, count[0] + 1))
        return count[0], time.monotonic() - started

    (alone, alone_s), (crowded, crowded_s) = redraws(0), redraws(9)
    # At most one redraw per interval: 0.002 s alone, 10 x 0.002 s with nine waiting.
    assert 5 < alone <= alone_s / 0.002
    assert crowded <= crowded_s / 0.02
    assert crowded < alone


def _queue_up(turns: engine.EngineTurns, names: list[str], order: list[str]) -> list:
    """Starts one thread per name that takes a slot, notes its name and gives it back;
    each is queued before the next starts."""
    threads = []
    for name in names:

        def take(name: str = name) -> None:
            turns.acquire()
            order.append(name)
            turns.release()

        t = threading.Thread(target=take, daemon=True)
        t.start()
        deadline = time.monotonic() + 5
        while turns.waiting() != len(threads) + 1:
            assert time.monotonic() < deadline, f"{name} never queued"
            time.sleep(0.005)
        threads.append(t)
    return threads


def test_waiting_runs_get_slots_first_come_first_served() -> None:
    turns = engine.EngineTurns(1)
    turns.acquire()
    order: list[str] = []
    threads = _queue_up(turns, ["a", "b", "c", "d"], order)
    turns.release()
    for t in threads:
        t.join(5)
    assert order == ["a", "b", "c", "d"]
    assert turns.free() == 1 and turns.waiting() == 0


def test_a_slot_given_back_goes_to_the_longest_waiter_not_to_whoever_asks_next() -> None:
    turns = engine.EngineTurns(1)
    turns.acquire()
    order: list[str] = []
    (waiter,) = _queue_up(turns, ["waiter"], order)
    turns.release()
    # Asking again at once does not jump the queue: the slot is already the waiter's.
    turns.acquire()
    order.append("releaser")
    turns.release()
    waiter.join(5)
    assert order == ["waiter", "releaser"]


def test_passing_a_turn_keeps_the_slot_when_nobody_waits() -> None:
    turns = engine.EngineTurns(2)
    turns.acquire()
    assert turns.pass_turn() is False
    assert turns.free() == 1
    turns.release()
    assert turns.free() == 2
    with pytest.raises(ValueError, match="at least one slot"):
        engine.EngineTurns(0)


def test_a_turn_is_shared_only_once_it_has_lasted_its_time() -> None:
    now = [0.0]
    turns = engine.EngineTurns(1, turn_s=0.05, clock=lambda: now[0])
    order: list[str] = []
    with turns.turn() as turn:
        threads = _queue_up(turns, ["other"], order)
        now[0] = 0.049
        assert turn.share() is False  # 49 ms into a 50 ms turn: keeps the slot
        assert turns.waiting() == 1 and order == []
        now[0] = 0.05
        assert turn.share() is True  # the other ran in between
        assert order == ["other"]
        assert turn.began == 0.05
    threads[0].join(5)
    assert turns.free() == 1


def test_a_quick_run_finishes_inside_a_long_runs_time_instead_of_after_it() -> None:
    """Round robin: a 10-step run that arrives while a 200-step run computes gets the
    slot at the long run's next turn, not when the long run ends."""
    turns = engine.EngineTurns(1, turn_s=0.01)
    events: list[str] = []
    started = threading.Event()

    def run(name: str, steps: int) -> None:
        with turns.turn() as turn:
            started.set()
            for _ in range(steps):
                time.sleep(0.001)  # one step's work
                turn.share()
        events.append(name)

    long = threading.Thread(target=run, args=("long", 200), daemon=True)
    long.start()
    assert started.wait(5)
    quick = threading.Thread(target=run, args=("quick", 10), daemon=True)
    quick.start()
    quick.join(10)
    long.join(10)
    assert events == ["quick", "long"]
    assert turns.free() == 1 and turns.waiting() == 0


def test_a_runs_budget_and_redraws_count_its_own_turns_not_its_waits_for_them(monkeypatch) -> None:
    from optlab.optim.config import OptimizerConfig
    from optlab.surface.problem import Problem
    from optlab.surface.run import SurfaceRunConfig
    from optlab.ui.playground import cache

    waits = [0]

    def busy_engine() -> bool:
        """Every step waits 20 ms for its next turn while others compute."""
        time.sleep(0.02)
        waits[0] += 1
        return True

    monkeypatch.setattr(cache, "share_engine", busy_engine)
    # A learning rate no other run asks for: computed, not taken from the cache.
    cfg = SurfaceRunConfig((OptimizerConfig.create("adam", lr=0.0123461),), Problem(steps=30))
    monkeypatch.setattr(cache, "REDRAW_EVERY_S", 0.1)
    redraws = [0]
    (trajectory,), finished = cache.run_cached(
        cfg, on_progress=lambda trs, step: redraws.__setitem__(0, redraws[0] + 1), budget_s=0.4
    )
    assert waits[0] == 31  # 0.62 s of waits, over the 0.4 s budget
    assert finished and len(trajectory.step) == 31
    # Nor do the waits call for redraws: 30 steps compute in far less than 0.1 s.
    assert redraws[0] == 0


def test_a_run_slowed_by_other_threads_redraws_no_more_than_alone(monkeypatch) -> None:
    """Under a class's load other pages' threads hold the interpreter lock much of
    the time: a quick run then lasts many times its computing on the wall, and must
    not pay for live redraws it never pays alone (they count its CPU time)."""
    from optlab.optim.config import OptimizerConfig
    from optlab.surface.problem import Problem
    from optlab.surface.run import SurfaceRunConfig
    from optlab.ui.playground import cache

    monkeypatch.setattr(cache, "trajectory_cache", lambda: cache.new_trajectory_cache())
    monkeypatch.setattr(cache, "REDRAW_EVERY_S", 0.25)
    # Every torch call lets go of the lock, and a pure-Python thread that takes it
    # keeps it for its 5 ms slice: one such thread stretches 30 steps (a few ms of
    # computing) to a second or more on the wall. With the machine's cores busy
    # elsewhere that thread gets fewer slices, so each step also waits 10 ms for
    # the lock as such a thread makes it wait: on the wall, not on the CPU.
    cfg = SurfaceRunConfig((OptimizerConfig.create("adam", lr=0.0123463),), Problem(steps=30))
    run_surface = cache.run_surface

    def waiting_for_the_lock(cfg):
        for record in run_surface(cfg):
            time.sleep(0.01)
            yield record

    monkeypatch.setattr(cache, "run_surface", waiting_for_the_lock)
    stop = threading.Event()

    def other_page() -> None:
        while not stop.is_set():
            sum(range(1000))

    other = threading.Thread(target=other_page, daemon=True)
    other.start()
    try:
        redraws = [0]
        wall, cpu = time.monotonic(), time.thread_time()
        (trajectory,), finished = cache.run_cached(
            cfg,
            on_progress=lambda trs, step: redraws.__setitem__(0, redraws[0] + 1),
            budget_s=600,
        )
        wall, cpu = time.monotonic() - wall, time.thread_time() - cpu
    finally:
        stop.set()
        other.join(5)
    assert finished and len(trajectory.step) == 31
    assert wall > 0.25 > cpu  # slowed past a redraw interval, computing less than one
    assert redraws[0] == 0
