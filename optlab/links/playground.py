"""The playground's share link: a `SurfaceRunConfig`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from optlab.links.table import (
    PER_OPTIMIZER,
    LinkField,
    LinkTable,
    Params,
    format_bounds,
    format_point,
    parse_bounds,
    parse_float,
    parse_int,
    parse_key,
    parse_point,
    parse_surface_values,
    parse_text,
)
from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Plan
from optlab.surface.problem import Problem
from optlab.surface.run import MAX_OPTIMIZERS, SurfaceRunConfig
from optlab.surface.surfaces import CUSTOM, SURFACES, Bounds, get_surface


def _surface_values(cfg: SurfaceRunConfig) -> list[str] | None:
    """The surface's parameters that differ from its defaults, as ``name=value``."""
    problem = cfg.problem
    if problem.surface == CUSTOM:
        return None
    spec = get_surface(problem.surface)
    changed = [
        f"{name}={value!r}"
        for (name, value), hp in zip(problem.surface_values, spec.params, strict=True)
        if value != hp.default
    ]
    return changed or None


def _own_bounds(cfg: SurfaceRunConfig) -> Bounds | None:
    """The bounds, unless they are the registered surface's own."""
    problem = cfg.problem
    if problem.surface != CUSTOM and problem.bounds == get_surface(problem.surface).bounds:
        return None
    return problem.bounds


def _bounds(text: str, what: str) -> Bounds:
    return parse_bounds(text)


def _playground(values: dict[str, Any], default_optimizers: tuple[OptimizerConfig, ...] = ()):
    optimizers = tuple(values.get("opt", ())) or default_optimizers
    if not optimizers:
        raise ValueError("opt: the link names no optimizer")
    plans = tuple(values.get("plan", ()))
    if plans and len(plans) != len(optimizers):
        raise ValueError(
            f"plan: one per optimizer, the link has {len(plans)} for {len(optimizers)}"
        )
    surface = values.get("surface", "rosenbrock")
    given = {k: values[k] for k in ("steps", "noise", "seed", "seeds") if k in values}
    problem = Problem(
        surface=surface,
        surface_values=parse_surface_values(surface, values.get("sp", ())),
        expr=values.get("expr"),
        bounds=values.get("bounds"),
        start=values.get("start"),
        **given,
    )
    return SurfaceRunConfig(optimizers, problem, plans)


#: The most parameters any surface has: a link's ``sp`` values are counted before they are read.
MOST_SURFACE_PARAMETERS = max(len(spec.params) for spec in SURFACES)

#: The home page's link: a `SurfaceRunConfig`.
PLAYGROUND: LinkTable[SurfaceRunConfig] = LinkTable(
    page=None,
    fields=(
        LinkField("surface", "problem.surface", parse_key, str, lambda c: c.problem.surface),
        LinkField(
            "sp",
            "problem.surface_values",
            parse_text,
            str,
            _surface_values,
            many=True,
            most=MOST_SURFACE_PARAMETERS,
            counted="surface parameters",
        ),
        LinkField(
            "expr",
            "problem.expr",
            parse_text,
            str,
            lambda c: (c.problem.expr or "") if c.problem.surface == CUSTOM else None,
        ),
        LinkField(
            "bounds", "problem.bounds", lambda t, w: parse_bounds(t), format_bounds, _own_bounds
        ),
        LinkField("start", "problem.start", parse_point, format_point, lambda c: c.problem.start),
        LinkField("steps", "problem.steps", parse_int, str, lambda c: c.problem.steps),
        LinkField("noise", "problem.noise", parse_float, repr, lambda c: c.problem.noise),
        LinkField("seed", "problem.seed", parse_int, str, lambda c: c.problem.seed),
        LinkField(
            "seeds",
            "problem.seeds",
            parse_int,
            str,
            lambda c: c.problem.seeds if c.problem.seeds > 1 else None,
        ),
        LinkField(
            "opt",
            "optimizers",
            lambda t, w: OptimizerConfig.from_text(t),
            OptimizerConfig.to_text,
            lambda c: c.optimizers,
            many=True,
            most=MAX_OPTIMIZERS,
        ),
        LinkField(
            "plan",
            "plans",
            lambda t, w: Plan.from_text(t),
            Plan.to_text,
            lambda c: c.plans or None,
            many=True,
            most=MAX_OPTIMIZERS,
            counted=PER_OPTIMIZER,
        ),
    ),
    build=_playground,
)
#: The playground's query keys: a link with any of them (and no ``page``) is one of its.
KNOWN_KEYS = PLAYGROUND.keys


def config_to_params(cfg: SurfaceRunConfig) -> Params:
    """The playground's share-link query parameters that reproduce ``cfg``."""
    return PLAYGROUND.to_params(cfg)


def config_from_params(
    params: Mapping[str, Sequence[str]],
    default_optimizers: tuple[OptimizerConfig, ...] = (),
) -> SurfaceRunConfig:
    """Rebuilds a playground config from query parameters (each key maps to its values).

    A link without ``opt`` uses ``default_optimizers`` (``?surface=beale``
    shows the usual comparison on Beale) when there are any.

    Raises:
        ValueError: naming the first bad parameter.
    """
    return _playground(PLAYGROUND.read(params), default_optimizers)
