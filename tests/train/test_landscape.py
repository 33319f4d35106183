"""Loss landscapes of SeedNet: the vmapped evaluation equals one forward per weight vector,
a grid's losses at the plane's defining points equal a plain forward with those weights,
coarse-to-fine passes share their ranges, lines run from end to end, and bad input is
refused with a message naming it."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optlab.train import landscape
from optlab.train.landscape import (
    ACTIVATION_COPIES,
    CHUNK_BYTES,
    COARSE_RESOLUTION,
    MAX_RESOLUTION,
    POINTS_PER_CHUNK,
    Evaluation,
    activation_bytes,
    batched_losses,
    chunk_sizes,
    grid_losses,
    grid_passes,
    grid_values,
    line_losses,
    loop_losses,
)
from optlab.train.models import build_model
from optlab.train.planes import endpoints_plane, flat_parameters, project

N_IMAGES = 6


@pytest.fixture(scope="module")
def seednet():
    return build_model("seednet", 0)


@pytest.fixture(scope="module")
def batch():
    """A handful of random 32×32×3 images (standard normal: the scale of normalised ones)."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(N_IMAGES, 3, 32, 32, generator=g), torch.randint(0, 10, (N_IMAGES,))


@pytest.fixture(scope="module")
def runs(seednet):
    """θ₀ and two weight vectors far enough from it to change the loss visibly."""
    theta0 = flat_parameters(seednet)
    g = torch.Generator().manual_seed(3)
    theta_a = theta0 + 0.05 * torch.randn(theta0.numel(), generator=g)
    theta_b = theta0 + 0.08 * torch.randn(theta0.numel(), generator=g)
    return theta0, theta_a, theta_b


def plain_loss(model: nn.Module, theta: torch.Tensor, images, labels) -> float:
    """The loss a user would compute: a fresh copy with these weights, one plain forward."""
    work = copy.deepcopy(model).eval()
    with torch.no_grad():
        offset = 0
        for p in work.parameters():
            p.copy_(theta[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
        return F.cross_entropy(work(images), labels).item()


METHODS = ("vmap", "sequential")


@pytest.mark.parametrize("method", METHODS)
def test_batched_losses_equal_the_one_at_a_time_loop(seednet, batch, runs, method):
    images, labels = batch
    g = torch.Generator().manual_seed(9)
    theta0 = runs[0]
    thetas = torch.stack([*runs, *(theta0 + 0.1 * torch.randn(4, theta0.numel(), generator=g))])
    batched = batched_losses(seednet, thetas, images, labels, Evaluation(method))
    loop = loop_losses(seednet, thetas, images, labels)
    assert batched.dtype == torch.float64 and batched.shape == (7,)
    torch.testing.assert_close(batched, loop, rtol=1e-5, atol=0)
    assert float(batched.max() - batched.min()) > 1e-2  # the points do differ


def test_batched_losses_are_the_same_whatever_the_chunks(seednet, batch, runs):
    images, labels = batch
    thetas = torch.stack(runs)
    per_image = activation_bytes(seednet, images)
    # Room for two weight vectors on two images per call: the 3 vectors and 6 images
    # need several chunks of each.
    budget = 2 * (4 * runs[0].numel() + 2 * ACTIVATION_COPIES * per_image)
    chunks = chunk_sizes(runs[0].numel(), per_image, 3, N_IMAGES, budget)
    assert (chunks.points, chunks.images) == (2, 2)
    whole = batched_losses(seednet, thetas, images, labels, Evaluation("vmap"))
    for method, calls in (("vmap", [(2, 3), (3, 3)]), ("sequential", [(1, 3), (2, 3), (3, 3)])):
        done: list[tuple[int, int]] = []
        small = batched_losses(
            seednet,
            thetas,
            images,
            labels,
            Evaluation(method, chunk_bytes=budget),
            progress=lambda i, n, done=done: done.append((i, n)),
        )
        assert done == calls
        torch.testing.assert_close(small, whole, rtol=1e-5, atol=0)


def test_the_evaluation_settings_are_checked_and_auto_is_per_device():
    assert Evaluation().resolved(torch.device("cpu")) == "sequential"
    assert Evaluation().resolved(torch.device("cuda")) == "vmap"
    assert Evaluation("vmap").resolved(torch.device("cpu")) == "vmap"
    with pytest.raises(ValueError, match="method: must be one of auto, vmap, sequential"):
        Evaluation("parallel")
    with pytest.raises(
        ValueError, match=f"chunk_bytes: must be a whole number of bytes in \\[1, {CHUNK_BYTES}\\]"
    ):
        Evaluation(chunk_bytes=CHUNK_BYTES + 1)


def test_chunks_stay_within_the_budget():
    n_params, per_image = 145_578, 163_840
    for budget in (8 << 20, 64 << 20, 256 << 20, 1 << 30):
        chunks = chunk_sizes(n_params, per_image, 625, 1024, budget)
        assert 1 <= chunks.points <= POINTS_PER_CHUNK and 1 <= chunks.images <= 1024
        assert chunks.bytes <= budget
        # The images fill the budget: one more would not fit.
        more = chunks.points * (4 * n_params + (chunks.images + 1) * ACTIVATION_COPIES * per_image)
        assert chunks.images == 1024 or more > budget
    assert chunk_sizes(n_params, per_image, 3, 5, 1 << 30).points == 3
    one = chunk_sizes(n_params, per_image, 625, 1024, CHUNK_BYTES, max_points=1, max_images=128)
    assert (one.points, one.images) == (1, 128)
    tight = chunk_sizes(n_params, per_image, 625, 1024, 1)  # never less than one of each
    assert (tight.points, tight.images) == (1, 1)


class TinyBatchNormNet(nn.Module):
    """A conv, a batch norm with non-trivial running statistics, a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.conv(x)).relu().mean(dim=(2, 3)))


@pytest.mark.parametrize("method", METHODS)
def test_buffers_are_used_unbatched_and_the_model_is_left_as_it_was(batch, method):
    images, labels = batch
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = TinyBatchNormNet()
    model.norm.running_mean.copy_(torch.tensor([0.3, -0.2, 0.1, 0.5]))
    model.norm.running_var.copy_(torch.tensor([2.0, 0.5, 1.5, 3.0]))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    theta = flat_parameters(model)
    noise = torch.randn(theta.numel(), generator=torch.Generator().manual_seed(1))
    thetas = torch.stack([theta, theta + 0.3 * noise, theta * 0.5])
    batched = batched_losses(model, thetas, images, labels, Evaluation(method))
    loop = loop_losses(model, thetas, images, labels)
    torch.testing.assert_close(batched, loop, rtol=1e-5, atol=0)
    # Evaluated with the running statistics (eval mode), not the batch's.
    assert math.isclose(float(batched[0]), plain_loss(model, theta, images, labels), rel_tol=1e-5)
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_grid_losses_at_the_planes_points_equal_a_plain_forward(seednet, batch, runs):
    images, labels = batch
    theta0, theta_a, theta_b = runs
    plane = endpoints_plane(theta0, {"sgd": theta_a, "adam": theta_b})
    a, b, _ = project(plane, torch.stack(runs))
    a_a, a_b, b_b = float(a[1]), float(a[2]), float(b[2])
    # A 2×3 grid would do; 3×3 with θ₀ at loss[0][0] and θ_A at loss[0][2] ([b][a]).
    grid = grid_losses(seednet, plane, (0.0, a_a), (0.0, 1.0), 3, images, labels)
    assert grid.loss.shape == (3, 3) and grid.images == N_IMAGES and grid.resolution == 3
    assert grid.a.tolist() == [0.0, a_a / 2, a_a] and grid.b.tolist() == [0.0, 0.5, 1.0]
    direct = {
        name: plain_loss(seednet, theta, images, labels)
        for name, theta in (("0", theta0), ("A", theta_a), ("B", theta_b))
    }
    assert len({round(v, 4) for v in direct.values()}) == 3  # three different losses
    assert math.isclose(grid.loss[0, 0], direct["0"], rel_tol=1e-5)
    assert math.isclose(grid.loss[0, 2], direct["A"], rel_tol=1e-5)
    # θ_B is at the lower left corner of a grid whose ranges start at its coordinates.
    corner = grid_losses(seednet, plane, (a_b, a_b + 1), (b_b, b_b + 2), 2, images, labels)
    assert math.isclose(corner.loss[0, 0], direct["B"], rel_tol=1e-5)


def test_coarse_to_fine_yields_seven_by_seven_then_the_full_grid(seednet, batch, runs):
    images, labels = batch
    plane = endpoints_plane(runs[0], {"sgd": runs[1], "adam": runs[2]})
    passes = grid_passes(seednet, plane, (-1.0, 5.0), (-2.0, 4.0), 13, images, labels)
    coarse = next(passes)
    assert coarse.loss.shape == (COARSE_RESOLUTION, COARSE_RESOLUTION)
    fine = next(passes)
    assert fine.loss.shape == (13, 13)
    assert next(passes, None) is None
    for grid in (coarse, fine):
        assert (grid.a[0], grid.a[-1], grid.b[0], grid.b[-1]) == (-1.0, 5.0, -2.0, 4.0)
    # Every other point of the 13×13 grid is a point of the 7×7 one, bit for bit.
    assert (fine.a[::2] == coarse.a).all() and (fine.b[::2] == coarse.b).all()
    torch.testing.assert_close(
        torch.from_numpy(fine.loss[::2, ::2]), torch.from_numpy(coarse.loss), rtol=1e-5, atol=0
    )
    small = list(grid_passes(seednet, plane, (-1.0, 5.0), (-2.0, 4.0), 5, images, labels))
    assert [g.resolution for g in small] == [5]  # no coarser pass than the grid itself


def test_grid_values_are_exact_subsets_of_finer_grids():
    assert grid_values(-1.0, 5.0, 7).tolist() == [-1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    fine = grid_values(-0.37, 2.9, 25)
    assert (fine[::4] == grid_values(-0.37, 2.9, 7)).all() and fine[-1] == 2.9


def test_line_losses_run_from_one_end_to_the_other(seednet, batch, runs):
    images, labels = batch
    theta0, theta_a, _ = runs
    ts = [0.0, 0.25, 0.5, 1.0, 1.5]
    line = line_losses(seednet, theta0, theta_a, ts, images, labels)
    assert line.shape == (5,)
    assert math.isclose(float(line[0]), plain_loss(seednet, theta0, images, labels), rel_tol=1e-5)
    assert math.isclose(float(line[3]), plain_loss(seednet, theta_a, images, labels), rel_tol=1e-5)
    between = torch.stack([theta0 + t * (theta_a - theta0) for t in ts])
    torch.testing.assert_close(
        line, loop_losses(seednet, between, images, labels), rtol=1e-5, atol=0
    )


def test_bad_input_is_refused_naming_it(seednet, batch, runs, monkeypatch):
    images, labels = batch
    theta0, theta_a, theta_b = runs
    plane = endpoints_plane(theta0, {"sgd": theta_a, "adam": theta_b})
    thetas = torch.stack(runs)
    cases = [
        (lambda: batched_losses(seednet, thetas[:, :10], images, labels), "thetas: must be (K,"),
        (
            lambda: batched_losses(seednet, thetas, (images * 50).to(torch.uint8), labels),
            "images: must be a float (N, C, H, W) batch normalised as in training",
        ),
        (lambda: batched_losses(seednet, thetas, images, labels[:3]), "labels: must be int64"),
        (lambda: grid_losses(seednet, plane, (0, 1), (0, 1), 1, images, labels), "resolution"),
        (
            lambda: grid_losses(seednet, plane, (0, 1), (0, 1), MAX_RESOLUTION + 1, images, labels),
            f"resolution: must be between 2 and {MAX_RESOLUTION}",
        ),
        (lambda: grid_losses(seednet, plane, (1, 1), (0, 1), 3, images, labels), "a_range"),
        (lambda: grid_losses(seednet, plane, (0, 1), (0, math.inf), 3, images, labels), "b_range"),
        (
            lambda: grid_losses(TinyBatchNormNet(), plane, (0, 1), (0, 1), 3, images, labels),
            "plane: has 145578 entries, the model 170 parameters",
        ),
        (
            lambda: next(grid_passes(seednet, plane, (0, 1), (0, 1), 9, images, labels, coarse=1)),
            "coarse: must be an integer >= 2",
        ),
        (
            lambda: line_losses(seednet, theta0, theta_a, [0.0, math.nan], images, labels),
            "ts: must be 1 to",
        ),
        (lambda: line_losses(seednet, theta0, theta_a[:5], [0.5], images, labels), "theta_to"),
    ]
    for call, fragment in cases:
        with pytest.raises(ValueError) as info:
            call()
        assert fragment in str(info.value)
    monkeypatch.setattr(landscape, "MAX_IMAGES", N_IMAGES - 1)
    with pytest.raises(ValueError, match=f"images: must be 1 to {N_IMAGES - 1} images, got 6"):
        batched_losses(seednet, thetas, images, labels)
