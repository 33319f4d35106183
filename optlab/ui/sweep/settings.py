"""The sweeps page's session state: widget keys, defaults, and its share link.

Session keys all start with ``sw_``; the optimizer is a one-slot `SlotGroup`
like the playground's, offering only optimizers with a batched twin. The
share link (`optlab.links.SWEEP`) is read into a `SweepLink` and written
into these keys, and made from them.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import replace
from typing import Any

from optlab.caps import CAPS
from optlab.links.sweep import SWEEP as SWEEP_LINK
from optlab.links.sweep import SweepLink
from optlab.links.table import Params
from optlab.optim.config import OptimizerConfig
from optlab.surface.problem import Problem
from optlab.surface.surfaces import CUSTOM, get_surface
from optlab.sweep.config import Axis
from optlab.ui.reconnect import keep_sent_numbers
from optlab.ui.slots import SlotGroup

State = MutableMapping[str, Any]
SLOT = SlotGroup("sw_", 1)
MODE, SURFACE, EXPR = "sw_mode", "sw_surface", "sw_expr"
START_X, START_Y, STEPS, NOISE, SEED = "sw_start_x", "sw_start_y", "sw_steps", "sw_noise", "sw_seed"
METRIC, BASIN_N = "sw_metric", "sw_basin_n"
FAIR_OPTS, FAIR_LOW, FAIR_HIGH, FAIR_N = "sw_fair_opts", "sw_fair_low", "sw_fair_high", "sw_fair_n"
SWEEP, FAIR, BASINS = "sweep", "fair", "basins"
MODES = {SWEEP: "Sweep", FAIR: "Fair comparison", BASINS: "Basins map"}
NONE = "none"
#: Steps of one sweep's runs, at most (the server's cap on a 2-D run's steps).
MAX_STEPS = CAPS.surface_steps
LINK_WARNING = "sw_link_warning"


def write_axis(state: State, which: str, axis: Axis | None) -> None:
    """Writes an axis into its widget keys (``None``: no second axis)."""
    state[f"sw_{which}_name"] = NONE if axis is None else axis.name
    if axis is not None:
        state[f"sw_{which}_low"] = float(axis.low)
        state[f"sw_{which}_high"] = float(axis.high)
        state[f"sw_{which}_scale"] = axis.scale
        state[f"sw_{which}_n"] = axis.n


def read_axis(state: State, which: str) -> Axis | None:
    """The axis the widgets hold (validated), or None."""
    name = state[f"sw_{which}_name"]
    if name == NONE:
        return None
    return Axis(
        name,
        float(state[f"sw_{which}_low"]),
        float(state[f"sw_{which}_high"]),
        int(state[f"sw_{which}_n"]),
        state[f"sw_{which}_scale"],
    )


def apply_surface_defaults(state: State) -> None:
    """Moves the start to the chosen surface's own."""
    key = state[SURFACE]
    start = (0.0, 0.0) if key == CUSTOM else get_surface(key).start
    state[START_X], state[START_Y] = float(start[0]), float(start[1])


def initialise(state: State, params: dict[str, list[str]] | None = None) -> None:
    """First visit: a sweep share link's settings, else SGD over (lr, momentum) on
    Rosenbrock. A bad link leaves a warning and the defaults."""
    if state.get("sw_initialised"):
        return
    _defaults(state)
    if params and params.get("page") == ["sweep"]:
        try:
            apply_link(state, SWEEP_LINK.from_params(params))
        except ValueError as err:
            state[LINK_WARNING] = f"This link could not be used ({err}); showing the defaults."
    keep_sent_numbers(state)


def _defaults(state: State) -> None:
    state[MODE] = SWEEP
    state[SURFACE] = "rosenbrock"
    state[EXPR] = "x**2 + 10*y**2 + 3*sin(3*x)"
    apply_surface_defaults(state)
    state[STEPS], state[NOISE], state[SEED] = 300, 0.0, 0
    opt = OptimizerConfig.create("sgd", momentum=0.9)
    state[SLOT.slots_key] = [0]  # the page's one slot is always slot 0
    SLOT.write(state, 0, opt)
    write_axis(state, "x", Axis("lr", 1e-5, 1e-2, 50, "log"))
    write_axis(state, "y", Axis("momentum", 0.0, 0.99, 50, "lin"))
    state[METRIC] = "final_loss"
    state[BASIN_N] = 60
    state[FAIR_OPTS] = ["sgd_momentum", "adam", "rmsprop"]
    state[FAIR_LOW], state[FAIR_HIGH], state[FAIR_N] = 1e-5, 1.0, 31
    state["sw_initialised"] = True


def problem(state: State) -> Problem:
    """The problem the widgets hold (validated).

    Raises:
        ValueError: naming the bad setting.
    """
    key = state[SURFACE]
    return Problem(
        surface=key,
        expr=state[EXPR] if key == CUSTOM else None,
        start=(float(state[START_X]), float(state[START_Y])),
        steps=int(state[STEPS]),
        noise=float(state[NOISE]),
        seed=int(state[SEED]),
    )


def lr_axis(state: State) -> Axis:
    """The fair comparison's shared lr grid."""
    return Axis("lr", float(state[FAIR_LOW]), float(state[FAIR_HIGH]), int(state[FAIR_N]), "log")


def basin_axes(
    state: State, bounds: tuple[tuple[float, float], tuple[float, float]]
) -> tuple[Axis, Axis]:
    """Start-point axes over the surface's bounds."""
    (x0, x1), (y0, y1) = bounds
    n = int(state[BASIN_N])
    return Axis("start_x", float(x0), float(x1), n), Axis("start_y", float(y0), float(y1), n)


def link(state: State) -> SweepLink:
    """What the page's share link carries: the mode's settings as the widgets hold them.

    Raises:
        ValueError: a setting that does not parse (the URL keeps the last good link).
    """
    mode = state[MODE]
    custom = state[SURFACE] == CUSTOM
    common = SweepLink(
        mode=mode,
        surface=state[SURFACE],
        expr=state[EXPR] if custom else None,
        start=(float(state[START_X]), float(state[START_Y])),
        steps=int(state[STEPS]),
        noise=float(state[NOISE]),
        seed=int(state[SEED]),
    )
    if mode == FAIR:
        return replace(common, fair=tuple(state[FAIR_OPTS]), lr=lr_axis(state))
    optimizer = SLOT.read(state, 0)
    if mode == BASINS:
        return replace(common, optimizer=optimizer, starts=int(state[BASIN_N]))
    x, y = read_axis(state, "x"), read_axis(state, "y")
    return replace(common, optimizer=optimizer, x=x, y=y, metric=state[METRIC])


def share_params(state: State) -> Params:
    """The sweeps page's settings as share-link query parameters."""
    return SWEEP_LINK.to_params(link(state))


def apply_link(state: State, found: SweepLink) -> None:
    """Writes what a share link carries into the widget keys (first visit only)."""
    state[MODE] = found.mode
    state[SURFACE] = found.surface
    if found.surface == CUSTOM:
        state[EXPR] = found.expr or ""
    if found.start is not None:
        state[START_X], state[START_Y] = found.start
    else:
        apply_surface_defaults(state)
    for key, value in ((STEPS, found.steps), (NOISE, found.noise), (SEED, found.seed)):
        if value is not None:
            state[key] = value
    if found.starts is not None:
        state[BASIN_N] = found.starts
    if found.fair is not None:
        state[FAIR_OPTS] = list(found.fair)
    if found.lr is not None:
        state[FAIR_LOW], state[FAIR_HIGH], state[FAIR_N] = found.lr.low, found.lr.high, found.lr.n
    if found.optimizer is not None:
        SLOT.write(state, 0, found.optimizer)
    if found.x is not None:
        write_axis(state, "x", found.x)
    if found.y is not None or (found.optimizer is not None and found.mode == SWEEP):
        write_axis(state, "y", found.y)  # a sweep link without y: a 1-D sweep
    if found.metric is not None:
        state[METRIC] = found.metric


def steps_note(steps: int, cells: int) -> str:
    """A caption on the size of the work."""
    return f"{cells:,} configurations × {steps:,} steps = {cells * steps / 1e6:.3g} million steps"
