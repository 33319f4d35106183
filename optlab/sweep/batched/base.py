"""The base of the batched optimizers: N independent 2-D points in one tensor.

A `BatchedOptimizer` updates an ``(N, 2)`` float64 tensor of points, row ``i``
exactly as the registry's `torch.optim` optimizer with row ``i``'s
hyperparameters would update a 2-element parameter. Every knob may differ per
row, so a 100x100 grid of (lr, momentum) runs as one tensor program.

How the arithmetic stays identical to torch's single-tensor implementation
(``foreach=False``):

- Each knob is an ``(N, 1)`` column (pairs such as ``betas``: ``(N, 2)``) that
  broadcasts over a row's two coordinates.
- A torch op with a Python-scalar argument becomes the same op with that
  column: ``a.add(b, alpha=s)`` is ``torch.addcmul(a, b, s)`` (torch fuses it
  into one rounding), ``a.addcmul(b, c, value=s)`` is ``torch.addcmul(a, s * b, c)``.
- A branch on a knob (``if maximize``, ``if momentum != 0``) becomes
  ``torch.where`` on its column, computing both sides.
- torch does its per-step scalar math (bias corrections, ``beta ** step``) on
  Python floats, whose ``**`` can differ from a tensor's ``pow`` in the last
  bit. `BatchedOptimizer.scalars` runs that math on Python floats too, once per
  distinct combination of the knobs involved.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from optlab.optim.hparams import HParam
from optlab.optim.registry import get_spec
from optlab.optim.spec import OptimizerSpec


class _FromRegistry:
    """``spec`` / ``rule`` looked up in the registry, on the class and its instances alike."""

    def __init__(self, field: str) -> None:
        self.field = field

    def __get__(self, obj: object, owner: type[BatchedOptimizer]) -> Any:
        spec = get_spec(owner.key)
        return spec if self.field == "spec" else spec.rule


def _column(hp: HParam, value: object, n: int) -> Tensor:
    """One knob's value as a per-row tensor: ``(N, 1)``, or ``(N, 2)`` for a pair.

    Raises:
        ValueError: a value the registry's `HParam` rejects (the message names
            the knob, and the row for a tensor), or a tensor of the wrong shape
            or dtype.
    """
    kind = hp.kind
    if isinstance(value, Tensor) and value.dim() == 0:
        value = value.item()
    if not isinstance(value, Tensor):
        checked = hp.validate(value)
        if kind == "bool":
            return torch.full((n, 1), bool(checked), dtype=torch.bool)
        if kind == "pair":
            return torch.tensor([checked], dtype=torch.float64).expand(n, 2).clone()
        return torch.full((n, 1), float(checked), dtype=torch.float64)  # type: ignore[arg-type]

    width = 2 if kind == "pair" else 1
    shape = (n, 2) if kind == "pair" else (n,)
    if tuple(value.shape) != shape:
        raise ValueError(
            f"Invalid {hp.name} value: a tensor of shape {tuple(value.shape)} "
            f"(expected {shape}, one value per row)"
        )
    if kind == "bool":
        if value.dtype != torch.bool:
            raise ValueError(f"Invalid {hp.name} value: a {value.dtype} tensor (expected bool)")
        return value.reshape(n, 1).clone()
    if value.dtype == torch.bool or value.is_complex():
        raise ValueError(f"Invalid {hp.name} value: a {value.dtype} tensor (expected numbers)")
    column = value.detach().to(torch.float64).reshape(n, width).clone()
    ok = torch.isfinite(column)
    if hp.low is not None:
        ok &= column > hp.low if hp.low_open else column >= hp.low
    if hp.high is not None:
        ok &= column < hp.high if hp.high_open else column <= hp.high
    if hp.integer:
        ok &= column == column.round()
    if hp.limit is not None:  # OptLab's own range (Muon's ns_steps ≤ 99, torch's step() rule)
        if hp.limit.low is not None:
            ok &= column >= hp.limit.low
        if hp.limit.high is not None:
            ok &= column <= hp.limit.high
    if not bool(ok.all()):
        flat = int((~ok).flatten().nonzero()[0])
        bad, row = float(column.flatten()[flat]), flat // width
        if kind == "pair":  # the registry checks pairs whole: pair the bad value with a good one
            good = list(hp.default)  # type: ignore[arg-type]
            good[flat % 2] = bad
            checked: object = tuple(good)
        else:
            checked = bad
        try:
            hp.validate(checked)
        except ValueError as err:
            raise ValueError(f"{err} in row {row}") from None
        raise ValueError(f"Invalid {hp.name} value: {bad} in row {row}")
    return column


def _choice(hp: HParam, value: object) -> object:
    """A choice knob's one value for every row (a choice cannot vary per row).

    Raises:
        ValueError: a tensor, or a value the registry's `HParam` rejects.
    """
    if isinstance(value, Tensor):
        raise ValueError(f"{hp.name} is a choice and cannot vary per row")
    return hp.validate(value)


class BatchedOptimizer(ABC):
    """N independent copies of one `torch.optim` optimizer, one per row of a points tensor.

    Subclasses implement `_update`, one short method mirroring torch's
    ``_single_tensor_*`` function line by line; the formula itself is the
    registry's (`rule`), not repeated here.

    Attributes:
        points: The ``(N, 2)`` float64 tensor, updated in place by `step`.
        knobs: Every knob by registry name: ``(N, 1)`` float64 or bool columns,
            ``(N, 2)`` for pairs (column 0 is the first element); choice knobs
            are in `choices` instead.
        choices: Each choice knob's value, the same for every row.
        active: ``(N,)`` bool; a row that is False is frozen: `step` leaves its
            point and its state exactly as they were (a row made active again
            resumes from them, with the shared step count `t`).
        t: Steps taken (torch's ``state["step"]``, the same for every row).
        state: The per-row optimizer state tensors by torch's state names.
    """

    #: The registry key of the torch twin.
    key: ClassVar[str]
    #: Boolean knobs the torch class fixes and the registry does not expose
    #: (AdamW's decoupled decay), set for every row.
    fixed: ClassVar[dict[str, object]] = {}

    spec: OptimizerSpec = _FromRegistry("spec")  # type: ignore[assignment]
    rule: str = _FromRegistry("rule")  # type: ignore[assignment]

    def __init__(self, points: Tensor, values: Mapping[str, object] | None = None) -> None:
        """Checks ``values`` and sets up zeroed state.

        Args:
            points: ``(N, 2)`` float64 points, updated in place by `step`.
            values: Knob name to a Python value (every row) or a per-row
                tensor: ``(N,)`` for float and bool knobs, ``(N, 2)`` for pairs.
                Missing knobs take torch's defaults.

        Raises:
            ValueError: wrong points, an unknown knob, a value out of range,
                or a combination torch rejects.
        """
        if not isinstance(points, Tensor) or points.dim() != 2 or points.shape[1] != 2:
            raise ValueError(f"points: expected an (N, 2) tensor, got {_describe(points)}")
        if points.dtype != torch.float64 or points.shape[0] == 0:
            raise ValueError(f"points: expected N >= 1 float64 rows, got {_describe(points)}")
        spec = self.spec
        values = dict(values or {})
        for name in values:
            spec.hparam(name)  # raises for an unknown knob, listing the known ones
        n = points.shape[0]
        self.points = points
        self.knobs: dict[str, Tensor] = {
            hp.name: _column(hp, values.get(hp.name, hp.default), n)
            for hp in spec.hparams
            if hp.kind != "choice"
        }
        #: Choice knobs (Muon's ``adjust_lr_fn``): one value for every row.
        self.choices: dict[str, object] = {
            hp.name: _choice(hp, values.get(hp.name, hp.default))
            for hp in spec.hparams
            if hp.kind == "choice"
        }
        for name, value in self.fixed.items():
            self.knobs[name] = torch.full((n, 1), value, dtype=torch.bool)
        #: Whether some row has the knob on (bool) or nonzero (number), and
        #: whether every row does: branches no row takes are skipped (the
        #: result is the same, one fewer pass over the rows).
        self.some = {k: bool((v != 0).any()) for k, v in self.knobs.items()}
        self.every = {k: bool((v != 0).all()) for k, v in self.knobs.items()}
        self.active = torch.ones(n, dtype=torch.bool)
        self.t = 0
        self.state: dict[str, Tensor] = {}
        self._combos: dict[tuple[str, ...], tuple[list[list[float]], Tensor]] = {}
        try:
            self._check()
        except ValueError as err:
            raise ValueError(f"{spec.label}: {err}") from None
        self._init_state()

    @property
    def n(self) -> int:
        """The number of rows."""
        return self.points.shape[0]

    def pair(self, name: str) -> tuple[Tensor, Tensor]:
        """A pair knob's two ``(N, 1)`` columns (``beta1, beta2 = self.pair("betas")``)."""
        both = self.knobs[name]
        return both[:, :1], both[:, 1:]

    def zeros(self) -> Tensor:
        """A zeroed state tensor shaped like the points."""
        return torch.zeros_like(self.points)

    def scalars(self, fn: Callable[..., Sequence[float]], *names: str) -> tuple[Tensor, ...]:
        """Runs torch's per-step Python-float math for every row.

        ``fn`` gets the named knobs' values as Python floats (a pair gives two)
        and returns a sequence of floats; it runs once per distinct
        combination of those values, so the results equal torch's bit for bit.

        Returns:
            One ``(N, 1)`` float64 column per value ``fn`` returns.
        """
        if names not in self._combos:
            table = torch.cat([self.knobs[name].to(torch.float64) for name in names], 1)
            unique, inverse = torch.unique(table, dim=0, return_inverse=True)
            self._combos[names] = (unique.tolist(), inverse)
        rows, inverse = self._combos[names]
        results = torch.tensor([fn(*row) for row in rows], dtype=torch.float64)
        per_row = results[inverse]
        return tuple(per_row[:, j : j + 1] for j in range(per_row.shape[1]))

    def step(self, grad: Tensor) -> None:
        """Takes one step for every active row.

        Args:
            grad: The ``(N, 2)`` gradient at the current points.
        """
        if grad.shape != self.points.shape:
            raise ValueError(
                f"grad: expected shape {tuple(self.points.shape)}, got {tuple(grad.shape)}"
            )
        frozen = (~self.active).nonzero().flatten()
        # Frozen rows are computed with the others (rows never mix) and put back after.
        kept = {name: t.index_select(0, frozen) for name, t in self.state.items()}
        kept_points = self.points.index_select(0, frozen)
        self.t += 1
        with torch.no_grad():
            self._update(grad.detach().to(torch.float64))
            if len(frozen):
                self.points.index_copy_(0, frozen, kept_points)
                for name, rows in kept.items():
                    self.state[name].index_copy_(0, frozen, rows)

    def _check(self) -> None:  # noqa: B027 (a hook; most optimizers have nothing to check)
        """Rejects combinations torch's constructor rejects (ValueError); none by default."""

    @abstractmethod
    def _init_state(self) -> None:
        """Creates the zeroed state tensors in `state`."""

    @abstractmethod
    def _update(self, grad: Tensor) -> None:
        """Applies step `t` (already counted) to every row, in place."""


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return repr(value)


def negate_if(opt: BatchedOptimizer, grad: Tensor) -> Tensor:
    """``-grad`` on rows with torch's ``maximize``, ``grad`` elsewhere."""
    if not opt.some["maximize"]:
        return grad
    return -grad if opt.every["maximize"] else torch.where(opt.knobs["maximize"], -grad, grad)


def coupled_decay(opt: BatchedOptimizer, grad: Tensor, rows: Tensor | None = None) -> Tensor:
    """torch's ``grad.add(param, alpha=weight_decay)`` on rows whose ``weight_decay != 0``
    (and, if given, whose ``rows`` mask is set)."""
    weight_decay = opt.knobs["weight_decay"]
    if not opt.some["weight_decay"]:
        return grad
    decayed = torch.addcmul(grad, opt.points, weight_decay)
    if opt.every["weight_decay"] and rows is None:
        return decayed
    mask = weight_decay != 0 if rows is None else (weight_decay != 0) & rows
    return torch.where(mask, decayed, grad)


def weight_decay_step(opt: BatchedOptimizer, grad: Tensor) -> Tensor:
    """torch's ``if weight_decay != 0:`` block of Adam, NAdam and RAdam.

    Decoupled rows shrink the point, ``param.mul_(1 - lr * weight_decay)``;
    the others decay the gradient, ``grad = grad.add(param, alpha=weight_decay)``.
    """
    if not opt.some["weight_decay"]:
        return grad
    h, param = opt.knobs, opt.points
    decoupled = h["decoupled_weight_decay"]
    if opt.some["decoupled_weight_decay"]:
        shrunk = param * (1 - h["lr"] * h["weight_decay"])
        param.copy_(torch.where((h["weight_decay"] != 0) & decoupled, shrunk, param))
    if opt.every["decoupled_weight_decay"]:
        return grad
    return coupled_decay(opt, grad, rows=~decoupled)
