"""The sweep page's sidebar: the problem, the optimizer with its fixed values, the axes.

Session keys all start with ``sw_``; the optimizer is a one-slot `SlotGroup`
drawn from its `HParam`s like the playground's, offering only optimizers with
a batched twin. Axis ranges default from the swept knob's own range.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import streamlit as st

from optlab.batched import sweepable
from optlab.hparams import HParam
from optlab.optimizers import OptimizerConfig
from optlab.surfaces import CUSTOM, SURFACES, get_surface
from optlab.sweep import MAX_RESOLUTION, SCALES, START_AXES, Axis
from optlab.textform import link_readers, parse_float, parse_int, parse_point
from optlab.ui.slots import SlotGroup, choice_config, choices
from optlab.ui.widgets import hparam_widget

State = MutableMapping[str, Any]
SLOT = SlotGroup("sw_", 1)
MODE, SURFACE, EXPR = "sw_mode", "sw_surface", "sw_expr"
START_X, START_Y, STEPS, NOISE, SEED = "sw_start_x", "sw_start_y", "sw_steps", "sw_noise", "sw_seed"
METRIC, BASIN_N = "sw_metric", "sw_basin_n"
FAIR_OPTS, FAIR_LOW, FAIR_HIGH, FAIR_N = "sw_fair_opts", "sw_fair_low", "sw_fair_high", "sw_fair_n"
SWEEP, FAIR, BASINS = "sweep", "fair", "basins"
MODES = {SWEEP: "Sweep", FAIR: "Fair comparison", BASINS: "Basins map"}
NONE = "none"
#: Optimizers one fair comparison races.
MAX_FAIR = 6
#: Steps of one sweep's runs, at most.
MAX_STEPS = 5000


def sweep_choices() -> dict[str, str]:
    """Slot choices (optimizers and presets) that have a batched twin."""
    keys = set(sweepable())
    return {k: v for k, v in choices().items() if choice_config(k).key in keys}


def axis_names(opt: OptimizerConfig) -> list[str]:
    """What can be swept for ``opt``: numeric knobs, pair elements."""
    names = []
    for hp in opt.spec.hparams:
        if hp.kind in ("float", "int"):
            names.append(hp.name)
        elif hp.kind == "pair":
            names += [f"{hp.name}.0", f"{hp.name}.1"]
    return names


def default_axis(opt: OptimizerConfig, name: str, n: int = 40) -> Axis:
    """A sensible range for sweeping ``name``: two decades either side of the
    default for log-scaled knobs, the allowed range (kept open ends away) otherwise."""
    base, _, element = name.partition(".")
    hp: HParam = opt.spec.hparam(base)
    default = hp.default[int(element)] if element else hp.default
    if hp.log and default and default > 0:
        low, high = default / 100, default * 100
        if hp.high is not None:
            high = min(high, hp.high * (0.999 if hp.high_open else 1))
        return Axis(name, float(low), float(high), n, "log")
    low = hp.low if hp.low is not None else 0.0
    high = hp.high if hp.high is not None else max(1.0, 2 * float(default or 1))
    if hp.low_open:
        low = low + 0.01 * (high - low)
    if hp.high_open or high == 1.0:
        high = low + 0.99 * (high - low)
    return Axis(name, float(low), float(high), n, "lin")


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


def _surface_defaults(state: State) -> None:
    key = state[SURFACE]
    start = (0.0, 0.0) if key == CUSTOM else get_surface(key).start
    state[START_X], state[START_Y] = float(start[0]), float(start[1])


def initialise(state: State, params: dict[str, list[str]] | None = None) -> None:
    """First visit: a sweep share link's settings, else SGD over (lr, momentum) on
    Rosenbrock. A bad link leaves a warning (and the defaults where it failed)."""
    if state.get("sw_initialised"):
        return
    _defaults(state)
    if params and params.get("page") == ["sweep"]:
        try:
            apply_share_params(state, params)
        except ValueError as err:
            _defaults(state)
            state[LINK_WARNING] = f"This link could not be used ({err}); showing the defaults."


def _defaults(state: State) -> None:
    state[MODE] = SWEEP
    state[SURFACE] = "rosenbrock"
    state[EXPR] = "x**2 + 10*y**2 + 3*sin(3*x)"
    _surface_defaults(state)
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


def on_mode_change() -> None:
    """Basins need several known minima: leave a surface that has one for Himmelblau."""
    state = st.session_state
    if state[MODE] != BASINS or state[SURFACE] == CUSTOM:
        return
    if len(get_surface(state[SURFACE]).all_minima) < 2:
        state[SURFACE] = "himmelblau"
        _surface_defaults(state)


def problem_section() -> None:
    """Surface (or formula), start, steps, noise, seed."""
    labels = {s.key: s.label for s in SURFACES} | {CUSTOM: "Custom formula f(x, y)"}
    st.header("Problem")
    key = st.selectbox(
        "Surface",
        list(labels),
        key=SURFACE,
        persist_state="session",
        format_func=labels.__getitem__,
        on_change=_surface_defaults,
        args=(st.session_state,),
    )
    if key == CUSTOM:
        st.text_input("f(x, y) =", key=EXPR, persist_state="session", max_chars=500)
    c1, c2 = st.columns(2)
    c1.number_input("start x", key=START_X, persist_state="session", format="%g", step=0.1)
    c2.number_input("start y", key=START_Y, persist_state="session", format="%g", step=0.1)
    c1, c2, c3 = st.columns(3)
    c1.number_input(
        "Steps", key=STEPS, persist_state="session", min_value=1, max_value=MAX_STEPS, step=50
    )
    c2.number_input(
        "Noise σ", key=NOISE, persist_state="session", min_value=0.0, format="%g", step=0.1
    )
    c3.number_input("Seed", key=SEED, persist_state="session", min_value=0, step=1)


def problem(state: State) -> dict[str, Any]:
    """The problem settings as `SweepConfig` keyword arguments."""
    key = state[SURFACE]
    return {
        "surface": key,
        "expr": state[EXPR] if key == CUSTOM else None,
        "start": (float(state[START_X]), float(state[START_Y])),
        "steps": int(state[STEPS]),
        "noise": float(state[NOISE]),
        "seed": int(state[SEED]),
    }


def _on_optimizer_change() -> None:
    state = st.session_state
    choice = state[SLOT.choice_key(0)]
    opt = choice_config(choice)
    SLOT.write(state, 0, opt, choice)
    names = axis_names(opt)
    for which, other in (("x", "y"), ("y", "x")):
        name = state[f"sw_{which}_name"]
        if name != NONE and name not in START_AXES and name not in names:
            taken = state[f"sw_{other}_name"]
            free = [n for n in names if n != taken]
            fallback = free[0] if which == "x" and free else NONE
            write_axis(state, which, None if fallback == NONE else default_axis(opt, fallback))


def optimizer_section(swept: tuple[str, ...] = ()) -> None:
    """The optimizer and its fixed values (swept knobs are shown as swept)."""
    st.header("Optimizer")
    labels = sweep_choices()
    choice = st.selectbox(
        "Optimizer",
        list(labels),
        key=SLOT.choice_key(0),
        persist_state="session",
        format_func=labels.__getitem__,
        on_change=_on_optimizer_change,
        help="Optimizers with a batched twin (tested equal to torch.optim row by row).",
    )
    spec = choice_config(choice).spec
    with st.expander("Fixed values", expanded=False):
        for hp in spec.hparams:
            if hp.name in {s.partition(".")[0] for s in swept} and hp.kind != "pair":
                st.caption(f"{hp.name}: swept")
                continue
            hparam_widget(hp, SLOT.hp_keys(0, hp))


def _on_axis_name(which: str) -> None:
    state = st.session_state
    name = state[f"sw_{which}_name"]
    if name != NONE:
        write_axis(state, which, default_axis(SLOT.read(state, 0), name))


def axis_section(which: str, opt: OptimizerConfig) -> None:
    """One axis: what is swept, its range, scale and resolution."""
    state = st.session_state
    names = axis_names(opt)
    options = names if which == "x" else [NONE, *names]
    if state[f"sw_{which}_name"] not in options:
        state[f"sw_{which}_name"] = options[0]
    title = "x axis" if which == "x" else "y axis (optional)"
    name = st.selectbox(
        title,
        options,
        key=f"sw_{which}_name",
        persist_state="session",
        on_change=_on_axis_name,
        args=(which,),
        format_func=lambda n: "none (a 1-D sweep)" if n == NONE else n,
    )
    if name == NONE:
        return
    c1, c2 = st.columns(2)
    c1.number_input("from", key=f"sw_{which}_low", persist_state="session", format="%g")
    c2.number_input("to", key=f"sw_{which}_high", persist_state="session", format="%g")
    c1, c2 = st.columns(2)
    c1.radio("scale", SCALES, key=f"sw_{which}_scale", persist_state="session", horizontal=True)
    c2.number_input(
        "points",
        key=f"sw_{which}_n",
        persist_state="session",
        min_value=2,
        max_value=MAX_RESOLUTION,
        step=10,
    )


def fair_section() -> None:
    """The optimizers raced and the shared learning-rate grid."""
    st.header("Optimizers")
    labels = sweep_choices()
    st.multiselect(
        "Optimizers",
        list(labels),
        key=FAIR_OPTS,
        persist_state="session",
        format_func=labels.__getitem__,
        max_selections=MAX_FAIR,
        help="Each keeps its torch defaults except the learning rate, which is tuned.",
    )
    st.header("Learning-rate grid")
    c1, c2 = st.columns(2)
    c1.number_input("lr from", key=FAIR_LOW, persist_state="session", min_value=1e-12, format="%g")
    c2.number_input("lr to", key=FAIR_HIGH, persist_state="session", min_value=1e-12, format="%g")
    st.number_input(
        "points (log-spaced)",
        key=FAIR_N,
        persist_state="session",
        min_value=2,
        max_value=MAX_RESOLUTION,
    )


def lr_axis(state: State) -> Axis:
    """The fair comparison's shared lr grid."""
    return Axis("lr", float(state[FAIR_LOW]), float(state[FAIR_HIGH]), int(state[FAIR_N]), "log")


def basin_section() -> None:
    """The start-point grid's resolution."""
    st.number_input(
        "Start points per side",
        key=BASIN_N,
        persist_state="session",
        min_value=2,
        max_value=MAX_RESOLUTION,
        step=10,
        help="A grid of start points over the surface's bounds.",
    )


def basin_axes(
    state: State, bounds: tuple[tuple[float, float], tuple[float, float]]
) -> tuple[Axis, Axis]:
    """Start-point axes over the surface's bounds."""
    (x0, x1), (y0, y1) = bounds
    n = int(state[BASIN_N])
    return Axis("start_x", float(x0), float(x1), n), Axis("start_y", float(y0), float(y1), n)


def steps_note(steps: int, cells: int) -> str:
    """A caption on the size of the work."""
    return f"{cells:,} configurations × {steps:,} steps = {cells * steps / 1e6:.3g} million steps"


# --- share links ---------------------------------------------------------------------------

LINK_WARNING = "sw_link_warning"


def share_params(state: State) -> dict[str, str | list[str]]:
    """The sweep page's settings as share-link query parameters."""
    params: dict[str, str | list[str]] = {
        "page": "sweep",
        "mode": state[MODE],
        "surface": state[SURFACE],
        "start": f"{float(state[START_X])!r},{float(state[START_Y])!r}",
        "steps": str(int(state[STEPS])),
        "noise": repr(float(state[NOISE])),
        "seed": str(int(state[SEED])),
    }
    if state[SURFACE] == CUSTOM:
        params["expr"] = state[EXPR]
    mode = state[MODE]
    if mode == FAIR:
        params["fair"] = list(state[FAIR_OPTS])
        params["lr"] = lr_axis(state).to_text()
        return params
    params["opt"] = SLOT.read(state, 0).to_text()
    if mode == BASINS:
        params["starts"] = str(int(state[BASIN_N]))
        return params
    params["x"] = read_axis(state, "x").to_text()
    y = read_axis(state, "y")
    if y is not None:
        params["y"] = y.to_text()
    params["metric"] = state[METRIC]
    return params


def apply_share_params(state: State, params: dict[str, list[str]]) -> None:
    """Writes a sweep share link into the widgets (first visit only).

    Raises:
        ValueError: naming the first bad parameter (the caller keeps the defaults).
    """

    _, one = link_readers(params)
    mode = one("mode") or SWEEP
    if mode not in MODES:
        raise ValueError(f"mode: one of {', '.join(MODES)}, got {mode!r}")
    surface = (one("surface") or "rosenbrock").strip().lower()
    if surface != CUSTOM:
        get_surface(surface)
    updates: dict[str, Any] = {MODE: mode, SURFACE: surface}
    if surface == CUSTOM:
        updates[EXPR] = one("expr") or ""
    start = one("start")
    if start is not None:
        updates[START_X], updates[START_Y] = parse_point(start)
    else:
        x0, y0 = (0.0, 0.0) if surface == CUSTOM else get_surface(surface).start
        updates[START_X], updates[START_Y] = float(x0), float(y0)
    # The widgets' own ranges: Streamlit would replace a value outside them with the
    # input's minimum, silently (steps=999999 would run 1 step).
    for key, target, parse, low, high in (
        ("steps", STEPS, parse_int, 1, MAX_STEPS),
        ("noise", NOISE, parse_float, 0.0, None),
        ("seed", SEED, parse_int, 0, 2**53 - 1),
        ("starts", BASIN_N, parse_int, 2, MAX_RESOLUTION),
    ):
        if (text := one(key)) is not None:
            value = parse(text, key)
            if value < low or (high is not None and value > high):
                allowed = f"in [{low}, {high}]" if high is not None else f"at least {low:g}"
                raise ValueError(f"{key}: must be {allowed}, got {value}")
            updates[target] = value
    fair = params.get("fair")
    if fair and len(fair) > MAX_FAIR:
        raise ValueError(f"fair: at most {MAX_FAIR} optimizers, the link has {len(fair)}")
    if fair:
        allowed = sweep_choices()
        for key in fair:
            if key not in allowed:
                raise ValueError(f"fair: {key!r} cannot be swept (known: {', '.join(allowed)})")
        updates[FAIR_OPTS] = list(fair)
    if (text := one("lr")) is not None:
        axis = Axis.from_text(text)
        updates[FAIR_LOW], updates[FAIR_HIGH], updates[FAIR_N] = axis.low, axis.high, axis.n
    opt = OptimizerConfig.from_text(one("opt")) if one("opt") else None
    axes = {which: one(which) for which in ("x", "y")}
    metric = one("metric")
    if metric is not None and metric not in (
        "final_loss",
        "best_loss",
        "steps_to_target",
        "diverged_at",
    ):
        raise ValueError(f"metric: unknown {metric!r}")
    # Everything parsed: write it.
    for key, value in updates.items():
        state[key] = value
    if opt is not None:
        if opt.key not in sweepable():
            raise ValueError(f"opt: {opt.label} cannot be swept")
        SLOT.write(state, 0, opt)
    for which, text in axes.items():
        if text is not None:
            write_axis(state, which, Axis.from_text(text))
        elif which == "y" and opt is not None and mode == SWEEP:
            write_axis(state, "y", None)
    if metric is not None:
        state[METRIC] = metric
