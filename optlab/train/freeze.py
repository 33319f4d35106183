"""Fine-tuning first: the features frozen until step N, then added as a param group.

A CNN slot may train its classifier alone for the first N steps (or epochs):
the ``features`` parameters get ``requires_grad=False`` and the optimizer is
built with the ``classifier`` group only. Before step N (0-based, as planned
changes count) `add_features` unfreezes them and hands them to the running
optimizer with torch's own ``optimizer.add_param_group``::

    for p in model.features.parameters():
        p.requires_grad_(False)               # frozen: no gradients, no update
    optimizer = SGD([{"name": "classifier", "params": model.classifier.parameters()}], lr=lr)
    ...
    add_features(model, optimizer, scheduler, classifier_lr_mult)   # at step N

The new group joins the schedule where it is. torch's schedulers keep per-group
settings in the param groups and a list ``base_lrs`` sized when they were
built, so after a bare ``add_param_group({"params": ..., "lr": lr})`` (measured
with torch 2.13) OneCycleLR fails at its next step with ``KeyError: 'max_lr'``;
LambdaLR fails (``zip`` of two groups with one base lr); StepLR, ExponentialLR,
LinearLR and CosineAnnealingLR go on but scale the new group from ``lr``, so it
misses every decay (or warm-up factor) before N; ReduceLROnPlateau extends its
``min_lrs`` and goes on likewise. `add_features` therefore gives the features
group the classifier group's current options (every key but ``params`` and
``name``: momentum, betas, weight decay, OneCycleLR's
``max_lr``/``min_lr``/momentum bounds, ``initial_lr``), its lr-valued ones
divided by the classifier's lr multiple, and appends the group's ``initial_lr``
to the scheduler's ``base_lrs``: the features then follow the same schedule as
the classifier, as if they had been in the optimizer from step 0, with their
own lr (a live change that set the classifier's lr to a value during the freeze
reaches them divided by the multiple too). Their optimizer state (momentum
buffers, Adam's moments and step count) starts empty at N, as torch keeps state
per parameter.

`freeze_features` and `add_features` are embedded as they are in exported
scripts (`optlab.script.train`), so a script freezes and adds exactly as the
engine does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

#: The param-group options that hold a learning rate (torch's own and OneCycleLR's),
#: scaled from the classifier's lr to the features' when the features join.
LR_KEYS = ("lr", "initial_lr", "max_lr", "min_lr")
_TEXT = re.compile(r"^\s*(?P<unit>epoch)?\s*(?P<at>\d+)\s*$")
#: How `Freeze.from_text` spells "no freeze".
OFF = "off"


@dataclass(frozen=True)
class Freeze:
    """Train the classifier alone until step (or epoch) ``at``, then add the features.

    Attributes:
        at: Steps (or, with ``epoch``, epochs) during which the features are
            frozen; the features are added before step ``at + 1`` (1-based),
            i.e. when ``at`` steps are done, as a planned change at ``at`` is.
        epoch: ``at`` counts epochs.
    """

    at: int
    epoch: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.at, bool) or not isinstance(self.at, int) or self.at < 1:
            raise ValueError(
                f"freeze: the features are frozen for a whole number >= 1 of steps or "
                f"epochs, got {self.at!r}"
            )

    def step_of(self, per_epoch: int) -> int:
        """The step (0-based) before which the features are added."""
        return self.at * per_epoch if self.epoch else self.at

    @classmethod
    def from_text(cls, text: str) -> Freeze | None:
        """Parses ``N`` (steps), ``epochN`` or ``off`` (None: no freeze).

        Raises:
            ValueError: naming the text and the forms it takes.
        """
        value = text.strip().lower()
        if value in (OFF, "", "0", "none"):
            return None
        match = _TEXT.match(value)
        if match is None:
            raise ValueError(
                f"freeze {text!r}: expected a step count N, epochN or off, e.g. 200 or epoch1"
            )
        return cls(int(match["at"]), epoch=match["unit"] is not None)

    def to_text(self) -> str:
        """The inverse of `from_text`."""
        return f"epoch{self.at}" if self.epoch else str(self.at)

    def describe(self) -> str:
        """In words, for legends and the page."""
        unit = "epoch" if self.epoch else "step"
        return f"features frozen for {self.at:,} {unit}{'s' if self.at > 1 else ''}"


def freeze_features(model: nn.Module) -> list[nn.Parameter]:
    """Sets ``requires_grad=False`` on the features' parameters; returns the classifier's.

    Frozen parameters get no gradient (backward stops at them), so only the
    classifier's parameters are handed to the optimizer.
    """
    for p in model.features.parameters():
        p.requires_grad_(False)
    return list(model.classifier.parameters())


def add_features(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    classifier_lr_mult: float,
) -> dict[str, Any]:
    """Unfreezes the features and adds them to ``optimizer`` as a param group.

    The group copies the classifier group's current options (the classifier is
    ``param_groups[0]``, the only group until now), its lr-valued ones
    (`LR_KEYS`) divided by ``classifier_lr_mult`` (the features train at the
    base lr; a multiple of 1 copies them exactly), and joins ``scheduler``:
    the group's ``initial_lr`` (set by every scheduler but
    ReduceLROnPlateau) is appended to its ``base_lrs``. So the features
    follow the classifier's schedule from where it is, with their own lr.
    A bare ``add_param_group({"params": ..., "lr": lr})`` would not: torch's
    schedulers keep per-group keys (OneCycleLR's ``max_lr``: a KeyError at
    its next step) and ``base_lrs`` sized when they were built (LambdaLR:
    an error), and the chainable ones (StepLR, CosineAnnealingLR...) would
    scale the new group from ``lr``, missing every decay before the add.

    Args:
        model: The model, with ``features`` and ``classifier`` submodules.
        optimizer: Its optimizer, built on the classifier group alone.
        scheduler: The optimizer's lr scheduler, or None.
        classifier_lr_mult: The classifier's lr as a multiple of the features'.

    Returns:
        The group as torch keeps it (``optimizer.param_groups[-1]``).
    """
    features = list(model.features.parameters())
    for p in features:
        p.requires_grad_(True)
    head = optimizer.param_groups[0]
    group = {key: value for key, value in head.items() if key not in ("params", "name")}
    if classifier_lr_mult != 1:
        for key in LR_KEYS:
            if key in group:
                group[key] = group[key] / classifier_lr_mult
    optimizer.add_param_group({"name": "features", "params": features, **group})
    added = optimizer.param_groups[-1]
    if scheduler is not None and "initial_lr" in added and hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs.append(added["initial_lr"])
    return added
