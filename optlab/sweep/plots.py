"""Plotly figures of sweeps: heatmaps you can click, slices, basin maps, tuning curves.

Pure functions of `SweepResult`s. The heatmap carries an invisible point on
every cell centre: plotly.js reports selections of points, not of heatmap
cells, so that is what makes a cell clickable in the page.

Slices and tuning curves draw losses as `optlab.sweep.scales` says: a loss
of 1e10 next to losses of 1e-6 leaves every curve readable, and diverged
cells are crosses along the top edge.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from optlab.charts import color, dash
from optlab.numbers import number_text
from optlab.sweep.run import DIVERGED_CELL, NOT_CONVERGED, SweepResult, get_metric
from optlab.sweep.scales import (
    GAP_FLOOR,
    add_diverged,
    add_line,
    axis_ticks,
    log_ticks,
    value_axis,
    value_scale,
)

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
            return np.log10(np.clip(values - f_min, 0, None) + GAP_FLOOR), f"log₁₀({label} − f*)"
        if np.nanmin(values, initial=np.inf) > 0:
            return np.log10(values), f"log₁₀({label})"
        return values, label
    return np.where(values < 0, np.nan, values), label


def heatmap_figure(
    result: SweepResult, metric: str, selected: int | None = None, height: int = 520
) -> go.Figure:
    """The metric over a 2-D grid: diverged cells in red, the best cell starred.

    Every cell centre carries an invisible point whose ``customdata`` is the
    cell's index, for click selection. plotly.js selects the point nearest
    the pointer, so each drawn cell spans exactly the pixels nearer its
    centre than any other: its borders are given (`Axis.edges`, halfway on
    the axis's own scale) rather than left to Plotly, which puts them at
    arithmetic midpoints, off-centre on a log axis. The points are text
    points with no text, not markers: plotly.js counts any pointer within
    3 px of a marker's centre as on it and breaks the tie towards the later
    point, so on cells under 6 px wide a click picked the neighbour;
    ``hoverdistance=-1`` makes a click anywhere in a large cell count too.
    """
    cfg = result.config
    xs, ys = cfg.x.values, cfg.y.values
    z, title = metric_values(result, metric)
    reverse = get_metric(metric).loss or metric == "steps_to_target"
    fig = go.Figure(
        go.Heatmap(
            x=cfg.x.edges,
            y=cfg.y.edges,
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
            x=cfg.x.edges,
            y=cfg.y.edges,
            z=np.where(diverged, 1.0, np.nan),
            colorscale=[[0, DIVERGED_COLOR], [1, DIVERGED_COLOR]],
            showscale=False,
            name="diverged",
            hoverinfo="skip",
        )
    gx, gy = np.meshgrid(xs, ys)
    index = np.arange(cfg.cells).reshape(result.shape)
    fig.add_scatter(
        x=gx.ravel(),
        y=gy.ravel(),
        mode="text",
        text=[""] * cfg.cells,
        customdata=index.ravel(),
        hovertext=_cell_text(result).ravel(),
        hovertemplate="%{hovertext}<extra></extra>",
        name="cells",
        showlegend=False,
    )
    # Plotly dims whatever a selection leaves out; these marks stay as drawn.
    keep = dict(marker=dict(opacity=1))
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
            unselected=keep,
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
            unselected=keep,
        )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        clickmode="event+select",
        dragmode=False,
        hovermode="closest",
        hoverdistance=-1,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
    )
    fig.update_xaxes(title_text=cfg.x.name, **axis_ticks(cfg.x))
    fig.update_yaxes(title_text=cfg.y.name, **axis_ticks(cfg.y))
    return fig


def _cell_text(result: SweepResult) -> np.ndarray:
    """Each cell's hover text: its swept values and what became of it."""
    cfg = result.config
    xs = [f"{cfg.x.name} = {number_text(v)}" for v in cfg.x.values]
    ys = [f"{cfg.y.name} = {number_text(v)}" for v in cfg.y.values]
    final, diverged, reached = result.final_loss, result.diverged_at, result.steps_to_target
    out = np.empty(result.shape, dtype=object)
    for iy, y_text in enumerate(ys):
        for ix, x_text in enumerate(xs):
            if diverged[iy, ix] >= 0:
                what = f"diverged at step {number_text(int(diverged[iy, ix]))}"
            else:
                what = f"final loss {number_text(float(final[iy, ix]))}"
                if reached[iy, ix] >= 0:
                    what += f"<br>reached the target at step {number_text(int(reached[iy, ix]))}"
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

    With ``clickable`` (a 1-D sweep's only chart), each point carries its cell's
    index as ``customdata`` and a click selects it, as the heatmap's points do;
    the nearest point to the click counts, however far.
    """
    cfg = result.config
    raw = result.metric(metric).astype(float)
    if not get_metric(metric).loss:
        raw = np.where(raw < 0, np.nan, raw)
    swept = cfg.axes[axis]
    index = np.arange(cfg.cells).reshape(result.shape)
    if cfg.y is None:
        pick, held = (0, slice(None)), ""
    else:
        iy, ix = divmod(at if at is not None else 0, cfg.x.n)
        if axis == 0:
            pick, held = (iy, slice(None)), f" at {cfg.y.name} = {number_text(cfg.y.values[iy])}"
        else:
            pick, held = (slice(None), ix), f" at {cfg.x.name} = {number_text(cfg.x.values[ix])}"
    line, cells, diverged_at = raw[pick], index[pick], result.diverged_at[pick]
    label = get_metric(metric).label
    scale = value_scale([line], metric, cfg.resolved_surface.f_min)
    xs = np.asarray(swept.values)
    hover = [f"{swept.name} = {number_text(float(v))}" for v in xs]
    data = cells if clickable else None
    fig = go.Figure()
    add_line(
        fig, xs, line, scale, hover, dict(line=dict(color=color(1), width=2), name=label), data
    )
    if metric != "diverged_at":
        add_diverged(fig, xs, diverged_at, hover, "diverged", DIVERGED_COLOR, data)
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        title=dict(text=f"{label} vs {swept.name}{held}", font=dict(size=14)),
        showlegend=False,
        hovermode="closest",
    )
    if clickable:
        fig.update_layout(clickmode="event+select", hoverdistance=-1)
    fig.update_xaxes(title_text=swept.name, **axis_ticks(swept))
    value_axis(fig, scale, [line])
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
    """Final loss against the learning rate, one curve per optimizer, best lr marked.

    Each optimizer has its colour and dash pattern (`optlab.charts`); its
    diverged learning rates are crosses of its colour along the top edge.
    """
    f_min = results[0].config.resolved_surface.f_min if results else None
    lines = [r.final_loss[0] for r in results]
    scale = value_scale(lines, "final_loss", f_min)
    fig = go.Figure()
    for i, (result, label, loss) in enumerate(zip(results, labels, lines, strict=True)):
        xs = np.asarray(result.config.x.values)
        c = color(i)
        hover = [f"{label}<br>lr = {number_text(float(v))}" for v in xs]
        style = dict(line=dict(color=c, width=2, dash=dash(i)), marker=dict(size=5), name=label)
        add_line(fig, xs, loss, scale, hover, style)
        add_diverged(fig, xs, result.diverged_at[0], hover, f"{label}: diverged", c)
        best = result.best_cell()
        if best is not None:
            gap = float(scale.shown(loss[best : best + 1])[0])
            fig.add_scatter(
                x=[xs[best]],
                y=[max(gap, scale.low) if scale.low is not None else gap],
                mode="markers",
                marker=dict(symbol="star", size=15, color=c, line=dict(width=1, color="black")),
                name=f"{label}: best lr {number_text(float(xs[best]))}",
                showlegend=False,
                hovertext=[
                    f"{label}<br>best lr {number_text(float(xs[best]))}<br>"
                    f"{scale.title} = {number_text(gap)}"
                ],
                hovertemplate="%{hovertext}<extra></extra>",
            )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        title=dict(
            text=f"Tuning curves: {scale.title} vs learning rate (×: diverged)",
            font=dict(size=14),
        ),
        # Under the plot: above it, a legend of several optimizers covered the title.
        legend=dict(orientation="h", yanchor="top", y=-0.22, x=0),
        hovermode="closest",
    )
    xs_all = np.concatenate([r.config.x.values for r in results]) if results else []
    fig.update_xaxes(title_text="lr", **log_ticks(xs_all))
    value_axis(fig, scale, lines)
    return fig
