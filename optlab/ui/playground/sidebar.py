"""The playground's sidebar: the problem, the run length, the optimizers and their plans."""

from __future__ import annotations

import streamlit as st

from optlab.surface.problem import MAX_NOISE, MAX_SEEDS, MAX_STEPS
from optlab.surface.surfaces import CUSTOM, SURFACES, get_surface
from optlab.ui.playground import settings
from optlab.ui.slots import choice_config
from optlab.ui.widgets import hparam_widget, plan_widgets, slots_section


def _plan_widgets(slot: int) -> None:
    """The playground slot's scheduler and manual changes."""
    with st.expander("Schedule: lr scheduler, mid-run changes"):
        plan_widgets(
            settings.SLOTS,
            slot,
            "torch.optim.lr_scheduler, stepped after every optimizer step "
            "(ReduceLROnPlateau: with the loss).",
            "200:lr=0.001\n300:momentum=0.5\n400:lr*=0.1",
            "Before step N, set (=) or multiply (*=) a param_groups option, exactly as "
            "`for g in optimizer.param_groups: g['lr'] = 0.001` does.",
        )


def _add_slot() -> None:
    settings.SLOTS.add(st.session_state, choice_config("adam"))


def _on_surface_change() -> None:
    settings.apply_surface_defaults(st.session_state, st.session_state[settings.SURFACE])


def sidebar_settings() -> None:
    """The playground's sidebar: the problem, the run length, the optimizers."""
    state = st.session_state
    labels = {s.key: s.label for s in SURFACES} | {CUSTOM: "Custom formula f(x, y)"}
    st.button(
        "Reset to defaults",
        icon=":material/restart_alt:",
        on_click=settings.reset_to_defaults,
        help="Rosenbrock, SGD + momentum vs Adam vs RMSprop, 500 steps.",
    )
    st.header("Problem")
    key = st.selectbox(
        "Surface",
        list(labels),
        key=settings.SURFACE,
        persist_state="session",
        format_func=labels.__getitem__,
        on_change=_on_surface_change,
    )
    if key == CUSTOM:
        st.text_input(
            "f(x, y) =",
            key=settings.EXPR,
            persist_state="session",
            max_chars=500,
            on_change=settings.apply_formula_start,
            args=(state,),
            help="Numbers, x, y, pi, e, + - * / ** (or ^), and functions such as "
            "sin, cos, exp, log, sqrt, abs, tanh, min, max, atan2.",
        )
    else:
        for hp in get_surface(key).params:
            hparam_widget(hp, (f"sp_{hp.name}",), label=f"{hp.name} ({hp.help})")
    with st.expander("Bounds (zoom)", expanded=key == CUSTOM):
        c1, c2 = st.columns(2)
        for col, k, label in zip(
            (c1, c2, c1, c2), settings.BOUNDS, ("x min", "x max", "y min", "y max"), strict=True
        ):
            col.number_input(label, key=k, persist_state="session", format="%g")
    c1, c2 = st.columns(2)
    c1.number_input("start x", key=settings.START_X, persist_state="session", format="%g", step=0.1)
    c2.number_input("start y", key=settings.START_Y, persist_state="session", format="%g", step=0.1)
    st.number_input(
        "Steps",
        key=settings.STEPS,
        persist_state="session",
        min_value=1,
        max_value=MAX_STEPS,
        step=50,
    )
    c1, c2 = st.columns(2)
    c1.number_input(
        "Gradient noise σ",
        key=settings.NOISE,
        persist_state="session",
        min_value=0.0,
        max_value=MAX_NOISE,
        format="%g",
        step=0.1,
        help="Gaussian noise added to every gradient, to mimic mini-batch training. "
        "Every optimizer sees the same noise sequence.",
    )
    c2.number_input("Seed", key=settings.SEED, persist_state="session", min_value=0, step=1)
    st.number_input(
        "Noise seeds to compare",
        key=settings.SEEDS,
        persist_state="session",
        min_value=1,
        max_value=MAX_SEEDS,
        step=1,
        disabled=not state.get(settings.NOISE),
        help="Runs the comparison once per seed (Seed, Seed + 1, ...) and draws each "
        "optimizer's median loss with a band from the 25% to the 75% quartile, so one "
        "lucky noise sequence cannot decide a comparison. Only with gradient noise.",
    )

    st.header("Optimizers")
    slots_section(settings.SLOTS, _add_slot, extra=_plan_widgets)
