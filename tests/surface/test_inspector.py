"""The step inspector's records: a real optimizer's state at every step; L-BFGS evaluations."""

from __future__ import annotations

import math

import pytest
import torch

from optlab.optim import registry
from optlab.optim.config import OptimizerConfig
from optlab.surface.inspector import directions, plain, record_steps
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig, add_noise, noise_generator
from optlab.surface.trajectory import collect

FIRST_ORDER = [spec.key for spec in registry.optimizers() if not spec.uses_closure]


def config(*texts: str, **kwargs) -> SurfaceRunConfig:
    problem = Problem(**{"surface": "rosenbrock", "steps": 40, **kwargs})
    return SurfaceRunConfig(tuple(OptimizerConfig.from_text(t) for t in texts), problem)


@pytest.mark.parametrize("key", FIRST_ORDER)
def test_recorded_state_at_step_t_is_that_of_torch_optim_stepped_t_times(key):
    cfg = config(f"{key}:lr=0.001" if key != "adadelta" else key, noise=0.5, seed=3)
    snapshots = record_steps(cfg, 0)
    assert len(snapshots) == cfg.problem.steps
    surface = cfg.resolved_surface
    for t in (0, 1, 7, cfg.problem.steps - 1):
        # A fresh optimizer, stepped t times the textbook way.
        p = torch.tensor(cfg.problem.start, dtype=torch.float64, requires_grad=True)
        opt = cfg.optimizers[0].build([p])
        gen = noise_generator(cfg.problem.seed)
        for _ in range(t):
            opt.zero_grad()
            surface(p).backward()
            p.grad = add_noise(p.grad, cfg.problem.noise, gen)
            opt.step()
        snap = snapshots[t]
        assert snap.point == tuple(p.detach().tolist())
        assert snap.state_before == {k: plain(v) for k, v in opt.state.get(p, {}).items()}
        opt.zero_grad()
        surface(p).backward()
        p.grad = add_noise(p.grad, cfg.problem.noise, gen)
        assert snap.grad == tuple(p.grad.tolist())
        opt.step()
        assert snap.state_after == {k: plain(v) for k, v in opt.state[p].items()}
        moved = tuple(p.detach().tolist())
        assert snap.update == (moved[0] - snap.point[0], moved[1] - snap.point[1])
        assert snap.groups["lr"] == opt.param_groups[0]["lr"]
        assert snap.evaluations == (snap.point,)


def test_records_follow_the_engine_path_exactly():
    cfg = config("sgd:lr=0.001,momentum=0.9", "adam:lr=0.05", "lbfgs:line_search_fn=strong_wolfe")
    trajectories = collect(cfg)
    for i, tr in enumerate(trajectories):
        snaps = record_steps(cfg, i)
        assert [s.point for s in snaps] == list(zip(tr.x[:-1], tr.y[:-1], strict=True))[
            : len(snaps)
        ]
        assert [s.loss for s in snaps] == list(tr.loss[: len(snaps)])


@pytest.mark.parametrize("line_search", ["none", "strong_wolfe"])
def test_lbfgs_evaluations_match_torchs_own_func_evals(line_search):
    cfg = config(f"lbfgs:line_search_fn={line_search}", steps=15)
    snaps = record_steps(cfg, 0)
    counted = 0
    for snap in snaps:
        counted += len(snap.evaluations)
        # torch's own counter, kept in the state of the parameter.
        assert snap.state_after["func_evals"] == counted
        assert snap.evaluations[0] == snap.point  # the step starts where it stands
    assert sum(len(s.evaluations) for s in snaps) == collect(cfg)[0].evals[len(snaps)]
    if line_search == "strong_wolfe":
        assert any(len(s.evaluations) > 1 for s in snaps)


def test_a_diverging_optimizer_stops_its_record_where_it_diverged():
    cfg = config("sgd:lr=0.5", steps=100)
    (tr,) = collect(cfg)
    snaps = record_steps(cfg, 0)
    assert tr.status == "diverged" and len(snaps) < 100
    assert all(math.isfinite(s.loss) for s in snaps)


def test_directions_are_the_gradient_step_the_momentum_and_the_update():
    cfg = config("sgd:lr=0.001,momentum=0.9", steps=5)
    snap = record_steps(cfg, 0)[3]
    arrows = directions(snap)
    gx, gy = snap.grad
    assert arrows["gradient step −γ·g"] == (-0.001 * gx, -0.001 * gy)
    bx, by = snap.state_after["momentum_buffer"]
    assert arrows["momentum step −γ·b"] == (-0.001 * bx, -0.001 * by)
    assert arrows["actual update"] == snap.update
    # For SGD with momentum the update is exactly the momentum step.
    assert arrows["actual update"] == pytest.approx(arrows["momentum step −γ·b"], abs=1e-15)


def test_bad_index_is_refused():
    with pytest.raises(ValueError, match="index 2"):
        record_steps(config("adam"), 2)
