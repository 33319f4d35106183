"""Session-state layouts: slot groups keep pages apart; the CNN page's keys round-trip configs."""

from __future__ import annotations

import pytest

from optlab.optim.config import OptimizerConfig
from optlab.optim.schedulers import SchedulerConfig
from optlab.surface.run import MAX_OPTIMIZERS
from optlab.train.freeze import Freeze
from optlab.train.run import TrainRunConfig, TrainSlot
from optlab.ui.cnn import settings
from optlab.ui.slots import SlotGroup
from tests.pages.test_cnn import clean_environment, cnn_page, no_problems

__all__ = ["clean_environment"]  # the autouse fixture: an empty cache, no data folder


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
    slot = settings.add_train_slot(
        state,
        TrainSlot(
            OptimizerConfig.create("sgd_momentum", lr=0.02),
            classifier_lr_mult=5.0,
            scheduler=SchedulerConfig("multistep", (("milestones", (10.0, 20.0)),)),
        ),
    )
    state[settings.SLOTS.key(slot, "dup")] = True  # a button's value: never copied
    copy = settings.SLOTS.duplicate(state, slot)
    assert settings.SLOTS.ids(state) == [slot, copy]
    assert settings.read_train_slot(state, copy) == settings.read_train_slot(state, slot)
    assert settings.SLOTS.key(copy, "dup") not in state
    settings.SLOTS.remove(state, slot)
    assert not any(k.startswith(settings.SLOTS.key(slot, "")) for k in state)
    assert settings.read_train_slot(state, copy).classifier_lr_mult == 5.0


CONFIGS = [
    settings.default_config(),
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
        # Every page run records snapshots and sharpness at the page's settings.
        **settings.TRAJECTORIES,
    ),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "everything"])
def test_apply_then_read_gives_the_same_config(cfg):
    state: dict = {}
    settings.apply_config(state, cfg)
    assert settings.config_from_state(state) == cfg


def test_the_classifier_multiple_is_ignored_for_lbfgs_which_has_one_group():
    state: dict = {}
    settings.apply_config(state, settings.default_config())
    slot = settings.SLOTS.ids(state)[0]
    settings.SLOTS.write(state, slot, OptimizerConfig.create("lbfgs"))
    state[settings.clr_key(slot)] = 10.0  # left over from the slot's earlier choice
    assert settings.read_train_slot(state, slot).classifier_lr_mult == 1.0


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("cnn_slot0_lr", -1.0, "Invalid lr value: -1"),
        ("cnn_slot0_clr", 0.0, "classifier_lr_mult"),
        ("cnn_slot0_sched_gamma", 0.0, "Invalid gamma value: 0"),
        (settings.BATCH, 0, "batch_size"),
        (settings.EVAL_EVERY, 0, "eval_every"),
        (settings.CLIP, float("inf"), "clip_grad_norm"),
        (settings.DEVICE, "tpu", "device"),
    ],
)
def test_bad_widget_values_give_the_engines_message(key, value, fragment):
    state: dict = {}
    settings.apply_config(state, settings.default_config())
    if key.startswith("cnn_slot0_sched"):
        settings.SLOTS.write_scheduler(state, 0, SchedulerConfig("exponential"))
    state[settings.CLIP_ON] = key == settings.CLIP
    state[key] = value
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(")):
        settings.config_from_state(state)


def test_initialise_picks_cifar_only_when_it_is_here_and_runs_once():
    state: dict = {}
    settings.initialise(state, cifar_available=False)
    assert state[settings.DATA] == settings.SYNTHETIC
    state[settings.DATA] = settings.CIFAR
    settings.initialise(state, cifar_available=False)  # a later run keeps the user's choice
    assert state[settings.DATA] == settings.CIFAR
    fresh: dict = {}
    settings.initialise(fresh, cifar_available=True)
    assert fresh[settings.DATA] == settings.CIFAR
    assert settings.config_from_state(fresh) == settings.default_config()


def test_a_slot_switched_to_muon_drops_its_freeze_and_gets_it_back_as_sgd():
    # TrainSlot refuses a freeze on a Muon slot; the sidebar hides the checkbox there,
    # and the freeze left in the session from the slot's earlier choice must not reach
    # the config (or the link) while Muon is chosen, nor be lost when SGD comes back.
    at = cnn_page()
    at.checkbox(key="cnn_slot0_freeze_on").check().run()
    at.number_input(key="cnn_slot0_freeze_at").set_value(3).run()
    assert as_lists(at.query_params)["freeze"] == ["3", "off"]
    at.selectbox(key="cnn_slot0_choice").set_value("muon").run()
    no_problems(at)
    assert "cnn_slot0_freeze_on" not in [c.key for c in at.checkbox]
    assert settings.config_from_state(at.session_state).slots[0].freeze is None
    assert "freeze" not in at.query_params
    at.selectbox(key="cnn_slot0_choice").set_value("sgd").run()
    no_problems(at)
    assert at.checkbox(key="cnn_slot0_freeze_on").value
    assert settings.config_from_state(at.session_state).slots[0].freeze == Freeze(3)


def as_lists(params) -> dict[str, list[str]]:
    return {k: v if isinstance(v, list) else [v] for k, v in params.items()}
