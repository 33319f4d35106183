"""The exact Hessian of a surface along a path: its eigenvalues and eigenvectors.

A 2-D surface is small enough for its Hessian to be computed exactly, in
float64, by automatic differentiation of the surface's own torch function (no
finite differences, no NumPy twin):

.. math::

    H(x, y) = \\begin{pmatrix} f_{xx} & f_{xy} \\\\ f_{yx} & f_{yy} \\end{pmatrix},
    \\qquad H\\,u_k = \\lambda_k u_k, \\quad \\lambda_1 \\le \\lambda_2 .

Its eigenvalues are the curvatures along the principal axes ``u_1, u_2``: the
step size at which gradient descent turns unstable along ``u_k`` is
``2 / λ_k``, and a negative eigenvalue marks a direction of descent (a saddle).

`hessian_eigs` is the whole API: points in, ``(eigvals, eigvecs)`` out.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor
from torch.func import jacrev, vmap

from optlab.surface.surfaces import Surface

__all__ = ["hessian_eigs", "hessians"]


def hessians(surface: Surface, xy: np.ndarray) -> np.ndarray:
    """The exact Hessian of ``surface`` at each point, in float64.

    All points are differentiated at once with ``torch.func.vmap`` over
    ``jacrev(jacrev(f))`` (reverse over reverse: ``torch.func.hessian``'s forward
    mode would make torch warn about its deprecated ``torch.jit.script`` on first
    use, for the same numbers). A surface function that cannot be vmapped (one
    that reads a tensor's value in Python, say) is differentiated point by point
    with ``torch.autograd.functional.hessian`` instead: same numbers, slower.

    Args:
        surface: The surface; its function is called on ``(2,)`` tensors.
        xy: Points of shape ``(n, 2)`` (or one point of shape ``(2,)``), x first.

    Returns:
        ``(n, 2, 2)`` Hessians, symmetric (the mean of the computed matrix and
        its transpose). A point with a NaN or infinite coordinate (a run that
        diverged) gets a Hessian of NaNs, even where the surface's curvature
        does not depend on the point (a quadratic's).

    Raises:
        ValueError: ``xy`` is not of shape ``(n, 2)`` or ``(2,)``.
    """
    points = _points(xy)
    out = torch.full((len(points), 2, 2), float("nan"), dtype=torch.float64)
    finite = torch.isfinite(points).all(dim=1)
    if finite.any():
        out[finite] = _hessians(_scalar(surface), points[finite]).to(torch.float64)
    return ((out + out.transpose(1, 2)) / 2).numpy()


def hessian_eigs(surface: Surface, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Hessian's eigenvalues and eigenvectors at each point.

    Args:
        surface: The surface.
        xy: Points of shape ``(n, 2)`` (or one point of shape ``(2,)``), x first:
            a trajectory's ``np.column_stack([t.x, t.y])``.

    Returns:
        ``(eigvals, eigvecs)`` in float64. ``eigvals[i]`` is ``[λ₁, λ₂]`` at
        point ``i`` in ascending order (``λ₂`` is the sharpness, the largest
        curvature); ``eigvecs[i, :, k]`` is the unit eigenvector of
        ``eigvals[i, k]`` (columns, as in ``numpy.linalg.eigh``). An
        eigenvector is an axis, its sign carries no meaning: each is returned
        with ``x >= 0`` (``y > 0`` when ``x == 0``) so that neighbouring points
        agree. Where the point or its Hessian is not finite (a diverged run,
        a surface's singularity), both are NaN.

    Raises:
        ValueError: ``xy`` is not of shape ``(n, 2)`` or ``(2,)``.
    """
    h = torch.from_numpy(hessians(surface, xy))
    n = h.shape[0]
    eigvals = torch.full((n, 2), float("nan"), dtype=torch.float64)
    eigvecs = torch.full((n, 2, 2), float("nan"), dtype=torch.float64)
    finite = torch.isfinite(h).flatten(1).all(dim=1)
    if finite.any():
        values, vectors = torch.linalg.eigh(h[finite])
        x, y = vectors[:, 0, :], vectors[:, 1, :]
        flip = (x < 0) | ((x == 0) & (y < 0))
        eigvals[finite] = values
        eigvecs[finite] = torch.where(flip.unsqueeze(1), -vectors, vectors)
    return eigvals.numpy(), eigvecs.numpy()


def _points(xy: np.ndarray) -> Tensor:
    points = torch.as_tensor(np.asarray(xy, dtype=np.float64))
    if points.ndim == 1:
        points = points.unsqueeze(0)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"xy: expected points of shape (n, 2), got {tuple(np.shape(xy))}")
    return points


def _scalar(surface: Surface) -> Callable[[Tensor], Tensor]:
    def f(point: Tensor) -> Tensor:
        return surface(point)

    return f


def _hessians(f: Callable[[Tensor], Tensor], points: Tensor) -> Tensor:
    try:
        return vmap(jacrev(jacrev(f)))(points)
    except (RuntimeError, NotImplementedError):
        # vmap refuses Python control flow on a tensor's value (.item(), if x > 0);
        # plain autograd differentiates the same function one point at a time.
        return torch.stack([torch.autograd.functional.hessian(f, p) for p in points])
