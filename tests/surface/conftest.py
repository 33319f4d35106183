"""Runs the surface chart tests share: real torch.optim, computed once per module."""

from __future__ import annotations

import pytest

from optlab.surface.problem import Problem
from optlab.surface.run import DIVERGED, SurfaceRunConfig
from optlab.surface.trajectory import Trajectory, collect
from tests.support.paths import opt

#: The steps of the `rosen` runs.
STEPS = 120


@pytest.fixture(scope="module")
def rosen() -> list[Trajectory]:
    """Adam converging, SGD diverging at once, LBFGS with many evaluations per step."""
    cfg = SurfaceRunConfig(
        (opt("adam", lr=0.05), opt("sgd", lr=1.0), opt("lbfgs", line_search_fn="strong_wolfe")),
        problem=Problem(steps=STEPS),
    )
    trajectories = collect(cfg)
    assert trajectories[1].status == DIVERGED
    return trajectories


@pytest.fixture(scope="module")
def himmel() -> list[Trajectory]:
    """Adam and SGD on Himmelblau, whose four minima all have f = 0."""
    cfg = SurfaceRunConfig(
        (opt("adam", lr=0.1), opt("sgd", lr=0.01)), problem=Problem(surface="himmelblau", steps=60)
    )
    return collect(cfg)
