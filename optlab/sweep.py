"""Sweeps: one optimizer, a grid of hyperparameters (or start points), all cells at once.

`run_sweep` runs every cell of a 1-D or 2-D grid as one row of an (N, 2)
tensor: one forward and one backward of the surface per step for all cells,
then one batched update (`optlab.batched`) in which every hyperparameter may
differ per row. The batched optimizers are tested to equal `torch.optim` row
by row, so a cell's numbers are those of a plain run of its configuration.

An axis names a hyperparameter as torch spells it (``lr``, ``momentum``),
an element of a pair (``betas.0``, ``betas.1``), or a start coordinate
(``start_x``, ``start_y``: a grid of start points, for basin maps).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from optlab.batched import batched_for
from optlab.caps import CAPS
from optlab.hparams import HParam
from optlab.optimizers import OptimizerConfig
from optlab.surface_run import (
    SurfaceRunConfig,
    divergence_box,
    noise_generator,
    resolve_surface,
)
from optlab.surfaces import Bounds, Point, Surface
from optlab.trajectory import REACH_TOL

MAX_RESOLUTION = CAPS.sweep_resolution
#: Cells x steps of one sweep: about 10 s on a 2-core laptop.
MAX_CELL_STEPS = CAPS.sweep_cell_steps
#: Points kept per cell's path (for replays; the metrics use every step).
PATH_POINTS = 51
START_AXES = ("start_x", "start_y")
SCALES = ("lin", "log")
#: Outcome codes of `SweepResult.basin` besides a minimum's index.
NOT_CONVERGED, DIVERGED_CELL = -1, -2


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


def _swept_hparam(opt: OptimizerConfig, name: str) -> tuple[HParam, int | None]:
    """The optimizer knob an axis sweeps, and the pair element (or None)."""
    base, dot, element = name.partition(".")
    hp = opt.spec.hparam(base)
    if hp.kind == "pair":
        if element not in ("0", "1"):
            raise ValueError(f"{name}: sweep {base}.0 or {base}.1, one element of the pair")
        return hp, int(element)
    if dot:
        raise ValueError(f"{name}: {base} is not a pair")
    if hp.kind not in ("float", "int"):
        raise ValueError(f"{name}: only numeric hyperparameters can be swept, not a {hp.kind}")
    return hp, None


@dataclass(frozen=True)
class SweepConfig:
    """Everything that determines a sweep.

    Attributes:
        optimizer: The optimizer with its fixed values (swept ones are overridden).
        x: The first axis.
        y: The second axis, or None for a 1-D sweep.
        surface, surface_values, expr, bounds, start: As in `SurfaceRunConfig`.
        steps: Steps per cell.
        noise: Gradient noise σ (every cell sees the same noise sequence).
        seed: Seeds the noise.
        target: Loss that counts as reached (None: f* + `REACH_TOL` where f*
            is known, else no target).
    """

    optimizer: OptimizerConfig
    x: Axis
    y: Axis | None = None
    surface: str = "rosenbrock"
    surface_values: tuple[tuple[str, float], ...] = ()
    expr: str | None = None
    bounds: Bounds | None = None
    start: Point | None = None
    steps: int = 500
    noise: float = 0.0
    seed: int = 0
    target: float | None = None
    cells: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if not isinstance(self.optimizer, OptimizerConfig):
            raise ValueError(f"optimizer: expected OptimizerConfig, got {self.optimizer!r}")
        batched_for(self.optimizer.key)  # refuses optimizers without a batched twin
        # The common settings are checked exactly as a plain run's.
        base = SurfaceRunConfig(
            (self.optimizer,),
            self.surface,
            self.surface_values,
            self.expr,
            self.bounds,
            self.start,
            self.steps,
            self.noise,
            self.seed,
        )
        for key in ("surface_values", "bounds", "start", "noise"):
            object.__setattr__(self, key, getattr(base, key))
        axes = self.axes
        names = [a.name for a in axes]
        if len(set(names)) != len(names):
            raise ValueError(f"y: sweeps {names[0]} twice; pick two different quantities")
        for axis in axes:
            if axis.name not in START_AXES:
                _swept_hparam(self.optimizer, axis.name)
        # Every corner of the grid must be a valid torch.optim configuration;
        # ranges and the optimizer's checks are monotone, so then all cells are.
        for corner in self._corners():
            self.cell_optimizer(corner)
        cells = math.prod(a.n for a in axes)
        if cells * self.steps > MAX_CELL_STEPS:
            raise ValueError(
                f"steps: {cells:,} cells x {self.steps:,} steps is over the "
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
        return resolve_surface(self.surface, self.surface_values, self.expr, self.bounds)

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
        values = self.optimizer.kwargs
        for name, value in swept.items():
            if name in START_AXES:
                continue
            hp, element = _swept_hparam(self.optimizer, name)
            if element is None:
                values[hp.name] = round(value) if hp.kind == "int" else float(value)
            else:
                pair = list(values[hp.name])
                pair[element] = float(value)
                values[hp.name] = tuple(pair)
        try:
            return OptimizerConfig(self.optimizer.key, tuple(values.items()))
        except ValueError as err:
            where = ", ".join(f"{k}={v:g}" for k, v in swept.items())
            raise ValueError(f"at {where}: {err}") from None

    def cell_run(self, index: int) -> SurfaceRunConfig:
        """A plain run of cell ``index`` (to replay it with the real torch.optim)."""
        swept = self.cell_values(index)
        start = (
            swept.get("start_x", self.start[0]),
            swept.get("start_y", self.start[1]),
        )
        return SurfaceRunConfig(
            (self.cell_optimizer(swept),),
            self.surface,
            self.surface_values,
            self.expr,
            self.bounds,
            start,
            self.steps,
            self.noise,
            self.seed,
        )


@dataclass(frozen=True)
class SweepResult:
    """Per-cell metrics, each shaped ``(ny, nx)`` (``(1, nx)`` for a 1-D sweep).

    Attributes:
        config: The sweep.
        final_loss: f at the last step (NaN where the cell diverged).
        best_loss: The lowest f along the path.
        steps_to_target: First step with f <= the target, -1 if never (or no target).
        diverged_at: The step at which the cell diverged, -1 if it did not.
        basin: Index of the known minimum the cell ended near, `NOT_CONVERGED`,
            or `DIVERGED_CELL`.
        final: The last point, ``(ny, nx, 2)``.
        paths: Subsampled paths ``(ny, nx, P, 2)`` (float32), for replays.
        path_steps: The steps the paths' points were taken at.
        seconds: Wall-clock time of the sweep.
    """

    config: SweepConfig
    final_loss: np.ndarray
    best_loss: np.ndarray
    steps_to_target: np.ndarray
    diverged_at: np.ndarray
    basin: np.ndarray
    final: np.ndarray
    paths: np.ndarray
    path_steps: np.ndarray
    seconds: float

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)``."""
        return self.final_loss.shape

    def metric(self, name: str) -> np.ndarray:
        """One of the per-cell metrics by name."""
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r} (known: {', '.join(METRICS)})")
        return getattr(self, name)

    def best_cell(self) -> int | None:
        """The cell with the lowest final loss (ties: the first), or None if all diverged."""
        flat = self.final_loss.ravel()
        if not np.isfinite(flat).any():
            return None
        return int(np.nanargmin(np.where(np.isfinite(flat), flat, np.nan)))

    def to_dict(self) -> dict:
        """A JSON-ready dict: the axes and the per-cell metrics as nested lists."""
        cfg = self.config

        def clean(a: np.ndarray) -> list:
            return [[None if not math.isfinite(v) else float(v) for v in row] for row in a]

        return {
            "optimizer": cfg.optimizer.to_text(),
            "surface": cfg.surface,
            "expr": cfg.expr,
            "start": list(cfg.start),
            "steps": cfg.steps,
            "noise": cfg.noise,
            "seed": cfg.seed,
            "target": cfg.target_loss,
            "axes": [
                {"name": a.name, "scale": a.scale, "values": a.values.tolist()} for a in cfg.axes
            ],
            "final_loss": clean(self.final_loss),
            "best_loss": clean(self.best_loss),
            "steps_to_target": self.steps_to_target.tolist(),
            "diverged_at": self.diverged_at.tolist(),
            "basin": self.basin.tolist(),
            "seconds": self.seconds,
        }


METRICS = ("final_loss", "best_loss", "steps_to_target", "diverged_at", "basin")


def _row_values(cfg: SweepConfig, n: int) -> tuple[dict[str, object], torch.Tensor]:
    """The batched optimizer's values (per-row tensors for the swept knobs) and starts."""
    values: dict[str, object] = dict(cfg.optimizer.kwargs)
    grids = np.meshgrid(*(a.values for a in cfg.axes), indexing="xy")
    columns = {
        a.name: torch.from_numpy(g.ravel().copy()) for a, g in zip(cfg.axes, grids, strict=True)
    }
    starts = torch.tensor([cfg.start] * n, dtype=torch.float64)
    for name, column in columns.items():
        if name in START_AXES:
            starts[:, START_AXES.index(name)] = column
            continue
        hp, element = _swept_hparam(cfg.optimizer, name)
        if element is None:
            values[hp.name] = column.round() if hp.kind == "int" else column
        else:
            pair = values[hp.name]
            if not isinstance(pair, torch.Tensor):
                pair = torch.tensor([list(pair)] * n, dtype=torch.float64)
            pair[:, element] = column
            values[hp.name] = pair
    return values, starts


def run_sweep(
    cfg: SweepConfig, on_progress: Callable[[int, int], None] | None = None
) -> SweepResult:
    """Runs every cell of ``cfg`` for ``cfg.steps`` steps; returns per-cell metrics.

    Args:
        cfg: The sweep.
        on_progress: Called with ``(step, steps)`` about every 2% of the run.

    A cell whose point becomes non-finite or leaves the divergence box (as in
    `run_surface`) is frozen at the step it diverged, its loss reported as
    NaN; rows are independent, so nothing leaks into the other cells.
    """
    started = time.perf_counter()
    surface = cfg.resolved_surface
    n = cfg.cells
    values, points = _row_values(cfg, n)
    optimizer = batched_for(cfg.optimizer.key)(points, values)
    gen = noise_generator(cfg.seed)
    xlo, xhi, ylo, yhi = divergence_box(surface)
    target = cfg.target_loss
    best = torch.full((n,), math.inf, dtype=torch.float64)
    reached = torch.full((n,), -1, dtype=torch.int64)
    diverged_at = torch.full((n,), -1, dtype=torch.int64)
    path_steps = np.unique(np.linspace(0, cfg.steps, min(PATH_POINTS, cfg.steps + 1)).round())
    path_steps = path_steps.astype(np.int64)
    paths = np.empty((n, len(path_steps), 2), dtype=np.float32)
    keep = {int(s): i for i, s in enumerate(path_steps)}
    ones = torch.ones(n, dtype=torch.float64)
    every = max(1, cfg.steps // 50)
    losses = torch.empty(n, dtype=torch.float64)
    for step in range(cfg.steps + 1):
        leaf = points.detach().requires_grad_(True)
        losses = surface(leaf)
        (grads,) = torch.autograd.grad(losses, leaf, grad_outputs=ones)
        losses = losses.detach()
        x, y = points[:, 0], points[:, 1]
        ok = (
            torch.isfinite(losses)
            & torch.isfinite(grads).all(1)
            & (x >= xlo)
            & (x <= xhi)
            & (y >= ylo)
            & (y <= yhi)
        )
        newly = optimizer.active & ~ok
        diverged_at[newly] = step
        optimizer.active &= ok
        live = optimizer.active
        best = torch.where(live, torch.minimum(best, losses), best)
        if target is not None:
            hit = live & (reached < 0) & (losses <= target)
            reached[hit] = step
        if step in keep:
            paths[:, keep[step]] = points.numpy()
        if step == cfg.steps or not bool(live.any()):
            break
        if cfg.noise > 0:
            grads = grads + cfg.noise * torch.randn(2, generator=gen, dtype=torch.float64)
        optimizer.step(grads)
        if on_progress is not None and (step + 1) % every == 0:
            on_progress(step + 1, cfg.steps)
    final_loss = torch.where(diverged_at < 0, losses, torch.nan)
    result_shape = (1 if cfg.y is None else cfg.y.n, cfg.x.n)
    basin = _basins(surface, points, diverged_at)
    # Cells frozen early keep their last point in the remaining path samples.
    for i, s in enumerate(path_steps):
        if i > 0:
            frozen = (diverged_at >= 0).numpy() & (diverged_at.numpy() <= s)
            paths[frozen, i] = paths[frozen, i - 1]
    return SweepResult(
        config=cfg,
        final_loss=final_loss.numpy().reshape(result_shape),
        best_loss=best.numpy().reshape(result_shape),
        steps_to_target=reached.numpy().reshape(result_shape),
        diverged_at=diverged_at.numpy().reshape(result_shape),
        basin=basin.reshape(result_shape),
        final=points.numpy().reshape(*result_shape, 2).copy(),
        paths=paths.reshape(*result_shape, len(path_steps), 2),
        path_steps=path_steps,
        seconds=time.perf_counter() - started,
    )


def basin_radius(surface: Surface) -> float:
    """How close to a known minimum a final point must be to count as in its basin."""
    (x0, x1), (y0, y1) = surface.bounds
    return 0.02 * math.hypot(x1 - x0, y1 - y0)


def _basins(surface: Surface, points: torch.Tensor, diverged_at: torch.Tensor) -> np.ndarray:
    out = np.full(len(points), NOT_CONVERGED, dtype=np.int64)
    minima = surface.all_minima
    if minima:
        centres = torch.tensor([[m.x, m.y] for m in minima], dtype=torch.float64)
        dist = torch.cdist(points, centres)
        nearest = dist.min(1)
        close = nearest.values <= basin_radius(surface)
        out[close.numpy()] = nearest.indices[close].numpy()
    out[(diverged_at >= 0).numpy()] = DIVERGED_CELL
    return out


def _where(cfg: SweepConfig) -> str:
    surface = cfg.resolved_surface
    return surface.label if cfg.expr is None else f"f(x, y) = {cfg.expr}"


def sweep_summary(result: SweepResult) -> str:
    """A few lines for the CLI: the grid, the best cell, how many diverged or converged."""
    cfg = result.config
    axes = ", ".join(f"{a.name} {a.scale} {a.low:g}..{a.high:g}" for a in cfg.axes)
    grid = " x ".join(str(a.n) for a in reversed(cfg.axes))
    lines = [
        f"{_where(cfg)}, {cfg.optimizer.label}: {grid} cells ({axes}), {cfg.steps} steps "
        f"each, in {result.seconds:.2f} s"
    ]
    best = result.best_cell()
    if best is None:
        lines.append("best cell: none (every cell diverged)")
    else:
        values = ", ".join(f"{k}={v:.4g}" for k, v in cfg.cell_values(best).items())
        reached = int(result.steps_to_target.ravel()[best])
        when = f" (reached the target at step {reached})" if reached >= 0 else ""
        lines.append(f"best cell: {values}: final loss {result.final_loss.ravel()[best]:.6g}{when}")
    n = cfg.cells
    diverged = int((result.diverged_at >= 0).sum())
    text = f"diverged: {diverged} of {n} cells"
    if cfg.target_loss is not None:
        hit = int((result.steps_to_target >= 0).sum())
        text += f"; reached f <= {cfg.target_loss:.6g}: {hit} of {n}"
    lines.append(text)
    return "\n".join(lines)


@dataclass(frozen=True)
class Tuned:
    """One optimizer of a fair comparison: its learning-rate sweep and the best config.

    Attributes:
        optimizer: The optimizer as given (its lr is what was tuned).
        sweep: The final loss for every lr of the shared grid.
        best: The config with the best lr, or None when every lr diverged.
    """

    optimizer: OptimizerConfig
    sweep: SweepResult
    best: OptimizerConfig | None


def tune_lr(cfg: SweepConfig, runner: Callable[[SweepConfig], SweepResult] = run_sweep) -> Tuned:
    """Runs a 1-D ``lr`` sweep and keeps the lr with the lowest final loss.

    Final loss, not distance to a minimum or steps to a target: those favour
    optimizers that start fast and stall.

    Args:
        cfg: A sweep whose only axis is ``lr``.
        runner: Runs the sweep (a page passes its cached runner).
    """
    if cfg.y is not None or cfg.x.name != "lr":
        raise ValueError("tuning sweeps lr alone: give one axis named lr")
    result = runner(cfg)
    best = result.best_cell()
    tuned = None if best is None else cfg.cell_optimizer(cfg.cell_values(best))
    return Tuned(cfg.optimizer, result, tuned)
