"""Batched Adamax: torch.optim.Adamax per row."""

from __future__ import annotations

import torch
from torch import Tensor

from optlab.sweep.batched.base import BatchedOptimizer, coupled_decay, negate_if


class BatchedAdamax(BatchedOptimizer):
    """`torch.optim.Adamax`, row by row: the registry's ``adamax`` rule (`rule`)."""

    key = "adamax"

    def _init_state(self) -> None:
        self.state["exp_avg"] = self.zeros()
        self.state["exp_inf"] = self.zeros()

    def _update(self, grad: Tensor) -> None:
        h, s, param, step = self.knobs, self.state, self.points, float(self.t)
        beta1, beta2 = self.pair("betas")
        # grad = grad if not maximize else -grad
        grad = negate_if(self, grad)
        # if weight_decay != 0: grad = grad.add(param, alpha=weight_decay)
        grad = coupled_decay(self, grad)
        # exp_avg.lerp_(grad, 1 - beta1)
        s["exp_avg"].lerp_(grad, 1 - beta1)
        # torch.maximum(exp_inf.mul_(beta2), grad.abs().add_(eps), out=exp_inf)
        s["exp_inf"] = torch.maximum(s["exp_inf"] * beta2, grad.abs() + h["eps"])
        # bias_correction = 1 - beta1 ** step; clr = lr / bias_correction
        (bias_correction,) = self.scalars(lambda b1, _b2: (1 - b1**step,), "betas")
        clr = h["lr"] / bias_correction
        # param.addcdiv_(exp_avg, exp_inf, value=-clr)
        param.addcdiv_(-clr * s["exp_avg"], s["exp_inf"])
