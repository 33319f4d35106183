"""What a study searches: dimensions of hyperparameters, and the points it tries.

A dimension is one numeric knob as torch spells it (``lr``, ``momentum``,
``weight_decay``, ``betas.0`` for Adam's β₁; ``beta1`` is accepted for it) with
a range on a log or linear scale, for every optimizer of the study or, written
``KEY:NAME=…`` (``sgd:momentum=0.8:0.99:lin``), for the optimizers of one key.

Points are quasi-random: one scrambled Sobol sequence
(`torch.quasirandom.SobolEngine`, seeded) over the union of all dimensions,
each optimizer reading the coordinates of its own dimensions, so optimizers
that share a dimension get the same values on it, point by point. With
``grid``, each optimizer's points are instead the full grid of ``k`` values per
dimension (``trials`` must be ``k`` to the power of its dimension count).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from optlab.optim.config import OptimizerConfig, numeric_knob, numeric_knobs

SCALES = ("log", "lin")
#: Friendlier names for a pair's element.
ALIASES = {"beta1": "betas.0", "beta2": "betas.1"}


@dataclass(frozen=True)
class Dimension:
    """One searched knob: values from ``low`` to ``high`` on a ``log`` or ``lin`` scale.

    Attributes:
        name: The knob (``lr``, ``momentum``, ``betas.0``...).
        low, high: The range, ``low < high``; both positive on a log scale.
        scale: ``log`` (uniform in log10) or ``lin``.
        only: An optimizer key: the dimension applies to that optimizer's slots
            only ("" for every optimizer).
    """

    name: str
    low: float
    high: float
    scale: str = "log"
    only: str = ""

    def __post_init__(self) -> None:
        where = self.label
        if self.scale not in SCALES:
            raise ValueError(f"--space {where}: the scale must be log or lin, got {self.scale!r}")
        for v in (self.low, self.high):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"--space {where}: bounds must be finite numbers, got {v!r}")
        if not self.low < self.high:
            what = "is empty" if self.low == self.high else "is inverted"
            raise ValueError(
                f"--space {where}: the range {self.low:g}:{self.high:g} {what} (LOW < HIGH)"
            )
        if self.scale == "log" and self.low <= 0:
            raise ValueError(
                f"--space {where}: a log range must stay above 0, got {self.low:g}:{self.high:g} "
                "(use lin, or a positive LOW)"
            )
        if self.name == "lr" and self.scale != "log":
            raise ValueError(f"--space {where}: lr is searched on a log scale (lr=LOW:HIGH:log)")

    @property
    def label(self) -> str:
        """``name``, or ``key:name`` for a dimension of one optimizer."""
        return f"{self.only}:{self.name}" if self.only else self.name

    def value(self, u: float) -> float:
        """The value at ``u`` in [0, 1] along the dimension's scale."""
        if self.scale == "log":
            return float(10 ** (math.log10(self.low) + u * math.log10(self.high / self.low)))
        return float(self.low + u * (self.high - self.low))

    def grid(self, k: int) -> list[float]:
        """``k`` values evenly spaced on the scale, both ends included."""
        if k == 1:
            return [self.value(0.5)]
        return [self.value(i / (k - 1)) for i in range(k)]

    def applies_to(self, opt: OptimizerConfig) -> bool:
        """Whether ``opt``'s points search this dimension."""
        return not self.only or opt.key == self.only

    @classmethod
    def from_text(cls, text: str) -> Dimension:
        """Parses ``[KEY:]NAME=LOW:HIGH:log|lin`` (the CLI's ``--space``)."""
        head, sep, rest = text.partition("=")
        parts = rest.split(":")
        only, colon, name = head.strip().rpartition(":")
        name = ALIASES.get(name.strip().lower(), name.strip().lower())
        if not sep or not name or len(parts) != 3 or (colon and not only.strip()):
            raise ValueError(f"--space: expected [KEY:]NAME=LOW:HIGH:log|lin, got {text!r}")
        low, high, scale = (p.strip() for p in parts)
        try:
            lo, hi = float(low), float(high)
        except ValueError:
            raise ValueError(
                f"--space {name}: LOW and HIGH must be numbers, got {text!r}"
            ) from None
        return cls(name, lo, hi, scale.lower(), only.strip().lower())

    def to_text(self) -> str:
        """The ``[KEY:]NAME=LOW:HIGH:scale`` form (numbers exact: it round-trips)."""
        return f"{self.label}={_exact(self.low)}:{_exact(self.high)}:{self.scale}"


def _exact(v: float) -> str:
    """``v`` as short text that reads back as the same float (``1e-4``, not ``0.0001``)."""
    short = f"{v:g}"
    return short if float(short) == v else repr(float(v))


def check_dimensions(optimizers: Sequence[OptimizerConfig], dims: Sequence[Dimension]) -> None:
    """Refuses dimensions an optimizer lacks, a knob searched twice, or a range outside
    what torch accepts for it.

    Raises:
        ValueError: one line naming the dimension and the optimizer.
    """
    keys = {opt.key for opt in optimizers}
    for dim in dims:
        if dim.only and dim.only not in keys:
            raise ValueError(
                f"--space {dim.label}: no --opt is a {dim.only} (the study's: {', '.join(keys)})"
            )
    for opt in optimizers:
        mine = [d for d in dims if d.applies_to(opt)]
        names = [d.name for d in mine]
        if "lr" not in names:
            raise ValueError(f"--space: {opt.spec.label} needs an lr range (lr=LOW:HIGH:log)")
        for dim in mine:
            if names.count(dim.name) > 1:
                raise ValueError(f"--space {dim.name}: searched twice for {opt.spec.label}")
            try:
                numeric_knob(opt, dim.name)
            except ValueError:
                knobs = ", ".join(numeric_knobs(opt))
                raise ValueError(
                    f"--space {dim.label}: {opt.spec.label} has no hyperparameter {dim.name} "
                    f"(it has {knobs}); write KEY:{dim.name}=… to search it for one optimizer"
                ) from None
            for end in (dim.low, dim.high):
                try:
                    opt.with_numbers({dim.name: end})
                except ValueError as err:
                    raise ValueError(f"--space {dim.label}: at {end:g}, {err}") from None


def grid_side(trials: int, n_dims: int) -> int:
    """``k`` with ``k ** n_dims == trials``.

    Raises:
        ValueError: when ``trials`` is not such a power.
    """
    k = round(trials ** (1 / n_dims))
    if k**n_dims != trials:
        below = max(1, int(trials ** (1 / n_dims)))
        while (below + 1) ** n_dims <= trials:
            below += 1
        near = sorted({below**n_dims, (below + 1) ** n_dims})
        raise ValueError(
            f"--grid: {trials} trials is no grid over {n_dims} dimensions (try "
            f"{' or '.join(str(n) for n in near)})"
        )
    return k


def unit_points(n_dims: int, trials: int, seed: int) -> np.ndarray:
    """``trials`` scrambled Sobol points in [0, 1)^n_dims (float64), seeded."""
    engine = torch.quasirandom.SobolEngine(n_dims, scramble=True, seed=seed)
    return engine.draw(trials, dtype=torch.float64).numpy()


def study_points(
    optimizers: Sequence[OptimizerConfig],
    dims: Sequence[Dimension],
    trials: int,
    seed: int,
    grid: bool = False,
) -> list[list[dict[str, float]]]:
    """Each optimizer's ``trials`` points: ``{knob name: value}``, in order.

    Sobol coordinates are shared by dimension (`Dimension.label` order), so two
    optimizers searching the same dimension get identical values on it.
    """
    check_dimensions(optimizers, dims)
    if not grid:
        units = unit_points(len(dims), trials, seed)
        return [
            [
                {d.name: d.value(float(u[j])) for j, d in enumerate(dims) if d.applies_to(opt)}
                for u in units
            ]
            for opt in optimizers
        ]
    out = []
    for opt in optimizers:
        mine = [d for d in dims if d.applies_to(opt)]
        k = grid_side(trials, len(mine))
        axes = np.meshgrid(*(d.grid(k) for d in mine), indexing="ij")
        flat = [a.ravel() for a in axes]
        out.append(
            [{d.name: float(f[i]) for d, f in zip(mine, flat, strict=True)} for i in range(trials)]
        )
    return out


def unit_of(dim: Dimension, value: float) -> float:
    """Where ``value`` lies on ``dim``, in [0, 1] along its scale."""
    if dim.scale == "log":
        return math.log10(value / dim.low) / math.log10(dim.high / dim.low)
    return (value - dim.low) / (dim.high - dim.low)
