"""Widgets generated from specs: no widget here knows a particular optimizer.

Every optimizer knob is drawn from its `HParam` (kind, range, help), and
every surface parameter likewise, so a new registry entry gets its controls
with no UI change.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import streamlit as st

from optlab.charts import color
from optlab.optim.hparams import HParam
from optlab.optim.registry import choice_spec
from optlab.optim.schedulers import SCHEDULERS, SchedulerConfig
from optlab.ui.slots import SlotGroup, choice_config, choices


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
        st.checkbox(label, key=keys[0], persist_state="session", help=hp.help)
    elif kind == "choice":
        st.selectbox(
            label,
            hp.choices,
            key=keys[0],
            persist_state="session",
            help=hp.help,
            format_func=hp.format,
        )
    elif kind == "int":
        st.number_input(
            label,
            key=keys[0],
            persist_state="session",
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
                    f"{label}{suffix}",
                    key=key,
                    persist_state="session",
                    format="%g",
                    step=_step(hp, value),
                    help=help_text,
                )
    else:
        value = float(st.session_state[keys[0]])
        st.number_input(
            label,
            key=keys[0],
            persist_state="session",
            format="%g",
            step=_step(hp, value),
            help=help_text,
        )


def _on_choice_change(group: SlotGroup, slot: int, on_change: SlotHook | None) -> None:
    state = st.session_state
    choice = state[group.choice_key(slot)]
    group.write(state, slot, choice_config(choice), choice)
    if on_change is not None:
        on_change(slot)


#: Draws (or resets) a page's own per-slot widgets, given the slot id.
SlotHook = Callable[[int], None]


def optimizer_slot(
    group: SlotGroup, slot: int, index: int, extra: SlotHook | None = None, on_choice=None
) -> None:
    """One optimizer slot: choice, learning rate, the other knobs, duplicate/remove.

    Args:
        group: The page's slots.
        slot: This slot's id.
        index: Its place on the page (its colour and number).
        extra: Draws the page's own per-slot widgets inside the slot's box.
        on_choice: Called after a new optimizer choice reset the slot's knobs.
    """
    state = st.session_state
    labels = choices()
    n_slots = len(group.ids(state))
    with st.container(border=True):
        st.markdown(
            f"<span style='color:{color(index)};font-size:1.3em'>●</span> "
            f"**Optimizer {index + 1}**",
            unsafe_allow_html=True,
        )
        choice = st.selectbox(
            f"Optimizer {index + 1}",
            list(labels),
            key=group.choice_key(slot),
            persist_state="session",
            format_func=labels.__getitem__,
            on_change=_on_choice_change,
            args=(group, slot, on_choice),
            label_visibility="collapsed",
        )
        spec = choice_spec(choice)
        first, *rest = spec.hparams
        hparam_widget(first, group.hp_keys(slot, first))
        if extra is not None:
            extra(slot)
        with st.expander("More settings"):
            for hp in rest:
                hparam_widget(hp, group.hp_keys(slot, hp))
        left, right = st.columns(2)
        left.button(
            "Duplicate",
            key=group.key(slot, "dup"),
            on_click=group.duplicate,
            args=(state, slot),
            disabled=n_slots >= group.max_slots,
            width="stretch",
        )
        right.button(
            "Remove",
            key=group.key(slot, "remove"),
            on_click=group.remove,
            args=(state, slot),
            disabled=n_slots <= 1,
            width="stretch",
        )


def slots_section(
    group: SlotGroup,
    add: Callable[[], None],
    extra: SlotHook | None = None,
    on_choice: SlotHook | None = None,
) -> None:
    """Every slot of ``group``, then an "Add optimizer" button calling ``add``."""
    state = st.session_state
    for index, slot in enumerate(group.ids(state)):
        optimizer_slot(group, slot, index, extra, on_choice)
    st.button(
        "Add optimizer",
        icon=":material/add:",
        on_click=add,
        disabled=len(group.ids(state)) >= group.max_slots,
        width="stretch",
    )


def _on_scheduler_change(group: SlotGroup, slot: int) -> None:
    state = st.session_state
    group.write_scheduler(state, slot, SchedulerConfig(state[group.sched_key(slot)]))


def scheduler_widgets(group: SlotGroup, slot: int, help_text: str) -> None:
    """A slot's lr scheduler choice and that scheduler's knobs."""
    labels = {s.key: s.label for s in SCHEDULERS}
    state = st.session_state
    state.setdefault(group.sched_key(slot), "none")
    key = st.selectbox(
        "lr scheduler",
        list(labels),
        key=group.sched_key(slot),
        persist_state="session",
        format_func=labels.__getitem__,
        on_change=_on_scheduler_change,
        args=(group, slot),
        help=help_text,
    )
    for hp, keys in group.sched_knobs(slot, key):
        hparam_widget(hp, keys, label=f"{hp.name} ({hp.help})")


def plan_widgets(
    group: SlotGroup, slot: int, scheduler_help: str, placeholder: str, changes_help: str
) -> None:
    """A slot's plan: its lr scheduler (with that scheduler's knobs) and manual changes.

    Args:
        group: The page's slots.
        slot: This slot's id.
        scheduler_help: When the page steps the scheduler.
        placeholder: Example changes in the page's own syntax.
        changes_help: What a change line does on this page.
    """
    scheduler_widgets(group, slot, scheduler_help)
    st.text_area(
        "Changes, one per line",
        key=group.changes_key(slot),
        persist_state="session",
        placeholder=placeholder,
        height=90,
        help=changes_help,
    )
