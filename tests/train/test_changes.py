"""Mid-run changes in CNN training: planned (in steps or epochs) and requested while running.

A change is the tutorials' ``for g in optimizer.param_groups: g["lr"] = ...`` done
before a step. These tests check where the engine applies it (the records' ``lrs``
are the learning rates each step used), that it equals a hand-written torch loop
doing the same edits, that a change asked for from another thread lands at the
next step, and that changes survive the config's dict form and a checkpoint.
Synthetic images, SeedNet, 4 steps of 16 images per epoch: each run takes about a second.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import torch
from torch import nn

from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Change
from optlab.optim.schedulers import SchedulerConfig
from optlab.train.checkpoint import checkpoint_bytes, read_checkpoint, restore
from optlab.train.data import LoadedData
from optlab.train.data.batches import CIFAR10_MEAN, CIFAR10_STD, normalise
from optlab.train.models import build_model
from optlab.train.run import TrainingSession, TrainRecord, TrainRunConfig, TrainSlot
from tests.support.training import tiny_data, tiny_train_config

TRAIN, TEST, BATCH = 64, 16, 16
PER_EPOCH = TRAIN // BATCH  # 4 steps per epoch


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data() -> LoadedData:
    return tiny_data(TRAIN, TEST, seed=5)


def slot(spec: str, *changes: str, **kwargs) -> TrainSlot:
    return TrainSlot(
        OptimizerConfig.from_text(spec),
        changes=tuple(Change.from_text(c) for c in changes),
        **kwargs,
    )


def config(*slots: TrainSlot, **kwargs) -> TrainRunConfig:
    base = dict(batch_size=BATCH, steps=None, epochs=3, train_limit=TRAIN, test_limit=TEST)
    base["eval_every"] = 1000  # evaluations only at epoch ends and the last step
    return tiny_train_config(*slots, **{**base, **kwargs})


def lrs_of(records, index: int) -> dict[int, tuple[float, ...]]:
    """Record step (1-based) -> the learning rates that step used, per param group."""
    return {r.step: r.lrs for r in records if isinstance(r, TrainRecord) and r.index == index}


# --- planned changes ---------------------------------------------------------------------------


def test_planned_changes_take_effect_at_their_step_for_their_group_only(data):
    cfg = config(
        slot("sgd:lr=0.05,momentum=0.9", "3:lr=0.01"),
        slot(
            "adam:lr=0.001",
            "epoch1:classifier.lr*=0.1",
            "epoch2:features.lr=0.0005",
            classifier_lr_mult=10.0,
        ),
        slot("adam:lr=0.002"),
    )
    session = TrainingSession(cfg, data)
    assert session.per_epoch == PER_EPOCH and session.total_steps == 3 * PER_EPOCH
    records = list(session.run())

    # "3:lr=0.01": before 0-based step 3, i.e. the record of step 4 on; both groups.
    sgd = lrs_of(records, 0)
    assert list(sgd) == list(range(1, 13))
    for step, lrs in sgd.items():
        want = 0.05 if step <= 3 else 0.01
        assert lrs == (want, want), (step, lrs)

    # "epoch1:classifier.lr*=0.1" with 4 steps per epoch: from 0-based step 4 (record 5);
    # "epoch2:features.lr=0.0005": from 0-based step 8 (record 9), features only.
    adam = lrs_of(records, 1)
    for step, (features, classifier) in adam.items():
        assert features == pytest.approx(0.001 if step <= 8 else 0.0005), step
        assert classifier == pytest.approx(0.01 if step <= 4 else 0.001), step
    assert adam[4] == pytest.approx((0.001, 0.01)) and adam[5] == pytest.approx((0.001, 0.001))

    # The slot without changes is untouched by its neighbours'.
    assert set(lrs_of(records, 2).values()) == {(0.002, 0.002)}
    # The optimizers themselves end with the changed values.
    assert [g["lr"] for g in session.optimizers[0].param_groups] == [0.01, 0.01]
    assert [g["lr"] for g in session.optimizers[1].param_groups] == pytest.approx([0.0005, 0.001])
    assert session.live_changes == []  # planned changes are not "live" ones


def test_a_change_of_another_option_reaches_param_groups_without_touching_lr(data):
    cfg = config(slot("sgd:lr=0.05,momentum=0.9", "2:momentum=0.5", "5:weight_decay=0.01"))
    session = TrainingSession(cfg, data)
    seen = []
    for record in session.run():
        if isinstance(record, TrainRecord):
            group = session.optimizers[0].param_groups[0]
            seen.append((record.step, group["momentum"], group["weight_decay"], record.lrs))
    for step, momentum, weight_decay, lrs in seen:
        assert momentum == (0.9 if step <= 2 else 0.5), step
        assert weight_decay == (0.0 if step <= 5 else 0.01), step
        assert lrs == (0.05, 0.05)


# --- equal to the tutorial loop ----------------------------------------------------------------


def hand_loop(cfg: TrainRunConfig, data: LoadedData, make_optimizer, edits, sched=None):
    """The textbook loop on the session's batches, editing ``param_groups`` by hand.

    ``edits(step, optimizer)`` runs before 0-based step ``step``; returns the model and
    the lrs each step used.
    """
    model = build_model(cfg.model, cfg.seed)
    optimizer = make_optimizer(
        [
            {"params": list(model.features.parameters())},
            {"params": list(model.classifier.parameters())},
        ]
    )
    scheduler = sched(optimizer) if sched is not None else None
    images = data.train.images[: cfg.train_limit]
    labels = data.train.labels[: cfg.train_limit]
    order_gen = torch.Generator().manual_seed(cfg.seed)
    per_epoch = len(labels) // cfg.batch_size
    loss_fn = nn.CrossEntropyLoss()
    used = []
    for step in range(cfg.epochs * per_epoch):
        if step % per_epoch == 0:
            order = torch.randperm(len(labels), generator=order_gen)
        idx = order[(step % per_epoch) * cfg.batch_size : (step % per_epoch + 1) * cfg.batch_size]
        x = normalise(images[idx], CIFAR10_MEAN, CIFAR10_STD)
        edits(step, optimizer)
        optimizer.zero_grad()
        loss = loss_fn(model(x), labels[idx])
        loss.backward()
        optimizer.step()
        used.append(tuple(g["lr"] for g in optimizer.param_groups))
        if scheduler is not None:
            scheduler.step()
    return model, used


def test_a_session_with_changes_equals_a_hand_written_loop(data):
    cfg = config(
        slot(
            "sgd:lr=0.05,momentum=0.9",
            "3:lr=0.02",
            "epoch2:classifier.momentum=0.5",
            scheduler=SchedulerConfig("step", (("step_size", 2), ("gamma", 0.5))),
        ),
        slot("adam:lr=0.002", "epoch1:classifier.lr*=0.1", "6:features.lr=0.0005"),
        channels_last=False,
    )
    session = TrainingSession(cfg, data)
    records = list(session.run())

    def sgd_edits(step, opt):
        if step == 3:
            for g in opt.param_groups:
                g["lr"] = 0.02
        if step == 2 * PER_EPOCH:
            opt.param_groups[1]["momentum"] = 0.5

    def adam_edits(step, opt):
        if step == 1 * PER_EPOCH:
            opt.param_groups[1]["lr"] *= 0.1
        if step == 6:
            opt.param_groups[0]["lr"] = 0.0005

    hands = [
        hand_loop(
            cfg,
            data,
            lambda groups: torch.optim.SGD(groups, lr=0.05, momentum=0.9),
            sgd_edits,
            lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5),
        ),
        hand_loop(cfg, data, lambda groups: torch.optim.Adam(groups, lr=0.002), adam_edits),
    ]
    for i, (model, used) in enumerate(hands):
        assert list(lrs_of(records, i).values()) == used
        for p, q in zip(session.models[i].parameters(), model.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    # The SGD schedule really was edited: StepLR halves 0.05 at step 2, the change
    # sets 0.02 before step 3, StepLR halves that at step 4, and so on.
    assert [lrs[0] for lrs in hands[0][1][:6]] == [0.05, 0.05, 0.025, 0.02, 0.01, 0.01]


def test_a_group_change_on_a_single_group_optimizer_is_refused(data):
    session = TrainingSession(config(slot("lbfgs:lr=0.5"), epochs=None, steps=3), data)
    with pytest.raises(ValueError, match="group"):
        slot("lbfgs:lr=0.5", "1:classifier.lr=0.01")
    with pytest.raises(ValueError, match="group"):
        session.request_change(0, Change(0, "lr", 0.01, group="classifier"))


# --- changes asked for while running -----------------------------------------------------------


def test_a_change_requested_from_another_thread_applies_at_the_next_step(data):
    session = TrainingSession(config(slot("sgd:lr=0.05"), slot("adam:lr=0.001")), data)
    change = Change(0, "lr", 0.2)
    records = []
    for record in session.run():
        records.append(record)
        if isinstance(record, TrainRecord) and record.step == 3 and record.index == 1:
            # The page's button: another thread, while run() is paused between steps.
            asker = threading.Thread(target=session.request_change, args=(0, change))
            asker.start()
            asker.join()
    assert session.live_changes == [(3, 0, change)]  # before 0-based step 3: record step 4
    sgd = lrs_of(records, 0)
    assert [sgd[s] for s in range(1, 5)] == [(0.05, 0.05)] * 3 + [(0.2, 0.2)]
    assert set(sgd[s] for s in range(4, 13)) == {(0.2, 0.2)}
    assert set(lrs_of(records, 1).values()) == {(0.001, 0.001)}  # the other optimizer


def test_a_change_requested_while_a_worker_thread_trains_lands_between_two_steps(data):
    cfg = config(slot("sgd:lr=0.05"), slot("adam:lr=0.001"), epochs=None, steps=16)
    session = TrainingSession(cfg, data)
    change = Change(0, "lr", 0.5, multiply=True, group="classifier")
    asked = threading.Event()
    records = []

    def train():
        for record in session.run():
            records.append(record)
            if isinstance(record, TrainRecord) and record.step >= 8:
                asked.wait(timeout=30)  # the run cannot end before the request arrives

    worker = threading.Thread(target=train)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while session.step < 2:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        session.request_change(1, change)
    finally:
        asked.set()
        worker.join(timeout=60)
    assert not worker.is_alive()
    ((at, index, applied),) = session.live_changes
    assert (index, applied) == (1, change)
    assert 2 <= at <= 8
    adam = lrs_of(records, 1)
    assert len(adam) == 16
    for step, (features, classifier) in adam.items():
        assert features == 0.001
        assert classifier == (0.001 if step <= at else 0.0005), (step, at)
    assert set(lrs_of(records, 0).values()) == {(0.05, 0.05)}


def test_a_request_with_a_bad_value_is_refused_and_changes_nothing(data):
    session = TrainingSession(config(slot("sgd:lr=0.05,momentum=0.9"), epochs=1), data)
    with pytest.raises(ValueError, match="lr"):
        session.request_change(0, Change(0, "lr", -0.1))
    with pytest.raises(ValueError, match="momentum"):
        session.request_change(0, Change(0, "momentum", -1.0))
    with pytest.raises(ValueError, match="index 3"):
        session.request_change(3, Change(0, "lr", 0.1))
    with pytest.raises(ValueError):
        session.request_change(0, Change(0, "no_such_option", 0.1))
    with pytest.raises(ValueError, match="factor must be positive"):
        Change(0, "lr", -2.0, multiply=True)
    records = list(session.run())
    assert session.live_changes == []
    assert set(lrs_of(records, 0).values()) == {(0.05, 0.05)}


# --- configs and checkpoints -------------------------------------------------------------------


def test_changes_round_trip_through_the_config_dict():
    cfg = config(
        slot("sgd:lr=0.05,momentum=0.9", "epoch2:classifier.lr*=0.1", "3:lr=0.01"),
        slot("adam", scheduler=SchedulerConfig("cosine")),
    )
    out = cfg.to_dict()
    # As text; a slot without changes has no "changes" entry.
    assert sorted(out["slots"][0]["changes"]) == ["3:lr=0.01", "epoch2:classifier.lr*=0.1"]
    assert "changes" not in out["slots"][1]
    back = TrainRunConfig.from_dict(json.loads(json.dumps(out)))
    assert back == cfg
    assert set(back.slots[0].changes) == {
        Change(3, "lr", 0.01),
        Change(2, "lr", 0.1, multiply=True, group="classifier", epoch=True),
    }
    with pytest.raises(ValueError, match="not a number"):
        TrainRunConfig.from_dict({**out, "slots": [{**out["slots"][0], "changes": ["3:lr=x"]}]})
    with pytest.raises(ValueError, match="Invalid lr value"):
        TrainRunConfig.from_dict({**out, "slots": [{**out["slots"][0], "changes": ["3:lr=-1"]}]})


def test_a_checkpoint_saved_before_the_changes_resumes_into_the_same_lrs(data):
    cfg = config(
        slot("sgd:lr=0.05,momentum=0.9", "6:lr=0.01"),
        slot("adam:lr=0.002", "epoch2:classifier.lr*=0.1", classifier_lr_mult=5.0),
    )
    straight = TrainingSession(cfg, data)
    reference = list(straight.run())

    first = TrainingSession(cfg, data)
    for _ in first.run():
        if first.step == 5 and not first.evaluates_after(5):
            break
    saved = read_checkpoint(checkpoint_bytes(first))
    assert saved["config"]["slots"][0]["changes"] == ["6:lr=0.01"]
    resumed = TrainingSession(TrainRunConfig.from_dict(saved["config"]), data)
    restore(resumed, saved)
    later = list(resumed.run())
    assert min(r.step for r in later) == 6

    for i in range(2):
        want = lrs_of(reference, i)
        got = lrs_of(first.history, i) | lrs_of(later, i)
        assert got == want
    assert lrs_of(later, 0)[7] == (0.01, 0.01) and lrs_of(later, 0)[6] == (0.05, 0.05)
    assert lrs_of(later, 1)[9] == pytest.approx((0.002, 0.001))
    for a, b in zip(straight.models, resumed.models, strict=True):
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_a_live_change_is_in_the_checkpoint_through_the_optimizer_state(data):
    cfg = config(slot("sgd:lr=0.05"), epochs=2)
    session = TrainingSession(cfg, data)
    for record in session.run():
        if record.step == 2:
            session.request_change(0, Change(0, "lr", 0.3))  # one slot: one record a step
        if record.step == 5:
            break
    assert session.live_changes == [(2, 0, Change(0, "lr", 0.3))]
    state = read_checkpoint(checkpoint_bytes(session))
    resumed = TrainingSession(cfg, data)
    restore(resumed, state)
    records = list(resumed.run())
    assert set(lrs_of(records, 0).values()) == {(0.3, 0.3)}
