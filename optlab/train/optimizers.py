"""A slot's optimizer over a model: one torch optimizer, or Muon with AdamW as one.

Every slot's optimizer gets the model's ``features`` and ``classifier`` param
groups (`optlab.train.models.param_groups`), except L-BFGS, which takes one
group only, and a slot whose features are frozen, which starts with the
classifier's alone. An optimizer of 2-D parameters only (Muon) trains the matrices of
those groups and its companion (AdamW) the rest, stepped together by one
`optlab.optim.split.SplitOptimizer`: the trainer, schedulers, group edits and
checkpoints keep seeing one optimizer per slot.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from optlab.optim.split import SplitOptimizer, is_matrix, split_groups
from optlab.train.config import TrainSlot
from optlab.train.freeze import freeze_features
from optlab.train.models import build_model, get_model_spec, param_groups


def slot_optimizer(slot: TrainSlot, model: nn.Module) -> torch.optim.Optimizer:
    """The torch optimizer ``slot`` trains ``model`` with.

    Raises:
        ValueError: a slot with a companion on a model with no 2-D parameters
            (or nothing but 2-D ones).
    """
    opt = slot.optimizer
    if opt.spec.uses_closure:
        return opt.build(model.parameters())
    if slot.companion is None:
        groups = param_groups(model, opt.kwargs.get("lr"), slot.classifier_lr_mult)  # type: ignore[arg-type]
        if slot.freeze is not None:
            # Fine-tuning: the classifier group alone until the trainer adds the
            # features (`optlab.train.freeze.add_features`).
            freeze_features(model)
            groups = groups[1:]
        return opt.build(groups)
    parts = []
    for config, matrices in ((opt, True), (slot.companion, False)):
        groups = param_groups(model, config.kwargs.get("lr"), slot.classifier_lr_mult)  # type: ignore[arg-type]
        mine = split_groups(groups, matrices)
        if not mine:
            what = "2-D" if matrices else "non-2-D"
            raise ValueError(f"{slot.label}: {type(model).__name__} has no {what} parameters")
        parts.append(config.build(mine))
    return SplitOptimizer(*parts)


@dataclass(frozen=True)
class Ownership:
    """Which parameters each optimizer of a split slot trains.

    Attributes:
        matrices: Names of the 2-D parameters (the matrix optimizer's).
        rest: Names of the others.
        matrix_count: Their number of weights.
        rest_count: The others' number of weights.
    """

    matrices: tuple[str, ...]
    rest: tuple[str, ...]
    matrix_count: int
    rest_count: int

    @property
    def total(self) -> int:
        """Every trainable weight of the model."""
        return self.matrix_count + self.rest_count


def ownership(model: nn.Module) -> Ownership:
    """How the split divides ``model``'s trainable parameters (`is_matrix`)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    mats = [(n, p) for n, p in named if is_matrix(p)]
    rest = [(n, p) for n, p in named if not is_matrix(p)]
    return Ownership(
        tuple(n for n, _ in mats),
        tuple(n for n, _ in rest),
        sum(p.numel() for _, p in mats),
        sum(p.numel() for _, p in rest),
    )


@functools.cache
def model_ownership(model: str) -> Ownership:
    """`ownership` of a registered model (built once per process: it never changes)."""
    return ownership(build_model(model, 0))


def ownership_text(model: str, matrices: str = "Muon", rest: str = "AdamW") -> str:
    """What a split slot's two optimizers train on ``model``, in one paragraph.

    Raises:
        ValueError: an unknown model key.
    """
    label = get_model_spec(model).label
    owned = model_ownership(model)
    names = ", ".join(owned.matrices) or "none"
    share = owned.matrix_count / owned.total if owned.total else 0.0
    return (
        f"On {label}, {matrices} trains the {len(owned.matrices)} 2-D weights ({names}): "
        f"{owned.matrix_count:,} of {owned.total:,} parameters ({share:.0%}). {rest} trains "
        f"the other {len(owned.rest)} tensors ({owned.rest_count:,} parameters), every one "
        f"that is not 2-D: conv kernels, biases. torch's {matrices} takes 2-D parameters "
        "only, so it never sees a conv kernel (4-D); Keller Jordan's recipe flattens "
        "kernels into matrices for Muon, which OptLab does not do."
    )
