"""Plotly figures of a training comparison: pure functions of `RunLog`s.

Every optimizer keeps its colour from `optlab.charts.color` across all
charts; long runs are thinned for drawing (ends kept), never the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from optlab.charts import color, decade_dtick, decades, thin
from optlab.train.report import RunLog

#: Points drawn per line; a 10,000-step run stays light to redraw every second.
MAX_CURVE_POINTS = 500


def _series(rows: Sequence[dict], key: str, *, item: int | None = None) -> tuple[list, list]:
    """Thinned ``(steps, values)`` of ``rows[i][key]`` (or its ``item``-th element)."""
    idx = thin(len(rows), MAX_CURVE_POINTS)
    steps = [rows[i]["step"] for i in idx]
    if item is None:
        return steps, [rows[i][key] for i in idx]
    return steps, [rows[i][key][item] if item < len(rows[i][key]) else None for i in idx]


#: The live figure's four panels, row by row.
TITLES = ("Training loss (smoothed)", "Test accuracy", "Learning rate", "Gradient norm ‖g‖")


def _grid(height: int) -> go.Figure:
    fig = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=TITLES,
        shared_xaxes=True,
        horizontal_spacing=0.09,
        vertical_spacing=0.1,
    )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.06, x=0, font=dict(size=11)),
        hovermode="x unified",
    )
    fig.update_xaxes(title_text="step", row=2)
    return fig


def _empty_note(fig: go.Figure, logs: Sequence[RunLog]) -> go.Figure:
    if not any(log.history for log in logs):
        fig.add_annotation(
            text="waiting for the first step…",
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            showarrow=False,
            font=dict(size=14, color="#777"),
        )
    return fig


def _line(
    fig: go.Figure,
    i: int,
    name: str,
    xy: tuple[list, list],
    at: tuple[int, int],
    legend: bool = False,
    **style,
) -> None:
    """One optimizer's curve in the panel at ``(row, col)``, in its colour and legend group."""
    style.setdefault("mode", "lines")
    line = {"color": color(i), "width": 2, **style.pop("line", {})}
    fig.add_scatter(
        x=xy[0],
        y=xy[1],
        name=name,
        line=line,
        legendgroup=str(i),
        showlegend=legend,
        row=at[0],
        col=at[1],
        **style,
    )


def _log_axis(fig: go.Figure, values: list, title: str, at: tuple[int, int]) -> None:
    """A log axis with readable ticks: decades when the values span several,
    1-2-5 steps when they span about one, plotly's own for a narrow range."""
    span = decades(values)
    row, col = at
    fig.update_yaxes(type="log", exponentformat="power", title_text=title, row=row, col=col)
    if span >= 2.5:
        fig.update_yaxes(dtick=decade_dtick(span), row=row, col=col)
    elif span >= 0.3:
        fig.update_yaxes(dtick="D2", row=row, col=col)


def _groups_differ(log: RunLog) -> bool:
    return any(len(set(h["lrs"])) > 1 for h in log.history)


def live_figure(
    logs: Sequence[RunLog],
    group_names: Sequence[str] = ("features", "classifier"),
    height: int = 640,
) -> go.Figure:
    """The four live panels, one legend entry per optimizer, steps on a shared axis.

    Top: smoothed training loss (the raw batch loss faint behind it) and test
    accuracy. Bottom: the learning rate (each param group's, the classifier's
    dashed, where they differ) and the gradient norm, both on log axes.
    """
    fig = _grid(height)
    all_lrs: list = []
    all_norms: list = []
    for i, log in enumerate(logs):
        name, rows = log.slot.label, log.history
        raw = {"line": {"width": 1}, "opacity": 0.25, "hoverinfo": "skip"}
        _line(fig, i, f"{name} (batch loss)", _series(rows, "train_loss"), (1, 1), **raw)
        _line(fig, i, name, _series(rows, "smooth_loss"), (1, 1), legend=True)
        evals = ([e["step"] for e in log.evals], [e["test_acc"] for e in log.evals])
        _line(fig, i, name, evals, (1, 2), mode="lines+markers", marker={"size": 6})
        groups = len(rows[0]["lrs"]) if _groups_differ(log) else 1
        for g in range(groups):
            lrs = _series(rows, "lrs", item=g)
            all_lrs += lrs[1]
            label = f"{name} ({group_names[g]})" if groups > 1 and g < len(group_names) else name
            dash = {"dash": "dash" if g else "solid"}
            _line(fig, i, label, lrs, (2, 1), legend=g > 0, line=dash)
        norms = _series(rows, "grad_norm")
        all_norms += norms[1]
        _line(fig, i, name, norms, (2, 2), line={"width": 1.5})
    fig.update_yaxes(title_text="cross-entropy", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", tickformat=".0%", range=[0, 1.02], row=1, col=2)
    _log_axis(fig, all_lrs, "lr", (2, 1))
    _log_axis(fig, all_norms, "‖g‖", (2, 2))
    return _empty_note(fig, logs)


def confusion_figure(matrix: np.ndarray, classes: Sequence[str], title: str) -> go.Figure:
    """A confusion-matrix heatmap: rows the true class, columns the prediction.

    Colours show each row's share (so rare classes read as well as common
    ones); the cells print the counts.
    """
    counts = np.asarray(matrix)
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=list(classes),
            y=list(classes),
            text=counts,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar=dict(title="row share", tickformat=".0%"),
            hovertemplate="true %{y}<br>predicted %{x}<br>%{text} images (%{z:.0%})<extra></extra>",
        )
    )
    correct = int(np.trace(counts))
    total = int(counts.sum())
    fig.update_layout(
        title=dict(
            text=f"{title}: {correct} of {total} right ({correct / max(total, 1):.1%})",
            font=dict(size=14),
        ),
        height=460,
        margin=dict(l=10, r=10, t=50, b=10),
    )
    fig.update_xaxes(title_text="predicted", side="bottom", tickangle=-40)
    fig.update_yaxes(title_text="true class", autorange="reversed")
    return fig
