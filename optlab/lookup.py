"""Lookups in OptLab's registries (optimizers, surfaces, models, schedulers).

Every registry is an explicit tuple of frozen specs indexed by key; an unknown
key gets the same message everywhere: what was asked for, and what exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")


def lookup(table: Mapping[str, T], key: str, kind: str, also: Iterable[str] = ()) -> T:
    """Returns ``table[key]``.

    Args:
        table: The registry, by key.
        key: What the user asked for.
        kind: The registry's noun for the message ("optimizer", "surface").
        also: Further accepted keys handled elsewhere (presets, "custom"),
            listed in the message too.

    Raises:
        ValueError: ``unknown <kind> '<key>' (known: ...)``.
    """
    try:
        return table[key]
    except KeyError:
        known = ", ".join([*table, *also])
        raise ValueError(f"unknown {kind} {key!r} (known: {known})") from None
