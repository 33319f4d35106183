"""The playground's curves: loss, distance to the minimum, and the schedule, step by step.

Every recorded step is drawn (a run has at most the step cap's 5,001 points
per optimizer). A run that diverges never sets a chart's range: its curve is
cut where it leaves the range the other runs fill, and a triangle in its
colour marks the spot, with the value it reached in the hover label.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from optlab.charts import (
    CurveView,
    color,
    curve_view,
    dash,
    decade_dtick,
    figure,
    legend_below,
    legend_spec,
    translucent,
)
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


def _layout(title: str, y_title: str, x: str, height: int) -> dict:
    """A curves chart's layout: its title, axes' titles and the legend under it."""
    layout = dict(
        title=dict(text=title, x=0, y=0.98, yanchor="top", font=dict(size=14)),
        height=height,
        margin=dict(l=10, r=10, t=36, b=10),
        hovermode="x unified",
        xaxis=dict(title=dict(text=x_title(x))),
        yaxis=dict(title=dict(text=y_title)),
    )
    layout["legend"] = legend_spec(layout)
    return layout


@dataclass(frozen=True)
class _Line:
    """One optimizer's curve: its name, x and y, and whether it sets the y range."""

    label: str
    xs: np.ndarray
    ys: np.ndarray
    reference: bool


def _lines(trajectories: Sequence[Trajectory], values: Sequence[np.ndarray], x: str) -> list[_Line]:
    return [
        _Line(tr.optimizer.label, x_values(tr, x), ys, tr.diverged_at is None)
        for tr, ys in zip(trajectories, values, strict=True)
    ]


def _draw(
    lines: Sequence[_Line],
    x: str,
    what: str,
    *,
    log: bool,
    every_run_counts: bool = False,
) -> tuple[list[dict], dict, CurveView]:
    """One line per optimizer, each cut where it leaves the range the runs that did
    not diverge fill (every run, with ``every_run_counts``), with a marker there:
    the traces, the y axis's settings for that range, and the view."""
    reference = [every_run_counts or line.reference for line in lines]
    view = curve_view([line.ys for line in lines], reference, log=log)
    traces = []
    for i, line in enumerate(lines):
        xs, ys, exit_at = line.xs, line.ys, view.exits[i]
        shown = ys if exit_at is None else ys[:exit_at]
        traces.append(
            dict(
                type="scatter",
                x=xs[: len(shown)],
                y=shown,
                mode="lines",
                line=dict(color=color(i), width=2, dash=dash(i)),
                name=line.label,
                legendgroup=str(i),
                hovertemplate=f"%{{y:.4g}}<extra>{line.label}</extra>",
            )
        )
        if exit_at is not None:
            left = float(ys[exit_at])
            traces.append(
                dict(
                    type="scatter",
                    x=[xs[exit_at]],
                    y=[view.low if left < view.low else view.high],  # NaN: the top
                    mode="markers",
                    marker=dict(
                        symbol="triangle-down" if left < view.low else "triangle-up",
                        size=13,
                        color=color(i),
                        line=dict(width=1, color="white"),
                    ),
                    name=f"{line.label} left the chart",
                    legendgroup=str(i),
                    showlegend=False,
                    hovertemplate=(
                        f"{line.label} left the chart at {x_title(x)} {xs[exit_at]}: "
                        f"{what} = {number_text(left)}<extra></extra>"
                    ),
                )
            )
    axis: dict = dict(range=view.axis_range)
    if log:
        span = np.log10(view.high / view.low)
        axis.update(type="log", exponentformat="power", dtick=decade_dtick(span))
    return traces, axis, view


def seed_spread(
    trajectories: Sequence[Trajectory], values: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One optimizer's curve over several noise seeds, step by step: the median and
    the quartiles (25% and 75%).

    A run that diverged counts as +inf from its last step on, above every finite
    value: the median leaves the chart only when half the seeds diverged. The
    quartiles are values some seed reached (no interpolation, which has no answer
    between a finite value and +inf); with 2 seeds they are the two runs.
    """
    n = max(len(v) for v in values)
    table = np.full((len(values), n), np.inf)
    for row, tr, ys in zip(table, trajectories, values, strict=True):
        ys = np.where(np.isnan(ys), np.inf, ys)
        row[: len(ys)] = ys
        if tr.diverged_at is None and len(ys):
            row[len(ys) :] = ys[-1]
    low, high = np.quantile(table, [0.25, 0.75], axis=0, method="inverted_cdf")
    return np.median(table, axis=0), low, high


def _spread(
    seeds: Sequence[Sequence[Trajectory]],
    values: Callable[[Trajectory], np.ndarray],
    what: str,
    *,
    log: bool,
) -> tuple[list[dict], dict]:
    """Each optimizer's median over the seeds as its line, over a band from the 25% to
    the 75% quartile in its colour, cut at the chart's edges like the line: the
    traces, bands first (Plotly draws traces in order), and the y axis's settings."""
    count = len(seeds)
    lines, bands = [], []
    for i, first in enumerate(seeds[0]):
        runs = [per_seed[i] for per_seed in seeds]
        median, low, high = seed_spread(runs, [values(tr) for tr in runs])
        steps = np.arange(len(median))
        label = f"{first.optimizer.label}: median of {count} seeds"
        lines.append(_Line(label, steps, median, bool(np.isfinite(median).all())))
        bands.append((steps, low, high))
    traces, axis, view = _draw(lines, "step", f"median {what}", log=log)
    under = []
    for i, ((steps, low, high), line) in enumerate(zip(bands, lines, strict=True)):
        lo, hi = (np.clip(b, view.low, view.high) for b in (low, high))
        band = dict(
            type="scatter", mode="lines", line=dict(width=0), legendgroup=str(i), showlegend=False
        )
        under.append(dict(x=steps, y=hi, hoverinfo="skip", **band))
        under.append(
            dict(
                x=steps,
                y=lo,
                fill="tonexty",
                fillcolor=translucent(color(i), 0.18),
                name=f"{line.label}: 25–75% of seeds",
                hovertemplate=(
                    f"25–75%: %{{y:.3g}} to %{{customdata:.3g}}<extra>{line.label}</extra>"
                ),
                customdata=hi,
                **band,
            )
        )
    return under + traces, axis


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
    surface: Surface,
    trajectories: Sequence[Trajectory],
    *,
    x: str = "step",
    height: int = 360,
    seeds: Sequence[Sequence[Trajectory]] = (),
) -> go.Figure:
    """Loss against step (or function evaluations).

    With a known (or estimated) minimum the gap f − f* is drawn on a log axis,
    which shows linear convergence as a straight line; otherwise f itself,
    linearly. With ``seeds`` (the same comparison under several noise seeds, the
    first being ``trajectories``), each optimizer is its median over the seeds
    with the quartiles' band, against steps (function evaluations differ from
    seed to seed).
    """
    f_min = surface.f_min
    log = f_min is not None
    what = "f − f*" if log else "f(x, y)"
    if log and surface.estimated:
        what = "f − f* (f* estimated)"

    def gap(tr: Trajectory) -> np.ndarray:
        v = np.asarray(tr.loss, dtype=np.float64)
        return np.where(np.isfinite(v), np.maximum(v - f_min, GAP_FLOOR), v) if log else v

    if len(seeds) > 1:
        layout = _layout(f"Loss over {len(seeds)} noise seeds", what, "step", height)
        traces, axis = _spread(seeds, gap, what, log=log)
    else:
        layout = _layout("Loss", what, x, height)
        lines = _lines(trajectories, [gap(tr) for tr in trajectories], x)
        traces, axis, _ = _draw(lines, x, what, log=log)
    layout["yaxis"].update(axis)
    return figure(traces, layout)


def distance_figure(
    surface: Surface,
    trajectories: Sequence[Trajectory],
    *,
    x: str = "step",
    height: int = 360,
    seeds: Sequence[Sequence[Trajectory]] = (),
) -> go.Figure | None:
    """Distance to the nearest known minimum against step; None without minima.
    ``seeds`` as in `loss_figure`."""
    if not surface.minima:
        return None
    word = "estimated minimum" if surface.estimated else "minimum"

    def distance(tr: Trajectory) -> np.ndarray:
        return np.maximum(tr.distance_to_minimum(surface), GAP_FLOOR)

    if len(seeds) > 1:
        title = f"Distance to the nearest {word} over {len(seeds)} noise seeds"
        layout = _layout(title, "distance", "step", height)
        traces, axis = _spread(seeds, distance, "distance", log=True)
    else:
        layout = _layout(f"Distance to the nearest {word}", "distance", x, height)
        lines = _lines(trajectories, [distance(tr) for tr in trajectories], x)
        traces, axis, _ = _draw(lines, x, "distance", log=True)
    layout["yaxis"].update(axis)
    return figure(traces, layout)


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
    lines = _lines(trajectories, lrs, x)
    traces, axis, _ = _draw(lines, x, "lr", log=spans_decades(lrs), every_run_counts=True)
    fig.add_traces(traces, rows=1, cols=1)
    fig.update_yaxes(title_text="lr", **axis, row=1, col=1)
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
