"""Features frozen until step N, then added with ``optimizer.add_param_group``.

The oracle is a hand-written torch loop that does the same: ``requires_grad_(False)``
on the features, an optimizer built on the classifier group alone, and
``add_param_group`` before 0-based step N. The session must equal it bit for bit on
the CPU, resume across the add as if never stopped, drive every registered
scheduler through the add, and refuse what cannot work with a clear message.
Synthetic images, SeedNet, 4 steps of 16 images per epoch: each run takes about a second.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Change
from optlab.optim.schedulers import SCHEDULERS, SchedulerConfig
from optlab.train.autosave import RunStore
from optlab.train.checkpoint import checkpoint_bytes, read_checkpoint, restore, resume
from optlab.train.data import LoadedData
from optlab.train.data.batches import CIFAR10_MEAN, CIFAR10_STD, normalise
from optlab.train.freeze import Freeze
from optlab.train.models import build_model
from optlab.train.plots import live_figure
from optlab.train.report import RunLog
from optlab.train.run import TrainingSession, TrainRecord, TrainRunConfig, TrainSlot
from tests.support.training import tiny_data, tiny_train_config

TRAIN, TEST, BATCH = 64, 16, 16
PER_EPOCH = TRAIN // BATCH  # 4 steps per epoch

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data() -> LoadedData:
    return tiny_data(TRAIN, TEST, seed=5)


def slot(spec: str, freeze: str = "off", *changes: str, **kwargs) -> TrainSlot:
    return TrainSlot(
        OptimizerConfig.from_text(spec),
        changes=tuple(Change.from_text(c) for c in changes),
        freeze=Freeze.from_text(freeze),
        **kwargs,
    )


def config(*slots: TrainSlot, **kwargs) -> TrainRunConfig:
    base = dict(batch_size=BATCH, steps=None, epochs=3, train_limit=TRAIN, test_limit=TEST)
    base.update(eval_every=1000, channels_last=False)
    return tiny_train_config(*slots, **{**base, **kwargs})


def trained(records, index: int) -> list[TrainRecord]:
    return [r for r in records if isinstance(r, TrainRecord) and r.index == index]


def hand_loop(cfg: TrainRunConfig, data: LoadedData, make_optimizer, add_at: int, add):
    """The tutorial's fine-tuning loop: features frozen, the classifier group alone,
    ``add(model, optimizer, scheduler)`` before 0-based step ``add_at``.

    ``make_optimizer(classifier_params)`` returns ``(optimizer, scheduler or None)``.
    Returns the model and the lrs each step used, in the optimizer's group order.
    """
    model = build_model(cfg.model, cfg.seed)
    for p in model.features.parameters():
        p.requires_grad_(False)
    optimizer, scheduler = make_optimizer(list(model.classifier.parameters()))
    images = data.train.images[: cfg.train_limit]
    labels = data.train.labels[: cfg.train_limit]
    order_gen = torch.Generator().manual_seed(cfg.seed)
    loss_fn = nn.CrossEntropyLoss()
    used = []
    for step in range(cfg.epochs * PER_EPOCH):
        if step % PER_EPOCH == 0:
            order = torch.randperm(len(labels), generator=order_gen)
        at = (step % PER_EPOCH) * cfg.batch_size
        idx = order[at : at + cfg.batch_size]
        if step == add_at:
            add(model, optimizer, scheduler)
        optimizer.zero_grad()
        loss_fn(model(normalise(images[idx], CIFAR10_MEAN, CIFAR10_STD)), labels[idx]).backward()
        optimizer.step()
        used.append(tuple(g["lr"] for g in optimizer.param_groups))
        if scheduler is not None:
            scheduler.step()
    return model, used


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_a_frozen_then_added_sgd_slot_equals_the_tutorial_loop_bit_for_bit(data):
    cfg = config(slot("sgd:lr=0.05,momentum=0.9", "epoch1"))
    session = TrainingSession(cfg, data)
    initial = build_model(cfg.model, cfg.seed)
    for _ in range(PER_EPOCH):  # the frozen steps: the classifier alone moves
        session.run_step()
    model = session.models[0]
    assert len(session.optimizers[0].param_groups) == 1
    assert all(not p.requires_grad and p.grad is None for p in model.features.parameters())
    for p, q in zip(model.features.parameters(), initial.features.parameters(), strict=True):
        assert torch.equal(p, q)
    assert not torch.equal(model.classifier[1].weight, initial.classifier[1].weight)
    list(session.run())
    records = session.history

    def add(model, optimizer, scheduler):
        for p in model.features.parameters():
            p.requires_grad_(True)
        optimizer.add_param_group({"params": list(model.features.parameters()), "lr": 0.05})

    hand, used = hand_loop(
        cfg,
        data,
        lambda params: (torch.optim.SGD(params, lr=0.05, momentum=0.9), None),
        PER_EPOCH,
        add,
    )
    assert_same_weights(session.models[0], hand)
    lrs = [r.lrs for r in trained(records, 0)]
    # Records keep (features, classifier); NaN while the features have no group.
    assert all(math.isnan(f) and c == 0.05 for f, c in lrs[:PER_EPOCH])
    assert lrs[PER_EPOCH:] == [(0.05, 0.05)] * (2 * PER_EPOCH) == used[PER_EPOCH:]
    groups = session.optimizers[0].param_groups
    assert [g["name"] for g in groups] == ["classifier", "features"]
    assert groups[1]["momentum"] == 0.9 and groups[1]["lr"] == 0.05


def test_the_features_join_a_schedule_where_it_is_equal_to_a_hand_written_add(data):
    steplr = SchedulerConfig("step", (("step_size", 2), ("gamma", 0.5)))
    cfg = config(slot("adam:lr=0.002", "5", classifier_lr_mult=10.0, scheduler=steplr))
    session = TrainingSession(cfg, data)
    records = list(session.run())

    def make(params):
        opt = torch.optim.Adam([{"name": "classifier", "params": params, "lr": 0.02}], lr=0.002)
        return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

    def add(model, optimizer, scheduler):
        for p in model.features.parameters():
            p.requires_grad_(True)
        head = optimizer.param_groups[0]
        group = {k: v for k, v in head.items() if k not in ("params", "name")}
        group.update(lr=head["lr"] / 10.0, initial_lr=head["initial_lr"] / 10.0)
        optimizer.add_param_group({"params": list(model.features.parameters()), **group})
        scheduler.base_lrs.append(group["initial_lr"])

    hand, used = hand_loop(cfg, data, make, 5, add)
    assert_same_weights(session.models[0], hand)
    lrs = [r.lrs for r in trained(records, 0)]
    # StepLR halved the classifier's 0.02 twice before step 5: the features join at
    # 0.002 / 4, not at 0.002, and halve with it from then on.
    assert lrs[5] == pytest.approx((0.0005, 0.005))
    assert [(c, f) for f, c in lrs[5:]] == used[5:]
    assert session.schedulers[0].base_lrs == pytest.approx([0.02, 0.002])


@pytest.mark.parametrize("key", [s.key for s in SCHEDULERS if s.key != "none"])
def test_every_scheduler_drives_the_added_features_group_as_the_classifiers(data, key):
    # With a 2x classifier lr, the features' lr is half the classifier's at every step
    # after the add: the same schedule, their own base lr.
    values = {
        "plateau": (("patience", 0),),
        "step": (("step_size", 2),),
        "multistep": (("milestones", (2.0, 6.0)),),
    }
    scheduler = SchedulerConfig(key, values.get(key, ()))
    cfg = config(
        slot("sgd:lr=0.005,momentum=0.9", "3", classifier_lr_mult=2.0, scheduler=scheduler),
        eval_every=1,
    )
    session = TrainingSession(cfg, data)
    lrs = [r.lrs for r in trained(session.run(), 0)]
    assert len(lrs) == 3 * PER_EPOCH
    assert all(math.isnan(f) for f, _ in lrs[:3])
    for step, (features, classifier) in enumerate(lrs[3:], 4):
        assert features == pytest.approx(classifier / 2, rel=1e-12), (step, features, classifier)
    if key != "plateau":
        assert len({c for _, c in lrs}) > 1  # the schedule did move the lr


def checkpoint_roundtrip(cfg: TrainRunConfig, data: LoadedData, stop: int) -> TrainingSession:
    first = TrainingSession(cfg, data)
    while first.step < stop:
        first.run_step()
    state = read_checkpoint(checkpoint_bytes(first))
    resumed = TrainingSession(TrainRunConfig.from_dict(state["config"]), data)
    restore(resumed, state)
    list(resumed.run())
    return resumed


@pytest.mark.parametrize("stop", [3, 5, 6], ids=["mid-freeze", "at-the-add", "after-the-add"])
def test_resuming_across_the_add_equals_an_unbroken_run(data, stop):
    onecycle = SchedulerConfig("onecycle")
    cfg = config(
        slot("sgd:lr=0.005,momentum=0.9", "5", scheduler=onecycle, classifier_lr_mult=3.0),
        slot("adamw:lr=0.002", "epoch1", scheduler=SchedulerConfig("cosine")),
        slot("adam:lr=0.002"),
    )
    straight = TrainingSession(cfg, data)
    list(straight.run())
    resumed = checkpoint_roundtrip(cfg, data, stop)
    for a, b in zip(straight.models, resumed.models, strict=True):
        assert_same_weights(a, b)
    for i in range(3):
        want, got = trained(straight.history, i), trained(resumed.history, i)
        assert repr([r.lrs for r in got]) == repr([r.lrs for r in want])  # NaN: frozen
        assert [r.train_loss for r in got] == [r.train_loss for r in want]
    for a, b in zip(straight.optimizers, resumed.optimizers, strict=True):
        assert len(a.param_groups) == len(b.param_groups) == 2
        assert a.state_dict()["param_groups"] == b.state_dict()["param_groups"]
    assert [s.state_dict() for s in straight.schedulers[:2]] == [
        s.state_dict() for s in resumed.schedulers[:2]
    ]


def test_a_planned_change_of_the_features_applies_after_the_add(data):
    cfg = config(slot("sgd:lr=0.05", "4", "4:features.lr=0.01", "6:lr*=0.5"))
    lrs = [r.lrs for r in trained(TrainingSession(cfg, data).run(), 0)]
    assert lrs[4] == (0.01, 0.05) and lrs[6] == (0.005, 0.025)


def test_a_live_change_of_the_frozen_features_is_refused_until_they_are_added(data):
    session = TrainingSession(config(slot("sgd:lr=0.05", "2")), data)
    session.run_step()
    with pytest.raises(ValueError, match="features are frozen until step 2"):
        session.request_change(0, Change(0, "lr", 0.1, group="features"))
    session.request_change(0, Change(0, "lr", 0.1))  # every group it has: the classifier
    session.run_step()
    session.run_step()
    session.request_change(0, Change(0, "lr", 0.2, group="features"))
    session.run_step()
    lrs = [r.lrs for r in trained(session.history, 0)]
    # The features joined at the classifier's live lr (0.1), then got their own.
    assert math.isnan(lrs[1][0]) and lrs[1][1] == 0.1
    assert lrs[2] == (0.1, 0.1) and lrs[3] == (0.2, 0.1)


def test_the_freeze_survives_the_config_dict_and_names_itself():
    cfg = config(slot("sgd:lr=0.05", "epoch2"), slot("adam:lr=0.001"))
    as_dict = cfg.to_dict()
    assert as_dict["slots"][0]["freeze"] == "epoch2" and "freeze" not in as_dict["slots"][1]
    assert TrainRunConfig.from_dict(as_dict) == cfg
    assert cfg.slots[0].label == "SGD (lr=0.05) + features frozen for 2 epochs"
    assert Freeze.from_text(" 200 ") == Freeze(200) and Freeze.from_text("off") is None


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Freeze.from_text("soon"), "expected a step count N, epochN or off"),
        (lambda: Freeze(0), "whole number >= 1"),
        (lambda: slot("lbfgs", "3"), "L-BFGS optimizes one param group only"),
        (lambda: config(slot("sgd", "12"), epochs=None, steps=12), "not before the run's end"),
        (lambda: config(slot("sgd", "epoch3")), "frozen for 3 epochs is not before"),
        (lambda: slot("sgd", "5", "4:features.lr=0.1"), "the features are frozen until 5"),
    ],
)
def test_a_freeze_that_cannot_work_is_refused_in_words(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_freeze_in_the_other_unit_is_checked_against_the_run_length(data):
    # 13 steps is past the run's 3 epochs of 4; the config cannot know the epoch size.
    with pytest.raises(ValueError, match=r"frozen for 13 steps \(step 13\), not before"):
        TrainingSession(config(slot("sgd", "13")), data)
    cfg = config(slot("sgd", "epoch1", "2:features.lr=0.1"), steps=10, epochs=None)
    with pytest.raises(ValueError, match="frozen until step 4"):
        TrainingSession(cfg, data)


def test_the_charts_mark_the_add_and_the_features_lr_starts_there(data):
    cfg = config(slot("sgd:lr=0.05", "3"), slot("adam:lr=0.002"), epochs=2)
    logs = [RunLog(s, "running", BATCH) for s in cfg.slots]
    for record in TrainingSession(cfg, data).run():
        logs[record.index].add(record)
    assert logs[0].features_added_at == 4 and logs[1].features_added_at is None
    assert [r["lrs"] for r in logs[0].history[2:4]] == [[None, 0.05], [0.05, 0.05]]
    assert logs[0].history[0]["lr"] == 0.05  # the first group the step trained
    json.dumps(logs[0].history, allow_nan=False)  # JSON-ready: the frozen group's lr is null
    fig = live_figure(logs)
    # A dotted line between step 3 and step 4 on the loss (x) and lr (x3) panels.
    assert [(s.x0, s.xref) for s in fig.layout.shapes] == [(3.5, "x"), (3.5, "x3")]
    assert any(a.text == "+ features" for a in fig.layout.annotations)
    features_lr = [t for t in fig.data if t.name == f"{logs[0].label} (features)"]
    assert len(features_lr) == 1 and features_lr[0].y[:4] == (None, None, None, 0.05)


def test_a_bare_add_param_group_breaks_or_misses_a_schedule_as_the_docs_say():
    """What `add_features` exists for, measured on torch itself (optlab.train.freeze)."""

    def bare(make_scheduler):
        head, new = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
        optimizer = torch.optim.SGD([head], lr=0.1, momentum=0.9)
        scheduler = make_scheduler(optimizer)
        for _ in range(3):
            optimizer.step()
            scheduler.step()
        optimizer.add_param_group({"params": [new], "lr": 0.1})
        optimizer.step()
        scheduler.step()
        return [g["lr"] for g in optimizer.param_groups]

    lr_scheduler = torch.optim.lr_scheduler
    with pytest.raises(KeyError, match="max_lr"):
        bare(lambda opt: lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10))
    # StepLR halved the first group twice before the add; the new one starts from 0.1.
    head, new = bare(lambda opt: lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))
    assert head == pytest.approx(0.1 / 16) and new == pytest.approx(0.1 / 2)


def test_an_autosaved_run_resumes_mid_freeze_and_after_the_add_as_if_never_stopped(tmp_path, data):
    cfg = config(slot("sgd:lr=0.05,momentum=0.9", "5", scheduler=SchedulerConfig("cosine")))
    straight = TrainingSession(cfg, data)
    list(straight.run())
    choice = {"source": "synthetic", "dir": ""}
    for stop, run_id in ((3, "20261204-120000-aaaaaa"), (7, "20261204-120000-bbbbbb")):
        killed = TrainingSession(cfg, data)
        while killed.step < stop:
            killed.run_step()
        RunStore(tmp_path, server="dead").save(run_id, killed, choice)
        store = RunStore(tmp_path, server="new")
        _, state = store.load(run_id)
        resumed = TrainingSession(TrainRunConfig.from_dict(state["config"]), data)
        resume(resumed, state)
        list(resumed.run())
        assert_same_weights(straight.models[0], resumed.models[0])
        assert repr([r.lrs for r in trained(resumed.history, 0)]) == repr(
            [r.lrs for r in trained(straight.history, 0)]
        )
