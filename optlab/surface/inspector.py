"""The step inspector's engine: what a real torch.optim optimizer holds at every step.

`record_steps` replays one optimizer of a `SurfaceRunConfig` on its own (its
trajectory does not depend on its neighbours: see `run_surface`) with the
same gradients and noise, and keeps, for every step t, the point, the
gradient the optimizer was given, ``param_groups[0]``, every tensor of
``optimizer.state[p]`` before and after ``step()``, the update actually
applied, and every point the function was evaluated at during the step
(L-BFGS's line search). 2-D states are a handful of numbers, so a 5000-step
record costs about as much as the run itself.

Steps are numbered as the update rules and torch's own ``state["step"]``
number them: step t takes θ_{t-1} to θ_t, from t = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from optlab.optim.protocol import evaluation_point, gradient, seeded_step
from optlab.surface.run import (
    SurfaceRunConfig,
    _build_single_tensor,
    add_noise,
    divergence_box,
    noise_generator,
)

Plain = float | int | bool | str | None | tuple[Any, ...]


def plain(value: Any) -> Plain:
    """A state value as plain Python: tensors as floats or tuples of floats."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().flatten().tolist()
        return flat[0] if value.dim() == 0 else tuple(flat)
    if isinstance(value, list | tuple):
        return tuple(plain(v) for v in value)
    if isinstance(value, float | int | bool | str) or value is None:
        return value
    return str(value)


@dataclass(frozen=True)
class StepSnapshot:
    """Step t of one optimizer: from θ_{t-1} (``point``) to θ_t (``point + update``).

    Attributes:
        step: t, torch's step counter after this step (1 is the first step,
            from the start point).
        point: θ_{t-1}.
        loss: f(θ_{t-1}), noise-free.
        grad: The gradient ``step()`` was given at θ_{t-1}, ∇f (noise
            included; for L-BFGS, the first closure call's). The rule's g_t is
            `g_t`: this, negated under ``maximize``.
        groups: ``optimizer.param_groups[0]`` without ``params`` (lr etc.).
        state_before: ``optimizer.state[p]`` before the step, as plain numbers.
        state_after: ``optimizer.state[p]`` after it.
        update: θ_t − θ_{t-1}.
        evaluations: The points f was evaluated at during the step, in order
            (one for first-order optimizers, the line search's for L-BFGS).
        train_point: For an ``averaged`` optimizer (Schedule-Free), y_{t-1},
            the training point the gradient was taken at, while ``point`` is
            x_{t-1}, the point ``optimizer.eval()`` gives and the run draws (its z is
            in the state); None for the others, where both are ``point``.
    """

    step: int
    point: tuple[float, float]
    loss: float
    grad: tuple[float, float]
    groups: dict[str, Plain]
    state_before: dict[str, Plain]
    state_after: dict[str, Plain]
    update: tuple[float, float]
    evaluations: tuple[tuple[float, float], ...]
    train_point: tuple[float, float] | None = None

    @property
    def g_t(self) -> tuple[float, float]:
        """The update rules' g_t: the gradient, negated when ``maximize`` is on."""
        if self.groups.get("maximize") is True:
            return (-self.grad[0], -self.grad[1])
        return self.grad

    @property
    def new_point(self) -> tuple[float, float]:
        """θ_t, where the step ended."""
        return (self.point[0] + self.update[0], self.point[1] + self.update[1])


def _state(optimizer: torch.optim.Optimizer, p: torch.Tensor) -> dict[str, Plain]:
    return {k: plain(v) for k, v in optimizer.state.get(p, {}).items()}


def _groups(optimizer: torch.optim.Optimizer) -> dict[str, Plain]:
    return {k: plain(v) for k, v in optimizer.param_groups[0].items() if k != "params"}


def record_steps(cfg: SurfaceRunConfig, index: int) -> list[StepSnapshot]:
    """Every step of optimizer ``index`` of ``cfg`` until it ends or diverges.

    Raises:
        ValueError: ``index`` is not an optimizer of ``cfg``.
    """
    if not 0 <= index < len(cfg.optimizers):
        raise ValueError(f"optimizer: index {index} is not one of the {len(cfg.optimizers)}")
    opt_cfg = cfg.optimizers[index]
    surface = cfg.resolved_surface
    # In the optimizer's own shape ((1, 2) for Muon); read back flattened.
    p = opt_cfg.spec.as_param(torch.tensor(cfg.problem.start, dtype=torch.float64))
    p.requires_grad_(True)
    optimizer = _build_single_tensor(opt_cfg, p)
    gen = noise_generator(cfg.problem.seed)
    xlo, xhi, ylo, yhi = divergence_box(surface)
    spec = opt_cfg.spec
    uses_closure = spec.uses_closure
    plan = cfg.plan(index)
    scheduler = plan.scheduler.build(optimizer, cfg.problem.steps)
    out: list[StepSnapshot] = []
    evaluations: list[tuple[float, float]] = []  # this step's, refilled every step
    seen: list[tuple[float, float]] = []  # the gradient of the step's first evaluation

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = surface(p)
        p.grad = gradient(value, p, spec)
        if cfg.problem.noise > 0:
            p.grad = add_noise(p.grad, cfg.problem.noise, gen)
        evaluations.append(tuple(p.detach().view(-1).tolist()))
        if not seen:
            seen.append(tuple(p.grad.view(-1).tolist()))
        return value

    def at_eval_point() -> tuple[float, float]:
        with evaluation_point(optimizer, [p], spec):
            return tuple(p.detach().view(-1).tolist())

    for step in range(cfg.problem.steps):
        x, y = at_eval_point()
        train_point = tuple(p.detach().view(-1).tolist()) if spec.averaged else None
        with torch.no_grad():
            loss = float(surface(torch.tensor((x, y), dtype=torch.float64)))
        if not (xlo <= x <= xhi and ylo <= y <= yhi and math.isfinite(loss)):
            break
        evaluations.clear()
        seen.clear()
        for change in plan.due(step):
            change.apply(optimizer)
        groups, before = _groups(optimizer), _state(optimizer, p)
        with seeded_step(spec, cfg.problem.seed, step):
            if uses_closure:
                optimizer.step(closure)
            else:
                closure()
                optimizer.step()
        if scheduler is not None:
            if plan.scheduler.spec.on_plateau:
                scheduler.step(loss)
            else:
                scheduler.step()
        if not seen or not all(math.isfinite(v) for v in seen[0]):
            break
        nx, ny = at_eval_point()
        out.append(
            StepSnapshot(
                step=step + 1,
                point=(x, y),
                loss=loss,
                grad=seen[0],
                groups=groups,
                state_before=before,
                state_after=_state(optimizer, p),
                update=(nx - x, ny - y),
                evaluations=tuple(evaluations),
                train_point=train_point,  # type: ignore[arg-type]
            )
        )
    return out


#: The arrows' names: the plain gradient step, the momentum or first-moment step, the update.
GRADIENT_STEP = "−γ·g_t (plain gradient step)"
MOMENTUM_STEP = "−γ·b_t (momentum buffer)"
MOMENT_STEP = "−γ·m_t (first moment)"
ACTUAL_STEP = "θ_t − θ_{t−1} (the actual step)"


def directions(snapshot: StepSnapshot) -> dict[str, tuple[float, float]]:
    """Arrows worth drawing at θ_{t-1}: the plain gradient step −γg_t (with the rule's
    g_t, so it points uphill under ``maximize``), the momentum (or first-moment) step
    where the optimizer keeps one, and the actual update."""
    lr = snapshot.groups.get("lr")
    out: dict[str, tuple[float, float]] = {}
    if isinstance(lr, float | int):
        gx, gy = snapshot.g_t
        out[GRADIENT_STEP] = (-lr * gx, -lr * gy)
        for key, label in (("momentum_buffer", MOMENTUM_STEP), ("exp_avg", MOMENT_STEP)):
            value = snapshot.state_after.get(key)
            if isinstance(value, tuple) and len(value) == 2:
                out[label] = (-lr * value[0], -lr * value[1])
    out[ACTUAL_STEP] = snapshot.update
    return out
