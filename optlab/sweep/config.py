"""What a sweep is: one optimizer, one or two swept axes, and the problem every cell solves.

An axis names a hyperparameter as torch spells it (``lr``, ``momentum``),
an element of a pair (``betas.0``, ``betas.1``), or a start coordinate
(``start_x``, ``start_y``: a grid of start points, for basin maps).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

import numpy as np

from optlab.caps import CAPS
from optlab.optim.config import OptimizerConfig, numeric_knob
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.surfaces import REACH_TOL, Surface
from optlab.sweep.batched import batched_for

MAX_RESOLUTION = CAPS.sweep_resolution
#: Cells x steps of one sweep: about 10 s on a 2-core laptop.
MAX_CELL_STEPS = CAPS.sweep_cell_steps
START_AXES = ("start_x", "start_y")
SCALES = ("lin", "log")


@dataclass(frozen=True)
class Axis:
    """One swept quantity: ``n`` values from ``low`` to ``high``, evenly spaced
    on a linear or logarithmic scale."""

    name: str
    low: float
    high: float
    n: int
    scale: str = "lin"

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"{self.name}: scale must be lin or log, got {self.scale!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int):
            raise ValueError(f"{self.name}: the resolution must be a whole number")
        if not 2 <= self.n <= MAX_RESOLUTION:
            raise ValueError(
                f"{self.name}: resolution must be in [2, {MAX_RESOLUTION}], got {self.n}"
            )
        for v in (self.low, self.high):
            if not (isinstance(v, int | float) and math.isfinite(v)):
                raise ValueError(f"{self.name}: bounds must be finite numbers, got {v!r}")
        if self.low == self.high:
            raise ValueError(f"{self.name}: low and high must differ")
        if self.scale == "log" and (self.low <= 0 or self.high <= 0):
            raise ValueError(f"{self.name}: a log axis needs positive bounds")

    @functools.cached_property
    def values(self) -> np.ndarray:
        """The ``n`` values, in order (read-only)."""
        if self.scale == "log":
            values = np.geomspace(self.low, self.high, self.n)
        else:
            values = np.linspace(self.low, self.high, self.n)
        values.setflags(write=False)
        return values

    @functools.cached_property
    def edges(self) -> np.ndarray:
        """The ``n + 1`` borders of the cells around `values`, in order (read-only).

        Each border lies halfway between two neighbouring values on the
        axis's own scale (the geometric mean on a log axis), and the outer
        ones half a step beyond the ends: on screen, every point of a cell is
        then nearer its own value than any other.
        """
        ends = np.log10(self.values) if self.scale == "log" else self.values.astype(float)
        inner = (ends[:-1] + ends[1:]) / 2
        first = ends[0] - (ends[1] - ends[0]) / 2
        last = ends[-1] + (ends[-1] - ends[-2]) / 2
        edges = np.concatenate([[first], inner, [last]])
        if self.scale == "log":
            edges = 10.0**edges
        edges.setflags(write=False)
        return edges

    @classmethod
    def from_text(cls, text: str) -> Axis:
        """Parses ``NAME=LOW:HIGH:log|lin:N`` (the CLI's ``--x``/``--y``)."""
        name, sep, rest = text.partition("=")
        parts = rest.split(":")
        if not sep or not name.strip() or len(parts) != 4:
            raise ValueError(f"expected NAME=LOW:HIGH:log|lin:N, got {text!r}")
        low, high, scale, n = (p.strip() for p in parts)
        try:
            lo, hi = float(low), float(high)
        except ValueError:
            raise ValueError(
                f"{name.strip()}: LOW and HIGH must be numbers, got {text!r}"
            ) from None
        if not n.isdigit():
            raise ValueError(f"{name.strip()}: N must be a whole number, got {n!r}")
        return cls(name.strip(), lo, hi, int(n), scale.lower())

    def to_text(self) -> str:
        """The ``NAME=LOW:HIGH:scale:N`` form."""
        return f"{self.name}={self.low:g}:{self.high:g}:{self.scale}:{self.n}"


@dataclass(frozen=True)
class SweepConfig:
    """Everything that determines a sweep.

    Attributes:
        optimizer: The optimizer with its fixed values (swept ones are overridden).
        x: The first axis.
        y: The second axis, or None for a 1-D sweep.
        problem: The surface, start, steps per cell, noise (every cell sees the
            same noise sequence) and seed, as in a plain run.
        target: Loss that counts as reached (None: f* + `REACH_TOL` where f*
            is known, else no target).
    """

    optimizer: OptimizerConfig
    x: Axis
    y: Axis | None = None
    problem: Problem = field(default_factory=Problem)
    target: float | None = None
    cells: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if not isinstance(self.optimizer, OptimizerConfig):
            raise ValueError(f"optimizer: expected OptimizerConfig, got {self.optimizer!r}")
        batched_for(self.optimizer.key)  # refuses optimizers without a batched twin
        if not isinstance(self.problem, Problem):
            raise ValueError(f"problem: expected Problem, got {self.problem!r}")
        axes = self.axes
        names = [a.name for a in axes]
        if len(set(names)) != len(names):
            raise ValueError(f"y: sweeps {names[0]} twice; pick two different quantities")
        for axis in axes:
            if axis.name not in START_AXES:
                numeric_knob(self.optimizer, axis.name)
        # Every corner of the grid must be a valid torch.optim configuration;
        # ranges and the optimizer's checks are monotone, so then all cells are.
        for corner in self._corners():
            self.cell_optimizer(corner)
        cells = math.prod(a.n for a in axes)
        if cells * self.problem.steps > MAX_CELL_STEPS:
            raise ValueError(
                f"steps: {cells:,} cells x {self.problem.steps:,} steps is over the "
                f"{MAX_CELL_STEPS:,} cap; use fewer steps or a coarser grid"
            )
        if self.target is not None and not (
            isinstance(self.target, int | float) and math.isfinite(self.target)
        ):
            raise ValueError(f"target: must be a finite number, got {self.target!r}")
        object.__setattr__(self, "cells", cells)

    @property
    def axes(self) -> tuple[Axis, ...]:
        """The swept axes (one or two)."""
        return (self.x,) if self.y is None else (self.x, self.y)

    @property
    def resolved_surface(self) -> Surface:
        """The surface the sweep runs on."""
        return self.problem.resolved_surface

    @property
    def target_loss(self) -> float | None:
        """The loss a cell must reach to count as converged, if any."""
        if self.target is not None:
            return float(self.target)
        f_min = self.resolved_surface.f_min
        return None if f_min is None else f_min + REACH_TOL

    def _corners(self) -> list[dict[str, float]]:
        corners: list[dict[str, float]] = [{}]
        for axis in self.axes:
            corners = [{**c, axis.name: v} for c in corners for v in (axis.low, axis.high)]
        return corners

    def cell_values(self, index: int) -> dict[str, float]:
        """The swept values of cell ``index`` (row-major: x varies fastest)."""
        ix = index % self.x.n
        out = {self.x.name: float(self.x.values[ix])}
        if self.y is not None:
            out[self.y.name] = float(self.y.values[index // self.x.n])
        return out

    def cell_optimizer(self, swept: dict[str, float]) -> OptimizerConfig:
        """The plain optimizer config of one cell (validated like any config)."""
        knobs = {name: value for name, value in swept.items() if name not in START_AXES}
        try:
            return self.optimizer.with_numbers(knobs)
        except ValueError as err:
            where = ", ".join(f"{k}={v:g}" for k, v in swept.items())
            raise ValueError(f"at {where}: {err}") from None

    def cell_run(self, index: int) -> SurfaceRunConfig:
        """A plain run of cell ``index`` (to replay it with the real torch.optim)."""
        swept = self.cell_values(index)
        x0, y0 = self.problem.start
        start = (swept.get("start_x", x0), swept.get("start_y", y0))
        return SurfaceRunConfig((self.cell_optimizer(swept),), replace(self.problem, start=start))


def default_axis(opt: OptimizerConfig, name: str, n: int = 40) -> Axis:
    """A sensible range for sweeping ``name``: two decades either side of the
    default for log-scaled knobs, the allowed range (kept open ends away) otherwise."""
    base, _, element = name.partition(".")
    hp = opt.spec.hparam(base)
    default = hp.default[int(element)] if element else hp.default
    if hp.log and default and default > 0:
        low, high = default / 100, default * 100
        if hp.high is not None:
            high = min(high, hp.high * (0.999 if hp.high_open else 1))
        return Axis(name, float(low), float(high), n, "log")
    low = hp.low if hp.low is not None else 0.0
    high = hp.high if hp.high is not None else max(1.0, 2 * float(default or 1))
    if hp.low_open:
        low = low + 0.01 * (high - low)
    if hp.high_open or high == 1.0:
        high = low + 0.99 * (high - low)
    return Axis(name, float(low), float(high), n, "lin")
