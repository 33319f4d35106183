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
from optlab.optim.hparams import Caution, HParam, HValue, find_hparam, split_spec
from optlab.optim.spec import OptimizerSpec

Factory = Callable[[torch.optim.Optimizer, int, Mapping[str, HValue]], Any]
#: ``needs(values, optimizer, label)``: why this scheduler cannot drive the optimizer, or "".
Needs = Callable[[Mapping[str, HValue], torch.optim.Optimizer, str], str]
#: ``warns(values, optimizer, label)``: what the scheduler does to it that a user may not expect.
Warns = Callable[[Mapping[str, HValue], torch.optim.Optimizer, str], list[str]]
#: Steps of the probe run that checks a scheduler can drive an optimizer.
_PROBE_STEPS = 10


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
        needs: Says why it cannot drive a given optimizer, before torch's
            own bare message would.
        warns: Says what it changes in a given optimizer that a user may not
            expect (OneCycleLR cycles SGD's momentum).
    """

    key: str
    label: str
    factory: Factory | None
    hparams: tuple[HParam, ...] = ()
    on_plateau: bool = False
    spans_run: bool = False
    needs: Needs | None = None
    warns: Warns | None = None

    def hparam(self, name: str) -> HParam:
        """Returns the knob called ``name``.

        Raises:
            ValueError: if this scheduler has no such knob.
        """
        return find_hparam(self.hparams, name, self.label, "parameter")


def _gamma(default: float, torch_default: str) -> HParam:
    return HParam(
        "gamma",
        default,
        0.0,
        None,
        low_open=True,
        help=f"multiplicative lr factor ({torch_default})",
        cautions=(Caution("γ > 1: the lr grows at every decay", low=1.0, low_open=True),),
    )


def _momentum_knob(name: str, default: float, help: str) -> HParam:
    # torch does not check these; OneCycleLR writes them into the optimizer's
    # momentum (or β₁), where its own check no longer runs.
    return HParam(
        name,
        default,
        0.0,
        None,
        help=help,
        cautions=(Caution(f"{name} ≥ 1: the momentum (β₁) reaches 1 or more", low=1.0),),
    )


def _one_cycle(opt: torch.optim.Optimizer, total: int, v: Mapping[str, HValue]) -> Any:
    return lr_scheduler.OneCycleLR(
        opt,
        max_lr=[g["lr"] * v["max_lr_mult"] for g in opt.param_groups],
        total_steps=total,
        pct_start=v["pct_start"],
        anneal_strategy=v["anneal_strategy"],
        cycle_momentum=v["cycle_momentum"],
        base_momentum=v["base_momentum"],
        max_momentum=v["max_momentum"],
        div_factor=v["div_factor"],
        final_div_factor=v["final_div_factor"],
        three_phase=v["three_phase"],
    )


def _cycled(optimizer: torch.optim.Optimizer) -> str:
    """What OneCycleLR's cycle_momentum drives in ``optimizer``: β₁, the momentum, or ""."""
    if "betas" in optimizer.defaults:
        return "β₁"
    return "momentum" if "momentum" in optimizer.defaults else ""


def _one_cycle_needs(v: Mapping[str, HValue], optimizer: torch.optim.Optimizer, label: str) -> str:
    if v["cycle_momentum"] and not _cycled(optimizer):
        return (
            f"with cycle_momentum=true it cycles the optimizer's momentum or β₁, and {label} "
            "has neither: turn cycle_momentum off (onecycle:cycle_momentum=false)"
        )
    return ""


def _one_cycle_warns(
    v: Mapping[str, HValue], optimizer: torch.optim.Optimizer, label: str
) -> list[str]:
    what = _cycled(optimizer)
    if not v["cycle_momentum"] or not what:
        return []
    return [
        f"OneCycleLR replaces {label}'s {what} with its own cycle, "
        f"{v['max_momentum']:g} → {v['base_momentum']:g} → {v['max_momentum']:g} "
        "(cycle_momentum=true, torch's default)"
    ]


_NO_DEFAULT = "torch has no default"

SCHEDULERS: tuple[SchedulerSpec, ...] = (
    SchedulerSpec("none", "constant lr", None),
    SchedulerSpec(
        "step",
        "StepLR",
        lambda opt, total, v: lr_scheduler.StepLR(opt, int(v["step_size"]), v["gamma"]),
        (
            HParam(
                "step_size",
                100,
                1,
                10**6,
                integer=True,
                help=f"steps between decays ({_NO_DEFAULT}; OptLab starts at 100)",
            ),
            _gamma(0.1, "torch's default"),
        ),
    ),
    SchedulerSpec(
        "multistep",
        "MultiStepLR",
        lambda opt, total, v: lr_scheduler.MultiStepLR(
            opt, sorted(int(m) for m in v["milestones"]), v["gamma"]
        ),
        (
            HParam(
                "milestones",
                (100.0, 200.0),
                1.0,
                1e6,
                help=f"the two steps at which lr decays ({_NO_DEFAULT}; OptLab starts at 100/200)",
            ),
            _gamma(0.1, "torch's default"),
        ),
    ),
    SchedulerSpec(
        "exponential",
        "ExponentialLR",
        lambda opt, total, v: lr_scheduler.ExponentialLR(opt, v["gamma"]),
        (_gamma(0.99, f"{_NO_DEFAULT}; OptLab starts at 0.99"),),
    ),
    SchedulerSpec(
        "cosine",
        "CosineAnnealingLR",
        lambda opt, total, v: lr_scheduler.CosineAnnealingLR(opt, total, v["eta_min"]),
        (
            HParam(
                "eta_min",
                0.0,
                0.0,
                10.0,
                help="lr at the end of the run (T_max = the run's length)",
            ),
        ),
        spans_run=True,
    ),
    SchedulerSpec(
        "onecycle",
        "OneCycleLR",
        _one_cycle,
        (
            HParam(
                "max_lr_mult",
                10.0,
                1.0,
                1000.0,
                log=True,
                help="peak lr (torch's max_lr) as a multiple of the optimizer's lr "
                f"({_NO_DEFAULT}; OptLab starts at 10)",
            ),
            HParam("pct_start", 0.3, 0.0, 1.0, low_open=True, high_open=True, help="warm-up share"),
            HParam(
                "anneal_strategy",
                "cos",
                choices=("cos", "linear"),
                help="how the lr (and momentum) move between their ends",
            ),
            HParam(
                "cycle_momentum",
                True,
                help="cycle the optimizer's momentum (or β₁) inversely to the lr",
            ),
            _momentum_knob("base_momentum", 0.85, "momentum (β₁) at the lr's peak"),
            _momentum_knob("max_momentum", 0.95, "momentum (β₁) at the start and the end"),
            HParam(
                "div_factor",
                25.0,
                0.0,
                None,
                low_open=True,
                log=True,
                help="the first lr is max_lr / div_factor",
            ),
            HParam(
                "final_div_factor",
                1e4,
                0.0,
                None,
                low_open=True,
                log=True,
                help="the last lr is the first / final_div_factor",
            ),
            HParam(
                "three_phase",
                False,
                help="a third phase that anneals below the first lr (fast.ai's schedule)",
            ),
        ),
        spans_run=True,
        needs=_one_cycle_needs,
        warns=_one_cycle_warns,
    ),
    SchedulerSpec(
        "warmup",
        "LinearLR warm-up",
        lambda opt, total, v: lr_scheduler.LinearLR(
            opt, start_factor=v["start_factor"], total_iters=int(v["total_iters"])
        ),
        (
            HParam(
                "start_factor",
                0.1,
                0.0,
                1.0,
                low_open=True,
                help="lr multiple at the first step (torch's default is 1/3; OptLab's 0.1 "
                "makes the warm-up visible)",
            ),
            HParam(
                "total_iters",
                100,
                1,
                10**6,
                integer=True,
                help="warm-up length in steps (torch's default is 5, meant for a scheduler "
                "stepped once per epoch; OptLab steps it every optimizer step)",
            ),
        ),
    ),
    SchedulerSpec(
        "plateau",
        "ReduceLROnPlateau",
        lambda opt, total, v: lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=v["factor"], patience=int(v["patience"])
        ),
        (
            HParam(
                "factor",
                0.1,
                0.0,
                1.0,
                low_open=True,
                high_open=True,
                help="lr multiple (torch's default)",
            ),
            HParam(
                "patience",
                2,
                0,
                1000,
                integer=True,
                help="evaluations without improvement (torch's default is 10; OptLab's 2 "
                "lets a CNN run of a few test evaluations react)",
            ),
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

    def build(
        self, optimizer: torch.optim.Optimizer, total_steps: int, label: str | None = None
    ) -> Any:
        """The torch scheduler over ``optimizer``, or None for a constant lr.

        Args:
            optimizer: What it drives.
            total_steps: The run's length in steps.
            label: The optimizer's name in messages (default: its class name).

        Raises:
            ValueError: the scheduler cannot drive this optimizer; the message
                names both and says what to change.
        """
        spec = self.spec
        if spec.factory is None:
            return None
        label = label or type(optimizer).__name__
        why = spec.needs(dict(self.values), optimizer, label) if spec.needs else ""
        if why:
            raise ValueError(f"{spec.label} cannot drive {label}: {why}")
        try:
            return spec.factory(optimizer, total_steps, dict(self.values))
        except (ValueError, TypeError, KeyError, ZeroDivisionError) as err:
            raise ValueError(f"{spec.label} cannot drive {label}: {err}") from None

    def _probe(self, optimizer: OptimizerSpec) -> torch.optim.Optimizer:
        return optimizer.build([optimizer.probe_point()], optimizer.defaults)

    def check(self, optimizer: OptimizerSpec) -> None:
        """Checks that this scheduler can drive ``optimizer``, by building both in torch.

        Raises:
            ValueError: naming the scheduler and the optimizer, and what to change.
        """
        if self.spec.factory is None:
            return
        self.check_built(self._probe(optimizer), optimizer.label)

    def check_built(self, probe: torch.optim.Optimizer, label: str) -> None:
        """Checks that this scheduler can drive ``probe`` (a throwaway optimizer: a
        scheduler edits its groups), named ``label`` in the message.

        Raises:
            ValueError: naming the scheduler and ``label``, and what to change.
        """
        spec = self.spec
        if spec.factory is None:
            return
        why = spec.needs(dict(self.values), probe, label) if spec.needs else ""
        if why:
            raise ValueError(f"{spec.label} cannot drive {label}: {why}")
        try:
            spec.factory(probe, _PROBE_STEPS, dict(self.values))
        except (ValueError, TypeError, KeyError, ZeroDivisionError) as err:
            raise ValueError(f"{spec.label} cannot drive {label}: {err}") from None

    def effects(self, optimizer: OptimizerSpec) -> tuple[str, ...]:
        """What this scheduler changes in ``optimizer`` that a user may not expect
        (OneCycleLR replaces SGD's momentum with its own cycle), one line each."""
        spec = self.spec
        if spec.warns is None or spec.factory is None:
            return ()
        return tuple(spec.warns(dict(self.values), self._probe(optimizer), optimizer.label))

    def warnings(self, optimizer: OptimizerSpec | None = None) -> tuple[str, ...]:
        """What is unusual: each knob's cautions, then (given the optimizer) its `effects`."""
        spec = self.spec
        out = [
            f"{hp.name}: {text}"
            for hp, (_, value) in zip(spec.hparams, self.values, strict=True)
            for text in hp.warnings(value)
        ]
        return (*out, *(self.effects(optimizer) if optimizer is not None else ()))

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
