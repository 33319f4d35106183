"""The loss of a CNN at many weight vectors at once: landscape grids and lines.

The loss is always the mean cross-entropy of the model, in eval mode, on one
fixed evaluation batch (images normalised as in training, see
`optlab.train.data.normalise`), at weights given as flat float32 vectors
(`optlab.train.planes.flat_parameters`).

`batched_losses` evaluates it at K weight vectors, by one of two methods
(`Evaluation`), both running the model with ``torch.func.functional_call`` on
weights it is handed instead of its own (the model's buffers, such as batch
norm's running statistics, are shared, unbatched):

- ``vmap``: ``torch.func.vmap`` maps the call over a chunk of stacked weight
  vectors, so one call runs a chunk of weights on a chunk of images;
- ``sequential``: one weight vector per call, on channels-last images in chunks.

``auto`` (the default) is ``sequential`` on the CPU and ``vmap`` elsewhere. On
the CPU, batching over weights does not pay: a forward of a few hundred
images already keeps every core busy, and vmap's batching rules copy each
layer's activations to move the weights' batch into the images' and back
(``bench/landscape.py`` measured vmap at 0.8 times the plain loop's speed
on two cores), while the channels-last memory format makes SeedNet's
max-pooling about four times faster. On a GPU, where one small forward leaves most of
the device idle, one vmapped call per chunk is the point of batching (not
measured here: the benchmark machine has no GPU).

`loop_losses` is the plain reference: one weight vector at a time, loaded
into a copy of the model with ``vector_to_parameters``, all images in one
forward. A test checks that both methods agree with it to float32 precision.

Chunks (`chunk_sizes`) are bounded by a memory budget (``CAPS.landscape_chunk_mb``,
256 MiB by default): a call on g weight vectors and n images holds the g
weight vectors and, per (vector, image) pair, about `ACTIVATION_COPIES`
times the largest layer's input plus output for one image (measured once per
evaluation with forward hooks). A vmapped call takes up to
`POINTS_PER_CHUNK` weight vectors and as many images as then fit; a
sequential one takes one weight vector and at most `SEQUENTIAL_CALL_BYTES`
of activations (128 images for SeedNet), which keeps them in cache.

On a plane (`optlab.train.planes`): `grid_losses` evaluates a G×G grid over
[a0, a1]×[b0, b1], indexed ``[b][a]``; `grid_passes` yields a 7×7 grid first
(a picture soon: 49 points instead of G²) and then the full one; `line_losses` evaluates the
straight line between two weight vectors (Goodfellow, Vinyals, Saxe,
"Qualitatively characterizing neural network optimization problems", ICLR
2015). Weight vectors of a grid or a line are built chunk by chunk, never all
at once (a 25×25 grid of SeedNet's would take 364 MB).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap

from optlab.caps import CAPS
from optlab.train.planes import Plane, point

MAX_RESOLUTION = CAPS.landscape_resolution
MAX_IMAGES = CAPS.landscape_images
CHUNK_BYTES = CAPS.landscape_chunk_mb << 20
#: The first pass of `grid_passes`: 7×7 points.
COARSE_RESOLUTION = 7
#: The most weight vectors in one vmapped call.
POINTS_PER_CHUNK = 16
#: Activations of one sequential call: ``SEQUENTIAL_CALL_BYTES / activation_bytes`` images
#: (128 for SeedNet) keep a layer's input and output mostly in cache: on two cores,
#: 128 images per call ran SeedNet about 1.4 times as fast as 512.
SEQUENTIAL_CALL_BYTES = 20 << 20
#: Activation memory per (weight vector, image), in units of the largest layer's
#: input plus output: those two, and a margin for vmap, whose batching rules copy
#: activations to move the batch of weights into the batch of images and back.
ACTIVATION_COPIES = 3
#: How `batched_losses` runs the model (see the module docstring).
Method = Literal["auto", "vmap", "sequential"]
METHODS: tuple[Method, ...] = ("auto", "vmap", "sequential")

#: ``progress(points_done, points_total)``, called after every chunk.
Progress = Callable[[int, int], None]
#: ``weights(start, stop)``: the weight vectors ``start:stop`` as float32 ``(stop-start, P)``.
WeightSource = Callable[[int, int], Tensor]


@dataclass(frozen=True)
class Evaluation:
    """How losses are evaluated (the numbers do not depend on it beyond float32 rounding).

    Attributes:
        method: ``auto``, ``vmap`` or ``sequential`` (see the module docstring).
        chunk_bytes: Memory one call may use, at most ``CAPS.landscape_chunk_mb`` MiB.
    """

    method: Method = "auto"
    chunk_bytes: int = CHUNK_BYTES

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method: must be one of {', '.join(METHODS)}, got {self.method!r}")
        size = self.chunk_bytes
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= CHUNK_BYTES:
            raise ValueError(
                f"chunk_bytes: must be a whole number of bytes in [1, {CHUNK_BYTES}] "
                f"(CAPS.landscape_chunk_mb), got {size!r}"
            )

    def resolved(self, device: torch.device) -> Method:
        """``vmap`` or ``sequential``: what ``auto`` means on ``device``."""
        if self.method != "auto":
            return self.method
        return "sequential" if device.type == "cpu" else "vmap"


@dataclass(frozen=True)
class Chunks:
    """How a batched evaluation is cut up.

    Attributes:
        points: Weight vectors per call of the model.
        images: Images per call.
        bytes: The estimated memory of one call (weights and activations).
    """

    points: int
    images: int
    bytes: int


@dataclass(frozen=True, eq=False)
class LandscapeGrid:
    """The loss over a G×G grid of a plane.

    Attributes:
        a: The G coordinates along e₁, from a0 to a1, evenly spaced.
        b: The G coordinates along e₂, from b0 to b1.
        loss: float64 ``(G, G)``: ``loss[j, i]`` at ``(a[i], b[j])`` (rows are
            b, as a heatmap's z is). NaN or inf where the loss is.
        images: The number of evaluation images.
        seconds: Wall-clock time of the evaluation.
    """

    a: np.ndarray
    b: np.ndarray
    loss: np.ndarray
    images: int
    seconds: float

    @property
    def resolution(self) -> int:
        """G, the points per axis."""
        return len(self.a)


def activation_bytes(model: nn.Module, images: Tensor) -> int:
    """The largest input plus output of any leaf module for one image, in bytes.

    Runs the model once on the first image with forward hooks.
    """
    peak = 0

    def hook(module: nn.Module, args: tuple, output: object) -> None:
        nonlocal peak
        tensors = [t for t in (*args, output) if isinstance(t, Tensor)]
        peak = max(peak, sum(t.numel() * t.element_size() for t in tensors))

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.inference_mode():
            model(images[:1])
    finally:
        for handle in handles:
            handle.remove()
    return max(peak, images[:1].numel() * images.element_size())


def chunk_sizes(
    n_params: int,
    per_image_bytes: int,
    n_points: int,
    n_images: int,
    budget: int = CHUNK_BYTES,
    max_points: int = POINTS_PER_CHUNK,
    max_images: int | None = None,
) -> Chunks:
    """Weight vectors and images per call within a memory budget.

    Args:
        n_params: Entries of one weight vector (4 bytes each, stacked per chunk).
        per_image_bytes: `activation_bytes` of the model.
        n_points: Weight vectors to evaluate.
        n_images: Evaluation images.
        budget: Bytes one call may use (at least one vector on one image is
            always allowed).
        max_points: The most weight vectors in one call.
        max_images: The most images in one call (None: as many as fit).

    Returns:
        ``points``: up to ``max_points``, as many as fit with one image each;
        ``images``: as many as then fit, up to ``max_images``.
    """
    pair = ACTIVATION_COPIES * per_image_bytes
    points = max(1, min(n_points, max_points, budget // (4 * n_params + pair)))
    images = (budget - points * 4 * n_params) // (points * pair)
    images = max(1, min(n_images, images, max_images or n_images))
    return Chunks(points, images, points * (4 * n_params + images * pair))


def batched_losses(
    model: nn.Module,
    thetas: Tensor,
    images: Tensor,
    labels: Tensor,
    evaluation: Evaluation = Evaluation(),
    progress: Progress | None = None,
) -> Tensor:
    """The mean cross-entropy at each of K weight vectors, chunk by chunk.

    By ``evaluation.method`` (see the module docstring); ``progress`` is
    called after every call of the model on all images: every
    `POINTS_PER_CHUNK` vectors with vmap, every vector sequentially.

    Args:
        model: The network, on the images' device; its own parameters are not
            used (nor changed). Its training flag is set to eval during the
            call and restored after.
        thetas: float ``(K, P)`` flat weight vectors (``model.parameters()`` order).
        images: float ``(N, C, H, W)`` normalised evaluation images.
        labels: int64 ``(N,)`` class indices.
        evaluation: The method and the memory budget of one call.
        progress: Called with ``(done, K)``.

    Returns:
        float64 ``(K,)`` on the CPU.

    Raises:
        ValueError: thetas, images or labels of the wrong shape or type, or
            more images than ``CAPS.landscape_images``.
    """
    n_params = _check_model(model)
    if not isinstance(thetas, Tensor) or thetas.dim() != 2 or thetas.shape[1] != n_params:
        raise ValueError(
            f"thetas: must be (K, {n_params}) weight vectors, got "
            f"{tuple(thetas.shape) if isinstance(thetas, Tensor) else type(thetas).__name__}"
        )
    rows = thetas.detach()
    return _losses(model, len(rows), lambda i, j: rows[i:j], images, labels, evaluation, progress)


def loop_losses(model: nn.Module, thetas: Tensor, images: Tensor, labels: Tensor) -> Tensor:
    """The reference for `batched_losses`: one weight vector per forward.

    A copy of the model in eval mode gets each vector with
    ``torch.nn.utils.vector_to_parameters`` and runs all images at once;
    ``F.cross_entropy`` gives the mean. The model itself is not changed.

    Returns:
        float64 ``(K,)`` on the CPU.
    """
    n_params = _check_model(model)
    _check_batch(images, labels)
    if not isinstance(thetas, Tensor) or thetas.dim() != 2 or thetas.shape[1] != n_params:
        raise ValueError(f"thetas: must be (K, {n_params}) weight vectors")
    work = copy.deepcopy(model).eval()
    out = torch.empty(len(thetas), dtype=torch.float64)
    with torch.no_grad():
        for k, theta in enumerate(thetas):
            nn.utils.vector_to_parameters(theta.to(images.device), work.parameters())
            out[k] = F.cross_entropy(work(images), labels).item()
    return out


def grid_values(low: float, high: float, resolution: int) -> np.ndarray:
    """``resolution`` evenly spaced values from ``low`` to ``high`` (both included).

    Value i is ``low + (high - low) * i / (resolution - 1)``, so a coarser grid's
    values are exactly (bitwise) among a finer one's when its steps divide them.
    """
    steps = np.arange(resolution, dtype=np.float64) / (resolution - 1)
    values = low + (high - low) * steps
    values[-1] = high
    return values


def grid_losses(
    model: nn.Module,
    plane: Plane,
    a_range: tuple[float, float],
    b_range: tuple[float, float],
    resolution: int,
    images: Tensor,
    labels: Tensor,
    evaluation: Evaluation = Evaluation(),
    progress: Progress | None = None,
) -> LandscapeGrid:
    """The loss over a ``resolution``×``resolution`` grid of a plane.

    The weights at grid point (a, b) are `point` ``(plane, a, b)``; they are
    built chunk by chunk and evaluated with `batched_losses`'s method.

    Args:
        model: The network (see `batched_losses`).
        plane: The plane; its vectors must have one entry per model parameter.
        a_range: ``(a0, a1)``, finite, a0 < a1.
        b_range: ``(b0, b1)``, finite, b0 < b1.
        resolution: G, points per axis, in [2, ``CAPS.landscape_resolution``].
        images: float ``(N, C, H, W)`` normalised evaluation images.
        labels: int64 ``(N,)``.
        evaluation: The method and the memory budget of one call.
        progress: Called with ``(done, G*G)`` after each chunk.

    Raises:
        ValueError: a bad range, resolution or batch, or a plane of another model.
    """
    started = time.perf_counter()
    n_params = _check_model(model)
    if plane.n_params != n_params:
        raise ValueError(f"plane: has {plane.n_params} entries, the model {n_params} parameters")
    _check_resolution(resolution)
    a_values = grid_values(*_check_range(a_range, "a_range"), resolution)
    b_values = grid_values(*_check_range(b_range, "b_range"), resolution)
    # Row-major over [b][a]: point k is (a[k % G], b[k // G]).
    a_flat = torch.from_numpy(np.tile(a_values, resolution))
    b_flat = torch.from_numpy(np.repeat(b_values, resolution))

    def weights(i: int, j: int) -> Tensor:
        return point(plane, a_flat[i:j], b_flat[i:j])

    losses = _losses(model, resolution**2, weights, images, labels, evaluation, progress)
    return LandscapeGrid(
        a=a_values,
        b=b_values,
        loss=losses.numpy().reshape(resolution, resolution),
        images=len(labels),
        seconds=time.perf_counter() - started,
    )


def grid_passes(
    model: nn.Module,
    plane: Plane,
    a_range: tuple[float, float],
    b_range: tuple[float, float],
    resolution: int,
    images: Tensor,
    labels: Tensor,
    coarse: int = COARSE_RESOLUTION,
    evaluation: Evaluation = Evaluation(),
) -> Iterator[LandscapeGrid]:
    """Coarse to fine: a ``coarse``×``coarse`` grid, then the full one, same ranges.

    The coarse grid costs 49 evaluations instead of G² (625 for G = 25), so
    a page can draw a picture while the full grid is computed. When
    ``resolution`` is at most ``coarse``, only the full grid is yielded. The
    consumer may stop iterating after the first grid; nothing more is computed.

    Args:
        coarse: Points per axis of the first pass (>= 2).
        Others: as `grid_losses`.

    Yields:
        The coarse `LandscapeGrid`, then the full one.

    Raises:
        ValueError: as `grid_losses`, on the first ``next()``, before any
            pass is computed (the full grid's resolution included).
    """
    _check_resolution(resolution)
    if isinstance(coarse, bool) or not isinstance(coarse, int) or coarse < 2:
        raise ValueError(f"coarse: must be an integer >= 2, got {coarse!r}")
    _check_range(a_range, "a_range")
    _check_range(b_range, "b_range")
    _check_batch(images, labels)
    for size in (coarse, resolution) if resolution > coarse else (resolution,):
        yield grid_losses(model, plane, a_range, b_range, size, images, labels, evaluation)


def line_losses(
    model: nn.Module,
    theta_from: Tensor,
    theta_to: Tensor,
    ts: Sequence[float] | Tensor,
    images: Tensor,
    labels: Tensor,
    evaluation: Evaluation = Evaluation(),
) -> Tensor:
    """The loss along the straight line ``(1 - t)·theta_from + t·theta_to``.

    From θ₀ to an optimizer's weights, or between two optimizers' weights
    (Goodfellow et al. 2015). t = 0 and t = 1 give exactly the two ends; t
    outside [0, 1] extrapolates. Computed in float64, rounded once to float32,
    chunk by chunk, and evaluated as `batched_losses` does.

    Args:
        theta_from: Flat weights at t = 0.
        theta_to: Flat weights at t = 1.
        ts: The positions, finite; at most ``CAPS.landscape_resolution``² of them.

    Returns:
        float64 ``(len(ts),)``.

    Raises:
        ValueError: weights of the wrong length, non-finite or too many ts.
    """
    n_params = _check_model(model)
    ends = []
    for name, theta in (("theta_from", theta_from), ("theta_to", theta_to)):
        if not isinstance(theta, Tensor) or theta.dim() != 1 or theta.numel() != n_params:
            raise ValueError(f"{name}: must be a flat vector of the model's {n_params} parameters")
        ends.append(theta.detach().double())
    t = torch.as_tensor(ts, dtype=torch.float64).reshape(-1)
    if t.numel() == 0 or t.numel() > MAX_RESOLUTION**2 or not bool(torch.isfinite(t).all()):
        raise ValueError(
            f"ts: must be 1 to {MAX_RESOLUTION**2} finite numbers, got {t.numel()} "
            f"({'all finite' if bool(torch.isfinite(t).all()) else 'some not finite'})"
        )
    start, end = ends
    end = end.to(start.device)

    def weights(i: int, j: int) -> Tensor:
        s = t[i:j, None].to(start.device)
        return ((1 - s) * start + s * end).float()

    return _losses(model, t.numel(), weights, images, labels, evaluation, None)


def _losses(
    model: nn.Module,
    count: int,
    weights: WeightSource,
    images: Tensor,
    labels: Tensor,
    evaluation: Evaluation,
    progress: Progress | None,
) -> Tensor:
    """Mean cross-entropy at ``weights(0, count)``, chunked over vectors and images."""
    _check_batch(images, labels)
    if not isinstance(evaluation, Evaluation):
        raise ValueError(f"evaluation: must be an Evaluation, got {type(evaluation).__name__}")
    method = evaluation.resolved(images.device)
    names, shapes = zip(*((n, p.shape) for n, p in model.named_parameters()), strict=True)
    sizes = [math.prod(s) for s in shapes]
    buffers = {name: b.to(images.device) for name, b in model.named_buffers()}
    if method == "sequential" and images.dim() == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    was_training = model.training
    model.eval()
    try:
        per_image = activation_bytes(model, images)
        chunks = chunk_sizes(
            sum(sizes),
            per_image,
            count,
            len(labels),
            evaluation.chunk_bytes,
            max_points=POINTS_PER_CHUNK if method == "vmap" else 1,
            max_images=None if method == "vmap" else max(1, SEQUENTIAL_CALL_BYTES // per_image),
        )

        def summed(params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
            logits = functional_call(model, (params, buffers), (x,))
            return F.cross_entropy(logits, y, reduction="sum")

        call = vmap(summed, in_dims=(0, None, None)) if method == "vmap" else summed
        totals = torch.zeros(count, dtype=torch.float64)
        with torch.inference_mode():
            for start in range(0, count, chunks.points):
                stop = min(count, start + chunks.points)
                flat = weights(start, stop).to(device=images.device, dtype=images.dtype)
                pieces = flat.split(sizes, dim=1)
                # vmap: (g, *shape) stacks; sequential: g == 1, plain (*shape) views.
                lead = (stop - start,) if method == "vmap" else ()
                params = {
                    name: piece.reshape(*lead, *shape)
                    for name, piece, shape in zip(names, pieces, shapes, strict=True)
                }
                for first in range(0, len(labels), chunks.images):
                    x = images[first : first + chunks.images]
                    y = labels[first : first + chunks.images]
                    totals[start:stop] += call(params, x, y).double().cpu()
                if progress is not None:
                    progress(stop, count)
    finally:
        model.train(was_training)
    return totals / len(labels)


def _check_model(model: nn.Module) -> int:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: must be a torch.nn.Module, got {type(model).__name__}")
    n_params = sum(p.numel() for p in model.parameters())
    if n_params == 0:
        raise ValueError("model: has no parameters")
    return n_params


def _check_batch(images: Tensor, labels: Tensor) -> None:
    if not isinstance(images, Tensor) or not images.is_floating_point() or images.dim() < 2:
        raise ValueError(
            "images: must be a float (N, C, H, W) batch normalised as in training "
            "(optlab.train.data.normalise), got "
            + (
                f"{images.dtype} of shape {tuple(images.shape)}"
                if isinstance(images, Tensor)
                else type(images).__name__
            )
        )
    n = len(images)
    if not 1 <= n <= MAX_IMAGES:
        raise ValueError(f"images: must be 1 to {MAX_IMAGES} images, got {n}")
    if not isinstance(labels, Tensor) or labels.dtype != torch.int64 or labels.shape != (n,):
        raise ValueError(f"labels: must be int64 class indices of shape ({n},)")


def _check_resolution(resolution: int) -> None:
    if (
        isinstance(resolution, bool)
        or not isinstance(resolution, int)
        or not 2 <= resolution <= MAX_RESOLUTION
    ):
        raise ValueError(f"resolution: must be between 2 and {MAX_RESOLUTION}, got {resolution!r}")


def _check_range(bounds: tuple[float, float], name: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be two numbers (low, high), got {bounds!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{name}: must be finite with low < high, got ({low}, {high})")
    return low, high
