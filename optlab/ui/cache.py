"""A bounded, thread-safe LRU of finished results that every browser of a server shares.

Results depend only on their (frozen, hashable) config, so one server-wide
cache serves everyone: a workshop's thirty default comparisons compute once.
Its size is bounded by a weight (recorded steps, bytes), not by an entry
count, since one large result can weigh as much as a hundred small ones.
Values are immutable, and only whole entries are added or evicted, under a
lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """Least-recently-used entries, evicted once their weights sum past a budget.

    Args:
        budget: The most total weight kept (the newest entry stays even alone
            over it).
        weight: An entry's weight; one per entry by default (a count).
    """

    def __init__(self, budget: float, weight: Callable[[V], float] = lambda value: 1) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._budget = budget
        self._weigh = weight
        self._weight = 0.0

    def get(self, key: K) -> V | None:
        """The cached value of ``key``, or None."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: K, value: V) -> None:
        """Stores a finished value, evicting the least recently used beyond the budget."""
        with self._lock:
            if key in self._items:
                self._weight -= self._weigh(self._items.pop(key))
            self._items[key] = value
            self._weight += self._weigh(value)
            while self._weight > self._budget and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._weight -= self._weigh(old)

    @property
    def weight(self) -> float:
        """The total weight held, the measure of its size."""
        with self._lock:
            return self._weight

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
