"""Plotly figures of the CNN's trajectories: pure functions of a landscape document.

A *landscape document* is the JSON that ``python -m optlab landscape`` writes
(`optlab.train.trajectories`): ``a``, ``b`` (grid coordinates along the plane's
unit directions, in units of parameter-space L2 distance), ``loss`` indexed
``[b][a]``, ``lines`` (the loss along straight lines between weights) and
``runs`` (each optimizer's snapshots projected on the plane, with each
projection's relative ``residual``). While a run trains, the page draws the same
document before the grid exists (``loss`` None: paths only) and with runs whose
snapshot losses are not evaluated yet (no ``loss`` key).

Every optimizer keeps its colour and dash pattern from `optlab.charts`; the
plane's axes share one scale, so distances and angles on screen are the real
ones in parameter space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from optlab.charts import color, dash, decade_dtick, decades
from optlab.numbers import number_text

#: A grid whose loss spans more than this ratio (max / min) is coloured by log10.
LOG_COLOUR_RATIO = 10.0
#: Colour scale of the loss landscape (sequential; the paths' colours stand out).
LANDSCAPE_SCALE = "Greys_r"


def _finite(values: Sequence[Sequence[float | None]]) -> np.ndarray:
    arr = np.asarray([[np.nan if v is None else v for v in row] for row in values], dtype=float)
    return arr


def log_colour(loss: np.ndarray) -> bool:
    """Whether a grid's loss is coloured by its log10: it spans over a decade."""
    finite = loss[np.isfinite(loss) & (loss > 0)]
    return finite.size > 1 and float(finite.max() / finite.min()) > LOG_COLOUR_RATIO


def _colour_bar(loss: np.ndarray, log: bool) -> tuple[np.ndarray, dict]:
    """The contour's z values and its colour bar: on a log grid the bar's ticks name
    the loss itself at whole and half decades."""
    if not log:
        return loss, dict(title=dict(text="loss", side="right"))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(loss > 0, np.log10(loss), np.nan)
    lo, hi = np.nanmin(z), np.nanmax(z)
    # Half decades on a short range, whole ones (at most 8 labels) on a long one.
    per = 2 if hi - lo < 2 else 1 / decade_dtick(hi - lo)
    ticks = [t / per for t in range(math.floor(lo * per), math.ceil(hi * per) + 1)]
    return z, dict(
        title=dict(text="loss (log)", side="right"),
        tickvals=ticks,
        ticktext=[number_text(10**t) for t in ticks],
    )


def _hover(name: str, run: Mapping) -> tuple[list, str]:
    """Per-point custom data and the hover text: step, (a, b), the residual and, when
    evaluated, the snapshot's true loss."""
    residual = run.get("residual") or [None] * len(run["steps"])
    loss = run.get("loss")
    custom = [
        [s, 100 * r if r is not None else None, loss[i] if loss else None]
        for i, (s, r) in enumerate(zip(run["steps"], residual, strict=True))
    ]
    text = (
        f"<b>{name}</b><br>step %{{customdata[0]}}<br>a=%{{x:.4g}}, b=%{{y:.4g}}"
        "<br>off the plane: %{customdata[1]:.3g}% of ‖θ − θ₀‖"
    )
    if loss:
        text += "<br>loss %{customdata[2]:.4g}"
    return custom, text + "<extra></extra>"


def _path_traces(fig: go.Figure, runs: Sequence[Mapping]) -> None:
    for i, run in enumerate(runs):
        name, c = run["optimizer"], color(i)
        custom, hover = _hover(name, run)
        a, b = run["a"], run["b"]
        fig.add_scatter(
            x=a,
            y=b,
            mode="lines+markers",
            line=dict(color=c, width=2.5, dash=dash(i)),
            marker=dict(size=5, color=c),
            name=name,
            legendgroup=str(i),
            customdata=custom,
            hovertemplate=hover,
            hoverlabel=dict(bgcolor=c, font=dict(color="white")),
        )
        if a:
            fig.add_scatter(
                x=[a[-1]],
                y=[b[-1]],
                mode="markers",
                marker=dict(symbol="x", size=13, color=c, line=dict(width=1.5, color="white")),
                name=f"{name}: step {run['steps'][-1]}",
                legendgroup=str(i),
                showlegend=False,
                customdata=[custom[-1]],
                hovertemplate=hover,
                hoverlabel=dict(bgcolor=c, font=dict(color="white")),
            )
    if runs and runs[0]["a"]:
        fig.add_scatter(
            x=[runs[0]["a"][0]],
            y=[runs[0]["b"][0]],
            mode="markers",
            marker=dict(symbol="circle-open", size=14, color="black", line=dict(width=2.5)),
            name="θ₀ (shared start)",
            hovertemplate="θ₀: the shared initial weights<extra></extra>",
        )


def landscape_figure(doc: Mapping, *, height: int = 520) -> go.Figure:
    """The loss over the plane as a contour (log colour when it spans decades) with
    every optimizer's projected path, its start θ₀ and its end ✖; without a grid yet,
    the paths alone on the plane's axes."""
    fig = go.Figure()
    loss = doc.get("loss")
    if loss is not None:
        grid = _finite(loss)
        z, bar = _colour_bar(grid, log_colour(grid))
        fig.add_contour(
            x=doc["a"],
            y=doc["b"],
            z=z,
            colorscale=LANDSCAPE_SCALE,
            ncontours=24,
            contours=dict(coloring="heatmap", showlines=True),
            line=dict(width=0.5, color="rgba(255,255,255,0.5)"),
            colorbar=bar,
            customdata=grid,
            hovertemplate="a=%{x:.4g}, b=%{y:.4g}<br>loss %{customdata:.4g}<extra></extra>",
            name="loss",
            showlegend=False,
        )
    _path_traces(fig, doc.get("runs", ()))
    plane = doc.get("plane", {})
    fig.update_layout(
        height=height,
        margin=dict(t=30, r=10),
        legend=dict(orientation="h", yanchor="top", y=-0.14, x=0),
        xaxis=dict(title=dict(text=f"a: along e₁ ({_axis_words(plane, 0)})"), zeroline=False),
        yaxis=dict(
            title=dict(text=f"b: along e₂ ({_axis_words(plane, 1)})"),
            zeroline=False,
            scaleanchor="x",
            scaleratio=1,
        ),
    )
    if loss is not None:
        fig.update_xaxes(range=[doc["a"][0], doc["a"][-1]], constrain="domain")
        fig.update_yaxes(range=[doc["b"][0], doc["b"][-1]], constrain="domain")
    return fig


def _axis_words(plane: Mapping, axis: int) -> str:
    """What a plane's axis is, in a few words."""
    kind = plane.get("kind")
    if kind == "endpoints":
        names = plane.get("optimizers") or ["A", "B"]
        return f"θ₀ → {names[axis]}" + (", orthogonalised" if axis else "")
    if kind == "pca":
        return f"principal direction {axis + 1}"
    if kind == "random":
        return f"random direction {axis + 1}, filter-normalised"
    return "L2 distance"


def landscape_3d(doc: Mapping, *, height: int = 560) -> go.Figure:
    """The same grid as a surface, each path drawn at its snapshots' true loss (runs
    whose losses are not evaluated yet are left out: a height would be a guess)."""
    fig = go.Figure()
    grid = _finite(doc["loss"])
    fig.add_surface(
        x=doc["a"],
        y=doc["b"],
        z=grid,
        colorscale=LANDSCAPE_SCALE,
        opacity=0.85,
        showscale=False,
        hovertemplate="a=%{x:.4g}, b=%{y:.4g}<br>loss %{z:.4g}<extra></extra>",
        name="loss",
    )
    for i, run in enumerate(doc.get("runs", ())):
        if not run.get("loss"):
            continue
        fig.add_scatter3d(
            x=run["a"],
            y=run["b"],
            z=run["loss"],
            mode="lines+markers",
            line=dict(color=color(i), width=6),
            marker=dict(size=3, color=color(i)),
            name=run["optimizer"],
            customdata=run["steps"],
            hovertemplate=(
                f"<b>{run['optimizer']}</b><br>step %{{customdata}}<br>loss %{{z:.4g}}"
                "<extra></extra>"
            ),
        )
    fig.update_layout(
        height=height,
        margin=dict(l=0, r=0, t=10, b=0),
        scene=dict(
            xaxis_title="a",
            yaxis_title="b",
            zaxis_title="loss",
            aspectmode="manual",
            aspectratio=dict(x=1, y=1, z=0.6),
            camera=dict(eye=dict(x=1.25, y=-1.25, z=0.8)),
        ),
        legend=dict(orientation="h", yanchor="top", y=0, x=0),
    )
    return fig


def lines_figure(doc: Mapping, *, height: int = 360) -> go.Figure:
    """The loss along straight lines in weight space (Goodfellow et al. 2015):
    θ₀ → each optimizer's last snapshot, and from one optimizer's to another's (a
    bump between them is the barrier separating their solutions)."""
    fig = go.Figure()
    names = [run["optimizer"] for run in doc.get("runs", ())]
    for k, line in enumerate(doc.get("lines", ())):
        end, start = line["to"], START_NAMES.get(line["from"], line["from"])
        i = names.index(end) if end in names else k
        between = line["from"] in names
        fig.add_scatter(
            x=line["t"],
            y=line["loss"],
            mode="lines",
            line=dict(
                color=color(i), width=3 if between else 2, dash="dot" if between else "solid"
            ),
            name=f"{start} → {end}",
            hovertemplate=(
                f"<b>{start} → {end}</b><br>t=%{{x:.3g}}<br>loss %{{y:.4g}}<extra></extra>"
            ),
        )
    fig.update_layout(
        height=height,
        margin=dict(t=30, r=10),
        xaxis=dict(title=dict(text="t: (1 − t)·start + t·end")),
        yaxis=dict(title=dict(text="loss on the evaluation images")),
        legend=dict(orientation="h", yanchor="top", y=-0.22, x=0),
    )
    return fig


#: How a line's start is named on the chart (``initial``: the shared θ₀).
START_NAMES = {"initial": "θ₀"}


#: The sharpness a record is drawn with and its threshold's words, by what it measured.
PLAIN = ("lambda_max", "threshold", "λ_max(H)", "stability threshold")
PRECONDITIONED = (
    "lambda_max_preconditioned",
    "threshold_preconditioned",
    "λ₁(P⁻¹H)",
    "(2 + 2β₁)/((1 − β₁)η)",
)


def sharpness_kind(records: Sequence[Mapping]) -> tuple[str, str, str, str]:
    """Which sharpness an optimizer's chart plots: the preconditioned one for the
    Adam family (its threshold is about P⁻¹H, Cohen et al. 2022), else λ_max(H)."""
    if any(r.get("threshold_preconditioned") is not None for r in records):
        return PRECONDITIONED
    return PLAIN


def sharpness_figure(
    names: Sequence[str], records: Sequence[Sequence[Mapping]], *, row_height: int = 190
) -> go.Figure:
    """One panel per optimizer: its sharpness at each measured step and the stability
    threshold it is compared with (the edge of stability is where they meet). An
    optimizer with no known threshold shows λ_max(H) alone and says so."""
    n = max(len(names), 1)
    titles = []
    for name, recs in zip(names, records, strict=True):
        value, threshold, symbol, words = sharpness_kind(recs)
        has = any(r.get(threshold) is not None for r in recs)
        titles.append(f"{name}: {symbol}" + (f" vs {words}" if has else " (no known threshold)"))
    fig = make_subplots(
        rows=n, cols=1, shared_xaxes=True, subplot_titles=titles, vertical_spacing=0.12 / n
    )
    for i, recs in enumerate(records):
        value, threshold, symbol, _ = sharpness_kind(recs)
        steps = [r["step"] for r in recs]
        fig.add_scatter(
            x=steps,
            y=[r.get(value) for r in recs],
            mode="lines+markers",
            line=dict(color=color(i), width=2.5),
            marker=dict(size=6, color=color(i)),
            name=f"{names[i]} {symbol}",
            hovertemplate=f"<b>{names[i]}</b><br>step %{{x}}<br>{symbol} %{{y:.4g}}<extra></extra>",
            row=i + 1,
            col=1,
        )
        limits = [r.get(threshold) for r in recs]
        if any(v is not None for v in limits):
            fig.add_scatter(
                x=steps,
                y=limits,
                mode="lines",
                line=dict(color=color(i), width=2, dash="dash", shape="hv"),
                name=f"{names[i]} threshold",
                hovertemplate=(
                    f"<b>{names[i]}</b><br>step %{{x}}<br>threshold %{{y:.4g}}<extra></extra>"
                ),
                row=i + 1,
                col=1,
            )
        span = decades([r.get(value) for r in recs] + limits)
        # Whole decades when the panel spans one or more (Plotly's "2, 5" between
        # decades read as values); within a decade Plotly's own ticks say more.
        ticks = dict(dtick=decade_dtick(span)) if span >= 1 else {}
        fig.update_yaxes(type="log", row=i + 1, col=1, **ticks)
    fig.update_xaxes(title_text="step", row=n, col=1)
    fig.update_layout(height=row_height * n + 80, showlegend=False, margin=dict(t=40, r=10))
    return fig
