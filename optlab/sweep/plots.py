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

from optlab.charts import color, colorscale, dash, figure, legend_below, legend_spec
from optlab.numbers import number_text
from optlab.surface.surfaces import Surface
from optlab.sweep.run import (
    DIVERGED_CELL,
    NOT_CONVERGED,
    OTHER_STATIONARY,
    SweepResult,
    get_metric,
)
from optlab.sweep.scales import (
    GAP_FLOOR,
    axis_ticks,
    diverged_traces,
    line_traces,
    log_ticks,
    value_axes,
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
    traces = [
        dict(
            type="heatmap",
            x=cfg.x.edges,
            y=cfg.y.edges,
            z=z,
            colorscale=colorscale("Viridis"),
            reversescale=reverse,  # good (low) is bright
            colorbar=dict(title=dict(text=title, side="right")),
            hoverinfo="skip",
        )
    ]
    diverged = result.diverged_at >= 0
    if diverged.any():
        traces.append(
            dict(
                type="heatmap",
                x=cfg.x.edges,
                y=cfg.y.edges,
                z=np.where(diverged, 1.0, np.nan),
                colorscale=[[0, DIVERGED_COLOR], [1, DIVERGED_COLOR]],
                showscale=False,
                name="diverged",
                hoverinfo="skip",
            )
        )
    gx, gy = np.meshgrid(xs, ys)
    index = np.arange(cfg.cells).reshape(result.shape)
    traces.append(
        dict(
            type="scatter",
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
    )
    # Plotly dims whatever a selection leaves out; these marks stay as drawn.
    keep = dict(marker=dict(opacity=1))
    marks = [(result.best_cell(), "star", 16, "gold", 1, "best final loss")]
    marks.append((selected, "square-open", 18, "black", 3, "replayed"))
    for cell, symbol, size, colour, width, name in marks:
        if cell is None:
            continue
        cy, cx = divmod(cell, cfg.x.n)
        traces.append(
            dict(
                type="scatter",
                x=[xs[cx]],
                y=[ys[cy]],
                mode="markers",
                marker=dict(
                    symbol=symbol, size=size, color=colour, line=dict(width=width, color="black")
                ),
                name=name,
                hoverinfo="skip",
                unselected=keep,
            )
        )
    layout = dict(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        clickmode="event+select",
        dragmode=False,
        hovermode="closest",
        hoverdistance=-1,
        xaxis=dict(title=dict(text=cfg.x.name), **axis_ticks(cfg.x)),
        yaxis=dict(title=dict(text=cfg.y.name), **axis_ticks(cfg.y)),
    )
    # Under the plot: above it, a projector's big legend covers the title.
    layout["legend"] = legend_spec(layout, solo=False)
    return figure(traces, layout)


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
    style = dict(line=dict(color=color(1), width=2), name=label)
    traces = line_traces(xs, line, scale, hover, style, data)
    if metric != "diverged_at":
        traces += diverged_traces(xs, diverged_at, hover, "diverged", DIVERGED_COLOR, data)
    layout = dict(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        title=dict(text=f"{label} vs {swept.name}{held}", font=dict(size=14)),
        showlegend=False,
        hovermode="closest",
        xaxis=dict(title=dict(text=swept.name), **axis_ticks(swept)),
        **value_axes(scale, [line], traces),
    )
    if clickable:
        layout.update(clickmode="event+select", hoverdistance=-1)
    return figure(traces, layout)


#: The basin map's own colours (Paul Tol's "muted" scheme, less its rose and wine, too
#: near the red of "diverged"): one per minimum while a surface has at most this many.
#: They share no colour with the optimizers' palette (`optlab.charts.COLORS`), whose
#: orange is an optimizer: a basin map colours places, never optimizers. The first,
#: sand, is always a global minimum's (minima are listed global first).
BASIN_COLORS = ("#DDCC77", "#332288", "#44AA99", "#AA4499", "#117733", "#88CCEE", "#999933")
#: With more minima (Rastrigin's and Ackley's 121), global minima share sand...
GLOBAL_COLOR = BASIN_COLORS[0]
#: ... and each local minimum's basin is shaded by the minimum's value on this scale.
LOCAL_SCALE = "Blues_r"
#: "Not converged" is light grey; "other stationary point" a dark grey, apart in lightness
#: from every other colour here, so it stays distinct without colour vision.
NOT_CONVERGED_COLOR = "#BBBBBB"
OTHER_STATIONARY_COLOR = "#4D4D4D"
_OUTCOME_COLORS = {
    OTHER_STATIONARY: OTHER_STATIONARY_COLOR,
    NOT_CONVERGED: NOT_CONVERGED_COLOR,
    DIVERGED_CELL: DIVERGED_COLOR,
}
_OUTCOME_HOVER = {
    OTHER_STATIONARY: "other stationary point (a saddle, a maximum or a plateau)",
    NOT_CONVERGED: "not converged",
    DIVERGED_CELL: "diverged",
}


def _coord(value: float, span: float) -> str:
    """A coordinate for a label: 3 significant digits, rounding residue shown as 0."""
    return "0" if abs(value) < 1e-9 * span else f"{value:.3g}"


def _value_text(value: float) -> str:
    """f* for a label: "f ≈ 0" when it is rounding residue of a zero (|f| < 1e-12).

    Himmelblau's four minima are all 0, yet f evaluates to 0 at one and 7.9e-31 at
    another; a class reading "f = 7.889e-31" next to "f = 0" would look for a difference
    that is not there.
    """
    if value != 0 and abs(value) < 1e-12:
        return "f ≈ 0"
    return f"f = {value:.4g}"


def minimum_label(surface: Surface, k: int) -> str:
    """``"minimum 3 (global) at (3, 2), f = 0"``, "estimated minimum ..." for a formula."""
    m = surface.all_minima[k]
    (x0, x1), (y0, y1) = surface.bounds
    span = max(x1 - x0, y1 - y0)
    kind = "global" if k < len(surface.minima) else "local"
    name = "estimated minimum" if m.estimated else "minimum"
    where = f"({_coord(m.x, span)}, {_coord(m.y, span)})"
    return f"{name} {k + 1} ({kind}) at {where}, {_value_text(m.value)}"


def _legend_entry(fig: go.Figure, name: str, colour: str) -> None:
    fig.add_scatter(
        x=[None],
        y=[None],
        mode="markers",
        marker=dict(symbol="square", size=12, color=colour),
        name=name,
    )


def basins_figure(result: SweepResult, height: int = 560) -> go.Figure:
    """Start points coloured by where they end: a minimum, another stationary point, or not.

    Legibility on a 1024 x 768 projector decides the colouring. A surface with up to
    ``len(BASIN_COLORS)`` minima (Himmelblau, the camels, Styblinski-Tang, Goldstein-Price)
    gets one colour and one legend entry per minimum, which a class can name aloud. With
    more (Rastrigin, Ackley: 121 each), a legend entry per minimum would fill the screen
    and no palette keeps 121 colours apart; so every global minimum's basin is sand, and
    each local minimum's basin is shaded by that minimum's value on a blue scale with a
    colour bar: neighbouring basins differ in shade, the map reads as "how good a minimum
    did each start reach", and hovering a start names its minimum exactly. The outcomes
    that are no minimum are greys and red in both modes. Drawn as heatmaps of codes
    (category slots, and local minima's values) under transparent markers on the cell
    centres that make each start clickable.
    """
    cfg = result.config
    surface = cfg.resolved_surface
    minima = surface.all_minima
    n_global = len(surface.minima)
    xs, ys = cfg.x.values, cfg.y.values
    basin = result.basin
    few = len(minima) <= len(BASIN_COLORS)
    # Categories drawn as flat colour bands: (codes, legend name, colour, hover text).
    groups: list[tuple[list[int], str, str]] = []
    hover = {code: _OUTCOME_HOVER[code] for code in _OUTCOME_COLORS}
    for k in range(len(minima)):
        hover[k] = minimum_label(surface, k)
    if few:
        groups += [([k], minimum_label(surface, k), BASIN_COLORS[k]) for k in range(len(minima))]
    elif n_global:
        word = "estimated " if minima[0].estimated else ""
        name = (
            minimum_label(surface, 0)
            if n_global == 1
            else f"{n_global} {word}global minima (hover names each)"
        )
        groups.append((list(range(n_global)), name, GLOBAL_COLOR))
    groups += [([code], hover[code], colour) for code, colour in _OUTCOME_COLORS.items()]
    slot = np.full(basin.shape, np.nan)
    for g, (codes, _, _) in enumerate(groups):
        slot[np.isin(basin, codes)] = g
    n = len(groups)
    scale = []
    for g, (_, _, colour) in enumerate(groups):
        scale += [[g / n, colour], [(g + 1) / n, colour]]
    fig = go.Figure(
        go.Heatmap(
            x=xs,
            y=ys,
            z=slot,
            zmin=-0.5,
            zmax=n - 0.5,
            colorscale=scale,
            showscale=False,
            hoverinfo="skip",
        )
    )
    for codes, name, colour in groups:
        count = int(np.isin(basin, codes).sum())
        if count:
            _legend_entry(fig, f"{name}: {count} starts", colour)
    if not few:
        local = basin >= n_global
        values = np.array([m.value for m in minima])
        if local.any():
            fig.add_heatmap(
                x=xs,
                y=ys,
                z=np.where(local, values[np.where(local, basin, 0)], np.nan),
                colorscale=LOCAL_SCALE,
                zmin=float(values[n_global:].min()),
                zmax=float(values[n_global:].max()),
                colorbar=dict(title=dict(text="f at the local<br>minimum", side="right")),
                hoverinfo="skip",
                name="local minima",
            )
            word = "estimated " if minima[0].estimated else ""
            _legend_entry(
                fig,
                f"{len(minima) - n_global} {word}local minima, shaded by f (hover names each): "
                f"{int(local.sum())} starts",
                "#6BAED6",
            )
    labels = np.vectorize(hover.__getitem__, otypes=[object])(basin)
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
    if minima:  # gold stars, as on the playground's contour
        star = dict(symbol="star", color="gold", line=dict(width=1, color="black"))
        fig.add_scatter(
            x=[m.x for m in minima[:n_global]],
            y=[m.y for m in minima[:n_global]],
            mode="markers",
            marker=dict(size=15, **star),
            name="global minima" if n_global > 1 else "global minimum",
            hoverinfo="skip",
        )
        if len(minima) > n_global:
            fig.add_scatter(
                x=[m.x for m in minima[n_global:]],
                y=[m.y for m in minima[n_global:]],
                mode="markers",
                marker=dict(size=9 if few else 6, **star),
                name="local minima",
                hoverinfo="skip",
            )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        clickmode="event+select",
        dragmode=False,
    )
    legend_below(fig, solo=False)
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
    traces = []
    for i, (result, label, loss) in enumerate(zip(results, labels, lines, strict=True)):
        xs = np.asarray(result.config.x.values)
        c = color(i)
        hover = [f"{label}<br>lr = {number_text(float(v))}" for v in xs]
        style = dict(line=dict(color=c, width=2, dash=dash(i)), marker=dict(size=5), name=label)
        traces += line_traces(xs, loss, scale, hover, style)
        traces += diverged_traces(xs, result.diverged_at[0], hover, f"{label}: diverged", c)
        best = result.best_cell()
        if best is not None:
            gap = float(scale.shown(loss[best : best + 1])[0])
            traces.append(
                dict(
                    type="scatter",
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
            )
    xs_all = np.concatenate([r.config.x.values for r in results]) if results else []
    layout = dict(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        title=dict(
            text=f"Tuning curves: {scale.title} vs learning rate (×: diverged)",
            font=dict(size=14),
        ),
        hovermode="closest",
        xaxis=dict(title=dict(text="lr"), **log_ticks(xs_all)),
        **value_axes(scale, lines, traces),
    )
    # Under the plot: above it, a legend of several optimizers covered the title.
    layout["legend"] = legend_spec(layout)
    return figure(traces, layout)
