"""A plan as script source: torch's scheduler constructions and the planned changes.

Each registered scheduler is written as the very ``torch.optim.lr_scheduler``
call `optlab.optim.schedulers` makes (a test checks every one against the
engine's), over an ``optimizer`` and the run's ``total_steps``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from optlab.optim.plans import Change
from optlab.optim.schedulers import SchedulerConfig
from optlab.script.source import literal, operand

_SCHEDULER_CALLS: dict[str, Callable[[dict[str, Any]], str]] = {
    "step": lambda v: (
        f"lr_scheduler.StepLR(optimizer, step_size={int(v['step_size'])}, "
        f"gamma={literal(v['gamma'])})"
    ),
    "multistep": lambda v: (
        "lr_scheduler.MultiStepLR(optimizer, milestones="
        f"{literal(sorted(int(m) for m in v['milestones']))}, gamma={literal(v['gamma'])})"
    ),
    "exponential": lambda v: f"lr_scheduler.ExponentialLR(optimizer, gamma={literal(v['gamma'])})",
    "cosine": lambda v: (
        "lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps, "
        f"eta_min={literal(v['eta_min'])})"
    ),
    "onecycle": lambda v: (
        "lr_scheduler.OneCycleLR(\n"
        "        optimizer,\n"
        f'        max_lr=[group["lr"] * {operand(v["max_lr_mult"])} '
        "for group in optimizer.param_groups],\n"
        "        total_steps=total_steps,\n"
        f"        pct_start={literal(v['pct_start'])},\n"
        f"        anneal_strategy={literal(v['anneal_strategy'])},\n"
        f"        cycle_momentum={literal(v['cycle_momentum'])},\n"
        f"        base_momentum={literal(v['base_momentum'])},\n"
        f"        max_momentum={literal(v['max_momentum'])},\n"
        f"        div_factor={literal(v['div_factor'])},\n"
        f"        final_div_factor={literal(v['final_div_factor'])},\n"
        f"        three_phase={literal(v['three_phase'])},\n"
        "    )"
    ),
    "warmup": lambda v: (
        f"lr_scheduler.LinearLR(optimizer, start_factor={literal(v['start_factor'])}, "
        f"total_iters={int(v['total_iters'])})"
    ),
    "plateau": lambda v: (
        'lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", '
        f"factor={literal(v['factor'])}, patience={int(v['patience'])})"
    ),
}


def changes_literal(changes: tuple[Change, ...]) -> str:
    """The planned changes as a literal list of tuples."""
    items = [(c.at, c.epoch, c.group, c.name, float(c.value), c.multiply) for c in changes]
    return literal(items) if items else "[]"


def scheduler_factory(scheduler: SchedulerConfig) -> str:
    """``lambda optimizer, total_steps: <scheduler>``, or None for a constant lr."""
    if scheduler.spec.factory is None:
        return "None"
    return f"lambda optimizer, total_steps: {scheduler_source(scheduler)}"


def scheduler_source(scheduler: SchedulerConfig) -> str:
    """The scheduler's construction over ``optimizer`` (``None`` for a constant lr)."""
    if scheduler.spec.factory is None:
        return "None"
    render = _SCHEDULER_CALLS.get(scheduler.key)
    if render is None:
        raise ValueError(f"export as script: cannot write the scheduler {scheduler.spec.label}")
    return render(dict(scheduler.values))
