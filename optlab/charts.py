"""What every chart shares: the optimizers' colours, the modebar, thinning, log ticks.

The figure builders of each product (`optlab.surface.plots`,
`optlab.sweep.plots`, `optlab.train.plots`) take these from here, so an
optimizer has the same colour in every chart of every page.
"""

from __future__ import annotations

import base64
import functools
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


#: A figure as the plain dict plotly.js draws: ``{"data": [trace, ...], "layout": {...}}``,
#: every nested property a dict (what ``go.Figure.to_dict()`` returns).
Spec = dict[str, Any]


def figure_spec(fig: Any) -> Spec:
    """A ``go.Figure`` as a `Spec`: a copy, which styling leaves the figure untouched by."""
    return fig.to_dict()


def spec_bytes(node: Any) -> int:
    """About the bytes a `Spec` holds: its strings' characters (an array's base64
    among them), an array's bytes, and 8 for any other value or container."""
    if isinstance(node, str):
        return len(node)
    if isinstance(node, dict):
        return 8 + sum(len(k) + spec_bytes(v) for k, v in node.items())
    if isinstance(node, list | tuple):
        return 8 + sum(spec_bytes(v) for v in node)
    if isinstance(node, np.ndarray):
        return node.nbytes
    return 8


def drawn(spec: Spec) -> Any:
    """``spec``, a builder's layout, as a ``go.Figure`` not validated (`figure`).

    The tests check every builder's figure against its validated build; Plotly's
    validation of a contour's arrays costs more than building the whole figure.
    What is added to the figure later is validated as usual. Once styled, a figure
    goes to ``st.plotly_chart`` as its spec (`optlab.ui.view.StyledFigure`), not
    through here again."""
    import plotly.graph_objects as go

    return go.Figure(spec, _validate=False)


#: Set by the tests (tests/conftest.py): every `figure` is built validated too, and
#: must encode to the same JSON (`checked`).
CHECK_FIGURES = False


def figure(data: Sequence[Any], layout: dict[str, Any]) -> Any:
    """A ``go.Figure`` of ``data`` (traces, as dicts or trace objects) and ``layout``,
    not validated.

    The builders of the pages' charts lay out their figures as plain dicts and build
    them here: each ``update_layout``, ``update_xaxes`` or ``add_trace`` of Plotly's
    object model validates and copies again, which cost the playground's three charts
    about 60 ms of Python per rerun. Built validated once, they cost 11 ms, and 3.5 ms
    not validated (``python -m bench.figures``); the pages build them on every rerun,
    in the interpreter every session of a server shares. Plotly's validation only
    checks and normalises what the builders lay out, so the tests build every figure
    both ways and compare what ``st.plotly_chart`` sends (`CHECK_FIGURES`): a builder
    laying out anything validation would refuse or change fails them. A named
    colorscale is one: validation spells it out, so the builders give it spelled
    out (`colorscale`)."""
    data = list(data)
    if CHECK_FIGURES:
        checked(data, layout)
    return drawn({"data": data, "layout": layout})


def checked(data: Sequence[Any], layout: dict[str, Any]) -> None:
    """Raises AssertionError unless ``data`` and ``layout`` encode to the same JSON
    built validated as not (what `figure` builds)."""
    import copy
    import json

    import plotly.graph_objects as go
    import plotly.io as pio

    def sent(validate: bool) -> Any:
        traces, props = copy.deepcopy(list(data)), copy.deepcopy(layout)
        fig = go.Figure(data=traces, layout=props, _validate=validate)
        return json.loads(pio.to_json(fig, validate=False))

    loose, strict = sent(False), sent(True)
    if loose != strict:
        where = _first_difference(loose, strict)
        raise AssertionError(f"a figure differs from its validated build: {where}")


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    """Where two JSON values first differ, as a path with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}/{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return f"{path or '/'}: {str(a)[:80]} != {str(b)[:80]}"


@functools.cache
def colorscale(name: str) -> tuple[tuple[float, str], ...]:
    """Plotly's named colorscale ``name`` (``"Viridis"``, ``"Greys_r"``) spelled out as
    (position, colour) pairs, as validation spells it (plotly.js knows no ``_r``)."""
    import plotly.colors

    return tuple((float(at), str(c)) for at, c in plotly.colors.get_colorscale(name))


def _sub(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """``parent[key]``, a dict, made when missing (a property set on it sets it); a
    title given as its text alone becomes ``{"text": ...}``."""
    child = parent.get(key)
    if isinstance(child, str):
        child = parent[key] = {"text": child}
    elif child is None:
        child = parent[key] = {}
    return child


def _size(props: dict[str, Any] | None) -> float | None:
    return ((props or {}).get("font") or {}).get("size")


def legend_spec(
    layout: dict[str, Any], gap_px: float = LEGEND_GAP_PX, *, solo: bool = True
) -> dict[str, Any]:
    """The legend of a chart laid out as ``layout`` (a dict), in rows under the plot,
    never over it, clear of the x axis's ticks and title; with ``solo`` a click on an
    entry shows that optimizer alone (a second click brings the others back), else it
    hides that entry only (a map's legend of categories). Plotly places a legend in
    fractions of the plot's height: give it the layout's final height and margins."""
    margin = layout.get("margin") or {}
    plot_height = (layout.get("height") or 450) - (margin.get("t") or 0) - (margin.get("b") or 0)
    return dict(
        orientation="h",
        x=0,
        xanchor="left",
        y=-gap_px / max(plot_height, 100),
        yanchor="top",
        itemclick="toggleothers" if solo else "toggle",
        itemdoubleclick="toggle" if solo else "toggleothers",
    )


def legend_below(fig: Any, gap_px: float = LEGEND_GAP_PX, *, solo: bool = True) -> None:
    """`legend_spec` set on a ``go.Figure``: call it once the figure's height and
    margins are set."""
    fig.update_layout(legend=legend_spec(fig.layout.to_plotly_json(), gap_px, solo=solo))


def _label_chars(axis: dict[str, Any]) -> float:
    """The characters of ``axis``'s widest tick label, estimated from its settings."""
    if axis.get("ticktext") is not None and len(axis["ticktext"]):
        return max(len(re.sub(r"<[^>]+>", "", str(t))) for t in axis["ticktext"])
    if str(axis.get("tickformat") or "").endswith("%"):
        return 4  # "100%"
    if axis.get("type") == "log":
        return 5  # "1e−12", or 10 with a superscript exponent
    if axis.get("type") == "category" or axis.get("range") is None:
        return DEFAULT_LABEL_CHARS
    low, high = sorted(float(v) for v in axis["range"])
    span = high - low
    if not np.isfinite(span) or span <= 0:
        return DEFAULT_LABEL_CHARS
    # Plotly's ticks are 1, 2 or 5 times a power of ten; at the finest it uses
    # here that is about a tenth of the span.
    step = 10 ** np.floor(np.log10(span / 10))
    decimals = max(0, -int(np.floor(np.log10(step))))
    widest = max(abs(low), abs(high))
    if widest >= 1e4 or axis.get("exponentformat") == "e":
        return 6  # Plotly writes 20000 as "20k" (or "2e+4")
    return len(f"{widest:.{decimals}f}") + (1 if low < 0 else 0)


def _named(layout: dict[str, Any], prefix: str) -> list[str]:
    """The layout's own axes (or scenes) of ``prefix`` ("xaxis", "scene"): ``xaxis``,
    ``xaxis2``, ... as far as the layout sets them."""
    return sorted(k for k in layout if re.fullmatch(f"{prefix}\\d*", k))


def _on_edge(axis: dict[str, Any], layout: dict[str, Any], other: str) -> bool:
    """Whether ``axis`` is a visible one on the plot's outer edge (left or bottom)."""
    if axis.get("visible") is False or axis.get("showticklabels") is False:
        return False
    if axis.get("overlaying"):
        return False
    anchor = axis.get("anchor")
    anchor = other if anchor in (None, "free") else anchor
    partner = layout.get(anchor.replace("x", "xaxis").replace("y", "yaxis")) or {}
    domain = partner.get("domain")
    return domain is None or float(domain[0]) <= 0.01


def _clear_modebar(layout: dict[str, Any]) -> None:
    """Moves the plot down until every title in the top margin (a subplot title over
    the top row) sits under plotly.js's modebar, and makes the chart taller by as
    much, so the panels keep their size. The modebar spans the chart's top right
    and a centred title runs under its icons once the title is wider than about
    half the plot (a long panel title at presenter view's 18 px on a projector)."""
    top = 0.0
    for note in layout.get("annotations") or ():
        y = note.get("y")
        if note.get("yref") != "paper" or y is None or y < 1 or note.get("yanchor") != "bottom":
            continue  # not in the top margin
        size = _size(note) or _size(layout) or ANNOTATION_FONT
        lines = 1 + str(note.get("text") or "").count("<br>")
        top = max(top, lines * LINE_EM * size + (note.get("yshift") or 0))
    if not top:
        return
    margin = _sub(layout, "margin")
    old_t = margin["t"] if margin.get("t") is not None else PLOTLY_TOP_MARGIN
    need_t = math.ceil(MODEBAR_PX + top)
    if need_t <= old_t:
        return
    margin["t"] = need_t
    if layout.get("height") is not None:
        layout["height"] += need_t - old_t


def reserve_margins(spec: Spec) -> Spec:
    """Sets the figure ``spec``'s left and bottom margins to hold its axes' tick labels
    and titles, in place, and returns it. plotly.js would find the same room with
    ``automargin``, but by drawing the chart, measuring and drawing it again (twice
    or more per chart, seconds on a page of charts, the slowest part of a first
    visit); reserved here it draws once. ``automargin`` stays on: a label wider than
    the estimate still gets room, at the cost of that redraw. A legend under the
    plot keeps its distance below the plot in pixels. A title over the top row sits
    under the modebar."""
    layout = _sub(spec, "layout")
    _clear_modebar(layout)
    margin = _sub(layout, "margin")
    old_b = margin.get("b") or 0
    base = _size(layout)
    need_l = need_b = 0.0
    # A default axis has no label settings to reserve room for.
    for axis in (layout[k] for k in _named(layout, "yaxis")):
        if axis.get("side") == "right" or not _on_edge(axis, layout, "x"):
            continue
        tick = (axis.get("tickfont") or {}).get("size") or base or THEME_TICK_FONT
        width = THEME_PAD + _label_chars(axis) * CHAR_EM * tick
        title = axis.get("title") or {}
        if title.get("text"):
            width += THEME_STANDOFF["y"] + (_size(title) or base or THEME_TITLE_FONT)
        need_l = max(need_l, width)
    for axis in (layout[k] for k in _named(layout, "xaxis")):
        if axis.get("side") == "top" or not _on_edge(axis, layout, "y"):
            continue
        tick = (axis.get("tickfont") or {}).get("size") or base or THEME_TICK_FONT
        rows = 1.0
        if axis.get("tickangle"):
            slant = abs(np.sin(np.radians(float(axis["tickangle"]))))
            rows = max(1.0, _label_chars(axis) * CHAR_EM * slant + 0.5)
        height = THEME_PAD + rows * LINE_EM * tick
        title = axis.get("title") or {}
        if title.get("text"):
            height += THEME_STANDOFF["x"] + (_size(title) or base or THEME_TITLE_FONT)
        need_b = max(need_b, height)
    if need_l <= (margin.get("l") or 0) and need_b <= old_b:
        return spec
    new_b = max(old_b, round(need_b))
    if new_b != old_b:
        # Plotly places what sits under the plot (a legend, the replay's buttons
        # and slider) in fractions of the plot's height, which shrinks: each keeps
        # its distance below the plot in pixels.
        height, top = layout.get("height") or 450, margin.get("t") or 0
        scale = (height - top - old_b) / max(height - top - new_b, 100)
        menus, sliders = layout.get("updatemenus") or (), layout.get("sliders") or ()
        for item in (layout.get("legend"), *menus, *sliders):
            if item and item.get("y") is not None and item["y"] < 0:
                item["y"] *= scale
    margin["l"] = max(margin.get("l") or 0, round(need_l))
    margin["b"] = new_b
    return spec


@functools.cache
def _colorbar_types() -> frozenset[str]:
    """The trace types that have a colour bar of their own (contour, heatmap, ...)."""
    import plotly.graph_objects as go
    from plotly.basedatatypes import BaseTraceType

    classes = (getattr(go, name) for name in dir(go))
    return frozenset(
        cls._path_str
        for cls in classes
        if isinstance(cls, type)
        and issubclass(cls, BaseTraceType)
        and "colorbar" in getattr(cls, "_valid_props", ())
    )


def presenter_style(spec: Spec) -> Spec:
    """Restyles the figure ``spec`` in place for a projector and returns it: every font
    (ticks, axis and legend titles, legends, hover labels, buttons, sliders, colour
    bars) at least `PRESENTER_FONT` px, the chart `PRESENTER_SCALE` times taller, and
    whatever sits under the plot (legend, replay controls) moved down to match."""
    size = PRESENTER_FONT
    layout = _sub(spec, "layout")
    for props in (layout, _sub(layout, "legend"), _sub(layout, "hoverlabel")):
        _sub(props, "font")["size"] = size
    layout["height"] = round((layout.get("height") or 450) * PRESENTER_SCALE)
    if layout.get("title") and _sub(layout, "title").get("text"):
        _sub(_sub(layout, "title"), "font")["size"] = size + 4

    def big(axis: dict[str, Any]) -> None:
        _sub(axis, "tickfont")["size"] = size
        _sub(_sub(axis, "title"), "font")["size"] = size

    # As Plotly's update_xaxes and update_scenes: the first always, set or not.
    for prefix in ("xaxis", "yaxis"):
        for name in {prefix, *_named(layout, prefix)}:
            big(_sub(layout, name))
    for name in {"scene", *_named(layout, "scene")}:
        for letter in "xyz":
            big(_sub(_sub(layout, name), f"{letter}axis"))
    colorbars = _colorbar_types()
    for trace in spec.get("data") or ():
        if trace.get("type", "scatter") in colorbars:
            bar = _sub(trace, "colorbar")
            _sub(bar, "tickfont")["size"] = size
            _sub(_sub(bar, "title"), "font")["size"] = size
    sliders = layout.get("sliders") or ()
    for slider in sliders:
        _sub(_sub(slider, "currentvalue"), "font")["size"] = size
    for item in (*(layout.get("updatemenus") or ()), *sliders):
        _sub(item, "font")["size"] = size
        if item.get("y") is not None and item["y"] < 0:
            item["y"] *= PRESENTER_SCALE
    for note in layout.get("annotations") or ():
        font = _sub(note, "font")
        font["size"] = max(font.get("size") or 0, size)
    legend = layout["legend"]
    if legend.get("y") is not None and legend["y"] < 0:
        legend["y"] *= PRESENTER_SCALE
    margin = layout.get("margin") or {}
    if margin.get("b"):
        margin["b"] = round(margin["b"] * PRESENTER_SCALE)
    return spec


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
