"""Mid-run changes: schedulers and manual param_groups edits, equal to doing it by hand in torch."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from bench.surface_engine import by_the_docs, evaluated
from optlab.links import config_from_params, config_to_params
from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Change, Plan
from optlab.optim.schedulers import SchedulerConfig
from optlab.surface.inspector import record_steps
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.trajectory import collect
from tests.support.inputs import SURFACES, first_inputs


def run_by_hand(cfg: SurfaceRunConfig, index: int) -> tuple[list[tuple[float, float]], list[float]]:
    """The tutorial loop with the plan applied by hand: edits, step, scheduler.step()
    (and, where an optimizer's docs ask for more, what they ask: `by_the_docs`)."""
    plan, surface = cfg.plan(index), cfg.resolved_surface
    spec = cfg.optimizers[index].spec
    p = spec.as_param(torch.tensor(cfg.problem.start, dtype=torch.float64)).requires_grad_(True)
    opt = cfg.optimizers[index].build([p])
    sched = plan.scheduler.build(opt, cfg.problem.steps)
    path, lrs = [tuple(evaluated(spec, opt, p))], []
    for step in range(cfg.problem.steps):
        for change in plan.changes:
            if change.at == step:
                for group in opt.param_groups:
                    if change.multiply:
                        group[change.name] *= change.value
                    else:
                        group[change.name] = change.value
        lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        loss = surface(p)
        loss.backward(create_graph=spec.create_graph)
        with by_the_docs(spec, cfg.problem.seed, step):
            if spec.uses_closure:

                def closure() -> torch.Tensor:
                    opt.zero_grad()
                    value = surface(p)
                    value.backward()
                    return value

                opt.step(closure)
            else:
                opt.step()
        if sched is not None:
            if plan.scheduler.spec.on_plateau:
                sched.step(loss.item())
            else:
                sched.step()
        path.append(tuple(evaluated(spec, opt, p)))
    return path, lrs


PLANS = [
    Plan(SchedulerConfig("cosine")),
    Plan(changes=(Change(20, "lr", 1e-4), Change(40, "momentum", 0.5))),
    Plan(
        SchedulerConfig("step", (("step_size", 10), ("gamma", 0.5))), (Change(25, "lr", 3.0, True),)
    ),
    Plan(SchedulerConfig("plateau", (("patience", 2),))),
    Plan(SchedulerConfig("onecycle")),
    Plan(SchedulerConfig("warmup", (("total_iters", 15),))),
]


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.to_text())
def test_the_engine_applies_a_plan_exactly_as_by_hand(plan):
    opt = OptimizerConfig.create("sgd", lr=1e-3, momentum=0.9)
    other = OptimizerConfig.create("adam", lr=0.05)
    cfg = SurfaceRunConfig((other, opt), plans=(Plan(), plan), problem=Problem(steps=60))
    trajectories = collect(cfg)
    path, lrs = run_by_hand(cfg, 1)
    tr = trajectories[1]
    n = len(tr.x)  # the engine stops a diverging path; the hand loop goes on
    assert list(zip(tr.x, tr.y, strict=True)) == path[:n]
    assert list(tr.lr[: n - 1]) == lrs[: n - 1]  # the lr each step used
    # The neighbour without a plan is untouched by it.
    assert collect(cfg.select(0))[0].x == trajectories[0].x
    # The inspector replays the same plan.
    snaps = record_steps(cfg, 1)
    assert [s.groups["lr"] for s in snaps] == lrs[: len(snaps)]
    assert [s.point for s in snaps] == path[: len(snaps)]


@pytest.mark.parametrize("found", first_inputs(), ids=lambda i: i.id)
def test_every_optimizer_takes_a_planned_change_as_by_hand(found):
    """The table's first input of each optimizer, its lr halved before step 10 (as the
    tutorials do by hand), and a step scheduler on top."""
    opt = found.config
    lr = float(opt.kwargs["lr"])
    plan = Plan(
        SchedulerConfig("step", (("step_size", 15), ("gamma", 0.5))),
        (Change(10, "lr", lr / 2),),
    )
    problem = replace(SURFACES[found.surfaces[0]], steps=30)
    cfg = SurfaceRunConfig((opt,), plans=(plan,), problem=problem)
    (tr,) = collect(cfg)
    path, lrs = run_by_hand(cfg, 0)
    assert tr.status == "done"
    assert list(zip(tr.x, tr.y, strict=True)) == path
    assert list(tr.lr[:-1]) == lrs
    assert lrs[9] == lr and lrs[10] == lr / 2 and lrs[15] == lr / 4


def test_changes_parse_and_print_as_text():
    for text in ("200:lr=0.001", "300:momentum=0.5", "epoch3:classifier.lr*=0.1"):
        change = Change.from_text(text)
        assert Change.from_text(change.to_text()) == change
    change = Change.from_text(" Epoch 3 : classifier.lr *= 0.1 ")
    assert (change.at, change.epoch, change.group, change.multiply) == (3, True, "classifier", True)
    assert change.describe() == "at epoch 3, multiply classifier lr by 0.1"
    plan = Plan.from_text("cosine:eta_min=0.0001|300:lr=0.01|100:momentum=0.8")
    assert [c.at for c in plan.changes] == [300, 100]  # kept as given
    assert Plan.from_text(plan.to_text()) == plan
    assert Plan.from_text("200:lr=0.001").scheduler.key == "none"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("lr=0.1", "expected STEP:NAME=VALUE"),
        ("10:lr=abc", "not a number"),
        ("10:lr*=-2", "factor must be positive"),
        ("10:other.lr=0.1", "group must be one of"),
        ("10:lr=nan", "finite"),
    ],
)
def test_bad_changes_are_refused_clearly(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        Change.from_text(text)


@pytest.mark.parametrize(
    ("plan", "fragment"),
    [
        (Plan(changes=(Change(5, "lr", -1.0),)), "Invalid lr value: -1"),
        (Plan(changes=(Change(5, "nesterov", 1.0),)), "not a number"),
        (Plan(changes=(Change(5, "betas", 0.5),)), "no hyperparameter 'betas'"),
        (Plan(changes=(Change(5, "gamma", 0.5),)), "gamma"),
        (Plan(changes=(Change(5, "lr", 0.5, group="classifier"),)), "single param group"),
        (Plan(changes=(Change(5, "lr", 0.5, epoch=True),)), "no epochs"),
    ],
)
def test_plans_are_checked_against_their_optimizer(plan, fragment):
    with pytest.raises(ValueError, match=fragment):
        SurfaceRunConfig((OptimizerConfig.create("sgd", momentum=0.9),), plans=(plan,))


def test_plans_round_trip_through_share_links():
    cfg = SurfaceRunConfig(
        (OptimizerConfig.create("adam", lr=0.05), OptimizerConfig.create("sgd", lr=1e-3)),
        plans=(Plan(), Plan.from_text("cosine|200:lr=0.0001|300:momentum=0.5")),
    )
    params = config_to_params(cfg)
    assert params["plan"] == ["none", "cosine|200:lr=0.0001|300:momentum=0.5"]
    back = config_from_params({k: v if isinstance(v, list) else [v] for k, v in params.items()})
    assert back == cfg
    plain = SurfaceRunConfig((OptimizerConfig.create("adam"),), plans=(Plan(),))
    assert plain.plans == () and "plan" not in config_to_params(plain)
    with pytest.raises(ValueError, match="one per optimizer"):
        config_from_params({"opt": ["adam", "sgd"], "plan": ["cosine"]})


def test_the_cli_takes_a_plan_per_optimizer(tmp_path, capsys):
    import json

    from optlab.cli import main

    out = tmp_path / "run.json"
    argv = ["surface", "--surface", "rosenbrock", "--steps", "60"]
    argv += ["--opt", "sgd:lr=0.001,momentum=0.9", "--opt", "adam:lr=0.05"]
    argv += ["--plan", "cosine|20:momentum=0.5", "--plan", "none", "--out", str(out)]
    assert main(argv) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["plans"] == ["cosine|20:momentum=0.5", "none"]
    cfg = SurfaceRunConfig(
        (
            OptimizerConfig.create("sgd", lr=0.001, momentum=0.9),
            OptimizerConfig.create("adam", lr=0.05),
        ),
        plans=(Plan.from_text("cosine|20:momentum=0.5"), Plan()),
        problem=Problem(steps=60),
    )
    assert doc["runs"][0]["x"] == list(collect(cfg)[0].x)
    capsys.readouterr()
    assert (
        main(["surface", "--surface", "rosenbrock", "--opt", "adam", "--plan", "a", "--plan", "b"])
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--plan: one per --opt" in err
