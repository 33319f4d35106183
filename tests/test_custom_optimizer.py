"""A user's own torch.optim.Optimizer subclass plugs in as one OptimizerSpec (README)."""

from __future__ import annotations

import pytest
import torch

from optlab import optimizers
from optlab.hparams import HParam
from optlab.optimizers import OptimizerConfig, OptimizerSpec, Paper
from optlab.surface_run import SurfaceRunConfig
from optlab.trajectory import collect


class SignSGD(torch.optim.Optimizer):
    """θ ← θ − γ·sign(g), the README's example."""

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


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(optimizers._BY_KEY, SIGNSGD.key, SIGNSGD)
    return SIGNSGD


def test_own_optimizer_runs_in_the_engine_beside_torch_ones(registered):
    cfg = SurfaceRunConfig(
        optimizers=(OptimizerConfig.from_text("signsgd:lr=0.1"), OptimizerConfig("adam")),
        surface="quadratic",
        start=(1.55, -1.05),
        steps=10,
    )
    sign, adam = collect(cfg)
    assert sign.optimizer.label == "signSGD (lr=0.1)"
    # Every step moves each coordinate by exactly lr towards the minimum.
    assert sign.x[10] == pytest.approx(0.55) and sign.y[10] == pytest.approx(-0.05)
    assert adam.status == "done"


def test_own_optimizer_is_validated_like_the_others(registered):
    with pytest.raises(ValueError, match="Invalid lr value: -1"):
        OptimizerConfig.from_text("signsgd:lr=-1")
