"""Plotly figure builders: pure functions of a surface and trajectories.

Nothing here runs an optimizer: the replay animates recorded paths with
Plotly frames, so scrubbing the slider never re-runs the math. Large paths
are thinned for drawing (first and last points always kept); the numbers
in tables and exports are never thinned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from optlab.charts import color, colorscale, dash, figure, legend_below, legend_spec
from optlab.surface.surfaces import Surface
from optlab.surface.trajectory import Trajectory

#: The surface is drawn in greys so that coloured paths stand out on it.
SURFACE_COLORSCALE = colorscale("Greys_r")
#: Offset under the log colouring, so the minimum itself has a finite colour.
LOG_OFFSET = 1e-3


def shown_values(surface: Surface, z: np.ndarray) -> tuple[np.ndarray, str]:
    """The values a chart shows for f, and their axis label.

    Surfaces spanning many decades (Rosenbrock) are shown as
    ``log10(f - f* + 1e-3)`` so the valley floor is visible.
    """
    z = np.asarray(z, dtype=np.float64)
    f_min = surface.f_min
    if surface.log_scale and f_min is not None:
        return np.log10(np.clip(z - f_min, 0.0, None) + LOG_OFFSET), "log₁₀(f − f* + 10⁻³)"
    return z, "f(x, y)"


#: Paths longer than this are drawn with WebGL (``scattergl``): an SVG marker per
#: step gets slow past a few thousand; every step is drawn either way.
WEBGL_POINTS = 1000
#: Paths of up to this many points get a dot per step; a longer one is a line
#: through every step (each turn is a vertex of it, and hovering names each step).
#: The dots are an SVG element each: 3 paths of 500 steps cost a first visit
#: about a second of drawing, and at that density they read as a thick line.
DOTTED_POINTS = 200


def axes_2d_layout(surface: Surface, height: int) -> dict:
    """The layout of a chart of the plane: x and y at one scale over the surface's
    bounds, the legend under the plot."""
    (x0, x1), (y0, y1) = surface.bounds
    layout = dict(
        xaxis=dict(range=[x0, x1], title=dict(text="x"), constrain="domain"),
        yaxis=dict(range=[y0, y1], title=dict(text="y"), scaleanchor="x", scaleratio=1),
        height=height,
        margin=dict(l=10, r=10, t=20, b=10),
        plot_bgcolor="white",
    )
    layout["legend"] = legend_spec(layout)
    return layout


def _contour_trace(surface: Surface, n: int) -> dict:
    xs, ys, z = surface.grid(n)
    shown, label = shown_values(surface, z)
    return dict(
        type="contour",
        x=xs,
        y=ys,
        z=shown,
        colorscale=SURFACE_COLORSCALE,
        ncontours=30,
        line=dict(width=0.5, color="rgba(255,255,255,0.35)"),
        colorbar=dict(title=dict(text=label, side="right"), thickness=12),
        hovertemplate="x=%{x:.3f}<br>y=%{y:.3f}<br>" + label + "=%{z:.3g}<extra></extra>",
        showlegend=False,
        name="surface",
    )


def start_trace(x: float, y: float) -> dict:
    """The runs' common start: a white disc ringed in black, named in the legend."""
    return dict(
        type="scatter",
        x=[x],
        y=[y],
        mode="markers",
        marker=dict(symbol="circle", size=12, color="white", line=dict(width=2, color="black")),
        name="start",
        hovertemplate="start<extra></extra>",
    )


def minima_trace(surface: Surface) -> dict | None:
    """The global minima as gold stars; for a typed formula, named "estimated minimum".

    A formula whose search found no minimum inside the bounds gets a legend entry that
    says so (no star: marking the lowest point of the box would call the box's edge a
    minimum); a registered surface without minima (the saddles) gets nothing.
    """
    if not surface.minima:
        if not surface.estimated:
            return None
        return dict(
            type="scatter",
            x=[None],
            y=[None],
            mode="markers",
            marker=dict(symbol="star-open", size=16, color="gold", line=dict(width=1.5)),
            name="no minimum found inside the bounds",
            hoverinfo="skip",
        )
    word = "estimated minimum" if surface.estimated else "minimum"
    return dict(
        type="scatter",
        x=[m.x for m in surface.minima],
        y=[m.y for m in surface.minima],
        mode="markers",
        marker=dict(symbol="star", size=16, color="gold", line=dict(width=1, color="black")),
        name="estimated minimum" if surface.estimated else "known minimum",
        hovertemplate=f"{word} (%{{x:.4g}}, %{{y:.4g}})<br>f* = %{{text}}<extra></extra>",
        text=[f"{m.value:.10g}" for m in surface.minima],
    )


#: Points per side of the contour's click grid (`start_picker_trace`).
PICK_GRID = 61


def start_picker_trace(surface: Surface, n: int = PICK_GRID) -> dict:
    """An invisible grid of points over the bounds, one every 1/60 of each side.

    plotly.js reports clicks on points, not on a contour's fill, so these make
    a click anywhere on the chart pick the grid point under the pointer (the
    page starts the paths there). They show no hover label and no legend entry.
    """
    (x0, x1), (y0, y1) = surface.bounds
    gx, gy = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    return dict(
        type="scattergl",
        x=gx.ravel(),
        y=gy.ravel(),
        mode="markers",
        marker=dict(size=8, opacity=0),
        selected=dict(marker=dict(opacity=0)),
        unselected=dict(marker=dict(opacity=0)),
        hoverinfo="none",
        showlegend=False,
        name="start here",
    )


def path_trace(tr: Trajectory, palette_index: int) -> dict:
    """Every step of one path in its optimizer's colour, a dot per step on a short
    path (`DOTTED_POINTS`); hovering names the optimizer and the step in a label of
    that colour."""
    c = color(palette_index)
    n = len(tr.x)
    return dict(
        type="scattergl" if n > WEBGL_POINTS else "scatter",
        x=np.asarray(tr.x),
        y=np.asarray(tr.y),
        mode="lines+markers" if n <= DOTTED_POINTS else "lines",
        line=dict(color=c, width=2.5, dash=dash(palette_index)),
        marker=dict(size=4, color=c),
        name=tr.optimizer.label,
        legendgroup=str(palette_index),
        hoverlabel=dict(bgcolor=c, font=dict(color="white")),
        # Steps are recorded from 0 without gaps, so a point's number is its step.
        hovertemplate=(
            f"<b>{tr.optimizer.label}</b><br>step %{{pointNumber}}"
            "<br>x=%{x:.4g}, y=%{y:.4g}<extra></extra>"
        ),
    )


def end_trace(tr: Trajectory, palette_index: int) -> dict:
    """A path's end: a cross in its optimizer's colour, saying how the run ended."""
    c = color(palette_index)
    ended = f"diverged at step {tr.diverged_at}" if tr.diverged_at is not None else tr.status
    return dict(
        type="scatter",
        x=[tr.x[-1]],
        y=[tr.y[-1]],
        mode="markers",
        marker=dict(symbol="x", size=14, color=c, line=dict(width=1.5, color="white")),
        name=f"{tr.optimizer.label} end",
        legendgroup=str(palette_index),
        showlegend=False,
        hoverlabel=dict(bgcolor=c, font=dict(color="white")),
        hovertemplate=f"<b>{tr.optimizer.label}</b> end ({ended})<extra></extra>",
    )


def contour_figure(
    surface: Surface,
    trajectories: Sequence[Trajectory],
    *,
    n: int = 120,
    height: int = 520,
    palette: Sequence[int] | None = None,
    clickable: bool = False,
) -> go.Figure:
    """The surface's contour with every optimizer's path on it, every step drawn.

    Each path has its own colour and dash, a circle at the shared start and a
    cross of its own colour at its end; known minima are gold stars.

    Args:
        surface: The surface.
        trajectories: The paths.
        n: Grid points per side of the contour.
        height: Figure height in pixels.
        palette: Each path's index into the optimizers' colours (default 0, 1, ...):
            a chart of one optimizer keeps the colour it has on every other chart.
        clickable: Lay `start_picker_trace` over the surface, so a click anywhere
            picks a point (with ``on_select``, the page moves the start there).
    """
    traces = [_contour_trace(surface, n)]
    if clickable:
        traces.append(start_picker_trace(surface))
    indices = list(palette) if palette is not None else list(range(len(trajectories)))
    for tr, i in zip(trajectories, indices, strict=True):
        traces += [path_trace(tr, i), end_trace(tr, i)]
    if trajectories:
        traces.append(start_trace(trajectories[0].x[0], trajectories[0].y[0]))
    minima = minima_trace(surface)
    if minima is not None:
        traces.append(minima)
    if clickable:
        # A click selects the point under it; plotly.js would fade every other
        # point of the chart until the next click.
        for trace in traces:
            if trace["type"] in ("scatter", "scattergl") and trace["name"] != "start here":
                trace["unselected"] = dict(marker=dict(opacity=1))
    return figure(traces, axes_2d_layout(surface, height))


def surface3d_figure(
    surface: Surface, trajectories: Sequence[Trajectory], *, n: int = 60, height: int = 560
) -> go.Figure:
    """The surface in 3-D with the paths lifted onto it."""
    xs, ys, z = surface.grid(n)
    shown, label = shown_values(surface, z)
    fig = go.Figure(
        go.Surface(
            x=xs,
            y=ys,
            z=shown,
            colorscale=SURFACE_COLORSCALE,
            opacity=0.85,
            showscale=False,
            name="surface",
            hovertemplate="x=%{x:.3f}<br>y=%{y:.3f}<br>" + label + "=%{z:.3g}<extra></extra>",
        )
    )
    (x0, x1), (y0, y1) = surface.bounds
    for i, tr in enumerate(trajectories):
        px, py = np.asarray(tr.x), np.asarray(tr.y)
        zs, _ = shown_values(surface, np.asarray(tr.loss))
        # Points off the drawn surface (a diverging run's) are left out, not drawn
        # at heights that would squash the surface flat.
        off = (px < x0) | (px > x1) | (py < y0) | (py > y1) | ~np.isfinite(zs)
        fig.add_scatter3d(
            x=np.where(off, np.nan, px),
            y=np.where(off, np.nan, py),
            z=np.where(off, np.nan, zs),
            mode="lines+markers",
            line=dict(color=color(i), width=6),
            marker=dict(size=2.5, color=color(i)),
            name=tr.optimizer.label,
            hovertemplate=(
                f"<b>{tr.optimizer.label}</b><br>step %{{pointNumber}}"
                "<br>x=%{x:.4g}, y=%{y:.4g}<extra></extra>"
            ),
        )
    finite = shown[np.isfinite(shown)]
    z_range = [float(finite.min()), float(finite.max())] if finite.size else None
    fig.update_layout(
        height=height,
        margin=dict(l=0, r=0, t=10, b=0),
        scene=dict(
            xaxis=dict(title="x", range=[x0, x1]),
            yaxis=dict(title="y", range=[y0, y1]),
            zaxis=dict(title=label, range=z_range),
            camera=dict(eye=dict(x=1.5, y=-1.6, z=1.1)),
        ),
    )
    legend_below(fig, gap_px=0)
    return fig
