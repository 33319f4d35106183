"""A playground challenge: reach f < target on a surface in the fewest steps.

The presenter poses a `Challenge` (a registered surface, its default
parameters and start, and a target loss). An attendee submits a playground
share link; `verify` rebuilds the run from the link, checks that it is the
challenge's problem, runs it in the engine and reads off, for each optimizer,
the first step whose loss is below the target. The server's numbers are the
only ones that count: a claim from the browser that differs is refused.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from optlab.links.playground import config_from_params
from optlab.surface.problem import Problem
from optlab.surface.run import DIVERGED, SurfaceRunConfig, run_surface
from optlab.surface.surfaces import CUSTOM, Point, get_surface
from optlab.surface.trajectory import Trajectory

#: The target a new challenge suggests (f < 1e-3, as in "reach the valley floor").
DEFAULT_TARGET = 1e-3
#: Verified runs kept: a class often submits the same link (the pushed setup), which
#: is then run once.
VERIFIED_RUNS = 256


@dataclass(frozen=True)
class Challenge:
    """Reach ``f < target`` on ``surface`` from its default start in the fewest steps.

    Attributes:
        surface: A registered surface key (not a typed formula: every attendee
            must be on the same surface, with its default parameters).
        target: The loss to get below; above the surface's known minimum.
        start: Where every run starts; None for the surface's default.

    Raises:
        ValueError: naming the bad field and value.
    """

    surface: str
    target: float = DEFAULT_TARGET
    start: Point | None = None

    def __post_init__(self) -> None:
        if self.surface == CUSTOM:
            raise ValueError("surface: a challenge is on a registered surface, not a formula")
        spec = get_surface(self.surface)
        if isinstance(self.target, bool) or not isinstance(self.target, int | float):
            raise ValueError(f"target: expected a number, got {self.target!r}")
        if not math.isfinite(self.target):
            raise ValueError(f"target: expected a finite number, got {self.target!r}")
        f_min = spec.f_min
        if f_min is not None and self.target <= f_min:
            raise ValueError(
                f"target: {spec.label}'s lowest value is {f_min:g}, so f < {self.target:g} "
                "cannot be reached; pick a larger target"
            )
        # The problem checks the start (finite, within the app's range).
        problem = Problem(self.surface, start=self.start)
        object.__setattr__(self, "target", float(self.target))
        object.__setattr__(self, "start", problem.start)

    @property
    def problem(self) -> Problem:
        """The challenge's problem (default parameters and bounds of the surface)."""
        return Problem(self.surface, start=self.start)

    @property
    def text(self) -> str:
        """The challenge in one line, as the room shows it."""
        label = get_surface(self.surface).label
        x, y = self.start or (0.0, 0.0)
        return (
            f"Reach f < {self.target:g} on {label} from ({x:g}, {y:g}) in the fewest steps, "
            "with any optimizer and settings"
        )


@dataclass(frozen=True)
class Result:
    """One optimizer's verified result.

    Attributes:
        optimizer: The optimizer's label (``Adam (lr=0.1)``).
        settings: Its share-link text (``adam:lr=0.1``), which rebuilds it.
        steps: The first step whose loss was below the target.
    """

    optimizer: str
    settings: str
    steps: int


def config_for(challenge: Challenge, params: Mapping[str, Sequence[str]]) -> SurfaceRunConfig:
    """The playground run a share link describes, checked to be the challenge's problem.

    Raises:
        ValueError: the link is malformed, or on another surface, parameters or start.
    """
    try:
        cfg = config_from_params(params)
    except ValueError as err:
        raise ValueError(f"this playground link could not be read ({err})") from None
    problem, wanted = cfg.problem, challenge.problem
    label = get_surface(challenge.surface).label
    if problem.surface != wanted.surface:
        raise ValueError(f"the challenge is on {label}; this run is on {problem.where}")
    if problem.surface_values != wanted.surface_values:
        raise ValueError(f"the challenge uses {label}'s default parameters; reset them")
    if problem.start != wanted.start:
        x, y = wanted.start
        raise ValueError(f"the challenge starts at ({x:g}, {y:g}); reset the start")
    return cfg


def first_steps(cfg: SurfaceRunConfig, target: float) -> list[int | None]:
    """Per optimizer, the first step whose loss is below ``target`` (None if never).

    Runs the first seed of ``cfg`` and stops as soon as every optimizer has
    reached the target or diverged, so a verification costs no more than the
    slowest optimizer's way to the target.
    """
    run = replace(cfg, problem=cfg.problem.seed_problems()[0])
    reached: list[int | None] = [None] * len(run.optimizers)
    open_ = set(range(len(run.optimizers)))
    records = run_surface(run)
    try:
        for record in records:
            if record.index not in open_:
                continue
            if record.status == DIVERGED:
                open_.discard(record.index)
            elif record.loss < target:
                reached[record.index] = record.step
                open_.discard(record.index)
            if not open_:
                break
    finally:
        records.close()
    return reached


@functools.lru_cache(maxsize=VERIFIED_RUNS)
def _first_steps_once(cfg: SurfaceRunConfig, target: float) -> tuple[int | None, ...]:
    return tuple(first_steps(cfg, target))


def verify(
    challenge: Challenge,
    params: Mapping[str, Sequence[str]],
    claimed: Mapping[str, int] | None = None,
) -> list[Result]:
    """The verified results of a submitted playground link.

    Args:
        challenge: The room's open challenge.
        params: The playground's share-link query (each key with its values).
        claimed: What the browser showed, by optimizer settings text; a claim
            the server's run does not confirm is refused.

    Returns:
        One result per optimizer that got below the target, in the link's order.

    Raises:
        ValueError: the link is not the challenge's problem, no optimizer reached
            the target, or a claim differs from the server's run.
    """
    cfg = config_for(challenge, params)
    steps = _first_steps_once(cfg, challenge.target)
    results = [
        Result(opt.label, opt.to_text(), step)
        for opt, step in zip(cfg.optimizers, steps, strict=True)
        if step is not None
    ]
    for settings, step in (claimed or {}).items():
        got = {r.settings: r.steps for r in results}.get(settings)
        if got != step:
            server = "never gets there" if got is None else f"gets there at step {got}"
            raise ValueError(
                f"{settings} was said to reach f < {challenge.target:g} at step {step}, "
                f"but the server's run {server}; nothing was submitted"
            )
    if not results:
        raise ValueError(
            f"no optimizer reached f < {challenge.target:g} in {cfg.problem.steps} steps; "
            "try other settings or more steps"
        )
    return results


def reached_in(trajectories: Sequence[Trajectory], target: float) -> dict[str, int]:
    """What a finished playground run shows: per optimizer (by settings text) that got
    below ``target``, the first step it did, read as `first_steps` reads a run (the
    record where a run diverged never counts)."""
    out: dict[str, int] = {}
    for traj in trajectories:
        counted = len(traj.step) - (1 if traj.status == DIVERGED else 0)
        for step, loss in zip(traj.step[:counted], traj.loss[:counted], strict=True):
            if loss < target:
                out.setdefault(traj.optimizer.to_text(), step)
                break
    return out
