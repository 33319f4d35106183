"""Plotly figures of sweeps: heatmaps you can click, slices, basin maps, tuning curves.

Pure functions of `SweepResult`s. The heatmap carries an invisible marker on
every cell centre: plotly.js reports selections of markers, not of heatmap
cells, so that is what makes a cell clickable in the page.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from optlab.charts import COLORS, color
from optlab.sweep.run import DIVERGED_CELL, NOT_CONVERGED, SweepResult, get_metric

DIVERGED_COLOR = "#B00020"


def metric_values(result: SweepResult, metric: str) -> tuple[np.ndarray, str]:
    """The values a heatmap colours by (NaN: not shown) and the colour bar's title.

    Losses are shown as ``log10(f - f* + 1e-12)`` where f* is known (else
    log10 of the loss when it stays positive); step counts as they are, with
    "never" (-1) not shown.
    """
    values = result.metric(metric).astype(float)
    label = get_metric(metric).label
    if get_metric(metric).loss:
        f_min = result.config.resolved_surface.f_min
        if f_min is not None:
            return np.log10(np.clip(values - f_min, 0, None) + 1e-12), f"log₁₀({label} − f*)"
        if np.nanmin(values, initial=np.inf) > 0:
            return np.log10(values), f"log₁₀({label})"
        return values, label
    return np.where(values < 0, np.nan, values), label


def _axis_type(result: SweepResult, axis: int) -> str:
    return "log" if result.config.axes[axis].scale == "log" else "linear"


def heatmap_figure(
    result: SweepResult, metric: str, selected: int | None = None, height: int = 520
) -> go.Figure:
    """The metric over a 2-D grid: diverged cells in red, the best cell starred.

    Every cell centre carries a transparent marker whose ``customdata`` is
    the cell's index, for click selection.
    """
    cfg = result.config
    xs, ys = cfg.x.values, cfg.y.values
    z, title = metric_values(result, metric)
    reverse = get_metric(metric).loss or metric == "steps_to_target"
    fig = go.Figure(
        go.Heatmap(
            x=xs,
            y=ys,
            z=z,
            colorscale="Viridis",
            reversescale=reverse,  # good (low) is bright
            colorbar=dict(title=dict(text=title, side="right")),
            hoverinfo="skip",
        )
    )
    diverged = result.diverged_at >= 0
    if diverged.any():
        fig.add_heatmap(
            x=xs,
            y=ys,
            z=np.where(diverged, 1.0, np.nan),
            colorscale=[[0, DIVERGED_COLOR], [1, DIVERGED_COLOR]],
            showscale=False,
            name="diverged",
            hoverinfo="skip",
        )
    gx, gy = np.meshgrid(xs, ys)
    index = np.arange(cfg.cells).reshape(result.shape)
    text = _cell_text(result)
    fig.add_scatter(
        x=gx.ravel(),
        y=gy.ravel(),
        mode="markers",
        marker=dict(size=6, opacity=0, color="white"),
        selected=dict(marker=dict(opacity=0)),
        unselected=dict(marker=dict(opacity=0)),
        customdata=index.ravel(),
        text=text.ravel(),
        hovertemplate="%{text}<extra></extra>",
        name="cells",
        showlegend=False,
    )
    best = result.best_cell()
    if best is not None:
        by, bx = divmod(best, cfg.x.n)
        fig.add_scatter(
            x=[xs[bx]],
            y=[ys[by]],
            mode="markers",
            marker=dict(symbol="star", size=16, color="gold", line=dict(width=1, color="black")),
            name="best final loss",
            hoverinfo="skip",
        )
    if selected is not None:
        sy, sx = divmod(selected, cfg.x.n)
        fig.add_scatter(
            x=[xs[sx]],
            y=[ys[sy]],
            mode="markers",
            marker=dict(symbol="square-open", size=18, color="black", line=dict(width=3)),
            name="replayed",
            hoverinfo="skip",
        )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        clickmode="event+select",
        dragmode=False,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
    )
    fig.update_xaxes(title_text=cfg.x.name, type=_axis_type(result, 0))
    fig.update_yaxes(title_text=cfg.y.name, type=_axis_type(result, 1))
    return fig


def _cell_text(result: SweepResult) -> np.ndarray:
    """Each cell's hover text: its swept values and what became of it."""
    cfg = result.config
    xs = [f"{cfg.x.name} = {v:.4g}" for v in cfg.x.values]
    ys = [f"{cfg.y.name} = {v:.4g}" for v in cfg.y.values]
    final, diverged, reached = result.final_loss, result.diverged_at, result.steps_to_target
    out = np.empty(result.shape, dtype=object)
    for iy, y_text in enumerate(ys):
        for ix, x_text in enumerate(xs):
            if diverged[iy, ix] >= 0:
                what = f"diverged at step {diverged[iy, ix]}"
            else:
                what = f"final loss {final[iy, ix]:.4g}"
                if reached[iy, ix] >= 0:
                    what += f"<br>reached the target at step {reached[iy, ix]}"
            out[iy, ix] = f"{x_text}<br>{y_text}<br>{what}"
    return out


def slice_figure(
    result: SweepResult,
    metric: str,
    axis: int,
    at: int | None = None,
    height: int = 320,
    clickable: bool = False,
) -> go.Figure:
    """The metric along one axis with the other held (at the row/column of cell ``at``).

    With ``clickable`` (a 1-D sweep's only chart), each marker carries its cell's
    index as ``customdata`` and a click selects it, as the heatmap's markers do.
    """
    cfg = result.config
    values = result.metric(metric).astype(float)
    if not get_metric(metric).loss:
        values = np.where(values < 0, np.nan, values)
    swept = cfg.axes[axis]
    if cfg.y is None:
        line, held = values[0], ""
    else:
        iy, ix = divmod(at if at is not None else 0, cfg.x.n)
        if axis == 0:
            line, held = values[iy], f" at {cfg.y.name} = {cfg.y.values[iy]:.4g}"
        else:
            line, held = values[:, ix], f" at {cfg.x.name} = {cfg.x.values[ix]:.4g}"
    diverged = (result.diverged_at >= 0)[0] if cfg.y is None else None
    fig = go.Figure()
    fig.add_scatter(
        x=swept.values,
        y=line,
        mode="lines+markers",
        line=dict(color=COLORS[1], width=2),
        name=get_metric(metric).label,
        customdata=np.arange(len(swept.values)) if clickable else None,
    )
    if diverged is not None and diverged.any():
        fig.add_scatter(
            x=swept.values[diverged],
            y=np.zeros(int(diverged.sum())),
            mode="markers",
            marker=dict(symbol="x", size=9, color=DIVERGED_COLOR),
            name="diverged",
            yaxis="y",
        )
    log_y = get_metric(metric).loss and np.nanmin(line, initial=np.inf) > 0
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        title=dict(text=f"{get_metric(metric).label} vs {swept.name}{held}", font=dict(size=14)),
        showlegend=False,
    )
    if clickable:
        fig.update_layout(clickmode="event+select")
    fig.update_xaxes(title_text=swept.name, type="log" if swept.scale == "log" else "linear")
    fig.update_yaxes(title_text=get_metric(metric).label, type="log" if log_y else "linear")
    return fig


#: Basin colours: one per known minimum, grey for "not converged".
NOT_CONVERGED_COLOR = "#BBBBBB"


def basins_figure(result: SweepResult, height: int = 560) -> go.Figure:
    """Start points coloured by the known minimum they end in (or diverged / not converged).

    Drawn as a heatmap of category codes with a discrete colour scale; a
    legend entry per category gives its count, and transparent markers on
    the cell centres make each start clickable.
    """
    cfg = result.config
    surface = cfg.resolved_surface
    minima = surface.all_minima
    xs, ys = cfg.x.values, cfg.y.values
    groups = [
        (k, f"minimum {k + 1} ({m.x:.3g}, {m.y:.3g}), f = {m.value:.4g}", color(k))
        for k, m in enumerate(minima)
    ]
    groups += [
        (NOT_CONVERGED, "not converged", NOT_CONVERGED_COLOR),
        (DIVERGED_CELL, "diverged", DIVERGED_COLOR),
    ]
    # Category g is drawn as the value g, with a colour scale of flat bands.
    slot = {code: g for g, (code, _, _) in enumerate(groups)}
    z = np.vectorize(slot.__getitem__)(result.basin).astype(float)
    n = len(groups)
    scale = []
    for g, (_, _, c) in enumerate(groups):
        scale += [[g / n, c], [(g + 1) / n, c]]
    fig = go.Figure(
        go.Heatmap(
            x=xs,
            y=ys,
            z=z,
            zmin=-0.5,
            zmax=n - 0.5,
            colorscale=scale,
            showscale=False,
            hoverinfo="skip",
        )
    )
    labels = np.array([label for _, label, _ in groups], dtype=object)[z.astype(int)]
    for code, label, c in groups:
        count = int((result.basin == code).sum())
        if count:
            fig.add_scatter(
                x=[None],
                y=[None],
                mode="markers",
                marker=dict(symbol="square", size=12, color=c),
                name=f"{label}: {count} starts",
            )
    gx, gy = np.meshgrid(xs, ys)
    fig.add_scatter(
        x=gx.ravel(),
        y=gy.ravel(),
        mode="markers",
        marker=dict(size=6, opacity=0),
        selected=dict(marker=dict(opacity=0)),
        unselected=dict(marker=dict(opacity=0)),
        customdata=np.arange(cfg.cells),
        text=labels.ravel(),
        hovertemplate="start (%{x:.3g}, %{y:.3g})<br>→ %{text}<extra></extra>",
        showlegend=False,
        name="starts",
    )
    if minima:
        fig.add_scatter(
            x=[m.x for m in minima],
            y=[m.y for m in minima],
            mode="markers",
            marker=dict(symbol="star", size=15, color="gold", line=dict(width=1, color="black")),
            name="known minima",
            hoverinfo="skip",
        )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        clickmode="event+select",
        dragmode=False,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0, font=dict(size=11)),
    )
    fig.update_xaxes(title_text="start x", range=[xs[0], xs[-1]])
    fig.update_yaxes(title_text="start y", range=[ys[0], ys[-1]])
    return fig


def tuning_figure(
    results: Sequence[SweepResult], labels: Sequence[str], height: int = 360
) -> go.Figure:
    """Final loss against the learning rate, one curve per optimizer, best lr marked."""
    fig = go.Figure()
    for i, (result, label) in enumerate(zip(results, labels, strict=True)):
        xs = result.config.x.values
        loss = result.final_loss[0]
        c = color(i)
        fig.add_scatter(
            x=xs,
            y=loss,
            mode="lines+markers",
            line=dict(color=c, width=2),
            marker=dict(size=5),
            name=label,
        )
        best = result.best_cell()
        if best is not None:
            fig.add_scatter(
                x=[xs[best]],
                y=[loss[best]],
                mode="markers",
                marker=dict(symbol="star", size=15, color=c, line=dict(width=1, color="black")),
                name=f"{label}: best lr {xs[best]:.3g}",
                showlegend=False,
                hovertemplate=(
                    f"{label}<br>best lr %{{x:.4g}}<br>final loss %{{y:.4g}}<extra></extra>"
                ),
            )
    finite = np.concatenate([r.final_loss[0] for r in results])
    finite = finite[np.isfinite(finite)]
    log_y = finite.size > 0 and finite.min() > 0
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        title=dict(
            text="Tuning curves: final loss vs learning rate (gaps: diverged)", font=dict(size=14)
        ),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        hovermode="closest",
    )
    fig.update_xaxes(title_text="lr", type="log")
    fig.update_yaxes(
        title_text="final loss", type="log" if log_y else "linear", exponentformat="power"
    )
    return fig
