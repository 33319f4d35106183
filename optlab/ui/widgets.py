"""Widgets generated from specs: no widget here knows a particular optimizer.

Every optimizer knob is drawn from its `HParam` (kind, range, help), and
every surface parameter likewise, so a new registry entry gets its controls
with no UI change.
"""

from __future__ import annotations

import math

import streamlit as st

from optlab.hparams import HParam
from optlab.plots import color
from optlab.surface_run import MAX_NOISE, MAX_OPTIMIZERS, MAX_STEPS
from optlab.surfaces import CUSTOM, SURFACES, get_surface
from optlab.ui import state as S


def _step(hp: HParam, value: float) -> float:
    """A +/- increment that suits the value's scale (a tenth of its decade)."""
    if hp.log and value > 0:
        return 10 ** math.floor(math.log10(value)) / 10
    span = (hp.high or 1.0) - (hp.low or 0.0)
    return min(0.01, span / 100) if span > 0 else 0.01


def hparam_widget(hp: HParam, keys: tuple[str, ...], label: str | None = None) -> None:
    """Draws the widget(s) of one hyperparameter bound to session keys."""
    label = label or hp.name
    help_text = (
        f"{hp.help}. Allowed: {hp.range_text()}." if hp.kind not in ("bool", "choice") else hp.help
    )
    kind = hp.kind
    if kind == "bool":
        st.checkbox(label, key=keys[0], help=hp.help)
    elif kind == "choice":
        st.selectbox(label, hp.choices, key=keys[0], help=hp.help, format_func=hp.format)
    elif kind == "int":
        st.number_input(
            label,
            key=keys[0],
            min_value=int(hp.low) if hp.low is not None else None,
            max_value=int(hp.high) if hp.high is not None else None,
            step=1,
            help=help_text,
        )
    elif kind == "pair":
        left, right = st.columns(2)
        for col, key, suffix in ((left, keys[0], "[0]"), (right, keys[1], "[1]")):
            with col:
                value = float(st.session_state[key])
                st.number_input(
                    f"{label}{suffix}", key=key, format="%g", step=_step(hp, value), help=help_text
                )
    else:
        value = float(st.session_state[keys[0]])
        st.number_input(label, key=keys[0], format="%g", step=_step(hp, value), help=help_text)


def _on_choice_change(slot: int) -> None:
    state = st.session_state
    choice = state[S.choice_key(slot)]
    S.write_slot(state, slot, S.choice_config(choice), choice)


def _duplicate(slot: int) -> None:
    state = st.session_state
    try:
        cfg = S.read_slot(state, slot)
    except ValueError:
        cfg = S.choice_config(state[S.choice_key(slot)])
    S.add_slot(state, cfg, state[S.choice_key(slot)])


def optimizer_slot(slot: int, index: int) -> None:
    """One optimizer slot: choice, learning rate, the other knobs, duplicate/remove."""
    state = st.session_state
    labels = S.choices()
    n_slots = len(state[S.SLOTS])
    with st.container(border=True):
        st.markdown(
            f"<span style='color:{color(index)};font-size:1.3em'>●</span> "
            f"**Optimizer {index + 1}**",
            unsafe_allow_html=True,
        )
        choice = st.selectbox(
            f"Optimizer {index + 1}",
            list(labels),
            key=S.choice_key(slot),
            format_func=labels.__getitem__,
            on_change=_on_choice_change,
            args=(slot,),
            label_visibility="collapsed",
        )
        spec = S.choice_config(choice).spec
        first, *rest = spec.hparams
        hparam_widget(first, S.hp_keys(slot, first))
        with st.expander("More settings"):
            for hp in rest:
                hparam_widget(hp, S.hp_keys(slot, hp))
        left, right = st.columns(2)
        left.button(
            "Duplicate",
            key=f"slot{slot}_dup",
            on_click=_duplicate,
            args=(slot,),
            disabled=n_slots >= MAX_OPTIMIZERS,
            width="stretch",
        )
        right.button(
            "Remove",
            key=f"slot{slot}_remove",
            on_click=S.remove_slot,
            args=(state, slot),
            disabled=n_slots <= 1,
            width="stretch",
        )


def _add_slot() -> None:
    S.add_slot(st.session_state, S.choice_config("adam"))


def _on_surface_change() -> None:
    S.apply_surface_defaults(st.session_state, st.session_state[S.SURFACE])


def sidebar_settings() -> None:
    """The playground's sidebar: the problem, the run length, the optimizers."""
    state = st.session_state
    labels = {s.key: s.label for s in SURFACES} | {CUSTOM: "Custom formula f(x, y)"}
    st.header("Problem")
    key = st.selectbox(
        "Surface",
        list(labels),
        key=S.SURFACE,
        format_func=labels.__getitem__,
        on_change=_on_surface_change,
    )
    if key == CUSTOM:
        st.text_input(
            "f(x, y) =",
            key=S.EXPR,
            max_chars=500,
            on_change=S.apply_formula_start,
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
            (c1, c2, c1, c2), S.BOUNDS, ("x min", "x max", "y min", "y max"), strict=True
        ):
            col.number_input(label, key=k, format="%g")
    c1, c2 = st.columns(2)
    c1.number_input("start x", key=S.START_X, format="%g", step=0.1)
    c2.number_input("start y", key=S.START_Y, format="%g", step=0.1)
    st.number_input("Steps", key=S.STEPS, min_value=1, max_value=MAX_STEPS, step=50)
    c1, c2 = st.columns(2)
    c1.number_input(
        "Gradient noise σ",
        key=S.NOISE,
        min_value=0.0,
        max_value=MAX_NOISE,
        format="%g",
        step=0.1,
        help="Gaussian noise added to every gradient, to mimic mini-batch training. "
        "Every optimizer sees the same noise sequence.",
    )
    c2.number_input("Seed", key=S.SEED, min_value=0, step=1)

    st.header("Optimizers")
    for index, slot in enumerate(state[S.SLOTS]):
        optimizer_slot(slot, index)
    st.button(
        "Add optimizer",
        icon=":material/add:",
        on_click=_add_slot,
        disabled=len(state[S.SLOTS]) >= MAX_OPTIMIZERS,
        width="stretch",
    )
