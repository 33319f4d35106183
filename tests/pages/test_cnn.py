"""The CNN lab page under `streamlit.testing.v1.AppTest`: real script, real training.

Runs are tiny (synthetic shapes, 256 training images, a few steps of batch 32)
but go through the page's own widgets, its job registry and worker threads.
Polling fragments do not tick in AppTest, so a test waits for the job and
reruns the page to see the finished results.
"""

from __future__ import annotations

import io
import math
import shutil
import time
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from optlab.optim.config import OptimizerConfig
from optlab.optim.schedulers import SchedulerConfig
from optlab.train.checkpoint import checkpoint_bytes, read_checkpoint
from optlab.train.jobs import DONE, Job
from optlab.train.report import fold, new_logs, run_document
from optlab.train.run import TrainingSession, TrainRunConfig, TrainSlot
from optlab.ui.cnn import jobs
from tests.support.resources import APP, require_cifar_subset
from tests.support.training import tiny_train_config

TIMEOUT = 120
JOB_TIMEOUT = 60
#: What `tiny` sets: small enough for a few seconds per run on two cores.
TRAIN, TEST, BATCH = 256, 100, 32


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """An empty cache folder, no data folder, and no CIFAR-10 or job left by another test.

    The loaders, the job registry and the shared runs are process-wide
    (`st.cache_resource`), and the CIFAR-10 cache is keyed by the folder typed
    on the page, not by ``$OPTLAB_DATA_DIR``, so a test that loaded the subset
    must not leak it.
    """
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("OPTLAB_CACHE_DIR", str(cache))
    monkeypatch.setenv("OPTLAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("OPTLAB_DATA_DIR", raising=False)
    monkeypatch.delenv("OPTLAB_CIFAR_URL", raising=False)
    jobs._cifar.clear()
    jobs.run_store.clear()
    jobs.shared_runs.clear()  # its kept results live in the runs folder
    yield
    jobs._cifar.clear()
    jobs.run_store.clear()
    jobs.shared_runs.clear()
    for job in jobs.job_registry().active():
        job.cancel("test teardown")
        job.wait(30)


def no_problems(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def cnn_page() -> AppTest:
    """A fresh session on the CNN lab (app.py's navigation opens the playground first)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/cnn.py").run()
    no_problems(at)
    assert at.title[0].value == "CNN lab"
    return at


def button(at: AppTest, label: str):
    (found,) = [b for b in at.button if b.label == label]
    return found


def tiny(at: AppTest, steps: int = 6, eval_every: int = 3) -> AppTest:
    """Synthetic shapes, a few steps of batch 32 on 256 images, set through the widgets."""
    at.radio(key="cnn_data").set_value("synthetic")
    at.radio(key="cnn_length").set_value("steps").run()  # draws the Steps input
    at.number_input(key="cnn_steps").set_value(steps)
    at.number_input(key="cnn_batch").set_value(BATCH)
    at.number_input(key="cnn_train_limit").set_value(TRAIN)
    at.number_input(key="cnn_test_limit").set_value(TEST)
    at.number_input(key="cnn_eval_every").set_value(eval_every)
    return at


def finish(at: AppTest) -> Job:
    """Waits for this session's job, then reruns the page to draw the final results."""
    job = at.session_state["cnn_job"]
    deadline = time.monotonic() + JOB_TIMEOUT
    while not job.wait(0.5):  # polled like the page's fragment, so it is not idle-cancelled
        assert time.monotonic() < deadline, f"job still {job.state} after {JOB_TIMEOUT} s"
        job.poll()
    at.run()
    no_problems(at)
    return job


def start_and_finish(at: AppTest) -> Job:
    button(at, "Start").click().run()
    no_problems(at)
    return finish(at)


def torch_file(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def frames(at: AppTest) -> list[pd.DataFrame]:
    return [df.value for df in at.dataframe]


def results(at: AppTest) -> list[dict]:
    (table,) = [f for f in frames(at) if {"optimizer", "final_test_acc", "status"} <= set(f)]
    return table.to_dict("records")


def percent(text: str) -> float:
    """A table's ``54.3%`` as 0.543."""
    assert text.endswith("%"), text
    return float(text[:-1]) / 100


def job_document(job: Job) -> dict:
    """The run's JSON document, as the page's "Download JSON" builds it."""
    logs = new_logs(job.session)
    fold(logs, job.poll().records)
    return run_document(job.session, logs, job.data.source, job.data.kind)


# --- rendering and data sources ------------------------------------------------------------


def test_page_renders_the_default_comparison_on_synthetic_data():
    at = cnn_page()
    assert at.radio(key="cnn_data").value == "synthetic"  # the cache folder is empty
    assert at.selectbox(key="cnn_slot0_choice").value == "sgd_momentum"
    assert at.selectbox(key="cnn_slot1_choice").value == "adam"
    assert [at.number_input(key=k).value for k in ("cnn_slot0_lr", "cnn_slot1_lr")] == [
        0.01,
        0.001,
    ]
    assert at.radio(key="cnn_length").value == "epochs"
    assert not button(at, "Start").disabled
    assert button(at, "Stop").disabled
    assert "drawn shapes" in " ".join(c.value for c in at.caption)
    assert "press **Start**" in at.info[0].value  # no job yet: no results area
    assert not at.dataframe


def test_page_defaults_to_cifar10_from_the_data_folder(monkeypatch):
    subset = require_cifar_subset()
    monkeypatch.setenv("OPTLAB_DATA_DIR", str(subset))
    at = cnn_page()
    assert at.radio(key="cnn_data").value == "cifar10"
    (success,) = at.success
    assert f"CIFAR-10 from folder {subset}" in success.value
    assert "train /" in success.value and "test images" in success.value
    # A named data folder leaves nothing to download.
    assert not [b for b in at.button if b.label == "Download CIFAR-10"]
    assert not button(at, "Start").disabled


def test_cifar10_without_data_offers_the_download_and_cannot_start():
    at = cnn_page()
    at.radio(key="cnn_data").set_value("cifar10").run()
    assert not at.exception
    assert any("No CIFAR-10 here" in w.value for w in at.warning)
    assert button(at, "Download CIFAR-10")
    assert button(at, "Start").disabled
    at.radio(key="cnn_data").set_value("synthetic").run()
    no_problems(at)
    assert not button(at, "Start").disabled


# --- bad settings --------------------------------------------------------------------------


def test_negative_learning_rate_is_explained_and_blocks_start():
    at = tiny(cnn_page())
    at.number_input(key="cnn_slot0_lr").set_value(-1.0).run()
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith("Cannot train with these settings:")
    assert "Invalid lr value: -1" in error.value
    assert button(at, "Start").disabled
    assert at.number_input(key="cnn_slot0_lr").value == -1.0  # what was typed stays
    at.number_input(key="cnn_slot0_lr").set_value(0.05).run()
    no_problems(at)
    assert not button(at, "Start").disabled


def test_batch_larger_than_the_training_images_cannot_start():
    at = tiny(cnn_page())
    at.number_input(key="cnn_batch").set_value(512).run()
    no_problems(at)
    button(at, "Start").click().run()
    assert not at.exception
    (error,) = at.error
    assert error.value == "Cannot start: batch_size: 512 is larger than the 256 images"
    assert "cnn_job" not in at.session_state
    assert "press **Start**" in at.info[0].value
    # The message was shown once; the page goes on working.
    at.number_input(key="cnn_batch").set_value(BATCH).run()
    no_problems(at)


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key="cnn_upload").set_value((name, data, "application/octet-stream"))
    return at.run()


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "not a readable OptLab checkpoint"),
        (b"\0" * 64, "not a readable OptLab checkpoint"),
        (torch_file({"weight": torch.ones(2)}), "the file is not an OptLab training checkpoint"),
        (torch_file({"f": io.BytesIO}), "refused: it holds Python objects"),
    ],
    ids=["empty", "zeros", "a state_dict", "python objects"],
)
def test_an_upload_that_is_not_a_checkpoint_is_refused(data, why):
    at = upload(cnn_page(), "mine.pt", data)
    assert not at.exception, [e.message for e in at.exception]
    (error,) = at.error
    assert error.value.startswith(f"mine.pt: checkpoint: {why}")
    assert not [b for b in at.button if b.label == "Resume training"]
    assert not [n for n in at.number_input if n.label == "Train until step"]


def test_a_text_file_named_pt_is_refused_not_a_traceback():
    at = upload(cnn_page(), "notes.pt", b"this is not a torch file")
    assert not at.exception, [e.message for e in at.exception]
    assert at.error[0].value.startswith("notes.pt: checkpoint: not a readable")


# --- training ------------------------------------------------------------------------------


def tab(at: AppTest, label: str):
    """The page's tab labelled ``label``."""
    (found,) = [t for t in at.tabs if t.label == label]
    return found


def test_tiny_run_shows_results_and_the_trained_models():
    at = tiny(cnn_page()).run()
    job = start_and_finish(at)
    assert job.state == DONE, job.message
    assert job.session.step == 6
    assert at.success[0].value.startswith("Finished 6 steps")
    rows = results(at)
    assert [r["optimizer"] for r in rows] == ["SGD (lr=0.01, momentum=0.9)", "Adam"]
    for row in rows:
        assert row["status"] == "done"
        assert 0.0 <= percent(row["final_test_acc"]) <= 1.0
        assert 0.0 <= percent(row["best_test_acc"]) <= 1.0
        assert math.isfinite(float(row["test_loss"])) and math.isfinite(float(row["train_loss"]))
    assert [s.value for s in at.subheader] == ["Results", "Inside the trained models"]
    assert [t.label for t in at.tabs] == [
        "Curves",
        "Trajectories",
        "Confusion matrix",
        "Test images",
        "optimizer.state_dict()",
    ]
    # Synthetic data: no "Export as script" (a script needs CIFAR-10), a caption says so.
    assert {b.label for b in at.get("download_button")} == {
        "Download checkpoint",
        "Download JSON",
        "Download interactive HTML",
    }
    assert any("Export as script needs CIFAR-10" in c.value for c in at.caption)
    assert not button(at, "Start").disabled and button(at, "Stop").disabled

    # optimizer.state_dict() of SGD + momentum: one momentum buffer per parameter.
    state_tab = tab(at, "optimizer.state_dict()")
    groups, state = (df.value for df in state_tab.dataframe)
    assert list(groups["group"]) == ["features", "classifier"]
    assert set(groups["lr"]) == {"0.01"}
    n_params = len(list(job.session.models[0].parameters()))
    assert list(state["state"]) == ["momentum_buffer"] * n_params

    # Adam's: step, exp_avg and exp_avg_sq per parameter.
    at.radio(key="cnn_pick").set_value(1).run()
    no_problems(at)
    groups, state = (df.value for df in tab(at, "optimizer.state_dict()").dataframe)
    assert set(groups["lr"]) == {"0.001"}
    assert set(state["state"]) == {"step", "exp_avg", "exp_avg_sq"}
    assert len(state) == 3 * n_params
    steps = state.loc[state["state"] == "step", "value"]
    assert set(steps) == {"6"}
    assert tab(at, "Test images").caption[0].value.startswith("The first 30 test images")


def test_scheduler_and_classifier_lr_multiple_reach_the_optimizers():
    at = tiny(cnn_page(), steps=6)
    at.selectbox(key="cnn_slot0_sched").set_value("cosine").run()
    assert at.number_input(key="cnn_slot0_sched_eta_min").value == 0.0
    at.number_input(key="cnn_slot1_clr").set_value(10.0).run()
    no_problems(at)
    job = start_and_finish(at)
    assert job.state == DONE, job.message
    assert [r["optimizer"] for r in results(at)] == [
        "SGD (lr=0.01, momentum=0.9) + CosineAnnealingLR",
        "Adam + classifier lr ×10",
    ]
    doc = job_document(job)
    assert doc["config"]["slots"][0]["scheduler"] == "cosine"
    assert doc["config"]["slots"][1]["classifier_lr_mult"] == 10.0
    cosine, multiplied = doc["runs"]
    lrs = [h["lr"] for h in cosine["history"]]
    assert len(lrs) == 6
    assert lrs[0] == pytest.approx(0.01)
    assert all(b < a for a, b in pairwise(lrs)), lrs
    for h in cosine["history"]:
        assert h["lrs"][0] == h["lrs"][1]  # one scheduler for both groups
    for h in multiplied["history"]:
        assert h["lrs"] == pytest.approx([0.001, 0.01])  # convolutions, classifier
    # The live optimizers agree: Adam has two groups, cosine ended at eta_min.
    sgd, adam = job.session.optimizers
    assert [g["lr"] for g in adam.param_groups] == pytest.approx([0.001, 0.01])
    assert [g["lr"] for g in sgd.param_groups] == pytest.approx([0.0, 0.0], abs=1e-12)
    # The page's own param_groups table says the same.
    at.radio(key="cnn_pick").set_value(1).run()
    groups = tab(at, "optimizer.state_dict()").dataframe[0].value
    assert list(groups["lr"]) == ["0.001", "0.01"]


def test_a_frozen_slot_trains_its_classifier_first_and_an_overlong_freeze_is_refused():
    at = tiny(cnn_page(), steps=6)
    # One optimizer: the run's one sharpness measurement (at its last step) is most of
    # its time on a busy machine.
    at.button(key="cnn_slot1_remove").click().run()
    at.checkbox(key="cnn_slot0_freeze_on").check().run()  # draws the length and the unit
    at.number_input(key="cnn_slot0_freeze_at").set_value(6).run()
    (error,) = at.error
    assert "frozen for 6 steps is not before the run's end (6 steps)" in error.value
    assert button(at, "Start").disabled
    # 1 epoch of 8 steps (256 / 32) is checked once the epoch's length is known: at Start.
    at.radio(key="cnn_slot0_freeze_unit").set_value("epochs").run()
    at.number_input(key="cnn_slot0_freeze_at").set_value(1).run()
    no_problems(at)
    button(at, "Start").click().run()
    assert "not before the run's end at step 6" in at.error[0].value
    at.radio(key="cnn_slot0_freeze_unit").set_value("steps")
    at.number_input(key="cnn_slot0_freeze_at").set_value(4).run()
    no_problems(at)
    job = start_and_finish(at)
    assert job.state == DONE, job.message
    assert results(at)[0]["optimizer"] == (
        "SGD (lr=0.01, momentum=0.9) + features frozen for 4 steps"
    )
    (frozen,) = job_document(job)["runs"]
    assert frozen["freeze"] == "4" and frozen["features_added_at"] == 5
    assert [h["lrs"][0] for h in frozen["history"]] == [None] * 4 + [0.01] * 2
    sgd = job.session.optimizers[0]
    assert [g["name"] for g in sgd.param_groups] == ["classifier", "features"]
    # The page's param_groups table lists both groups, the classifier's first.
    at.radio(key="cnn_pick").set_value(0).run()
    groups = tab(at, "optimizer.state_dict()").dataframe[0].value
    assert len(groups) == 2


# --- resuming a checkpoint -----------------------------------------------------------------


def engine_config(steps: int = 6) -> TrainRunConfig:
    """The comparison the checkpoints below hold (what `tiny` sets on the page)."""
    return tiny_train_config(
        "sgd_momentum:lr=0.01",
        "adam:lr=0.001",
        batch_size=BATCH,
        steps=steps,
        train_limit=TRAIN,
        test_limit=TEST,
        device="auto",
    )


def engine_checkpoint(at_step: int) -> tuple[TrainingSession, bytes]:
    """A session trained ``at_step`` of its 6 steps by the engine, and its checkpoint."""
    session = TrainingSession(engine_config(), jobs.synthetic_for(TRAIN, TEST))
    for _ in session.run():
        if session.step == at_step and not session.evaluates_after(at_step):
            break
    assert session.step == at_step
    return session, checkpoint_bytes(session)


def test_resuming_an_engine_checkpoint_finishes_the_run_like_an_unbroken_one():
    _, data = engine_checkpoint(at_step=2)
    at = cnn_page()
    upload(at, "half.pt", data)
    no_problems(at)
    caption = next(c.value for c in at.caption if "step 2 of 6" in c.value)
    assert caption.startswith("SGD (lr=0.01, momentum=0.9), Adam: step 2 of 6 on 256")
    (until,) = [n for n in at.number_input if n.label == "Train until step"]
    assert until.value == 6
    button(at, "Resume training").click().run()
    no_problems(at)
    job = finish(at)
    assert job.state == DONE, job.message
    assert job.session.step == 6
    assert job.poll().first_step == 2
    # The page's settings now show the resumed comparison.
    assert at.radio(key="cnn_length").value == "steps"
    assert at.number_input(key="cnn_steps").value == 6
    assert at.number_input(key="cnn_train_limit").value == TRAIN
    rows = results(at)
    assert [r["status"] for r in rows] == ["done", "done"]

    # Same data, same order, same optimizer state: exactly the unbroken run.
    unbroken = TrainingSession(engine_config(), jobs.synthetic_for(TRAIN, TEST))
    reference = list(unbroken.run())
    resumed = job.poll().records
    assert [(r.step, r.index) for r in resumed] == [(r.step, r.index) for r in reference]
    for got, want in zip(resumed, reference, strict=True):
        if hasattr(want, "train_loss"):
            assert got.train_loss == pytest.approx(want.train_loss, rel=1e-4, abs=1e-6)
        else:
            assert got.test_acc == pytest.approx(want.test_acc)
    for got, want in zip(job.session.models, unbroken.models, strict=True):
        for p, q in zip(got.parameters(), want.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
    # Its own checkpoint reads back as a finished run of 6 steps.
    saved = read_checkpoint(checkpoint_bytes(job.session))
    assert saved["step"] == 6 and saved["status"] == ["done", "done"]


def test_a_finished_run_trains_further_from_its_checkpoint():
    _, data = engine_checkpoint(at_step=6)
    at = cnn_page()
    upload(at, "done.pt", data)
    no_problems(at)
    (until,) = [n for n in at.number_input if n.label == "Train until step"]
    assert until.value == 6 + TRAIN // BATCH  # one more epoch
    until.set_value(8).run()
    button(at, "Resume training").click().run()
    job = finish(at)
    assert job.state == DONE, job.message
    assert job.session.step == 8
    assert at.success[0].value.startswith("Finished 8 steps")
    assert [r["status"] for r in results(at)] == ["done", "done"]


def test_a_schedule_over_the_run_cannot_change_its_length():
    cfg = engine_config()
    sched = TrainSlot(cfg.slots[0].optimizer, scheduler=SchedulerConfig("cosine"))
    session = TrainingSession(
        replace(cfg, slots=(sched, cfg.slots[1])), jobs.synthetic_for(TRAIN, TEST)
    )
    for _ in session.run():
        if session.step == 2:
            break
    at = cnn_page()
    upload(at, "cosine.pt", checkpoint_bytes(session))
    no_problems(at)
    (until,) = [n for n in at.number_input if n.label == "Train until step"]
    until.set_value(9).run()
    button(at, "Resume training").click().run()
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith("Cannot resume cosine.pt: scheduler cosine:")
    assert "resume with 6 steps" in error.value
    assert "cnn_job" not in at.session_state


def test_resume_uses_the_checkpoints_images_whatever_the_page_settings():
    original, data = engine_checkpoint(at_step=2)
    at = cnn_page()
    # A user who had asked for more synthetic images than the default set holds.
    at.number_input(key="cnn_train_limit").set_value(12_000).run()
    upload(at, "half.pt", data)
    button(at, "Resume training").click().run()
    job = finish(at)
    assert torch.equal(job.session.train_images, original.train_images)


# --- interrupted runs ---------------------------------------------------------------------


def saved_by_a_dead_server(tmp_path: Path, steps_done: int = 3) -> tuple[str, TrainingSession]:
    """A run autosaved at ``steps_done`` by a server that is gone (as after a kill)."""
    from optlab.train.autosave import RunStore

    cfg = TrainRunConfig(
        (
            TrainSlot(OptimizerConfig.from_text("sgd_momentum:lr=0.01")),
            TrainSlot(OptimizerConfig.from_text("adam")),
        ),
        batch_size=BATCH,
        steps=8,
        epochs=None,
        train_limit=TRAIN,
        test_limit=TEST,
        eval_every=4,
        device="cpu",
    )
    session = TrainingSession(cfg, jobs.synthetic_for(TRAIN, TEST))
    for _ in range(steps_done):
        session.run_step()
    run_id = "20261121-120000-abcdef"
    RunStore(tmp_path / "runs", server="killed").save(
        run_id, session, {"source": "synthetic", "dir": ""}
    )
    return run_id, session


def test_the_link_s_interrupted_run_is_offered_and_resumed(tmp_path):
    run_id, saved = saved_by_a_dead_server(tmp_path)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.query_params.update({"page": "cnn", "run": run_id})
    at.switch_page("pages/cnn.py").run()
    no_problems(at)
    (banner,) = at.warning
    assert banner.value.startswith("Your run was interrupted (the server stopped).")
    assert "saved at step 3 of 8" in banner.value
    assert at.query_params["run"] == run_id  # kept in the URL until it is resumed
    button(at, "Resume my run").click().run()
    no_problems(at)
    job = finish(at)
    assert job.state == DONE and job.session.step == 8
    # The page took the run's settings, and its history goes on from the save.
    assert at.number_input(key="cnn_steps").value == 8
    steps = [r.step for r in job.poll().records if r.index == 0 and hasattr(r, "train_loss")]
    assert steps == list(range(1, 9))
    assert [r.train_loss for r in job.poll().records[:6]] == [
        r.train_loss for r in saved.history[:6]
    ]
    assert not (tmp_path / "runs" / run_id).exists()  # finished: not kept
    assert not [w for w in at.warning if "interrupted" in w.value]


def test_other_interrupted_runs_are_listed_and_a_gone_one_is_explained(tmp_path):
    run_id, _ = saved_by_a_dead_server(tmp_path)
    at = cnn_page()
    assert not at.warning  # not this browser's run: listed, not announced
    (listed,) = [e for e in at.expander if e.label == "Interrupted runs on this server (1)"]
    assert "saved at step 3 of 8" in listed.markdown[0].value
    assert "the server stopped" in listed.markdown[0].value
    resume = at.button(key=f"cnn_resume_{run_id}")
    shutil.rmtree(tmp_path / "runs" / run_id)  # discarded meanwhile, by its owner
    resume.click().run()
    assert not at.exception
    (error,) = at.error
    assert error.value == (f"Cannot resume run {run_id}: run: it is no longer saved on this server")
    assert "cnn_job" not in at.session_state


def test_discarding_my_interrupted_run_deletes_it(tmp_path):
    run_id, _ = saved_by_a_dead_server(tmp_path)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.query_params.update({"page": "cnn", "run": run_id})
    at.switch_page("pages/cnn.py").run()
    button(at, "Discard it").click().run()
    no_problems(at)
    assert not (tmp_path / "runs" / run_id).exists()
    assert not at.warning and not [e for e in at.expander if "Interrupted" in e.label]
    assert "run" not in at.query_params
