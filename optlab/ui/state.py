"""Session-state layout of the playground, and its round trip through share links.

The widgets own the state: every setting lives in `st.session_state` under a
key defined here. `config_from_state` reads those keys into a validated
`SurfaceRunConfig`; `apply_config` writes a config back into them (used by
share links and the defaults); the URL always mirrors the current config.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import streamlit as st

from optlab.hparams import HParam, HValue
from optlab.optimizers import OPTIMIZERS, PRESETS, OptimizerConfig, Preset
from optlab.surface_run import SurfaceRunConfig, resolve_surface
from optlab.surfaces import CUSTOM, FORMULA_BOUNDS, Bounds, get_surface
from optlab.textform import KNOWN_KEYS, config_from_params, config_to_params

State = MutableMapping[str, Any]

SURFACE, EXPR, STEPS, NOISE, SEED = "surface", "expr", "steps", "noise", "seed"
START_X, START_Y = "start_x", "start_y"
BOUNDS = ("bounds_x0", "bounds_x1", "bounds_y0", "bounds_y1")
SLOTS, NEXT_SLOT = "slots", "next_slot"
INITIALISED, SHARE_WARNING = "initialised", "share_warning"
CUSTOM_DEFAULT_EXPR = "x**2 + 10*y**2 + 3*sin(3*x)"


def _preset_order() -> list[Preset]:
    # More specific presets first, so Nesterov wins over SGD + momentum.
    return sorted(PRESETS, key=lambda p: -len(p.values))


def choices() -> dict[str, str]:
    """What an optimizer slot offers: key -> label, presets beside their optimizer."""
    out: dict[str, str] = {}
    for spec in OPTIMIZERS:
        out[spec.key] = spec.label
        for preset in PRESETS:
            if preset.optimizer == spec.key:
                out[preset.key] = preset.label
    return out


def choice_config(choice: str) -> OptimizerConfig:
    """The starting config of a slot choice (an optimizer or a preset)."""
    return OptimizerConfig.create(choice)


def choice_for(cfg: OptimizerConfig) -> str:
    """The slot choice that shows ``cfg`` best: a matching preset, else its optimizer."""
    values = cfg.kwargs
    for preset in _preset_order():
        if preset.optimizer == cfg.key and all(values[k] == v for k, v in preset.values):
            return preset.key
    return cfg.key


def choice_key(slot: int) -> str:
    """Session key of a slot's optimizer choice."""
    return f"slot{slot}_choice"


def hp_keys(slot: int, hp: HParam) -> tuple[str, ...]:
    """Session keys of one hyperparameter's widget(s) in a slot (two for a pair)."""
    base = f"slot{slot}_{hp.name}"
    return (f"{base}_0", f"{base}_1") if hp.kind == "pair" else (base,)


def write_slot(state: State, slot: int, cfg: OptimizerConfig, choice: str | None = None) -> None:
    """Writes an optimizer config into a slot's widget keys."""
    state[choice_key(slot)] = choice or choice_for(cfg)
    values = cfg.kwargs
    for hp in cfg.spec.hparams:
        keys = hp_keys(slot, hp)
        value = values[hp.name]
        if hp.kind == "pair":
            for key, v in zip(keys, value, strict=True):
                state[key] = float(v)
        else:
            state[keys[0]] = float(value) if hp.kind == "float" else value


def read_slot(state: State, slot: int) -> OptimizerConfig:
    """Reads a slot's widgets into a validated optimizer config.

    Raises:
        ValueError: with the optimizer's message (e.g. a bad learning rate).
    """
    spec = choice_config(state[choice_key(slot)]).spec
    values: dict[str, HValue] = {}
    for hp in spec.hparams:
        keys = hp_keys(slot, hp)
        if hp.kind == "pair":
            values[hp.name] = tuple(float(state[k]) for k in keys)
        else:
            values[hp.name] = state[keys[0]]
    return OptimizerConfig(spec.key, tuple(values.items()))


def add_slot(state: State, cfg: OptimizerConfig, choice: str | None = None) -> int:
    """Appends a slot holding ``cfg``; returns its id."""
    slot = state.get(NEXT_SLOT, 0)
    state[NEXT_SLOT] = slot + 1
    state[SLOTS] = [*state.get(SLOTS, []), slot]
    write_slot(state, slot, cfg, choice)
    return slot


def remove_slot(state: State, slot: int) -> None:
    """Drops a slot and its widget keys."""
    state[SLOTS] = [s for s in state[SLOTS] if s != slot]
    for key in [k for k in state if str(k).startswith(f"slot{slot}_")]:
        del state[key]


def default_config() -> SurfaceRunConfig:
    """First load: Rosenbrock, SGD + momentum vs Adam vs RMSprop."""
    return SurfaceRunConfig(
        optimizers=(
            OptimizerConfig.create("sgd_momentum", lr=1e-3),
            OptimizerConfig.create("adam", lr=0.1),
            OptimizerConfig.create("rmsprop", lr=0.01),
        ),
        surface="rosenbrock",
        steps=500,
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
    for slot in list(state.get(SLOTS, [])):
        remove_slot(state, slot)
    state[SURFACE] = cfg.surface
    if cfg.surface == CUSTOM:
        state[EXPR] = cfg.expr
    _write_bounds(state, cfg.bounds)
    for name, value in cfg.surface_values:
        state[f"sp_{name}"] = float(value)
    state[START_X], state[START_Y] = cfg.start
    state[STEPS], state[NOISE], state[SEED] = cfg.steps, cfg.noise, cfg.seed
    for opt in cfg.optimizers:
        add_slot(state, opt)


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
        optimizers=tuple(read_slot(state, slot) for slot in state[SLOTS]),
        surface=key,
        surface_values=values,
        expr=state.get(EXPR) if custom else None,
        bounds=read_bounds(state),
        start=(float(state[START_X]), float(state[START_Y])),
        steps=int(state[STEPS]),
        noise=float(state[NOISE]),
        seed=int(state[SEED]),
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
    params = {k: st.query_params.get_all(k) for k in st.query_params}
    if any(k in KNOWN_KEYS for k in params):
        try:
            cfg = config_from_params(params, default_optimizers=cfg.optimizers)
        except ValueError as err:
            state[SHARE_WARNING] = f"This link could not be used ({err}); showing the defaults."
    apply_config(state, cfg)
    state[INITIALISED] = True


def publish(cfg: SurfaceRunConfig) -> None:
    """Mirrors ``cfg`` in the URL, so the address bar is always a share link."""
    params = config_to_params(cfg)
    current = {k: st.query_params.get_all(k) for k in st.query_params}
    wanted = {k: v if isinstance(v, list) else [v] for k, v in params.items()}
    if current != wanted:
        st.query_params.from_dict(params)
