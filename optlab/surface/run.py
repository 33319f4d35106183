"""Runs optimizers on a 2-D surface: a config in, step records out.

`run_surface` steps K optimizers in lockstep from the same start. All K points
live in one (K, 2) tensor, each optimizer owning a view of its row, so each
step evaluates every point with one forward and one autograd pass (the points
are independent, so the per-point gradients come out of one backward), then
calls each real `torch.optim` optimizer's ``step()``. LBFGS needs its own
closure, which only sees its own point. The trajectories equal those of a
plain per-optimizer ``zero_grad(); loss.backward(); step()`` loop.

Everything is float64: 2-D paths are cheap, and float32 rounding would show
up as visible jitter near minima.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from optlab.caps import CAPS
from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import STEP_EXAMPLE, Plan
from optlab.optim.protocol import evaluation_point, gradient, seeded_step
from optlab.surface.problem import Problem
from optlab.surface.surfaces import Surface

#: Caps that keep one user from starving the others on a shared server.
MAX_OPTIMIZERS = CAPS.surface_optimizers
#: Function evaluations one optimizer may be granted in a run (steps x the
#: most evaluations per step), so L-BFGS settings cannot multiply into hours.
MAX_EVALUATIONS = CAPS.surface_evaluations
#: A point this many bound-widths outside the bounds counts as diverged.
DIVERGENCE_SPANS = 10.0

RUNNING, DONE, DIVERGED = "running", "done", "diverged"


@dataclass(frozen=True)
class SurfaceRunConfig:
    """Everything that determines a 2-D run; frozen, hashable, JSON-able.

    Attributes:
        optimizers: The optimizers compared (1 to `MAX_OPTIMIZERS`), each from
            the problem's start.
        problem: The surface, start, steps, noise and seed (`Problem`).
        plans: Per optimizer, a scheduler and manual mid-run changes
            (`optlab.optim.plans.Plan`); empty for none at all.
    """

    optimizers: tuple[OptimizerConfig, ...]
    problem: Problem = field(default_factory=Problem)
    plans: tuple[Plan, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.optimizers, tuple):
            object.__setattr__(self, "optimizers", tuple(self.optimizers))
        if not isinstance(self.plans, tuple):
            object.__setattr__(self, "plans", tuple(self.plans))
        if not self.optimizers:
            raise ValueError("optimizers: choose at least one optimizer")
        if len(self.optimizers) > MAX_OPTIMIZERS:
            raise ValueError(
                f"optimizers: at most {MAX_OPTIMIZERS} at once, got {len(self.optimizers)}"
            )
        for opt in self.optimizers:
            if not isinstance(opt, OptimizerConfig):
                raise ValueError(f"optimizers: expected OptimizerConfig, got {opt!r}")
        if not isinstance(self.problem, Problem):
            raise ValueError(f"problem: expected Problem, got {self.problem!r}")
        steps = self.problem.steps
        for opt in self.optimizers:
            most = steps * opt.spec.evals_per_step(opt.kwargs)
            if most > MAX_EVALUATIONS:
                raise ValueError(
                    f"steps: {opt.label} may evaluate f up to {most:,} times in "
                    f"{steps} steps (at most {MAX_EVALUATIONS:,}); use fewer steps "
                    "or a smaller max_iter"
                )
        if self.plans:
            if len(self.plans) != len(self.optimizers):
                raise ValueError(
                    f"plans: one per optimizer, got {len(self.plans)} for {len(self.optimizers)}"
                )
            for plan, opt in zip(self.plans, self.optimizers, strict=True):
                if not isinstance(plan, Plan):
                    raise ValueError(f"plans: expected Plan, got {plan!r}")
                plan.check(opt.spec)
                if any(change.epoch for change in plan.changes):
                    raise ValueError(
                        f"plans: a 2-D run has no epochs; give the step, e.g. {STEP_EXAMPLE}"
                    )
            if all(plan.empty for plan in self.plans):
                object.__setattr__(self, "plans", ())

    def seed_runs(self) -> list[SurfaceRunConfig]:
        """The comparison once per seed of its problem (`Problem.seed_problems`)."""
        return [replace(self, problem=p) for p in self.problem.seed_problems()]

    @property
    def resolved_surface(self) -> Surface:
        """The surface this run is on."""
        return self.problem.resolved_surface

    def with_optimizers(self, *optimizers: OptimizerConfig) -> SurfaceRunConfig:
        """The same run with other optimizers and no plans."""
        return replace(self, optimizers=tuple(optimizers), plans=())

    def plan(self, index: int) -> Plan:
        """Optimizer ``index``'s plan (an empty one when there are none)."""
        return self.plans[index] if self.plans else Plan()

    def select(self, *indices: int) -> SurfaceRunConfig:
        """The same run with only these optimizers and their plans (a cache key per slot)."""
        plans = tuple(self.plan(i) for i in indices) if self.plans else ()
        return replace(self, optimizers=tuple(self.optimizers[i] for i in indices), plans=plans)

    @staticmethod
    def merge(configs: Sequence[SurfaceRunConfig]) -> SurfaceRunConfig:
        """One run of every optimizer of ``configs`` (which differ only in those)."""
        first = configs[0]
        optimizers = tuple(o for c in configs for o in c.optimizers)
        plans = tuple(c.plan(i) for c in configs for i in range(len(c.optimizers)))
        has_plans = any(not p.empty for p in plans)
        return replace(first, optimizers=optimizers, plans=plans if has_plans else ())


@dataclass(frozen=True, slots=True)
class StepRecord:
    """The state of one optimizer after ``step`` steps (step 0 is the start).

    Attributes:
        step: Steps taken so far.
        index: Which optimizer of the config (0-based).
        x: Position, first coordinate.
        y: Position, second coordinate.
        loss: f(x, y), noise-free.
        grad_norm: Norm of the true (noise-free) gradient at (x, y).
        lr: The learning rate of the optimizer's param group at this point.
        momentum: Its momentum factor where it has one (``betas[0]`` for the Adam
            family, as torch's OneCycleLR reads it; ``momentum`` for SGD and
            RMSprop), else None. Schedulers and changes may move it.
        evals: Function evaluations the optimizer has used (LBFGS: closure
            calls; others: one per step).
        status: ``running``, ``done`` (last step) or ``diverged``.
    """

    step: int
    index: int
    x: float
    y: float
    loss: float
    grad_norm: float
    lr: float
    momentum: float | None
    evals: int
    status: str


def momentum_of(group: dict) -> float | None:
    """A param group's momentum factor: β₁ where it has ``betas`` (the key torch's
    OneCycleLR and CyclicLR cycle, ``use_beta1``), else ``momentum``, else None."""
    if "betas" in group:
        return float(group["betas"][0])
    momentum = group.get("momentum")
    return None if momentum is None else float(momentum)


def divergence_box(surface: Surface) -> tuple[float, float, float, float]:
    """``(xmin, xmax, ymin, ymax)`` outside which a point counts as diverged."""
    (x0, x1), (y0, y1) = surface.bounds
    mx, my = DIVERGENCE_SPANS * (x1 - x0), DIVERGENCE_SPANS * (y1 - y0)
    return (x0 - mx, x1 + mx, y0 - my, y1 + my)


def noise_generator(seed: int) -> torch.Generator:
    """The local generator behind gradient noise (never the global RNG)."""
    return torch.Generator().manual_seed(seed)


def add_noise(grad: Tensor, noise: float, generator: torch.Generator) -> Tensor:
    """Returns ``grad`` plus one N(0, noise²) draw per coordinate."""
    draw = torch.randn(grad.shape, generator=generator, dtype=grad.dtype)
    return grad + noise * draw


def _build_single_tensor(opt: OptimizerConfig, param: Tensor) -> torch.optim.Optimizer:
    """Builds ``opt`` with ``foreach=False`` where the class takes it.

    That is the implementation torch picks by itself for CPU tensors; naming it
    skips torch's per-step choice of implementation, about 10% of a 2-element
    step. The math is the same code path, so trajectories are unchanged.
    """
    kwargs = opt.kwargs
    if "foreach" in inspect.signature(opt.spec.factory).parameters:
        kwargs["foreach"] = False
    return opt.spec.build([param], kwargs)


def run_surface(cfg: SurfaceRunConfig) -> Iterator[StepRecord]:
    """Runs every optimizer of ``cfg`` in lockstep and yields step records.

    Records come step by step: all running optimizers' records for step 0
    (the start), then step 1, and so on. An optimizer that diverges yields one
    record with status ``diverged`` and stops; the others go on. The consumer
    sets the pace and may stop iterating at any time.

    Gradient noise, when ``cfg.problem.noise > 0``, is drawn from a generator seeded
    with ``cfg.problem.seed`` for each optimizer separately, once per gradient
    evaluation, so every optimizer sees the same noise sequence and a
    result does not depend on which other optimizers run beside it.
    """
    problem = cfg.problem
    surface = problem.resolved_surface
    k = len(cfg.optimizers)
    # One (K, 2) storage holds every point. Each optimizer gets a leaf that is
    # a detached view of its row, so its in-place updates land in the shared
    # storage and the next step evaluates all K points with one forward and
    # one backward over a single leaf, with no stacking or copying. An
    # optimizer of matrices (Muon) gets its row as a (1, 2) view of the same
    # two numbers (`OptimizerSpec.as_param`); every other one its (2,) row.
    points = torch.tensor([problem.start] * k, dtype=torch.float64)
    params = [
        opt.spec.as_param(row.detach()).requires_grad_(True)
        for opt, row in zip(cfg.optimizers, points.unbind(0), strict=True)
    ]
    optimizers = [
        _build_single_tensor(opt, p) for opt, p in zip(cfg.optimizers, params, strict=True)
    ]
    specs = [opt.spec for opt in cfg.optimizers]
    closures = [spec.uses_closure for spec in specs]
    shapes = [spec.point_shape for spec in specs]
    # Schedule-Free is recorded at its evaluation point x but trained at y, and
    # SophiaH needs a gradient with a graph: both take their own gradient.
    own_gradient = [spec.create_graph or spec.averaged for spec in specs]
    averaged = any(spec.averaged for spec in specs)
    evals = [0] * k
    # Every non-closure optimizer draws exactly once per step, so one shared
    # generator gives each of them the sequence its own generator would.
    shared_gen = noise_generator(problem.seed)
    own_gens = [noise_generator(problem.seed) if c else None for c in closures]
    active = list(range(k))

    def make_closure(i: int) -> Callable[[], Tensor]:
        p, opt, gen = params[i], optimizers[i], own_gens[i]

        def closure() -> Tensor:
            opt.zero_grad()
            loss = surface(p)
            p.grad = gradient(loss, p, specs[i])
            if problem.noise > 0:
                p.grad = add_noise(p.grad, problem.noise, gen)
            evals[i] += 1
            return loss

        return closure

    step_closures = [make_closure(i) if c else None for i, c in enumerate(closures)]
    plans = [cfg.plan(i) for i in range(k)]
    schedulers = [
        plan.scheduler.build(opt, problem.steps)
        for plan, opt in zip(plans, optimizers, strict=True)
    ]

    # Seeding the backward with ones (rather than summing the losses first)
    # saves a graph node: the per-point gradients are the same either way.
    ones = torch.ones(k, dtype=torch.float64)
    xlo, xhi, ylo, yhi = divergence_box(surface)
    for step in range(problem.steps + 1):
        for i in active:  # "group['lr'] = ...": before the step, so records show it
            for change in plans[i].due(step):
                change.apply(optimizers[i])
        # Rows of optimizers that already diverged are evaluated too: rows are
        # independent, so their non-finite values cannot leak into the others.
        with contextlib.ExitStack() as at_eval_points:
            for i in active:  # Schedule-Free's rows hold x while they are evaluated
                at_eval_points.enter_context(evaluation_point(optimizers[i], [params[i]], specs[i]))
            leaf = points.detach().requires_grad_(True)
            losses = surface(leaf)
            (grads,) = torch.autograd.grad(losses, leaf, grad_outputs=ones)
            # leaf shares the rows' storage, which train() is about to restore
            evaluated = leaf.detach().clone() if averaged else leaf.detach()
            losses = losses.detach()
        # One conversion to Python numbers per step, not one per value.
        table = torch.cat([evaluated, losses[:, None], grads], 1).tolist()
        grad_rows = grads.unbind(0)

        still = []
        for i in active:
            x, y, loss, gx, gy = table[i]
            gnorm = math.hypot(gx, gy)
            group = optimizers[i].param_groups[0]
            lr, momentum = float(group["lr"]), momentum_of(group)
            # NaN fails every comparison, so the box test also catches a NaN point.
            inside = xlo <= x <= xhi and ylo <= y <= yhi
            if not (inside and math.isfinite(loss) and math.isfinite(gnorm)):
                yield StepRecord(step, i, x, y, loss, gnorm, lr, momentum, evals[i], DIVERGED)
                continue
            status = DONE if step == problem.steps else RUNNING
            yield StepRecord(step, i, x, y, loss, gnorm, lr, momentum, evals[i], status)
            still.append(i)
        active = still
        if step == problem.steps or not active:
            return

        noisy = problem.noise > 0
        drawn = (
            problem.noise * torch.randn(2, generator=shared_gen, dtype=torch.float64)
            if noisy
            else 0
        )
        for i in active:
            with seeded_step(specs[i], problem.seed, step):
                if closures[i]:
                    optimizers[i].step(step_closures[i])
                else:
                    if own_gradient[i]:
                        grad = gradient(surface(params[i]), params[i], specs[i])
                    else:
                        grad = grad_rows[i]
                    grad = grad + drawn if noisy else grad
                    params[i].grad = grad.view(shapes[i])
                    optimizers[i].step()
                    evals[i] += 1
            if schedulers[i] is not None:
                if plans[i].scheduler.spec.on_plateau:
                    schedulers[i].step(table[i][2])  # the loss at this step's start
                else:
                    schedulers[i].step()
