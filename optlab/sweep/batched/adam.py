"""Batched Adam and AdamW: torch.optim.Adam and AdamW per row (AMSGrad, weight decay)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from optlab.sweep.batched.base import BatchedOptimizer, negate_if, weight_decay_step


class BatchedAdam(BatchedOptimizer):
    """`torch.optim.Adam`, row by row: the registry's ``adam`` rule (`rule`)."""

    key = "adam"

    def _init_state(self) -> None:
        self.state["exp_avg"] = self.zeros()
        self.state["exp_avg_sq"] = self.zeros()
        self.state["max_exp_avg_sq"] = self.zeros()

    def _update(self, grad: Tensor) -> None:
        h, s, param, step = self.knobs, self.state, self.points, float(self.t)
        lr, eps = h["lr"], h["eps"]
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
        # bias_correction1 = 1 - beta1**step; bias_correction2**0.5 (Python floats)
        bias_correction1, bias_correction2_sqrt = self.scalars(
            lambda b1, b2: (1 - b1**step, (1 - b2**step) ** 0.5), "betas"
        )
        step_size = lr / bias_correction1
        # amsgrad: torch.maximum(max_exp_avg_sqs[i], exp_avg_sq, out=max_exp_avg_sqs[i])
        v = s["exp_avg_sq"]
        if self.some["amsgrad"]:
            amsgrad = h["amsgrad"]
            s["max_exp_avg_sq"] = torch.where(
                amsgrad, torch.maximum(s["max_exp_avg_sq"], v), s["max_exp_avg_sq"]
            )
            v = torch.where(amsgrad, s["max_exp_avg_sq"], v)
        # denom = (v.sqrt() / bias_correction2_sqrt).add_(eps), v the max under amsgrad
        denom = v.sqrt() / bias_correction2_sqrt + eps
        # param.addcdiv_(exp_avg, denom, value=-step_size)
        param.addcdiv_(-step_size * s["exp_avg"], denom)


class BatchedAdamW(BatchedAdam):
    """`torch.optim.AdamW`, row by row: Adam with decoupled decay, the registry's ``adamw`` rule."""

    key = "adamw"
    fixed: ClassVar[dict[str, object]] = {"decoupled_weight_decay": True}
