"""The Studies page's session state: widget keys <-> `StudyConfig`, and its share link.

The optimizers and the search space are typed as the CLI takes them (one
``--opt`` SPEC, one ``--space`` per line), so a study written on the page
reads the same on the command line and in a share link.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from optlab.caps import CAPS
from optlab.links.study import study_from_params, study_to_params
from optlab.optim.config import OptimizerConfig
from optlab.study.config import StudyConfig
from optlab.study.space import Dimension
from optlab.train.config import TrainRunConfig, TrainSlot
from optlab.ui.reconnect import keep_sent_numbers

State = MutableMapping[str, Any]

PREFIX = "st_"
DATA, OPTS, SPACE = "st_data", "st_opts", "st_space"
TRIALS, SEEDS, STEPS, BATCH = "st_trials", "st_seeds", "st_steps", "st_batch"
TRAIN_LIMIT, TEST_LIMIT, SEED, GRID = "st_train", "st_test", "st_seed", "st_grid"
INITIALISED, LINK_WARNING = "st_initialised", "st_link_warning"
CIFAR, SYNTHETIC = "cifar10", "synthetic"


def default_config() -> StudyConfig:
    """SGD + momentum vs Adam, lr over four decades, 8 points x 2 seeds of 200 steps:
    32 trials, about five minutes on a 2-core laptop."""
    base = TrainRunConfig(
        slots=(
            TrainSlot(OptimizerConfig.from_text("sgd:momentum=0.9")),
            TrainSlot(OptimizerConfig.from_text("adam")),
        ),
        steps=200,
        epochs=None,
        train_limit=4000,
        test_limit=1000,
        eval_every=100,
    )
    return StudyConfig(base, (Dimension("lr", 1e-4, 1.0, "log"),), trials=8, seeds=2, seed=0)


def write_config(state: State, cfg: StudyConfig, data: str) -> None:
    """Sets every widget from ``cfg``."""
    base = cfg.base
    state[DATA] = data
    state[OPTS] = "\n".join(slot.optimizer.to_text() for slot in base.slots)
    state[SPACE] = "\n".join(d.to_text() for d in cfg.dims)
    state[TRIALS], state[SEEDS] = cfg.trials, cfg.seeds
    state[SEED], state[GRID] = cfg.seed, cfg.grid
    state[STEPS] = base.steps if base.steps is not None else 200
    state[BATCH] = base.batch_size
    state[TRAIN_LIMIT] = base.train_limit or 4000
    state[TEST_LIMIT] = base.test_limit or 1000


def initialise(state: State, has_cifar: bool, link: Mapping[str, Sequence[str]]) -> None:
    """Fills the widgets once per session: from a share link when there is one, else
    the defaults (on CIFAR-10 when the server has it)."""
    if state.get(INITIALISED):
        return
    state[INITIALISED] = True
    write_config(state, default_config(), CIFAR if has_cifar else SYNTHETIC)
    if link.get("page") == ["studies"]:
        try:
            cfg, data = study_from_params(link)
        except ValueError as err:
            state[LINK_WARNING] = f"This link could not be used ({err}); showing the defaults."
        else:
            write_config(state, cfg, data if has_cifar or data == SYNTHETIC else SYNTHETIC)
    keep_sent_numbers(state)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in str(text).splitlines() if line.strip()]


def config_from_state(state: State) -> StudyConfig:
    """The study the widgets describe.

    Raises:
        ValueError: naming the first bad line or setting.
    """
    opts = _lines(state[OPTS])
    if not opts:
        raise ValueError("Optimizers: write one SPEC per line, e.g. adam:lr=0.001")
    slots = []
    for n, text in enumerate(opts, start=1):
        try:
            slots.append(TrainSlot(OptimizerConfig.from_text(text)))
        except ValueError as err:
            raise ValueError(f"Optimizers, line {n}: {err}") from None
    space = _lines(state[SPACE])
    if not space:
        raise ValueError("Search space: give at least an lr range, e.g. lr=1e-4:1:log")
    dims = tuple(Dimension.from_text(text) for text in space)
    base = TrainRunConfig(
        slots=tuple(slots),
        steps=int(state[STEPS]),
        epochs=None,
        batch_size=int(state[BATCH]),
        train_limit=int(state[TRAIN_LIMIT]),
        test_limit=int(state[TEST_LIMIT]),
        eval_every=max(1, int(state[STEPS]) // 2),
        seed=int(state[SEED]),
    )
    return StudyConfig(
        base, dims, int(state[TRIALS]), int(state[SEEDS]), int(state[SEED]), bool(state[GRID])
    )


def share_params(state: State) -> dict[str, Any]:
    """The share link of the widgets' study (raises ValueError when it is invalid)."""
    return study_to_params(config_from_state(state), state[DATA])


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def summary(cfg: StudyConfig) -> str:
    """The study's size in one line: trials, steps, and the server's cap."""
    parts = " x ".join(
        (
            _count(len(cfg.base.slots), "optimizer"),
            _count(cfg.trials, "point"),
            _count(cfg.seeds, "seed"),
        )
    )
    return (
        f"{_count(cfg.n_trials, 'trial')} ({parts}) of {_count(cfg.trial_steps, 'step')}: "
        f"{cfg.total_steps:,} steps in all (this server's cap: {CAPS.study_steps:,})."
    )
