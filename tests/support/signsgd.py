"""signSGD, the README's example of your own optimizer: a class outside torch.optim.

Tests register it (`tests.support.resources.register`) to check that such an
optimizer runs in the engine and is embedded, as source, in exported scripts.
"""

from __future__ import annotations

import torch

from optlab.optim import HParam, OptimizerSpec, Paper


class SignSGD(torch.optim.Optimizer):
    """θ ← θ − γ·sign(g)."""

    def __init__(self, params, lr=1e-2):
        super().__init__(params, dict(lr=lr))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-group["lr"])


SIGNSGD = OptimizerSpec(
    key="signsgd",
    label="signSGD",
    factory=SignSGD,
    hparams=(HParam("lr", 1e-2, 0.0, 1000.0, log=True, low_open=True, help="step size γ"),),
    rule=r"\theta_t = \theta_{t-1} - \gamma\,\operatorname{sign}(g_t)",
    paper=Paper("Bernstein et al., signSGD (2018)", "https://arxiv.org/abs/1802.04434"),
)
