"""What the CNN lab measures and names, on the real engine: the stop evaluation, images/s,
the momentum each step used, and the labels after a change made while running.

Each check trains a tiny comparison (synthetic shapes, SeedNet, real torch.optim
and torch schedulers) and compares what the engine reports with torch itself:
the optimizer's own ``param_groups``, its scheduler driven by hand, the models'
own predictions.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler

from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Change
from optlab.optim.schedulers import SchedulerConfig
from optlab.train import plots as train_plots
from optlab.train.data import LoadedData
from optlab.train.data.batches import CIFAR10_MEAN, CIFAR10_STD, normalise
from optlab.train.jobs import CANCELLED, JobRegistry
from optlab.train.report import (
    confusion_matrix,
    fold,
    new_logs,
    note_live_changes,
    results_cells,
    results_rows,
    run_document,
)
from optlab.train.run import EvalRecord, TrainingSession, TrainRecord, TrainSlot
from tests.support.training import tiny_data, tiny_train_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data() -> LoadedData:
    # 1024 training images: 32 steps of 32 per epoch, so a stop can fall between tests.
    return tiny_data(n_train=1024, n_test=64, seed=7)


def slot(text: str, **kwargs) -> TrainSlot:
    return TrainSlot(OptimizerConfig.from_text(text), **kwargs)


def train_records(records, index: int) -> list[TrainRecord]:
    return [r for r in records if isinstance(r, TrainRecord) and r.index == index]


# --- the evaluation at Stop -----------------------------------------------------------------


def fresh_predictions(session: TrainingSession, i: int) -> torch.Tensor:
    """Model ``i``'s classes for the test images, computed here from its current weights."""
    model = session.models[i]
    model.eval()
    try:
        with torch.no_grad():
            x = normalise(session.test_images, CIFAR10_MEAN, CIFAR10_STD)
            return model(x).argmax(1)
    finally:
        model.train()


def test_a_stopped_job_is_evaluated_once_at_its_last_step_and_the_matrix_agrees(data):
    cfg = tiny_train_config(
        "sgd_momentum:lr=0.02", "adam", steps=400, train_limit=1024, eval_every=1000
    )
    registry = JobRegistry(max_running=1, idle_timeout_s=60)
    job = registry.submit(cfg, data)
    deadline = time.monotonic() + 60
    while job.session is None or job.session.step < 3:
        assert time.monotonic() < deadline, "the job did not start"
        job.poll()
        time.sleep(0.01)
    job.cancel("stopped by you")
    assert job.wait(60)
    snapshot = job.poll()
    session = job.session
    assert snapshot.state == CANCELLED
    stop = session.step
    assert 3 <= stop < 32 and not session.evaluates_after(stop)  # between two scheduled tests
    evals = [r for r in snapshot.records if isinstance(r, EvalRecord)]
    assert [(r.step, r.index) for r in evals] == [(stop, 0), (stop, 1)]  # once each, at the stop
    assert evals == [r for r in session.history if isinstance(r, EvalRecord)]
    logs = new_logs(session)
    fold(logs, snapshot.records)
    for i, log in enumerate(logs):
        predicted = session.predict(i)
        # The same weights: a pass of our own over the models agrees image by image.
        assert torch.equal(predicted, fresh_predictions(session, i))
        matrix = confusion_matrix(session.test_labels, predicted, len(data.classes))
        assert np.trace(matrix) / matrix.sum() == log.final_test_acc
        assert results_rows(logs)[i]["final_test_acc"] == log.final_test_acc
    # Stopping again adds nothing: every model is evaluated at this step already.
    assert session.evaluate_at_stop() == []


def test_the_stop_evaluation_only_measures(data):
    """It steps no scheduler (ReduceLROnPlateau steps on scheduled evaluations) and
    changes no weight: the stopped run goes on exactly as an unbroken one."""
    plateau = SchedulerConfig("plateau", (("patience", 0),))
    cfg = tiny_train_config(
        slot("sgd:lr=0.05", scheduler=plateau), steps=12, train_limit=1024, eval_every=4
    )
    unbroken = TrainingSession(cfg, data)
    straight = list(unbroken.run())
    stopped = TrainingSession(cfg, data)
    for _ in range(6):
        stopped.run_step()
    (extra,) = stopped.evaluate_at_stop()
    assert extra.step == 6
    rest = list(stopped.run())
    assert [r.train_loss for r in train_records(rest, 0)] == [
        r.train_loss for r in train_records(straight, 0)[6:]
    ]
    assert [r.lrs for r in train_records(rest, 0)] == [
        r.lrs for r in train_records(straight, 0)[6:]
    ]
    for p, q in zip(stopped.models[0].parameters(), unbroken.models[0].parameters(), strict=True):
        assert torch.equal(p, q)


# --- images/s ---------------------------------------------------------------------------------


def test_images_per_s_is_steps_times_batch_over_the_steps_wall_clock(data):
    cfg = tiny_train_config("sgd:lr=0.05", "adam", steps=5, train_limit=1024, eval_every=2)
    session = TrainingSession(cfg, data)
    assert session.images_per_s is None  # nothing trained yet
    records = list(session.run())
    assert session.timed_steps == 5 and session.timed_s > 0
    assert session.images_per_s == 5 * 32 / session.timed_s
    # The wall clock of a step holds every optimizer's own step (and the tests), so
    # the run is slower than any one optimizer alone, never faster.
    compute = sum(r.step_s for r in records if isinstance(r, TrainRecord))
    assert session.timed_s > compute
    assert session.images_per_s < 5 * 32 / compute
    # The run's JSON carries the same number, with what it means.
    logs = new_logs(session)
    fold(logs, records)
    doc = run_document(session, logs, data.source, data.kind)
    assert doc["images_per_s"] == session.images_per_s
    assert doc["images_per_s_means"].startswith("training images per second")
    assert all("images_per_s" not in run for run in doc["runs"])


def test_a_job_snapshot_reports_the_sessions_images_per_s(data):
    cfg = tiny_train_config("sgd:lr=0.05", steps=4, train_limit=1024)
    job = JobRegistry(max_running=1).submit(cfg, data)
    assert job.wait(60)
    snapshot = job.poll()
    assert snapshot.images_per_s == job.session.images_per_s > 0


# --- momentum and β₁ --------------------------------------------------------------------------


def torch_momenta(make, kind: str, steps: int) -> list[float]:
    """The momentum (or β₁) each step of a OneCycleLR run uses, from torch alone:
    read from ``param_groups`` before the scheduler moves it for the next step."""
    p = torch.zeros(3, requires_grad=True)
    opt = make([p])
    sched = lr_scheduler.OneCycleLR(
        opt, max_lr=[g["lr"] * 10 for g in opt.param_groups], total_steps=steps, pct_start=0.3
    )
    seen = []
    for _ in range(steps):
        group = opt.param_groups[0]
        seen.append(group["betas"][0] if kind == "betas" else group["momentum"])
        p.grad = torch.ones_like(p)
        opt.step()
        sched.step()
    return seen


@pytest.mark.parametrize(
    ("text", "make", "kind"),
    [
        ("sgd:lr=0.01,momentum=0.9", lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9), "m"),
        ("adam:lr=0.001", lambda ps: torch.optim.Adam(ps, lr=0.001), "betas"),
    ],
    ids=["sgd-momentum", "adam-beta1"],
)
def test_each_step_records_the_momentum_torchs_onecyclelr_set(data, text, make, kind):
    cfg = tiny_train_config(
        slot(text, scheduler=SchedulerConfig("onecycle")), steps=10, train_limit=1024
    )
    session = TrainingSession(cfg, data)
    records = train_records(list(session.run()), 0)
    want = torch_momenta(make, kind, 10)
    assert [r.momenta for r in records] == [(m, m) for m in want]  # both param groups
    assert len(set(want)) > 2  # it really cycles
    # The live figure draws it under the learning rate, one line per optimizer.
    logs = new_logs(session)
    fold(logs, session.history)
    fig = train_plots.live_figure(logs)
    assert train_plots.MOMENTUM_TITLE in [a.text for a in fig.layout.annotations]
    (line,) = [t for t in fig.data if t.xaxis == "x5"]
    assert list(line.y) == want and list(line.x) == list(range(1, 11))
    assert line.line.color == fig.data[0].line.color  # the optimizer's own colour


def test_a_constant_momentum_adds_no_panel_and_adagrad_has_none(data):
    cfg = tiny_train_config("sgd:lr=0.01,momentum=0.9", "adagrad", steps=3, train_limit=1024)
    session = TrainingSession(cfg, data)
    records = list(session.run())
    assert {r.momenta for r in train_records(records, 0)} == {(0.9, 0.9)}
    assert {r.momenta for r in train_records(records, 1)} == {()}
    logs = new_logs(session)
    fold(logs, records)
    fig = train_plots.live_figure(logs)
    assert train_plots.MOMENTUM_TITLE not in [a.text for a in fig.layout.annotations]


def test_a_live_momentum_change_is_recorded_and_drawn(data):
    session = TrainingSession(
        tiny_train_config("sgd:lr=0.01,momentum=0.9", steps=6, train_limit=1024), data
    )
    for _ in range(2):
        session.run_step()
    session.request_change(0, Change(0, "momentum", 0.5))
    list(session.run())
    assert [r.momenta[0] for r in train_records(session.history, 0)] == [0.9] * 2 + [0.5] * 4
    logs = new_logs(session)
    fold(logs, session.history)
    note_live_changes(logs, session)
    assert logs[0].label == "SGD (lr=0.01, momentum=0.5 from step 3)"
    fig = train_plots.live_figure(logs)
    (line,) = [t for t in fig.data if t.xaxis == "x5"]
    assert list(line.y) == [0.9] * 2 + [0.5] * 4


# --- labels after a live change ---------------------------------------------------------------


def test_legends_and_tables_name_the_lr_a_live_change_set(data):
    cfg = tiny_train_config(
        slot("sgd:lr=0.05,momentum=0.9", classifier_lr_mult=10.0),
        "adam:lr=0.001",
        steps=8,
        train_limit=1024,
    )
    session = TrainingSession(cfg, data)
    for _ in range(3):
        session.run_step()
    session.request_change(0, Change(0, "lr", 0.2))
    session.request_change(1, Change(0, "lr", 0.5, multiply=True, group="classifier"))
    list(session.run())
    logs = new_logs(session)
    fold(logs, session.history)
    assert [log.label for log in logs] == [
        "SGD (lr=0.05, momentum=0.9) + classifier lr ×10",
        "Adam",
    ]  # before anyone looked at the live changes: the labels the run started with
    note_live_changes(logs, session)
    sgd, adam = (log.label for log in logs)
    # Set for both groups: one lr, and the classifier's ×10 no longer holds.
    assert sgd == "SGD (lr=0.2 from step 4, momentum=0.9)"
    assert adam == "Adam (features lr=0.001, classifier lr=0.0005 from step 4)"
    # They are the values torch trains with now.
    assert [g["lr"] for g in session.optimizers[0].param_groups] == [0.2, 0.2]
    assert [g["lr"] for g in session.optimizers[1].param_groups] == [0.001, 0.0005]
    assert [row["optimizer"] for row in results_cells(logs)] == [sgd, adam]
    fig = train_plots.live_figure(logs)
    assert next(t.name for t in fig.data if t.showlegend) == sgd
    assert {t.name for t in fig.data if t.legendgroup == "1" and t.showlegend} == {
        adam,
        f"{adam} (classifier)",
    }
    doc = run_document(session, logs, data.source, data.kind)
    assert [run["label"] for run in doc["runs"]] == [sgd, adam]
    assert doc["live_changes"][0] == {
        "before_step": 4,
        "optimizer": 0,
        "change": "set lr to 0.2",
        "groups": ["features", "classifier"],
        "values": [0.2, 0.2],
    }


def test_a_live_factor_names_the_value_it_left_under_a_scheduler(data):
    """A factor multiplies whatever the scheduler had set: the label names that value."""
    cfg = tiny_train_config(
        slot("sgd:lr=0.1", scheduler=SchedulerConfig("cosine")), steps=8, train_limit=1024
    )
    session = TrainingSession(cfg, data)
    for _ in range(4):
        session.run_step()
    scheduled = session.optimizers[0].param_groups[0]["lr"]
    session.request_change(0, Change(0, "lr", 0.1, multiply=True))
    session.run_step()
    (applied,) = session.applied
    assert applied.values == (scheduled * 0.1, scheduled * 0.1)
    assert math.isclose(train_records(session.history, 0)[-1].lrs[0], scheduled * 0.1)
    logs = new_logs(session)
    note_live_changes(logs, session)
    assert logs[0].label == f"SGD (lr={scheduled * 0.1:.6g} from step 5) + CosineAnnealingLR"
