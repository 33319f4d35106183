"""What every chart shares: the optimizers' colours, the modebar, thinning, log ticks.

The figure builders of each product (`optlab.surface.plots`,
`optlab.sweep.plots`, `optlab.train.plots`) take these from here, so an
optimizer has the same colour in every chart of every page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

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
#: Most tick labels on a log axis; more overlap at the charts' height.
MAX_LOG_TICKS = 8


def color(i: int) -> str:
    """The colour of optimizer ``i`` in every chart."""
    return COLORS[i % len(COLORS)]


def dash(i: int) -> str:
    """The dash pattern of optimizer ``i``'s lines in every chart."""
    return DASHES[i % len(DASHES)]


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
