"""A user's own torch.optim.Optimizer subclass plugs in as one OptimizerSpec (README)."""

from __future__ import annotations

import pytest

from optlab.optim.config import OptimizerConfig
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.trajectory import collect
from tests.support.resources import register
from tests.support.signsgd import SIGNSGD


@pytest.fixture
def registered(monkeypatch):
    register(monkeypatch, SIGNSGD)
    return SIGNSGD


def test_own_optimizer_runs_in_the_engine_beside_torch_ones(registered):
    cfg = SurfaceRunConfig(
        optimizers=(OptimizerConfig.from_text("signsgd:lr=0.1"), OptimizerConfig("adam")),
        problem=Problem(surface="quadratic", start=(1.55, -1.05), steps=10),
    )
    sign, adam = collect(cfg)
    assert sign.optimizer.label == "signSGD (lr=0.1)"
    # Every step moves each coordinate by exactly lr towards the minimum.
    assert sign.x[10] == pytest.approx(0.55) and sign.y[10] == pytest.approx(-0.05)
    assert adam.status == "done"


def test_own_optimizer_is_validated_like_the_others(registered):
    with pytest.raises(ValueError, match="Invalid lr value: -1"):
        OptimizerConfig.from_text("signsgd:lr=-1")
