"""What every chart shares: the optimizers' colours, the modebar, thinning, log ticks.

The figure builders of each product (`optlab.surface.plots`,
`optlab.sweep.plots`, `optlab.train.plots`) take these from here, so an
optimizer has the same colour in every chart of every page.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The optimizers' line colours: Okabe & Ito's eight colours ("Color Universal
#: Design", 2002), which stay distinct under every common colour-vision deficiency.
#: Vermilion and blue come first, so a two-optimizer comparison is never red/green.
COLORS = (
    "#D55E00",  # vermilion
    "#0072B2",  # blue
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#F0E442",  # yellow
)
#: Plotly dash patterns, one per optimizer after the colour: two lines of similar
#: colours (or a grey-scale print) still differ.
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot", "solid", "dash")
#: Points drawn of a long path or curve (the first and last always among them).
MAX_PATH_POINTS = 600
#: Pixels from a plot's bottom edge to a legend under it: tick labels and the
#: x axis's title fit between (at 56 px the title touched the legend's first row).
LEGEND_GAP_PX = 72
#: Smallest font of a chart in presenter view, in pixels.
PRESENTER_FONT = 18
#: How much taller a chart is in presenter view, and how much further down the
#: things under its plot sit (their text grows by about as much).
PRESENTER_SCALE = 1.35
#: Decades of headroom above the curves that set a log chart's range.
LOG_HEADROOM = 1.0
#: Share of the span added above and below on a linear chart.
LINEAR_HEADROOM = 0.08
#: Most tick labels on a log axis; more overlap at the charts' height.
MAX_LOG_TICKS = 8
#: Streamlit's chart theme, which `reserve_margins` sizes for: tick labels 12 px,
#: axis titles 14 px, titles this far from the tick labels, the plot this far
#: from its axes (``margin.pad``).
THEME_TICK_FONT, THEME_TITLE_FONT = 12, 14
THEME_STANDOFF = {"x": 20, "y": 24}
THEME_PAD = 8
#: A tick label's character width and its line's height, in font sizes (a little
#: over the theme's sans-serif digits, so the estimate errs wide); a rotated axis
#: title is one font size thick.
CHAR_EM, LINE_EM = 0.62, 1.3
#: Height of plotly.js's modebar band at a chart's top right (its icons and their
#: padding: 32 px measured in Chromium, plus a little air): a title in the top
#: margin sits below it.
MODEBAR_PX = 34
#: plotly.js's top margin when a figure sets none, and an annotation's font size
#: when neither it nor the layout sets one.
PLOTLY_TOP_MARGIN, ANNOTATION_FONT = 100, 12
#: Characters of an axis's widest tick label when nothing better is known.
DEFAULT_LABEL_CHARS = 6


def color(i: int) -> str:
    """The colour of optimizer ``i`` in every chart."""
    return COLORS[i % len(COLORS)]


def dash(i: int) -> str:
    """The dash pattern of optimizer ``i``'s lines in every chart."""
    return DASHES[i % len(DASHES)]


def html_subscripts(label: str) -> str:
    """``θ_{t−1}`` and ``g_t`` as plotly's HTML subscripts: a legend or a hover label
    does not render TeX."""
    return re.sub(r"_\{([^}]*)\}|_(\w)", lambda m: f"<sub>{m[1] or m[2]}</sub>", label)


def legend_below(fig: Any, gap_px: float = LEGEND_GAP_PX, *, solo: bool = True) -> None:
    """The legend in rows under the plot, never over it, clear of the x axis's ticks
    and title; with ``solo`` a click on an entry shows that optimizer alone (a second
    click brings the others back), else it hides that entry only (a map's legend of
    categories). Call it once the figure's height and margins are set: Plotly places
    a legend in fractions of the plot's height."""
    layout = fig.layout
    margin = layout.margin
    plot_height = (layout.height or 450) - (margin.t or 0) - (margin.b or 0)
    fig.update_layout(
        legend=dict(
            orientation="h",
            x=0,
            xanchor="left",
            y=-gap_px / max(plot_height, 100),
            yanchor="top",
            itemclick="toggleothers" if solo else "toggle",
            itemdoubleclick="toggle" if solo else "toggleothers",
        )
    )


def _label_chars(axis: Any) -> float:
    """The characters of ``axis``'s widest tick label, estimated from its settings."""
    if axis.ticktext:
        return max(len(re.sub(r"<[^>]+>", "", str(t))) for t in axis.ticktext)
    if axis.tickformat and axis.tickformat.endswith("%"):
        return 4  # "100%"
    if axis.type == "log":
        return 5  # "1e−12", or 10 with a superscript exponent
    if axis.type == "category" or axis.range is None:
        return DEFAULT_LABEL_CHARS
    low, high = sorted(float(v) for v in axis.range)
    span = high - low
    if not np.isfinite(span) or span <= 0:
        return DEFAULT_LABEL_CHARS
    # Plotly's ticks are 1, 2 or 5 times a power of ten; at the finest it uses
    # here that is about a tenth of the span.
    step = 10 ** np.floor(np.log10(span / 10))
    decimals = max(0, -int(np.floor(np.log10(step))))
    widest = max(abs(low), abs(high))
    if widest >= 1e4 or axis.exponentformat == "e":
        return 6  # Plotly writes 20000 as "20k" (or "2e+4")
    return len(f"{widest:.{decimals}f}") + (1 if low < 0 else 0)


def _axes(layout: Any, letter: str) -> list[tuple[str, Any]]:
    names = [k for k in layout.to_plotly_json() if re.fullmatch(f"{letter}axis\\d*", k)]
    return [(n, layout[n]) for n in sorted(names)]


def _on_edge(axis: Any, layout: Any, other: str) -> bool:
    """Whether ``axis`` is a visible one on the plot's outer edge (left or bottom)."""
    if axis.visible is False or axis.showticklabels is False or axis.overlaying:
        return False
    anchor = axis.anchor if axis.anchor not in (None, "free") else other
    partner = layout[anchor.replace("x", "xaxis").replace("y", "yaxis")]
    return partner.domain is None or float(partner.domain[0]) <= 0.01


def _clear_modebar(fig: Any) -> None:
    """Moves the plot down until every title in the top margin (a subplot title over
    the top row) sits under plotly.js's modebar, and makes the chart taller by as
    much, so the panels keep their size. The modebar spans the chart's top right
    and a centred title runs under its icons once the title is wider than about
    half the plot (a long panel title at presenter view's 18 px on a projector)."""
    layout = fig.layout
    top = 0.0
    for note in layout.annotations:
        if note.yref != "paper" or note.y is None or note.y < 1 or note.yanchor != "bottom":
            continue  # not in the top margin
        size = note.font.size or layout.font.size or ANNOTATION_FONT
        lines = 1 + str(note.text or "").count("<br>")
        top = max(top, lines * LINE_EM * size + (note.yshift or 0))
    if not top:
        return
    old_t = layout.margin.t if layout.margin.t is not None else PLOTLY_TOP_MARGIN
    need_t = math.ceil(MODEBAR_PX + top)
    if need_t <= old_t:
        return
    fig.update_layout(margin=dict(t=need_t))
    if layout.height is not None:
        fig.update_layout(height=layout.height + need_t - old_t)


def reserve_margins(fig: Any) -> Any:
    """Sets ``fig``'s left and bottom margins to hold its axes' tick labels and
    titles, and returns it. plotly.js would find the same room with ``automargin``,
    but by drawing the chart, measuring and drawing it again (twice or more per
    chart, seconds on a page of charts, the slowest part of a first visit);
    reserved here it draws once. ``automargin`` stays on: a label wider than the
    estimate still gets room, at the cost of that redraw. A legend under the plot
    keeps its distance below the plot in pixels. A title over the top row sits
    under the modebar."""
    _clear_modebar(fig)
    layout = fig.layout
    margin = layout.margin
    old_b = margin.b or 0
    base = layout.font.size
    need_l = need_b = 0.0
    for _, axis in _axes(layout, "y"):
        if axis.side == "right" or not _on_edge(axis, layout, "x"):
            continue
        tick = axis.tickfont.size or base or THEME_TICK_FONT
        width = THEME_PAD + _label_chars(axis) * CHAR_EM * tick
        if axis.title.text:
            title = axis.title.font.size or base or THEME_TITLE_FONT
            width += THEME_STANDOFF["y"] + title
        need_l = max(need_l, width)
    for _, axis in _axes(layout, "x"):
        if axis.side == "top" or not _on_edge(axis, layout, "y"):
            continue
        tick = axis.tickfont.size or base or THEME_TICK_FONT
        rows = 1.0
        if axis.tickangle:
            slant = abs(np.sin(np.radians(float(axis.tickangle))))
            rows = max(1.0, _label_chars(axis) * CHAR_EM * slant + 0.5)
        height = THEME_PAD + rows * LINE_EM * tick
        if axis.title.text:
            title = axis.title.font.size or base or THEME_TITLE_FONT
            height += THEME_STANDOFF["x"] + title
        need_b = max(need_b, height)
    if need_l <= (margin.l or 0) and need_b <= old_b:
        return fig
    new_b = max(old_b, round(need_b))
    if new_b != old_b:
        # Plotly places what sits under the plot (a legend, the replay's buttons
        # and slider) in fractions of the plot's height, which shrinks: each keeps
        # its distance below the plot in pixels.
        height, top = layout.height or 450, margin.t or 0
        scale = (height - top - old_b) / max(height - top - new_b, 100)
        for item in (layout.legend, *layout.updatemenus, *layout.sliders):
            if item.y is not None and item.y < 0:
                item.y *= scale
    fig.update_layout(margin=dict(l=max(margin.l or 0, round(need_l)), b=new_b))
    return fig


def presenter_style(fig: Any) -> Any:
    """Restyles ``fig`` in place for a projector and returns it: every font (ticks,
    axis and legend titles, legends, hover labels, buttons, sliders, colour bars) at
    least `PRESENTER_FONT` px, the chart `PRESENTER_SCALE` times taller, and
    whatever sits under the plot (legend, replay controls) moved down to match."""
    size = PRESENTER_FONT
    font = dict(size=size)
    layout = fig.layout
    fig.update_layout(
        font=font,
        legend=dict(font=font),
        hoverlabel=dict(font=font),
        height=round((layout.height or 450) * PRESENTER_SCALE),
    )
    if layout.title.text:
        fig.update_layout(title=dict(font=dict(size=size + 4)))
    fig.update_xaxes(tickfont=font, title_font=font)
    fig.update_yaxes(tickfont=font, title_font=font)
    fig.update_scenes(
        xaxis=dict(tickfont=font, title_font=font),
        yaxis=dict(tickfont=font, title_font=font),
        zaxis=dict(tickfont=font, title_font=font),
    )
    for trace in fig.data:
        if "colorbar" in trace:
            trace.colorbar.tickfont.size = size
            trace.colorbar.title.font.size = size
    for menu in layout.updatemenus:
        menu.font.size = size
        if menu.y is not None and menu.y < 0:
            menu.y *= PRESENTER_SCALE
    for slider in layout.sliders:
        slider.font.size = size
        slider.currentvalue.font.size = size
        if slider.y is not None and slider.y < 0:
            slider.y *= PRESENTER_SCALE
    for note in layout.annotations:
        note.font.size = max(note.font.size or 0, size)
    if layout.legend.y is not None and layout.legend.y < 0:
        fig.update_layout(legend=dict(y=layout.legend.y * PRESENTER_SCALE))
    if layout.margin.b:
        fig.update_layout(margin=dict(b=round(layout.margin.b * PRESENTER_SCALE)))
    return fig


def chart_config(name: str) -> dict:
    """Plotly's modebar for a chart: no logo; its camera button saves a PNG at twice
    the size as ``optlab-<name>.png``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "chart"
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "scale": 2, "filename": f"optlab-{safe}"},
    }


def thin(n: int, max_points: int = MAX_PATH_POINTS) -> np.ndarray:
    """Indices of at most ``max_points`` of ``n`` points, ends included."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def translucent(hex_colour: str, alpha: float) -> str:
    """``"#RRGGBB"`` as a CSS ``rgba(...)`` of opacity ``alpha`` (a band's fill)."""
    r, g, b = (int(hex_colour[k : k + 2], 16) for k in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha:g})"


def typed_array(values: np.ndarray) -> dict[str, str]:
    """``values`` as plotly.js's typed-array spec (``{"dtype", "bdata"}``: base64 of
    the little-endian bytes), which plotly.py passes through without copying or
    checking each element. Animation frames carry hundreds of arrays; building
    them as numpy arrays costs plotly.py about half a millisecond each."""
    arr = np.ascontiguousarray(values)
    if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8:  # plotly.js has no 64-bit ints
        fits = arr.size == 0 or (arr.min() >= -(2**31) and arr.max() < 2**31)
        arr = arr.astype(np.int32 if fits else np.float64)
    little = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    return {"dtype": little.dtype.str[1:], "bdata": base64.b64encode(little.tobytes()).decode()}


def decades(values: Iterable[float | None]) -> float:
    """How many decades the positive, finite values span (0 for none)."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    arr = arr[np.isfinite(arr) & (arr > 0)]
    return float(np.log10(arr.max() / arr.min())) if arr.size else 0.0


def decade_dtick(span: float) -> int:
    """A log axis's tick step in whole decades: at most `MAX_LOG_TICKS` labels over
    ``span`` decades (Plotly's own puts "2, 5" between decades, which read as whole
    numbers next to powers of ten, and crowds long ranges)."""
    return max(1, int(np.ceil(span / MAX_LOG_TICKS)))


@dataclass(frozen=True)
class CurveView:
    """The y range a chart of several curves shows, and where each curve leaves it.

    Attributes:
        low: The range's bottom (a positive value on a log axis).
        high: Its top.
        log: Whether the axis is logarithmic.
        exits: Per curve, the index of its first value above ``high`` (or below
            ``low`` on a linear axis; or not finite), None when it stays inside.
    """

    low: float
    high: float
    log: bool
    exits: tuple[int | None, ...]

    @property
    def axis_range(self) -> list[float]:
        """The range as Plotly's axis takes it (decades on a log axis)."""
        if self.log:
            return [float(np.log10(self.low)), float(np.log10(self.high))]
        return [self.low, self.high]


def curve_view(curves: Sequence[np.ndarray], reference: Sequence[bool], *, log: bool) -> CurveView:
    """A y range that the ``reference`` curves fill (the ones that did not diverge),
    with headroom, so one diverged value (2x10^10) cannot flatten every other curve.

    A curve that leaves the range is cut where it leaves; the chart marks that
    point. Without any reference curve, the range is fitted to every curve's
    first value (where all runs start).

    Args:
        curves: The y values of each curve.
        reference: Per curve, whether it sets the range.
        log: A log axis: only positive values count, and the headroom is a decade.
    """
    arrays = [np.asarray(c, dtype=np.float64) for c in curves]
    ref = [a for a, r in zip(arrays, reference, strict=True) if r]
    if not any(a.size for a in ref):
        ref = [a[:1] for a in arrays]
    values = np.concatenate(ref) if ref else np.ones(1)
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    if values.size == 0:
        values = np.ones(1)
    lo, hi = float(values.min()), float(values.max())
    if log:
        low, high = lo / 10**LOG_HEADROOM, hi * 10**LOG_HEADROOM
    else:
        pad = LINEAR_HEADROOM * (hi - lo) or LINEAR_HEADROOM * max(abs(hi), 1.0)
        low, high = lo - pad, hi + pad
    exits = []
    for a in arrays:
        # On a log axis only the top is an edge: a value that goes below the
        # bottom has converged further than the chart shows, not diverged.
        outside = ~np.isfinite(a) | (a > high) | ((a <= 0) if log else (a < low))
        hits = np.flatnonzero(outside)
        exits.append(int(hits[0]) if hits.size else None)
    return CurveView(low, high, log, tuple(exits))
