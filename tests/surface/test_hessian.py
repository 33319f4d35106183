"""The exact Hessian along a path: analytic values, every registered surface, NaN safety."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from optlab.surface.hessian import hessian_eigs, hessians
from optlab.surface.surfaces import QUADRATIC, ROSENBROCK, SURFACES, Surface, formula_surface


def _points(surface: Surface, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    (x0, x1), (y0, y1) = surface.bounds
    return np.column_stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)])


def test_axis_aligned_quadratic_has_the_same_eigenvalues_everywhere() -> None:
    surface = formula_surface("x**2 + 10*y**2")
    xy = _points(surface, 50)
    eigvals, eigvecs = hessian_eigs(surface, xy)
    assert eigvals.shape == (50, 2) and eigvecs.shape == (50, 2, 2)
    np.testing.assert_array_equal(eigvals, np.tile([2.0, 20.0], (50, 1)))
    np.testing.assert_array_equal(eigvecs, np.tile(np.eye(2), (50, 1, 1)))


def test_registered_quadratic_follows_its_kappa() -> None:
    eigvals, _ = hessian_eigs(QUADRATIC.with_values(kappa=250.0), np.array([[0.3, -1.1]]))
    np.testing.assert_array_equal(eigvals, [[1.0, 250.0]])


def test_rotated_quadratic_eigenvectors_are_its_axes() -> None:
    angle, a, b = 0.3, 1.5, 9.0
    c, s = math.cos(angle), math.sin(angle)

    def fn(xy: torch.Tensor) -> torch.Tensor:
        x, y = xy.unbind(-1)
        return 0.5 * (a * (c * x + s * y) ** 2 + b * (-s * x + c * y) ** 2)

    surface = Surface("rotated", "Rotated bowl", fn, ((-2.0, 2.0), (-2.0, 2.0)), (1.0, 1.0))
    eigvals, eigvecs = hessian_eigs(surface, _points(surface, 20))
    np.testing.assert_allclose(eigvals, np.tile([a, b], (20, 1)), rtol=1e-14)
    # Columns: u1 = (c, s) for a; u2 = ±(-s, c) for b, returned with x >= 0.
    expected = np.array([[c, s], [s, -c]]).T
    np.testing.assert_allclose(eigvecs, np.tile(expected, (20, 1, 1)), atol=1e-14)


def test_rosenbrock_at_its_minimum() -> None:
    h = hessians(ROSENBROCK, np.array([1.0, 1.0]))
    np.testing.assert_array_equal(h, [[[802.0, -400.0], [-400.0, 200.0]]])
    eigvals, eigvecs = hessian_eigs(ROSENBROCK, np.array([[1.0, 1.0]]))
    root = math.sqrt(602.0**2 + 4 * 400.0**2)
    np.testing.assert_allclose(eigvals[0], [(1002 - root) / 2, (1002 + root) / 2], rtol=1e-14)
    matrix = np.array([[802.0, -400.0], [-400.0, 200.0]])
    for k in range(2):
        np.testing.assert_allclose(
            matrix @ eigvecs[0, :, k], eigvals[0, k] * eigvecs[0, :, k], atol=1e-10
        )


def test_rosenbrock_matches_its_analytic_hessian_along_a_path() -> None:
    xy = _points(ROSENBROCK, 40, seed=3)
    x, y = xy[:, 0], xy[:, 1]
    expected = np.stack(
        [
            np.stack([2 - 400 * y + 1200 * x**2, -400 * x], axis=1),
            np.stack([-400 * x, np.full_like(x, 200.0)], axis=1),
        ],
        axis=1,
    )
    np.testing.assert_allclose(hessians(ROSENBROCK, xy), expected, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("surface", SURFACES, ids=lambda s: s.key)
def test_every_surface_matches_autograd_point_by_point(surface: Surface) -> None:
    xy = _points(surface, 12, seed=1)
    h = hessians(surface, xy)
    for point, got in zip(xy, h, strict=True):
        want = torch.autograd.functional.hessian(surface, torch.tensor(point)).numpy()
        np.testing.assert_allclose(got, (want + want.T) / 2, rtol=1e-10, atol=1e-8)
    eigvals, eigvecs = hessian_eigs(surface, xy)
    assert np.all(eigvals[:, 0] <= eigvals[:, 1])
    np.testing.assert_allclose(
        eigvecs.transpose(0, 2, 1) @ eigvecs, np.tile(np.eye(2), (12, 1, 1)), atol=1e-12
    )
    np.testing.assert_allclose(
        h @ eigvecs, eigvecs * eigvals[:, None, :], atol=1e-8 * max(1.0, np.abs(h).max())
    )


def test_diverged_points_give_nan_and_leave_the_others_alone() -> None:
    xy = np.array([[0.5, 0.5], [np.nan, 0.0], [np.inf, 1.0], [1e200, -1e200], [-1.0, 2.0]])
    eigvals, eigvecs = hessian_eigs(ROSENBROCK, xy)
    assert np.isnan(eigvals[1:4]).all() and np.isnan(eigvecs[1:4]).all()
    clean, clean_vecs = hessian_eigs(ROSENBROCK, xy[[0, 4]])
    np.testing.assert_array_equal(eigvals[[0, 4]], clean)
    np.testing.assert_array_equal(eigvecs[[0, 4]], clean_vecs)


def test_a_constant_hessian_is_still_nan_at_a_diverged_point() -> None:
    eigvals, eigvecs = hessian_eigs(QUADRATIC, np.array([[np.nan, np.nan], [0.0, 0.0]]))
    assert np.isnan(eigvals[0]).all() and np.isnan(eigvecs[0]).all()
    np.testing.assert_array_equal(eigvals[1], [1.0, 10.0])


def test_a_singular_point_of_a_formula_gives_nan() -> None:
    # sqrt(x^2 + y^2) has an infinite second derivative at the origin.
    eigvals, _ = hessian_eigs(
        formula_surface("sqrt(x^2 + y^2)"), np.array([[0.0, 0.0], [3.0, 4.0]])
    )
    assert np.isnan(eigvals[0]).all()
    np.testing.assert_allclose(eigvals[1], [0.0, 1 / 5], atol=1e-15)


def test_a_function_vmap_refuses_falls_back_to_plain_autograd() -> None:
    def fn(xy: torch.Tensor) -> torch.Tensor:
        x, y = xy.unbind(-1)
        if float(x.detach().sum()) > 0:  # Python control flow on a value: no vmap
            return 3 * x**2 + x * y + y**2
        return x**2 + y**2

    surface = Surface("branchy", "Branchy", fn, ((-1.0, 1.0), (-1.0, 1.0)), (0.5, 0.5))
    with pytest.raises(RuntimeError):
        torch.func.vmap(torch.func.jacrev(torch.func.jacrev(fn)))(
            torch.zeros(2, 2, dtype=torch.float64)
        )
    h = hessians(surface, np.array([[0.5, 0.2], [-0.5, 0.2], [np.nan, 0.0]]))
    np.testing.assert_array_equal(h[0], [[6.0, 1.0], [1.0, 2.0]])
    np.testing.assert_array_equal(h[1], [[2.0, 0.0], [0.0, 2.0]])
    assert np.isnan(h[2]).all()


def test_shapes() -> None:
    eigvals, eigvecs = hessian_eigs(ROSENBROCK, np.zeros((0, 2)))
    assert eigvals.shape == (0, 2) and eigvecs.shape == (0, 2, 2)
    with pytest.raises(ValueError, match="xy"):
        hessian_eigs(ROSENBROCK, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="xy"):
        hessians(ROSENBROCK, np.zeros(3))
