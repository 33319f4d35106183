"""The CNN lab's session state: widget keys <-> `TrainRunConfig`, and its share link.

As on the playground the widgets own the state. Every key here starts with
``cnn_`` and the optimizer slots are a `SlotGroup` of their own, so the two
pages never share settings. Each slot also keeps its classifier lr multiple,
its scheduler (with that scheduler's knobs) and its features' freeze under the
slot's prefix.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import torch

from optlab.caps import CIFAR_TEST_IMAGES, CIFAR_TRAIN_IMAGES
from optlab.links.cnn import CNN, train_to_params
from optlab.optim.config import OptimizerConfig
from optlab.optim.hparams import HParam
from optlab.optim.plans import Plan
from optlab.optim.registry import choice_spec
from optlab.train.config import COMPANION_KNOBS, default_companion
from optlab.train.freeze import Freeze
from optlab.train.run import MAX_SLOTS, TrainRunConfig, TrainSlot
from optlab.ui.reconnect import keep_sent_numbers
from optlab.ui.slots import SlotGroup, read_values, write_values

State = MutableMapping[str, Any]

SLOTS = SlotGroup("cnn_", MAX_SLOTS)
DATA, DATA_DIR, MODEL = "cnn_data", "cnn_data_dir", "cnn_model"
BATCH, LENGTH, EPOCHS, STEPS = "cnn_batch", "cnn_length", "cnn_epochs", "cnn_steps"
TRAIN_LIMIT, TEST_LIMIT, AUGMENT = "cnn_train_limit", "cnn_test_limit", "cnn_augment"
CLIP_ON, CLIP, EVAL_EVERY = "cnn_clip_on", "cnn_clip", "cnn_eval_every"
SEED, DEVICE, INITIALISED = "cnn_seed", "cnn_device", "cnn_initialised"
CIFAR, SYNTHETIC = "cifar10", "synthetic"
#: A message for the next run of the page (a button callback's error).
ERROR = "cnn_error"


#: What every page run records for its Trajectories view: a weight snapshot every
#: 10 steps (within ``CAPS.snapshot_mb``: past it every second snapshot goes and
#: the interval doubles) and each optimizer's sharpness every 200 steps on the
#: first 64 training images, which keeps sharpness under 15% of the training time
#: (``python -m bench.landscape`` measures it).
TRAJECTORIES = {"snapshot_every": 10, "sharpness_every": 200, "sharpness_images": 64}


def default_config() -> TrainRunConfig:
    """The workshop demo: SGD + momentum vs Adam, 4 epochs of 10,000 images.

    About half a minute on a 2-core laptop (the shared 5,085-image subset
    takes a quarter of that), long enough to watch the curves part ways.
    """
    return TrainRunConfig(
        slots=(
            TrainSlot(OptimizerConfig.create("sgd_momentum", lr=0.01)),
            TrainSlot(OptimizerConfig.create("adam", lr=1e-3)),
        ),
        epochs=4,
        train_limit=10_000,
        test_limit=1000,
        eval_every=50,
        **TRAJECTORIES,
    )


def clr_key(slot: int) -> str:
    """Session key of a slot's classifier lr multiple."""
    return SLOTS.key(slot, "clr")


def freeze_keys(slot: int) -> tuple[str, str, str]:
    """Session keys of a slot's freeze: on/off, its length, and its unit (`FREEZE_UNITS`)."""
    on, at, unit = (SLOTS.key(slot, f"freeze_{name}") for name in ("on", "at", "unit"))
    return on, at, unit


#: The freeze's units, as the sidebar's radio names them.
FREEZE_UNITS = ("steps", "epochs")
#: What a slot's freeze length box shows before a freeze is set.
FREEZE_DEFAULT = 100


def rest_key(slot: int) -> str:
    """Session key of the companion (AdamW beside Muon) a slot was last written with,
    as SPEC text: its knobs the sidebar does not show (eps, amsgrad) come from it."""
    return SLOTS.key(slot, "rest")


def rest_companion(state: State, slot: int) -> OptimizerConfig:
    """The companion a slot was last written with (the default where none was)."""
    text = state.get(rest_key(slot))
    return default_companion() if text is None else OptimizerConfig.from_text(text)


def rest_knobs(
    slot: int, companion: OptimizerConfig | None = None
) -> list[tuple[HParam, tuple[str, ...]]]:
    """The companion's knobs the sidebar shows (those of lr, betas and weight decay it
    has), with keys.

    A link may name another companion than AdamW (``rest=sgd:...``): its own knobs are
    shown, so AdamW's betas never reach an SGD config.
    """
    spec = (companion or default_companion()).spec
    return [
        (hp, SLOTS.hp_keys(slot, hp, base=f"rest_{hp.name}"))
        for hp in spec.hparams
        if hp.name in COMPANION_KNOBS
    ]


def write_rest(state: State, slot: int, companion: OptimizerConfig) -> None:
    """Writes a slot's companion (its shown knobs and the whole config)."""
    state[rest_key(slot)] = companion.to_text()
    write_values(state, rest_knobs(slot, companion), companion.kwargs)


def ensure_rest(state: State, slot: int) -> None:
    """Gives a slot the default companion's values where it has none yet (a slot
    switched to Muon in the sidebar)."""
    if rest_key(slot) not in state:
        write_rest(state, slot, default_companion())


def write_train_slot(state: State, slot: int, cfg: TrainSlot) -> None:
    """Writes a whole training slot (optimizer, multiple, scheduler, freeze, companion)."""
    SLOTS.write(state, slot, cfg.optimizer)
    state[clr_key(slot)] = float(cfg.classifier_lr_mult)
    SLOTS.write_plan(state, slot, Plan(cfg.scheduler, cfg.changes))
    on, at, unit = freeze_keys(slot)
    state[on] = cfg.freeze is not None
    state[at] = cfg.freeze.at if cfg.freeze is not None else FREEZE_DEFAULT
    state[unit] = FREEZE_UNITS[1] if cfg.freeze is not None and cfg.freeze.epoch else "steps"
    write_rest(state, slot, cfg.companion or default_companion())


def read_freeze(state: State, slot: int) -> Freeze | None:
    """A slot's freeze from its widgets (None: off, or an optimizer that cannot have one).

    Raises:
        ValueError: naming the bad length.
    """
    on, at, unit = freeze_keys(slot)
    if not state.get(on):
        return None
    return Freeze(int(state.get(at, FREEZE_DEFAULT)), epoch=state.get(unit) == FREEZE_UNITS[1])


def read_train_slot(state: State, slot: int) -> TrainSlot:
    """Reads a slot's widgets into a validated `TrainSlot`.

    Raises:
        ValueError: naming the bad setting.
    """
    optimizer = SLOTS.read(state, slot)
    plan = SLOTS.read_plan(state, slot)
    closure = optimizer.spec.uses_closure  # L-BFGS: one param group, so neither
    mult = 1.0 if closure else float(state.get(clr_key(slot), 1.0))
    freeze = None if closure or optimizer.spec.matrices_only else read_freeze(state, slot)
    companion = None
    if optimizer.spec.matrices_only:
        ensure_rest(state, slot)
        base = rest_companion(state, slot)
        shown = read_values(state, rest_knobs(slot, base))
        companion = OptimizerConfig(base.key, tuple({**base.kwargs, **shown}.items()))
    return TrainSlot(
        optimizer, mult, plan.scheduler, plan.changes, freeze=freeze, companion=companion
    )


def takes_matrices_only(state: State, slot: int) -> bool:
    """Whether the slot's chosen optimizer trains 2-D weights only (Muon)."""
    return choice_spec(state[SLOTS.choice_key(slot)]).matrices_only


def add_train_slot(state: State, cfg: TrainSlot) -> int:
    """Appends a slot holding ``cfg``."""
    slot = SLOTS.add(state, cfg.optimizer)
    write_train_slot(state, slot, cfg)
    return slot


def devices() -> list[str]:
    """The devices this machine offers: ``auto``, ``cpu`` and any accelerator."""
    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    if torch.backends.mps.is_available():
        out.append("mps")
    return out


def apply_config(state: State, cfg: TrainRunConfig) -> None:
    """Writes a whole training config into the widget keys (replacing the slots)."""
    SLOTS.clear(state)
    for slot in cfg.slots:
        add_train_slot(state, slot)
    state[MODEL] = cfg.model
    state[BATCH] = cfg.batch_size
    state[LENGTH] = "steps" if cfg.steps is not None else "epochs"
    state[EPOCHS] = cfg.epochs if cfg.epochs is not None else 1
    state[STEPS] = cfg.steps if cfg.steps is not None else 500
    state[TRAIN_LIMIT] = cfg.train_limit or CIFAR_TRAIN_IMAGES
    state[TEST_LIMIT] = cfg.test_limit or CIFAR_TEST_IMAGES
    state[AUGMENT] = cfg.augment
    state[CLIP_ON] = cfg.clip_grad_norm is not None
    state[CLIP] = float(cfg.clip_grad_norm or 1.0)
    state[EVAL_EVERY] = cfg.eval_every
    state[SEED] = cfg.seed
    state[DEVICE] = cfg.device if cfg.device in devices() else "auto"


def config_from_state(state: State) -> TrainRunConfig:
    """Reads every widget into one validated training config.

    Raises:
        ValueError: naming the bad setting.
    """
    by_steps = state[LENGTH] == "steps"
    return TrainRunConfig(
        slots=tuple(read_train_slot(state, slot) for slot in SLOTS.ids(state)),
        model=state[MODEL],
        batch_size=int(state[BATCH]),
        steps=int(state[STEPS]) if by_steps else None,
        epochs=None if by_steps else int(state[EPOCHS]),
        train_limit=int(state[TRAIN_LIMIT]),
        test_limit=int(state[TEST_LIMIT]),
        augment=bool(state[AUGMENT]),
        clip_grad_norm=float(state[CLIP]) if state[CLIP_ON] else None,
        eval_every=int(state[EVAL_EVERY]),
        seed=int(state[SEED]),
        device=state[DEVICE],
        **TRAJECTORIES,
    )


LINK_WARNING = "cnn_link_warning"
#: The data source a share link asked for (absent when the page was not opened by one).
LINK_DATA = "cnn_link_data"


def initialise(
    state: State, cifar_available: bool, params: dict[str, list[str]] | None = None
) -> None:
    """On a session's first visit: a CNN share link's settings (its data source and
    folder included), else the demo defaults (on CIFAR-10 when it is here). A bad
    link leaves a warning and the defaults."""
    if state.get(INITIALISED):
        return
    cfg, data, folder = default_config(), CIFAR if cifar_available else SYNTHETIC, ""
    if params and params.get("page") == ["cnn"]:
        try:
            link = CNN.from_params(params)
        except ValueError as err:
            state[LINK_WARNING] = f"This link could not be used ({err}); showing the defaults."
        else:
            cfg, data, folder = link.config, link.data, link.folder
            state[LINK_DATA] = data
    apply_config(state, cfg)
    state[DATA] = data
    state[DATA_DIR] = folder or state.get(DATA_DIR, "")
    keep_sent_numbers(state)
    state[INITIALISED] = True


def share_params(state: State, cfg: TrainRunConfig) -> dict[str, str | list[str]]:
    """The page's share link for ``cfg`` and the data choice (with a typed folder)."""
    return train_to_params(cfg, state[DATA], state.get(DATA_DIR, ""))
