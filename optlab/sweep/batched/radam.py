"""Batched RAdam: torch.optim.RAdam per row (rectified steps, coupled or decoupled decay)."""

from __future__ import annotations

import torch
from torch import Tensor

from optlab.sweep.batched.base import BatchedOptimizer, negate_if, weight_decay_step


class BatchedRAdam(BatchedOptimizer):
    """`torch.optim.RAdam`, row by row: the registry's ``radam`` rule (`rule`).

    Whether a row takes the rectified step (ρ_t > 5) depends on the step and
    its ``beta2`` only; rows are switched with ``torch.where``.
    """

    key = "radam"

    def _init_state(self) -> None:
        self.state["exp_avg"] = self.zeros()
        self.state["exp_avg_sq"] = self.zeros()

    def _schedule(self, beta1: float, beta2: float) -> tuple[float, ...]:
        """torch's Python-float math of one step for one (beta1, beta2)."""
        step = float(self.t)
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        # maximum length of the approximated SMA, and its length at this step
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2
        if not rho_t > 5.0:
            return bias_correction1, bias_correction2**0.5, 0.0, 0.0
        rect = (
            (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        ) ** 0.5
        return bias_correction1, bias_correction2**0.5, rect, 1.0

    def _update(self, grad: Tensor) -> None:
        h, s, param = self.knobs, self.state, self.points
        lr = h["lr"]
        beta1, beta2 = self.pair("betas")
        # grad = grads[i] if not maximize else -grads[i]
        grad = negate_if(self, grad)
        # if weight_decay != 0: decoupled: param.mul_(1 - lr * weight_decay),
        # else grad = grad.add(param, alpha=weight_decay)
        grad = weight_decay_step(self, grad)
        # exp_avg.lerp_(grad, 1 - beta1)
        s["exp_avg"].lerp_(grad, 1 - beta1)
        # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        s["exp_avg_sq"] = torch.addcmul(s["exp_avg_sq"] * beta2, (1 - beta2) * grad, grad)
        bias_correction1, bias_correction2_sqrt, rect, rectified = self.scalars(
            self._schedule, "betas"
        )
        # bias_corrected_exp_avg = exp_avg / bias_correction1
        bias_corrected_exp_avg = s["exp_avg"] / bias_correction1
        # adaptive lr = bias_correction2 ** 0.5 / exp_avg_sq.sqrt().add_(eps); a Python
        # float over a tensor is the tensor's reciprocal times the float in torch
        adaptive_lr = (s["exp_avg_sq"].sqrt() + h["eps"]).reciprocal() * bias_correction2_sqrt
        # rho_t > 5: param.add_(bias_corrected_exp_avg * lr * adaptive_lr * rect, alpha=-1.0)
        rectified_step = bias_corrected_exp_avg * lr * adaptive_lr * rect
        # otherwise param.add_(bias_corrected_exp_avg * lr, alpha=-1.0)
        plain_step = bias_corrected_exp_avg * lr
        param.sub_(torch.where(rectified != 0, rectified_step, plain_step))
