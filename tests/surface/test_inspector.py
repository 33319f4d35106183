"""The step inspector's records: a real optimizer's state at every step; L-BFGS evaluations."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from bench.surface_engine import by_the_docs, evaluated
from optlab.charts import color
from optlab.optim import registry
from optlab.optim.config import OptimizerConfig
from optlab.surface import inspector_plots as plots
from optlab.surface.inspector import (
    ACTUAL_STEP,
    GRADIENT_STEP,
    MOMENTUM_STEP,
    directions,
    plain,
    record_steps,
)
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig, add_noise, noise_generator
from optlab.surface.trajectory import collect
from tests.support.inputs import SURFACES, all_inputs

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
    spec = cfg.optimizers[0].spec
    for t in (0, 1, 7, cfg.problem.steps - 1):
        # A fresh optimizer, stepped t times the textbook way (as its docs ask).
        start = torch.tensor(cfg.problem.start, dtype=torch.float64)
        p = cfg.optimizers[0].spec.as_param(start).requires_grad_(True)
        opt = cfg.optimizers[0].build([p])
        gen = noise_generator(cfg.problem.seed)
        for step in range(t):
            opt.zero_grad()
            surface(p).backward(create_graph=spec.create_graph)
            p.grad = add_noise(p.grad, cfg.problem.noise, gen)
            with by_the_docs(spec, cfg.problem.seed, step):
                opt.step()
        snap = snapshots[t]
        assert snap.step == t + 1  # step t + 1 takes θ_t to θ_{t+1}
        assert snap.point == tuple(evaluated(spec, opt, p))
        assert snap.state_before == {k: plain(v) for k, v in opt.state.get(p, {}).items()}
        opt.zero_grad()
        surface(p).backward(create_graph=spec.create_graph)
        p.grad = add_noise(p.grad, cfg.problem.noise, gen)
        assert snap.grad == tuple(p.grad.view(-1).tolist())
        with by_the_docs(spec, cfg.problem.seed, t):
            opt.step()
        assert snap.state_after == {k: plain(v) for k, v in opt.state[p].items()}
        if "step" in snap.state_after:  # torch's own counter is the inspector's t
            assert snap.state_after["step"] == snap.step
        moved = tuple(evaluated(spec, opt, p))
        assert snap.update == (moved[0] - snap.point[0], moved[1] - snap.point[1])
        assert snap.groups["lr"] == opt.param_groups[0]["lr"]
        assert snap.evaluations == (snap.train_point or snap.point,)


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
    assert arrows[GRADIENT_STEP] == (-0.001 * gx, -0.001 * gy)
    bx, by = snap.state_after["momentum_buffer"]
    assert arrows[MOMENTUM_STEP] == (-0.001 * bx, -0.001 * by)
    assert arrows[ACTUAL_STEP] == snap.update
    # For SGD with momentum the update is exactly the momentum step.
    assert arrows[ACTUAL_STEP] == pytest.approx(arrows[MOMENTUM_STEP], abs=1e-15)


@pytest.mark.parametrize("text", ["sgd:lr=0.001,maximize=true", "adam:lr=0.01,maximize=true"])
def test_under_maximize_g_t_is_the_negated_gradient_and_its_step_climbs(text):
    cfg = config(text, steps=3)
    for snap in record_steps(cfg, 0):
        assert snap.g_t == (-snap.grad[0], -snap.grad[1])
        gx, gy = snap.grad
        sx, sy = directions(snap)[GRADIENT_STEP]
        assert sx * gx + sy * gy > 0  # along +∇f: uphill, as maximize asks


def test_bad_index_is_refused():
    with pytest.raises(ValueError, match="index 2"):
        record_steps(config("adam"), 2)


@pytest.mark.parametrize("found", all_inputs(), ids=lambda i: i.id)
def test_every_inputs_state_is_torchs_own_state_step_by_step(found):
    """Every configuration of the optimizer-input table (amsgrad, centered, nesterov,
    maximize...): the recorded state after step t is what torch's optimizer holds."""
    problem = replace(SURFACES[found.surfaces[0]], steps=5)
    cfg = SurfaceRunConfig((found.config,), problem=problem)
    snapshots = record_steps(cfg, 0)
    surface = cfg.resolved_surface
    start = torch.tensor(cfg.problem.start, dtype=torch.float64)
    p = cfg.optimizers[0].spec.as_param(start).requires_grad_(True)
    opt = cfg.optimizers[0].build([p])

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = surface(p)
        loss.backward(create_graph=found.config.spec.create_graph)
        return loss

    spec = found.config.spec
    for step, snap in enumerate(snapshots):
        assert snap.state_before == {k: plain(v) for k, v in opt.state.get(p, {}).items()}
        with by_the_docs(spec, cfg.problem.seed, step):
            if spec.uses_closure:
                opt.step(closure)
            else:
                closure()
                opt.step()
        assert snap.state_after == {k: plain(v) for k, v in opt.state[p].items()}


def _drawn(fig) -> dict[str, float]:
    """Each arrow's drawn length, by its name (the annotations with a start point)."""
    arrows = [a for a in fig.layout.annotations if a.ax is not None]
    return {a.name: math.hypot(a.x - a.ax, a.y - a.ay) for a in arrows}


def test_each_arrow_is_visible_at_its_own_scale_and_comparable_at_one_scale():
    """Adam's actual step is hundreds of times shorter than −γg_t on Rosenbrock: at one
    scale it vanishes; at its own scale every arrow is drawn the same visible length,
    with its stretch factor in its legend entry."""
    cfg = config("adam:lr=0.01", steps=5)
    (tr,) = collect(cfg)
    snap = record_steps(cfg, 0)[2]
    arrows = directions(snap)
    true = {k: math.hypot(*d) for k, d in arrows.items()}
    assert true[GRADIENT_STEP] > 50 * true[ACTUAL_STEP]  # the case the zoom is for
    (x0, x1), (y0, y1) = cfg.resolved_surface.bounds
    visible = plots.ARROW_SHARE * math.hypot(x1 - x0, y1 - y0)

    def figure(common: bool):
        return plots.inspector_figure(
            cfg.resolved_surface, tr, 0, snap.point, arrows, common_scale=common
        )

    own = figure(False)
    assert _drawn(own) == pytest.approx(dict.fromkeys(arrows, visible))
    legend = [t.name for t in own.data if t.name and "drawn ×" in t.name]
    assert len(legend) == len(arrows)
    assert any(name.startswith("θ<sub>t</sub> − θ<sub>t−1</sub>") for name in legend)
    one = figure(True)
    drawn = _drawn(one)
    assert max(drawn.values()) == pytest.approx(visible)
    factor = visible / max(true.values())
    assert drawn == pytest.approx({k: factor * n for k, n in true.items()})
    assert "all at one scale" in one.layout.title.text


def test_the_inspected_path_and_its_end_markers_keep_the_optimizers_own_colour():
    """The inspector draws the third optimizer alone: still in the third colour, its
    start and end markers too (an end marker once kept the first colour)."""
    cfg = config("adam:lr=0.01", steps=5)
    (tr,) = collect(cfg)
    snap = record_steps(cfg, 0)[2]
    fig = plots.inspector_figure(cfg.resolved_surface, tr, 2, snap.point, directions(snap))
    mine = [t for t in fig.data if t.name and tr.optimizer.label in t.name]
    assert mine
    for trace in mine:
        drawn = {trace.line.color, trace.marker.color} - {None}
        assert drawn and drawn <= {color(2)}, (trace.name, drawn)
