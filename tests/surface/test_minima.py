"""Every local minimum of every surface: listed, exact, and complete; typed formulas' estimates.

The registry's minima (`optlab.surface.minima_table`) are checked against the surface's own
torch function with tools independent of the search that wrote them: torch's Hessian
(`torch.autograd.functional.hessian`) and a Newton iteration written here. Completeness is
checked from starts the search never uses: every discrete local minimum of a much finer grid
of values, polished. Rastrigin's lattice is also derived in closed form (it is separable).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from optlab.surface.catalog import TABLE, catalogue, differences, table_source
from optlab.surface.minima import (
    CATALOGUE,
    ESTIMATE,
    GRAD_RTOL,
    Found,
    Search,
    classify,
    descend,
    diagonal,
    find_minima,
    grid_starts,
    polish,
    settle,
    slope_scale,
    split_global,
)
from optlab.surface.minima_table import MINIMA
from optlab.surface.plots import contour_figure
from optlab.surface.surfaces import SURFACES, Surface, formula_surface, get_surface

SURFACE_IDS = [s.key for s in SURFACES]
LISTED = [(s, k) for s in SURFACES for k in range(len(s.all_minima))]
LISTED_IDS = [f"{s.key}-{k + 1}" for s, k in LISTED]


def _scalar(surface: Surface):
    return lambda p: surface(p)


@functools.cache
def _slope(surface: Surface) -> float:
    return slope_scale(surface, grid_starts(surface.bounds, 32))


def _newton(surface: Surface, x: float, y: float, steps: int = 8) -> tuple[torch.Tensor, float]:
    """Plain Newton iterations on the surface's own function, written out here."""
    p = torch.tensor([x, y], dtype=torch.float64)
    f = _scalar(surface)
    for _ in range(steps):
        g = torch.autograd.functional.jacobian(f, p)
        h = torch.autograd.functional.hessian(f, p)
        if not torch.isfinite(g).all() or torch.linalg.det(h) == 0:
            break
        p = p - torch.linalg.solve(h, g)
    with torch.no_grad():
        return p, float(f(p))


# --- the table is what the search finds -------------------------------------------------


@pytest.mark.parametrize("surface", SURFACES, ids=SURFACE_IDS)
def test_the_table_is_what_the_search_finds(surface: Surface) -> None:
    table = MINIMA[surface.key]
    fresh = catalogue(surface, table)
    assert differences(surface.key, table, fresh, diagonal(surface.bounds)) == []


def test_the_registry_reads_the_table() -> None:
    assert set(MINIMA) == {s.key for s in SURFACES}
    for surface in SURFACES:
        lowest, others = MINIMA[surface.key]
        assert [(m.x, m.y, m.value) for m in surface.minima] == list(lowest)
        assert [(m.x, m.y, m.value) for m in surface.local_minima] == list(others)
        assert not any(m.estimated for m in surface.all_minima)


def test_the_table_file_is_the_generator_s_output() -> None:
    # Not edited by hand: regenerating an unchanged table rewrites it byte for byte.
    assert TABLE.read_text(encoding="utf-8") == table_source(MINIMA)


@pytest.mark.parametrize(
    ("key", "n_global", "n_local"),
    [
        ("rosenbrock", 1, 0),
        ("beale", 1, 0),
        ("himmelblau", 4, 0),
        ("rastrigin", 1, 120),
        ("ackley", 1, 120),
        ("goldstein_price", 1, 3),
        ("styblinski_tang", 1, 3),
        ("six_hump_camel", 2, 4),
        ("three_hump_camel", 1, 2),
        ("saddle", 0, 0),
        ("monkey_saddle", 0, 0),
    ],
)
def test_how_many_minima_each_surface_has(key: str, n_global: int, n_local: int) -> None:
    surface = get_surface(key)
    assert (len(surface.minima), len(surface.local_minima)) == (n_global, n_local)


def test_the_minima_the_registry_lacked() -> None:
    # Goldstein-Price's local minima (Goldstein & Price 1971 list them at these points).
    gp = get_surface("goldstein_price")
    got = sorted((round(m.x, 12), round(m.y, 12), round(m.value, 9)) for m in gp.local_minima)
    assert got == [(-0.6, -0.4, 30.0), (1.2, 0.8, 840.0), (1.8, 0.2, 84.0)]
    # Styblinski-Tang is a sum of one 1-D quartic per coordinate, each with two minima.
    st = get_surface("styblinski_tang")
    roots = sorted({round(m.x, 12) for m in st.all_minima})
    assert roots == [-2.903534027771, 2.746802770991]
    assert {(round(m.x, 12), round(m.y, 12)) for m in st.all_minima} == {
        (a, b) for a in roots for b in roots
    }


def test_old_minima_keep_their_codes() -> None:
    # A saved basin map indexes all_minima: the entries listed before keep their places.
    himmelblau = get_surface("himmelblau").all_minima
    assert [(round(m.x, 6), round(m.y, 6)) for m in himmelblau] == [
        (3.0, 2.0),
        (-2.805118, 3.131313),
        (-3.77931, -3.283186),
        (3.584428, -1.848127),
    ]
    camel = get_surface("six_hump_camel").all_minima
    assert [(round(m.x, 4), round(m.y, 4)) for m in camel] == [
        (0.0898, -0.7127),
        (-0.0898, 0.7127),
        (1.7036, -0.7961),
        (-1.7036, 0.7961),
        (1.6071, 0.5687),
        (-1.6071, -0.5687),
    ]


def test_the_catalogue_keeps_a_given_order_and_appends_new_minima() -> None:
    surface = get_surface("styblinski_tang")
    lowest, others = MINIMA[surface.key]
    reordered = catalogue(surface, (lowest, (others[2], others[0])))
    assert reordered[1][:2] == (others[2], others[0])
    assert reordered[1][2] == others[1]  # not listed before: appended


# --- every listed minimum is exact -------------------------------------------------------


@pytest.mark.parametrize(("surface", "k"), LISTED, ids=LISTED_IDS)
def test_every_minimum_is_stationary_with_a_positive_definite_hessian(
    surface: Surface, k: int
) -> None:
    m = surface.all_minima[k]
    p = torch.tensor([m.x, m.y], dtype=torch.float64)
    g = torch.autograd.functional.jacobian(_scalar(surface), p)
    h = torch.autograd.functional.hessian(_scalar(surface), p)
    assert float(g.norm()) <= GRAD_RTOL * _slope(surface), g
    assert torch.allclose(h, h.T)
    assert float(torch.linalg.eigvalsh(h).min()) > 0, h
    (x0, x1), (y0, y1) = surface.bounds
    assert x0 <= m.x <= x1 and y0 <= m.y <= y1
    with torch.no_grad():
        # f* is the function's own value there, to the last bit or the one beside it:
        # the C library's exp and cos may round differently on another CPU (this
        # machine's gives Ackley's minima an ulp above the table's, on AVX2 and AVX-512).
        value = float(surface(p))
        assert abs(value - m.value) <= math.ulp(m.value), (value, m.value)


@pytest.mark.parametrize(("surface", "k"), LISTED, ids=LISTED_IDS)
def test_every_minimum_agrees_with_newton_refinement(surface: Surface, k: int) -> None:
    m = surface.all_minima[k]
    p, value = _newton(surface, m.x, m.y)
    assert abs(value - m.value) <= 1e-12 * max(1.0, abs(m.value)), (value, m.value)
    assert math.hypot(float(p[0]) - m.x, float(p[1]) - m.y) <= 1e-9 * diagonal(surface.bounds)


def test_global_minima_are_the_lowest_and_tie() -> None:
    for surface in SURFACES:
        values = [m.value for m in surface.all_minima]
        if not values:
            continue
        lowest = min(values)
        assert all(m.value - lowest <= 1e-9 * max(1, abs(lowest)) for m in surface.minima)
        assert all(m.value - lowest > 1e-6 for m in surface.local_minima)


# --- completeness --------------------------------------------------------------------------


def _grid_minima_starts(surface: Surface, n: int) -> torch.Tensor:
    """The points of an ``n x n`` grid of values lower than their 8 neighbours."""
    xs, ys, z = surface.grid(n)
    inner = z[1:-1, 1:-1]
    lower = np.ones_like(inner, dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dx or dy:
                lower &= inner < z[1 + dy : n - 1 + dy, 1 + dx : n - 1 + dx]
    iy, ix = np.nonzero(lower)
    return torch.tensor(np.stack([xs[ix + 1], ys[iy + 1]], axis=1), dtype=torch.float64)


@pytest.mark.parametrize("surface", SURFACES, ids=SURFACE_IDS)
def test_a_fine_grid_finds_no_minimum_that_is_not_listed(surface: Surface) -> None:
    """Every discrete local minimum of a 401 x 401 grid of f, polished, is a listed minimum.

    Then the same with a search from 128 x 128 starts (the table's search uses 64 x 64).
    """
    starts = _grid_minima_starts(surface, 401)
    ends = polish(surface, descend(surface, starts, surface.bounds))
    smooth, _ = classify(surface, ends, _slope(surface), surface.bounds)
    (x0, x1), (y0, y1) = surface.bounds
    inside = (ends[:, 0] >= x0) & (ends[:, 0] <= x1) & (ends[:, 1] >= y0) & (ends[:, 1] <= y1)
    listed = torch.tensor([[m.x, m.y] for m in surface.all_minima] or [[math.inf] * 2])
    near = 1e-6 * diagonal(surface.bounds)
    for x, y in ends[smooth & inside].tolist():
        assert float(torch.hypot(listed[:, 0] - x, listed[:, 1] - y).min()) <= near, (x, y)
    finer = Search(128, CATALOGUE.iterations, CATALOGUE.still_rel, CATALOGUE.still_abs, False)
    assert len(find_minima(surface, surface.bounds, finer)) == len(surface.all_minima)


def test_rastrigin_minima_are_the_lattice_of_its_1d_minima() -> None:
    # f(x, y) = g(x) + g(y): its minima are the pairs of g's minima, one near each integer.
    def g_prime(t: float) -> float:
        return 2 * t + 20 * math.pi * math.sin(2 * math.pi * t)

    def g_second(t: float) -> float:
        return 2 + 40 * math.pi**2 * math.cos(2 * math.pi * t)

    roots = []
    for k in range(-5, 6):
        t = float(k)
        for _ in range(30):
            t -= g_prime(t) / g_second(t)
        roots.append(t)
    assert all(abs(t) <= 5.12 for t in roots) and max(roots) < 5.0
    surface = get_surface("rastrigin")
    got = torch.tensor([[m.x, m.y] for m in surface.all_minima], dtype=torch.float64)
    want = torch.tensor([[a, b] for a in roots for b in roots], dtype=torch.float64)
    assert len(got) == len(want) == 121
    # One to one: each lattice point has a listed minimum within 1e-12, and none twice.
    nearest = (want[:, None] - got[None]).norm(dim=-1).min(1)
    assert float(nearest.values.max()) <= 1e-12
    assert len(set(nearest.indices.tolist())) == 121


# --- typed formulas: estimated minima ------------------------------------------------------


def test_a_formula_s_minima_are_estimated_only_when_read() -> None:
    surface = formula_surface("x**2 + 10*y**2 + 3*sin(3*x)")
    assert surface.estimated and surface.known_minima == ()
    assert "_minima" not in surface.__dict__  # building the surface searched nothing
    (best,) = surface.minima
    assert best.estimated
    # 1-D: 2x + 9 cos(3x) = 0 near x = -0.49; y = 0.
    assert best.y == 0.0 and abs(2 * best.x + 9 * math.cos(3 * best.x)) < 1e-12
    assert surface.f_min == best.value
    assert len(surface.local_minima) == 4 and all(m.estimated for m in surface.local_minima)
    assert "_minima" in surface.__dict__ and surface.minima is surface.minima


def test_a_formula_of_a_registered_surface_finds_its_minima() -> None:
    typed = formula_surface("(x**2 + y - 11)**2 + (x + y**2 - 7)**2")
    himmelblau = get_surface("himmelblau")
    assert len(typed.minima) == 4 and typed.local_minima == ()
    for m in himmelblau.minima:
        assert min(math.hypot(m.x - e.x, m.y - e.y) for e in typed.minima) < 1e-9


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("(x**2 - 1)**2 + y**2", [(-1.0, 0.0), (1.0, 0.0)]),
        ("abs(x - 1) + abs(y + 2)", [(1.0, -2.0)]),  # a kink: no gradient there
        ("hypot(x, y)", [(0.0, 0.0)]),  # a cone's tip: its gradient is undefined
        ("x**4 + y**4", [(0.0, 0.0)]),  # a flat-bottomed minimum: the Hessian is 0
        ("x**4 + y**2", [(0.0, 0.0)]),  # flat along x only: the Hessian is singular
    ],
)
def test_estimated_global_minima(text: str, where: list[tuple[float, float]]) -> None:
    surface = formula_surface(text)
    got = sorted((m.x, m.y) for m in surface.minima)
    assert len(got) == len(where)
    for (gx, gy), (wx, wy) in zip(got, sorted(where), strict=True):
        # A quartic bottom pins the point only to about the gradient tolerance's cube root.
        assert math.hypot(gx - wx, gy - wy) < 1e-5, got


@pytest.mark.parametrize(
    "text",
    [
        "x + y",  # unbounded below: lowest on the edge of the bounds
        "(x - 10)**2 + y**2",  # its minimum lies outside the bounds
        "-x**2 + y**4",  # a degenerate saddle, lowest on the edge
        "max(x, 0) + y**2",  # a valley floor of equal values, no isolated minimum
        "(x - 0.3*y)**2",  # a line of minima off the rings' directions
        "3",  # constant
        "x**3 + y**2",  # an inflection along x: stationary, not a minimum
    ],
)
def test_formulas_without_a_minimum_inside_the_bounds_have_none(text: str) -> None:
    surface = formula_surface(text)
    assert surface.minima == () and surface.local_minima == () and surface.f_min is None


def test_the_estimate_is_deterministic_and_bounded() -> None:
    surface = formula_surface("sin(3*x) + cos(3*y) + 0.1*(x**2 + y**2)")
    first = find_minima(surface, surface.bounds, ESTIMATE)
    assert find_minima(surface, surface.bounds, ESTIMATE) == first
    assert len(first) == 20
    lowest, others = split_global(first, estimated=True)
    assert len(lowest) == 2 and len(others) == 18  # (x, y) and (x, -y) tie
    (x0, x1), (y0, y1) = surface.bounds
    assert all(x0 <= m.x <= x1 and y0 <= m.y <= y1 for m in first)


def test_the_contour_names_estimated_minima_and_says_when_there_is_none() -> None:
    def stars(fig):
        return [t for t in fig.data if t.type == "scatter" and "star" in str(t.marker.symbol)]

    (known,) = stars(contour_figure(get_surface("himmelblau"), []))
    assert known.name == "known minimum" and len(known.x) == 4
    (estimated,) = stars(contour_figure(formula_surface("(x**2 - 1)**2 + y**2"), []))
    assert estimated.name == "estimated minimum"
    assert sorted(estimated.x) == [-1.0, 1.0] and "estimated minimum" in estimated.hovertemplate
    (none,) = stars(contour_figure(formula_surface("x + y"), []))
    assert none.name == "no minimum found inside the bounds"
    assert list(none.x) == [None]  # a legend entry: no star is drawn anywhere
    assert stars(contour_figure(get_surface("saddle"), [])) == []


# --- the pieces --------------------------------------------------------------------------


def test_split_global_groups_ties() -> None:
    found = (Found(0.0, 0.0, -1.0), Found(1.0, 0.0, -1.0 + 1e-12), Found(2.0, 0.0, 0.5))
    lowest, others = split_global(found)
    assert [m.x for m in lowest] == [0.0, 1.0] and [m.x for m in others] == [2.0]
    assert split_global(()) == ((), ())


def test_settle_finds_saddles_maxima_and_plateaus_but_not_slopes() -> None:
    st = get_surface("styblinski_tang")
    # The 1-D quartic's maximum, by Newton on its derivative 2t^3 - 16t + 2.5.
    t = 0.0
    for _ in range(50):
        t -= (2 * t**3 - 16 * t + 2.5) / (6 * t**2 - 16)
    a, b = st.all_minima[0].x, st.all_minima[3].x
    points = torch.tensor(
        [
            [t, t],  # the maximum
            [t + 0.01, a - 0.02],  # near a saddle
            [a, b + 0.5],  # on a slope, far from anything stationary
        ],
        dtype=torch.float64,
    )
    got = settle(st, points, radius=0.2, slope=_slope(st))
    assert got.tolist() == [True, True, False]
    flat = formula_surface("exp(-(x**2 + y**2))")
    far = torch.tensor([[4.9, 4.9], [0.5, 0.0]], dtype=torch.float64)
    assert settle(flat, far, 0.2, _slope(flat)).tolist() == [True, False]
