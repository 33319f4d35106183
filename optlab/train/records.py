"""What a training run yields: one record per optimizer step and per test evaluation.

`TrainRecord` and `EvalRecord` are small frozen dataclasses of plain Python
numbers (the engine calls ``.item()`` once); `by_group` reads one value per
param group in a fixed order, so a slot whose features join mid-run
(`optlab.train.freeze`) keeps its columns.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from optlab.train.models import CLASSIFIER, FEATURES

#: The order of a CNN slot's named param groups in records (`by_group`).
GROUP_ORDER = (FEATURES, CLASSIFIER)


@dataclass(frozen=True, slots=True)
class TrainRecord:
    """One optimizer's training step.

    ``train_loss`` and ``train_acc`` are measured on the step's batch before
    the update, ``lrs`` are the learning rates that update used (one per param
    group) and ``momenta`` its momentum or β₁ (`momentum_of`; empty for an
    optimizer with neither), ``update_ratio`` is ‖Δθ‖ / ‖θ‖ of the update, and
    ``step_s`` the seconds this optimizer's step took (its compute cost alone:
    for the run's images/s see `TrainingSession.images_per_s`).
    """

    step: int
    index: int
    epoch: int
    train_loss: float
    smooth_loss: float
    train_acc: float
    lrs: tuple[float, ...]
    grad_norm: float
    update_ratio: float
    step_s: float
    status: str
    momenta: tuple[float, ...] = ()


def momentum_of(group: dict) -> float | None:
    """A param group's momentum as torch's OneCycleLR and CyclicLR cycle it: β₁ =
    ``betas[0]`` where the group has ``betas`` (the Adam family), else ``momentum``
    (SGD, RMSprop); None with neither (Adagrad, say)."""
    betas = group.get("betas")
    if isinstance(betas, tuple | list) and betas:
        return float(betas[0])
    if "momentum" in group:
        return float(group["momentum"])
    return None


@dataclass(frozen=True, slots=True)
class EvalRecord:
    """One optimizer's test-set evaluation after ``step`` steps."""

    step: int
    index: int
    test_loss: float
    test_acc: float


def data_digest(*tensors: torch.Tensor) -> str:
    """A fingerprint of a run's training images, training labels, test images and test
    labels, in that order (`TrainingSession.data_digest`)."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def by_group(optimizer: torch.optim.Optimizer, read: Callable[[dict], float | None]) -> tuple:
    """``read`` of each param group, the named ``features`` and ``classifier`` groups
    in that order whatever order the optimizer holds them in (NaN for a group it
    does not hold yet: frozen features); an optimizer with other groups (L-BFGS's
    single unnamed one) in its own order."""
    groups = {g.get("name"): g for g in optimizer.param_groups}
    if not set(groups) <= set(GROUP_ORDER):
        return tuple(read(g) for g in optimizer.param_groups)
    return tuple(read(groups[name]) if name in groups else math.nan for name in GROUP_ORDER)
