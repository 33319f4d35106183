"""Batched Adadelta: torch.optim.Adadelta per row."""

from __future__ import annotations

import torch
from torch import Tensor

from optlab.sweep.batched.base import BatchedOptimizer, coupled_decay, negate_if


class BatchedAdadelta(BatchedOptimizer):
    """`torch.optim.Adadelta`, row by row: the registry's ``adadelta`` rule (`rule`)."""

    key = "adadelta"

    def _init_state(self) -> None:
        self.state["square_avg"] = self.zeros()
        self.state["acc_delta"] = self.zeros()

    def _update(self, grad: Tensor) -> None:
        h, s, param = self.knobs, self.state, self.points
        rho, eps = h["rho"], h["eps"]
        # grad = grad if not maximize else -grad
        grad = negate_if(self, grad)
        # if weight_decay != 0: grad = grad.add(param, alpha=weight_decay)
        grad = coupled_decay(self, grad)
        # square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
        s["square_avg"] = torch.addcmul(s["square_avg"] * rho, (1 - rho) * grad, grad)
        # std = square_avg.add(eps).sqrt_(); delta = acc_delta.add(eps).sqrt_()
        std = (s["square_avg"] + eps).sqrt()
        delta = (s["acc_delta"] + eps).sqrt()
        # delta.div_(std).mul_(grad)
        delta = delta / std * grad
        # acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
        s["acc_delta"] = torch.addcmul(s["acc_delta"] * rho, (1 - rho) * delta, delta)
        # param.add_(delta, alpha=-lr)
        param.addcmul_(delta, -h["lr"])
