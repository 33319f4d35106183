"""What an optimizer is to OptLab: its spec, its paper, and named presets.

An `OptimizerSpec` is the single description of one optimizer: the real
`torch.optim` class, its tunable constructor arguments as `HParam`s, the
update rule exactly as torch implements it (LaTeX), where torch differs from
the textbook, and the paper. The built-in entries (`optlab.optim.builtin`)
and plugins are specs; nothing here imports either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from optlab.optim.hparams import HParam, HValue, find_hparam


@dataclass(frozen=True)
class Paper:
    """A reference for an optimizer."""

    title: str
    url: str


@dataclass(frozen=True)
class OptimizerSpec:
    """One registered optimizer.

    Attributes:
        key: Short identifier used by the CLI, share links and tests.
        label: Human-readable name.
        factory: The `torch.optim.Optimizer` subclass (or a callable with the
            same signature) that is built and stepped.
        hparams: The tunable constructor arguments.
        rule: The update rule in LaTeX, as torch implements it.
        notes: Where torch differs from the textbook, and other caveats.
        paper: The reference paper.
        uses_closure: Whether ``step`` needs a closure (LBFGS): then one
            OptLab step is one ``step(closure)`` call, which may evaluate the
            function many times.
        check: Validates combinations of values that neither a single range
            nor torch's constructor catches; raises ValueError.
        evals_per_step: The most function evaluations one ``step`` may use
            with the given values (caps the work a run may ask for).
    """

    key: str
    label: str
    factory: Callable[..., torch.optim.Optimizer]
    hparams: tuple[HParam, ...]
    rule: str
    notes: tuple[str, ...] = ()
    paper: Paper | None = None
    uses_closure: bool = False
    check: Callable[[Mapping[str, HValue]], None] | None = None
    evals_per_step: Callable[[Mapping[str, HValue]], int] = lambda values: 1

    def hparam(self, name: str) -> HParam:
        """Returns the hyperparameter called ``name``.

        Raises:
            ValueError: if this optimizer has no such hyperparameter.
        """
        return find_hparam(self.hparams, name, self.label, "hyperparameter")

    @property
    def defaults(self) -> dict[str, HValue]:
        """torch's default for every hyperparameter."""
        return {hp.name: hp.default for hp in self.hparams}

    def build(self, params: Iterable[Any], values: Mapping[str, HValue]) -> torch.optim.Optimizer:
        """Constructs the torch optimizer over ``params`` with ``values``."""
        return self.factory(params, **values)


@dataclass(frozen=True)
class Preset:
    """A named starting configuration of a registered optimizer."""

    key: str
    label: str
    optimizer: str
    values: tuple[tuple[str, HValue], ...] = ()


#: Variants offered by name; each is an existing optimizer with set values.
