"""Session-state layouts: slot groups keep pages apart; the CNN page's keys round-trip configs."""

from __future__ import annotations

import pytest

from optlab.optimizers import OptimizerConfig
from optlab.schedulers import SchedulerConfig
from optlab.surface_run import MAX_OPTIMIZERS
from optlab.train_run import TrainRunConfig, TrainSlot
from optlab.ui import cnn_state as C
from optlab.ui.slots import SlotGroup


def test_slot_groups_with_different_prefixes_never_share_keys():
    state: dict = {}
    one, two = SlotGroup("", MAX_OPTIMIZERS), SlotGroup("cnn_", 4)
    a = one.add(state, OptimizerConfig.create("adam", lr=0.1))
    b = two.add(state, OptimizerConfig.create("sgd", lr=0.5))
    assert (a, b) == (0, 0)
    assert state["slot0_lr"] == 0.1 and state["cnn_slot0_lr"] == 0.5
    one.remove(state, a)
    assert one.ids(state) == [] and two.ids(state) == [0]
    assert two.read(state, 0) == OptimizerConfig.create("sgd", lr=0.5)
    assert not any(k.startswith("slot0_") for k in state)


def test_duplicate_copies_every_per_slot_key_but_the_buttons():
    state: dict = {}
    slot = C.add_train_slot(
        state,
        TrainSlot(
            OptimizerConfig.create("sgd_momentum", lr=0.02),
            classifier_lr_mult=5.0,
            scheduler=SchedulerConfig("multistep", (("milestones", (10.0, 20.0)),)),
        ),
    )
    state[C.SLOTS.key(slot, "dup")] = True  # a button's value: never copied
    copy = C.SLOTS.duplicate(state, slot)
    assert C.SLOTS.ids(state) == [slot, copy]
    assert C.read_train_slot(state, copy) == C.read_train_slot(state, slot)
    assert C.SLOTS.key(copy, "dup") not in state
    C.SLOTS.remove(state, slot)
    assert not any(k.startswith(C.SLOTS.key(slot, "")) for k in state)
    assert C.read_train_slot(state, copy).classifier_lr_mult == 5.0


CONFIGS = [
    C.default_config(),
    TrainRunConfig(
        (
            TrainSlot(
                OptimizerConfig.create("adamw", lr=3e-3, betas=(0.8, 0.95)),
                classifier_lr_mult=0.5,
                scheduler=SchedulerConfig("onecycle", (("pct_start", 0.2),)),
            ),
            TrainSlot(OptimizerConfig.create("lbfgs"), scheduler=SchedulerConfig("plateau")),
        ),
        model="seednet-relu",
        batch_size=128,
        steps=300,
        epochs=None,
        train_limit=2048,
        test_limit=512,
        augment=True,
        clip_grad_norm=2.5,
        eval_every=25,
        seed=7,
        device="cpu",
    ),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "everything"])
def test_apply_then_read_gives_the_same_config(cfg):
    state: dict = {}
    C.apply_config(state, cfg)
    assert C.config_from_state(state) == cfg


def test_the_classifier_multiple_is_ignored_for_lbfgs_which_has_one_group():
    state: dict = {}
    C.apply_config(state, C.default_config())
    slot = C.SLOTS.ids(state)[0]
    C.SLOTS.write(state, slot, OptimizerConfig.create("lbfgs"))
    state[C.clr_key(slot)] = 10.0  # left over from the slot's earlier choice
    assert C.read_train_slot(state, slot).classifier_lr_mult == 1.0


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("cnn_slot0_lr", -1.0, "Invalid lr value: -1"),
        ("cnn_slot0_clr", 0.0, "classifier_lr_mult"),
        ("cnn_slot0_sched_gamma", 2.0, "Invalid gamma value: 2"),
        (C.BATCH, 0, "batch_size"),
        (C.EVAL_EVERY, 0, "eval_every"),
        (C.CLIP, float("inf"), "clip_grad_norm"),
        (C.DEVICE, "tpu", "device"),
    ],
)
def test_bad_widget_values_give_the_engines_message(key, value, fragment):
    state: dict = {}
    C.apply_config(state, C.default_config())
    if key.startswith("cnn_slot0_sched"):
        C.write_scheduler(state, 0, SchedulerConfig("exponential"))
    state[C.CLIP_ON] = key == C.CLIP
    state[key] = value
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(")):
        C.config_from_state(state)


def test_initialise_picks_cifar_only_when_it_is_here_and_runs_once():
    state: dict = {}
    C.initialise(state, cifar_available=False)
    assert state[C.DATA] == C.SYNTHETIC
    state[C.DATA] = C.CIFAR
    C.initialise(state, cifar_available=False)  # a later run keeps the user's choice
    assert state[C.DATA] == C.CIFAR
    fresh: dict = {}
    C.initialise(fresh, cifar_available=True)
    assert fresh[C.DATA] == C.CIFAR
    assert C.config_from_state(fresh) == C.default_config()
