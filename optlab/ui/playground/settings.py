"""The playground's session state: widget keys <-> `SurfaceRunConfig`, and its share link.

The widgets own the state: every setting lives in `st.session_state` under a
key defined here. `config_from_state` reads those keys into a validated
`SurfaceRunConfig`; `apply_config` writes a config back into them (used by
share links and the defaults); the URL always mirrors the current config.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import streamlit as st

from optlab.links.playground import KNOWN_KEYS, config_from_params, config_to_params
from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import STEP_EXAMPLE
from optlab.surface.problem import Problem, resolve_surface
from optlab.surface.run import MAX_OPTIMIZERS, SurfaceRunConfig
from optlab.surface.surfaces import CUSTOM, FORMULA_BOUNDS, Bounds, get_surface
from optlab.ui.address_bar import link_params, mirror_url
from optlab.ui.reconnect import keep_sent_numbers
from optlab.ui.slots import SlotGroup

State = MutableMapping[str, Any]

SURFACE, EXPR, STEPS, NOISE, SEED = "surface", "expr", "steps", "noise", "seed"
SEEDS = "seeds"
START_X, START_Y = "start_x", "start_y"
BOUNDS = ("bounds_x0", "bounds_x1", "bounds_y0", "bounds_y1")
#: The playground's optimizer slots (keys ``slots``, ``slot0_choice``, ``slot0_lr``...).
SLOTS = SlotGroup("", MAX_OPTIMIZERS, change_example=STEP_EXAMPLE)
INITIALISED, SHARE_WARNING = "initialised", "share_warning"
#: The last comparison that was valid: shown, with the error, while a setting is bad.
LAST_GOOD = "last_good_config"
CUSTOM_DEFAULT_EXPR = "x**2 + 10*y**2 + 3*sin(3*x)"


def default_config() -> SurfaceRunConfig:
    """First load: Rosenbrock, SGD + momentum vs Adam vs RMSprop."""
    return SurfaceRunConfig(
        optimizers=(
            OptimizerConfig.create("sgd_momentum", lr=1e-3),
            OptimizerConfig.create("adam", lr=0.1),
            OptimizerConfig.create("rmsprop", lr=0.01),
        ),
        problem=Problem("rosenbrock", steps=500),
    )


def _write_bounds(state: State, bounds: Bounds) -> None:
    for key, value in zip(BOUNDS, (v for pair in bounds for v in pair), strict=True):
        state[key] = float(value)


def read_bounds(state: State) -> Bounds:
    """The bounds the widgets hold."""
    x0, x1, y0, y1 = (float(state[k]) for k in BOUNDS)
    return ((x0, x1), (y0, y1))


def apply_surface_defaults(state: State, key: str) -> None:
    """Moves bounds, start and parameters to the chosen surface's defaults."""
    if key == CUSTOM:
        state.setdefault(EXPR, CUSTOM_DEFAULT_EXPR)
        _write_bounds(state, FORMULA_BOUNDS)
        apply_formula_start(state)
        return
    surface = get_surface(key)
    _write_bounds(state, surface.bounds)
    state[START_X], state[START_Y] = surface.start
    for hp in surface.params:
        state[f"sp_{hp.name}"] = float(hp.default)


def apply_formula_start(state: State) -> None:
    """Moves the start to the engine's default for the typed formula.

    That start lies where the formula is defined (``sqrt(x)`` starts at x >= 0);
    a formula that does not parse leaves the start alone (its error is shown).
    """
    try:
        surface = resolve_surface(CUSTOM, (), state.get(EXPR), read_bounds(state))
    except ValueError:
        return
    state[START_X], state[START_Y] = surface.start


def apply_config(state: State, cfg: SurfaceRunConfig) -> None:
    """Writes a whole config into the widget keys (replacing all slots)."""
    SLOTS.clear(state)
    state[SURFACE] = cfg.problem.surface
    if cfg.problem.surface == CUSTOM:
        state[EXPR] = cfg.problem.expr
    _write_bounds(state, cfg.problem.bounds)
    for name, value in cfg.problem.surface_values:
        state[f"sp_{name}"] = float(value)
    state[START_X], state[START_Y] = cfg.problem.start
    state[STEPS], state[NOISE], state[SEED] = cfg.problem.steps, cfg.problem.noise, cfg.problem.seed
    state[SEEDS] = cfg.problem.seeds
    for i, opt in enumerate(cfg.optimizers):
        SLOTS.write_plan(state, SLOTS.add(state, opt), cfg.plan(i))


def config_from_state(state: State) -> SurfaceRunConfig:
    """Reads every widget into one validated run config.

    Raises:
        ValueError: naming the bad setting.
    """
    key = state[SURFACE]
    custom = key == CUSTOM
    values = (
        ()
        if custom
        else tuple((hp.name, float(state[f"sp_{hp.name}"])) for hp in get_surface(key).params)
    )
    return SurfaceRunConfig(
        optimizers=tuple(SLOTS.read(state, slot) for slot in SLOTS.ids(state)),
        plans=tuple(SLOTS.read_plan(state, slot) for slot in SLOTS.ids(state)),
        problem=Problem(
            surface=key,
            surface_values=values,
            expr=state.get(EXPR) if custom else None,
            bounds=read_bounds(state),
            start=(float(state[START_X]), float(state[START_Y])),
            steps=int(state[STEPS]),
            noise=float(state[NOISE]),
            seed=int(state[SEED]),
            seeds=int(state.get(SEEDS, 1)),
        ),
    )


def initialise() -> None:
    """On a session's first run: state from the share link, else the defaults.

    A malformed or hostile link leaves a warning for the page to show and
    falls back to the defaults.
    """
    state = st.session_state
    if state.get(INITIALISED):
        return
    cfg = default_config()
    params = link_params()
    if "page" not in params and any(k in KNOWN_KEYS for k in params):
        try:
            cfg = config_from_params(params, default_optimizers=cfg.optimizers)
        except ValueError as err:
            state[SHARE_WARNING] = f"This link could not be used ({err}); showing the defaults."
    apply_config(state, cfg)
    keep_sent_numbers(state)
    state[INITIALISED] = True


def reset_to_defaults() -> None:
    """The reset button's callback: the first visit's comparison, every setting."""
    apply_config(st.session_state, default_config())


def publish(cfg: SurfaceRunConfig) -> None:
    """Mirrors ``cfg`` in the URL, so the address bar is always a share link, and
    keeps it as the last good comparison."""
    st.session_state[LAST_GOOD] = cfg
    mirror_url(config_to_params(cfg))


def last_good() -> SurfaceRunConfig | None:
    """The last comparison the settings described without error, if any."""
    return st.session_state.get(LAST_GOOD)
