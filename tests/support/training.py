"""Tiny CNN runs for the tests: a synthetic set and a short comparison, in one place.

`tiny_train_config` is the one small comparison the training tests start
from (six steps of 32 images, on the CPU); each test states only what it
changes.
"""

from __future__ import annotations

from typing import Any

from optlab.optim.config import OptimizerConfig
from optlab.train.data import LoadedData
from optlab.train.data.synthetic import SYNTHETIC_CLASSES, synthetic_cifar
from optlab.train.run import TrainRunConfig, TrainSlot

#: Six steps of 32 images on 256 training and 64 test images, tested every 3 steps.
TINY = {
    "batch_size": 32,
    "steps": 6,
    "epochs": None,
    "train_limit": 256,
    "test_limit": 64,
    "eval_every": 3,
    "device": "cpu",
}


def tiny_data(n_train: int = 256, n_test: int = 64, seed: int = 3) -> LoadedData:
    """A seeded synthetic set, labelled as such."""
    train, test = synthetic_cifar(n_train=n_train, n_test=n_test, seed=seed)
    return LoadedData(train, test, tuple(SYNTHETIC_CLASSES), "synthetic", "synthetic (test)")


def tiny_train_config(*slots: str | TrainSlot, **changes: Any) -> TrainRunConfig:
    """A short comparison of ``slots`` (SPEC texts or slots), `TINY` with ``changes``."""
    made = tuple(
        s if isinstance(s, TrainSlot) else TrainSlot(OptimizerConfig.from_text(s)) for s in slots
    )
    return TrainRunConfig(made, **{**TINY, **changes})
