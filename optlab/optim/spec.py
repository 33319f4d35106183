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
class StateSymbol:
    """One entry of ``optimizer.state[p]`` and the symbol the update rule gives it.

    Attributes:
        key: torch's name for it (``exp_avg``, ``momentum_buffer``...).
        after: Its symbol once step t is done (``m_t``), as it appears in the
            rule; "" when the rule has no symbol for it (L-BFGS's counters).
        before: Its symbol before step t (``m_{t-1}``); "" for none.
        meaning: A few words on what it holds.
    """

    key: str
    after: str
    before: str = ""
    meaning: str = ""


def _one_eval(values: Mapping[str, HValue]) -> int:
    return 1


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
        symbols: Each hyperparameter's symbol in ``rule`` (``("lr", r"\\gamma")``;
            a pair's elements as ``"betas[0]"``): the step inspector labels
            every number with it. A knob with no entry is shown by its name.
        state: The symbols of ``optimizer.state[p]``'s entries (`StateSymbol`).
        warn: Says what is unusual about a combination of valid values
            (one line each); single values warn through their `HParam`.
        point_shape: The shape a 2-D point is given to the optimizer in:
            ``(2,)`` for most; ``(1, 2)``, a one-row matrix, for an optimizer
            that takes 2-D parameters only (Muon). A view of the same two
            numbers either way (`as_param`), so paths do not depend on it.
        on_surface: What the rule reduces to on a 2-D point, where that is not
            the rule itself (Muon's Newton–Schulz on one row); "" for nothing.
        create_graph: ``step()`` differentiates the gradient again (a
            Hutchinson Hessian estimate, SophiaH): the engines compute the
            gradient with ``create_graph=True`` (`optlab.optim.protocol`).
        averaged: The optimizer keeps two points and has ``train()`` /
            ``.eval()`` (Schedule-Free): the parameters hold the training point,
            and the engines evaluate, record and test at the point ``.eval()``
            gives, then go back with ``train()``.
        random: ``step()`` draws from torch's or NumPy's global random
            generators (Hutchinson probes, PSGD's preconditioner updates): the
            engines seed them from the run's seed around every step, so a run
            is reproducible and does not depend on what else the server does.
        traces: Scalars of ``param_groups[0]`` worth plotting over the steps
            (Prodigy's step-size estimate ``d``): (key, what it is).
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
    evals_per_step: Callable[[Mapping[str, HValue]], int] = _one_eval
    symbols: tuple[tuple[str, str], ...] = ()
    state: tuple[StateSymbol, ...] = ()
    warn: Callable[[Mapping[str, HValue]], list[str]] | None = None
    point_shape: tuple[int, ...] = (2,)
    on_surface: str = ""
    create_graph: bool = False
    averaged: bool = False
    random: bool = False
    traces: tuple[tuple[str, str], ...] = ()

    def hparam(self, name: str) -> HParam:
        """Returns the hyperparameter called ``name``.

        Raises:
            ValueError: if this optimizer has no such hyperparameter.
        """
        return find_hparam(self.hparams, name, self.label, "hyperparameter")

    def symbol(self, name: str) -> str:
        """The rule's symbol for hyperparameter ``name`` (or ``"betas[0]"``); "" if none."""
        return dict(self.symbols).get(name, "")

    def state_symbol(self, key: str) -> StateSymbol | None:
        """The symbols of state entry ``key``, or None when the spec names none."""
        return next((s for s in self.state if s.key == key), None)

    def warnings(self, values: Mapping[str, HValue]) -> tuple[str, ...]:
        """What is unusual about ``values`` (valid ones): each knob's cautions, then
        the spec's own on combinations."""
        out = [
            f"{hp.name}: {text}"
            for hp in self.hparams
            if hp.name in values
            for text in hp.warnings(values[hp.name])
        ]
        if self.warn is not None:
            out += self.warn(values)
        return tuple(out)

    @property
    def defaults(self) -> dict[str, HValue]:
        """torch's default for every hyperparameter."""
        return {hp.name: hp.default for hp in self.hparams}

    @property
    def matrices_only(self) -> bool:
        """Whether it takes 2-D parameters only (Muon): on a network it trains the
        matrices and another optimizer the rest (`optlab.optim.split`)."""
        return len(self.point_shape) == 2

    def as_param(self, point: torch.Tensor) -> torch.Tensor:
        """A 2-element point as this optimizer takes it: a view in `point_shape`
        (the same storage, so in-place updates land in ``point``)."""
        return point.view(self.point_shape)

    def probe_point(self) -> torch.Tensor:
        """A zero float64 point in `point_shape` that needs a gradient: what
        construction checks build the optimizer over."""
        return torch.zeros(self.point_shape, dtype=torch.float64, requires_grad=True)

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
