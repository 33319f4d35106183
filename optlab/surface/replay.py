"""The playground's replay: the recorded paths animated with Plotly's own frames.

Nothing here runs an optimizer: scrubbing the slider never re-runs the math.

Every frame draws the path so far through every turn: each step up to
`DENSE_STEPS` steps, and past that every local extremum of x or y plus an
evenly spaced sample (`path_points`). A path that zig-zags on each step (SGD
at the edge of stability) zig-zags in every frame, and the last frame is the
whole path. Frames carry their paths in full, so their count is set by the
points they hold (`FRAME_POINTS`): runs of up to about 500 steps get one
frame per step, longer ones fewer, evenly spaced; the page's step box shows
any single step exactly (`replay_figure`'s ``at_step``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from optlab.charts import color, legend_below, typed_array
from optlab.surface.plots import axes_2d_layout, minima_trace, shown_values
from optlab.surface.surfaces import Surface
from optlab.surface.trajectory import Trajectory

#: Path points all frames together may carry (8 bytes each, about 4 MB as sent).
FRAME_POINTS = 400_000
#: Most frames: one per step of a 500-step run.
MAX_FRAMES = 501
#: Fewest frames of a long run, however many optimizers it compares.
MIN_FRAMES = 30
#: Paths up to this many steps are drawn point by point; longer ones keep every
#: turn and every ``steps // DENSE_STEPS``-th point.
DENSE_STEPS = 1000
#: Milliseconds per frame at each speed of the speed menu; "1×" is the Play button's.
SPEEDS = {"¼×": 320, "½×": 160, "1×": 80, "2×": 40, "4×": 20}
#: The speed the Play button plays at.
NORMAL_SPEED = "1×"


def path_points(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Indices of the points a replay draws of a path: all of them up to `DENSE_STEPS`
    steps; past that, the ends, every local extremum of x or of y (no turn of the
    path is ever dropped), and every ``len // DENSE_STEPS``-th point between."""
    n = len(xs)
    if n <= DENSE_STEPS + 1:
        return np.arange(n)
    keep = np.zeros(n, dtype=bool)
    keep[:: n // DENSE_STEPS] = True
    keep[[0, -1]] = True
    for v in (xs, ys):
        d = np.sign(np.diff(v))
        # A turn: the direction changes (a flat run counts at both of its ends).
        keep[1:-1] |= d[1:] != d[:-1]
    return np.flatnonzero(keep)


def frame_count(points: int, last_step: int) -> int:
    """How many frames a replay may have whose paths hold ``points`` points in all
    and end at ``last_step``: a frame at every step while the frames together hold
    at most `FRAME_POINTS` points (a frame holds each path up to its step, half of
    it on average), between `MIN_FRAMES` and `MAX_FRAMES`."""
    fits = 2 * FRAME_POINTS // max(points, 1)
    return min(last_step + 1, MAX_FRAMES, max(MIN_FRAMES, fits))


def frame_steps(last_step: int, most: int) -> np.ndarray:
    """The steps the frames show: every step up to ``most`` frames, else ``most``
    evenly spaced steps, the first and the last always among them."""
    if last_step + 1 <= most:
        return np.arange(last_step + 1)
    return np.unique(np.linspace(0, last_step, most).round().astype(int))


def _surface_image(surface: Surface, n: int, levels: int = 30) -> Image.Image:
    """The surface as a banded grey image (dark = low), like the contour's fill."""
    _, _, z = surface.grid(n)
    shown, _ = shown_values(surface, z)
    finite = np.isfinite(shown)
    lo, hi = (np.min(shown[finite]), np.max(shown[finite])) if finite.any() else (0.0, 1.0)
    scaled = np.where(finite, (shown - lo) / max(hi - lo, 1e-300), 1.0)
    banded = np.floor(scaled * levels).clip(0, levels - 1) / (levels - 1)
    grey = (40 + banded * 215).astype(np.uint8)
    # Image rows run top to bottom; the grid's rows run from ymin up.
    return Image.fromarray(np.ascontiguousarray(np.flipud(grey)))


def _drawn(values: np.ndarray) -> np.ndarray:
    """``values`` as float32 for a frame (drawn, not measured: float64's last digits
    do not show), with the sign of every nonzero value kept: a path that spirals in
    to 1e-46 would round to 0 in float32 and lose the last turns of its zig-zag."""
    tiny = np.finfo(np.float32).tiny
    small = (values != 0) & (np.abs(values) < tiny)
    return np.where(small, np.copysign(tiny, values), values).astype(np.float32)


class _Paths:
    """The recorded paths as float32 columns (see `_drawn`), with each frame's traces."""

    def __init__(self, trajectories: Sequence[Trajectory]) -> None:
        self.columns = []
        for tr in trajectories:
            xs, ys = np.asarray(tr.x), np.asarray(tr.y)
            self.columns.append(
                (
                    np.asarray(tr.step),
                    _drawn(xs),
                    _drawn(ys),
                    path_points(xs, ys),
                )
            )

    @property
    def points(self) -> int:
        """Points a replay draws of these paths in full (`path_points` of each)."""
        return sum(len(keep) for *_, keep in self.columns)

    def at(self, step: int) -> list[dict[str, Any]]:
        """Two traces per path at ``step``: the path up to it, and the head."""
        traces: list[dict[str, Any]] = []
        for steps, xs, ys, keep in self.columns:
            m = int(np.searchsorted(steps, step, side="right"))
            idx = np.append(keep[keep < m - 1], m - 1)
            traces.append({"type": "scatter", "x": typed_array(xs[idx]), "y": typed_array(ys[idx])})
            head_x, head_y = xs[m - 1 : m], ys[m - 1 : m]
            traces.append({"type": "scatter", "x": typed_array(head_x), "y": typed_array(head_y)})
        return traces


def _play(duration: int) -> dict[str, Any]:
    return {
        "frame": {"duration": duration, "redraw": True},
        "transition": {"duration": 0},
        "fromcurrent": True,
        "mode": "immediate",
    }


#: How a slider step or Pause shows one frame: at once, no transition.
_SHOW = {
    "frame": {"duration": 0, "redraw": True},
    "mode": "immediate",
    "transition": {"duration": 0},
}


#: Pixels under the plot: the x axis (ticks and title), then the controls (a row
#: of Play, Pause and the speed menu, and under it the slider), then the legend.
AXIS_PX, CONTROLS_PX, LEGEND_PX = 50, 150, 50
#: The height of the buttons' row, above the slider.
BUTTONS_PX = 46


def _controls(fig: go.Figure, steps: np.ndarray, active: int, plot_height: float) -> None:
    """Play and Pause (left) and the speed menu (right) in a row under the x axis, and
    the slider the whole width under them: rows apart, the buttons can never sit on
    the slider, whatever the font (a projector's 18 px buttons are twice as wide).
    Placed in pixels: Plotly places them in fractions of the plot's height."""
    below = -AXIS_PX / plot_height
    fig.update_layout(
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                x=0,
                y=below,
                xanchor="left",
                yanchor="top",
                pad=dict(t=0, r=4),
                buttons=[
                    dict(
                        label="▶ Play", method="animate", args=[None, _play(SPEEDS[NORMAL_SPEED])]
                    ),
                    dict(label="❚❚ Pause", method="animate", args=[[None], _SHOW]),
                ],
            ),
            dict(
                type="dropdown",
                direction="up",
                x=1,
                y=below,
                xanchor="right",
                yanchor="top",
                showactive=True,
                active=list(SPEEDS).index(NORMAL_SPEED),
                buttons=[
                    dict(label=f"speed {name}", method="animate", args=[None, _play(ms)])
                    for name, ms in SPEEDS.items()
                ],
            ),
        ],
        sliders=[
            dict(
                active=active,
                x=0,
                len=1,
                y=below - BUTTONS_PX / plot_height,
                yanchor="top",
                pad=dict(t=0, b=0),
                currentvalue=dict(prefix="step ", visible=True, xanchor="right"),
                steps=[dict(label=str(k), method="animate", args=[[str(k)], _SHOW]) for k in steps],
            )
        ],
    )


def replay_figure(
    surface: Surface,
    trajectories: Sequence[Trajectory],
    *,
    at_step: int = 0,
    frames: int | None = None,
    n: int = 200,
    height: int = 640,
) -> go.Figure:
    """An animated replay of the paths: Plotly frames with a slider, Play, Pause and
    a speed menu.

    Frame k draws every path through every step up to step k, and a head at
    step k. The surface is a layout image, not a contour trace: plotly.js hides
    contour and heatmap traces once an animation starts (plotly.py issue 2151,
    open), while images stay put.

    Args:
        surface: The surface under the paths.
        trajectories: The recorded paths.
        at_step: The step the figure shows before anything is played; any step,
            even one between two frames (the slider then sits on the frame
            before it). Play continues from there.
        frames: The most frames (default: `frame_count` for these paths).
        n: Grid points per side of the background image.
        height: The figure's height in pixels.
    """
    (x0, x1), (y0, y1) = surface.bounds
    fig = go.Figure()
    fig.add_layout_image(
        source=_surface_image(surface, n),
        xref="x",
        yref="y",
        x=x0,
        y=y1,
        sizex=x1 - x0,
        sizey=y1 - y0,
        sizing="stretch",
        layer="below",
    )
    last = max((tr.step[-1] for tr in trajectories), default=0)
    at_step = min(max(int(at_step), 0), last)
    paths = _Paths(trajectories)
    steps = frame_steps(last, frames or frame_count(paths.points, last))
    for i, trace in enumerate(paths.at(at_step)):
        k, is_head = divmod(i, 2)
        label = trajectories[k].optimizer.label
        fig.add_trace(
            go.Scatter(
                trace,
                name=label,
                legendgroup=str(k),
                showlegend=not is_head,
                mode="markers" if is_head else "lines",
                line=dict(color=color(k), width=2.5),
                marker=dict(size=12, color=color(k), line=dict(width=1.5, color="white")),
                hovertemplate=f"{label}<br>x=%{{x:.4g}}<br>y=%{{y:.4g}}<extra></extra>",
            )
        )
    minima = minima_trace(surface)
    if minima is not None:
        fig.add_trace(minima)
    moving = list(range(2 * len(trajectories)))
    # Plain dicts: Plotly validates them once, as the figure takes them.
    fig.frames = [{"data": paths.at(int(k)), "traces": moving, "name": str(k)} for k in steps]
    layout = axes_2d_layout(surface, height)
    for axis in ("xaxis", "yaxis"):
        layout[axis].update(showgrid=False, zeroline=False)
    fig.update_layout(layout)
    bottom = AXIS_PX + CONTROLS_PX + LEGEND_PX
    fig.update_layout(margin=dict(l=10, r=10, t=20, b=bottom))
    plot_height = max(height - 20 - bottom, 100)
    active = int(np.searchsorted(steps, at_step, side="right")) - 1
    _controls(fig, steps, active, plot_height)
    legend_below(fig, gap_px=AXIS_PX + CONTROLS_PX)
    return fig
