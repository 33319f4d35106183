"""Weight snapshots of a training comparison: each optimizer's path through parameter space.

A `Snapshots` keeps, for every optimizer, its weights flattened in
``model.parameters()`` order (float32, on the CPU; see
`optlab.train.planes.flat_parameters`) at steps 0, K, 2K, … and at the
latest step. The latest one is the current weights, replaced after every step,
so whenever a page polls, a run stops or ends, the path ends where the model is.

Memory budget
    All optimizers' stored snapshots together may take ``budget_bytes``
    (``CAPS.snapshot_mb``, 200 MB per job by default), the latest weights
    included. When the next snapshot would not fit, every second stored one is
    dropped (step 0 is kept, as are the latest weights) and the interval K
    doubles, so the stored steps stay 0, K', 2K', … (K' = 2K) over the whole run:
    a uniform path, twice as coarse, never one cut off at its start or end.
    SeedNet's 145,578 parameters take 0.58 MB a snapshot, so two optimizers fill
    200 MB at about 170 snapshots each. At least step 0 and the latest weights
    are always kept, even when they alone exceed the budget.

Threads
    A training worker records while a page reads: every method takes the
    object's lock, and the stored rows are never changed in place (the latest
    weights are a new tensor each step), so `view` hands out references that
    stay valid, and `weights` copies.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import torch
from torch import Tensor

from optlab.caps import CAPS

#: The default memory budget of one job's snapshots, in bytes (``CAPS.snapshot_mb``).
BUDGET_BYTES = CAPS.snapshot_mb * 2**20
_ROW_BYTES = 4  # float32


@dataclass(frozen=True)
class SnapshotView:
    """A consistent read of the snapshots at one moment (immutable tensors).

    Attributes:
        steps: The steps of the snapshots, increasing: 0, K, 2K, … and the latest.
        rows: Per optimizer, one flat float32 tensor per step (shared, never changed).
    """

    steps: tuple[int, ...]
    rows: tuple[tuple[Tensor, ...], ...]

    def weights(self) -> list[Tensor]:
        """Per optimizer, a new ``(n_snapshots, n_params)`` float32 tensor."""
        return [torch.stack(r) if r else torch.empty(0, 0) for r in self.rows]


class Snapshots:
    """Each optimizer's flattened weights at steps 0, K, 2K, … and the latest step.

    Args:
        n_optimizers: The optimizers of the comparison.
        n_params: Entries of one flat weight vector.
        every: K, the interval between stored snapshots (it doubles past the
            budget, see the module docstring).
        budget_bytes: The memory all snapshots may take (default `BUDGET_BYTES`).

    Raises:
        ValueError: a count, interval or budget that is not a positive whole number.
    """

    def __init__(
        self, n_optimizers: int, n_params: int, every: int, budget_bytes: int | None = None
    ) -> None:
        budget_bytes = BUDGET_BYTES if budget_bytes is None else budget_bytes
        for name, value in (
            ("n_optimizers", n_optimizers),
            ("n_params", n_params),
            ("every", every),
            ("budget_bytes", budget_bytes),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"snapshots: {name} must be a whole number >= 1, got {value!r}")
        self.n_optimizers = n_optimizers
        self.n_params = n_params
        self.budget_bytes = budget_bytes
        #: The interval the run asked for, and the one in force (a power of two times it).
        self.first_every = every
        self.every = every
        self._steps: list[int] = []
        self._rows: list[list[Tensor]] = [[] for _ in range(n_optimizers)]
        self._latest: tuple[int, tuple[Tensor, ...]] | None = None
        self._lock = threading.Lock()

    @property
    def max_stored(self) -> int:
        """Snapshots kept at 0, K, 2K, … (one row per optimizer each) within the budget,
        leaving room for the latest weights; at least 2."""
        per_snapshot = self.n_optimizers * self.n_params * _ROW_BYTES
        return max(2, self.budget_bytes // per_snapshot - 1)

    def record(self, step: int, weights: Sequence[Tensor]) -> None:
        """Records every optimizer's weights after ``step`` steps.

        Stored for good when ``step`` is a multiple of the interval, else kept as
        the latest weights until the next call. Steps must not go backwards.

        Args:
            step: Steps taken.
            weights: One flat float32 CPU tensor per optimizer, owned from now on
                (pass copies, `optlab.train.planes.flat_parameters`).
        """
        if len(weights) != self.n_optimizers:
            raise ValueError(
                f"snapshots: {len(weights)} weight vectors, expected {self.n_optimizers}"
            )
        for w in weights:
            if w.dim() != 1 or w.numel() != self.n_params or w.dtype != torch.float32:
                raise ValueError(
                    f"snapshots: weights must be flat float32 vectors of {self.n_params} "
                    f"entries, got {w.dtype} of shape {tuple(w.shape)}"
                )
        rows = tuple(w.detach() for w in weights)
        with self._lock:
            last = self._latest[0] if self._latest else (self._steps[-1] if self._steps else -1)
            if step < last:
                raise ValueError(f"snapshots: step {step} comes after step {last}")
            if self._steps and self._steps[-1] == step:
                return  # recorded already (a resumed run's first call)
            self._latest = None
            if step % self.every != 0:
                self._latest = (step, rows)
                return
            self._steps.append(step)
            for kept, row in zip(self._rows, rows, strict=True):
                kept.append(row)
            while len(self._steps) > self.max_stored:
                self._thin()

    def _thin(self) -> None:
        """Drops every second stored snapshot and doubles the interval (lock held)."""
        self.every *= 2
        keep = [i for i, s in enumerate(self._steps) if s % self.every == 0]
        if keep[-1] != len(self._steps) - 1 and self._latest is None:
            # The newest snapshot is off the coarser grid: it stays as the latest weights.
            last = len(self._steps) - 1
            self._latest = (self._steps[last], tuple(r[last] for r in self._rows))
        self._steps = [self._steps[i] for i in keep]
        self._rows = [[r[i] for i in keep] for r in self._rows]

    def view(self) -> SnapshotView:
        """The steps and rows now, consistent with each other (references, no copies)."""
        with self._lock:
            steps = list(self._steps)
            rows = [list(r) for r in self._rows]
            if self._latest is not None:
                steps.append(self._latest[0])
                for kept, row in zip(rows, self._latest[1], strict=True):
                    kept.append(row)
        return SnapshotView(tuple(steps), tuple(tuple(r) for r in rows))

    @property
    def steps(self) -> list[int]:
        """The steps of the snapshots: 0, K, 2K, … and the latest."""
        return list(self.view().steps)

    def weights(self) -> list[Tensor]:
        """Per optimizer, a new ``(n_snapshots, n_params)`` float32 tensor (safe to read
        from another thread while training goes on)."""
        return self.view().weights()

    def initial(self) -> Tensor | None:
        """The shared initial weights θ₀ (snapshot 0 of the first optimizer), or None
        before the first record."""
        with self._lock:
            return self._rows[0][0] if self._steps and self._steps[0] == 0 else None

    @property
    def nbytes(self) -> int:
        """Memory the snapshots take (the latest weights included)."""
        view = self.view()
        return len(view.steps) * self.n_optimizers * self.n_params * _ROW_BYTES

    def state(self) -> dict:
        """The snapshots for a checkpoint: ``{"steps": [0, K, …], "weights":
        [tensor(n_snapshots, n_params) per optimizer], "every": K now}`` (the steps end
        with the latest one); plain data for ``torch.load(weights_only=True)``."""
        view = self.view()
        with self._lock:
            every = self.every
        return {"steps": list(view.steps), "weights": view.weights(), "every": every}

    @classmethod
    def from_state(
        cls, state: Mapping, first_every: int, budget_bytes: int | None = None
    ) -> Snapshots:
        """Snapshots from `state` (a checkpoint's), recording on from there.

        Args:
            state: A `state` dict.
            first_every: The interval the run asked for (its config's).
            budget_bytes: The memory budget.

        Raises:
            ValueError: the state is damaged (steps not increasing from 0, not on the
                interval, or weights that do not match them).
        """
        try:
            steps = [int(s) for s in state["steps"]]
            weights = list(state["weights"])
            every = int(state.get("every", first_every))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"snapshots: damaged ({err})") from None
        if not weights or not all(isinstance(w, Tensor) and w.dim() == 2 for w in weights):
            raise ValueError("snapshots: damaged (weights must be one 2-D tensor per optimizer)")
        n_params = weights[0].shape[1]
        if any(tuple(w.shape) != (len(steps), n_params) for w in weights):
            raise ValueError("snapshots: damaged (weights do not match the steps)")
        ok_every = every >= first_every and every % first_every == 0
        stored = [s for s in steps if s % every == 0] if ok_every else []
        if (
            not steps
            or steps[0] != 0
            or any(b <= a for a, b in pairwise(steps))
            or stored != steps[: len(stored)]
            or len(steps) - len(stored) > 1
        ):
            raise ValueError("snapshots: damaged (steps must be 0, K, 2K, … and the latest)")
        out = cls(len(weights), n_params, first_every, budget_bytes)
        out.every = every
        for i, step in enumerate(steps):
            out.record(step, [w[i].to(torch.float32).clone() for w in weights])
        return out


def flat_weights(parameters: Sequence[Tensor]) -> Tensor:
    """A float32 CPU copy of ``parameters`` flattened in order (logical order, whatever
    each one's memory format), for `Snapshots.record`."""
    flat = torch.cat([p.detach().reshape(-1) for p in parameters])
    return flat.to("cpu", torch.float32, copy=True)
