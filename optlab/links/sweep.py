"""The sweeps page's share link: its mode, the problem, and each mode's settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from optlab.caps import MAX_EXACT_INT
from optlab.links.table import (
    LinkField,
    LinkTable,
    format_point,
    parse_float,
    parse_int,
    parse_point,
    parse_text,
    within,
)
from optlab.optim.config import OptimizerConfig
from optlab.optim.registry import choice_spec, choices
from optlab.surface.problem import MAX_STEPS
from optlab.surface.surfaces import CUSTOM, Point, get_surface
from optlab.sweep.batched import sweepable
from optlab.sweep.config import MAX_RESOLUTION, Axis
from optlab.sweep.run import COLOURABLE

SWEEP_MODES = ("sweep", "fair", "basins")
SEEDS = MAX_EXACT_INT
#: Optimizers one fair comparison races.
MAX_FAIR = 6


@dataclass(frozen=True)
class SweepLink:
    """What a sweeps-page link carries; None where the link says nothing (the page's
    own settings stay).

    Attributes:
        mode: ``sweep``, ``fair`` or ``basins``.
        surface, expr, start, steps, noise, seed: The problem every cell solves.
        optimizer: The swept optimizer with its fixed values (sweep and basins).
        x, y: The swept axes (sweep); in sweep mode with an optimizer, no ``y``
            means a 1-D sweep.
        metric: What the heatmap colours by (sweep).
        starts: Start points per side (basins).
        fair: The optimizers raced, as slot choices (fair).
        lr: Their shared learning-rate grid (fair).
    """

    mode: str = "sweep"
    surface: str = "rosenbrock"
    expr: str | None = None
    start: Point | None = None
    steps: int | None = None
    noise: float | None = None
    seed: int | None = None
    optimizer: OptimizerConfig | None = None
    x: Axis | None = None
    y: Axis | None = None
    metric: str | None = None
    starts: int | None = None
    fair: tuple[str, ...] | None = None
    lr: Axis | None = None


def _mode(text: str, what: str) -> str:
    if text not in SWEEP_MODES:
        raise ValueError(f"{what}: one of {', '.join(SWEEP_MODES)}, got {text!r}")
    return text


def _sweep_surface(text: str, what: str) -> str:
    key = text.strip().lower()
    if key != CUSTOM:
        get_surface(key)
    return key


def _sweep_optimizer(text: str, what: str) -> OptimizerConfig:
    opt = OptimizerConfig.from_text(text)
    if opt.key not in sweepable():
        raise ValueError(f"{what}: {opt.label} cannot be swept")
    return opt


def sweep_choices() -> dict[str, str]:
    """Slot choices (optimizers and presets) that have a batched twin: key -> label."""
    keys = set(sweepable())
    return {k: v for k, v in choices().items() if choice_spec(k).key in keys}


def _fair_choice(text: str, what: str) -> str:
    allowed = sweep_choices()
    if text not in allowed:
        raise ValueError(f"{what}: {text!r} cannot be swept (known: {', '.join(allowed)})")
    return text


def _axis(text: str, what: str) -> Axis:
    return Axis.from_text(text)


def _metric(text: str, what: str) -> str:
    if text not in {m.name for m in COLOURABLE}:
        raise ValueError(f"{what}: unknown {text!r}")
    return text


def _sweep(values: dict[str, Any]) -> SweepLink:
    fields = {
        "mode": "mode", "surface": "surface", "expr": "expr", "start": "start",
        "steps": "steps", "noise": "noise", "seed": "seed", "opt": "optimizer", "x": "x",
        "y": "y", "metric": "metric", "starts": "starts", "lr": "lr",
    }  # fmt: skip
    link = SweepLink(**{name: values[key] for key, name in fields.items() if key in values})
    return replace(link, fair=tuple(values["fair"])) if "fair" in values else link


def _when(mode: str, get: Callable[[SweepLink], Any]) -> Callable[[SweepLink], Any]:
    return lambda link: get(link) if link.mode == mode else None


#: The sweeps page's link: a `SweepLink`.
SWEEP: LinkTable[SweepLink] = LinkTable(
    page="sweep",
    fields=(
        LinkField("mode", "mode", _mode, str, lambda k: k.mode),
        LinkField("surface", "surface", _sweep_surface, str, lambda k: k.surface),
        LinkField("expr", "expr", parse_text, str, lambda k: k.expr),
        LinkField("start", "start", parse_point, format_point, lambda k: k.start),
        LinkField("steps", "steps", parse_int, str, lambda k: k.steps, check=within(1, MAX_STEPS)),
        LinkField("noise", "noise", parse_float, repr, lambda k: k.noise, check=within(0.0, None)),
        LinkField(
            "seed",
            "seed",
            parse_int,
            str,
            lambda k: k.seed,
            check=within(0, MAX_EXACT_INT),
        ),
        LinkField(
            "fair",
            "fair",
            _fair_choice,
            str,
            _when("fair", lambda k: k.fair),
            many=True,
            most=MAX_FAIR,
        ),
        LinkField("lr", "lr", _axis, Axis.to_text, _when("fair", lambda k: k.lr)),
        LinkField(
            "opt",
            "optimizer",
            _sweep_optimizer,
            OptimizerConfig.to_text,
            lambda k: k.optimizer if k.mode != "fair" else None,
        ),
        LinkField(
            "starts",
            "starts",
            parse_int,
            str,
            _when("basins", lambda k: k.starts),
            check=within(2, MAX_RESOLUTION),
        ),
        LinkField("x", "x", _axis, Axis.to_text, _when("sweep", lambda k: k.x)),
        LinkField("y", "y", _axis, Axis.to_text, _when("sweep", lambda k: k.y)),
        LinkField("metric", "metric", _metric, str, _when("sweep", lambda k: k.metric)),
    ),
    build=_sweep,
)
