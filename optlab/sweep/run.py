"""Running a sweep: every cell of the grid at once, and what is measured on each.

`run_sweep` runs every cell of a 1-D or 2-D grid (`optlab.sweep.config`) as
one row of an (N, 2) tensor: one forward and one backward of the surface per
step for all cells, then one batched update (`optlab.sweep.batched`) in which
every hyperparameter may differ per row. The batched optimizers are tested to
equal `torch.optim` row by row, so a cell's numbers are those of a plain run
of its configuration.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from optlab.numbers import number_text
from optlab.optim.config import OptimizerConfig, numeric_knob
from optlab.surface.minima import grid_starts, settle, slope_scale
from optlab.surface.run import divergence_box, noise_generator
from optlab.surface.surfaces import Surface
from optlab.sweep.batched import batched_for
from optlab.sweep.config import START_AXES, SweepConfig

#: Points kept per cell's path (for replays; the metrics use every step).
PATH_POINTS = 51
#: Outcome codes of `SweepResult.basin` besides a minimum's index (an index into
#: the surface's ``all_minima``, global ones first). Saved results keep their
#: meaning: -1 and -2 are as they always were; -3 is newer.
NOT_CONVERGED, DIVERGED_CELL, OTHER_STATIONARY = -1, -2, -3
#: What each outcome code means, as the JSON export and the basin map say it.
OUTCOMES = {
    NOT_CONVERGED: "not converged",
    DIVERGED_CELL: "diverged",
    OTHER_STATIONARY: "other stationary point",
}


@dataclass(frozen=True)
class Metric:
    """One per-cell measurement of a sweep.

    Attributes:
        name: The `SweepResult` field (and the JSON key, and a link's ``metric``).
        label: What the page calls it.
        loss: A loss (coloured on a log scale), not a step count.
        colourable: A heatmap can colour by it (basins have a map of their own).
    """

    name: str
    label: str
    loss: bool = False
    colourable: bool = True


#: Every per-cell metric, in the order the page offers them.
METRICS: tuple[Metric, ...] = (
    Metric("final_loss", "final loss", loss=True),
    Metric("best_loss", "best loss", loss=True),
    Metric("steps_to_target", "steps to reach the target"),
    Metric("diverged_at", "step of divergence"),
    Metric("basin", "basin", colourable=False),
)
_METRIC_BY_NAME = {m.name: m for m in METRICS}
#: The metrics a heatmap can colour by.
COLOURABLE: tuple[Metric, ...] = tuple(m for m in METRICS if m.colourable)


def get_metric(name: str) -> Metric:
    """The metric called ``name``.

    Raises:
        ValueError: naming the unknown metric and listing the known ones.
    """
    if name not in _METRIC_BY_NAME:
        raise ValueError(f"unknown metric {name!r} (known: {', '.join(_METRIC_BY_NAME)})")
    return _METRIC_BY_NAME[name]


@dataclass(frozen=True)
class SweepResult:
    """Per-cell metrics, each shaped ``(ny, nx)`` (``(1, nx)`` for a 1-D sweep).

    Attributes:
        config: The sweep.
        final_loss: f at the last step (NaN where the cell diverged).
        best_loss: The lowest f along the path.
        steps_to_target: First step with f <= the target, -1 if never (or no target).
        diverged_at: The step at which the cell diverged, -1 if it did not.
        basin: Index of the known minimum the cell ended near (in the surface's
            ``all_minima``), `OTHER_STATIONARY` (near a saddle, a maximum, or on a
            plateau), `NOT_CONVERGED`, or `DIVERGED_CELL`.
        final: The last point, ``(ny, nx, 2)``.
        paths: Subsampled paths ``(ny, nx, P, 2)`` (float32), for replays.
        path_steps: The steps the paths' points were taken at.
        seconds: Wall-clock time of the sweep, less the time its progress
            callback took (a page's waits for its turn of the engine).
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

    @property
    def nbytes(self) -> int:
        """The bytes its arrays hold (the paths are most of them)."""
        return sum(value.nbytes for value in vars(self).values() if isinstance(value, np.ndarray))

    def metric(self, name: str) -> np.ndarray:
        """One of the per-cell metrics by name."""
        return getattr(self, get_metric(name).name)

    def best_cell(self) -> int | None:
        """The cell with the lowest final loss (ties: the first), or None if all diverged."""
        best = self.best_cells()
        return int(best[0]) if best.size else None

    def cell_or_best(self, chosen: int | None) -> int | None:
        """The cell a page shows and replays: ``chosen``, else the best one (None
        when nothing is chosen and every cell diverged)."""
        return chosen if chosen is not None else self.best_cell()

    def best_cells(self) -> np.ndarray:
        """Every cell whose final loss equals the lowest one (empty if all diverged)."""
        flat = self.final_loss.ravel()
        finite = np.isfinite(flat)
        if not finite.any():
            return np.empty(0, dtype=np.int64)
        return np.flatnonzero(finite & (flat == flat[finite].min()))

    def to_dict(self) -> dict:
        """A JSON-ready dict: the axes and the per-cell metrics as nested lists."""
        cfg = self.config
        surface = cfg.resolved_surface

        def clean(a: np.ndarray) -> list:
            return [[None if not math.isfinite(v) else float(v) for v in row] for row in a]

        return {
            "optimizer": cfg.optimizer.to_text(),
            "surface": cfg.problem.surface,
            "expr": cfg.problem.expr,
            "start": list(cfg.problem.start),
            "steps": cfg.problem.steps,
            "noise": cfg.problem.noise,
            "seed": cfg.problem.seed,
            "target": cfg.target_loss,
            "axes": [
                {"name": a.name, "scale": a.scale, "values": a.values.tolist()} for a in cfg.axes
            ],
            "final_loss": clean(self.final_loss),
            "best_loss": clean(self.best_loss),
            "steps_to_target": self.steps_to_target.tolist(),
            "diverged_at": self.diverged_at.tolist(),
            "basin": self.basin.tolist(),
            "basin_codes": {str(code): text for code, text in OUTCOMES.items()},
            "minima": [
                {
                    "x": m.x,
                    "y": m.y,
                    "f": m.value,
                    "global": k < len(surface.minima),
                    "estimated": m.estimated,
                }
                for k, m in enumerate(surface.all_minima)
            ],
            "seconds": self.seconds,
        }


def _row_values(cfg: SweepConfig, n: int) -> tuple[dict[str, object], torch.Tensor]:
    """The batched optimizer's values (per-row tensors for the swept knobs) and starts."""
    values: dict[str, object] = dict(cfg.optimizer.kwargs)
    grids = np.meshgrid(*(a.values for a in cfg.axes), indexing="xy")
    columns = {
        a.name: torch.from_numpy(g.ravel().copy()) for a, g in zip(cfg.axes, grids, strict=True)
    }
    starts = torch.tensor([cfg.problem.start] * n, dtype=torch.float64)
    for name, column in columns.items():
        if name in START_AXES:
            starts[:, START_AXES.index(name)] = column
            continue
        hp, element = numeric_knob(cfg.optimizer, name)
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
    """Runs every cell of ``cfg`` for ``cfg.problem.steps`` steps; returns per-cell metrics.

    Args:
        cfg: The sweep.
        on_progress: Called with ``(step, steps)`` about every 2% of the run;
            the time it takes is not counted in the result's ``seconds``.

    A cell whose point becomes non-finite or leaves the divergence box (as in
    `run_surface`) is frozen at the step it diverged, its loss reported as
    NaN; rows are independent, so nothing leaks into the other cells.
    """
    started = time.perf_counter()
    surface = cfg.resolved_surface
    n = cfg.cells
    values, points = _row_values(cfg, n)
    optimizer = batched_for(cfg.optimizer.key)(points, values)
    gen = noise_generator(cfg.problem.seed)
    xlo, xhi, ylo, yhi = divergence_box(surface)
    target = cfg.target_loss
    best = torch.full((n,), math.inf, dtype=torch.float64)
    reached = torch.full((n,), -1, dtype=torch.int64)
    diverged_at = torch.full((n,), -1, dtype=torch.int64)
    path_steps = np.unique(
        np.linspace(0, cfg.problem.steps, min(PATH_POINTS, cfg.problem.steps + 1)).round()
    )
    path_steps = path_steps.astype(np.int64)
    paths = np.empty((n, len(path_steps), 2), dtype=np.float32)
    keep = {int(s): i for i, s in enumerate(path_steps)}
    ones = torch.ones(n, dtype=torch.float64)
    every = max(1, cfg.problem.steps // 50)
    losses = torch.empty(n, dtype=torch.float64)
    for step in range(cfg.problem.steps + 1):
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
        if step == cfg.problem.steps or not bool(live.any()):
            break
        if cfg.problem.noise > 0:
            grads = grads + cfg.problem.noise * torch.randn(2, generator=gen, dtype=torch.float64)
        optimizer.step(grads)
        if on_progress is not None and (step + 1) % every == 0:
            called = time.perf_counter()
            on_progress(step + 1, cfg.problem.steps)
            started += time.perf_counter() - called
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
    """How close to a known minimum a final point must be to count as in its basin.

    The same distance decides "other stationary point": a final point that is not near
    a listed minimum but this near a saddle, a maximum (or on a plateau).
    """
    (x0, x1), (y0, y1) = surface.bounds
    return 0.02 * math.hypot(x1 - x0, y1 - y0)


@functools.lru_cache(maxsize=64)
def _typical_slope(surface: Surface) -> float:
    """The surface's median gradient norm over a grid of its bounds (its unit of slope)."""
    return slope_scale(surface, grid_starts(surface.bounds, 32))


def _basins(surface: Surface, points: torch.Tensor, diverged_at: torch.Tensor) -> np.ndarray:
    """Each final point's outcome code (see `OUTCOMES`).

    In order: diverged; within `basin_radius` of a listed minimum (the nearest one's
    index); within that distance of any other stationary point, found by Newton's method
    from the final point (`optlab.surface.minima.settle`), or on a plateau:
    `OTHER_STATIONARY`; otherwise `NOT_CONVERGED`.
    """
    out = np.full(len(points), NOT_CONVERGED, dtype=np.int64)
    minima = surface.all_minima
    radius = basin_radius(surface)
    if minima:
        centres = torch.tensor([[m.x, m.y] for m in minima], dtype=torch.float64)
        dist = torch.cdist(points, centres)
        nearest = dist.min(1)
        close = nearest.values <= radius
        out[close.numpy()] = nearest.indices[close].numpy()
    diverged = (diverged_at >= 0).numpy()
    rest = np.flatnonzero((out == NOT_CONVERGED) & ~diverged)
    if len(rest):
        near = settle(surface, points[rest], radius, _typical_slope(surface)).numpy()
        out[rest[near]] = OTHER_STATIONARY
    out[diverged] = DIVERGED_CELL
    return out


@dataclass(frozen=True)
class Edge:
    """The best cell lies on one end of a swept range: the optimum may lie beyond it.

    Attributes:
        axis: The swept quantity (``lr``, ``betas.1``).
        end: ``"low"`` or ``"high"``: which end of the range, by value.
        value: The value at that end.
        allowed: The quantity's allowed range (e.g. ``[0, inf)``) when that end
            is its bound too, so the range cannot be widened there; else None.
    """

    axis: str
    end: str
    value: float
    allowed: str | None = None

    @property
    def message(self) -> str:
        """One sentence for the page and the CLI."""
        where = (
            f"the best cell is on the edge of the {self.axis} range, at its {self.end} end "
            f"({self.axis} = {number_text(self.value)})"
        )
        if self.allowed is not None:
            lower = "lower" if self.end == "low" else "higher"
            return f"{where}; {self.axis} can go no {lower} (allowed: {self.allowed})"
        beyond = "below" if self.end == "low" else "above"
        return f"{where}: widen the range {beyond} {number_text(self.value)}"


def best_on_edge(result: SweepResult) -> tuple[Edge, ...]:
    """The ends of the swept hyperparameter ranges on which the best cell lies.

    The best cells are all those tied at the lowest final loss; an end is
    reported only when every one of them lies on it (a tie that reaches inside
    the range means the range already holds an optimum). Start-point axes are
    left out: their range is the surface's, not a setting to tune.
    """
    cfg = result.config
    best = result.best_cells()
    if not best.size:
        return ()
    edges = []
    for k, axis in enumerate(cfg.axes):
        if axis.name in START_AXES:
            continue
        at = best % cfg.x.n if k == 0 else best // cfg.x.n
        for index in (0, axis.n - 1):
            if not (at == index).all():
                continue
            other = axis.values[axis.n - 1 - index]
            value = float(axis.values[index])
            end = "low" if value < other else "high"
            edges.append(Edge(axis.name, end, value, _bound_text(cfg, axis.name, value, end)))
    return tuple(edges)


def _bound_text(cfg: SweepConfig, name: str, value: float, end: str) -> str | None:
    """The knob's allowed range when ``value`` is the bound at that ``end`` of it."""
    hp, _ = numeric_knob(cfg.optimizer, name)
    bound, is_open = (hp.low, hp.low_open) if end == "low" else (hp.high, hp.high_open)
    return hp.range_text() if bound is not None and not is_open and value == bound else None


def sweep_summary(result: SweepResult) -> str:
    """A few lines for the CLI: the grid, the best cell, how many diverged or converged."""
    cfg = result.config
    axes = ", ".join(f"{a.name} {a.scale} {a.low:g}..{a.high:g}" for a in cfg.axes)
    grid = " x ".join(str(a.n) for a in reversed(cfg.axes))
    lines = [
        f"{cfg.problem.where}, {cfg.optimizer.label}: {grid} cells ({axes}), "
        f"{cfg.problem.steps} steps each, in {result.seconds:.2f} s"
    ]
    best = result.best_cell()
    if best is None:
        lines.append("best cell: none (every cell diverged)")
    else:
        values = ", ".join(f"{k}={v:.4g}" for k, v in cfg.cell_values(best).items())
        reached = int(result.steps_to_target.ravel()[best])
        when = f" (reached the target at step {reached})" if reached >= 0 else ""
        lines.append(f"best cell: {values}: final loss {result.final_loss.ravel()[best]:.6g}{when}")
        lines += [f"warning: {edge.message}" for edge in best_on_edge(result)]
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
