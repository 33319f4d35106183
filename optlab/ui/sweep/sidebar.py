"""The sweeps page's sidebar: the problem, the optimizer with its fixed values, the axes.

The widgets are bound to the keys of `optlab.ui.sweep.session`; the optimizer's
knobs are drawn from their `HParam`s like the playground's. Choosing what an
axis sweeps resets its range to the knob's own (`optlab.sweep.config.default_axis`).
"""

from __future__ import annotations

import streamlit as st

from optlab.links.sweep import MAX_FAIR, sweep_choices
from optlab.optim.config import OptimizerConfig, numeric_knobs
from optlab.optim.registry import choice_spec
from optlab.surface.surfaces import CUSTOM, SURFACES, get_surface
from optlab.sweep.batched import not_sweepable
from optlab.sweep.config import MAX_RESOLUTION, SCALES, START_AXES, default_axis
from optlab.sweep.run import COLOURABLE
from optlab.ui.slots import choice_config
from optlab.ui.sweep import settings
from optlab.ui.sweep.settings import (
    BASIN_N,
    BASINS,
    EXPR,
    FAIR_HIGH,
    FAIR_LOW,
    FAIR_N,
    FAIR_OPTS,
    MAX_STEPS,
    METRIC,
    MODE,
    NOISE,
    NONE,
    SEED,
    SLOT,
    START_X,
    START_Y,
    STEPS,
    SURFACE,
    write_axis,
)
from optlab.ui.widgets import hparam_widget


def on_mode_change() -> None:
    """Basins need several known minima: leave a surface that has one for Himmelblau."""
    state = st.session_state
    if state[MODE] != BASINS or state[SURFACE] == CUSTOM:
        return
    if len(get_surface(state[SURFACE]).all_minima) < 2:
        state[SURFACE] = "himmelblau"
        settings.apply_surface_defaults(state)


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
        on_change=settings.apply_surface_defaults,
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


def _on_optimizer_change() -> None:
    state = st.session_state
    choice = state[SLOT.choice_key(0)]
    opt = choice_config(choice)
    SLOT.write(state, 0, opt, choice)
    names = numeric_knobs(opt)
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
    spec = choice_spec(choice)
    _not_sweepable_note()
    with st.expander("Fixed values", expanded=False):
        for hp in spec.hparams:
            if hp.name in {s.partition(".")[0] for s in swept} and hp.kind != "pair":
                st.caption(f"{hp.name}: swept")
                continue
            hparam_widget(hp, SLOT.hp_keys(0, hp))


def _not_sweepable_note() -> None:
    """Which optimizers the list leaves out, and why (Muon's bfloat16, L-BFGS's closure)."""
    missing = not_sweepable()
    if missing:
        lines = "\n".join(f"- **{label}**: {why}" for label, why in missing.items())
        with st.expander(f"Not sweepable ({len(missing)})", expanded=False):
            st.markdown(lines)


def _on_axis_name(which: str) -> None:
    state = st.session_state
    name = state[f"sw_{which}_name"]
    if name != NONE:
        write_axis(state, which, default_axis(SLOT.read(state, 0), name))


def axis_section(which: str, opt: OptimizerConfig) -> None:
    """One axis: what is swept, its range, scale and resolution."""
    state = st.session_state
    names = numeric_knobs(opt)
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
    _not_sweepable_note()
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


def axes_section() -> None:
    """Both axes of a sweep, and what the heatmap colours by."""
    state = st.session_state
    st.header("Axes")
    try:
        optimizer = SLOT.read(state, 0)
    except ValueError:
        optimizer = OptimizerConfig.create(state[SLOT.choice_key(0)])
    axis_section("x", optimizer)
    axis_section("y", optimizer)
    labels = {m.name: m.label for m in COLOURABLE}
    st.selectbox(
        "Colour by",
        list(labels),
        key=METRIC,
        persist_state="session",
        format_func=labels.__getitem__,
    )


def basin_section() -> None:
    """The start-point grid's resolution."""
    st.header("Start points")
    st.number_input(
        "Start points per side",
        key=BASIN_N,
        persist_state="session",
        min_value=2,
        max_value=MAX_RESOLUTION,
        step=10,
        help="A grid of start points over the surface's bounds.",
    )
