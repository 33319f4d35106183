"""Finding every local minimum of a 2-D function inside its bounds, numerically.

The registry's catalogue of minima (`optlab.surface.minima_table`, written by
``python -m optlab.surface.catalog``) and the estimated minima of a typed formula
both come from `find_minima`:

1. **Starts**: the centres of an ``n x n`` grid of cells over the bounds.
2. **Descent** (`descend`), in float64, every start at once: a modified Newton step
   ``d = -Q |Λ|⁻¹ Qᵀ g`` (the Hessian's eigenvalues replaced by their absolute values,
   floored), so every step goes downhill and the method is pushed away from saddles and
   maxima instead of being drawn to them; steps are capped at `MAX_STEP` of the bounds'
   diagonal and shortened by backtracking until f decreases enough (Armijo's rule). Near a
   minimum with a positive-definite Hessian this is the plain Newton step, so the last
   iterations converge quadratically; a few undamped Newton steps (`polish`) then take each
   end to the stationary point to double precision.
3. **Classification**: an end is a minimum when its gradient vanishes, at most
   `GRAD_RTOL` times the function's typical slope (the median gradient norm over the
   starts), and its Hessian is positive definite. With ``kinks=True`` (typed formulas,
   which may use ``abs``, ``min``, ``max`` or a cone like ``hypot(x, y)``) an end where the
   descent stalled without a usable gradient also counts when f is strictly higher on a
   ring of `RING` points around it (`ring_minimum`).
4. **De-duplication**: ends closer than `MERGE` of the diagonal are one minimum; ends
   outside the (closed) bounds are dropped.

Hand-written because no library at hand does this: scipy's optimisers polish one start at
a time on the CPU in Python, and a basin-hopping or grid search returns only the lowest
minimum, not every one; here every start advances in one batched torch evaluation of the
surface's own function, the same function that is drawn and optimised.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Fn = Callable[[Tensor], Tensor]
Bounds = tuple[tuple[float, float], tuple[float, float]]

#: Longest descent step, as a share of the bounds' diagonal.
MAX_STEP = 0.25
#: Step lengths tried by the line search: 1, 1/2, ..., 2^-(LINE_STEPS-1) of the step
#: (down to ~1e-19 of it: a cone's tip is approached to rounding level).
LINE_STEPS = 60
#: Step lengths tried at once by the line search.
LINE_BATCH = 8
#: Armijo's sufficient-decrease constant.
ARMIJO = 1e-4
#: Relative floor of the Hessian's eigenvalues in the modified Newton step.
EIGEN_FLOOR = 1e-8
#: Undamped Newton steps that finish each end.
POLISH_STEPS = 4
#: A stationary point's gradient norm is at most this times the typical slope.
GRAD_RTOL = 1e-10
#: Newton steps `settle` takes at most, and its stationarity tolerance (times the slope).
SETTLE_STEPS = 40
SETTLE_RTOL = 1e-8
#: Significant digits `tidy` tries, shortest first.
TIDY_DIGITS = (12, 13, 14, 15)
#: Minima within this of ``max(1, |f*|)`` of the lowest are all global (ties).
GLOBAL_RTOL = 1e-9
ESTIMATE_GLOBAL_RTOL = 1e-6
#: A smooth minimum's Hessian has its eigenvalues within this ratio of each other.
CURVATURE_RTOL = 1e-6
#: Two ends closer than this share of the diagonal are the same minimum.
MERGE = 1e-6
#: Points on the ring around a kink candidate, and its radii (shares of the diagonal).
RING = 16
RING_RADII = (1e-6, 1e-3)
#: Descents from the outer ring end this near a kink candidate (share of the diagonal).
RETURN = 1e-5


@dataclass(frozen=True)
class Search:
    """How hard `find_minima` looks.

    Attributes:
        starts: Starts per side of the grid.
        iterations: Descent iterations at most (a start stops once it stops moving).
        still_rel, still_abs: A step shorter than ``still_rel * |x| + still_abs * diagonal``
            ends a start's descent.
        kinks: Also accept non-smooth minima (`ring_minimum`): a typed formula may use
            ``abs``, ``min``, ``max`` or a cone like ``hypot(x, y)``.
    """

    starts: int
    iterations: int
    still_rel: float
    still_abs: float
    kinks: bool


#: The registry's catalogue: a fine grid, every descent to rounding level (Ackley's
#: minimum is a cone's tip rounded off within 1e-15 of it, reached only down there).
CATALOGUE = Search(starts=64, iterations=200, still_rel=1e-15, still_abs=1e-20, kinks=False)
#: A typed formula's estimate, fast enough for an interactive page (`bench/minima.py`);
#: smooth minima are still polished to double precision by Newton's method.
ESTIMATE = Search(starts=16, iterations=60, still_rel=1e-12, still_abs=1e-7, kinks=True)


@dataclass(frozen=True)
class Found:
    """A local minimum found by the search.

    Attributes:
        x, y: Where it lies.
        value: f there, in float64.
        smooth: True when the gradient vanishes and the Hessian is positive definite;
            False for a kink accepted by `ring_minimum`.
    """

    x: float
    y: float
    value: float
    smooth: bool = True


def diagonal(bounds: Bounds) -> float:
    """The length of the bounds' diagonal: the search's unit of distance."""
    (x0, x1), (y0, y1) = bounds
    return math.hypot(x1 - x0, y1 - y0)


def grid_starts(bounds: Bounds, n: int) -> Tensor:
    """The centres of an ``n x n`` grid of cells over ``bounds``, shape ``(n*n, 2)``."""
    (x0, x1), (y0, y1) = bounds
    centres = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    gy, gx = torch.meshgrid(y0 + centres * (y1 - y0), x0 + centres * (x1 - x0), indexing="ij")
    return torch.stack([gx.ravel(), gy.ravel()], dim=-1)


def derivatives(fn: Fn, points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """f, its gradient ``(m, 2)`` and Hessian ``(m, 2, 2)`` at ``(m, 2)`` points, in float64.

    ``fn`` is vectorised point by point, so the gradient of the sum is each point's own
    gradient, and the gradient of its first (second) component is the Hessian's first
    (second) row.
    """
    leaf = points.detach().to(torch.float64).requires_grad_(True)
    with torch.enable_grad():
        f = fn(leaf)
        (g,) = torch.autograd.grad(f.sum(), leaf, create_graph=True)
        rows = []
        for i in range(2):
            if g.requires_grad:
                (row,) = torch.autograd.grad(
                    g[:, i].sum(), leaf, retain_graph=True, allow_unused=True
                )
            else:  # the gradient is constant: a linear function
                row = None
            rows.append(torch.zeros_like(leaf) if row is None else row)
    return f.detach(), g.detach(), torch.stack(rows, dim=-2).detach()


def _finite(*tensors: Tensor) -> Tensor:
    ok = torch.ones(len(tensors[0]), dtype=torch.bool)
    for t in tensors:
        finite = torch.isfinite(t)
        ok &= finite.flatten(1).all(1) if t.ndim > 1 else finite
    return ok


def _modified_newton(g: Tensor, h: Tensor, reach: float) -> Tensor:
    """A descent direction at every point, no longer than about ``reach``.

    Along each eigenvector of the Hessian: the Newton step ``-c/λ`` where the curvature
    is positive, but with ``λ`` floored so that no component exceeds ``reach`` (a flat
    or kinked function gets a gradient step); a full ``reach`` downhill where it is
    negative, so a start near a saddle or a maximum leaves it at once instead of doubling
    its distance each step.
    """
    lam, q = torch.linalg.eigh(h)
    c = (q.transpose(-1, -2) @ g.unsqueeze(-1)).squeeze(-1)
    floor = torch.maximum(EIGEN_FLOOR * lam.abs().amax(-1, keepdim=True), c.abs() / reach)
    newton = -c / torch.maximum(lam, floor).clamp_min(torch.finfo(torch.float64).tiny)
    away = -torch.sign(c) * reach
    s = torch.where(lam > 0, newton, away)
    return (q @ s.unsqueeze(-1)).squeeze(-1)


def _line_search(fn: Fn, x: Tensor, f: Tensor, g: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    """The longest step ``2^-k`` (k < `LINE_STEPS`) along ``d`` that satisfies Armijo's rule.

    Tried a few lengths at a time, each batch only for the points still without one
    (most take the full step). Returns ``(found, alpha)``.
    """
    alpha = torch.zeros(len(x), dtype=torch.float64)
    found = torch.zeros(len(x), dtype=torch.bool)
    slope = (g * d).sum(1)
    for first in range(0, LINE_STEPS, LINE_BATCH):
        rows = (~found).nonzero().squeeze(1)
        if len(rows) == 0:
            break
        last = min(first + LINE_BATCH, LINE_STEPS)
        shrink = 0.5 ** torch.arange(first, last, dtype=torch.float64)
        trial = x[rows, None] + shrink[None, :, None] * d[rows, None]
        with torch.no_grad():
            ft = fn(trial)
        good = torch.isfinite(ft) & (ft <= f[rows, None] + ARMIJO * shrink * slope[rows, None])
        hit = good.any(1)
        alpha[rows[hit]] = shrink[good.float().argmax(1)[hit]]
        found[rows[hit]] = True
    return found, alpha


def descend(fn: Fn, starts: Tensor, bounds: Bounds, search: Search = CATALOGUE) -> Tensor:
    """Modified Newton descent with a backtracking line search from every start.

    A start stops when its step no longer changes it, when no step length decreases f,
    when its derivatives stop being finite (it keeps its last point with finite ones), or
    when it leaves a box three times the bounds' size (a minimum out there is not one of
    this surface's). Returns the ends, ``(m, 2)``.
    """
    (x0, x1), (y0, y1) = bounds
    span = diagonal(bounds)
    lo = torch.tensor([x0 - (x1 - x0), y0 - (y1 - y0)], dtype=torch.float64)
    hi = torch.tensor([x1 + (x1 - x0), y1 + (y1 - y0)], dtype=torch.float64)
    points = starts.detach().to(torch.float64).clone()
    active = torch.ones(len(points), dtype=torch.bool)
    for _ in range(search.iterations):
        idx = active.nonzero().squeeze(1)
        if len(idx) == 0:
            break
        x = points[idx]
        f, g, h = derivatives(fn, x)
        ok = _finite(f, g, h)
        active[idx[~ok]] = False
        idx, x, f, g, h = idx[ok], x[ok], f[ok], g[ok], h[ok]
        d = _modified_newton(g, h, MAX_STEP * span)
        found, alpha = _line_search(fn, x, f, g, d)
        step = alpha.unsqueeze(1) * d
        new = x + step
        # A step at the coordinates' rounding level is jitter, not progress.
        still = search.still_rel * x.norm(dim=1) + search.still_abs * span
        moved = found & (step.norm(dim=1) > still)
        inside = ((new >= lo) & (new <= hi)).all(1)
        points[idx[moved]] = new[moved]
        active[idx[~moved | ~inside]] = False
    return points


def _newton_step(g: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """The undamped Newton step ``-H⁻¹ g``, and where it exists (finite, H invertible)."""
    step, info = torch.linalg.solve_ex(h, -g.unsqueeze(-1))
    step = step[..., 0]
    usable = _finite(g, h) & (info == 0) & _finite(step)
    return torch.where(usable[:, None], step, 0.0), usable


def polish(fn: Fn, points: Tensor, steps: int = POLISH_STEPS) -> Tensor:
    """Undamped Newton steps; each point keeps the iterate with the smallest gradient."""
    x = points.detach().to(torch.float64).clone()
    best = x.clone()
    best_norm = torch.full((len(x),), torch.inf, dtype=torch.float64)
    for i in range(steps + 1):
        _, g, h = derivatives(fn, x)
        norm = torch.where(_finite(g, h), g.norm(dim=1), torch.inf)
        better = norm < best_norm
        best[better], best_norm[better] = x[better], norm[better]
        if i < steps:
            x = x + _newton_step(g, h)[0]
    return best


def _shorter(values: list[float], span: float) -> list[list[tuple[float, int]]]:
    """Per value: ``(value, digits)`` options, itself first, then its shorter roundings."""
    out = []
    for v in values:
        options = [(v, len(repr(v)))]
        for digits in TIDY_DIGITS:
            r = float(f"{v:.{digits}g}")
            r = 0.0 if abs(r) <= 1e-15 * span else r
            options.append((r, len(repr(r))))
        out.append(options)
    return out


def tidy(fn: Fn, points: Tensor, span: float) -> Tensor:
    """Each point at the shortest decimals (12 to 15 significant digits) that are as stationary.

    Newton leaves rounding residue: Goldstein-Price's ``(1.799999999999998,
    0.19999999999999873)`` for ``(1.8, 0.2)``, Rastrigin's ``-1.6e-30`` for a 0. Each
    coordinate may be rounded (and set to 0 below 1e-15 of the diagonal); of the
    combinations whose gradient is no larger than the raw point's, the one written with
    the fewest characters replaces it. So a tidied point is at least as exact by the
    function's own measure; a generic point moved by 1e-13 would have a larger gradient
    and stays as it is.
    """
    raw = points.detach().to(torch.float64)
    if len(raw) == 0:
        return raw
    combos: list[list[tuple[float, float, int]]] = []
    for row in raw.tolist():
        xs, ys = _shorter(row, span)
        combos.append([(x, y, dx + dy) for x, dx in xs for y, dy in ys])
    flat = torch.tensor([[x, y] for row in combos for x, y, _ in row], dtype=torch.float64)
    _, g, _ = derivatives(fn, flat)
    norms = torch.where(_finite(g), g.norm(dim=1), torch.inf).reshape(len(raw), -1).tolist()
    out = []
    for row, norm in zip(combos, norms, strict=True):
        fits = [i for i in range(len(row)) if norm[i] <= norm[0]]  # the raw point fits
        best = min(fits, key=lambda i: (row[i][2], i))
        out.append(row[best][:2])
    return torch.tensor(out, dtype=torch.float64)


def slope_scale(fn: Fn, points: Tensor) -> float:
    """The function's typical slope: the median gradient norm over ``points``.

    It makes "the gradient vanishes" independent of the function's units: Goldstein-Price
    climbs to 10^6, the bowl to a few units. 0 for a constant function.
    """
    _, g, _ = derivatives(fn, points)
    norms = g.norm(dim=1)
    norms = norms[torch.isfinite(norms)]
    return float(norms.median()) if len(norms) else 0.0


def _distinct(points: Tensor, cell: float) -> Tensor:
    """One point per ``cell``-sized square that holds any (ends of one descent coincide)."""
    keys = torch.round(points / cell)
    finite = _finite(keys)
    _, first = torch.unique(keys[finite], dim=0, return_inverse=True)
    picked = torch.full((int(first.max()) + 1 if len(first) else 0,), -1, dtype=torch.long)
    picked[first] = torch.arange(len(first))
    return points[finite][picked]


def _circle() -> Tensor:
    """`RING` unit directions, those along the axes exactly (cos(pi/2) is not 0 in floats)."""
    angles = torch.arange(RING, dtype=torch.float64) * (2 * math.pi / RING)
    circle = torch.stack([angles.cos(), angles.sin()], dim=-1)
    return torch.where(circle.abs() < 1e-12, 0.0, circle)


def ring_minimum(fn: Fn, points: Tensor, bounds: Bounds, search: Search) -> Tensor:
    """Whether each point is an isolated minimum, judged from values, not derivatives.

    The test for a minimum where the derivatives do not help: a kink (``abs(x)``), a cone
    (``hypot(x, y)``, whose gradient is undefined at its tip) or a flat-bottomed Hessian
    (``x**4 + y**2``). Two conditions: f is strictly higher on rings of `RING` points at
    each `RING_RADII` radius, which a saddle or an inflection fails; and descents started
    on the outer ring all come back to the point (within `RETURN` of the diagonal), which
    a valley floor of equal values fails (``(x - 0.3*y)**2``: no ring of finitely many
    points lies along its line of minima, but the descents end on the line, apart).
    """
    circle = _circle()
    span = diagonal(bounds)
    with torch.no_grad():
        centre = fn(points)
        ok = torch.isfinite(centre)
        for radius in RING_RADII:
            ring = fn(points.unsqueeze(1) + radius * span * circle)
            ok &= (torch.isfinite(ring) & (ring > centre.unsqueeze(1))).all(1)
    idx = ok.nonzero().squeeze(1)
    if len(idx):
        starts = points[idx].unsqueeze(1) + RING_RADII[-1] * span * circle
        ends = descend(fn, starts.reshape(-1, 2), bounds, search).reshape(len(idx), RING, 2)
        away = (ends - points[idx].unsqueeze(1)).norm(dim=-1).amax(1)
        ok[idx] = away <= RETURN * span
    return ok


def classify(
    fn: Fn, points: Tensor, slope: float, bounds: Bounds, search: Search = CATALOGUE
) -> tuple[Tensor, Tensor]:
    """Which points are minima: ``(smooth, kink)`` boolean masks.

    Smooth: the gradient norm is at most ``GRAD_RTOL * slope`` and the Hessian's smaller
    eigenvalue is positive, at least `CURVATURE_RTOL` of the larger one (near an
    inflection such as ``x**3 + y**2`` a descent stalls where the curvature along x is
    tiny but positive). Kink (only with ``kinks``): not smooth, yet `ring_minimum` holds;
    it also takes degenerate minima such as ``x**4 + y**2``.
    """
    _, g, h = derivatives(fn, points)
    finite = _finite(g, h)
    lam = torch.linalg.eigvalsh(torch.where(finite[:, None, None], h, 0.0))
    stationary = finite & (g.norm(dim=1) <= GRAD_RTOL * slope)
    curved = lam[:, 0] > CURVATURE_RTOL * lam.abs().amax(1)
    smooth = stationary & curved
    if not search.kinks:
        return smooth, torch.zeros_like(smooth)
    kink = ~smooth
    kink[kink.clone()] = ring_minimum(fn, points[~smooth], bounds, search)
    return smooth, kink


def _inside(points: Tensor, bounds: Bounds, margin: float = 0.0) -> Tensor:
    (x0, x1), (y0, y1) = bounds
    x, y = points[:, 0], points[:, 1]
    return (x >= x0 - margin) & (x <= x1 + margin) & (y >= y0 - margin) & (y <= y1 + margin)


def find_minima(fn: Fn, bounds: Bounds, search: Search = CATALOGUE) -> tuple[Found, ...]:
    """Every local minimum of ``fn`` inside ``bounds`` that the grid of starts reaches.

    Sorted by value, then x, then y. See the module docstring for the method.

    Args:
        fn: A function of ``(..., 2)`` float64 tensors, vectorised point by point.
        bounds: ``((xmin, xmax), (ymin, ymax))``.
        search: `CATALOGUE`, `ESTIMATE` or a search of your own.
    """
    starts = grid_starts(bounds, search.starts)
    slope = slope_scale(fn, starts)
    merge = MERGE * diagonal(bounds)
    ends = descend(fn, starts, bounds, search)
    ends = polish(fn, _distinct(ends[_inside(ends, bounds, merge)], merge))
    ends = tidy(fn, ends, diagonal(bounds))
    smooth, kink = classify(fn, ends, slope, bounds, search)
    keep = (smooth | kink) & _inside(ends, bounds)
    ends, smooth = ends[keep], smooth[keep]
    with torch.no_grad():
        values = fn(ends).tolist()
    found: list[Found] = []
    # Smooth ends first: of several ends of one minimum, keep the exact one.
    ends_list, smooth_list = ends.tolist(), smooth.tolist()
    order = sorted(range(len(ends_list)), key=lambda i: (not smooth_list[i], values[i]))
    for i in order:
        x, y = ends_list[i]
        if any(math.hypot(x - m.x, y - m.y) <= merge for m in found):
            continue
        found.append(Found(x, y, values[i], smooth_list[i]))
    return tuple(sorted(found, key=lambda m: (m.value, m.x, m.y)))


def split_global(
    found: tuple[Found, ...], *, estimated: bool = False
) -> tuple[tuple[Found, ...], tuple[Found, ...]]:
    """``(global, local)``: the minima that tie with the lowest value, and the others.

    Ties are within `GLOBAL_RTOL` of ``max(1, |lowest|)`` (Himmelblau's four zeros
    evaluate to 0 and 8e-31), or `ESTIMATE_GLOBAL_RTOL` for an estimate, whose kinks are
    only located to about 1e-9 of the diagonal.
    """
    if not found:
        return (), ()
    lowest = min(m.value for m in found)
    rtol = ESTIMATE_GLOBAL_RTOL if estimated else GLOBAL_RTOL
    cut = lowest + rtol * max(1.0, abs(lowest))
    return (
        tuple(m for m in found if m.value <= cut),
        tuple(m for m in found if m.value > cut),
    )


def settle(
    fn: Fn, points: Tensor, radius: float, slope: float, steps: int = SETTLE_STEPS
) -> Tensor:
    """Which points lie within ``radius`` of a stationary point (of any kind) or on a plateau.

    Undamped Newton from each point goes to a nearby stationary point, saddles and maxima
    included (it is drawn to all of them alike); a point counts when an iterate within
    ``radius`` of it has a gradient of at most `SETTLE_RTOL` times ``slope``. Its own
    gradient may already be that small: a plateau, where Newton has no curvature to follow.
    """
    start = points.detach().to(torch.float64)
    x = start.clone()
    tol = SETTLE_RTOL * slope
    done = torch.zeros(len(x), dtype=torch.bool)
    found = torch.zeros(len(x), dtype=torch.bool)
    for i in range(steps + 1):
        idx = (~done).nonzero().squeeze(1)
        if len(idx) == 0:
            break
        _, g, h = derivatives(fn, x[idx])
        finite = _finite(g)
        stationary = finite & (g.norm(dim=1) <= tol)
        far = (x[idx] - start[idx]).norm(dim=1) > radius
        found[idx[stationary & ~far]] = True
        step, usable = _newton_step(g, h)
        stop = stationary | far | ~usable | (i == steps)
        done[idx[stop]] = True
        go = idx[~stop]
        x[go] = x[go] + step[~stop]
    return found
