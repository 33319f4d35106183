"""The learning-rate scheduler registry: torch's own classes, as small specs.

Every scheduler is stepped once per optimizer step (so ``step_size``,
``T_max`` and ``total_iters`` count optimizer steps, not epochs), except
`ReduceLROnPlateau`, which is stepped with each test-set evaluation's loss,
the way the torch docs use it. A scheduler's knobs are `HParam`s, so the UI,
the CLI (``--scheduler cosine:eta_min=1e-4``) and validation work as for
optimizers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim import lr_scheduler

from optlab.lookup import lookup
from optlab.optim.hparams import HParam, HValue, find_hparam, split_spec

Factory = Callable[[torch.optim.Optimizer, int, Mapping[str, HValue]], Any]


@dataclass(frozen=True)
class SchedulerSpec:
    """One registered scheduler.

    Attributes:
        key: Identifier used by configs and the CLI.
        label: Human-readable name.
        factory: ``factory(optimizer, total_steps, values)`` builds the torch
            scheduler; ``total_steps`` is the run's length, for schedules that
            need it (cosine, one-cycle).
        hparams: The tunable arguments, torch's names where torch has them.
        on_plateau: Stepped with the test loss at each evaluation instead of
            once per optimizer step.
        spans_run: Laid out over the run's length (cosine, one-cycle), so a
            resumed run cannot change its length.
    """

    key: str
    label: str
    factory: Factory | None
    hparams: tuple[HParam, ...] = ()
    on_plateau: bool = False
    spans_run: bool = False

    def hparam(self, name: str) -> HParam:
        """Returns the knob called ``name``.

        Raises:
            ValueError: if this scheduler has no such knob.
        """
        return find_hparam(self.hparams, name, self.label, "parameter")


def _gamma(default: float) -> HParam:
    return HParam("gamma", default, 0.0, 1.0, low_open=True, help="multiplicative lr factor")


SCHEDULERS: tuple[SchedulerSpec, ...] = (
    SchedulerSpec("none", "constant lr", None),
    SchedulerSpec(
        "step",
        "StepLR",
        lambda opt, total, v: lr_scheduler.StepLR(opt, int(v["step_size"]), v["gamma"]),
        (
            HParam("step_size", 100, 1, 10**6, integer=True, help="steps between decays"),
            _gamma(0.1),
        ),
    ),
    SchedulerSpec(
        "multistep",
        "MultiStepLR",
        lambda opt, total, v: lr_scheduler.MultiStepLR(
            opt, sorted(int(m) for m in v["milestones"]), v["gamma"]
        ),
        (
            HParam("milestones", (100.0, 200.0), 1.0, 1e6, help="the two steps at which lr decays"),
            _gamma(0.1),
        ),
    ),
    SchedulerSpec(
        "exponential",
        "ExponentialLR",
        lambda opt, total, v: lr_scheduler.ExponentialLR(opt, v["gamma"]),
        (_gamma(0.99),),
    ),
    SchedulerSpec(
        "cosine",
        "CosineAnnealingLR",
        lambda opt, total, v: lr_scheduler.CosineAnnealingLR(opt, total, v["eta_min"]),
        (HParam("eta_min", 0.0, 0.0, 10.0, help="lr at the end of the run (T_max = run length)"),),
        spans_run=True,
    ),
    SchedulerSpec(
        "onecycle",
        "OneCycleLR",
        lambda opt, total, v: lr_scheduler.OneCycleLR(
            opt,
            max_lr=[g["lr"] * v["max_lr_mult"] for g in opt.param_groups],
            total_steps=total,
            pct_start=v["pct_start"],
        ),
        (
            HParam(
                "max_lr_mult", 10.0, 1.0, 1000.0, log=True, help="peak lr as a multiple of the lr"
            ),
            HParam("pct_start", 0.3, 0.0, 1.0, low_open=True, high_open=True, help="warm-up share"),
        ),
        spans_run=True,
    ),
    SchedulerSpec(
        "warmup",
        "LinearLR warm-up",
        lambda opt, total, v: lr_scheduler.LinearLR(
            opt, start_factor=v["start_factor"], total_iters=int(v["total_iters"])
        ),
        (
            HParam(
                "start_factor", 0.1, 0.0, 1.0, low_open=True, help="lr multiple at the first step"
            ),
            HParam("total_iters", 100, 1, 10**6, integer=True, help="warm-up length in steps"),
        ),
    ),
    SchedulerSpec(
        "plateau",
        "ReduceLROnPlateau",
        lambda opt, total, v: lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=v["factor"], patience=int(v["patience"])
        ),
        (
            HParam("factor", 0.1, 0.0, 1.0, low_open=True, high_open=True, help="lr multiple"),
            HParam("patience", 2, 0, 1000, integer=True, help="evaluations without improvement"),
        ),
        on_plateau=True,
    ),
)
_BY_KEY = {s.key: s for s in SCHEDULERS}


def get_scheduler_spec(key: str) -> SchedulerSpec:
    """Looks up a scheduler by key.

    Raises:
        ValueError: naming the unknown key and listing the known ones.
    """
    return lookup(_BY_KEY, key, "scheduler")


@dataclass(frozen=True)
class SchedulerConfig:
    """A registered scheduler with every knob's value (defaults filled in)."""

    key: str = "none"
    values: tuple[tuple[str, HValue], ...] = field(default=())

    def __post_init__(self) -> None:
        spec = get_scheduler_spec(self.key)
        given = dict(self.values)
        for name in given:
            spec.hparam(name)
        full = tuple((hp.name, hp.validate(given.get(hp.name, hp.default))) for hp in spec.hparams)
        object.__setattr__(self, "values", full)

    @property
    def spec(self) -> SchedulerSpec:
        """The registered spec."""
        return get_scheduler_spec(self.key)

    def build(self, optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
        """The torch scheduler over ``optimizer``, or None for a constant lr."""
        spec = self.spec
        if spec.factory is None:
            return None
        return spec.factory(optimizer, total_steps, dict(self.values))

    @classmethod
    def from_text(cls, text: str) -> SchedulerConfig:
        """Parses ``key[:name=value,...]`` (the CLI's ``--scheduler``)."""
        key, items = split_spec(text, "scheduler")
        spec = get_scheduler_spec(key)
        return cls(spec.key, tuple((name, spec.hparam(name).parse(raw)) for name, raw in items))

    def to_text(self) -> str:
        """The ``key[:name=value,...]`` form (non-default values only)."""
        spec = self.spec
        parts = [
            f"{hp.name}={hp.format(v)}"
            for hp, (_, v) in zip(spec.hparams, self.values, strict=True)
            if v != hp.default
        ]
        return f"{self.key}:{','.join(parts)}" if parts else self.key
