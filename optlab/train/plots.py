"""Plotly figures of a training comparison: pure functions of `RunLog`s.

Every optimizer keeps its colour and dash pattern from `optlab.charts` across
all charts and is named by its current label (live changes included); long
runs are thinned for drawing (ends kept), never the numbers. A curve that
diverges is marked where it left the chart instead of squashing the others
(`optlab.train.ranges`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from optlab.charts import color, dash, decade_dtick, decades, thin
from optlab.numbers import number_text
from optlab.train.ranges import (
    LOSS_CAP_FACTOR,
    NORM_CAP_FACTOR,
    Clip,
    clip_range,
    excursions,
    first_value,
)
from optlab.train.report import RunLog
from optlab.train.run import DIVERGED

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
#: The fifth panel, under the learning rate, when a momentum or β₁ changes during the run.
MOMENTUM_TITLE = "Momentum / β₁ (param_groups: momentum, or betas[0])"


def _grid(height: int, momentum: bool) -> go.Figure:
    if momentum:
        fig = make_subplots(
            rows=3,
            cols=2,
            specs=[[{}, {}], [{}, {}], [{}, None]],
            subplot_titles=(*TITLES, MOMENTUM_TITLE),
            shared_xaxes=True,
            horizontal_spacing=0.09,
            vertical_spacing=0.08,
            row_heights=[0.37, 0.37, 0.26],
        )
        height = round(height * 1.35)
    else:
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
    fig.update_xaxes(title_text="step", row=3 if momentum else 2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=2)
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
    """One optimizer's curve in the panel at ``(row, col)``, in its colour, dash
    pattern and legend group."""
    style.setdefault("mode", "lines")
    line = {"color": color(i), "dash": dash(i), "width": 2, **style.pop("line", {})}
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


def _groups_differ(rows: Sequence[dict], key: str) -> bool:
    return any(len(set(h[key])) > 1 for h in rows)


def _group_lines(
    fig: go.Figure,
    i: int,
    name: str,
    rows: Sequence[dict],
    key: str,
    at: tuple[int, int],
    group_names: Sequence[str],
) -> list:
    """One optimizer's per-group values (``lrs``, ``momenta``): one line while its
    groups agree, each group's where they differ (the classifier's with open
    diamonds); returns the values drawn."""
    groups = len(rows[0][key]) if rows and _groups_differ(rows, key) else 1
    drawn: list = []
    for g in range(groups):
        xy = _series(rows, key, item=g)
        drawn += xy[1]
        # Groups past the named ones (a Muon variant's AdamW parts) by their number.
        group = group_names[g] if g < len(group_names) else f"group {g + 1}"
        label = f"{name} ({group})" if groups > 1 else name
        style: dict = {}
        if g:
            marker = {"symbol": "diamond-open", "size": 7, "maxdisplayed": 12}
            style = {"mode": "lines+markers", "marker": marker, "line": {"width": 1.5}}
        _line(fig, i, label, xy, at, legend=g > 0, **style)
    return drawn


def _mark_excursions(
    fig: go.Figure,
    i: int,
    name: str,
    rows: Sequence[dict],
    key: str,
    clip: Clip,
    at: tuple[int, int],
    labelled: bool,
) -> None:
    """A ▲ in the optimizer's colour where its curve left the chart, with the peak
    it reached (written out on the main curves, in the hover on the faint ones)."""
    found = excursions([r["step"] for r in rows], [r[key] for r in rows], clip.cap)
    if not found:
        return
    hover = [
        f"{name}: above {number_text(clip.cap)} from step {e.left_at:,}"
        + (f" to {e.back_at:,}" if e.back_at is not None else "")
        + f"; peak {number_text(e.peak)} at step {e.peak_at:,}"
        for e in found
    ]
    fig.add_scatter(
        x=[e.left_at for e in found],
        y=[clip.marker_y] * len(found),
        mode="markers+text" if labelled else "markers",
        text=[f"↑{number_text(e.peak)}" for e in found] if labelled else None,
        textposition="top center",
        textfont={"size": 11, "color": color(i)},
        marker={
            "symbol": "triangle-up" if labelled else "triangle-up-open",
            "size": 11 if labelled else 8,
            "color": color(i),
        },
        name=f"{name} (off the chart)",
        hovertext=hover,
        hoverinfo="text",
        legendgroup=str(i),
        showlegend=False,
        cliponaxis=False,
        row=at[0],
        col=at[1],
    )


def _mark_divergence(
    fig: go.Figure, i: int, log: RunLog, clip: Clip | None, at: tuple[int, int]
) -> None:
    """A ✖ where an optimizer's loss turned non-finite (its curve ends there; the
    hover and the results table's status say so in words)."""
    if log.status != DIVERGED or log.diverged_at is None:
        return
    finite = [r["smooth_loss"] for r in log.history if r["smooth_loss"] is not None]
    y = finite[-1] if finite else None
    if clip is not None and (y is None or y > clip.cap):
        y = clip.marker_y
    if y is None:
        return
    fig.add_scatter(
        x=[log.diverged_at],
        y=[y],
        mode="markers",
        marker={"symbol": "x", "size": 12, "color": color(i)},
        name=f"{log.label} (diverged)",
        hovertext=[f"{log.label}: the loss was not finite at step {log.diverged_at:,}"],
        hoverinfo="text",
        legendgroup=str(i),
        showlegend=False,
        cliponaxis=False,
        row=at[0],
        col=at[1],
    )


def _clip_axis(fig: go.Figure, clip: Clip | None, at: tuple[int, int], title: str) -> None:
    """Sets a clipped panel's range; its axis title says what its ▲ marks mean."""
    if clip is None:
        fig.update_yaxes(title_text=title, row=at[0], col=at[1])
        return
    fig.update_yaxes(
        range=[clip.low, clip.high],
        title_text=f"{title} · ▲ off the chart",
        row=at[0],
        col=at[1],
    )


def _varies(log: RunLog) -> bool:
    """Whether a group's momentum changes (a group that joins mid-run, None before,
    is not a change)."""
    width = max((len(r["momenta"]) for r in log.momenta), default=0)
    return any(
        len({r["momenta"][g] for r in log.momenta if r["momenta"][g] is not None}) > 1
        for g in range(width)
    )


def _mark_added(fig: go.Figure, i: int, log: RunLog) -> None:
    """A dotted line in the optimizer's colour across the loss and lr panels where its
    frozen features were added to the optimizer (``add_param_group``), labelled on
    the lr panel (where the features' own lr line starts)."""
    step = log.features_added_at
    if step is None:
        return
    line = {"color": color(i), "dash": "dot", "width": 1.5}
    # Between the last frozen step and the first with the features: drawn at step - 0.5.
    fig.add_vline(x=step - 0.5, line=line, row=1, col=1)
    fig.add_vline(
        x=step - 0.5,
        line=line,
        annotation_text="+ features",
        annotation_position="top right",
        annotation_font={"size": 11, "color": color(i)},
        annotation_hovertext=f"{log.label}: features added (add_param_group) at step {step:,}",
        row=2,
        col=1,
    )


def live_figure(
    logs: Sequence[RunLog],
    group_names: Sequence[str] = ("features", "classifier"),
    height: int = 640,
) -> go.Figure:
    """The live panels, one legend entry per optimizer, steps on a shared axis.

    Top: smoothed training loss (the raw batch loss faint behind it) and test
    accuracy. Below: the learning rate (each param group's, where they differ)
    and the gradient norm, both on log axes; and, when a momentum or β₁
    changes during the run (a OneCycleLR, a live change), a panel of every
    optimizer's momentum under the learning rate. A slot that froze its
    features gets a dotted line in its colour on the loss and lr panels where
    they were added ("+ features"); its features' lr line starts there.

    When a curve would flatten the others (a diverging optimizer's, or any loss
    past `LOSS_CAP_FACTOR` times the first step's, gradient norm past
    `NORM_CAP_FACTOR` times), the panel's range is set by the rest: a ▲ in the
    optimizer's colour marks where a curve left it, with the peak it reached,
    and a ✖ where a loss stopped being finite.
    """
    momentum = any(_varies(log) for log in logs)
    fig = _grid(height, momentum)
    loss_clip = _loss_clip(logs)
    norm_clip = _norm_clip(logs)
    all_lrs: list = []
    all_norms: list = []
    for i, log in enumerate(logs):
        name, rows = log.label, log.history
        raw = {"line": {"width": 1}, "opacity": 0.25, "hoverinfo": "skip"}
        _line(fig, i, f"{name} (batch loss)", _series(rows, "train_loss"), (1, 1), **raw)
        _line(fig, i, name, _series(rows, "smooth_loss"), (1, 1), legend=True)
        if loss_clip is not None:
            _mark_excursions(fig, i, name, rows, "train_loss", loss_clip, (1, 1), False)
            _mark_excursions(fig, i, name, rows, "smooth_loss", loss_clip, (1, 1), True)
        _mark_divergence(fig, i, log, loss_clip, (1, 1))
        evals = ([e["step"] for e in log.evals], [e["test_acc"] for e in log.evals])
        _line(fig, i, name, evals, (1, 2), mode="lines+markers", marker={"size": 6})
        all_lrs += _group_lines(fig, i, name, rows, "lrs", (2, 1), group_names)
        norms = _series(rows, "grad_norm")
        all_norms += norms[1]
        _line(fig, i, name, norms, (2, 2), line={"width": 1.5})
        if norm_clip is not None:
            _mark_excursions(fig, i, name, rows, "grad_norm", norm_clip, (2, 2), True)
        _mark_added(fig, i, log)
        if momentum and log.momenta:
            _group_lines(fig, i, name, log.momenta, "momenta", (3, 1), group_names)
    fig.update_yaxes(title_text="accuracy", tickformat=".0%", range=[0, 1.02], row=1, col=2)
    _log_axis(fig, all_lrs, "lr", (2, 1))
    if norm_clip is None:
        _log_axis(fig, all_norms, "‖g‖", (2, 2))
    else:
        fig.update_yaxes(type="log", exponentformat="power", row=2, col=2)
    _clip_axis(fig, loss_clip, (1, 1), "cross-entropy")
    _clip_axis(fig, norm_clip, (2, 2), "‖g‖")
    if momentum:
        fig.update_yaxes(title_text="momentum / β₁", row=3, col=1)
    return _empty_note(fig, logs)


def _basis(logs: Sequence[RunLog]) -> list[RunLog]:
    """The logs whose curves set a clipped range: those that did not diverge (all of
    them when every one did)."""
    kept = [log for log in logs if log.status != DIVERGED]
    return kept or list(logs)


def _loss_clip(logs: Sequence[RunLog]) -> Clip | None:
    """The loss panel's range when some loss would flatten the others: set by the
    optimizers that did not diverge, up to `LOSS_CAP_FACTOR` × the first step's loss."""
    keys = ("train_loss", "smooth_loss")
    curves = [[r[k] for r in log.history] for log in logs for k in keys]
    basis = [[r[k] for r in log.history] for log in _basis(logs) for k in keys]
    start = first_value(curves)
    return None if start is None else clip_range(curves, LOSS_CAP_FACTOR * start, basis=basis)


def _norm_clip(logs: Sequence[RunLog]) -> Clip | None:
    """The gradient-norm panel's (log) range, likewise, up to `NORM_CAP_FACTOR` × the
    first step's norm."""
    curves = [[r["grad_norm"] for r in log.history] for log in logs]
    basis = [[r["grad_norm"] for r in log.history] for log in _basis(logs)]
    start = first_value(curves)
    if start is None or start <= 0:
        return None
    return clip_range(curves, NORM_CAP_FACTOR * start, log=True, basis=basis)


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
