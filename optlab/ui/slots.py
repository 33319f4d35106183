"""Optimizer slots in session state: the same widgets on every page.

A slot is a numbered group of widget keys (the optimizer choice and one key
per hyperparameter) that `optlab.ui.widgets.optimizer_slot` draws. A page
owns a `SlotGroup` with its own key prefix, so the playground's slots and
the CNN page's never share state, and a page may keep more per-slot keys
(a scheduler, say) under the same prefix: removing or duplicating a slot
handles them too.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from optlab.optim.builtin import PRESETS
from optlab.optim.config import OptimizerConfig
from optlab.optim.hparams import HParam, HValue
from optlab.optim.plans import FULL_EXAMPLE, Change, Plan
from optlab.optim.registry import choice_spec, choices
from optlab.optim.schedulers import SchedulerConfig, get_scheduler_spec
from optlab.optim.spec import Preset

State = MutableMapping[str, Any]
#: Per-slot keys of buttons, which Streamlit does not let a script set.
_BUTTONS = ("dup", "remove")


__all__ = ["SlotGroup", "choice_config", "choice_for", "choices", "read_values", "write_values"]


def _preset_order() -> list[Preset]:
    # More specific presets first, so Nesterov wins over SGD + momentum.
    return sorted(PRESETS, key=lambda p: -len(p.values))


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


@dataclass(frozen=True)
class SlotGroup:
    """A page's optimizer slots, under the key prefix ``prefix``.

    Attributes:
        prefix: Prepended to every key ("" on the playground, whose share
            links and tests know keys such as ``slot0_lr``).
        max_slots: How many slots the page allows.
        change_example: The changes an error about a typed change quotes: the page's
            own syntax.
    """

    prefix: str
    max_slots: int
    change_example: str = FULL_EXAMPLE

    @property
    def slots_key(self) -> str:
        """Session key of the list of slot ids, in display order."""
        return f"{self.prefix}slots"

    def ids(self, state: State) -> list[int]:
        """The slot ids, in display order."""
        return list(state.get(self.slots_key, []))

    def key(self, slot: int, name: str) -> str:
        """Session key of one per-slot setting."""
        return f"{self.prefix}slot{slot}_{name}"

    def choice_key(self, slot: int) -> str:
        """Session key of a slot's optimizer choice."""
        return self.key(slot, "choice")

    def hp_keys(self, slot: int, hp: HParam, base: str | None = None) -> tuple[str, ...]:
        """Session keys of one knob's widget(s) (two for a pair).

        ``base`` names the key when the knob is not the optimizer's own
        (a scheduler's ``gamma`` next to an optimizer's, say).
        """
        name = self.key(slot, base or hp.name)
        return (f"{name}_0", f"{name}_1") if hp.kind == "pair" else (name,)

    def write(self, state: State, slot: int, cfg: OptimizerConfig, choice: str | None = None):
        """Writes an optimizer config into a slot's widget keys."""
        state[self.choice_key(slot)] = choice or choice_for(cfg)
        write_values(state, [(hp, self.hp_keys(slot, hp)) for hp in cfg.spec.hparams], cfg.kwargs)

    def read(self, state: State, slot: int) -> OptimizerConfig:
        """Reads a slot's widgets into a validated optimizer config.

        Raises:
            ValueError: with the optimizer's message (e.g. a bad learning rate).
        """
        spec = choice_spec(state[self.choice_key(slot)])
        values = read_values(state, [(hp, self.hp_keys(slot, hp)) for hp in spec.hparams])
        return OptimizerConfig(spec.key, tuple(values.items()))

    # --- a slot's scheduler and manual changes (its `Plan`) ---------------------------

    def sched_key(self, slot: int) -> str:
        """Session key of a slot's scheduler choice."""
        return self.key(slot, "sched")

    def changes_key(self, slot: int) -> str:
        """Session key of a slot's manual changes, one per line."""
        return self.key(slot, "changes")

    def sched_knobs(self, slot: int, key: str) -> list[tuple[HParam, tuple[str, ...]]]:
        """A scheduler's knobs in a slot, each with its widget key(s)."""
        spec = get_scheduler_spec(key)
        return [(hp, self.hp_keys(slot, hp, base=f"sched_{hp.name}")) for hp in spec.hparams]

    def write_scheduler(self, state: State, slot: int, cfg: SchedulerConfig) -> None:
        """Writes a scheduler config into a slot's keys."""
        state[self.sched_key(slot)] = cfg.key
        write_values(state, self.sched_knobs(slot, cfg.key), dict(cfg.values))

    def read_scheduler(self, state: State, slot: int) -> SchedulerConfig:
        """The slot's scheduler (validated).

        Raises:
            ValueError: a knob out of range, with the scheduler's message.
        """
        key = state.get(self.sched_key(slot), "none")
        values = read_values(state, self.sched_knobs(slot, key))
        return SchedulerConfig(key, tuple(values.items()))

    def write_plan(self, state: State, slot: int, plan: Plan) -> None:
        """Writes a plan (scheduler and changes) into a slot's keys."""
        self.write_scheduler(state, slot, plan.scheduler)
        state[self.changes_key(slot)] = "\n".join(c.to_text() for c in plan.changes)

    def read_plan(self, state: State, slot: int) -> Plan:
        """The slot's plan: its scheduler and the changes typed one per line.

        Raises:
            ValueError: a bad scheduler knob or a change that does not parse.
        """
        lines = str(state.get(self.changes_key(slot), "")).splitlines()
        changes = tuple(
            Change.from_text(line, self.change_example) for line in lines if line.strip()
        )
        return Plan(self.read_scheduler(state, slot), changes)

    def _new_id(self, state: State) -> int:
        next_key = f"{self.prefix}next_slot"
        slot = state.get(next_key, 0)
        state[next_key] = slot + 1
        state[self.slots_key] = [*self.ids(state), slot]
        return slot

    def add(self, state: State, cfg: OptimizerConfig, choice: str | None = None) -> int:
        """Appends a slot holding ``cfg``; returns its id."""
        slot = self._new_id(state)
        self.write(state, slot, cfg, choice)
        return slot

    def _own_keys(self, state: State, slot: int) -> list[str]:
        head = self.key(slot, "")
        return [str(k) for k in state if str(k).startswith(head)]

    def duplicate(self, state: State, slot: int) -> int:
        """Appends a copy of a slot's settings (all of its keys); returns its id."""
        copy = self._new_id(state)
        head, new_head = self.key(slot, ""), self.key(copy, "")
        for key in self._own_keys(state, slot):
            name = key[len(head) :]
            if name not in _BUTTONS:
                state[new_head + name] = state[key]
        return copy

    def remove(self, state: State, slot: int) -> None:
        """Drops a slot and all of its keys."""
        state[self.slots_key] = [s for s in self.ids(state) if s != slot]
        for key in self._own_keys(state, slot):
            del state[key]

    def clear(self, state: State) -> None:
        """Drops every slot."""
        for slot in self.ids(state):
            self.remove(state, slot)


def write_values(
    state: State, knobs: list[tuple[HParam, tuple[str, ...]]], values: dict[str, HValue]
) -> None:
    """Writes knob values into their widget keys (floats as floats, pairs split; an
    optional value left empty as None, which a number box shows empty)."""
    for hp, keys in knobs:
        value = values[hp.name]
        if hp.kind == "pair":
            for key, v in zip(keys, value, strict=True):  # type: ignore[arg-type]
                state[key] = None if v is None else float(v)
        else:
            state[keys[0]] = float(value) if hp.kind == "float" and value is not None else value


def read_values(state: State, knobs: list[tuple[HParam, tuple[str, ...]]]) -> dict[str, HValue]:
    """Reads knob values from their widget keys (unvalidated: the config checks)."""
    values: dict[str, HValue] = {}
    for hp, keys in knobs:
        if hp.kind == "pair":
            values[hp.name] = tuple(None if state[k] is None else float(state[k]) for k in keys)
        else:
            values[hp.name] = state[keys[0]]
    return values
