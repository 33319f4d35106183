"""Batched SGD: torch.optim.SGD (momentum, dampening, Nesterov, weight decay) per row."""

from __future__ import annotations

import torch
from torch import Tensor

from optlab.sweep.batched.base import BatchedOptimizer, coupled_decay, negate_if


class BatchedSGD(BatchedOptimizer):
    """`torch.optim.SGD`, row by row: the registry's ``sgd`` rule (`rule`).

    A row with momentum 0 takes torch's plain path (the buffer is kept but unused);
    the buffer starts as a copy of the first gradient, as in torch.
    """

    key = "sgd"

    def _check(self) -> None:
        h = self.knobs
        bad = h["nesterov"] & ((h["momentum"] <= 0) | (h["dampening"] != 0))
        if bool(bad.any()):
            row = int(bad.flatten().nonzero()[0])
            raise ValueError(
                f"Nesterov momentum requires a momentum and zero dampening (row {row})"
            )

    def _init_state(self) -> None:
        self.state["momentum_buffer"] = self.zeros()

    def _update(self, grad: Tensor) -> None:
        h, param = self.knobs, self.points
        momentum, dampening = h["momentum"], h["dampening"]
        # grad = grads[i] if not maximize else -grads[i]
        grad = negate_if(self, grad)
        # if weight_decay != 0: grad = grad.add(param, alpha=weight_decay)
        grad = coupled_decay(self, grad)
        # if momentum != 0: the buffer is a clone of grad on the first step,
        # else buf.mul_(momentum).add_(grad, alpha=1 - dampening)
        if self.some["momentum"]:
            buf = self.state["momentum_buffer"]
            first = self.t == 1
            buf = grad.clone() if first else torch.addcmul(buf * momentum, grad, 1 - dampening)
            self.state["momentum_buffer"] = buf
            # nesterov: grad = grad.add(buf, alpha=momentum); otherwise grad = buf
            stepped = buf
            if self.some["nesterov"]:
                ahead = torch.addcmul(grad, buf, momentum)
                nesterov = h["nesterov"]
                stepped = ahead if self.every["nesterov"] else torch.where(nesterov, ahead, buf)
            grad = stepped if self.every["momentum"] else torch.where(momentum != 0, stepped, grad)
        # param.add_(grad, alpha=-lr)
        param.addcmul_(grad, -h["lr"])
