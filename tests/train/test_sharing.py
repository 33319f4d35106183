"""Shared runs: identical comparisons join one job, replay a kept result, leave it
each with their own Stop, and fork on a live change; the result store's budget."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import torch

from optlab.optim.plans import Change
from optlab.train.checkpoint import checkpoint_bytes
from optlab.train.data import LoadedData
from optlab.train.jobs import CANCELLED, DONE, FINISHED, QUEUED, RUNNING, JobRegistry
from optlab.train.results import ResultStore
from optlab.train.run import EvalRecord, TrainingSession, TrainRecord, TrainRunConfig
from optlab.train.sharing import JOINED, REPLAYED, STARTED, SharedRuns, share_key
from tests.support.training import tiny_data, tiny_train_config
from tests.train.test_jobs import wait_for


@pytest.fixture(scope="module")
def data() -> LoadedData:
    return tiny_data(128, 32, seed=1)


def config(steps: int = 6, **changes) -> TrainRunConfig:
    return tiny_train_config(
        "sgd:lr=0.05,momentum=0.9",
        "adam:lr=0.002",
        batch_size=32,
        steps=steps,
        train_limit=128,
        test_limit=32,
        eval_every=2,
        **changes,
    )


def train_steps(records) -> list[tuple[int, int]]:
    return [(r.step, r.index) for r in records if isinstance(r, TrainRecord)]


def untimed(records) -> list:
    """The records without their wall-clock times (the only field that may differ)."""
    return [replace(r, step_s=0.0) if isinstance(r, TrainRecord) else r for r in records]


def weights(session: TrainingSession) -> list[torch.Tensor]:
    return [torch.cat([p.detach().flatten() for p in m.parameters()]) for m in session.models]


# ------------------------------------------------------------------ identity


def test_share_key_is_the_config_and_the_images(data):
    key = share_key(TrainingSession(config(), data))
    assert key is not None and len(key) == 40
    assert share_key(TrainingSession(config(), data)) == key
    assert share_key(TrainingSession(config(seed=1), data)) != key
    assert share_key(TrainingSession(config(steps=8), data)) != key
    lr = tiny_train_config("sgd:lr=0.04,momentum=0.9", "adam:lr=0.002", **_same_sizes())
    assert share_key(TrainingSession(lr, data)) != key
    # Other images with the same shapes (another synthetic draw) are another comparison.
    assert share_key(TrainingSession(config(), tiny_data(128, 32, seed=2))) != key


def _same_sizes() -> dict:
    return {"batch_size": 32, "steps": 6, "train_limit": 128, "test_limit": 32, "eval_every": 2}


def test_a_session_that_trained_is_never_shared(data):
    session = TrainingSession(config(), data)
    session.run_step()
    assert share_key(session) is None


# ------------------------------------------------------------------ join


def test_an_identical_start_joins_the_running_job_and_sees_it_from_step_1(data):
    shared = SharedRuns(JobRegistry(max_running=1))
    first = shared.start(TrainingSession(config(steps=400), data), data, "alice")
    assert first.how == STARTED
    wait_for(lambda: first.job.poll("alice").step >= 5)
    second = shared.start(TrainingSession(config(steps=400), data), data, "bob")
    assert second.how == JOINED and second.job is first.job
    snap = second.job.poll("bob")
    assert snap.watching == 2
    assert train_steps(snap.records)[:2] == [(1, 0), (1, 1)]  # the whole stream
    # Not identical: its own job.
    other = shared.start(TrainingSession(config(steps=400, seed=7), data), data, "carol")
    assert other.how == STARTED and other.job is not first.job
    for job in (first.job, other.job):
        job.cancel()
        assert job.wait(30)


def test_a_shared_job_trains_exactly_as_a_job_alone(data):
    alone = JobRegistry().submit(config(), data)
    registry = JobRegistry(max_running=1)
    blocker = registry.submit(config(steps=5000, seed=9), data)  # holds the one trainer
    shared = SharedRuns(registry)
    started = shared.start(TrainingSession(config(), data), data, "alice")
    joined = shared.start(TrainingSession(config(), data), data, "bob")
    assert joined.how == JOINED and joined.job is started.job
    blocker.cancel()
    assert alone.wait(60) and started.job.wait(60)
    assert untimed(started.job.poll().records) == untimed(alone.poll().records)


def test_a_start_never_joins_a_run_that_is_stopping(data):
    registry = JobRegistry(max_running=1)
    shared = SharedRuns(registry)
    job = shared.start(TrainingSession(config(steps=5000), data), data, "alice").job
    wait_for(lambda: job.poll("alice").step >= 1)
    assert shared.leave(job, "alice") is job and job.stopping
    again = shared.start(TrainingSession(config(steps=5000), data), data, "bob")
    assert again.how == STARTED and again.job is not job
    assert job.wait(30) and job.state == CANCELLED
    again.job.cancel()
    assert again.job.wait(30)


def test_a_watcher_who_stopped_polling_stops_counting(data, monkeypatch):
    monkeypatch.setattr("optlab.train.jobs.WATCH_WINDOW_S", 0.4)
    shared = SharedRuns(JobRegistry())
    job = shared.start(TrainingSession(config(steps=5000), data), data, "alice").job
    shared.start(TrainingSession(config(steps=5000), data), data, "bob")
    assert job.watching() == 2
    time.sleep(0.3)
    job.poll("bob")
    time.sleep(0.2)  # alice's tab closed 0.5 s ago, bob polled 0.2 s ago
    assert job.watching() == 1 and job.poll("bob").watching == 1
    # Alone now, bob's live change changes the run in place: nobody else's run.
    wait_for(lambda: job.session is not None and job.session.step >= 1)
    assert shared.change(job, "bob", 0, Change(0, "lr", 0.5)) is job
    job.cancel()
    assert job.wait(30)
    with pytest.raises(ValueError, match="ended"):
        shared.change(job, "bob", 0, Change(0, "lr", 0.1))


def test_a_watcher_polling_less_often_than_the_window_counts_between_its_polls(data):
    # Thirty watchers poll every 6 s (poll_interval), past the 5 s window: each
    # says so, and counts for twice that (plus a second), so all thirty show.
    now = [0.0]
    registry = JobRegistry(idle_timeout_s=60.0, clock=lambda: now[0])
    job = registry.submit(config(steps=1), data)
    try:
        job.poll("slow", every=6.0)
        job.poll("fast")
        now[0] = 5.5  # past the window for "fast", within 2 x 6 + 1 for "slow"
        assert job.watching() == 1
        now[0] = 12.9
        assert job.watching() == 1
        now[0] = 13.1
        assert job.watching() == 0
    finally:
        job.cancel()
        assert job.wait(30)


# ------------------------------------------------------------------ replay


def test_a_finished_comparison_replays_at_once_without_a_trainer(data, tmp_path):
    registry = JobRegistry(max_running=1)
    shared = SharedRuns(registry, ResultStore(tmp_path / "results"))
    original = shared.start(TrainingSession(config(), data), data, "alice").job
    assert original.wait(60) and original.state == DONE
    assert len(shared.results.keys()) == 1
    # The only trainer is busy: a replay must not wait for it.
    busy = registry.submit(config(steps=5000, seed=3), data)
    wait_for(lambda: busy.state == RUNNING)
    replay = shared.start(TrainingSession(config(), data), data, "bob")
    assert replay.how == REPLAYED
    assert replay.job.wait(10) and replay.job.state == DONE
    assert replay.job.poll().records == original.poll().records
    for got, want in zip(weights(replay.job.session), weights(original.session), strict=True):
        assert torch.equal(got, want)
    busy.cancel()
    assert busy.wait(30)


def test_a_stopped_or_changed_run_is_not_kept_for_replay(data, tmp_path):
    shared = SharedRuns(JobRegistry(), ResultStore(tmp_path / "results"))
    stopped = shared.start(TrainingSession(config(steps=2000), data), data, "alice").job
    wait_for(lambda: stopped.poll("alice").step >= 2)
    assert shared.leave(stopped, "alice") is stopped
    assert stopped.wait(30) and stopped.state == CANCELLED
    changed = shared.start(TrainingSession(config(steps=30), data), data, "bob").job
    wait_for(lambda: changed.poll("bob").step >= 1)
    assert shared.change(changed, "bob", 0, Change(0, "lr", 0.5, True)) is changed
    assert changed.wait(60) and changed.state == DONE
    assert changed.session.live_changes  # applied in place: bob was alone
    assert shared.results.keys() == []
    # ... and an identical start while it trained would not have joined it.
    again = shared.start(TrainingSession(config(steps=30), data), data, "carol")
    assert again.how == STARTED


def test_a_damaged_kept_result_is_dropped_and_the_run_trains(data, tmp_path):
    store = ResultStore(tmp_path / "results")
    shared = SharedRuns(JobRegistry(), store)
    key = share_key(TrainingSession(config(), data))
    store.root.mkdir(parents=True)
    (store.root / f"{key}.pt").write_bytes(b"not a checkpoint")
    started = shared.start(TrainingSession(config(), data), data, "alice")
    assert started.how == STARTED
    assert started.job.wait(60) and started.job.state == DONE
    assert store.keys() == [key]  # the finished run replaced the damaged file
    assert store.get(key) is not None


# ------------------------------------------------------------------ stop


def test_stop_leaves_a_run_others_watch_and_keeps_a_stopped_copy(data):
    shared = SharedRuns(JobRegistry(max_running=1))
    job = shared.start(TrainingSession(config(steps=2000), data), data, "alice").job
    assert shared.start(TrainingSession(config(steps=2000), data), data, "bob").job is job
    wait_for(lambda: job.poll("bob").step >= 3)
    mine = shared.leave(job, "alice")
    assert mine is not job
    # The copy takes no trainer (the only one trains the shared job) and ends at once.
    assert mine.wait(30) and mine.state == CANCELLED
    assert "goes on for 1 other person" in mine.message
    step = mine.session.step
    assert step >= 3 and job.state == RUNNING and job.poll("bob").watching == 1
    # The copy is the shared run up to its step, evaluated there.
    copy = mine.poll("alice").records
    assert train_steps(copy) == [(s, i) for s in range(1, step + 1) for i in (0, 1)]
    assert train_steps(job.poll("bob").records)[: 2 * step] == train_steps(copy)
    assert {(r.step, r.index) for r in copy if isinstance(r, EvalRecord)} >= {(step, 0), (step, 1)}
    # The last watcher's Stop stops it.
    assert shared.leave(job, "bob") is job
    assert job.wait(30) and job.state == CANCELLED and job.message == "stopped by you"


def test_a_job_stops_when_its_last_watcher_goes_quiet():
    from tests.support.training import tiny_data as make

    data = make(128, 32, seed=1)
    shared = SharedRuns(JobRegistry(idle_timeout_s=0.6))
    job = shared.start(TrainingSession(config(steps=5000), data), data, "alice").job
    assert shared.start(TrainingSession(config(steps=5000), data), data, "bob").job is job
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # bob keeps watching, alice closed her tab
        assert job.poll("bob").state in (QUEUED, RUNNING)
        time.sleep(0.1)
    assert job.watching() == 1
    assert job.wait(30) and "nobody was watching" in job.message


# ------------------------------------------------------------------ fork


def test_a_live_change_on_a_shared_run_forks_it_from_its_current_step(data):
    shared = SharedRuns(JobRegistry(max_running=2))
    job = shared.start(TrainingSession(config(steps=40), data), data, "alice").job
    assert shared.start(TrainingSession(config(steps=40), data), data, "bob").job is job
    wait_for(lambda: job.poll("alice").step >= 3)
    # A change that changes nothing: the fork must then train exactly as the original.
    fork = shared.change(job, "alice", 1, Change(0, "lr", 1.0, True))
    assert fork is not job
    assert fork.wait(60) and job.wait(60)
    assert (fork.state, job.state) == (DONE, DONE)
    assert job.session.live_changes == []  # bob's run is not changed
    (applied,) = fork.session.live_changes
    assert applied[:2][1] == 1 and applied[0] >= 3
    assert untimed(fork.poll("alice").records) == untimed(job.poll("bob").records)
    for got, want in zip(weights(fork.session), weights(job.session), strict=True):
        assert torch.equal(got, want)


def test_a_fork_applies_its_change_and_a_bad_change_forks_nothing(data):
    registry = JobRegistry(max_running=2)
    shared = SharedRuns(registry)
    job = shared.start(TrainingSession(config(steps=2000), data), data, "alice").job
    shared.start(TrainingSession(config(steps=2000), data), data, "bob")
    wait_for(lambda: job.poll("bob").step >= 2)
    with pytest.raises(ValueError, match="momentum"):
        shared.change(job, "alice", 0, Change(0, "momentum", -1.0))
    assert len(registry.active()) == 1 and job.watching() == 2
    fork = shared.change(job, "alice", 0, Change(0, "lr", 0.5))
    wait_for(lambda: fork.poll("alice").step >= fork.session.live_changes[0][0] + 1)
    assert fork.session.optimizers[0].param_groups[0]["lr"] == 0.5
    assert job.session.optimizers[0].param_groups[0]["lr"] == 0.05
    assert job.watching() == 1  # alice left it for her fork
    for j in (job, fork):
        j.cancel()
        assert j.wait(30)


# ------------------------------------------------------------------ the queue's wait


def test_a_queued_job_s_wait_is_estimated_from_the_measured_speed(data):
    registry = JobRegistry(max_running=1)
    running = registry.submit(config(steps=400), data, TrainingSession(config(steps=400), data))
    first = registry.submit(config(steps=30), data, TrainingSession(config(steps=30), data))
    second = registry.submit(config(steps=6), data, TrainingSession(config(steps=6), data))
    wait_for(lambda: running.session.images_per_s is not None and running.session.step >= 5)
    assert registry.estimated_wait_s(running) is None  # not queued
    session = running.session
    speed = session.images_per_s
    wait_first, wait_second = registry.estimated_wait_s(first), registry.estimated_wait_s(second)
    left = (session.total_steps - session.step) * 32 / speed  # seconds the trainer is busy
    assert wait_first == pytest.approx(left, rel=0.2)
    # The second waits for the first too: its 30 steps of 2 optimizers at the
    # measured speed per optimizer (speed x 2), i.e. 30 x 32 / speed seconds.
    assert wait_second - wait_first == pytest.approx(30 * 32 / speed, rel=0.2)
    running.cancel()
    assert second.wait(60) and second.state in FINISHED


# ------------------------------------------------------------------ the store


def test_the_store_keeps_within_its_budget_dropping_the_least_recently_replayed(data, tmp_path):
    session = TrainingSession(config(), data)
    blob = checkpoint_bytes(session)
    store = ResultStore(tmp_path, budget_bytes=int(len(blob) * 2.5))
    keys = [f"{i:040x}" for i in range(1, 4)]
    assert store.put(keys[0], blob) and store.put(keys[1], blob)
    time.sleep(0.02)
    assert store.get(keys[0]) is not None  # replayed: now the most recent
    time.sleep(0.02)
    assert store.put(keys[2], blob)
    assert store.keys() == sorted([keys[0], keys[2]])
    assert store.size_bytes() <= store.budget_bytes
    assert not ResultStore(tmp_path, budget_bytes=10).put(keys[1], blob)
    with pytest.raises(ValueError, match="share key"):
        store.get("../../etc/passwd")
