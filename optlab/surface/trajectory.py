"""Step records gathered into one path per optimizer, and what is measured on it.

`Trajectory` is an immutable snapshot (plots, exports and caches share it
safely); `TrajectoryCollector` accumulates a stream of `StepRecord`s and can
take snapshots while the run goes on, which is how pages redraw live.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from optlab.optim.config import OptimizerConfig
from optlab.surface.run import DIVERGED, RUNNING, StepRecord, SurfaceRunConfig, run_surface
from optlab.surface.surfaces import REACH_TOL, Surface


@dataclass(frozen=True)
class Trajectory:
    """One optimizer's path: the start plus one entry per step taken.

    Attributes:
        optimizer: The optimizer that walked it.
        step, x, y, loss, grad_norm, lr, evals: Columns of the step records.
        status: The last record's status (``running``, ``done`` or ``diverged``).
        momentum: The momentum factor column (None for an optimizer without one;
            empty when not recorded).
    """

    optimizer: OptimizerConfig
    step: tuple[int, ...]
    x: tuple[float, ...]
    y: tuple[float, ...]
    loss: tuple[float, ...]
    grad_norm: tuple[float, ...]
    lr: tuple[float, ...]
    evals: tuple[int, ...]
    status: str
    momentum: tuple[float | None, ...] = ()

    @property
    def momentum_changes(self) -> bool:
        """Whether the momentum factor (or β₁) moved during the run (a schedule or a change)."""
        return len(set(self.momentum)) > 1

    @property
    def diverged_at(self) -> int | None:
        """The step at which the run diverged, or None."""
        return self.step[-1] if self.status == DIVERGED else None

    @property
    def best_loss(self) -> float:
        """The lowest finite loss before any divergence (NaN if there is none).

        The point where a run diverged is excluded: far outside the bounds it
        can have an absurd value (a saddle's -1e22) that no one would call best.
        """
        reached = self.loss[:-1] if self.status == DIVERGED else self.loss
        finite = [v for v in reached if math.isfinite(v)]
        return min(finite) if finite else math.nan

    def steps_to_reach(self, f_min: float | None, tol: float = REACH_TOL) -> int | None:
        """The first step whose loss is within ``tol`` of ``f_min``, or None."""
        if f_min is None:
            return None
        for step, value in zip(self.step, self.loss, strict=True):
            if value - f_min <= tol:
                return step
        return None

    def distance_to_minimum(self, surface: Surface) -> np.ndarray | None:
        """Distance from each point to the nearest known minimum, or None."""
        if not surface.minima:
            return None
        xs, ys = np.asarray(self.x), np.asarray(self.y)
        dists = [np.hypot(xs - m.x, ys - m.y) for m in surface.minima]
        return np.min(dists, axis=0)


class TrajectoryCollector:
    """Accumulates records of one run into per-optimizer columns."""

    _COLUMNS = ("step", "x", "y", "loss", "grad_norm", "lr", "momentum", "evals")

    def __init__(self, optimizers: Sequence[OptimizerConfig]) -> None:
        self._optimizers = tuple(optimizers)
        self._columns = [{c: [] for c in self._COLUMNS} for _ in self._optimizers]
        self._status = [RUNNING] * len(self._optimizers)

    def add(self, record: StepRecord) -> None:
        """Appends one record to its optimizer's columns."""
        cols = self._columns[record.index]
        for name in self._COLUMNS:
            cols[name].append(getattr(record, name))
        self._status[record.index] = record.status

    def extend(self, records: Iterable[StepRecord]) -> TrajectoryCollector:
        """Appends every record; returns self for chaining."""
        for record in records:
            self.add(record)
        return self

    @property
    def steps_done(self) -> int:
        """The largest step recorded for any optimizer."""
        return max((c["step"][-1] for c in self._columns if c["step"]), default=0)

    def snapshot(self) -> list[Trajectory]:
        """Immutable trajectories of everything recorded so far."""
        return [
            Trajectory(opt, status=status, **{c: tuple(cols[c]) for c in self._COLUMNS})
            for opt, cols, status in zip(self._optimizers, self._columns, self._status, strict=True)
        ]


def collect(cfg: SurfaceRunConfig) -> list[Trajectory]:
    """Runs ``cfg`` to the end and returns one trajectory per optimizer."""
    return TrajectoryCollector(cfg.optimizers).extend(run_surface(cfg)).snapshot()


@dataclass(frozen=True)
class SummaryRow:
    """One line of the comparison table."""

    optimizer: str
    final_x: float
    final_y: float
    final_loss: float
    best_loss: float
    steps_to_min: int | None
    evals: int
    status: str


def summarize(trajectories: Sequence[Trajectory], surface: Surface) -> list[SummaryRow]:
    """The comparison table: where each optimizer ended and how fast it got there."""
    rows = []
    for tr in trajectories:
        status = f"diverged at step {tr.diverged_at}" if tr.status == DIVERGED else tr.status
        rows.append(
            SummaryRow(
                optimizer=tr.optimizer.label,
                final_x=tr.x[-1],
                final_y=tr.y[-1],
                final_loss=tr.loss[-1],
                best_loss=tr.best_loss,
                steps_to_min=tr.steps_to_reach(surface.f_min),
                evals=tr.evals[-1],
                status=status,
            )
        )
    return rows
