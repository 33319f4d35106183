"""Tests for optlab.surface.surfaces: the registry of 2-D loss surfaces and user formulas.

Generic tests enumerate `SURFACES`, so a new surface is checked with no new test code;
`LITERATURE` pins the published minima of the classic test functions.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch

from optlab.surface.surfaces import CUSTOM, SURFACES, Surface, formula_surface, get_surface

SURFACE_IDS = [s.key for s in SURFACES]
WITH_MINIMA = [s for s in SURFACES if s.minima]
MINIMA = [(s, m) for s in SURFACES for m in s.all_minima]
MINIMA_IDS = [f"{s.key}@({m.x:g},{m.y:g})" for s, m in MINIMA]

# Published global minima: (x, y, f*, tolerance on f). Sources: Jamil & Yang, "A
# literature survey of benchmark functions for global optimization problems" (2013),
# and the Virtual Library of Simulation Experiments (Surjanovic & Bingham).
LITERATURE: dict[str, list[tuple[float, float, float, float]]] = {
    "rosenbrock": [(1.0, 1.0, 0.0, 1e-12)],
    "beale": [(3.0, 0.5, 0.0, 1e-12)],
    "himmelblau": [
        (3.0, 2.0, 0.0, 1e-5),
        (-2.805118, 3.131312, 0.0, 1e-5),
        (-3.779310, -3.283186, 0.0, 1e-5),
        (3.584428, -1.848126, 0.0, 1e-5),
    ],
    "rastrigin": [(0.0, 0.0, 0.0, 1e-12)],
    "ackley": [(0.0, 0.0, 0.0, 1e-12)],
    "booth": [(1.0, 3.0, 0.0, 1e-12)],
    "goldstein_price": [(0.0, -1.0, 3.0, 1e-12)],
    "styblinski_tang": [(-2.903534, -2.903534, -78.33233, 1e-5)],
    "six_hump_camel": [
        (0.0898420, -0.7126564, -1.031628, 1e-6),
        (-0.0898420, 0.7126564, -1.031628, 1e-6),
    ],
    "three_hump_camel": [(0.0, 0.0, 0.0, 1e-12)],
    "matyas": [(0.0, 0.0, 0.0, 1e-12)],
    "quadratic": [(0.0, 0.0, 0.0, 1e-12)],
}
LITERATURE_CASES = [(key, *m) for key, ms in LITERATURE.items() for m in ms]


def _value(surface: Surface, x: float, y: float) -> float:
    with torch.no_grad():
        return surface(torch.tensor([x, y], dtype=torch.float64)).item()


def _gradient(surface: Surface, x: float, y: float) -> np.ndarray:
    p = torch.tensor([x, y], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(surface(p), p)
    return g.numpy()


def _random_points(surface: Surface, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    (x0, x1), (y0, y1) = surface.bounds
    u = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    lo = torch.tensor([x0, y0], dtype=torch.float64)
    hi = torch.tensor([x1, y1], dtype=torch.float64)
    return lo + u * (hi - lo)


# --- known minima --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "x", "y", "value", "tol"),
    LITERATURE_CASES,
    ids=[f"{c[0]}@({c[1]:g},{c[2]:g})" for c in LITERATURE_CASES],
)
def test_literature_minimum_value(key: str, x: float, y: float, value: float, tol: float) -> None:
    surface = get_surface(key)
    assert _value(surface, x, y) == pytest.approx(value, abs=tol)


@pytest.mark.parametrize("key", list(LITERATURE))
def test_registered_minima_are_the_literature_ones(key: str) -> None:
    registered = sorted((m.x, m.y, m.value) for m in get_surface(key).minima)
    published = sorted((x, y, v) for x, y, v, _ in LITERATURE[key])
    assert len(registered) == len(published)
    for got, want in zip(registered, published, strict=True):
        assert got == pytest.approx(want, abs=1e-5)


def test_explicit_classics() -> None:
    assert _value(get_surface("goldstein_price"), 0.0, -1.0) == pytest.approx(3.0, abs=1e-12)
    assert _value(get_surface("styblinski_tang"), -2.903534, -2.903534) == pytest.approx(
        -78.33233, abs=1e-5
    )
    camel = get_surface("six_hump_camel")
    for x, y in ((0.0898420, -0.7126564), (-0.0898420, 0.7126564)):
        assert _value(camel, x, y) == pytest.approx(-1.031628, abs=1e-6)
    assert _value(get_surface("three_hump_camel"), 0.0, 0.0) == 0.0
    assert _value(get_surface("rosenbrock"), 1.0, 1.0) == 0.0
    assert _value(get_surface("beale"), 3.0, 0.5) == 0.0
    himmelblau = get_surface("himmelblau")
    for x, y in ((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)):
        assert _value(himmelblau, x, y) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize(("surface", "minimum"), MINIMA, ids=MINIMA_IDS)
def test_registered_minimum_value_matches_the_function(surface: Surface, minimum) -> None:
    assert _value(surface, minimum.x, minimum.y) == pytest.approx(minimum.value, abs=1e-5)


@pytest.mark.parametrize(("surface", "minimum"), MINIMA, ids=MINIMA_IDS)
def test_gradient_vanishes_at_minimum(surface: Surface, minimum) -> None:
    grad = _gradient(surface, minimum.x, minimum.y)
    assert np.all(np.isfinite(grad))
    assert np.abs(grad).max() < 1e-3, grad


@pytest.mark.parametrize(("surface", "minimum"), MINIMA, ids=MINIMA_IDS)
def test_minimum_lies_inside_bounds(surface: Surface, minimum) -> None:
    (x0, x1), (y0, y1) = surface.bounds
    assert x0 <= minimum.x <= x1 and y0 <= minimum.y <= y1


@pytest.mark.parametrize(("surface", "minimum"), MINIMA, ids=MINIMA_IDS)
def test_every_known_minimum_is_a_minimum_not_a_saddle(surface: Surface, minimum) -> None:
    # f rises in every direction around it (a basin map relies on this).
    for angle in np.linspace(0, 2 * np.pi, 16, endpoint=False):
        dx, dy = 1e-2 * np.cos(angle), 1e-2 * np.sin(angle)
        assert _value(surface, minimum.x + dx, minimum.y + dy) > minimum.value - 1e-6


def test_local_minima_lie_above_the_global_ones() -> None:
    for surface in SURFACES:
        for m in surface.local_minima:
            assert m.value > surface.f_min + 1e-3


@pytest.mark.parametrize("surface", WITH_MINIMA, ids=[s.key for s in WITH_MINIMA])
def test_known_minimum_is_global_within_bounds(surface: Surface) -> None:
    _, _, z = surface.grid(200)
    assert np.isfinite(z).all()
    assert surface.f_min is not None
    assert z.min() >= surface.f_min - 1e-6, (z.min(), surface.f_min)
    # Several minima of one surface are all global: they share one value.
    values = {m.value for m in surface.minima}
    assert max(values) - min(values) < 1e-9


@pytest.mark.parametrize("surface", SURFACES, ids=SURFACE_IDS)
def test_log_scale_needs_minima(surface: Surface) -> None:
    if surface.log_scale:
        assert surface.minima, f"{surface.key} colours on a log scale but has no known minimum"


# --- the function itself -------------------------------------------------------------


@pytest.mark.parametrize("surface", SURFACES, ids=SURFACE_IDS)
def test_autograd_matches_central_differences(surface: Surface) -> None:
    h = 1e-6
    points = _random_points(surface, 8, seed=zlib.crc32(surface.key.encode()))
    leaf = points.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(surface(leaf).sum(), leaf)
    numeric = torch.empty_like(points)
    with torch.no_grad():
        for axis in range(2):
            step = torch.zeros(2, dtype=torch.float64)
            step[axis] = h
            numeric[:, axis] = (surface(points + step) - surface(points - step)) / (2 * h)
    np.testing.assert_allclose(auto.numpy(), numeric.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("surface", SURFACES, ids=SURFACE_IDS)
def test_vectorised_over_leading_dimensions(surface: Surface) -> None:
    points = _random_points(surface, 35, seed=7).reshape(7, 5, 2)
    with torch.no_grad():
        batched = surface(points)
    assert batched.shape == (7, 5)
    assert batched.dtype == torch.float64
    one_by_one = torch.tensor(
        [[_value(surface, *points[i, j].tolist()) for j in range(5)] for i in range(7)],
        dtype=torch.float64,
    )
    torch.testing.assert_close(batched, one_by_one, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("surface", SURFACES, ids=SURFACE_IDS)
def test_grid_shapes_and_orientation(surface: Surface) -> None:
    n = 17
    xs, ys, z = surface.grid(n)
    assert xs.shape == (n,) and ys.shape == (n,) and z.shape == (n, n)
    (x0, x1), (y0, y1) = surface.bounds
    assert xs[0] == pytest.approx(x0) and xs[-1] == pytest.approx(x1)
    assert ys[0] == pytest.approx(y0) and ys[-1] == pytest.approx(y1)
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(ys) > 0)
    # z is indexed [y, x], as Plotly's contour expects.
    for i, j in ((0, n - 1), (3, 11), (n - 1, 2)):
        assert z[i, j] == pytest.approx(_value(surface, float(xs[j]), float(ys[i])), rel=1e-12)


@pytest.mark.parametrize("surface", SURFACES, ids=SURFACE_IDS)
def test_metadata(surface: Surface) -> None:
    (x0, x1), (y0, y1) = surface.bounds
    assert x0 < x1 and y0 < y1
    sx, sy = surface.start
    assert x0 <= sx <= x1 and y0 <= sy <= y1, "start lies outside the bounds"
    assert surface.label.strip() and surface.tex.strip()
    assert surface.key != CUSTOM
    assert get_surface(surface.key) is surface
    assert math.isfinite(_value(surface, sx, sy))
    if surface.minima:
        # Starting on the minimum would show nothing.
        assert min(math.hypot(sx - m.x, sy - m.y) for m in surface.minima) > 1e-3


def test_registry_keys_are_unique() -> None:
    assert len(SURFACE_IDS) == len(set(SURFACE_IDS))


def test_unknown_surface_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown surface 'nope'"):
        get_surface("nope")


# --- surface parameters --------------------------------------------------------------


PARAMETRISED = [s for s in SURFACES if s.params]


@pytest.mark.parametrize("surface", PARAMETRISED, ids=[s.key for s in PARAMETRISED])
def test_parameter_defaults_are_the_values(surface: Surface) -> None:
    assert dict(surface.values) == {hp.name: hp.default for hp in surface.params}
    assert surface.with_values() == surface


def test_quadratic_kappa_changes_the_value() -> None:
    bowl = get_surface("quadratic")
    steep = bowl.with_values(kappa=100)
    assert _value(bowl, 1.0, 1.0) == pytest.approx(0.5 * (1 + 10))
    assert _value(steep, 1.0, 1.0) == pytest.approx(0.5 * (1 + 100))
    assert steep != bowl and hash(steep) != hash(bowl)
    # The grid cache must not hand back the default bowl's grid.
    assert not np.allclose(steep.grid(9)[2], bowl.grid(9)[2])
    assert steep.with_values(kappa=10) == bowl


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"kappa": 0.5}, "Invalid kappa value: 0.5"),
        ({"kappa": float("nan")}, "Invalid kappa value: nan"),
        ({"kappa": 1e5}, "Invalid kappa value"),
        ({"kappa": "big"}, "Invalid kappa value"),
        ({"gamma": 2.0}, "'gamma'"),
    ],
)
def test_quadratic_bad_parameters(values: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        get_surface("quadratic").with_values(**values)
    assert fragment in str(info.value)


def test_surface_without_parameters_rejects_one() -> None:
    with pytest.raises(ValueError, match="kappa"):
        get_surface("rosenbrock").with_values(kappa=3.0)


# --- user formulas -------------------------------------------------------------------


def test_formula_surface_evaluates_the_formula() -> None:
    surface = formula_surface("x**2+y**2")
    assert surface.key == CUSTOM
    for (x, y), expected in (((0, 0), 0.0), ((1, 2), 5.0), ((-3, 0.5), 9.25)):
        assert _value(surface, x, y) == pytest.approx(expected, abs=1e-12)
    assert _gradient(surface, 1.0, -2.0) == pytest.approx([2.0, -4.0])
    xs, ys, z = surface.grid(11)
    np.testing.assert_allclose(z, ys[:, None] ** 2 + xs[None, :] ** 2, rtol=1e-12)
    (x0, x1), (y0, y1) = surface.bounds
    assert x0 <= surface.start[0] <= x1 and y0 <= surface.start[1] <= y1
    assert not surface.log_scale


def test_formula_surface_takes_bounds() -> None:
    surface = formula_surface("x - y", ((0.0, 1.0), (2.0, 4.0)))
    assert surface.bounds == ((0.0, 1.0), (2.0, 4.0))
    xs, ys, _ = surface.grid(5)
    assert (xs[0], xs[-1], ys[0], ys[-1]) == (0.0, 1.0, 2.0, 4.0)
    (x0, x1), (y0, y1) = surface.bounds
    assert x0 <= surface.start[0] <= x1 and y0 <= surface.start[1] <= y1


def test_different_formulas_are_different_surfaces() -> None:
    a, b = formula_surface("x**2+y**2"), formula_surface("x**2-y**2")
    assert a != b
    assert _value(a, 1.0, 1.0) == 2.0 and _value(b, 1.0, 1.0) == 0.0
    assert not np.allclose(a.grid(9)[2], b.grid(9)[2])


def test_partly_finite_formula_is_accepted() -> None:
    surface = formula_surface("sqrt(x) + y**2")
    assert _value(surface, 4.0, 1.0) == pytest.approx(3.0)


@pytest.mark.parametrize("text", ["log(-(x**2)-1)", "1/0 + x", "sqrt(-1 - x**2 - y**2)"])
def test_formula_not_finite_anywhere_is_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="not finite"):
        formula_surface(text)


@pytest.mark.parametrize("text", ["__import__('os')", "x.real", "", "x +"])
def test_rejected_formula_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        formula_surface(text)


@pytest.mark.parametrize(
    ("bounds", "fragment"),
    [
        (((1.0, 0.0), (0.0, 1.0)), "xmin must be below xmax"),
        (((0.0, 1.0), (2.0, 2.0)), "ymin must be below ymax"),
        (((0.0, float("nan")), (0.0, 1.0)), "finite"),
        (((0.0, float("inf")), (0.0, 1.0)), "finite"),
        (((0.0, 1e7), (0.0, 1.0)), "x range must stay within"),
    ],
)
def test_formula_bad_bounds(bounds, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        formula_surface("x + y", bounds)
    assert fragment in str(info.value)
