"""Muon on a surface: OptLab's (1, 2) path is torch.optim.Muon's own, and one row's step.

The oracle is a loop written here against ``torch.optim.Muon`` directly (not
through the registry), on a (1, 2) float64 matrix, as torch's docs use it.
"""

from __future__ import annotations

import math

import pytest
import torch

from optlab.optim.builtin_muon import ROW_STEP, ROW_STEP_RANGE, row_step_length
from optlab.optim.config import OptimizerConfig
from optlab.surface.inspector import record_steps
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig, add_noise, noise_generator, run_surface

STEPS = 60
CASES = {
    "defaults": {},
    "lr=0.05": {"lr": 0.05},
    "plain momentum": {"lr": 0.02, "nesterov": False, "weight_decay": 0.0},
    "match_rms_adamw": {"lr": 0.05, "adjust_lr_fn": "match_rms_adamw", "momentum": 0.8},
    "ns_steps=2": {"lr": 0.03, "ns_steps": 2, "eps": 1e-3},
}


def _direct_loop(problem: Problem, values: dict) -> list[tuple[float, float]]:
    """torch.optim.Muon on a (1, 2) matrix, the textbook loop, with the engine's noise."""
    surface = problem.resolved_surface
    theta = torch.tensor([problem.start], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Muon([theta], **values)
    gen = noise_generator(problem.seed)
    path = [tuple(theta.detach()[0].tolist())]
    for _ in range(problem.steps):
        optimizer.zero_grad()
        surface(theta).sum().backward()
        if problem.noise > 0:
            theta.grad = add_noise(theta.grad, problem.noise, gen)
        optimizer.step()
        path.append(tuple(theta.detach()[0].tolist()))
    return path


@pytest.mark.parametrize("noise", [0.0, 0.7], ids=["exact", "noisy"])
@pytest.mark.parametrize("values", list(CASES.values()), ids=list(CASES))
def test_the_engine_path_is_torch_muons_own(values: dict, noise: float) -> None:
    problem = Problem(surface="rosenbrock", steps=STEPS, noise=noise, seed=5)
    cfg = SurfaceRunConfig(
        (OptimizerConfig.create("muon", **values), OptimizerConfig.create("adam", lr=0.01)),
        problem,
    )
    ours = [(r.x, r.y) for r in run_surface(cfg) if r.index == 0]
    theirs = _direct_loop(problem, values)
    assert len(ours) == len(theirs) == STEPS + 1
    for (x, y), (tx, ty) in zip(ours, theirs, strict=True):
        assert abs(x - tx) <= 1e-9 and abs(y - ty) <= 1e-9
    assert ours[-1] != ours[0]  # it moved


def test_the_inspector_shows_torchs_momentum_buffer_as_a_pair() -> None:
    cfg = SurfaceRunConfig(
        (OptimizerConfig.create("muon", lr=0.05),), Problem(surface="himmelblau", steps=8)
    )
    snaps = record_steps(cfg, 0)
    path = [(r.x, r.y) for r in run_surface(cfg)]
    assert [s.point for s in snaps] == path[:-1]
    buffer = snaps[-1].state_after["momentum_buffer"]
    assert isinstance(buffer, tuple) and len(buffer) == 2


def _one_step_length(direction: torch.Tensor) -> float:
    """The length of torch's first Muon step (γ = 1, no decay) from the origin."""
    theta = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Muon([theta], lr=1.0, weight_decay=0.0)
    theta.grad = direction.to(torch.float64).view(1, 2).clone()
    optimizer.step()
    return float(theta.detach().norm())


def test_one_row_step_is_the_normalised_momentum_of_the_stated_length() -> None:
    """The figures the pages quote (`ROW_STEP_RANGE`, `ROW_STEP`), measured on torch:
    5,000 directions, momentum norms from 1e-4 to 1e4."""
    gen = torch.Generator().manual_seed(0)
    lengths = []
    for _ in range(5000):
        angle = float(torch.rand(1, generator=gen)) * 2 * math.pi
        scale = 10 ** (float(torch.rand(1, generator=gen)) * 8 - 4)
        g = torch.tensor([math.cos(angle), math.sin(angle)], dtype=torch.float64) * scale
        lengths.append(_one_step_length(g))
    low, high = ROW_STEP_RANGE
    assert round(min(lengths), 3) == low and round(max(lengths), 3) == high
    assert round(sum(lengths) / len(lengths), 2) == ROW_STEP
    # The caveat the page states: tiny momenta stray further.
    assert _one_step_length(torch.tensor([1e-6, 0.0])) == 0.73046875


def test_newton_schulz_never_turns_a_row_only_rescales_it() -> None:
    """A first step points along −g, to bfloat16's 8 significant bits."""
    for g in ([3.0, -4.0], [1e-3, 2e-3], [-250.0, 7.0]):
        grad = torch.tensor(g, dtype=torch.float64)
        theta = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.Muon([theta], lr=1.0, weight_decay=0.0)
        theta.grad = grad.view(1, 2).clone()
        optimizer.step()
        step = theta.detach().view(-1)
        cosine = float(step @ -grad / (step.norm() * grad.norm()))
        assert cosine > 1 - 2**-14
    # ...and the step's length is nowhere near the gradient's: it is normalised.
    assert _one_step_length(torch.tensor([300.0, 400.0])) == pytest.approx(
        _one_step_length(torch.tensor([3e-3, 4e-3])), abs=0.02
    )


def test_the_exact_arithmetic_factor_is_the_scalar_recursion() -> None:
    """On one row XXᵀ = ‖X‖²: float64 Newton–Schulz on a unit row ends at the norm
    `row_step_length` computes (so the bfloat16 figures differ by rounding only)."""
    x = torch.tensor([[0.6, -0.8]], dtype=torch.float64)
    a, b, c = 3.4445, -4.7750, 2.0315
    for _ in range(5):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    assert float(x.norm()) == pytest.approx(row_step_length(), rel=1e-12)
    assert round(row_step_length(), 3) == 0.696
    assert row_step_length(ns_steps=0) == 1.0
