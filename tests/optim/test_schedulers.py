"""The scheduler specs against torch's own schedulers: defaults, OneCycleLR's momentum cycle,
and a clear message (naming the optimizer) where a scheduler cannot drive an optimizer."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch.optim import lr_scheduler

from optlab.optim.builtin import BUILTIN_OPTIMIZERS
from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Plan
from optlab.optim.schedulers import SCHEDULERS, SchedulerConfig, get_scheduler_spec
from optlab.optim.spec import OptimizerSpec
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.trajectory import collect

#: Each scheduler's torch class (the playground's warm-up is torch's LinearLR).
TORCH_CLASSES = {
    "step": lr_scheduler.StepLR,
    "multistep": lr_scheduler.MultiStepLR,
    "exponential": lr_scheduler.ExponentialLR,
    "cosine": lr_scheduler.CosineAnnealingLR,
    "onecycle": lr_scheduler.OneCycleLR,
    "warmup": lr_scheduler.LinearLR,
    "plateau": lr_scheduler.ReduceLROnPlateau,
}
KNOBS = [(s, hp) for s in SCHEDULERS for hp in s.hparams]


@pytest.mark.parametrize(("spec", "hp"), KNOBS, ids=[f"{s.key}.{hp.name}" for s, hp in KNOBS])
def test_defaults_equal_torchs_or_the_help_says_why_not(spec, hp) -> None:
    params = inspect.signature(TORCH_CLASSES[spec.key]).parameters
    if hp.name not in params:
        return  # OptLab's own knob (max_lr_mult): its help names torch's argument
    torch_default = params[hp.name].default
    if torch_default is inspect.Parameter.empty:
        assert "torch has no default" in hp.help, hp.help
    elif hp.default != torch_default:
        assert "torch's default is" in hp.help, (hp.name, hp.default, torch_default)


def test_one_cycle_exposes_torchs_momentum_cycle_with_torchs_defaults() -> None:
    spec = get_scheduler_spec("onecycle")
    params = inspect.signature(lr_scheduler.OneCycleLR).parameters
    for name in ("cycle_momentum", "base_momentum", "max_momentum", "div_factor"):
        assert spec.hparam(name).default == params[name].default
    for name in ("final_div_factor", "three_phase", "anneal_strategy", "pct_start"):
        assert spec.hparam(name).default == params[name].default


@pytest.mark.parametrize("text", ["onecycle", "onecycle:base_momentum=0.7,max_momentum=0.99"])
@pytest.mark.parametrize("key", ["sgd_momentum", "adam", "rmsprop", "nadam"])
def test_one_cycle_drives_lr_and_momentum_exactly_as_torch(text: str, key: str) -> None:
    cfg = SchedulerConfig.from_text(text)
    values = dict(cfg.values)

    def build() -> torch.optim.Optimizer:
        point = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        return OptimizerConfig.create(key).build([point])

    mine, theirs = build(), build()
    ours = cfg.build(mine, 40)
    torch_one = lr_scheduler.OneCycleLR(
        theirs,
        max_lr=theirs.param_groups[0]["lr"] * values["max_lr_mult"],
        total_steps=40,
        pct_start=values["pct_start"],
        base_momentum=values["base_momentum"],
        max_momentum=values["max_momentum"],
    )
    seen = set()
    for _ in range(39):
        for a, b in zip(mine.param_groups, theirs.param_groups, strict=True):
            assert a["lr"] == b["lr"]
            assert a.get("momentum") == b.get("momentum") and a.get("betas") == b.get("betas")
            seen.add(a.get("momentum", a.get("betas", (None,))[0]))
        mine.step(), theirs.step()
        ours.step(), torch_one.step()
    assert len(seen) > 10  # the momentum (or β₁) really moves


def _torch_refuses_one_cycle(spec: OptimizerSpec) -> bool:
    optimizer = spec.build([spec.probe_point()], spec.defaults)
    try:
        lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=10)
    except ValueError:
        return True
    return False


@pytest.mark.parametrize("spec", BUILTIN_OPTIMIZERS, ids=[s.key for s in BUILTIN_OPTIMIZERS])
def test_one_cycle_is_refused_exactly_where_torch_refuses_it_with_a_clear_message(spec) -> None:
    plan = Plan(SchedulerConfig("onecycle"))
    if _torch_refuses_one_cycle(spec):
        with pytest.raises(ValueError) as info:
            plan.check(spec)
        message = str(info.value)
        assert spec.label in message and "cycle_momentum=false" in message
        assert "optimizer must support momentum" not in message  # not torch's bare words
        Plan(SchedulerConfig("onecycle", (("cycle_momentum", False),))).check(spec)
    else:
        plan.check(spec)
        warned = " ".join(plan.warnings(spec))
        assert "OneCycleLR replaces" in warned and spec.label in warned


def test_a_run_that_one_cycle_cannot_drive_is_refused_before_it_starts() -> None:
    opt = OptimizerConfig.create("adagrad", lr=0.1)
    with pytest.raises(ValueError, match=r"OneCycleLR cannot drive Adagrad: .*cycle_momentum"):
        SurfaceRunConfig((opt,), plans=(Plan.from_text("onecycle"),))
    cfg = SurfaceRunConfig(
        (opt,), plans=(Plan.from_text("onecycle:cycle_momentum=false"),), problem=Problem(steps=30)
    )
    (tr,) = collect(cfg)
    assert tr.status == "done" and max(tr.lr) > 0.1  # the lr cycles, through its peak


def test_building_names_the_optimizer_even_past_the_config_check() -> None:
    point = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="OneCycleLR cannot drive Adagrad"):
        SchedulerConfig("onecycle").build(torch.optim.Adagrad([point]), 10)


def test_one_cycle_knobs_round_trip_as_text() -> None:
    text = "onecycle:anneal_strategy=linear,cycle_momentum=false,three_phase=true,div_factor=10"
    cfg = SchedulerConfig.from_text(text)
    assert SchedulerConfig.from_text(cfg.to_text()) == cfg
    assert dict(cfg.values)["anneal_strategy"] == "linear"
    assert SchedulerConfig.from_text("onecycle").to_text() == "onecycle"  # old links unchanged


def test_a_cnn_slot_one_cycle_cannot_drive_is_refused_before_any_training() -> None:
    from optlab.train.run import TrainSlot

    with pytest.raises(ValueError, match=r"OneCycleLR cannot drive Adagrad: .*cycle_momentum"):
        TrainSlot(OptimizerConfig("adagrad"), scheduler=SchedulerConfig("onecycle"))
    off = SchedulerConfig("onecycle", (("cycle_momentum", False),))
    assert TrainSlot(OptimizerConfig("adagrad"), scheduler=off).scheduler == off
