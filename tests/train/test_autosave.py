"""Autosaved runs: the runs folder, what counts as interrupted, exact resumes, jobs autosaving."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
import torch

from optlab.train.autosave import (
    CHECKPOINT,
    META,
    PAUSED,
    RUNNING,
    Autosave,
    RunError,
    RunStore,
    SavedRun,
    default_runs_dir,
    valid_id,
)
from optlab.train.checkpoint import resume
from optlab.train.data import LoadedData
from optlab.train.jobs import CANCELLED, DONE, FAILED, JobRegistry
from optlab.train.run import TrainingSession, TrainRecord, TrainRunConfig
from tests.support.training import tiny_data, tiny_train_config

CHOICE = {"source": "synthetic", "dir": ""}


@pytest.fixture(scope="module")
def data() -> LoadedData:
    return tiny_data(128, 32, seed=1)


def config(steps: int = 12) -> TrainRunConfig:
    return tiny_train_config(
        "sgd_momentum:lr=0.02",
        "adam:lr=0.002",
        steps=steps,
        train_limit=128,
        test_limit=32,
        eval_every=5,
        augment=True,  # the augmentation RNG must resume too
    )


def trained(data: LoadedData, steps: int, total: int = 12) -> TrainingSession:
    session = TrainingSession(config(total), data)
    for _ in range(steps):
        session.run_step()
    return session


def results(history: list) -> list:
    """Every record but its timing: losses, accuracies, lrs, norms, statuses."""
    return [replace(r, step_s=0.0) if isinstance(r, TrainRecord) else r for r in history]


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_ids_have_one_shape_and_the_folder_follows_the_environment(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    run_id = store.new_id()
    assert valid_id(run_id) and run_id != store.new_id()
    for bad in ("", "../etc", "20261121-120000-abcdeg", "x" * 200, "20261121-120000-abcdef/.."):
        assert not valid_id(bad)
        with pytest.raises(RunError, match="not a run id"):
            store.remove(bad)
    monkeypatch.setenv("OPTLAB_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert default_runs_dir() == tmp_path / "elsewhere"


def test_a_run_saved_by_a_live_job_is_not_interrupted_until_its_server_is_gone(tmp_path, data):
    session = trained(data, 5)
    before = RunStore(tmp_path, server="first")
    before.save("20261121-120000-aaaaaa", session, CHOICE)
    assert before.interrupted() == []  # this server trains it
    meta = json.loads((tmp_path / "20261121-120000-aaaaaa" / META).read_text())
    assert meta["state"] == RUNNING and meta["step"] == 5 and meta["server"] == "first"
    after = RunStore(tmp_path, server="restarted")
    [run] = after.interrupted()
    assert (run.step, run.total_steps, run.labels) == (
        5,
        12,
        ("SGD (lr=0.02, momentum=0.9)", "Adam (lr=0.002)"),
    )
    assert run.why("restarted") == "the server stopped" and run.data == CHOICE


def test_resuming_an_autosaved_run_gives_exactly_the_uninterrupted_results(tmp_path, data):
    uninterrupted = trained(data, 12)
    killed = trained(data, 7)
    RunStore(tmp_path, server="dead").save("20261121-120000-bbbbbb", killed, CHOICE)
    del killed
    store = RunStore(tmp_path, server="new")
    run, state = store.load("20261121-120000-bbbbbb")
    session = TrainingSession(TrainRunConfig.from_dict(state["config"]), data)
    resume(session, state)
    store.claim(run.id)
    assert store.interrupted() == []
    while not session.finished:
        session.run_step()
    assert results(session.history) == results(uninterrupted.history)
    for a, b in zip(session.models, uninterrupted.models, strict=True):
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.equal(pa, pb)


def test_a_run_is_claimed_once_and_a_live_one_cannot_be_loaded(tmp_path, data):
    RunStore(tmp_path, server="dead").save("20261121-120000-cccccc", trained(data, 3), CHOICE)
    store = RunStore(tmp_path, server="new")
    store.load("20261121-120000-cccccc")
    store.claim("20261121-120000-cccccc")
    with pytest.raises(RunError, match="resumed it first"):
        store.claim("20261121-120000-cccccc")
    with pytest.raises(RunError, match="being trained"):
        store.load("20261121-120000-cccccc")
    with pytest.raises(RunError, match="no longer saved"):
        store.load("20261121-120000-dddddd")


def test_damaged_folders_are_skipped_and_a_damaged_checkpoint_is_refused(tmp_path, data):
    RunStore(tmp_path, server="dead").save("20261121-120000-eeeeee", trained(data, 3), CHOICE)
    (tmp_path / "20261121-120000-ffffff").mkdir()
    (tmp_path / "20261121-120000-ffffff" / META).write_text("{not json")
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "stray.txt").write_text("x")
    store = RunStore(tmp_path, server="new")
    assert [r.id for r in store.interrupted()] == ["20261121-120000-eeeeee"]
    path = tmp_path / "20261121-120000-eeeeee" / CHECKPOINT
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(RunError, match="checkpoint: not a readable"):
        store.load("20261121-120000-eeeeee")
    assert RunStore(tmp_path / "missing").interrupted() == []


@pytest.mark.parametrize(
    "meta",
    [
        {},
        {"id": "20261121-120000-aaaaaa", "state": "running"},
        {
            "labels": [],
            "data": {},
            "id": "x",
            "step": 1,
            "total_steps": 2,
            "state": RUNNING,
            "reason": "",
            "saved_at": 0,
            "server": "s",
        },
        ["a list"],
        "text",
    ],
)
def test_a_bad_run_json_is_a_run_error(meta):
    with pytest.raises(RunError, match="not a saved run"):
        SavedRun.from_json(json.dumps(meta))


def test_only_the_newest_interrupted_runs_are_kept(tmp_path, data):
    session = trained(data, 2)
    old = RunStore(tmp_path, server="dead")
    for k in range(4):
        old.save(f"20261121-12000{k}-aaaaaa", session, CHOICE)
        time.sleep(0.01)
    store = RunStore(tmp_path, server="new", keep=2)
    store.save("20261121-130000-aaaaaa", session, CHOICE)  # a new run prunes
    assert [r.id for r in store.interrupted()] == [
        "20261121-120003-aaaaaa",
        "20261121-120002-aaaaaa",
    ]
    assert (tmp_path / "20261121-130000-aaaaaa").is_dir()  # its own live run stays


def test_a_job_autosaves_every_n_steps_and_deletes_its_run_when_done(tmp_path, data):
    store = RunStore(tmp_path, server="here")
    saved_steps = []
    autosave = Autosave(store, store.new_id(), CHOICE, every=4)
    original = store.save

    def spy(run_id, session, choice, state=RUNNING, reason=""):
        saved_steps.append(session.step)
        original(run_id, session, choice, state, reason)

    store.save = spy
    job = JobRegistry().submit(config(), data, autosave=autosave)
    assert job.wait(60) and job.state == DONE
    assert saved_steps == [4, 8]  # not the last step: a finished run is deleted
    assert not (tmp_path / autosave.run_id).exists()


def test_a_job_nobody_watches_is_kept_paused_and_a_stopped_one_is_deleted(tmp_path, data):
    store = RunStore(tmp_path, server="here")
    registry = JobRegistry(idle_timeout_s=0.0)
    watched = Autosave(store, "20261121-120000-aaaaaa", CHOICE, every=1000)
    job = registry.submit(config(steps=5000), data, autosave=watched)
    assert job.wait(60) and job.state == CANCELLED
    [run] = store.interrupted()
    assert run.state == PAUSED and run.step == job.session.step > 0
    assert "nobody was watching" in run.why("here")

    stopped = Autosave(store, "20261121-120000-bbbbbb", CHOICE, every=1)
    job = JobRegistry().submit(config(steps=5000), data, autosave=stopped)
    wait_for(lambda: (tmp_path / stopped.run_id / META).exists())
    assert "20261121-120000-bbbbbb" not in [r.id for r in store.interrupted()]  # live
    job.cancel("stopped by you")
    assert job.wait(60) and job.state == CANCELLED
    assert not (tmp_path / stopped.run_id).exists()


def test_a_failing_job_deletes_its_run(tmp_path, data):
    store = RunStore(tmp_path, server="here")
    autosave = Autosave(store, store.new_id(), CHOICE, every=1)
    session = TrainingSession(config(), data)
    step = session.run_step

    def failing_step():
        if session.step == 3:
            assert (tmp_path / autosave.run_id / CHECKPOINT).exists()  # saved so far
            raise RuntimeError("plugin exploded")
        return step()

    session.run_step = failing_step
    job = JobRegistry().submit(session.cfg, data, session, autosave)
    assert job.wait(60) and job.state == FAILED and "plugin exploded" in job.message
    assert not (tmp_path / autosave.run_id).exists()


def test_autosave_reports_a_write_error_and_training_goes_on(tmp_path, data):
    (tmp_path / "file").write_text("not a folder")
    store = RunStore(tmp_path / "file" / "runs", server="here")
    autosave = Autosave(store, store.new_id(), CHOICE, every=2)
    session = trained(data, 2)
    autosave.after_step(session)
    assert autosave.error.startswith("autosave failed:")
    job = JobRegistry().submit(config(), data, autosave=autosave)
    assert job.wait(60) and job.state == DONE and job.message == "finished"
