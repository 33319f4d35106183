"""Paths for figure tests: real runs, hand-made spirals and zig-zags, and readers of
what a figure carries (typed arrays included)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import plotly.graph_objects as go

from optlab.optim.config import OptimizerConfig
from optlab.surface.trajectory import Trajectory


def opt(key: str, **values: Any) -> OptimizerConfig:
    return OptimizerConfig.create(key, **values)


def hand_made(x: np.ndarray, y: np.ndarray, key: str = "adam", status: str = "done") -> Trajectory:
    """A trajectory through these points (loss: Rosenbrock's value there)."""
    n = len(x)
    loss = (1 - x) ** 2 + 100 * (y - x**2) ** 2
    return Trajectory(
        optimizer=opt(key),
        step=tuple(range(n)),
        x=tuple(np.asarray(x, dtype=float).tolist()),
        y=tuple(np.asarray(y, dtype=float).tolist()),
        loss=tuple(loss.tolist()),
        grad_norm=(1.0,) * n,
        lr=(1e-3,) * n,
        evals=tuple(range(n)),
        status=status,
    )


def long_trajectory(n_steps: int = 5000, key: str = "adam") -> Trajectory:
    """A smooth spiral into Rosenbrock's minimum with ``n_steps`` steps."""
    t = np.linspace(0.0, 1.0, n_steps + 1)
    x = 1.0 - 2.2 * (1 - t) * np.cos(12 * t)
    y = 1.0 + 1.5 * (1 - t) * np.sin(12 * t)
    return hand_made(x, y, key)


def zigzag_trajectory(n_steps: int = 1000, key: str = "sgd") -> Trajectory:
    """A path whose y flips sign on every step (SGD at the edge of stability on a
    steep valley) while x creeps forward: every point is a turn."""
    k = np.arange(n_steps + 1)
    x = -1.5 + 2.5 * k / n_steps
    y = 0.9 * (-1.0) ** k * 0.999**k
    return hand_made(x, y, key)


def sign_changes(values: Any) -> int:
    """How often consecutive values change sign."""
    v = np.sign(np.asarray(values, dtype=float))
    return int(np.count_nonzero(v[1:] != v[:-1]))


def values(array: Any) -> np.ndarray:
    """A figure's array as numbers: a list, a numpy array, or plotly.js's typed-array
    spec (``{"dtype", "bdata"}``, base64 of little-endian bytes)."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype="<" + array["dtype"])
    return np.asarray(array, dtype=float)


def as_drawn(x: float, y: float) -> tuple[float, float]:
    """A point as a replay may send it: frames are allowed float32 precision."""
    return float(np.float32(x)), float(np.float32(y))


def points(trace: Any) -> list[tuple[float, float]]:
    """A trace's points, as drawn."""
    return [as_drawn(x, y) for x, y in zip(values(trace.x), values(trace.y), strict=True)]


def paths_by_label(fig: go.Figure, trajectories: list[Trajectory]) -> dict[str, Any]:
    """The one line trace named after each optimizer's label."""
    out = {}
    for tr in trajectories:
        named = [
            t
            for t in fig.data
            if t.name == tr.optimizer.label and "lines" in (getattr(t, "mode", None) or "lines")
        ]
        assert len(named) == 1, (tr.optimizer.label, [t.name for t in fig.data])
        out[tr.optimizer.label] = named[0]
    return out
