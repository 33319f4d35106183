"""Turns at the interpreter (`optlab.turns`): real threads, real waits."""

from __future__ import annotations

import threading
import time

import pytest

from optlab.turns import FairSlots, PythonTurns


def busy_threads(turns: PythonTurns, n: int, hold_s: float = 0.05) -> int:
    """Runs ``n`` threads that each hold a turn for ``hold_s``; the most inside at once."""
    inside = most = 0
    lock = threading.Lock()
    start = threading.Barrier(n)

    def work() -> None:
        nonlocal inside, most
        start.wait()
        with turns.turn():
            with lock:
                inside += 1
                most = max(most, inside)
            time.sleep(hold_s)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    return most


def test_at_most_turns_threads_hold_one_at_once():
    turns = PythonTurns(2)
    assert busy_threads(turns, 6) == 2
    assert turns.overdue == 0 and turns.waiting() == 0 and turns.taken() == 0


def test_zero_turns_means_no_limit():
    assert busy_threads(PythonTurns(0), 5, hold_s=0.2) == 5


def test_negative_turns_are_refused():
    with pytest.raises(ValueError, match="0 \\(no limit\\) or more"):
        PythonTurns(-1)


def test_a_turn_inside_a_turn_of_the_same_thread_is_the_same_turn():
    turns = PythonTurns(1, patience_s=5)
    t0 = time.monotonic()
    with turns.turn():
        with turns.turn():  # a fragment inside its page's run: no second wait
            assert turns.holding()
        assert turns.holding()
    assert not turns.holding()
    assert time.monotonic() - t0 < 1 and turns.overdue == 0
    assert busy_threads(turns, 3) == 1  # the one turn was given back once, not twice


def test_a_wait_set_aside_lets_another_thread_take_the_turn():
    """One turn: the holder waits (set aside) for what a second thread does in its
    own turn; without `set_aside` the second would wait for the holder's patience."""
    turns = PythonTurns(1, patience_s=30)
    done = threading.Event()
    order: list[str] = []

    def other() -> None:
        with turns.turn():
            order.append("other ran")
            done.set()

    with turns.turn():
        helper = threading.Thread(target=other)
        helper.start()
        with turns.set_aside():
            assert not turns.holding()
            assert done.wait(10)
        assert turns.holding()
        order.append("holder resumed")
    helper.join(10)
    assert order == ["other ran", "holder resumed"]
    assert turns.overdue == 0
    assert busy_threads(turns, 3) == 1  # still exactly one turn


def test_set_aside_outside_a_turn_does_nothing():
    turns = PythonTurns(1)
    with turns.set_aside():
        assert not turns.holding()
    assert busy_threads(turns, 3) == 1


def test_a_thread_out_of_patience_runs_anyway_and_gives_back_nothing_it_did_not_take():
    turns = PythonTurns(1, patience_s=0.2)
    release = threading.Event()
    holding = threading.Event()

    def holder() -> None:
        with turns.turn():
            holding.set()
            release.wait(10)  # a wait nobody set aside

    t = threading.Thread(target=holder)
    t.start()
    assert holding.wait(10)
    t0 = time.monotonic()
    with turns.turn():
        waited = time.monotonic() - t0
        assert not turns.holding()  # ran without a turn
    assert 0.15 < waited < 5
    assert turns.overdue == 1
    release.set()
    t.join(10)
    assert busy_threads(turns, 3) == 1  # the impatient thread released nothing


def test_waiting_counts_the_threads_queued_for_a_turn():
    turns = PythonTurns(1, patience_s=30)
    release = threading.Event()
    with turns.turn():
        queued = []
        for _ in range(3):

            def wait_for_turn() -> None:
                with turns.turn():
                    release.wait(10)

            th = threading.Thread(target=wait_for_turn)
            th.start()
            queued.append(th)
        deadline = time.monotonic() + 10
        while turns.waiting() < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert turns.waiting() == 3
    release.set()
    for th in queued:
        th.join(10)
    assert turns.waiting() == 0 and turns.overdue == 0


@pytest.fixture
def one_turn(monkeypatch: pytest.MonkeyPatch) -> PythonTurns:
    """The server's turns (`optlab.turns.TURNS`) cut to one, patient enough to notice."""
    from optlab import turns

    one = PythonTurns(1, patience_s=30)
    monkeypatch.setattr(turns, "TURNS", one)
    return one


def until(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def in_turn(turns: PythonTurns, work) -> threading.Thread:
    def run() -> None:
        with turns.turn():
            work()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_waiting_for_anothers_result_in_flight_sets_the_turn_aside(one_turn):
    """A page that waits for the run another page computes (`InFlight.claim`) gives
    its turn back meanwhile: with one turn, the computing page finishes in its own."""
    from optlab.ui.cache import InFlight

    flight: InFlight[str] = InFlight()
    assert flight.claim(["run"]) == ["run"]  # "the other page" claims, then needs a turn
    entered = threading.Event()
    waiter = in_turn(one_turn, lambda: (entered.set(), flight.claim(["run"])))
    assert entered.wait(10)  # the waiter holds the turn,
    until(lambda: one_turn.taken() == 0)  # and sets it aside inside `claim`
    with one_turn.turn():  # the computing page's turn: free although the waiter waits
        flight.release(["run"])
    waiter.join(10)
    assert not waiter.is_alive() and one_turn.overdue == 0


def test_waiting_for_an_engine_slot_sets_the_turn_aside(one_turn):
    from optlab.ui.engine import EngineTurns

    slots = EngineTurns(1)
    slots.acquire()  # another page computes in the only slot
    waiter = in_turn(one_turn, lambda: (slots.acquire(), slots.release()))
    until(lambda: slots.waiting() == 1)
    assert one_turn.taken() == 0  # its turn set aside while it waits
    with one_turn.turn():  # the slot's holder takes a turn to finish its step
        slots.release()
    waiter.join(10)
    assert not waiter.is_alive() and one_turn.overdue == 0


def queue_in_order(
    slots: FairSlots, n: int, served: list[int], ranks: list[float] | None = None
) -> list[threading.Thread]:
    """Starts ``n`` threads that each wait for a slot (at ``ranks[i]``; 0 without),
    one after another (each is in line before the next starts); each notes its
    number when served, then gives the slot back."""
    threads = []
    for i in range(n):

        def wait(i: int = i) -> None:
            assert slots.acquire(rank=ranks[i] if ranks else 0.0)
            served.append(i)
            slots.release()

        th = threading.Thread(target=wait)
        th.start()
        threads.append(th)
        until(lambda i=i: slots.waiting() == i + 1)
    return threads


def test_fair_slots_serve_waiters_in_the_order_they_came_and_nobody_jumps_the_line():
    slots = FairSlots(1)
    assert slots.acquire()
    served: list[int] = []
    threads = queue_in_order(slots, 4, served)
    # Give the slot back and ask again at once, as a script setting its turn aside
    # for a moment does: the slot went to the longest waiter, not back to us.
    slots.release()
    assert not slots.acquire(blocking=False)
    assert slots.acquire()  # behind the four
    assert served == [0, 1, 2, 3]
    slots.release()
    for th in threads:
        th.join(10)
    assert slots.free() == 1 and slots.waiting() == 0


def test_fair_slots_a_waiter_out_of_time_leaves_the_line_and_the_next_is_served():
    slots = FairSlots(1)
    assert slots.acquire()
    served: list[int] = []
    gave_up: list[bool] = []
    impatient = threading.Thread(target=lambda: gave_up.append(not slots.acquire(timeout=0.2)))
    impatient.start()
    until(lambda: slots.waiting() == 1)
    impatient.join(10)
    assert gave_up == [True] and slots.waiting() == 0  # gave its place up
    threads = queue_in_order(slots, 2, served)
    slots.release()
    for th in threads:
        th.join(10)
    assert served == [0, 1] and slots.free() == 1


def test_fair_slots_pass_on_hands_over_and_queues_behind_the_waiters():
    slots = FairSlots(1)
    assert not FairSlots(1).pass_on()  # nobody waits: the slot is kept
    assert slots.acquire()
    served: list[int] = []
    threads = queue_in_order(slots, 2, served)
    assert slots.pass_on()  # back only after both were served
    assert served == [0, 1]
    slots.release()
    for th in threads:
        th.join(10)
    with pytest.raises(ValueError, match="at least one slot"):
        FairSlots(0)


def test_a_script_taking_its_turn_back_after_a_wait_queues_behind_the_waiters():
    """With a semaphore a script back from a wait took a freed turn before the
    scripts already waiting for one; in line it waits behind them."""
    turns = PythonTurns(1, patience_s=30)
    order: list[str] = []

    def other() -> None:
        with turns.turn():
            order.append("other")

    with turns.turn():
        th = threading.Thread(target=other)
        th.start()
        until(lambda: turns.waiting() == 1)
        with turns.set_aside():
            pass  # a wait over at once: the turn went to the script in line all the same
        order.append("back")
        assert turns.holding()
    th.join(10)
    assert order == ["other", "back"]
    assert turns.taken() == 0 and turns.overdue == 0


def test_fair_slots_serve_the_lowest_rank_first_and_each_rank_in_the_order_it_came():
    slots = FairSlots(1)
    assert slots.acquire()
    served: list[int] = []
    threads = queue_in_order(slots, 4, served, ranks=[0.3, 0.1, 0.2, 0.1])
    slots.release()
    for th in threads:
        th.join(10)
    assert served == [1, 3, 2, 0]
    assert slots.free() == 1 and slots.waiting() == 0


def test_a_new_script_goes_ahead_of_one_back_from_a_wait_that_had_its_turn_first():
    """Least attained service first: a script that already ran Python in its turn
    (then set it aside for the engine's answer) queues behind a script that has
    had none, although it asked first."""
    turns = PythonTurns(1, patience_s=30)
    order: list[str] = []
    answer, aside = threading.Event(), threading.Event()

    def page_then_wait() -> None:
        spin = time.thread_time() + 0.02
        while time.thread_time() < spin:  # the page's Python before its wait
            pass
        with turns.set_aside():
            aside.set()
            answer.wait(10)
        order.append("back from its wait")

    with turns.turn():
        back = in_turn(turns, page_then_wait)
        until(lambda: turns.waiting() == 1)
    assert aside.wait(10)  # it ran, then set its turn aside for its wait
    with turns.turn():
        answer.set()
        until(lambda: turns.waiting() == 1)  # back in line, with 20 ms of CPU had
        fresh = in_turn(turns, lambda: order.append("new"))
        until(lambda: turns.waiting() == 2)
    back.join(10)
    fresh.join(10)
    assert order == ["new", "back from its wait"]
    assert turns.taken() == 0 and turns.overdue == 0
