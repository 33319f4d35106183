"""Batched RMSprop: torch.optim.RMSprop per row (momentum, centered, weight decay)."""

from __future__ import annotations

import torch
from torch import Tensor

from optlab.sweep.batched.base import BatchedOptimizer, coupled_decay, negate_if


class BatchedRMSprop(BatchedOptimizer):
    """`torch.optim.RMSprop`, row by row: the registry's ``rmsprop`` rule (`rule`).

    The momentum buffer and the gradient average are kept for every row; rows
    with momentum 0 or without ``centered`` leave them unused, as torch does
    not create them.
    """

    key = "rmsprop"

    def _init_state(self) -> None:
        self.state["square_avg"] = self.zeros()
        self.state["momentum_buffer"] = self.zeros()
        self.state["grad_avg"] = self.zeros()

    def _update(self, grad: Tensor) -> None:
        h, s, param = self.knobs, self.state, self.points
        alpha, momentum, centered = h["alpha"], h["momentum"], h["centered"]
        # grad = grad if not maximize else -grad
        grad = negate_if(self, grad)
        # if weight_decay != 0: grad = grad.add(param, alpha=weight_decay)
        grad = coupled_decay(self, grad)
        # square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        s["square_avg"] = torch.addcmul(s["square_avg"] * alpha, (1 - alpha) * grad, grad)
        # centered: grad_avg.lerp_(grad, 1 - alpha);
        # avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        s["grad_avg"] = torch.where(centered, s["grad_avg"].lerp(grad, 1 - alpha), s["grad_avg"])
        variance = torch.addcmul(s["square_avg"], s["grad_avg"], s["grad_avg"], value=-1)
        # otherwise avg = square_avg.sqrt(); then avg.add_(eps)
        avg = torch.where(centered, variance, s["square_avg"]).sqrt() + h["eps"]
        # momentum > 0: buf.mul_(momentum).addcdiv_(grad, avg); param.add_(buf, alpha=-lr)
        has_momentum = momentum > 0
        buf = torch.addcdiv(s["momentum_buffer"] * momentum, grad, avg)
        s["momentum_buffer"] = torch.where(has_momentum, buf, s["momentum_buffer"])
        with_momentum = torch.addcmul(param, buf, -h["lr"])
        # otherwise param.addcdiv_(grad, avg, value=-lr)
        plain = torch.addcdiv(param, -h["lr"] * grad, avg)
        param.copy_(torch.where(has_momentum, with_momentum, plain))
