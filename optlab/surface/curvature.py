"""Curvature along a path: the Hessian's axes at a step, and λ_max against SGD's edge.

On a quadratic, a gradient step of size η multiplies the error along the
Hessian's eigenvector u_k by 1 − ηλ_k: it shrinks while ηλ_k < 2, and flips sign
(a zig-zag) past ηλ_k = 1. So the largest eigenvalue λ_max decides stability:
SGD diverges once λ_max > 2/η, and with heavy-ball momentum μ once
λ_max > (2 + 2μ)/η (Cohen et al., ICLR 2021). On x² + 10y², λ_max = 20: lr 0.095
gives 2/η = 21.05 (a shrinking zig-zag along y) and lr 0.11 gives 18.18 (it
diverges).

`curvature_at` gives the step inspector its eigenvalues and axes (from
`optlab.surface.hessian.hessian_eigs`); `sharpness_paths` gives, per path,
λ_max at every recorded point and the threshold of the optimizer's own
param-group values at that point (`optlab.optim.stability.sgd_threshold_of`:
torch's SGD only; no other optimizer gets a line).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Plan
from optlab.optim.stability import sgd_threshold_formula, sgd_threshold_of
from optlab.surface.hessian import hessian_eigs
from optlab.surface.surfaces import Surface
from optlab.surface.trajectory import Trajectory

__all__ = [
    "Curvature",
    "SharpnessPath",
    "curvature_at",
    "param_groups",
    "sgd_threshold",
    "sharpness_paths",
]


@dataclass(frozen=True)
class Curvature:
    """The Hessian of a surface at one point, as its eigen-pairs.

    Attributes:
        point: The point (x, y).
        eigenvalues: ``(λ₁, λ₂)``, ascending: λ₂ is λ_max. NaN where the Hessian
            is not finite.
        axes: ``(u₁, u₂)``, the unit eigenvectors, each with x ≥ 0 (an axis has
            no sign).
    """

    point: tuple[float, float]
    eigenvalues: tuple[float, float]
    axes: tuple[tuple[float, float], tuple[float, float]]

    @property
    def finite(self) -> bool:
        """Whether the eigenvalues are numbers (the Hessian was finite there)."""
        return all(math.isfinite(v) for v in self.eigenvalues)


def curvature_at(surface: Surface, point: tuple[float, float]) -> Curvature:
    """The Hessian's eigenvalues and axes of ``surface`` at ``point``."""
    eigvals, eigvecs = hessian_eigs(surface, np.asarray(point, dtype=np.float64))
    values, vectors = eigvals[0].tolist(), eigvecs[0]
    u1, u2 = (tuple(vectors[:, k].tolist()) for k in range(2))
    return Curvature((float(point[0]), float(point[1])), (values[0], values[1]), (u1, u2))  # type: ignore[arg-type]


@dataclass(frozen=True)
class SharpnessPath:
    """λ_max along one path and, for torch's SGD, its stability threshold.

    Attributes:
        optimizer: The optimizer that walked the path.
        step: Steps taken at each recorded point (0 is the start).
        lambda_max: λ_max of the Hessian at each point (NaN where not finite).
        threshold: The threshold of the param-group values the next step uses
            (lr and momentum as recorded, a scheduler's included); None at a
            point where `sgd_threshold_of` gives none. Empty for an optimizer
            other than torch's SGD: the rule is not theirs.
        formula: The threshold's formula(s) in the order they appear (``2/η``),
            empty when there is no threshold.
        weight_decay: The largest weight decay the path used: an SGD step with
            decay w descends f + w‖θ‖²/2, whose λ_max is the drawn one plus w.
    """

    optimizer: OptimizerConfig
    step: tuple[int, ...]
    lambda_max: tuple[float, ...]
    threshold: tuple[float | None, ...] = ()
    formula: tuple[str, ...] = ()
    weight_decay: float = 0.0


def sgd_threshold(opt: OptimizerConfig, group: Mapping[str, Any]) -> float | None:
    """`sgd_threshold_of` ``group`` when ``opt`` is torch's SGD; None for any other
    optimizer (a subclass or another rule may step differently)."""
    return sgd_threshold_of(group) if opt.spec.factory is torch.optim.SGD else None


def param_groups(tr: Trajectory, plan: Plan) -> list[dict[str, Any]]:
    """The optimizer's ``param_groups[0]`` values at each recorded point: its settings,
    with the plan's changes applied where `run_surface` applies them (before the
    point is recorded), and lr and momentum as recorded (a scheduler moves them)."""
    group: dict[str, Any] = tr.optimizer.kwargs
    holder = SimpleNamespace(param_groups=[group])
    out = []
    for i, step in enumerate(tr.step):
        for change in plan.due(step):
            change.apply(holder)  # type: ignore[arg-type]
        group["lr"] = tr.lr[i]
        if tr.momentum and tr.momentum[i] is not None and "momentum" in group:
            group["momentum"] = tr.momentum[i]
        out.append(dict(group))
    return out


def sharpness_paths(
    surface: Surface, trajectories: Sequence[Trajectory], plans: Sequence[Plan]
) -> list[SharpnessPath]:
    """λ_max along every path, with SGD's threshold at every point.

    Args:
        surface: The surface the paths ran on.
        trajectories: The paths.
        plans: Each path's plan (its scheduler and mid-run changes), in order.
    """
    out = []
    for tr, plan in zip(trajectories, plans, strict=True):
        eigvals, _ = hessian_eigs(surface, np.column_stack([tr.x, tr.y]))
        lam = tuple(eigvals[:, 1].tolist())
        if tr.optimizer.spec.factory is not torch.optim.SGD:
            out.append(SharpnessPath(tr.optimizer, tr.step, lam))
            continue
        groups = param_groups(tr, plan)
        formulas = (sgd_threshold_formula(g) for g in groups)
        out.append(
            SharpnessPath(
                tr.optimizer,
                tr.step,
                lam,
                threshold=tuple(sgd_threshold(tr.optimizer, g) for g in groups),
                formula=tuple(f for f in dict.fromkeys(formulas) if f is not None),
                weight_decay=max(float(g.get("weight_decay") or 0.0) for g in groups),
            )
        )
    return out
