"""A bounded, thread-safe LRU of finished results that every browser of a server shares.

Results depend only on their (frozen, hashable) config, so one server-wide
cache serves everyone: a workshop's thirty default comparisons compute once.
Its size is bounded by a weight (recorded steps, bytes), not by an entry
count, since one large result can weigh as much as a hundred small ones.
Values are immutable, and only whole entries are added or evicted, under a
lock.

Identical requests at the same moment (a class opening the link together)
would each miss the cache and compute the same result side by side: the
cache's `InFlight` registry lets the first compute and the others wait for
its result.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

from optlab.turns import set_aside

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class InFlight(Generic[K]):
    """The keys whose results some thread is computing now (a "single flight").

    A request calls `claim` with the keys it misses. When every one of them is
    being computed by others already it waits for them and gets None: it looks
    in the cache again, and claims whatever is still missing (a run cut short
    or failed is not cached). Otherwise it claims the keys nobody computes,
    computes all it misses (the few it shares with another run are computed
    twice, which keeps the rule simple), stores them and calls `release`.
    A request never waits while it holds a claim, so waits cannot form a cycle.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[K, threading.Event] = {}

    def claim(self, keys: Iterable[K]) -> list[K] | None:
        """Claims the keys of ``keys`` nobody computes; None after waiting for the
        others' runs when every key was theirs."""
        keys = list(dict.fromkeys(keys))
        with self._lock:
            theirs = [self._done[k] for k in keys if k in self._done]
            if len(theirs) < len(keys) or not keys:
                mine = [k for k in keys if k not in self._done]
                self._done.update((k, threading.Event()) for k in mine)
                return mine
        with set_aside():  # no interpreter turn held while the others compute
            for done in theirs:
                done.wait()
        return None

    def release(self, keys: Iterable[K]) -> None:
        """Ends the claims of ``keys`` (after their results are stored) and wakes their waiters."""
        with self._lock:
            for key in keys:
                self._done.pop(key).set()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._done

    def __len__(self) -> int:
        with self._lock:
            return len(self._done)


class BoundedCache(Generic[K, V]):
    """Least-recently-used entries, evicted once their weights sum past a budget.

    Args:
        budget: The most total weight kept (the newest entry stays even alone
            over it).
        weight: An entry's weight; one per entry by default (a count).

    Attributes:
        in_flight: The keys being computed now, for requests that miss.
    """

    def __init__(self, budget: float, weight: Callable[[V], float] = lambda value: 1) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._budget = budget
        self._weigh = weight
        self._weight = 0.0
        self.in_flight: InFlight[K] = InFlight()

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

    def get_or_claim(self, keys: Iterable[K]) -> tuple[dict[K, V], list[K], list[K]]:
        """The cached values of ``keys``, the keys still missing, and those of them now
        claimed in `in_flight` for the caller to compute (it computes every missing
        one, stores them, then releases its claims). While every missing key is being
        computed by another request, it waits for them and looks again."""
        keys = list(dict.fromkeys(keys))
        found: dict[K, V] = {}
        while True:
            found.update((k, v) for k in keys if k not in found and (v := self.get(k)) is not None)
            missing = [k for k in keys if k not in found]
            if not missing or (claimed := self.in_flight.claim(missing)) is not None:
                return found, missing, claimed if missing else []

    @property
    def weight(self) -> float:
        """The total weight held, the measure of its size."""
        with self._lock:
            return self._weight

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
