"""The sharpness at which torch's SGD turns unstable: one rule for every product.

On a quadratic with Hessian H, gradient descent with step size η is stable while
:math:`\\lambda_{\\max}(H) < 2/\\eta`, and heavy-ball momentum μ moves that edge
to :math:`(2 + 2\\mu)/\\eta` (Cohen et al., ICLR 2021, "Gradient Descent on
Neural Networks Typically Occurs at the Edge of Stability"). The CNN lab's
sharpness meter (`optlab.train.sharpness`) and the playground's exact Hessians
(`optlab.surface.curvature`) both draw it from `sgd_threshold_of`, which reads
a param group's values only, so it serves a live optimizer and a recorded one
alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["sgd_threshold_formula", "sgd_threshold_of"]


def sgd_threshold_of(group: Mapping[str, Any]) -> float | None:
    """The sharpness at which torch's SGD with these param-group values turns unstable.

    With learning rate η, momentum μ, dampening d:

    - no momentum: :math:`2/\\eta` (Cohen et al. 2021);
    - heavy-ball momentum: :math:`(2 + 2\\mu)/\\eta` (Cohen et al. 2021). torch's
      ``buf = μ buf + (1 − d) g; θ −= η buf`` is the heavy-ball step
      ``θ' = θ − η(1 − d) g + μ(θ − θ_prev)`` with step size η(1 − d), so with
      dampening the threshold is :math:`(2 + 2\\mu)/((1 - d)\\eta)`, and none
      (None) when d ≥ 1;
    - Nesterov (torch's form, ``g + μ buf``, which torch allows only without
      dampening): :math:`(2 + 2\\mu)/((1 + 2\\mu)\\eta)`, where the linear update
      on a quadratic of curvature λ gets an eigenvalue −1 at ηλ = (2 + 2μ)/(1 + 2μ).

    Each value is the point where the step, on a quadratic, gets an eigenvalue
    of −1 (tested against ``torch.optim.SGD`` itself). Weight decay w adds
    w‖θ‖²/2 to the loss the step descends, whose Hessian is H + wI: compare
    ``lambda_max + weight_decay`` with the threshold when it matters.

    Args:
        group: ``lr``, and optionally ``momentum``, ``dampening``, ``nesterov``
            and ``maximize`` (torch's defaults where absent): an SGD param group.

    Returns:
        The threshold, or None: ``maximize`` (it ascends), η ≤ 0, or d ≥ 1 with
        heavy-ball momentum.
    """
    if group.get("maximize"):
        return None
    lr = float(group["lr"])
    mu = float(group.get("momentum") or 0.0)
    dampening = float(group.get("dampening") or 0.0)
    if lr <= 0:
        return None
    if mu == 0:
        return 2 / lr
    if group.get("nesterov"):
        return (2 + 2 * mu) / ((1 + 2 * mu) * lr)
    if dampening >= 1:
        return None
    return (2 + 2 * mu) / ((1 - dampening) * lr)


def sgd_threshold_formula(group: Mapping[str, Any]) -> str | None:
    """`sgd_threshold_of`'s formula for these values, in plain text (η the learning
    rate, μ the momentum, τ the dampening), or None where it gives no threshold."""
    if sgd_threshold_of(group) is None:
        return None
    if not float(group.get("momentum") or 0.0):
        return "2/η"
    if group.get("nesterov"):
        return "(2+2μ)/((1+2μ)η)"
    if float(group.get("dampening") or 0.0):
        return "(2+2μ)/((1−τ)η)"
    return "(2+2μ)/η"
