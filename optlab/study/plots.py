"""A study's charts: expected best vs trials, tuning curves, every trial's score.

Each takes the study's JSON (`optlab.study.run.study_document`), so the page,
a notebook and a saved ``study.json`` draw the same pictures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go

from optlab.charts import color, dash, legend_below
from optlab.study.space import Dimension

#: A continuous colour scale for a second searched dimension (colour-blind safe).
SECOND_DIM_SCALE = "Viridis"
HEIGHT = 380


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(
        title=dict(text=title, x=0, y=0.98, yanchor="top", font=dict(size=14)),
        height=HEIGHT,
        margin=dict(t=40, r=20),
        hovermode="closest",
    )
    fig.update_xaxes(title_text=x)
    # One decimal where the ticks are closer than a point apart, trimmed where whole:
    # ".0%" printed 0.5% steps as 10%, 10%, 11%, 11%.
    fig.update_yaxes(title_text=y, tickformat=".1~%")
    return fig


def expected_best_figure(doc: Mapping[str, Any]) -> go.Figure:
    """Every optimizer's expected best test accuracy after k = 1..N trials of tuning,
    on one chart (Dodge et al. 2019): who wins with a small budget, who with a large."""
    fig = go.Figure()
    for i, opt in enumerate(doc["optimizers"]):
        curve = opt["expected_best"]
        if not curve:
            continue
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(curve) + 1)),
                y=curve,
                mode="lines+markers",
                name=opt["label"],
                line=dict(color=color(i), dash=dash(i), width=2.5),
                marker=dict(size=6),
                hovertemplate=f"{opt['label']}<br>after %{{x}} trials: %{{y:.2%}}<extra></extra>",
            )
        )
    _layout(
        fig,
        "Expected best test accuracy after k trials of tuning",
        "trials of tuning (k)",
        "expected best test accuracy",
    )
    fig.update_xaxes(
        tick0=1, dtick=_dtick(max((len(o["expected_best"]) for o in doc["optimizers"]), default=1))
    )
    legend_below(fig)
    return fig


def _dtick(n: int) -> int:
    """A whole-number tick step that gives at most about 10 ticks."""
    return max(1, math.ceil(n / 10))


def tuning_figure(doc: Mapping[str, Any], index: int) -> go.Figure:
    """Optimizer ``index``'s score against its lr: each point's mean over seeds, a bar
    from its worst to its best seed, every seed's own score as a dot; a second
    searched dimension as colour; the best point ringed; diverged trials at chance."""
    opt = doc["optimizers"][index]
    rows = opt["points"]
    dims = [Dimension.from_text(text) for text in opt["space"]]
    second = next((d for d in dims if d.name != "lr"), None)
    fig = go.Figure()
    xs = [r["hparams"]["lr"] for r in rows]
    means = [r["score"] for r in rows]
    low = [r["score"] - min(r["seed_scores"]) for r in rows]
    high = [max(r["seed_scores"]) - r["score"] for r in rows]
    marker: dict[str, Any] = dict(size=11, color=color(index), line=dict(width=1, color="white"))
    if second is not None and rows:
        values = [r["hparams"][second.name] for r in rows]
        bar: dict[str, Any] = dict(title=dict(text=second.name, side="right"), thickness=14)
        if second.scale == "log":  # coloured by decade, labelled in the knob's own values
            values = [math.log10(v) for v in values]
            ticks = list(
                range(math.floor(math.log10(second.low)), math.ceil(math.log10(second.high)) + 1)
            )
            bar.update(tickvals=ticks, ticktext=[f"1e{t}" for t in ticks])
            cmin, cmax = math.log10(second.low), math.log10(second.high)
        else:
            cmin, cmax = second.low, second.high
        marker.update(
            color=values,
            cmin=cmin,
            cmax=cmax,
            colorscale=SECOND_DIM_SCALE,
            colorbar=bar,
            showscale=True,
        )
    hover = [
        "<br>".join(f"{k} = {v:.4g}" for k, v in r["hparams"].items())
        + f"<br>mean of {len(r['seed_scores'])} seeds: {r['score']:.2%}"
        + (f"<br>{r['diverged']} diverged (scored as chance)" if r["diverged"] else "")
        for r in rows
    ]
    fig.add_trace(
        go.Scatter(
            x=[r["hparams"]["lr"] for r in rows for _ in r["seed_scores"]],
            y=[s for r in rows for s in r["seed_scores"]],
            mode="markers",
            name="one seed",
            marker=dict(size=5, color="rgba(90,90,90,0.55)", symbol="circle-open"),
            hovertemplate="lr %{x:.3g}: %{y:.2%} (one seed)<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=means,
            mode="markers",
            name="point (mean over seeds)",
            marker=marker,
            error_y=dict(
                type="data",
                symmetric=False,
                array=high,
                arrayminus=low,
                thickness=1.5,
                width=4,
                color="rgba(60,60,60,0.7)",
            ),
            text=hover,
            hovertemplate="%{text}<extra></extra>",
        )
    )
    if opt["best"] is not None:
        best = opt["best"]
        fig.add_trace(
            go.Scatter(
                x=[best["hparams"]["lr"]],
                y=[best["score"]],
                mode="markers",
                name="best point",
                marker=dict(size=20, symbol="circle-open", color="black", line=dict(width=2.5)),
                hovertemplate="best point: %{y:.2%}<extra></extra>",
            )
        )
    lr_dim = next((d for d in dims if d.name == "lr"), None)
    _layout(
        fig, f"{opt['label']}: test accuracy against lr", "lr (log scale)", "final test accuracy"
    )
    fig.update_xaxes(type="log", exponentformat="power")
    if lr_dim is not None:  # the whole searched range, so an edge shows as one
        fig.update_xaxes(range=[math.log10(lr_dim.low), math.log10(lr_dim.high)])
    legend_below(fig)
    return fig


def trials_box_figure(doc: Mapping[str, Any]) -> go.Figure:
    """Every finished trial's score, one box per optimizer, each trial a dot."""
    fig = go.Figure()
    for i, opt in enumerate(doc["optimizers"]):
        scores = [t["score"] for t in opt["trials"]]
        fig.add_trace(
            go.Box(
                y=scores,
                name=opt["label"],
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker=dict(color=color(i), size=6),
                line=dict(color=color(i)),
                hovertemplate=f"{opt['label']}: %{{y:.2%}}<extra></extra>",
            )
        )
    _layout(fig, "Every trial's final test accuracy", "", "final test accuracy")
    fig.update_layout(showlegend=False)
    return fig
