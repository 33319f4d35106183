"""Planes through a CNN's parameter space, and where weights lie on them.

A model's weights are one float32 vector θ of all its parameters, flattened in
``model.parameters()`` order (`flat_parameters`, the order of torch's
``parameters_to_vector``). A `Plane` is an origin and two directions; the
weights at coordinates (a, b) are

.. math::

    \\theta(a, b) = \\text{origin} + a\\,e_1 + b\\,e_2 \\qquad (`point`),

and `project` finds the (a, b) of any θ by least squares, with how far θ lies
off the plane (its residual). Three planes are built here:

- ``endpoints`` (`endpoints_plane`): through the shared initial weights θ₀
  and two optimizers' latest weights θ_A, θ_B. e₁ points from θ₀ to θ_A,
  e₂ is θ_B − θ₀ made orthogonal to e₁ (Gram-Schmidt); all three points lie
  on the plane.
- ``pca`` (`pca_plane`): through θ₀, along the top two principal directions
  of every optimizer's snapshots: the plane through θ₀ closest to all the
  paths at once (Li et al. 2018, §7, for several paths).
- ``random`` (`random_plane`): two random filter-normalised directions
  around one optimizer's weights (Li et al. 2018, §4), the plane of the
  paper's pictures.

Coordinates. On ``endpoints`` and ``pca`` planes e₁, e₂ are orthonormal, so
(a, b) are distances in parameter space (L2) along them. On a ``random``
plane they are not unit vectors: every filter of a direction has the norm of
the weights' filter. There a coordinate is the multiple of its direction, as
in the paper (a = 1 moves every filter by its own norm), and `project` solves
the 2×2 least-squares problem with the directions' Gram matrix. On an
orthonormal plane the Gram matrix is the identity and the same formula gives
the dot products, so one `project` and one `point` serve every kind and
undo each other.

Li, Xu, Taylor, Studer, Goldstein, "Visualizing the Loss Landscape of Neural
Nets", NeurIPS 2018.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

PlaneKind = Literal["endpoints", "pca", "random"]
PLANE_KINDS: tuple[PlaneKind, ...] = ("endpoints", "pca", "random")
#: A direction left with at most this share of its length after removing what
#: lies along the other is no direction: float32 weights carry about seven
#: significant digits, so such a remainder is rounding, not a second axis.
DEGENERATE = 1e-5
#: How far from orthonormal e₁, e₂ of an ``endpoints`` or ``pca`` plane may be
#: (float32 rounding of vectors normalised in float64 is about 1e-7).
ORTHONORMAL_TOLERANCE = 1e-4
#: The fraction of the grid's span added on each side by `fit_ranges`.
MARGIN = 0.15
#: Weight vectors projected at once by `project` (float64 temporaries of this
#: many rows: 37 MB for SeedNet's 145,578 parameters).
ROWS = 32
#: Columns of the snapshot matrix handled at once by `pca_plane` (its float64
#: temporaries hold this many columns of every snapshot).
COLUMNS = 1 << 14


class Projection(NamedTuple):
    """Where weight vectors lie on a plane (float64, one entry per vector).

    Attributes:
        a: Coordinate along e₁.
        b: Coordinate along e₂.
        residual: ``‖θ − origin − a·e₁ − b·e₂‖ / ‖θ − origin‖``: 0 on the
            plane (and at the origin), 1 for a θ − origin orthogonal to it.
    """

    a: Tensor
    b: Tensor
    residual: Tensor


@dataclass(frozen=True, eq=False)
class Plane:
    """A plane through parameter space: ``origin + a·e1 + b·e2``.

    Attributes:
        kind: ``endpoints``, ``pca`` or ``random`` (see the module docstring).
        origin: The weights at (0, 0): float32, one entry per parameter.
        e1: The direction of a (float32, like ``origin``).
        e2: The direction of b.
        optimizers: The names of the optimizers whose weights define the
            plane: A and B for ``endpoints``, every one for ``pca``, the one
            whose weights are the origin for ``random``.
        explained: For ``pca``, the share of the snapshots' summed squared
            distance from θ₀ along e₁ and along e₂; None otherwise.
        seed: For ``random``, the seed of its directions; None otherwise.
    """

    kind: PlaneKind
    origin: Tensor
    e1: Tensor
    e2: Tensor
    optimizers: tuple[str, ...]
    explained: tuple[float, float] | None = None
    seed: int | None = None
    gram: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in PLANE_KINDS:
            raise ValueError(f"kind: must be one of {', '.join(PLANE_KINDS)}, got {self.kind!r}")
        for name in ("origin", "e1", "e2"):
            t = getattr(self, name)
            if not isinstance(t, Tensor) or t.dtype != torch.float32 or t.dim() != 1:
                raise ValueError(f"{name}: must be a 1-D float32 tensor, got {_describe(t)}")
            if t.numel() == 0 or t.shape != self.origin.shape or t.device != self.origin.device:
                raise ValueError(
                    f"{name}: must be a non-empty tensor like origin "
                    f"({self.origin.numel()} entries on {self.origin.device}), got {_describe(t)}"
                )
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name}: has non-finite entries")
        names = tuple(self.optimizers) if not isinstance(self.optimizers, str) else ()
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"optimizers: must be non-empty names, got {self.optimizers!r}")
        object.__setattr__(self, "optimizers", names)
        if self.explained is not None and (
            len(self.explained) != 2 or not all(0 <= v <= 1 for v in self.explained)
        ):
            raise ValueError(f"explained: must be two shares in [0, 1], got {self.explained!r}")
        seed = self.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed: must be an integer or None, got {self.seed!r}")
        basis = torch.stack([self.e1, self.e2]).to(torch.float64)
        gram = basis @ basis.T
        g11, g12, g22 = (float(v) for v in (gram[0, 0], gram[0, 1], gram[1, 1]))
        for name, g in (("e1", g11), ("e2", g22)):
            if g == 0:
                raise ValueError(f"{name}: is the zero vector")
        # |sin| of the angle between the directions, from the Gram determinant.
        if (g11 * g22 - g12 * g12) / (g11 * g22) <= DEGENERATE**2:
            raise ValueError("e1, e2: are parallel, so they span a line, not a plane")
        if self.orthonormal:
            off = float((gram - torch.eye(2, dtype=torch.float64, device=gram.device)).abs().max())
            if off > ORTHONORMAL_TOLERANCE:
                raise ValueError(
                    f"e1, e2: must be orthonormal on a plane of kind {self.kind!r} (their Gram "
                    f"matrix is off the identity by {off:.2g})"
                )
        object.__setattr__(self, "gram", gram)

    @property
    def orthonormal(self) -> bool:
        """Whether e₁, e₂ are orthonormal (coordinates are L2 distances)."""
        return self.kind != "random"

    @property
    def n_params(self) -> int:
        """The number of parameters (entries of each vector)."""
        return self.origin.numel()


def flat_parameters(model: nn.Module) -> Tensor:
    """A float32 copy of the model's parameters, flattened in ``model.parameters()`` order.

    Each parameter is flattened in its logical (row-major) order whatever its memory
    format, so a channels-last model (as training keeps it on the CPU) gives the same
    vector as a contiguous one; torch's ``parameters_to_vector`` refuses channels-last
    tensors.
    """
    parts = [p.detach().reshape(-1) for p in model.parameters()]
    return torch.cat(parts).to(torch.float32)  # cat made the copy


def endpoints_plane(initial: Tensor, weights: Mapping[str, Tensor]) -> Plane:
    """The plane through the initial weights and two optimizers' latest weights.

    With θ₀ = ``initial`` and θ_A, θ_B the first two entries of ``weights``:

    .. math::

        e_1 = \\frac{\\theta_A - \\theta_0}{\\lVert \\theta_A - \\theta_0 \\rVert}, \\qquad
        e_2 = \\frac{w - (w \\cdot e_1)\\, e_1}{\\lVert w - (w \\cdot e_1)\\, e_1 \\rVert},
        \\quad w = \\theta_B - \\theta_0,

    computed in float64 (e₂ orthogonalised twice, which makes it orthogonal
    to e₁ to rounding) and stored as float32. θ₀ is at (0, 0), θ_A at
    (‖θ_A − θ₀‖, 0) and θ_B at (w·e₁, w·e₂).

    Args:
        initial: The shared initial weights θ₀ (flat, see `flat_parameters`).
        weights: Each optimizer's latest weights by name, in display order;
            the first two define the plane.

    Raises:
        ValueError: fewer than two optimizers, vectors of different lengths,
            or a degenerate plane: A has not moved from θ₀, B has not, or
            θ_B − θ₀ is parallel to θ_A − θ₀; the message names the problem.
    """
    names = list(weights)
    if len(names) < 2:
        raise ValueError(
            f"endpoints plane: needs the weights of two optimizers, got {len(names)}"
            + (f" ({', '.join(names)})" if names else "")
        )
    name_a, name_b = names[:2]
    theta0 = _flat(initial, "initial weights")
    u = _flat(weights[name_a], f"{name_a}'s weights", theta0).to(torch.float64) - theta0.double()
    w = _flat(weights[name_b], f"{name_b}'s weights", theta0).to(torch.float64) - theta0.double()
    for name, v in ((name_a, u), (name_b, w)):
        if not bool(v.any()):
            raise ValueError(
                f"endpoints plane is degenerate: {name}'s weights equal the initial weights "
                "(it has not moved), so they give no direction"
            )
    e1 = u / u.norm()
    e2 = w - (w @ e1) * e1
    e2 = e2 - (e2 @ e1) * e1
    if float(e2.norm()) <= DEGENERATE * float(w.norm()):
        raise ValueError(
            f"endpoints plane is degenerate: {name_b}'s weights lie on the line through the "
            f"initial weights and {name_a}'s (θ_B − θ₀ is parallel to θ_A − θ₀)"
        )
    e2 = e2 / e2.norm()
    return Plane("endpoints", theta0.clone(), e1.float(), e2.float(), (name_a, name_b))


def pca_plane(initial: Tensor, snapshots: Mapping[str, Tensor]) -> Plane:
    """The plane through θ₀ along the top two principal directions of all snapshots.

    The snapshots of every optimizer are the rows θᵢ of one matrix, and the
    directions are the top two right singular vectors of M = [θᵢ − θ₀].
    Centred on θ₀, not on the snapshots' mean: every path starts at θ₀ and
    the plane's origin is θ₀, so the plane must contain it; among planes
    through θ₀ this one is closest to all snapshots in least squares (the
    mean-centred plane is closest among all planes, but generally misses θ₀,
    so the paths would not start at its origin). Li et al. centre their one
    path on its final point for the same reason; several paths share no final
    point, but they share θ₀.

    The singular vectors come from the eigendecomposition of the n×n Gram
    matrix M Mᵀ in float64 (n snapshots), vᵢ = Mᵀuᵢ/σᵢ: the same directions
    as ``torch.linalg.svd(M)`` without its two n×P factors in memory, exact
    and deterministic for given input. v₂ is then orthogonalised against v₁
    once more in float64. Signs are fixed so that each direction's entry of
    largest magnitude is positive (as scikit-learn's ``svd_flip`` does).

    Args:
        initial: The shared initial weights θ₀ (flat).
        snapshots: Each optimizer's snapshots by name: ``(n_i, P)`` (or one
            flat ``(P,)``) tensors, in any order of steps.

    Raises:
        ValueError: no snapshots, vectors of the wrong length, or snapshots
            spanning fewer than two directions from θ₀ (all at θ₀, or all on
            one line through it).
    """
    theta0 = _flat(initial, "initial weights")
    names = list(snapshots)
    rows = [_rows(snapshots[name], f"{name}'s snapshots", theta0) for name in names]
    count = sum(r.shape[0] for r in rows)
    if count < 2:
        raise ValueError(f"pca plane: needs at least two snapshots in all, got {count}")
    matrix = torch.cat(rows)
    origin64 = theta0.double()
    gram = torch.zeros(count, count, dtype=torch.float64, device=theta0.device)
    for start in range(0, matrix.shape[1], COLUMNS):
        block = matrix[:, start : start + COLUMNS].double() - origin64[start : start + COLUMNS]
        gram += block @ block.T
    values, vectors = torch.linalg.eigh(gram)  # ascending
    total = float(values.clamp_min(0).sum())
    top, second = float(values[-1]), float(values[-2])
    if total == 0:
        raise ValueError("pca plane is degenerate: every snapshot equals the initial weights")
    if second <= DEGENERATE**2 * top:
        raise ValueError(
            "pca plane is degenerate: the snapshots span fewer than two directions "
            "(they lie on one line through the initial weights)"
        )
    left = vectors[:, [-1, -2]]  # (n, 2)
    directions = torch.empty(2, matrix.shape[1], dtype=torch.float64, device=theta0.device)
    for start in range(0, matrix.shape[1], COLUMNS):
        block = matrix[:, start : start + COLUMNS].double() - origin64[start : start + COLUMNS]
        directions[:, start : start + COLUMNS] = left.T @ block
    v1 = directions[0] / directions[0].norm()
    v2 = directions[1] - (directions[1] @ v1) * v1
    v2 = v2 / v2.norm()
    e1, e2 = (_positive_peak(v).float() for v in (v1, v2))
    return Plane(
        "pca", theta0.clone(), e1, e2, tuple(names), explained=(top / total, second / total)
    )


def random_plane(model: nn.Module, weights: Tensor, seed: int, optimizer: str) -> Plane:
    """Two filter-normalised random directions around one optimizer's weights.

    Each direction is drawn from a standard normal (the first P draws of a
    CPU generator seeded with ``seed`` for d₁, the next P for d₂, so a seed
    gives the same plane on any device), then rescaled filter by filter
    (Li et al. 2018, §4):

    .. math::

        d_{i,j} \\leftarrow \\frac{d_{i,j}}{\\lVert d_{i,j} \\rVert}\\,
        \\lVert \\theta_{i,j} \\rVert,

    where j runs over the filters of parameter i: the rows along its first
    dimension (a convolution's output channels, a linear layer's output
    units). 1-D parameters (biases, normalisation scales) get direction 0, as
    in the paper. The origin is ``weights``; coordinates are multiples of
    d₁, d₂ (see the module docstring).

    Args:
        model: The model the weights belong to (for its parameters' shapes).
        weights: The optimizer's weights (flat), the plane's origin.
        seed: Seed of the directions, an integer in [0, 2**64).
        optimizer: The optimizer's name.

    Raises:
        ValueError: a bad seed, weights of the wrong length, or weights with
            no filter of nonzero norm (so both directions would be zero).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ValueError(f"seed: must be an integer in [0, 2**64), got {seed!r}")
    shapes = [tuple(p.shape) for p in model.parameters()]
    theta = _flat(weights, f"{optimizer}'s weights")
    if theta.numel() != sum(math.prod(s) for s in shapes):
        raise ValueError(
            f"random plane: {optimizer}'s weights have {theta.numel()} entries, the model "
            f"{sum(math.prod(s) for s in shapes)} parameters"
        )
    generator = torch.Generator(device="cpu").manual_seed(seed)
    d1, d2 = (filter_normalised(theta, shapes, generator) for _ in range(2))
    if not bool(d1.any()):
        raise ValueError(
            f"random plane is degenerate: {optimizer}'s weights have no filter of nonzero "
            "norm, so filter-normalised directions are zero"
        )
    return Plane("random", theta.clone(), d1, d2, (optimizer,), seed=seed)


def filter_normalised(
    weights: Tensor, shapes: Sequence[tuple[int, ...]], generator: torch.Generator
) -> Tensor:
    """One random direction, filter-normalised to ``weights`` (see `random_plane`).

    Args:
        weights: Flat float32 weights whose parameters have ``shapes``, in order.
        shapes: Each parameter's shape.
        generator: A CPU generator: ``weights.numel()`` normal draws are taken.

    Returns:
        A float32 vector like ``weights``.
    """
    draws = torch.randn(weights.numel(), generator=generator, dtype=torch.float64)
    draws = draws.to(weights.device)
    direction = torch.zeros_like(weights)
    offset = 0
    for shape in shapes:
        size = math.prod(shape)
        if len(shape) >= 2:
            w = weights[offset : offset + size].double().view(shape[0], -1)
            d = draws[offset : offset + size].view(shape[0], -1)
            # A filter of zero weights gets a zero direction (0 / ‖d‖), never 0/0.
            scaled = d * (w.norm(dim=1, keepdim=True) / d.norm(dim=1, keepdim=True))
            direction[offset : offset + size] = scaled.reshape(-1).float()
        offset += size
    return direction


def project(plane: Plane, theta: Tensor) -> Projection:
    """The coordinates of weight vectors on a plane, and how far off it they lie.

    (a, b) minimise ‖θ − origin − a·e₁ − b·e₂‖ (least squares, with the
    plane's 2×2 Gram matrix; on an orthonormal plane a = e₁·(θ − origin) and
    b = e₂·(θ − origin)), computed in float64, `ROWS` vectors at a time.

    Weights are float32, so even a θ built on the plane (`point`) lies off it
    by its rounding, about 3e-8·‖θ‖: a relative residual below 1e-6 once θ is
    more than about 0.03·‖θ‖ from the origin, larger closer to it, and 0 at
    the origin itself.

    Args:
        plane: The plane.
        theta: One flat weight vector ``(P,)`` or a stack of them ``(K, P)``.

    Returns:
        a, b and the relative residual, float64, of shape ``()`` or ``(K,)``
        (on the plane's device). Non-finite weights give NaN.
    """
    single = isinstance(theta, Tensor) and theta.dim() == 1
    rows = _rows(theta, "theta", plane.origin)
    device = plane.origin.device
    if rows.shape[0] == 0:
        empty = torch.empty(0, dtype=torch.float64, device=device)
        return Projection(empty, empty, empty)
    basis = torch.stack([plane.e1, plane.e2]).to(torch.float64)
    inverse = torch.linalg.inv(plane.gram)
    origin = plane.origin.double()
    coords, residuals = [], []
    for start in range(0, rows.shape[0], ROWS):
        v = rows[start : start + ROWS].to(device=device, dtype=torch.float64) - origin
        ab = (v @ basis.T) @ inverse  # the Gram matrix is symmetric
        off = (v - ab @ basis).norm(dim=1)
        size = v.norm(dim=1)
        coords.append(ab)
        residuals.append(torch.where(size > 0, off / size.clamp_min(1e-300), off))
    ab = torch.cat(coords)
    residual = torch.cat(residuals)
    if single:
        return Projection(ab[0, 0], ab[0, 1], residual[0])
    return Projection(ab[:, 0], ab[:, 1], residual)


def point(plane: Plane, a: float | Tensor, b: float | Tensor) -> Tensor:
    """The weights at coordinates (a, b): ``origin + a·e1 + b·e2``, the inverse of `project`.

    Computed in float64 and rounded once to float32.

    Args:
        plane: The plane.
        a: A coordinate along e₁, or a 1-D tensor (or sequence) of them.
        b: The matching coordinate(s) along e₂, of the same shape.

    Returns:
        float32 ``(P,)`` for scalar coordinates, ``(K, P)`` for K of them.

    Raises:
        ValueError: a and b of different shapes, or of more than one dimension.
    """
    device = plane.origin.device
    ta = torch.as_tensor(a, dtype=torch.float64, device=device)
    tb = torch.as_tensor(b, dtype=torch.float64, device=device)
    if ta.shape != tb.shape or ta.dim() > 1:
        raise ValueError(
            f"a, b: must be two numbers or two 1-D sequences of one length, got shapes "
            f"{tuple(ta.shape)} and {tuple(tb.shape)}"
        )
    theta = (
        plane.origin.double()
        + ta[..., None] * plane.e1.double()
        + tb[..., None] * plane.e2.double()
    )
    return theta.float()


def fit_ranges(
    a: Sequence[float] | Tensor, b: Sequence[float] | Tensor, margin: float = MARGIN
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Grid ranges that show the origin and every given point, with a margin.

    Each range spans the points' coordinates and 0 (the plane's origin, where
    every path of an ``endpoints`` or ``pca`` plane starts), widened by
    ``margin`` times its span on each side. A range that would have no width
    (every point at one coordinate) takes the other axis's span, or 1 when
    both have none, centred on that coordinate. Non-finite coordinates (the
    weights of a run that diverged) are left out.

    Args:
        a: Coordinates along e₁ (e.g. every path's `project` ``a``).
        b: The matching coordinates along e₂.
        margin: The share of the span added on each side, in [0, 10].

    Returns:
        ``((a_low, a_high), (b_low, b_high))``, each with ``low < high``.

    Raises:
        ValueError: a bad margin, or a and b of different lengths.
    """
    if not (isinstance(margin, int | float) and math.isfinite(margin) and 0 <= margin <= 10):
        raise ValueError(f"margin: must be a number in [0, 10], got {margin!r}")
    ta = torch.as_tensor(a, dtype=torch.float64).reshape(-1).cpu()
    tb = torch.as_tensor(b, dtype=torch.float64).reshape(-1).cpu()
    if ta.shape != tb.shape:
        raise ValueError(f"a, b: must have one length, got {ta.numel()} and {tb.numel()}")
    finite = torch.isfinite(ta) & torch.isfinite(tb)
    zero = torch.zeros(1, dtype=torch.float64)
    ta, tb = torch.cat([zero, ta[finite]]), torch.cat([zero, tb[finite]])
    bounds = [(float(t.min()), float(t.max())) for t in (ta, tb)]
    spans = [high - low for low, high in bounds]
    ranges = []
    for (low, high), span, other in zip(bounds, spans, spans[::-1], strict=True):
        if span == 0:
            span = other if other > 0 else 1.0
            low, high = low - span / 2, high + span / 2
        ranges.append((low - margin * span, high + margin * span))
    return ranges[0], ranges[1]


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def _flat(value: object, what: str, like: Tensor | None = None) -> Tensor:
    """``value`` as a flat float32 vector (checked against ``like``'s length)."""
    if not isinstance(value, Tensor) or not value.is_floating_point() or value.dim() != 1:
        raise ValueError(f"{what}: must be a flat float tensor, got {_describe(value)}")
    if value.numel() == 0:
        raise ValueError(f"{what}: is empty")
    if like is not None and value.numel() != like.numel():
        raise ValueError(f"{what}: have {value.numel()} entries, expected {like.numel()}")
    if like is not None:
        value = value.to(like.device)
    return value.detach().to(torch.float32)


def _rows(value: object, what: str, like: Tensor) -> Tensor:
    """``value`` as ``(K, P)`` rows of ``like``'s length (a flat vector is one row)."""
    if not isinstance(value, Tensor) or not value.is_floating_point() or value.dim() not in (1, 2):
        raise ValueError(f"{what}: must be a (P,) or (K, P) float tensor, got {_describe(value)}")
    rows = value.detach().reshape(-1, value.shape[-1]) if value.dim() == 1 else value.detach()
    if rows.shape[1] != like.numel():
        raise ValueError(f"{what}: have {rows.shape[1]} entries per row, expected {like.numel()}")
    return rows.to(like.device)


def _positive_peak(direction: Tensor) -> Tensor:
    """``direction`` or its negative, whichever has its entry of largest magnitude positive
    (the first such entry, where several tie)."""
    peak = direction[int(direction.abs().argmax())]
    return -direction if float(peak) < 0 else direction
