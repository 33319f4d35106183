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


@pytest.fixture
def one_slot(monkeypatch: pytest.MonkeyPatch) -> threading.BoundedSemaphore:
    slots = threading.BoundedSemaphore(1)
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
    ended, out = _in_thread(lambda: one_slot.acquire(timeout=0.3))
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
