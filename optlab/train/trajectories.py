"""Optimizers' paths through a CNN's weights, on a plane of its loss landscape.

The one API the ``landscape`` command and the CNN page share. Its input is what
a training run with snapshots leaves (`optlab.train.snapshots`): the model key,
the optimizers' names, the snapshot steps (0, K, 2K, … and the latest) and,
per optimizer, its flattened weights at those steps; plus an evaluation batch
(`evaluation_images`: the first M training images in file order, normalised as
in training). Then:

- `build_plane`: the ``endpoints``, ``pca`` or ``random`` plane
  (`optlab.train.planes`) through those paths; θ₀ is snapshot 0, shared by
  every optimizer;
- `project_runs`: each path's coordinates (a, b) on it and the residual of each
  point (cheap: a page calls it at every poll);
- `landscape_passes`: the loss over a G×G grid spanning the paths, coarse
  (7×7) first and then full, the straight lines θ₀ → each optimizer's latest
  weights and between the first two optimizers' (Goodfellow et al. 2015), and
  the true loss at every snapshot; it reports progress and can be cancelled
  between chunks;
- `LandscapeResult.to_json`: the ``landscape`` command's JSON.

The loss is the mean cross-entropy of the model in eval mode on the
evaluation batch (`optlab.train.landscape`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from optlab.files import finite_or_none
from optlab.train.config import TrainRunConfig
from optlab.train.data import LoadedData, first_images
from optlab.train.landscape import (
    COARSE_RESOLUTION,
    MAX_IMAGES,
    MAX_RESOLUTION,
    Evaluation,
    LandscapeGrid,
    batched_losses,
    grid_losses,
    line_losses,
)
from optlab.train.models import build_model
from optlab.train.planes import (
    MARGIN,
    PLANE_KINDS,
    Plane,
    PlaneKind,
    endpoints_plane,
    fit_ranges,
    pca_plane,
    project,
    random_plane,
)

#: The name of the shared initial weights θ₀ in `LossLine` ends.
INITIAL = "initial"
#: Default evaluation images of a landscape, and points of a loss line.
EVAL_IMAGES = 1024
LINE_POINTS = 21
#: Per optimizer: a ``(n_snapshots, n_params)`` tensor, or one flat tensor per
#: snapshot (`optlab.train.snapshots.SnapshotView.rows`).
Weights = Tensor | Sequence[Tensor]
#: ``on_progress(done, total)``: weight vectors evaluated so far, of all.
OnProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class LandscapeSettings:
    """What landscape to compute.

    Attributes:
        plane: ``endpoints`` (needs two optimizers), ``pca`` or ``random``.
        grid: G, points per axis, in [2, ``CAPS.landscape_resolution``].
        span: None: the grid spans every path and θ₀ with ``margin`` on each
            side (``random``: a, b in [-1, 1], as Li et al. draw it); a number
            S: the grid is [-S, S]² around the plane's origin.
        margin: The share of the paths' extent added on each side (auto span).
        seed: The ``random`` plane's seed.
        anchor: The optimizer (index) whose latest weights a ``random`` plane is
            centred on.
        line_points: Points of each loss line, t evenly spaced in [0, 1].
    """

    plane: PlaneKind = "endpoints"
    grid: int = 25
    span: float | None = None
    margin: float = MARGIN
    seed: int = 0
    anchor: int = 0
    line_points: int = LINE_POINTS

    def __post_init__(self) -> None:
        if self.plane not in PLANE_KINDS:
            raise ValueError(f"plane: must be one of {', '.join(PLANE_KINDS)}, got {self.plane!r}")
        _check_int("grid", self.grid, 2, MAX_RESOLUTION)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_int("anchor", self.anchor, 0, 1000)
        _check_int("line_points", self.line_points, 2, MAX_RESOLUTION)
        if self.span is not None and not (
            isinstance(self.span, int | float)
            and not isinstance(self.span, bool)
            and math.isfinite(self.span)
            and self.span > 0
        ):
            raise ValueError(f"span: must be a positive number, got {self.span!r}")
        if not (isinstance(self.margin, int | float) and 0 <= self.margin <= 10):
            raise ValueError(f"margin: must be a number in [0, 10], got {self.margin!r}")


@dataclass(frozen=True)
class RunPath:
    """One optimizer's path on a plane.

    Attributes:
        optimizer: Its name.
        steps: The snapshot steps.
        a: The coordinate along e₁ of each snapshot.
        b: Along e₂.
        residual: ``‖θ − θ₀ − a·e₁ − b·e₂‖ / ‖θ − θ₀‖`` of each (0 at θ₀; NaN
            for non-finite weights).
        loss: The true loss of each snapshot on the evaluation batch (None until
            `landscape_passes` computed it).
    """

    optimizer: str
    steps: tuple[int, ...]
    a: tuple[float, ...]
    b: tuple[float, ...]
    residual: tuple[float, ...]
    loss: tuple[float, ...] | None = None

    def to_json(self) -> dict:
        """JSON-safe numbers (NaN and infinities as None)."""
        return {
            "optimizer": self.optimizer,
            "steps": list(self.steps),
            "a": _numbers(self.a),
            "b": _numbers(self.b),
            "loss": None if self.loss is None else _numbers(self.loss),
            "residual": _numbers(self.residual),
        }


@dataclass(frozen=True)
class LossLine:
    """The loss along ``(1 − t)·θ_from + t·θ_to``.

    Attributes:
        start: Where t = 0: `INITIAL` (θ₀) or an optimizer's name (its latest weights).
        end: Where t = 1: an optimizer's name.
        t: The positions.
        loss: The loss at each.
    """

    start: str
    end: str
    t: tuple[float, ...]
    loss: tuple[float, ...]

    def to_json(self) -> dict:
        return {"from": self.start, "to": self.end, "t": list(self.t), "loss": _numbers(self.loss)}


@dataclass(frozen=True, eq=False)
class LandscapeResult:
    """A landscape with the paths on it.

    Attributes:
        plane: The plane.
        grid: The loss over the grid (7×7 in the coarse result).
        runs: Every optimizer's path (with ``loss`` in the complete result).
        lines: The loss lines (empty in the coarse result).
        complete: False for the coarse pass, True for the full one.
    """

    plane: Plane
    grid: LandscapeGrid
    runs: tuple[RunPath, ...]
    lines: tuple[LossLine, ...]
    complete: bool

    @property
    def eval_images(self) -> int:
        """The number of evaluation images."""
        return self.grid.images

    def to_json(self) -> dict:
        """The ``landscape`` command's JSON: ``plane``, ``eval_images``, ``a``, ``b``,
        ``loss`` (indexed ``[b][a]``), ``lines`` and ``runs``."""
        plane: dict = {"kind": self.plane.kind, "optimizers": list(self.plane.optimizers)}
        if self.plane.explained is not None:
            plane["explained"] = list(self.plane.explained)
        if self.plane.seed is not None:
            plane["seed"] = self.plane.seed
        return {
            "plane": plane,
            "eval_images": self.eval_images,
            "a": self.grid.a.tolist(),
            "b": self.grid.b.tolist(),
            "loss": [_numbers(row) for row in self.grid.loss.tolist()],
            "lines": [line.to_json() for line in self.lines],
            "runs": [run.to_json() for run in self.runs],
        }


def evaluation_images(
    data: LoadedData, cfg: TrainRunConfig, m: int, what: str = "eval images"
) -> tuple[Tensor, Tensor]:
    """The first ``m`` training images of a run in file order, normalised as in
    training, and their labels: the evaluation batch of its landscape.

    Raises:
        ValueError: ``m`` below 1, beyond ``CAPS.landscape_images``, or beyond the
            run's training images.
    """
    if isinstance(m, int) and not isinstance(m, bool) and m > MAX_IMAGES:
        raise ValueError(f"{what}: at most {MAX_IMAGES} (CAPS.landscape_images), got {m}")
    train = data.train.head(cfg.train_limit)
    return first_images(train.images, train.labels, m, what)


def build_plane(
    kind: PlaneKind,
    model_key: str,
    names: Sequence[str],
    weights: Sequence[Weights],
    seed: int = 0,
    anchor: int = 0,
) -> Plane:
    """The plane of ``kind`` through the optimizers' paths.

    θ₀ is the first optimizer's snapshot 0 (every optimizer starts there).
    ``endpoints``: through θ₀ and the first two optimizers' latest weights;
    ``pca``: through θ₀ along the top two principal directions of every
    snapshot; ``random``: filter-normalised random directions (``seed``) around
    optimizer ``anchor``'s latest weights.

    Raises:
        ValueError: names and weights that do not match, an endpoints plane with
            fewer than two optimizers, a degenerate plane, or non-finite weights.
    """
    _check_runs(names, weights)
    if kind not in PLANE_KINDS:
        raise ValueError(f"plane: must be one of {', '.join(PLANE_KINDS)}, got {kind!r}")
    theta0 = _row(weights[0], 0)
    if kind == "endpoints":
        if len(names) < 2:
            raise ValueError(
                f"plane endpoints: needs two optimizers, the run has one ({names[0]}); "
                "use --plane pca or random"
            )
        latest = {name: _row(w, -1) for name, w in zip(names[:2], weights[:2], strict=True)}
        return endpoints_plane(theta0, latest)
    if kind == "pca":
        return pca_plane(theta0, {n: _matrix(w) for n, w in zip(names, weights, strict=True)})
    if not 0 <= anchor < len(names):
        raise ValueError(f"anchor: optimizer {anchor} is not one of the {len(names)}")
    return random_plane(build_model(model_key, 0), _row(weights[anchor], -1), seed, names[anchor])


def project_runs(
    plane: Plane,
    steps: Sequence[int],
    weights: Sequence[Weights],
    names: Sequence[str] | None = None,
) -> tuple[RunPath, ...]:
    """Each optimizer's snapshots projected on ``plane`` (`optlab.train.planes.project`).

    Args:
        plane: The plane.
        steps: The snapshot steps, one per row of each optimizer's weights.
        weights: Per optimizer, its snapshots.
        names: The optimizers' names (default ``optimizer 1``, …).
    """
    names = (
        list(names) if names is not None else [f"optimizer {i + 1}" for i in range(len(weights))]
    )
    _check_runs(names, weights)
    runs = []
    for name, w in zip(names, weights, strict=True):
        if len(w) != len(steps):
            raise ValueError(f"{name}: {len(w)} snapshots for {len(steps)} steps")
        projection = project(plane, _matrix(w))
        runs.append(
            RunPath(
                name,
                tuple(int(s) for s in steps),
                tuple(projection.a.tolist()),
                tuple(projection.b.tolist()),
                tuple(projection.residual.tolist()),
            )
        )
    return tuple(runs)


def plane_ranges(
    plane: Plane, runs: Sequence[RunPath], span: float | None = None, margin: float = MARGIN
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The grid's ``(a0, a1), (b0, b1)``: see `LandscapeSettings.span`."""
    if span is not None:
        return (-span, span), (-span, span)
    if plane.kind == "random":
        return (-1.0, 1.0), (-1.0, 1.0)
    a = [v for run in runs for v in run.a]
    b = [v for run in runs for v in run.b]
    return fit_ranges(a, b, margin)


class _Stopped(Exception):
    """Raised from a progress callback to abandon a computation between chunks."""


def landscape_passes(
    model_key: str,
    names: Sequence[str],
    steps: Sequence[int],
    weights: Sequence[Weights],
    images: Tensor,
    labels: Tensor,
    settings: LandscapeSettings | None = None,
    on_progress: OnProgress | None = None,
    should_stop: Callable[[], bool] | None = None,
    device: torch.device | str = "cpu",
    evaluation: Evaluation | None = None,
) -> Iterator[LandscapeResult]:
    """Coarse to fine: yields the landscape after a 7×7 pass, then after the full one.

    The first result has the coarse grid and the projected paths (no losses of
    the paths, no lines); the second the G×G grid, the loss lines and every
    snapshot's loss. With G ≤ 7 only the complete result is yielded. The plane,
    the paths and the ranges are computed (and checked) on the first ``next()``.

    Args:
        model_key: The registered model the weights belong to.
        names: The optimizers' names, in the run's order.
        steps: The snapshot steps (0 first).
        weights: Per optimizer, its snapshots at ``steps``.
        images: The evaluation batch (`evaluation_images`).
        labels: Its classes.
        settings: Plane, grid and span (default: `LandscapeSettings`'s defaults).
        on_progress: Called with ``(done, total)`` weight vectors after each chunk.
        should_stop: Checked after each chunk; when it returns True the generator
            stops (no further result).
        device: Where to evaluate.
        evaluation: How (`optlab.train.landscape.Evaluation`; default: its defaults).

    Raises:
        ValueError: bad input (see `build_plane`, `project_runs`), naming it.
    """
    settings = settings if settings is not None else LandscapeSettings()
    if not steps or steps[0] != 0:
        raise ValueError("snapshots: the first one must be at step 0 (the initial weights)")
    plane = build_plane(settings.plane, model_key, names, weights, settings.seed, settings.anchor)
    runs = project_runs(plane, steps, weights, names)
    a_range, b_range = plane_ranges(plane, runs, settings.span, settings.margin)
    device = torch.device(device)
    evaluation = evaluation if evaluation is not None else Evaluation()
    model = build_model(model_key, 0).to(device)
    plane_on = Plane(
        plane.kind,
        plane.origin.to(device),
        plane.e1.to(device),
        plane.e2.to(device),
        plane.optimizers,
        plane.explained,
        plane.seed,
    )
    x, y = images.to(device), labels.to(device)
    g = settings.grid
    passes = (COARSE_RESOLUTION, g) if g > COARSE_RESOLUTION else (g,)
    ends = [(INITIAL, name) for name in names]
    if len(names) >= 2:
        ends.append((names[0], names[1]))
    total = sum(p * p for p in passes) + len(ends) * settings.line_points
    total += len(steps) * len(names)
    done = 0

    def progress(offset: int) -> Callable[[int, int], None]:
        def report(count: int, _: int) -> None:
            if on_progress is not None:
                on_progress(offset + count, total)
            if should_stop is not None and should_stop():
                raise _Stopped

        return report

    try:
        for size in passes:
            grid = grid_losses(
                model, plane_on, a_range, b_range, size, x, y, evaluation, progress(done)
            )
            done += size * size
            if size != g:
                yield LandscapeResult(plane, grid, runs, (), complete=False)
        t = np.linspace(0.0, 1.0, settings.line_points)
        latest = {name: _row(w, -1) for name, w in zip(names, weights, strict=True)}
        latest[INITIAL] = _row(weights[0], 0)
        lines = []
        for start, end in ends:
            loss = line_losses(model, latest[start].to(device), latest[end].to(device), t, x, y)
            done += len(t)
            progress(done)(0, total)
            lines.append(LossLine(start, end, tuple(t.tolist()), tuple(loss.tolist())))
        with_loss = []
        for run, w in zip(runs, weights, strict=True):
            loss = batched_losses(model, _matrix(w).to(device), x, y, evaluation, progress(done))
            done += len(run.steps)
            with_loss.append(
                RunPath(run.optimizer, run.steps, run.a, run.b, run.residual, tuple(loss.tolist()))
            )
    except _Stopped:
        return
    yield LandscapeResult(plane, grid, tuple(with_loss), tuple(lines), complete=True)


def _check_runs(names: Sequence[str], weights: Sequence[Weights]) -> None:
    if not names:
        raise ValueError("optimizers: none given")
    if len(names) != len(weights):
        raise ValueError(f"optimizers: {len(names)} names for {len(weights)} weight sets")
    if len(set(names)) != len(names):
        raise ValueError(f"optimizers: names must differ, got {list(names)}")
    for name, w in zip(names, weights, strict=True):
        if len(w) == 0:
            raise ValueError(f"{name}: no snapshots")


def _row(weights: Weights, index: int) -> Tensor:
    return weights[index].to(torch.float32)


def _matrix(weights: Weights) -> Tensor:
    if isinstance(weights, Tensor):
        return weights if weights.dim() == 2 else weights.reshape(1, -1)
    return torch.stack(list(weights))


def _numbers(values: Sequence[float]) -> list[float | None]:
    return [finite_or_none(float(v)) for v in values]


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}: must be a whole number in [{low}, {high}], got {value!r}")
