"""Axis ranges that a diverging curve cannot flatten, and where it left them.

A loss that blows up to 2×10¹⁰ before it turns non-finite would stretch a
linear axis until every other optimizer's curve is a flat line at the bottom;
on a log axis it still takes most of the height. So a panel's range is set
by the optimizers that did not diverge, from their values within a cap (a
multiple of where the curves started), and each time any curve climbs above
that range the chart marks where it left and how high it went
(`excursions`), instead of hiding or squashing anything. Plotly has no such
"clip and mark" mode (its autorange takes every point), hence this.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: A training loss over this many times the first step's is off the loss chart
#: (cross-entropy starts near ln 10 ≈ 2.3, so the cap is about 4.6: a run that
#: learns stays under it, one that blows up passes it within a few steps).
LOSS_CAP_FACTOR = 2.0
#: A gradient norm over this many times the first step's is off its (log) chart.
NORM_CAP_FACTOR = 1e4
#: Room left above the highest value on the chart, as a share of the range:
#: the out-of-range markers sit in it.
HEADROOM = 0.16


@dataclass(frozen=True)
class Clip:
    """A panel's y range when some values are off it.

    Attributes:
        low: The range's bottom (data units; log10 of them on a log axis).
        high: Its top, in the same units.
        marker_y: Where out-of-range markers sit (data units).
        cap: Values above this are off the chart (data units): the highest value
            the range was made to hold.
    """

    low: float
    high: float
    marker_y: float
    cap: float


@dataclass(frozen=True)
class Excursion:
    """One stretch of a curve above the cap.

    Attributes:
        left_at: The first step above the cap (where the curve left the chart).
        peak: The highest value while above it.
        peak_at: The step of that value.
        back_at: The first step back under the cap, None if it never came back.
    """

    left_at: int
    peak: float
    peak_at: int
    back_at: int | None


def _finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def first_value(curves: Sequence[Sequence[float | None]]) -> float | None:
    """The largest first finite value among ``curves`` (their common start, for a
    comparison whose models all start from the same weights); None if none has one."""
    firsts = [f[0] for f in (_finite(c) for c in curves) if f]
    return max(firsts) if firsts else None


def clip_range(
    curves: Sequence[Sequence[float | None]],
    cap: float,
    log: bool = False,
    basis: Sequence[Sequence[float | None]] | None = None,
) -> Clip | None:
    """The y range of ``curves`` that leaves out what would flatten the rest.

    Args:
        curves: Every value a panel draws, one sequence per trace.
        cap: No value above it sets the range.
        log: Whether the axis is logarithmic (values <= 0 are not drawn there).
        basis: The curves that set the range (those of the optimizers that did
            not diverge); None: all of ``curves``.

    Returns:
        None when every value fits the range the basis sets (the chart's own
        autorange then shows everything); else that range, with `HEADROOM`
        above for the markers of the values off it.
    """

    def usable(values: Sequence[float | None]) -> list[float]:
        return [v for v in _finite(values) if not log or v > 0]

    inside = [v for c in (curves if basis is None else basis) for v in usable(c) if v <= cap]
    if not inside:  # nothing to go by: show up to the cap
        inside = [cap]
    limit = max(inside)
    if not any(v > limit for c in curves for v in usable(c)):
        return None
    scale = math.log10 if log else float
    low, high = scale(min(inside)), scale(limit)
    span = high - low or (1.0 if log else max(abs(high), 1.0))
    bottom = low - 0.05 * span
    if not log and min(inside) >= 0:
        bottom = max(bottom, 0.0)
    top = high + HEADROOM * span / (1 - HEADROOM)
    marker = high + 0.5 * (top - high)
    return Clip(bottom, top, 10**marker if log else marker, limit)


def excursions(steps: Sequence[int], values: Sequence[float | None], cap: float) -> list[Excursion]:
    """Each stretch of ``values`` above ``cap`` (non-finite values are left out:
    a curve ends there, which the chart marks as a divergence)."""
    found: list[Excursion] = []
    start = peak = peak_at = None
    for step, value in zip(steps, values, strict=True):
        if value is None or not math.isfinite(value):
            continue
        if value > cap:
            if start is None:
                start, peak, peak_at = step, value, step
            elif value > peak:
                peak, peak_at = value, step
        elif start is not None:
            found.append(Excursion(start, peak, peak_at, step))
            start = None
    if start is not None:
        found.append(Excursion(start, peak, peak_at, None))
    return found
