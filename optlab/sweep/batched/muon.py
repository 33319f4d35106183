"""Batched Muon: torch.optim.Muon per row, each row a 1 × 2 matrix, in bfloat16 like torch."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from optlab.optim.builtin_muon import NS_COEFFICIENTS
from optlab.sweep.batched.base import BatchedOptimizer


def _adjusted_ratio(adjust_lr_fn: object, shape: tuple[int, int]) -> float:
    """torch's ``_adjust_lr`` ratio for a parameter of ``shape`` (a Python float, as
    torch computes it)."""
    a, b = shape
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1, a / b))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(a, b))
    return 1.0


def newton_schulz_rows(update: Tensor, ns_steps: Tensor, eps: Tensor) -> Tensor:
    """torch's ``_zeropower_via_newtonschulz`` on every row as a 1 × 2 matrix, batched.

    The same bfloat16 operations as torch's, one batch dimension added: the
    norm over the row, the clamp at ε (in bfloat16, as torch clamps a bfloat16
    norm by a Python float), and per iteration ``bmm`` and ``baddbmm`` where
    torch calls ``@`` and ``addmm``. A row with fewer steps keeps its value once
    its own ``ns_steps`` are done.

    Args:
        update: ``(N, 2)`` float64 updates.
        ns_steps: ``(N, 1)`` iteration counts.
        eps: ``(N, 1)`` ε.

    Returns:
        ``(N, 2)`` bfloat16, each row orthogonalised.
    """
    a, b, c = NS_COEFFICIENTS
    x = update.bfloat16().unsqueeze(1)  # (N, 1, 2): each row its own 1 × 2 matrix
    # ortho_grad.div_(ortho_grad.norm().clamp(min=eps))
    norm = x.norm(dim=(1, 2), keepdim=True)
    x = x / torch.maximum(norm, eps.bfloat16().unsqueeze(1))
    steps = ns_steps.reshape(-1, 1, 1)
    for k in range(int(ns_steps.max().item()) if ns_steps.numel() else 0):
        # gram_matrix = ortho_grad @ ortho_grad.T
        gram = torch.bmm(x, x.transpose(1, 2))
        # gram_update = torch.addmm(gram_matrix, gram_matrix, gram_matrix, beta=b, alpha=c)
        gram_update = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)
        # ortho_grad = torch.addmm(ortho_grad, gram_update, ortho_grad, beta=a)
        stepped = torch.baddbmm(x, gram_update, x, beta=a)
        x = torch.where(k < steps, stepped, x)
    return x.squeeze(1)


class BatchedMuon(BatchedOptimizer):
    """`torch.optim.Muon`, row by row, each row as torch takes a surface point (a 1 × 2
    matrix, `OptimizerSpec.point_shape`): the registry's ``muon`` rule (`rule`).

    torch orthogonalises in bfloat16; the batched products round as torch's
    per-matrix ones do on the CPU, which the equivalence tests check row by row.
    """

    key = "muon"

    def _init_state(self) -> None:
        self.state["momentum_buffer"] = self.zeros()

    def _update(self, grad: Tensor) -> None:
        h, param = self.knobs, self.points
        momentum, lr = h["momentum"], h["lr"]
        # buf.lerp_(grad, 1 - momentum)
        buf = self.state["momentum_buffer"]
        buf.lerp_(grad, 1 - momentum)
        # update = grad.lerp(buf, momentum) if nesterov else buf
        update = buf
        if self.some["nesterov"]:
            ahead = grad.lerp(buf, momentum)
            nesterov = h["nesterov"]
            update = ahead if self.every["nesterov"] else torch.where(nesterov, ahead, buf)
        # update = _zeropower_via_newtonschulz(update, ns_coefficients, ns_steps, eps)
        ortho = newton_schulz_rows(update, h["ns_steps"], h["eps"])
        # adjusted_lr = _adjust_lr(lr, adjust_lr_fn, param.shape), param.shape = (1, 2)
        adjusted_lr = lr * _adjusted_ratio(self.choices["adjust_lr_fn"], (1, 2))
        # param.mul_(1 - lr * weight_decay)
        param.mul_(1 - lr * h["weight_decay"])
        # param.add_(update, alpha=-adjusted_lr)
        param.addcmul_(ortho.double(), -adjusted_lr)
