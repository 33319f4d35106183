"""Plotly figure builders: pure functions of a surface and trajectories.

Nothing here runs an optimizer: the replay animates recorded paths with
Plotly frames, so scrubbing the slider never re-runs the math. Large paths
are thinned for drawing (first and last points always kept); the numbers
in tables and exports are never thinned.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from optlab.charts import color, decade_dtick, decades, thin
from optlab.surface.surfaces import Surface
from optlab.surface.trajectory import Trajectory

#: The surface is drawn in greys so that coloured paths stand out on it.
SURFACE_COLORSCALE = "Greys_r"
#: Offset under the log colouring, so the minimum itself has a finite colour.
LOG_OFFSET = 1e-3


MAX_FRAMES = 50
MAX_REPLAY_POINTS = 250


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


def _path(tr: Trajectory) -> tuple[np.ndarray, np.ndarray]:
    idx = thin(len(tr.x))
    return np.asarray(tr.x)[idx], np.asarray(tr.y)[idx]


def _axes_2d(fig: go.Figure, surface: Surface, height: int) -> None:
    (x0, x1), (y0, y1) = surface.bounds
    fig.update_xaxes(range=[x0, x1], title_text="x", constrain="domain")
    fig.update_yaxes(range=[y0, y1], title_text="y", scaleanchor="x", scaleratio=1)
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.01, x=0),
        plot_bgcolor="white",
    )


def _contour_trace(surface: Surface, n: int) -> go.Contour:
    xs, ys, z = surface.grid(n)
    shown, label = shown_values(surface, z)
    return go.Contour(
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


def _minima_trace(surface: Surface) -> go.Scatter | None:
    if not surface.minima:
        return None
    return go.Scatter(
        x=[m.x for m in surface.minima],
        y=[m.y for m in surface.minima],
        mode="markers",
        marker=dict(symbol="star", size=16, color="gold", line=dict(width=1, color="black")),
        name="known minimum",
        hovertemplate="minimum f*=%{text}<extra></extra>",
        text=[f"{m.value:g}" for m in surface.minima],
    )


def contour_figure(
    surface: Surface, trajectories: Sequence[Trajectory], *, n: int = 120, height: int = 520
) -> go.Figure:
    """The surface's contour with every optimizer's path on it.

    Each path has its own colour, a circle at its start and a cross at its
    end; known minima are gold stars.
    """
    fig = go.Figure(_contour_trace(surface, n))
    for i, tr in enumerate(trajectories):
        xs, ys = _path(tr)
        c = color(i)
        fig.add_scatter(
            x=xs,
            y=ys,
            mode="lines+markers",
            line=dict(color=c, width=2.5),
            marker=dict(size=4, color=c),
            name=tr.optimizer.label,
            legendgroup=str(i),
            hovertemplate=f"{tr.optimizer.label}<br>x=%{{x:.4f}}<br>y=%{{y:.4f}}<extra></extra>",
        )
        fig.add_scatter(
            x=[xs[-1]],
            y=[ys[-1]],
            mode="markers",
            marker=dict(symbol="x", size=13, color=c, line=dict(width=1.5, color="white")),
            name=f"{tr.optimizer.label} end",
            legendgroup=str(i),
            showlegend=False,
            hovertemplate=f"{tr.optimizer.label} end ({tr.status})<extra></extra>",
        )
    if trajectories:
        start = trajectories[0]
        fig.add_scatter(
            x=[start.x[0]],
            y=[start.y[0]],
            mode="markers",
            marker=dict(symbol="circle", size=12, color="white", line=dict(width=2, color="black")),
            name="start",
            hovertemplate="start<extra></extra>",
        )
    minima = _minima_trace(surface)
    if minima is not None:
        fig.add_trace(minima)
    _axes_2d(fig, surface, height)
    return fig


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


def replay_figure(
    surface: Surface,
    trajectories: Sequence[Trajectory],
    *,
    n: int = 200,
    frames: int = MAX_FRAMES,
    height: int = 560,
) -> go.Figure:
    """An animated replay of the paths: Plotly frames with a slider and play button.

    Frame k shows every path up to its step. The surface is a layout image,
    not a contour trace: plotly.js hides contour and heatmap traces once an
    animation starts (plotly.py issue 2151, open), while images stay put.
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
    frame_steps = np.unique(np.linspace(0, last, min(frames, last + 1)).round().astype(int))
    # Each frame draws a path through the same thinned points (plus the current
    # head), so the payload is bounded by frames x paths x MAX_REPLAY_POINTS.
    arrays = []
    for tr in trajectories:
        keep = thin(len(tr.x), MAX_REPLAY_POINTS)
        xs, ys = np.asarray(tr.x, dtype=np.float32), np.asarray(tr.y, dtype=np.float32)
        arrays.append((np.asarray(tr.step), xs, ys, keep))

    def upto(k: int) -> list[go.Scatter]:
        traces = []
        for steps, xs, ys, keep in arrays:
            m = int(np.searchsorted(steps, k, side="right"))
            idx = np.append(keep[keep < m - 1], m - 1)
            traces.append(go.Scatter(x=xs[idx], y=ys[idx]))
            traces.append(go.Scatter(x=xs[m - 1 : m], y=ys[m - 1 : m]))
        return traces

    for i, trace in enumerate(upto(0)):
        k, is_head = divmod(i, 2)
        tr, c = trajectories[k], color(k)
        trace.update(
            name=tr.optimizer.label,
            legendgroup=str(k),
            showlegend=not is_head,
            mode="markers" if is_head else "lines",
            line=dict(color=c, width=2.5),
            marker=dict(size=11, color=c, line=dict(width=1.5, color="white")),
            hoverinfo="skip",
        )
        fig.add_trace(trace)
    minima = _minima_trace(surface)
    if minima is not None:
        fig.add_trace(minima)

    moving = list(range(2 * len(trajectories)))
    fig.frames = [go.Frame(data=upto(int(k)), traces=moving, name=str(k)) for k in frame_steps]
    # redraw=True: without it plotly.js drops the contour layer on the first
    # animated frame and the paths move over a blank plot.
    play = dict(frame=dict(duration=80, redraw=True), transition=dict(duration=0), fromcurrent=True)
    pause = dict(frame=dict(duration=0, redraw=True), mode="immediate", transition=dict(duration=0))
    fig.update_layout(
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                x=0,
                y=-0.02,
                xanchor="left",
                yanchor="top",
                pad=dict(t=40),
                buttons=[
                    dict(label="▶ Play", method="animate", args=[None, play]),
                    dict(label="❚❚ Pause", method="animate", args=[[None], pause]),
                ],
            )
        ],
        sliders=[
            dict(
                active=0,
                x=0.18,
                len=0.82,
                y=-0.02,
                yanchor="top",
                pad=dict(t=30),
                currentvalue=dict(prefix="step ", visible=True, xanchor="right"),
                steps=[
                    dict(label=str(k), method="animate", args=[[str(k)], pause])
                    for k in frame_steps
                ],
            )
        ],
    )
    _axes_2d(fig, surface, height)
    fig.update_xaxes(showgrid=False, zeroline=False)
    fig.update_yaxes(showgrid=False, zeroline=False)
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=90))
    return fig


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
    for i, tr in enumerate(trajectories):
        idx = thin(len(tr.x))
        zs, _ = shown_values(surface, np.asarray(tr.loss)[idx])
        fig.add_scatter3d(
            x=np.asarray(tr.x)[idx],
            y=np.asarray(tr.y)[idx],
            z=zs,
            mode="lines+markers",
            line=dict(color=color(i), width=6),
            marker=dict(size=2.5, color=color(i)),
            name=tr.optimizer.label,
        )
    (x0, x1), (y0, y1) = surface.bounds
    fig.update_layout(
        height=height,
        margin=dict(l=0, r=0, t=30, b=0),
        legend=dict(orientation="h", y=1.02, x=0),
        scene=dict(
            xaxis=dict(title="x", range=[x0, x1]),
            yaxis=dict(title="y", range=[y0, y1]),
            zaxis=dict(title=label),
            camera=dict(eye=dict(x=1.5, y=-1.6, z=1.1)),
        ),
    )
    return fig


#: Curve charts repeat the paths' legend only while it fits above the plot;
#: beyond that the colours (shared with the paths) and the hover box name lines.
MAX_CURVE_LEGEND = 3


def _curves(
    title: str, y_title: str, log_y: bool, x_title: str, height: int, n_lines: int
) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        showlegend=n_lines <= MAX_CURVE_LEGEND,
        title=dict(text=title, x=0, y=0.98, yanchor="top", font=dict(size=14)),
        height=height,
        margin=dict(l=10, r=10, t=64, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0, font=dict(size=11)),
        hovermode="x unified",
    )
    fig.update_xaxes(title_text=x_title)
    if log_y:
        fig.update_yaxes(type="log", exponentformat="power")
    fig.update_yaxes(title_text=y_title)
    return fig


def _decade_ticks(fig: go.Figure) -> go.Figure:
    """Ticks at whole decades only, at most `MAX_LOG_TICKS` of them.

    Plotly's defaults put "2, 5" labels between decades on short ranges (they
    read as whole numbers next to powers of ten) and crowd long ones.
    """
    values = np.concatenate([np.asarray(t.y, dtype=float) for t in fig.data] or [np.ones(1)])
    fig.update_yaxes(dtick=decade_dtick(decades(values)))
    return fig


def _x_values(tr: Trajectory, x: str) -> np.ndarray:
    return np.asarray(tr.evals if x == "evals" else tr.step)


def _x_title(x: str) -> str:
    return "function evaluations" if x == "evals" else "step"


def loss_figure(
    surface: Surface, trajectories: Sequence[Trajectory], *, x: str = "step", height: int = 360
) -> go.Figure:
    """Loss against step (or function evaluations).

    With a known minimum the gap f − f* is drawn on a log axis, which shows
    linear convergence as a straight line; otherwise f itself, linearly.
    """
    f_min = surface.f_min
    log_y = f_min is not None
    y_title = "f − f*" if log_y else "f(x, y)"
    fig = _curves("Loss", y_title, log_y, _x_title(x), height, len(trajectories))
    for i, tr in enumerate(trajectories):
        idx = thin(len(tr.loss))
        values = np.asarray(tr.loss)[idx]
        if log_y:
            # The literature's f* is rounded, so a path can dip a hair below it.
            values = np.clip(values - f_min, 1e-16, None)
        fig.add_scatter(
            x=_x_values(tr, x)[idx],
            y=values,
            mode="lines",
            line=dict(color=color(i), width=2),
            name=tr.optimizer.label,
        )
    return _decade_ticks(fig) if log_y else fig


def distance_figure(
    surface: Surface, trajectories: Sequence[Trajectory], *, x: str = "step", height: int = 360
) -> go.Figure | None:
    """Distance to the nearest known minimum against step; None without minima."""
    if not surface.minima:
        return None
    fig = _curves(
        "Distance to the nearest minimum", "distance", True, _x_title(x), height, len(trajectories)
    )
    for i, tr in enumerate(trajectories):
        dist = tr.distance_to_minimum(surface)
        idx = thin(len(dist))
        fig.add_scatter(
            x=_x_values(tr, x)[idx],
            y=np.clip(dist[idx], 1e-16, None),
            mode="lines",
            line=dict(color=color(i), width=2),
            name=tr.optimizer.label,
        )
    return _decade_ticks(fig)


#: Arrow colours of the step inspector, by direction.
ARROW_COLORS = ("#7F3C8D", "#11A579", "#000000")
#: Widths, widest first, so arrows that coincide (a first step) stay visible.
ARROW_WIDTHS = (7, 4.5, 2)
#: An arrow at its own scale (or the longest, at one scale) is this share of the view's diagonal.
ARROW_SHARE = 0.15


def arrow_scales(
    arrows: dict[str, tuple[float, float]], diagonal: float, common: bool
) -> dict[str, float]:
    """The factor each arrow is drawn at: every arrow `ARROW_SHARE` of ``diagonal``
    long (its own scale), or one factor for all that makes the longest so (``common``).

    At one scale, Adam's actual step is often invisible next to −γg_t (γ|g| can be
    thousands of times longer); at its own scale each arrow shows its direction, and
    its factor, written in the legend, says how much it was stretched. A zero arrow
    is drawn at factor 1 (a point).
    """
    lengths = {k: float(np.hypot(*d)) for k, d in arrows.items()}
    if common:
        longest = max(lengths.values(), default=0.0)
        factor = ARROW_SHARE * diagonal / longest if longest > 0 else 1.0
        return dict.fromkeys(arrows, factor)
    return {k: ARROW_SHARE * diagonal / n if n > 0 else 1.0 for k, n in lengths.items()}


def _factor_text(factor: float) -> str:
    return f"×{factor:.3g}".replace("e+0", "e").replace("e-0", "e-")


def _subscripts(label: str) -> str:
    """``θ_{t−1}`` and ``g_t`` as plotly's HTML subscripts: a legend does not render TeX."""
    return re.sub(r"_\{([^}]*)\}|_(\w)", lambda m: f"<sub>{m[1] or m[2]}</sub>", label)


def inspector_figure(
    surface: Surface,
    trajectory: Trajectory,
    index: int,
    point: tuple[float, float],
    arrows: dict[str, tuple[float, float]],
    evaluations: Sequence[tuple[float, float]] = (),
    *,
    common_scale: bool = False,
    height: int = 480,
) -> go.Figure:
    """One optimizer's path with the inspected step's directions drawn at θ_{t-1}.

    Each arrow is drawn at its own scale (its factor in its legend entry), or
    with ``common_scale`` all at one factor so their lengths compare (the
    title says which). Points the function was evaluated at during the step
    (L-BFGS's line search) are drawn as numbered rings.
    """
    fig = contour_figure(surface, [trajectory], height=height)
    for trace in fig.data:
        if trace.name == trajectory.optimizer.label:
            trace.line.color = color(index)
            trace.marker.color = color(index)
    (x0, x1), (y0, y1) = surface.bounds
    scales = arrow_scales(arrows, float(np.hypot(x1 - x0, y1 - y0)), common_scale)
    px, py = point
    for k, (label, (dx, dy)) in enumerate(arrows.items()):
        c = ARROW_COLORS[k % len(ARROW_COLORS)]
        scale = scales[label]
        fig.add_annotation(
            x=px + scale * dx,
            y=py + scale * dy,
            ax=px,
            ay=py,
            xref="x",
            yref="y",
            axref="x",
            ayref="y",
            showarrow=True,
            arrowhead=3,
            arrowsize=1.2,
            arrowwidth=ARROW_WIDTHS[k % len(ARROW_WIDTHS)],
            arrowcolor=c,
            text="",
            name=label,
        )
        shown = _subscripts(label)
        if not common_scale:
            shown += f", drawn {_factor_text(scale)}"
        fig.add_scatter(x=[None], y=[None], mode="lines", line=dict(color=c, width=3), name=shown)
    if len(evaluations) > 1:
        fig.add_scatter(
            x=[e[0] for e in evaluations],
            y=[e[1] for e in evaluations],
            mode="markers+text",
            marker=dict(symbol="circle-open", size=11, color="#CC79A7", line=dict(width=2)),
            text=[str(i + 1) for i in range(len(evaluations))],
            textposition="top center",
            name=f"{len(evaluations)} evaluations in this step",
        )
    fig.add_scatter(
        x=[px],
        y=[py],
        mode="markers",
        marker=dict(symbol="diamond", size=13, color="white", line=dict(width=2, color="black")),
        name="θ<sub>t−1</sub>",
    )
    factor = next(iter(scales.values()), 1.0)
    title = (
        f"arrows drawn {_factor_text(factor)}, all at one scale"
        if common_scale
        else "arrows drawn each at its own scale (factors in the legend)"
    )
    fig.update_layout(title=dict(text=title, font=dict(size=12), x=1, xanchor="right"))
    return fig


def lr_figure(
    trajectories: Sequence[Trajectory], *, x: str = "step", height: int = 240
) -> go.Figure:
    """Each optimizer's learning rate (``param_groups[0]["lr"]``) step by step."""
    fig = _curves("Learning rate", "lr", True, _x_title(x), height, len(trajectories))
    for i, tr in enumerate(trajectories):
        idx = thin(len(tr.lr))
        fig.add_scatter(
            x=_x_values(tr, x)[idx],
            y=np.asarray(tr.lr)[idx],
            mode="lines",
            line=dict(color=color(i), width=2, shape="hv"),
            name=tr.optimizer.label,
        )
    return _decade_ticks(fig)
