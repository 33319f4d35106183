"""Two torch optimizers over one model, stepped as one: torch's Muon split.

``torch.optim.Muon`` takes 2-D parameters only, and torch's docs pair it with
AdamW for everything else::

    muon = torch.optim.Muon([p for p in model.parameters() if p.ndim == 2], ...)
    adamw = torch.optim.AdamW([p for p in model.parameters() if p.ndim != 2], ...)
    ...
    muon.step()
    adamw.step()

`SplitOptimizer` is that pair as one ``torch.optim.Optimizer``, so everything
that expects one optimizer per run (the trainer's ``step()``, schedulers,
planned and live ``param_groups`` edits, checkpoints, the state view) takes it
unchanged:

- ``param_groups`` is the two parts' own group dicts, matrices' first: a
  scheduler or an edit of ``group["lr"]`` reaches both optimizers, and each
  part reads the values it was given.
- ``step()`` steps the matrix optimizer, then the other (the docs' order);
  ``zero_grad()`` clears both.
- ``state`` is a read-only view of both parts' states; ``state_dict()`` holds
  each part's own ``state_dict()``, and loading gives each part its own.
- ``defaults`` is empty: options one part has and the other lacks (Muon's
  ``momentum``, AdamW's ``betas``) have no single meaning, so a scheduler that
  would cycle "the" momentum (OneCycleLR's ``cycle_momentum``) is refused by
  torch's own check instead of cycling one part and not the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor


def is_matrix(p: Tensor) -> bool:
    """Whether ``p`` goes to the matrix optimizer: a 2-D tensor (a Linear weight)."""
    return p.ndim == 2


def split_groups(groups: Iterable[dict[str, Any]], matrices: bool) -> list[dict[str, Any]]:
    """Each param group cut to its 2-D parameters (``matrices``) or to the others,
    with its options kept; groups left empty are dropped (torch refuses them)."""
    out = []
    for group in groups:
        params = [p for p in group["params"] if is_matrix(p) == matrices]
        if params:
            out.append({**group, "params": params})
    return out


class _JointState(Mapping[Tensor, dict[str, Any]]):
    """``optimizer.state`` of both parts, read-only (each part writes its own)."""

    def __init__(self, parts: Sequence[torch.optim.Optimizer]) -> None:
        self._parts = parts

    def __getitem__(self, p: Tensor) -> dict[str, Any]:
        for part in self._parts:
            # ``in`` first: indexing a part's defaultdict would create an entry.
            if p in part.state:
                return part.state[p]
        raise KeyError(p)

    def __iter__(self) -> Iterator[Tensor]:
        for part in self._parts:
            yield from part.state

    def __len__(self) -> int:
        return sum(len(part.state) for part in self._parts)


class SplitOptimizer(torch.optim.Optimizer):
    """A matrix optimizer (Muon) on the 2-D parameters and another on the rest.

    Args:
        matrices: The optimizer of the 2-D parameters.
        rest: The optimizer of all the others.

    Raises:
        ValueError: the parts share a parameter, or ``matrices`` holds one that
            is not 2-D.
    """

    def __init__(self, matrices: torch.optim.Optimizer, rest: torch.optim.Optimizer) -> None:
        self.parts = (matrices, rest)
        for group in matrices.param_groups:
            for p in group["params"]:
                if not is_matrix(p):
                    raise ValueError(f"the matrix optimizer holds a {p.ndim}-D parameter")
        self._assembled = False
        # The parts' own dicts: Optimizer.__init__ keeps each dict it is given
        # (and checks that no parameter appears twice).
        super().__init__(self._groups(), {})
        self._assembled = True
        self.state = _JointState(self.parts)  # type: ignore[assignment]

    def _groups(self) -> list[dict[str, Any]]:
        return [group for part in self.parts for group in part.param_groups]

    @property
    def matrices(self) -> torch.optim.Optimizer:
        """The optimizer of the 2-D parameters."""
        return self.parts[0]

    @property
    def rest(self) -> torch.optim.Optimizer:
        """The optimizer of the other parameters."""
        return self.parts[1]

    def owner(self, group: Mapping[str, Any]) -> torch.optim.Optimizer:
        """The part a group of ``param_groups`` belongs to.

        Raises:
            ValueError: ``group`` is not one of this optimizer's groups.
        """
        for part in self.parts:
            if any(group is g for g in part.param_groups):
                return part
        raise ValueError("the group belongs to neither part")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Adds a group, its 2-D parameters to the matrix optimizer and the rest to
        the other (``add_param_group`` mid-run, as for one optimizer)."""
        if not self._assembled:
            super().add_param_group(param_group)
            return
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for part, matrices in zip(self.parts, (True, False), strict=True):
            for group in split_groups([{**param_group, "params": params}], matrices):
                part.add_param_group(group)
        self.param_groups = self._groups()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One step of each part, matrices first, after ``closure`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for part in self.parts:
            part.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clears both parts' gradients."""
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """``{"parts": [the matrix optimizer's state_dict(), the other's]}``."""
        return {"parts": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:  # type: ignore[override]
        """Loads each part's own state dict (as `state_dict` wrote them).

        Raises:
            ValueError: not a split optimizer's state dict.
        """
        parts = state_dict.get("parts") if isinstance(state_dict, Mapping) else None
        if not isinstance(parts, list | tuple) or len(parts) != len(self.parts):
            raise ValueError("optimizer state: expected the state dicts of both parts")
        for part, saved in zip(self.parts, parts, strict=True):
            part.load_state_dict(saved)
        # Loading replaces each part's group dicts: share the new ones.
        self.param_groups = self._groups()

    def __repr__(self) -> str:
        inner = "\n".join(f"  {line}" for part in self.parts for line in repr(part).splitlines())
        return f"{type(self).__name__} (\n{inner}\n)"
