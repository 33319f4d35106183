"""Batched Adagrad: torch.optim.Adagrad per row (lr decay, initial accumulator, weight decay)."""

from __future__ import annotations

from torch import Tensor

from optlab.sweep.batched.base import BatchedOptimizer, coupled_decay, negate_if


class BatchedAdagrad(BatchedOptimizer):
    """`torch.optim.Adagrad`, row by row: the registry's ``adagrad`` rule (`rule`)."""

    key = "adagrad"

    def _init_state(self) -> None:
        # state["sum"] = torch.full_like(p, initial_accumulator_value)
        self.state["sum"] = self.zeros() + self.knobs["initial_accumulator_value"]

    def _update(self, grad: Tensor) -> None:
        h, s, param, step = self.knobs, self.state, self.points, float(self.t)
        # grad = grad if not maximize else -grad
        grad = negate_if(self, grad)
        # if weight_decay != 0: grad = grad.add(param, alpha=weight_decay)
        grad = coupled_decay(self, grad)
        # clr = lr / (1 + (step - 1) * lr_decay)
        clr = h["lr"] / (1 + (step - 1) * h["lr_decay"])
        # state_sum.addcmul_(grad, grad, value=1); std = state_sum.sqrt().add_(eps)
        s["sum"].addcmul_(grad, grad, value=1)
        std = s["sum"].sqrt() + h["eps"]
        # param.addcdiv_(grad, std, value=-clr)
        param.addcdiv_(-clr * grad, std)
