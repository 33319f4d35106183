"""The playground's curves: loss, distance to the minimum, and the schedule, step by step.

Every recorded step is drawn (a run has at most the step cap's 5,001 points
per optimizer). A run that diverges never sets a chart's range: its curve is
cut where it leaves the range the other runs fill, and a triangle in its
colour marks the spot, with the value it reached in the hover label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from optlab.charts import CurveView, color, curve_view, dash, decade_dtick, legend_below
from optlab.numbers import number_text
from optlab.surface.surfaces import Surface
from optlab.surface.trajectory import Trajectory

#: The smallest gap f − f* a log chart draws: a run that reaches f* exactly
#: (or dips below a rounded f*) sits on this floor instead of vanishing.
GAP_FLOOR = 1e-16


def x_values(tr: Trajectory, x: str) -> np.ndarray:
    """The x column of a curve: ``step`` or ``evals`` (function evaluations)."""
    return np.asarray(tr.evals if x == "evals" else tr.step)


def x_title(x: str) -> str:
    """The x axis's title for ``step`` or ``evals``."""
    return "function evaluations" if x == "evals" else "step"


def _figure(title: str, y_title: str, x: str, height: int) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title=dict(text=title, x=0, y=0.98, yanchor="top", font=dict(size=14)),
        height=height,
        margin=dict(l=10, r=10, t=36, b=10),
        hovermode="x unified",
    )
    legend_below(fig)
    fig.update_xaxes(title_text=x_title(x))
    fig.update_yaxes(title_text=y_title)
    return fig


def _draw(
    fig: go.Figure,
    trajectories: Sequence[Trajectory],
    values: Sequence[np.ndarray],
    x: str,
    what: str,
    *,
    log: bool,
    row: int | None = None,
    every_run_counts: bool = False,
) -> CurveView:
    """One line per optimizer, each cut where it leaves the range the runs that did
    not diverge fill (every run, with ``every_run_counts``), with a marker there;
    sets the y axis to that range."""
    reference = [every_run_counts or tr.diverged_at is None for tr in trajectories]
    view = curve_view(values, reference, log=log)
    where = dict(row=row, col=1) if row is not None else {}
    for i, (tr, ys) in enumerate(zip(trajectories, values, strict=True)):
        xs, exit_at = x_values(tr, x), view.exits[i]
        shown = ys if exit_at is None else ys[:exit_at]
        fig.add_trace(
            go.Scatter(
                x=xs[: len(shown)],
                y=shown,
                mode="lines",
                line=dict(color=color(i), width=2, dash=dash(i)),
                name=tr.optimizer.label,
                legendgroup=str(i),
                showlegend=row in (None, 1),
                hovertemplate=f"%{{y:.4g}}<extra>{tr.optimizer.label}</extra>",
            ),
            **where,
        )
        if exit_at is not None:
            left = float(ys[exit_at])
            fig.add_trace(
                go.Scatter(
                    x=[xs[exit_at]],
                    y=[view.low if left < view.low else view.high],  # NaN: the top
                    mode="markers",
                    marker=dict(
                        symbol="triangle-down" if left < view.low else "triangle-up",
                        size=13,
                        color=color(i),
                        line=dict(width=1, color="white"),
                    ),
                    name=f"{tr.optimizer.label} left the chart",
                    legendgroup=str(i),
                    showlegend=False,
                    hovertemplate=(
                        f"{tr.optimizer.label} left the chart at {x_title(x)} {xs[exit_at]}: "
                        f"{what} = {number_text(left)}<extra></extra>"
                    ),
                ),
                **where,
            )
    axis = dict(range=view.axis_range)
    if log:
        span = np.log10(view.high / view.low)
        axis.update(type="log", exponentformat="power", dtick=decade_dtick(span))
    fig.update_yaxes(**axis, **where)
    return view


def spans_decades(curves: Sequence[np.ndarray], decades: float = 2.0) -> bool:
    """Whether curves are best read on a log axis: all positive, spanning at least
    ``decades`` decades (a step decay by 10x twice). A cosine schedule that ends at
    lr 0 reads on a linear axis, where its shape is the one its name promises."""
    values = np.concatenate([np.asarray(c, dtype=np.float64) for c in curves] or [np.ones(1)])
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() <= 0:
        return False
    return bool(np.log10(values.max() / values.min()) >= decades)


def loss_figure(
    surface: Surface, trajectories: Sequence[Trajectory], *, x: str = "step", height: int = 360
) -> go.Figure:
    """Loss against step (or function evaluations).

    With a known (or estimated) minimum the gap f − f* is drawn on a log axis,
    which shows linear convergence as a straight line; otherwise f itself,
    linearly.
    """
    f_min = surface.f_min
    log = f_min is not None
    what = "f − f*" if log else "f(x, y)"
    if log and surface.estimated:
        what = "f − f* (f* estimated)"
    fig = _figure("Loss", what, x, height)
    values = [np.asarray(tr.loss, dtype=np.float64) for tr in trajectories]
    if log:
        values = [np.where(np.isfinite(v), np.maximum(v - f_min, GAP_FLOOR), v) for v in values]
    _draw(fig, trajectories, values, x, what, log=log)
    return fig


def distance_figure(
    surface: Surface, trajectories: Sequence[Trajectory], *, x: str = "step", height: int = 360
) -> go.Figure | None:
    """Distance to the nearest known minimum against step; None without minima."""
    if not surface.minima:
        return None
    word = "estimated minimum" if surface.estimated else "minimum"
    fig = _figure(f"Distance to the nearest {word}", "distance", x, height)
    values = [np.maximum(tr.distance_to_minimum(surface), GAP_FLOOR) for tr in trajectories]
    _draw(fig, trajectories, values, x, "distance", log=True)
    return fig


def schedule_figure(
    trajectories: Sequence[Trajectory], *, x: str = "step", height: int = 260
) -> go.Figure:
    """Each optimizer's learning rate (``param_groups[0]["lr"]``) step by step and,
    when a schedule or a change moves it, its momentum factor (β₁ for the Adam
    family: what torch's OneCycleLR cycles) in a second panel below."""
    moving = [tr for tr in trajectories if tr.momentum_changes]
    rows = 2 if moving else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    fig.update_layout(
        title=dict(text="Learning rate", x=0, y=0.98, yanchor="top", font=dict(size=14)),
        height=height * rows,
        margin=dict(l=10, r=10, t=36, b=10),
        hovermode="x unified",
    )
    lrs = [np.asarray(tr.lr, dtype=np.float64) for tr in trajectories]
    _draw(fig, trajectories, lrs, x, "lr", log=spans_decades(lrs), row=1, every_run_counts=True)
    fig.update_yaxes(title_text="lr", row=1, col=1)
    fig.update_traces(line_shape="hv", selector=dict(mode="lines"))
    if moving:
        momenta = [
            np.asarray([np.nan if m is None else m for m in tr.momentum], dtype=np.float64)
            for tr in trajectories
        ]
        for i, (tr, ys) in enumerate(zip(trajectories, momenta, strict=True)):
            if not tr.momentum_changes:
                continue
            fig.add_trace(
                go.Scatter(
                    x=x_values(tr, x),
                    y=ys,
                    mode="lines",
                    line=dict(color=color(i), width=2, dash=dash(i), shape="hv"),
                    name=tr.optimizer.label,
                    legendgroup=str(i),
                    showlegend=False,
                    hovertemplate=f"%{{y:.4g}}<extra>{tr.optimizer.label}</extra>",
                ),
                row=2,
                col=1,
            )
        fig.update_yaxes(title_text="momentum / β₁", row=2, col=1)
    fig.update_xaxes(title_text=x_title(x), row=rows, col=1)
    legend_below(fig)
    return fig
