"""The lessons' charts: paths on a surface's contour, curves over steps, bars.

Every point a run produced is drawn (the runs are short: no thinning); a
run that diverged ends where its numbers stopped being finite, and its
legend says so.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import plotly.graph_objects as go

from optlab.charts import color, dash, decade_dtick, decades, legend_below
from optlab.surface.plots import minima_trace, shown_values, start_trace
from optlab.surface.surfaces import Surface

#: Chart heights (px) on a laptop; presenter view restyles fonts, not heights.
PATHS_HEIGHT, CURVES_HEIGHT = 460, 340


def finite(values: Sequence[float]) -> list[float | None]:
    """``values`` with NaN and ±inf as gaps (None): plotly cannot draw them."""
    return [v if isinstance(v, int | float) and math.isfinite(v) else None for v in values]


def paths_figure(
    surface: Surface,
    paths: Sequence[tuple[str, Sequence[Sequence[float]]]],
    *,
    markers: bool = False,
    title: str = "",
) -> go.Figure:
    """The surface's contour with each ``(label, [[x, y], ...])`` path on it."""
    xs, ys, z = surface.grid(100)
    shown, _ = shown_values(surface, z)
    fig = go.Figure(
        go.Contour(
            x=xs,
            y=ys,
            z=shown,
            colorscale="Viridis",
            ncontours=25,
            line=dict(width=0.5, color="rgba(255,255,255,0.35)"),
            showscale=False,
            hoverinfo="skip",
            name="surface",
            showlegend=False,
        )
    )
    for i, (name, points) in enumerate(paths):
        fig.add_scatter(
            x=finite([p[0] for p in points]),
            y=finite([p[1] for p in points]),
            mode="lines+markers" if markers else "lines",
            marker=dict(size=5, color=color(i)),
            line=dict(color=color(i), dash=dash(i), width=2.5),
            name=name,
            hovertemplate=f"<b>{name}</b><br>step %{{pointNumber}}<br>"
            "x=%{x:.4g}, y=%{y:.4g}<extra></extra>",
        )
    if paths:
        fig.add_trace(start_trace(*paths[0][1][0]))
    minima = minima_trace(surface)
    if minima is not None:
        fig.add_trace(minima)
    (x0, x1), (y0, y1) = surface.bounds
    fig.update_xaxes(range=[x0, x1], title_text="x", constrain="domain")
    fig.update_yaxes(range=[y0, y1], title_text="y", scaleanchor="x", scaleratio=1)
    _lay_out(fig, PATHS_HEIGHT, title)
    legend_below(fig)
    return fig


def curves_figure(
    curves: Sequence[tuple[str, Sequence[float]]],
    *,
    x_title: str,
    y_title: str,
    log: bool = False,
    first_x: int = 1,
    title: str = "",
    mode: str = "lines",
) -> go.Figure:
    """One line per ``(label, values)`` over steps counted from ``first_x``."""
    fig = go.Figure()
    for i, (name, values) in enumerate(curves):
        shown = finite(values)
        if log:
            shown = [v if v is not None and v > 0 else None for v in shown]
        fig.add_scatter(
            x=list(range(first_x, first_x + len(values))),
            y=shown,
            mode=mode,
            marker=dict(size=6, color=color(i)),
            line=dict(color=color(i), dash=dash(i), width=2.5),
            name=name,
            hovertemplate=f"<b>{name}</b><br>%{{x}}: %{{y:.4g}}<extra></extra>",
        )
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title, type="log" if log else "linear", exponentformat="e")
    shown = [v for _, values in curves for v in finite(values) if v is not None and v > 0]
    if log and shown:
        # Plotly labels the ticks between decades ("2, 3, ..., 9") in a smaller font a
        # projector cannot show: over a few decades, 1, 2 and 5 of each are labelled
        # in full; over more, whole decades only.
        span = decades(shown)
        if span < 3:
            low, high = min(shown), max(shown)
            ticks = [
                m * 10.0**k
                for k in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
                for m in (1, 2, 5)
                if low <= m * 10.0**k <= high
            ]
            fig.update_yaxes(tickvals=ticks, ticktext=[f"{t:.3g}" for t in ticks])
        else:
            fig.update_yaxes(dtick=decade_dtick(span))
    _lay_out(fig, CURVES_HEIGHT, title)
    legend_below(fig)
    return fig


def paths_and_curves(
    surface: Surface,
    runs: Sequence[dict],
    names: tuple[str, str],
    values: Callable[[dict], Sequence[float]],
    *,
    y_title: str,
    title: str = "",
) -> list[tuple[str, go.Figure]]:
    """A ``compare`` program's runs twice: their paths on the surface, and
    ``values(run)`` of each over steps on a log scale, named ``names``."""
    curves = curves_figure(
        [(r["label"], values(r)) for r in runs],
        x_title="step",
        y_title=y_title,
        log=True,
        title=title,
    )
    return [
        (names[0], paths_figure(surface, [(r["label"], r["path"]) for r in runs])),
        (names[1], curves),
    ]


def bars_figure(
    bars: Sequence[float], *, x_title: str, y_title: str, name: str, title: str = ""
) -> go.Figure:
    """One bar per step (counted from 1)."""
    fig = go.Figure(
        go.Bar(
            x=list(range(1, len(bars) + 1)),
            y=list(bars),
            name=name,
            marker_color=color(0),
            hovertemplate="step %{x}: %{y}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text=x_title, dtick=1 if len(bars) <= 20 else None)
    fig.update_yaxes(title_text=y_title)
    _lay_out(fig, CURVES_HEIGHT, title, showlegend=False)
    return fig


def _lay_out(fig: go.Figure, height: int, title: str, **layout: Any) -> None:
    """Every lesson chart's frame: its height, a white plot, room above for a title."""
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40 if title else 20, b=10),
        plot_bgcolor="white",
        title=dict(text=title) if title else None,
        **layout,
    )


def step_lengths(path: Sequence[Sequence[float]]) -> list[float]:
    """The length of each step of a path: |θ_t − θ_{t−1}|."""
    return [math.hypot(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(path)]
