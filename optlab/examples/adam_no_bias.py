"""Adam without bias correction: the Lessons page's counter-example, as an optimizer plugin.

Adam keeps running averages of the gradient (m) and of its square (v), both
started at zero. Early on they are too small: after one step m = (1 - β1) g
and v = (1 - β2) g². Adam divides them by (1 - β1^t) and (1 - β2^t) to undo
that ("bias correction", Kingma & Ba 2014, section 3). This class leaves the
division out and is otherwise torch.optim.Adam (no weight decay, no amsgrad)::

    m_t = β1 m_{t-1} + (1 - β1) g_t
    v_t = β2 v_{t-1} + (1 - β2) g_t²
    θ_t = θ_{t-1} - γ m_t / (√v_t + ε)

With the defaults the first step is γ (1 - β1) / √(1 - β2) ≈ 3.16 γ per
coordinate instead of Adam's γ. Register it like any plugin::

    OPTLAB_PLUGINS=$PWD/optlab/examples make run
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from optlab.optim import HParam, OptimizerSpec, Paper


class AdamNoBiasCorrection(torch.optim.Optimizer):
    """Adam's update without the bias correction of m and v.

    Args:
        params: The tensors to optimise, or a list of param-group dicts.
        lr: Learning rate γ.
        betas: (β₁, β₂), the decay rates of m and v.
        eps: ε, added to √v in the denominator.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if not lr >= 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not eps >= 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """Performs one optimisation step; returns the closure's loss, if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                # torch.optim.Adam's own operations, in its order (lerp_ for m)...
                exp_avg.lerp_(p.grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                # ...where Adam would divide m by (1 - β1^t) and √v by √(1 - β2^t).
                denom = exp_avg_sq.sqrt().add_(group["eps"])
                p.addcdiv_(exp_avg, denom, value=-group["lr"])
        return loss


ADAM_NO_BIAS_SPEC = OptimizerSpec(
    key="adam_no_bias",
    label="Adam without bias correction",
    factory=AdamNoBiasCorrection,
    hparams=(
        HParam("lr", 1e-3, 0.0, 1000.0, log=True, low_open=True, help="learning rate γ"),
        HParam(
            "betas",
            (0.9, 0.999),
            0.0,
            1.0,
            high_open=True,
            help="(β₁, β₂): decay rates of the averages m and v",
        ),
        HParam("eps", 1e-8, 0.0, 1.0, help="ε, added to √v in the denominator"),
    ),
    rule=r"""
\begin{aligned}
m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t \\
v_t &= \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2 \\
\theta_t &= \theta_{t-1} - \gamma\, m_t / (\sqrt{v_t} + \epsilon) \qquad (m_0 = v_0 = 0)
\end{aligned}""",
    notes=(
        "Adam without its bias correction: m and v start at zero and are not divided by "
        "(1 - β^t), so the first steps are γ(1 - β₁)/√(1 - β₂) ≈ 3.16γ long with the "
        "defaults, not γ.",
        "Not part of torch.optim: an OptLab plugin (optlab/examples/adam_no_bias.py), "
        "loaded through OPTLAB_PLUGINS, for the Lessons page.",
    ),
    paper=Paper(
        "Kingma & Ba, Adam: A Method for Stochastic Optimization (2014), section 3",
        "https://arxiv.org/abs/1412.6980",
    ),
)

OPTLAB_OPTIMIZERS = (ADAM_NO_BIAS_SPEC,)
