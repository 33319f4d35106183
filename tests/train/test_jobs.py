"""Background training jobs: a worker thread, a capped registry with a queue, cancellation."""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import replace

import pytest

from optlab.train import jobs
from optlab.train.data import LoadedData
from optlab.train.jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobRegistry
from optlab.train.run import EvalRecord, TrainRecord, TrainRunConfig
from tests.support.training import tiny_data, tiny_train_config


@pytest.fixture(scope="module")
def data() -> LoadedData:
    return tiny_data(128, 32, seed=1)


def config(steps: int = 4, batch_size: int = 32) -> TrainRunConfig:
    return tiny_train_config(
        "adam:lr=0.002",
        batch_size=batch_size,
        steps=steps,
        train_limit=128,
        test_limit=32,
        eval_every=2,
    )


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_job_trains_in_the_background_and_reports_everything(data):
    job = JobRegistry().submit(config(), data)
    assert job.wait(60)
    snap = job.poll()
    assert snap.state == DONE and snap.message == "finished"
    train = [r for r in snap.records if isinstance(r, TrainRecord)]
    assert [r.step for r in train] == [1, 2, 3, 4]
    assert any(isinstance(r, EvalRecord) for r in snap.records)
    assert (snap.step, snap.total_steps) == (4, 4)


def test_second_job_waits_in_the_queue_then_runs(data):
    registry = JobRegistry(max_running=1)
    first = registry.submit(config(steps=2000), data)
    wait_for(lambda: first.state == RUNNING)
    second = registry.submit(config(), data)
    time.sleep(0.5)
    snap = second.poll()
    assert snap.state == QUEUED and snap.queue_position == 1
    first.cancel()
    assert first.wait(30) and first.poll().state == CANCELLED
    assert second.wait(60) and second.poll().state == DONE


def test_stop_ends_a_running_job_within_a_step(data):
    job = JobRegistry().submit(config(steps=2000), data)
    wait_for(lambda: len(job.poll().records) >= 3)
    job.cancel()
    assert job.wait(10)
    snap = job.poll()
    assert snap.state == CANCELLED and snap.message == "stopped" and snap.step < 2000


def test_a_job_nobody_polls_is_cancelled(data):
    registry = JobRegistry(idle_timeout_s=0.5)
    job = registry.submit(config(steps=2000), data)
    assert job.wait(30)  # never polled: the tab was closed
    assert job.state == CANCELLED and "nobody was watching" in job.message
    assert registry.active() == []


def test_runtime_cap_stops_a_long_job(data):
    job = JobRegistry(max_runtime_s=0.5).submit(config(steps=5000), data)
    while not job.wait(0.1):
        job.poll()  # someone is watching
    assert job.state == CANCELLED and "time limit" in job.message


def test_a_failing_job_reports_instead_of_dying(data):
    job = JobRegistry().submit(config(batch_size=1024), data)  # more than the 128 images
    assert job.wait(30)
    snap = job.poll()
    assert snap.state == FAILED and "larger than" in snap.message


def test_a_prepared_session_reports_its_history_first_and_goes_on(data):
    from optlab.train.checkpoint import resume
    from optlab.train.run import TrainingSession

    first = TrainingSession(config(steps=4), data)
    list(first.run())
    longer = config(steps=8)
    session = TrainingSession(longer, data)
    resume(session, first.state_dict())
    job = JobRegistry().submit(longer, data, session)
    assert job.session is session
    assert job.wait(60) and job.state == DONE
    snap = job.poll()
    steps = [r.step for r in snap.records if isinstance(r, TrainRecord)]
    assert steps == list(range(1, 9))  # the checkpoint's 4 steps, then 4 more
    assert (snap.first_step, snap.step, snap.total_steps) == (4, 8, 8)


def _nice_of(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_a_training_runs_below_the_pages_priority_when_the_cap_says_so(data, monkeypatch):
    """``training_nice`` (the workshop sets 10): the training's own thread yields the
    cores to the pages under load; every other thread keeps its priority."""
    monkeypatch.setattr(jobs, "CAPS", replace(jobs.CAPS, training_nice=7))
    seen: list[tuple[int, int]] = []
    original = jobs.Job._run

    def run(self):
        seen.append((threading.get_native_id(), _nice_of(threading.get_native_id())))
        return original(self)

    monkeypatch.setattr(jobs.Job, "_run", run)
    mine = _nice_of(threading.get_native_id())
    job = JobRegistry().submit(config(), data)
    assert job.wait(60) and job.poll().state == DONE
    [(tid, nice)] = seen
    assert tid != threading.get_native_id()
    assert nice == min(jobs.MAX_NICE, mine + 7)
    assert _nice_of(threading.get_native_id()) == mine  # this thread (a page's) untouched
    assert _nice_of(os.getpid()) == mine  # nor the process's main thread


def test_lowering_priority_stops_at_the_lowest_and_zero_leaves_it(monkeypatch):
    out: list = []

    def work() -> None:
        before = _nice_of(threading.get_native_id())
        out.append((jobs.lower_priority(0), _nice_of(threading.get_native_id()) == before))
        out.append(jobs.lower_priority(100))
        out.append(_nice_of(threading.get_native_id()))

    t = threading.Thread(target=work)
    t.start()
    t.join(10)
    if not sys.platform.startswith("linux"):
        assert out[1] is None
        return
    assert out == [(None, True), jobs.MAX_NICE, jobs.MAX_NICE]
