"""Batched NAdam: torch.optim.NAdam per row (momentum schedule, coupled or decoupled decay)."""

from __future__ import annotations

import torch
from torch import Tensor

from optlab.sweep.batched.base import BatchedOptimizer, negate_if, weight_decay_step


def _scalar_dtype() -> torch.dtype:
    """The dtype torch keeps ``mu_product`` in (its ``_get_scalar_dtype``)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


class BatchedNAdam(BatchedOptimizer):
    """`torch.optim.NAdam`, row by row: the registry's ``nadam`` rule (`rule`).

    torch keeps the product of the momentum schedule, ``mu_product``, in a
    0-dim tensor of its scalar dtype (float32 unless the default dtype is
    float64) and multiplies it by μ_t rounded to that dtype; the per-row
    ``mu_product`` state does the same.
    """

    key = "nadam"

    def _init_state(self) -> None:
        self.state["exp_avg"] = self.zeros()
        self.state["exp_avg_sq"] = self.zeros()
        self.state["mu_product"] = torch.ones(self.n, 1, dtype=_scalar_dtype())

    def _schedule(self, beta1: float, beta2: float, psi: float) -> tuple[float, float, float]:
        """torch's Python-float powers of one step for one (beta1, beta2, momentum_decay)."""
        step = float(self.t)
        bias_correction2 = 1 - beta2**step
        # calculate the momentum cache mu^{t} and mu^{t+1}
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * psi)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * psi)))
        return bias_correction2, mu, mu_next

    def _update(self, grad: Tensor) -> None:
        h, s, param = self.knobs, self.state, self.points
        lr = h["lr"]
        beta1, beta2 = self.pair("betas")
        bias_correction2, mu, mu_next = self.scalars(self._schedule, "betas", "momentum_decay")
        # grad = grads[i] if not maximize else -grads[i]
        grad = negate_if(self, grad)
        # if weight_decay != 0: decoupled: param.mul_(1 - lr * weight_decay),
        # else grad = grad.add(param, alpha=weight_decay)
        grad = weight_decay_step(self, grad)
        # mu_product *= mu
        s["mu_product"].mul_(mu.to(s["mu_product"].dtype))
        mu_product = s["mu_product"].to(torch.float64)
        # exp_avg.lerp_(grad, 1 - beta1)
        s["exp_avg"].lerp_(grad, 1 - beta1)
        # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        s["exp_avg_sq"] = torch.addcmul(s["exp_avg_sq"] * beta2, (1 - beta2) * grad, grad)
        # denom = exp_avg_sq.div(bias_correction2).sqrt()
        denom = (s["exp_avg_sq"] / bias_correction2).sqrt()
        # mu_product_next = _get_value(mu_product) * mu_next; denom.add_(eps)
        mu_product_next = mu_product * mu_next
        denom = denom + h["eps"]
        # param.addcdiv_(grad, denom, value=(-lr * (1.0 - mu) / (1.0 - mu_product)))
        param.addcdiv_(-lr * (1.0 - mu) / (1.0 - mu_product) * grad, denom)
        # param.addcdiv_(exp_avg, denom, value=(-lr * mu_next) / (1.0 - mu_product_next))
        param.addcdiv_((-lr * mu_next) / (1.0 - mu_product_next) * s["exp_avg"], denom)
