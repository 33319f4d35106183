"""How sweep charts place numbers: log ticks, losses as gaps to f*, clipped points, divergence.

A sweep's losses span many decades and a diverged cell's can be huge, so the
line charts (`optlab.sweep.plots`) draw losses as their gap to f* on a log
axis wherever f* is known; without f*, on a log axis when they stay positive,
else on a linear one whose range leaves far outliers out. Whatever a chart
cannot draw where it lies is drawn at its edge with a marker of its own, and
every hover text writes its number with `optlab.numbers.number_text`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from optlab.charts import decade_dtick, decades
from optlab.numbers import number_text
from optlab.sweep.config import Axis
from optlab.sweep.run import get_metric

#: Gaps to f* below this are drawn at it (a log axis cannot draw 0); the
#: heatmap's colours add it for the same reason.
GAP_FLOOR = 1e-12
#: On a linear loss axis, values further than this many interdecile ranges
#: beyond the middle 80% are drawn at the chart's edge, marked.
CLIP_SPREAD = 3.0


def log_ticks(values: Sequence[float] | np.ndarray) -> dict:
    """Plotly settings for a log axis over ``values``: ticks written ``1e−4``.

    ``exponentformat="e"`` writes a decade as ``1e−4`` (and 0.01 to 100 as
    such) in one font size, as the sidebar and the CLI spell the value,
    instead of Plotly's default SI ``100µ`` or the superscripts of
    ``"power"``, whose small minus sign is lost on a projector. Ticks fall on
    whole decades when the range holds at least two (`decade_dtick` keeps
    them few); a narrower range gets Plotly's 1-2-5 ticks, each written in
    full (``minorloglabels="complete"``: ``2e−4``, not a bare ``2``); a range
    under a third of a decade keeps Plotly's own ticks.
    """
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr) & (arr > 0)]
    ticks: dict = {"type": "log", "exponentformat": "e"}
    if not arr.size:
        return ticks
    span = decades(arr)
    whole = math.floor(np.log10(arr.max()) + 1e-9) - math.ceil(np.log10(arr.min()) - 1e-9) + 1
    if whole >= 2:
        ticks["dtick"] = decade_dtick(span)
    elif span >= 0.3:
        ticks |= {"dtick": "D2", "minorloglabels": "complete"}
    return ticks


def axis_ticks(axis: Axis) -> dict:
    """A swept axis's Plotly settings: log ticks on a log scale, ``e`` notation on both."""
    if axis.scale == "log":
        return log_ticks(axis.values)
    return {"type": "linear", "exponentformat": "e"}


@dataclass(frozen=True)
class Scale:
    """How a line chart draws one metric.

    Attributes:
        f_min: Subtracted from every value (losses where f* is known), or None.
        log: A log axis.
        low: Values below are drawn at ``low``, marked (None: no floor).
        high: Values above are drawn at ``high``, marked (None: no ceiling).
        title: The value axis's title.
    """

    f_min: float | None
    log: bool
    low: float | None
    high: float | None
    title: str

    def shown(self, values: np.ndarray) -> np.ndarray:
        """The values as the axis counts them (the gap to f*, for losses)."""
        return values - self.f_min if self.f_min is not None else values


def value_scale(lines: Sequence[np.ndarray], metric: str, f_min: float | None) -> Scale:
    """The axis for ``lines`` of ``metric`` (NaN: nothing to draw), shared by all of them.

    A loss is drawn as its gap to f* on a log axis (gaps under `GAP_FLOOR` at
    it); without f*, on a log axis when it stays positive, else on a linear
    one whose range leaves out far outliers (drawn at its edge). Step counts
    are drawn as they are.
    """
    label = get_metric(metric).label
    if not get_metric(metric).loss:
        return Scale(None, False, None, None, label)
    if f_min is not None:
        title = label if f_min == 0 else f"{label} − f*"
        return Scale(f_min, True, GAP_FLOOR, None, title)
    values = np.concatenate([np.ravel(v) for v in lines])
    values = values[np.isfinite(values)]
    if not values.size or values.min() > 0:
        return Scale(None, True, None, None, label)
    q10, q90 = np.percentile(values, [10, 90])
    spread = CLIP_SPREAD * max(q90 - q10, 1e-12 * max(abs(q10), abs(q90), 1.0))
    low, high = q10 - spread, q90 + spread
    return Scale(
        None,
        False,
        low if values.min() < low else None,
        high if values.max() > high else None,
        label,
    )


def line_traces(
    xs: np.ndarray,
    values: np.ndarray,
    scale: Scale,
    hover: list[str],
    style: dict,
    customdata: np.ndarray | None = None,
) -> list[dict]:
    """One curve of ``values`` over ``xs``, as Plotly traces; points beyond the scale's
    floor or ceiling are drawn on it with a triangle, their hover giving the true value."""
    shown = scale.shown(np.asarray(values, dtype=float))
    drawn = shown.copy()
    below = np.zeros(len(shown), dtype=bool)
    above = np.zeros(len(shown), dtype=bool)
    with np.errstate(invalid="ignore"):
        if scale.low is not None:
            below = shown < scale.low
            drawn[below] = scale.low
        if scale.high is not None:
            above = shown > scale.high
            drawn[above] = scale.high
    texts = [
        f"{h}<br>{scale.title} = {number_text(float(v))}" if math.isfinite(v) else h
        for h, v in zip(hover, shown, strict=True)
    ]
    traces = [
        dict(
            type="scatter",
            x=xs,
            y=drawn,
            mode="lines+markers",
            hovertext=texts,
            hovertemplate="%{hovertext}<extra></extra>",
            customdata=customdata,
            **style,
        )
    ]
    marks = ((below, "triangle-down-open", "floor"), (above, "triangle-up-open", "top"))
    for where, symbol, edge in marks:
        if not where.any():
            continue
        traces.append(
            dict(
                type="scatter",
                x=xs[where],
                y=drawn[where],
                mode="markers",
                marker=dict(
                    symbol=symbol, size=12, color=style["line"]["color"], line=dict(width=2)
                ),
                hovertext=[
                    f"{t}<br>(drawn at the chart's {edge})" for t in np.asarray(texts)[where]
                ],
                hovertemplate="%{hovertext}<extra></extra>",
                customdata=None if customdata is None else customdata[where],
                name=f"{style['name']}: beyond the chart's {edge}",
                showlegend=False,
                cliponaxis=False,
            )
        )
    return traces


#: An overlaid axis from 0 to 1 puts `diverged_traces`' crosses on the top edge
#: whatever the value axis shows (a log axis has no 0 to put them at).
TOP_EDGE_AXIS = dict(overlaying="y", type="linear", range=[0, 1], visible=False, fixedrange=True)


def diverged_traces(
    xs: np.ndarray,
    diverged_at: np.ndarray,
    hover: list[str],
    name: str,
    colour: str,
    customdata: np.ndarray | None = None,
) -> list[dict]:
    """A cross along the chart's top edge at every diverged value of ``xs`` (none
    when nothing diverged), on the axis ``yaxis2`` (`value_axes` adds it)."""
    where = diverged_at >= 0
    if not where.any():
        return []
    return [
        dict(
            type="scatter",
            x=xs[where],
            y=np.ones(int(where.sum())),
            yaxis="y2",
            mode="markers",
            marker=dict(symbol="x", size=10, color=colour, line=dict(width=1, color=colour)),
            hovertext=[
                f"{h}<br>diverged at step {number_text(int(step))}"
                for h, step in zip(np.asarray(hover)[where], diverged_at[where], strict=True)
            ],
            hovertemplate="%{hovertext}<extra></extra>",
            customdata=None if customdata is None else customdata[where],
            name=name,
            showlegend=False,
            cliponaxis=False,
        )
    ]


def value_axes(scale: Scale, lines: Sequence[np.ndarray], traces: Sequence[dict]) -> dict:
    """The layout's y axes for ``traces``: the value axis (``yaxis``: its title, type
    and ticks, and its range where values are clipped), and `TOP_EDGE_AXIS` as
    ``yaxis2`` when a trace is drawn on it (`diverged_traces`)."""
    axes = {"yaxis": _value_axis(scale, lines)}
    if any(trace.get("yaxis") == "y2" for trace in traces):
        axes["yaxis2"] = TOP_EDGE_AXIS
    return axes


def _value_axis(scale: Scale, lines: Sequence[np.ndarray]) -> dict:
    title = dict(text=scale.title)
    if scale.log:
        shown = np.concatenate([scale.shown(np.asarray(v, dtype=float)) for v in lines])
        if scale.low is not None:
            shown = np.where(shown < scale.low, scale.low, shown)
        return dict(title=title, **log_ticks(shown))
    axis = dict(title=title, type="linear", exponentformat="e")
    if scale.low is not None or scale.high is not None:
        shown = np.concatenate([np.ravel(v) for v in lines])
        shown = shown[np.isfinite(shown)]
        low = scale.low if scale.low is not None else shown.min()
        high = scale.high if scale.high is not None else shown.max()
        pad = 0.05 * (high - low)
        axis["range"] = [low - pad, high + pad]
    return axis
