"""Changing hyperparameters mid-run: a scheduler plus manual changes, per optimizer.

A `Change` is what the tutorials do by hand between steps::

    for group in optimizer.param_groups:
        group["lr"] = 0.001          # "at step 200 set lr to 0.001"
        group["lr"] *= 0.1           # "at epoch 3 multiply the lr by 0.1"

and a `Plan` is one optimizer's scheduler (torch's own classes, see
`optlab.optim.schedulers`) with its changes. Text forms, shared by the CLI and
share links::

    200:lr=0.001            at step 200 set lr to 0.001
    300:momentum=0.5        at step 300 set momentum to 0.5
    epoch3:classifier.lr*=0.1   at the start of epoch 3, the classifier group's lr x 0.1
    cosine|200:lr=0.001     a plan: a scheduler, then changes, "|"-separated
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch

from optlab.optim.schedulers import SchedulerConfig
from optlab.optim.spec import OptimizerSpec

MAX_CHANGES = 20
#: The examples an error quotes: a 2-D run counts steps and has one param group; a CNN
#: run also knows epochs and its ``features`` / ``classifier`` groups.
STEP_EXAMPLE = "200:lr=0.001 or 300:momentum=0.5"
FULL_EXAMPLE = "200:lr=0.001 or epoch3:classifier.lr*=0.1"
GROUPS = ("features", "classifier")
_CHANGE = re.compile(
    r"^\s*(?P<unit>epoch)?\s*(?P<at>\d+)\s*:\s*(?:(?P<group>[a-z_]+)\.)?(?P<name>[a-z_]+)"
    r"\s*(?P<op>\*?=)\s*(?P<value>\S+)\s*$"
)


@dataclass(frozen=True)
class Change:
    """Set (or multiply) one ``param_groups`` option before a step.

    Attributes:
        at: The step (0-based: before the optimizer's step number ``at + 1``)
            or, with ``epoch``, the first step of that epoch (0-based).
        name: The option, a numeric hyperparameter of the optimizer (``lr``,
            ``momentum``, ``weight_decay``...).
        value: The new value, or the factor with ``multiply``.
        multiply: Multiply the current value instead of setting it.
        group: Only this param group (``features``/``classifier``); None: all.
        epoch: ``at`` counts epochs (CNN runs), not steps.
    """

    at: int
    name: str
    value: float
    multiply: bool = False
    group: str | None = None
    epoch: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.at, bool) or not isinstance(self.at, int) or self.at < 0:
            raise ValueError(f"change: the step must be a whole number >= 0, got {self.at!r}")
        if not (isinstance(self.value, int | float) and math.isfinite(self.value)):
            raise ValueError(f"change: the value must be a finite number, got {self.value!r}")
        if self.multiply and self.value <= 0:
            raise ValueError(f"change: a factor must be positive, got {self.value:g}")
        if self.group is not None and self.group not in GROUPS:
            raise ValueError(
                f"change: group must be one of {', '.join(GROUPS)}, got {self.group!r}"
            )

    def check(self, spec: OptimizerSpec, grouped: bool = False) -> None:
        """Checks the option exists and a set value is in range for the optimizer.

        Args:
            spec: The optimizer it changes.
            grouped: Whether that optimizer has the named ``features`` and
                ``classifier`` param groups (CNN runs, not L-BFGS); without
                them a change for one group would silently change nothing.

        Raises:
            ValueError: naming the option (torch-style range message).
        """
        if self.group is not None and not grouped:
            raise ValueError(
                f"change {self.to_text()}: {spec.label} has a single param group "
                "here, so name no group"
            )
        hp = spec.hparam(self.name)
        if hp.kind not in ("float", "int"):
            raise ValueError(f"change: {self.name} is not a number that can change mid-run")
        if not self.multiply:
            hp.validate(self.value)

    def step_of(self, per_epoch: int) -> int:
        """The step it applies before, given the steps per epoch."""
        return self.at * per_epoch if self.epoch else self.at

    def apply(self, optimizer: torch.optim.Optimizer) -> None:
        """Edits ``optimizer.param_groups`` exactly as the tutorials show.

        Every group that has the option: all of them for one optimizer; for Muon
        with AdamW (`optlab.optim.split`) ``lr`` and ``weight_decay`` reach both,
        ``momentum`` only Muon's groups (AdamW has β₁ instead).
        """
        for group in optimizer.param_groups:
            if self.group is not None and group.get("name") != self.group:
                continue
            if self.name not in group:
                continue
            if self.multiply:
                group[self.name] = group[self.name] * self.value
            else:
                group[self.name] = self.value

    @classmethod
    def from_text(cls, text: str, example: str = FULL_EXAMPLE) -> Change:
        """Parses ``[epoch]AT:[GROUP.]NAME=VALUE`` or ``...NAME*=FACTOR``.

        ``example`` is what an error quotes: the syntax of the page the text came from.
        """
        match = _CHANGE.match(text.strip().lower())
        if match is None:
            raise ValueError(f"change {text!r}: expected STEP:NAME=VALUE, e.g. {example}")
        try:
            value = float(match["value"])
        except ValueError:
            raise ValueError(f"change {text!r}: {match['value']!r} is not a number") from None
        return cls(
            at=int(match["at"]),
            name=match["name"],
            value=value,
            multiply=match["op"] == "*=",
            group=match["group"],
            epoch=match["unit"] is not None,
        )

    def to_text(self) -> str:
        """The inverse of `from_text`."""
        where = f"epoch{self.at}" if self.epoch else str(self.at)
        group = f"{self.group}." if self.group else ""
        op = "*=" if self.multiply else "="
        return f"{where}:{group}{self.name}{op}{self.value!r}"

    def describe(self) -> str:
        """In words, for the page."""
        when = f"at epoch {self.at}" if self.epoch else f"at step {self.at}"
        what = f"{self.group} {self.name}" if self.group else self.name
        verb = (
            f"multiply {what} by {self.value:g}"
            if self.multiply
            else f"set {what} to {self.value:g}"
        )
        return f"{when}, {verb}"


@dataclass(frozen=True)
class Plan:
    """One optimizer's scheduler and manual changes (those due at the same step are
    applied in the order given)."""

    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    changes: tuple[Change, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.changes, tuple):
            object.__setattr__(self, "changes", tuple(self.changes))
        if len(self.changes) > MAX_CHANGES:
            raise ValueError(f"changes: at most {MAX_CHANGES}, got {len(self.changes)}")

    @property
    def empty(self) -> bool:
        """Whether nothing changes mid-run."""
        return self.scheduler.key == "none" and not self.changes

    def check(self, spec: OptimizerSpec, grouped: bool = False) -> None:
        """Checks the scheduler can drive the optimizer ``spec`` (see
        `SchedulerConfig.check`) and every change against it (see `Change.check`)."""
        self.scheduler.check(spec)
        for change in self.changes:
            change.check(spec, grouped)

    def warnings(self, spec: OptimizerSpec) -> tuple[str, ...]:
        """What is unusual about the plan for the optimizer ``spec`` (see
        `SchedulerConfig.warnings`), one line each."""
        return self.scheduler.warnings(spec)

    def due(self, step: int, per_epoch: int = 1) -> list[Change]:
        """The changes to apply before ``step``."""
        return [c for c in self.changes if c.step_of(per_epoch) == step]

    @classmethod
    def from_text(cls, text: str) -> Plan:
        """Parses ``SCHEDULER[|CHANGE|CHANGE...]`` (a plan may also be only changes)."""
        parts = [p.strip() for p in text.split("|") if p.strip()]
        if not parts:
            return cls()
        first, rest = parts[0], parts[1:]
        if _CHANGE.match(first.lower()):
            scheduler, changes = SchedulerConfig(), parts
        else:
            scheduler, changes = SchedulerConfig.from_text(first), rest
        return cls(scheduler, tuple(Change.from_text(c) for c in changes))

    def to_text(self) -> str:
        """The inverse of `from_text`."""
        return "|".join([self.scheduler.to_text(), *(c.to_text() for c in self.changes)])
