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
from optlab.optim.hparams import HParam, HValue
from optlab.optim.registry import choice_spec
from optlab.optim.schedulers import SCHEDULERS, SchedulerConfig
from optlab.ui.slots import SlotGroup, choice_config, choices


def _step(hp: HParam, value: float | None) -> float:
    """A +/- increment that suits the value's scale (a tenth of its decade)."""
    if hp.log and value is not None and value > 0:
        return 10 ** math.floor(math.log10(value)) / 10
    span = (hp.high if hp.high is not None else 1.0) - (hp.low if hp.low is not None else 0.0)
    return min(0.01, span / 100) if span > 0 else 0.01


def _number(hp: HParam, key: str, label: str, help_text: str) -> None:
    """One number box. No min/max: Streamlit would clamp a value silently, while the
    config's message says whose rule it breaks (torch's, or this server's cap)."""
    value = st.session_state.get(key)
    empty = "empty: torch's None" if hp.optional else None
    if hp.integer:
        st.number_input(
            label, key=key, persist_state="session", step=1, help=help_text, placeholder=empty
        )
        return
    st.number_input(
        label,
        key=key,
        persist_state="session",
        format="%g",
        step=_step(hp, value if isinstance(value, int | float) else None),
        help=help_text,
        placeholder=empty,
    )


def show_warnings(lines: tuple[str, ...] | list[str]) -> None:
    """Accepted but unusual values, said next to their widgets (never refused for it)."""
    for line in lines:
        st.caption(f":orange[:material/warning: {line}]")


def _current(hp: HParam, keys: tuple[str, ...]) -> HValue:
    state = st.session_state
    return tuple(state.get(k) for k in keys) if hp.kind == "pair" else state.get(keys[0])


def hparam_widget(hp: HParam, keys: tuple[str, ...], label: str | None = None) -> None:
    """Draws the widget(s) of one hyperparameter bound to session keys, then what is
    unusual about its value (`HParam.warnings`): torch accepts it, so it is not refused."""
    label = label or hp.name
    kind = hp.kind
    help_text = (
        f"{hp.help}. Allowed: {hp.allowed_text()}." if kind not in ("bool", "choice") else hp.help
    )
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
    elif kind == "pair":
        left, right = st.columns(2)
        for index, (col, key) in enumerate(zip((left, right), keys, strict=True)):
            with col:
                part = hp.part(index)
                _number(
                    part,
                    key,
                    f"{label}[{index}]",
                    f"{part.help or hp.help}. Allowed: {hp.allowed_text()}.",
                )
    else:
        _number(hp, keys[0], label, help_text)
    if kind not in ("bool", "choice"):
        try:
            value = hp.validate(_current(hp, keys))
        except ValueError:
            return  # the page shows the refusal itself
        show_warnings(hp.warnings(value))


def _on_choice_change(group: SlotGroup, slot: int, on_change: SlotHook | None) -> None:
    state = st.session_state
    choice = state[group.choice_key(slot)]
    group.write(state, slot, choice_config(choice), choice)
    if on_change is not None:
        on_change(slot)


#: Draws (or resets) a page's own per-slot widgets, given the slot id.
SlotHook = Callable[[int], None]


def _combination_warnings(group: SlotGroup, slot: int) -> None:
    """What is unusual about the slot's values together (Rprop's Γmin > Γmax); each
    knob says its own below its widget, and a refused value is the page's to show.
    Only a spec with such a rule reads its slot here: the page validates each slot once."""
    state = st.session_state
    if choice_spec(state[group.choice_key(slot)]).warn is None:
        return
    try:
        cfg = group.read(state, slot)
    except ValueError:
        return
    show_warnings(cfg.spec.warn(dict(cfg.values)))  # type: ignore[misc]


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
        _combination_warnings(group, slot)
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
    """A slot's lr scheduler choice, that scheduler's knobs, and what it does to the
    slot's optimizer (OneCycleLR cycles its momentum, or cannot drive it at all)."""
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
        hparam_widget(hp, keys)
    try:
        scheduler = group.read_scheduler(state, slot)
        optimizer = choice_spec(state[group.choice_key(slot)])
        scheduler.check(optimizer)
    except ValueError as err:
        st.caption(f":red[:material/error: {err}]")
        return
    show_warnings(scheduler.effects(optimizer))


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
