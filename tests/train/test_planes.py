"""Planes through SeedNet's parameter space: the points that define them lie on them,
coordinates and `point` undo each other, PCA finds a known plane, random directions are
filter-normalised and seeded, and degenerate input is refused with a clear message."""

from __future__ import annotations

import math

import pytest
import torch

from optlab.train.models import build_model
from optlab.train.planes import (
    Plane,
    endpoints_plane,
    fit_ranges,
    flat_parameters,
    pca_plane,
    point,
    project,
    random_plane,
)


@pytest.fixture(scope="module")
def seednet():
    return build_model("seednet", 0)


@pytest.fixture(scope="module")
def runs(seednet):
    """θ₀ (SeedNet's initial weights) and two different 'trained' weight vectors."""
    theta0 = flat_parameters(seednet)
    g = torch.Generator().manual_seed(7)
    theta_a = theta0 + 0.03 * torch.randn(theta0.numel(), generator=g)
    theta_b = theta0 + 0.05 * torch.randn(theta0.numel(), generator=g) + 0.4 * (theta_a - theta0)
    return theta0, theta_a, theta_b


def _with(model: torch.nn.Module, theta: torch.Tensor) -> list[torch.Tensor]:
    """The model's parameters' shapes filled with ``theta``'s values."""
    out, offset = [], 0
    for p in model.parameters():
        out.append(theta[offset : offset + p.numel()].view(p.shape))
        offset += p.numel()
    return out


def _orthonormal(plane: Plane) -> None:
    e = torch.stack([plane.e1, plane.e2]).double()
    torch.testing.assert_close(e @ e.T, torch.eye(2, dtype=torch.float64), atol=1e-6, rtol=0)


def test_flat_parameters_follow_model_parameters_order(seednet):
    theta = flat_parameters(seednet)
    assert theta.dtype == torch.float32 and theta.shape == (145_578,)
    first = next(seednet.parameters())
    assert torch.equal(theta[: first.numel()], first.detach().reshape(-1))
    assert theta.data_ptr() != first.data_ptr()  # a copy


def test_endpoints_plane_holds_its_three_points_exactly(runs):
    theta0, theta_a, theta_b = runs
    plane = endpoints_plane(theta0, {"sgd": theta_a, "adam": theta_b, "rmsprop": theta0 + 1})
    assert plane.kind == "endpoints" and plane.optimizers == ("sgd", "adam")
    _orthonormal(plane)
    a, b, residual = project(plane, torch.stack(runs))
    assert float(residual.max()) <= 1e-6
    assert float(residual[0]) == 0.0 and float(a[0]) == 0.0 and float(b[0]) == 0.0
    # θ_A is on e₁ at its distance; θ_B's coordinates are its components along e₁, e₂.
    u, w = (theta_a - theta0).double(), (theta_b - theta0).double()
    assert math.isclose(float(a[1]), float(u.norm()), rel_tol=1e-6)
    assert abs(float(b[1])) <= 1e-6 * float(u.norm())
    along = float(w @ u / u.norm())
    assert math.isclose(float(a[2]), along, rel_tol=1e-6)
    assert math.isclose(float(b[2]), math.sqrt(float(w @ w) - along**2), rel_tol=1e-6)
    back = point(plane, a, b)
    torch.testing.assert_close(back, torch.stack(runs), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("weights", "fragment"),
    [
        ({}, "needs the weights of two optimizers, got 0"),
        ({"sgd": "A"}, "needs the weights of two optimizers, got 1 (sgd)"),
        ({"sgd": "0", "adam": "B"}, "sgd's weights equal the initial weights"),
        ({"sgd": "A", "adam": "0"}, "adam's weights equal the initial weights"),
        ({"sgd": "A", "adam": "2.5A"}, "parallel"),
        ({"sgd": "A", "adam": "-A"}, "adam's weights lie on the line"),
    ],
)
def test_a_degenerate_endpoints_plane_is_refused_with_the_reason(runs, weights, fragment):
    theta0, theta_a, theta_b = runs
    made = {
        "A": theta_a,
        "B": theta_b,
        "0": theta0.clone(),
        "2.5A": theta0 + 2.5 * (theta_a - theta0),
        "-A": theta0 - (theta_a - theta0),
    }
    with pytest.raises(ValueError, match="endpoints plane") as info:
        endpoints_plane(theta0, {name: made[key] for name, key in weights.items()})
    assert fragment in str(info.value)


def test_endpoints_plane_refuses_weights_of_another_model(runs):
    theta0, theta_a, _ = runs
    with pytest.raises(ValueError, match="adam's weights: have 10 entries, expected 145578"):
        endpoints_plane(theta0, {"sgd": theta_a, "adam": torch.zeros(10)})


def _known_plane(n_params: int = 400, seed: int = 3):
    """θ₀ and two orthonormal directions u, v (float64), and snapshots on their plane."""
    g = torch.Generator().manual_seed(seed)
    # Weights the size of a CNN's, steps of at least 0.5 (float32 rounding of θ is
    # then far below 1e-6 of the step).
    theta0 = 0.05 * torch.randn(n_params, generator=g, dtype=torch.float64)
    basis, _ = torch.linalg.qr(torch.randn(n_params, 2, generator=g, dtype=torch.float64))
    u, v = basis.T
    size = 0.5 + 2.5 * torch.rand(2, 6, 2, generator=g, dtype=torch.float64)
    signs = torch.randint(0, 2, (2, 6, 2), generator=g) * 2 - 1
    coeffs = size * signs * torch.tensor([3.0, 1.0], dtype=torch.float64)
    snaps = {
        name: (theta0 + c[:, :1] * u + c[:, 1:] * v).float()
        for name, c in zip(("sgd", "adam"), coeffs, strict=True)
    }
    return theta0.float(), u, v, snaps


def test_pca_plane_recovers_a_known_plane_through_theta0():
    theta0, u, v, snaps = _known_plane()
    plane = pca_plane(theta0, snaps)
    assert plane.kind == "pca" and plane.optimizers == ("sgd", "adam")
    assert torch.equal(plane.origin, theta0)
    _orthonormal(plane)
    span = torch.stack([u, v])  # orthonormal rows
    for e in (plane.e1.double(), plane.e2.double()):
        assert math.isclose(float((span @ e).norm()), 1.0, abs_tol=1e-6)  # e lies in span(u, v)
    rows = torch.cat(list(snaps.values()))
    assert float(project(plane, rows).residual.max()) <= 1e-6
    assert plane.explained is not None and math.isclose(sum(plane.explained), 1.0, abs_tol=1e-9)
    assert plane.explained[0] >= plane.explained[1] > 0


def test_pca_plane_directions_are_torch_svds_with_a_fixed_sign():
    g = torch.Generator().manual_seed(11)
    theta0 = torch.randn(50, generator=g)
    snaps = {"sgd": theta0 + torch.randn(4, 50, generator=g), "adam": theta0 + torch.randn(3, 50)}
    plane = pca_plane(theta0, snaps)
    matrix = torch.cat(list(snaps.values())).double() - theta0.double()
    _, sigma, vh = torch.linalg.svd(matrix, full_matrices=False)
    for e, v in ((plane.e1, vh[0]), (plane.e2, vh[1])):
        assert math.isclose(abs(float(e.double() @ v)), 1.0, abs_tol=1e-6)
        assert float(e[e.abs().argmax()]) > 0  # the sign rule
    total = float((sigma**2).sum())
    shares = (float(sigma[0] ** 2) / total, float(sigma[1] ** 2) / total)
    assert plane.explained == pytest.approx(shares)
    again = pca_plane(theta0, snaps)
    assert torch.equal(again.e1, plane.e1) and torch.equal(again.e2, plane.e2)


def test_pca_plane_is_centred_on_theta0_not_on_the_mean():
    # Snapshots on a line that misses θ₀: centred on their mean they would span one
    # direction; the plane through θ₀ needs two, and holds them exactly.
    theta0 = torch.zeros(5)
    e = torch.eye(5)
    snaps = {"sgd": torch.stack([e[0] + t * e[1] for t in (-1.0, 0.0, 1.0, 2.0)])}
    plane = pca_plane(theta0, snaps)
    assert float(project(plane, snaps["sgd"]).residual.max()) <= 1e-7
    assert float(project(plane, theta0).residual) == 0.0


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("one", "needs at least two snapshots in all, got 1"),
        ("still", "every snapshot equals the initial weights"),
        ("line", "span fewer than two directions"),
    ],
)
def test_a_degenerate_pca_plane_is_refused_with_the_reason(case, fragment):
    theta0 = torch.linspace(-1, 1, 30)
    direction = torch.linspace(0.5, 2, 30)
    snaps = {
        "one": {"sgd": theta0 + direction},
        "still": {"sgd": theta0.repeat(3, 1), "adam": theta0.clone()},
        "line": {
            "sgd": torch.stack([theta0 + t * direction for t in (0.5, 1.0, 3.0)]),
            "adam": theta0 - 2 * direction,
        },
    }[case]
    with pytest.raises(ValueError, match="pca plane") as info:
        pca_plane(theta0, snaps)
    assert fragment in str(info.value)


def test_random_plane_is_filter_normalised_and_zero_on_biases(seednet, runs):
    _, theta_a, _ = runs
    plane = random_plane(seednet, theta_a, seed=5, optimizer="sgd")
    assert plane.kind == "random" and plane.optimizers == ("sgd",) and plane.seed == 5
    assert torch.equal(plane.origin, theta_a)
    checked = 0
    for direction in (plane.e1, plane.e2):
        offset = 0
        for p in seednet.parameters():
            size = p.numel()
            d = direction[offset : offset + size].view(p.shape[0], -1).double()
            w = theta_a[offset : offset + size].view(p.shape[0], -1).double()
            if p.dim() == 1:
                assert not d.any()
            else:
                torch.testing.assert_close(d.norm(dim=1), w.norm(dim=1), rtol=1e-6, atol=0)
                checked += p.shape[0]
            offset += size
    assert checked == 2 * (32 + 32 + 64 + 64 + 10)  # every filter of both directions
    assert not torch.equal(plane.e1, plane.e2)


def test_random_plane_is_the_same_for_the_same_seed_only(seednet, runs):
    _, theta_a, _ = runs
    one = random_plane(seednet, theta_a, seed=5, optimizer="sgd")
    two = random_plane(seednet, theta_a, seed=5, optimizer="sgd")
    other = random_plane(seednet, theta_a, seed=6, optimizer="sgd")
    assert torch.equal(one.e1, two.e1) and torch.equal(one.e2, two.e2)
    assert not torch.equal(one.e1, other.e1)
    before = torch.random.get_rng_state()
    random_plane(seednet, theta_a, seed=5, optimizer="sgd")
    assert torch.equal(torch.random.get_rng_state(), before)  # the global RNG is left alone


def test_random_plane_coordinates_are_multiples_of_its_directions(seednet, runs):
    _, theta_a, _ = runs
    plane = random_plane(seednet, theta_a, seed=1, optimizer="sgd")
    a = torch.tensor([0.0, 1.0, -0.3, 0.25])
    b = torch.tensor([0.0, 0.0, 0.7, -1.5])
    thetas = point(plane, a, b)
    # a = 1 moves every filter by its own norm: the step's length is the weights' norm
    # without the biases (whose direction is 0).
    weight_norm = math.sqrt(
        sum(
            float(p.detach().double().square().sum())
            for p in _with(seednet, theta_a)
            if p.dim() > 1
        )
    )
    assert math.isclose(float((thetas[1] - theta_a).double().norm()), weight_norm, rel_tol=1e-5)
    got = project(plane, thetas)
    torch.testing.assert_close(got.a, a.double(), atol=1e-6, rtol=0)
    torch.testing.assert_close(got.b, b.double(), atol=1e-6, rtol=0)
    assert float(got.residual.max()) <= 1e-6


def test_random_plane_refuses_a_bad_seed_or_weights(seednet, runs):
    _, theta_a, _ = runs
    with pytest.raises(ValueError, match=r"seed: must be an integer in \[0, 2\*\*64\)"):
        random_plane(seednet, theta_a, seed=-1, optimizer="sgd")
    with pytest.raises(ValueError, match="sgd's weights have 12 entries, the model 145578"):
        random_plane(seednet, torch.ones(12), seed=0, optimizer="sgd")
    with pytest.raises(ValueError, match="no filter of nonzero norm"):
        random_plane(seednet, torch.zeros(theta_a.numel()), seed=0, optimizer="sgd")


def test_residual_is_zero_on_the_plane_and_one_orthogonal_to_it(runs):
    theta0, theta_a, theta_b = runs
    plane = endpoints_plane(theta0, {"sgd": theta_a, "adam": theta_b})
    # float32 weights: a point within ~0.3 of θ₀ (‖θ₀‖ ≈ 8.2) carries a relative
    # rounding residual above 1e-6 (see project's docstring).
    a = torch.tensor([0.0, 1.5, -2.0, 0.5, 40.0])
    b = torch.tensor([0.0, -0.5, 3.0, 0.0, -7.0])
    on = project(plane, point(plane, a, b))
    assert float(on.residual[0]) == 0.0  # exactly at θ₀
    assert float(on.residual.max()) <= 1e-6
    torch.testing.assert_close(on.a, a.double(), atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(on.b, b.double(), atol=1e-5, rtol=1e-6)
    # A step orthogonal to both directions is all residual.
    g = torch.Generator().manual_seed(2)
    r = torch.randn(theta0.numel(), generator=g, dtype=torch.float64)
    e = torch.stack([plane.e1, plane.e2]).double()
    r -= (r @ e.T) @ e
    off = project(plane, (theta0.double() + 1e-2 * r / r.norm()).float())
    assert math.isclose(float(off.residual), 1.0, abs_tol=1e-3)


def test_project_is_vectorised_row_by_row(runs):
    theta0, theta_a, theta_b = runs
    plane = endpoints_plane(theta0, {"sgd": theta_a, "adam": theta_b})
    g = torch.Generator().manual_seed(4)
    thetas = theta0 + 0.1 * torch.randn(40, theta0.numel(), generator=g)  # more than one chunk
    together = project(plane, thetas)
    for k in (0, 17, 39):
        alone = project(plane, thetas[k])
        assert alone.a.shape == () and alone.residual.shape == ()
        for x, y in zip(alone, together, strict=True):
            assert math.isclose(float(x), float(y[k]), rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"kind": "diagonal"}, "kind: must be one of endpoints, pca, random, got 'diagonal'"),
        ({"e1": "float64"}, "e1: must be a 1-D float32 tensor"),
        ({"e2": "short"}, "e2: must be a non-empty tensor like origin"),
        ({"e1": "nan"}, "e1: has non-finite entries"),
        ({"e2": "zero"}, "e2: is the zero vector"),
        ({"e2": "e1"}, "e1, e2: are parallel"),
        ({"e2": "scaled"}, "e1, e2: must be orthonormal on a plane of kind 'endpoints'"),
        ({"optimizers": ()}, "optimizers: must be non-empty names"),
        ({"explained": (0.9, 1.2)}, "explained: must be two shares in [0, 1]"),
        ({"seed": 1.5}, "seed: must be an integer or None"),
    ],
)
def test_a_plane_checks_its_fields(changes, fragment):
    e = torch.eye(4)
    fields = {"kind": "endpoints", "origin": torch.zeros(4), "e1": e[0], "e2": e[1]}
    fields["optimizers"] = ("sgd", "adam")
    made = {
        "float64": e[0].double(),
        "short": torch.ones(3),
        "nan": torch.tensor([math.nan, 0.0, 0.0, 0.0]),
        "zero": torch.zeros(4),
        "e1": e[0].clone(),
        "scaled": 2 * e[1],
    }
    for key, value in changes.items():
        fields[key] = made.get(value, value) if isinstance(value, str) and key != "kind" else value
    with pytest.raises(ValueError) as info:
        Plane(**fields)
    assert fragment in str(info.value)
    # The same scaled directions are fine on a random plane (their coordinates are multiples).
    assert not Plane("random", torch.zeros(4), e[0], 2 * e[1], ("sgd",)).orthonormal


def test_fit_ranges_show_every_point_and_the_origin_with_a_margin():
    (a0, a1), (b0, b1) = fit_ranges([1.0, 3.0, math.nan], [-2.0, 2.0, 5.0])
    assert (a0, a1) == pytest.approx((-0.45, 3.45))  # 0..3, 15% of 3 each side
    assert (b0, b1) == pytest.approx((-2.6, 2.6))  # -2..2; the NaN point is left out
    # Every point (and the origin) at a = 0: a takes b's span of 4, centred on 0.
    a_range, b_range = fit_ranges([0.0, 0.0], [1.0, 4.0])
    assert a_range == pytest.approx((-2.6, 2.6)) and b_range == pytest.approx((-0.6, 4.6))
    # Only the origin: a width of 1.
    a_range, b_range = fit_ranges([], [])
    assert a_range == pytest.approx((-0.65, 0.65)) and b_range == pytest.approx((-0.65, 0.65))
    with pytest.raises(ValueError, match="margin: must be a number in"):
        fit_ranges([1.0], [1.0], margin=-0.1)
    with pytest.raises(ValueError, match="a, b: must have one length"):
        fit_ranges([1.0], [1.0, 2.0])
