"""L-BFGS's evaluations per step(closure): the cap OptLab computes, against real closure calls.

torch's default ``max_eval`` is ``max_iter * 5 // 4``, but with a strong-Wolfe
line search one step may evaluate f once more than that: the line search may
use every evaluation left plus its first trial, and torch checks the count
only after it. `evals_per_step` must bound every count torch makes, and be
reached (so it is not a loose guess).
"""

from __future__ import annotations

import pytest
import torch

from optlab.optim.builtin_lbfgs import default_max_eval, evals_per_step
from optlab.optim.config import OptimizerConfig
from optlab.surface.surfaces import SURFACES, get_surface

CONFIGS = [
    {"line_search_fn": "strong_wolfe"},
    {"line_search_fn": "strong_wolfe", "max_eval": 3},
    {"line_search_fn": "strong_wolfe", "max_iter": 1, "max_eval": 10},
    {"line_search_fn": "strong_wolfe", "max_eval": 1},
    {},
    {"max_eval": 3},
    {"max_iter": 5},
    {"max_iter": 5, "max_eval": 1},
    {"max_iter": 0},
]


def most_closure_calls(surface_key: str, values: dict, steps: int = 25) -> int:
    """The most times one ``LBFGS.step(closure)`` called the closure, over ``steps`` steps."""
    surface = get_surface(surface_key)
    point = torch.tensor(surface.start, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([point], **values)
    calls = 0

    def closure() -> torch.Tensor:
        nonlocal calls
        calls += 1
        optimizer.zero_grad()
        loss = surface(point)
        loss.backward()
        return loss

    most = 0
    for _ in range(steps):
        calls = 0
        optimizer.step(closure)
        most = max(most, calls)
    return most


@pytest.mark.parametrize("values", CONFIGS, ids=[str(v) for v in CONFIGS])
def test_the_cap_bounds_every_step_and_is_reached(values: dict) -> None:
    cap = evals_per_step(OptimizerConfig.create("lbfgs", **values).kwargs)
    counts = {s.key: most_closure_calls(s.key, values) for s in SURFACES}
    assert max(counts.values()) <= cap, counts
    # The saddles make the line search work hardest: the cap is exactly what torch uses.
    assert max(counts.values()) == cap, (cap, counts)


def test_strong_wolfe_uses_one_more_than_torchs_default_max_eval() -> None:
    defaults = OptimizerConfig.create("lbfgs", line_search_fn="strong_wolfe").kwargs
    assert default_max_eval(20) == 25
    assert evals_per_step(defaults) == 26 == most_closure_calls("saddle", defaults)


def test_without_a_line_search_a_step_evaluates_at_most_max_iter_times() -> None:
    assert evals_per_step(OptimizerConfig("lbfgs").kwargs) == 20
    assert most_closure_calls("saddle", {}) == 20
