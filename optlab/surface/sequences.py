"""What the step inspector adds for optimizers with more than one point or a step-size estimate.

Schedule-Free (an ``averaged`` spec) keeps three sequences: x, the average the
run draws and ``optimizer.eval()`` gives; y, where the gradient is taken (the parameters
while training); z, the base sequence in its state. `sequence_points` names
them at a step and `add_sequence_markers` marks y and z on the inspector's
contour beside x. A spec's ``traces`` (Prodigy's ``d``) are scalars of
``param_groups[0]``; `trace_figure` draws one over the steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

from optlab.charts import color, html_subscripts
from optlab.surface.inspector import StepSnapshot

#: Marker symbols of Schedule-Free's sequences on the contour.
SEQUENCE_SYMBOLS = {"y": "diamond-open", "z": "square-open"}
#: What each marked sequence is, in the legend.
SEQUENCE_NAMES = {"y": "gradient taken here", "z": "base sequence"}


def sequence_points(snap: StepSnapshot) -> dict[str, tuple[float, float]]:
    """Schedule-Free's x_{t-1}, y_{t-1} and z_{t-1} at step t; empty for other optimizers."""
    if snap.train_point is None:
        return {}
    out = {"x": snap.point, "y": snap.train_point}
    z = snap.state_before.get("z")
    if isinstance(z, tuple) and len(z) == 2:
        out["z"] = (float(z[0]), float(z[1]))
    return out


def add_sequence_markers(fig: go.Figure, snap: StepSnapshot, palette_index: int) -> None:
    """Marks y_{t-1} and z_{t-1} on the inspector's contour (x is the drawn point)."""
    for name, (px, py) in sequence_points(snap).items():
        if name not in SEQUENCE_SYMBOLS:
            continue
        fig.add_trace(
            go.Scatter(
                x=[px],
                y=[py],
                mode="markers",
                marker={
                    "symbol": SEQUENCE_SYMBOLS[name],
                    "size": 13,
                    "color": color(palette_index),
                    "line": {"width": 2},
                },
                name=html_subscripts(f"{name}_{{t−1}} ({SEQUENCE_NAMES[name]})"),
                hovertemplate=html_subscripts(f"{name}_{{t−1}}")
                + " = (%{x:.6g}, %{y:.6g})<extra></extra>",
            )
        )


def trace_values(snaps: Sequence[StepSnapshot], key: str) -> list[float]:
    """``param_groups[0][key]`` before each step t = 1, 2, ... (NaN where absent)."""
    out = []
    for snap in snaps:
        value = snap.groups.get(key)
        out.append(float(value) if isinstance(value, int | float) else math.nan)
    return out


def trace_figure(
    snaps: Sequence[StepSnapshot], key: str, label: str, palette_index: int, mark: int
) -> go.Figure:
    """``param_groups[0][key]`` over the steps on a log axis, step ``mark`` highlighted."""
    values = trace_values(snaps, key)
    steps = [snap.step for snap in snaps]
    positive = [v for v in values if v > 0]
    fig = go.Figure(
        go.Scatter(
            x=steps,
            y=values,
            mode="lines",
            line={"color": color(palette_index)},
            name=key,
            hovertemplate=f"t = %{{x}}: {key} = %{{y:.6g}}<extra></extra>",
        )
    )
    if 1 <= mark <= len(values):
        fig.add_trace(
            go.Scatter(
                x=[steps[mark - 1]],
                y=[values[mark - 1]],
                mode="markers",
                marker={"size": 10, "color": color(palette_index)},
                showlegend=False,
                hoverinfo="skip",
            )
        )
    fig.update_layout(
        height=260,
        margin={"l": 60, "r": 20, "t": 40, "b": 40},
        title={"text": label},
        showlegend=False,
    )
    fig.update_xaxes(title_text="step t (value before the step)")
    # A log axis only when every value is positive (d is; another trace may not be).
    fig.update_yaxes(type="log" if positive and len(positive) == len(values) else "linear")
    return fig
