"""Sharpness: the training loss Hessian's top eigenvalue, and the optimizer's stability threshold.

The *sharpness* :math:`\\lambda_{\\max}` is the largest eigenvalue of the Hessian
:math:`H = \\nabla^2 L(\\theta)` of the mean cross-entropy :math:`L` over a fixed
batch (the first M training images, un-augmented) at the model's current
weights. On a quadratic, gradient descent with step size :math:`\\eta` is unstable
once :math:`\\lambda_{\\max} > 2/\\eta`; Cohen et al. (ICLR 2021) found that full-batch
training of neural networks drives the sharpness up to that threshold and keeps
it hovering there (the *edge of stability*). For Adam the quantity that
equilibrates is the *preconditioned sharpness* :math:`\\lambda_1(P^{-1}H)`, at
:math:`(2 + 2\\beta_1) / ((1 - \\beta_1)\\eta)` (Cohen et al. 2022).

How it is computed
    Hessian-vector products by double backward: the gradient is taken once with
    ``create_graph=True`` and each product :math:`Hv` is one more
    ``torch.autograd.grad`` through that graph. The top eigenvalue comes from
    Lanczos iteration (the Krylov-subspace generalisation of power iteration,
    with full reorthogonalisation) started from a vector drawn from a seeded
    ``torch.Generator``, or from the previous call's eigenvector (`SharpnessMeter`).
    Unlike power iteration, which finds the eigenvalue largest in *magnitude*,
    Lanczos's top Ritz value approaches the algebraically largest eigenvalue from
    below, so a Hessian with a large negative eigenvalue (early in training) does
    not fool it.

Stopping rule
    After each product, the top Ritz pair :math:`(\\theta, u)` of the Krylov space
    has the residual :math:`r = \\lVert Hu - \\theta u \\rVert` (read off the
    tridiagonal matrix, no extra product). Iteration stops when
    :math:`r \\le \\text{tol}\\cdot|\\theta|` (ARPACK's rule), or after
    ``max_iters`` products. For a symmetric matrix some eigenvalue lies within
    :math:`r` of :math:`\\theta` (within :math:`r^2/\\text{gap}`, in fact), and
    :math:`\\theta \\le \\lambda_{\\max}` always. So with the default ``tol = 1e-3``
    the value is within 0.1% of :math:`\\lambda_{\\max}` once the top Ritz value
    belongs to the top eigenvalue. It can instead settle on the second one when
    the start vector holds too little of the top eigenvector for it to emerge
    first: seen on a 282-parameter conv net (64 random 8x8 images) at
    ``tol = 1e-2`` (5 products, 8.5% low), not at ``1e-3``. On SeedNet (M = 256
    CIFAR-10 images, SGD or Adam, 50 to 150 steps in) the top eigenvalue
    stands well clear of the rest, and ``tol = 1e-3`` lands within 2e-5 of a
    ``tol = 1e-6`` reference, the float32 products' own noise
    (``python -m bench.sharpness --reference``).

The measurement leaves the model alone: its weights are not touched, no
``.grad`` is written (``torch.autograd.grad``, never ``.backward()``), and its
train/eval mode is not changed. OptLab's models have no batch norm and no
dropout, so both modes give the same Hessian; a model with either is measured in
whatever mode it is in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from optlab.caps import CAPS
from optlab.files import finite_or_none
from optlab.optim.stability import sgd_threshold_of

__all__ = [
    "MAX_IMAGES",
    "MAX_ITERS",
    "LossHessian",
    "SharpnessConfig",
    "SharpnessMeter",
    "SharpnessRecord",
    "TopEigen",
    "adam_preconditioner",
    "adam_threshold",
    "lanczos_top",
    "sgd_threshold",
    "thresholds",
]

#: Most images the sharpness may be measured on (``OPTLAB_CAP_SHARPNESS_IMAGES``).
MAX_IMAGES = CAPS.sharpness_images
#: Most Hessian-vector products one estimate may take (``OPTLAB_CAP_SHARPNESS_ITERATIONS``).
MAX_ITERS = CAPS.sharpness_iterations


@dataclass(frozen=True)
class SharpnessConfig:
    """How sharpness is measured during a training run.

    Attributes:
        images: M, the number of training images (the first M, un-augmented)
            whose mean cross-entropy's Hessian is measured.
        every: K, measure after every K-th step (see `due`).
        tol: Lanczos stops when the top Ritz pair's residual is at most ``tol``
            times its value (see the module docstring).
        max_iters: Most Hessian-vector products per eigenvalue.
        seed: Seed of the generator the first start vector is drawn from.
        warm_start: Start each estimate from the previous one's eigenvector
            (fewer products when the weights moved little); the stopping rule
            does not depend on the start, so the accuracy is the same.
    """

    images: int = 256
    every: int = 50
    tol: float = 1e-3
    max_iters: int = 100
    seed: int = 0
    warm_start: bool = True

    def __post_init__(self) -> None:
        _check_int("images", self.images, 1, MAX_IMAGES)
        _check_int("every", self.every, 1, CAPS.train_steps)
        _check_int("max_iters", self.max_iters, 1, MAX_ITERS)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        if isinstance(self.tol, bool) or not isinstance(self.tol, int | float):
            raise ValueError(f"Invalid tol value: {self.tol!r} (a number in (0, 0.1])")
        if not 0 < self.tol <= 0.1:
            raise ValueError(f"Invalid tol value: {self.tol!r} (a number in (0, 0.1])")
        if not isinstance(self.warm_start, bool):
            raise ValueError(f"Invalid warm_start value: {self.warm_start!r} (True or False)")

    def due(self, step: int) -> bool:
        """Whether to measure after ``step`` steps: every K-th step, from step K on."""
        return step > 0 and step % self.every == 0


@dataclass(frozen=True, slots=True)
class SharpnessRecord:
    """One sharpness measurement.

    Attributes:
        step: Steps taken when measured.
        lambda_max: The top eigenvalue of the loss Hessian (NaN when the weights
            or the loss are not finite).
        threshold: The optimizer's stability threshold for ``lambda_max``
            (`thresholds`); None where none is defined.
        lambda_max_preconditioned: :math:`\\lambda_1(P^{-1}H)` for Adam and AdamW,
            None for other optimizers and before Adam's first step.
        threshold_preconditioned: Its threshold (Adam and AdamW), else None.
    """

    step: int
    lambda_max: float
    threshold: float | None
    lambda_max_preconditioned: float | None = None
    threshold_preconditioned: float | None = None

    def to_dict(self) -> dict[str, int | float | None]:
        """The record as JSON-safe numbers (NaN becomes None).

        The keys ``lambda_max_preconditioned`` and ``threshold_preconditioned``
        are present only when one of the two is known (an Adam-family
        optimizer); the value not yet known is None (the sharpness before
        Adam's first step).
        """
        out: dict[str, int | float | None] = {
            "step": self.step,
            "lambda_max": finite_or_none(self.lambda_max),
            "threshold": self.threshold,
        }
        pre, pre_threshold = self.lambda_max_preconditioned, self.threshold_preconditioned
        if pre is not None or pre_threshold is not None:
            out["lambda_max_preconditioned"] = None if pre is None else finite_or_none(pre)
            out["threshold_preconditioned"] = pre_threshold
        return out


@dataclass(frozen=True, eq=False)
class TopEigen:
    """The top eigenpair Lanczos found.

    Attributes:
        value: The top Ritz value θ (NaN when a product was not finite).
        vector: The unit Ritz vector u, flat (NaN where ``value`` is).
        iterations: Operator products taken.
        residual: ``‖Au − θu‖``, as Lanczos reads it off the tridiagonal matrix
            (β times the Ritz vector's last coordinate there).
        converged: Whether the stopping rule was met before ``max_iters``.
    """

    value: float
    vector: Tensor = field(repr=False)
    iterations: int
    residual: float
    converged: bool


def lanczos_top(
    matvec: Callable[[Tensor], Tensor], start: Tensor, tol: float = 1e-3, max_iters: int = 100
) -> TopEigen:
    """The largest eigenvalue of a symmetric linear operator, by Lanczos iteration.

    With full reorthogonalisation (twice, against every basis vector), so the
    basis stays orthonormal in float32. Stops when the top Ritz pair's residual
    ``‖Au − θu‖`` is at most ``tol * |θ|``, when the Krylov space is invariant
    (the residual is then zero), or after ``max_iters`` products.

    Args:
        matvec: ``v -> A v`` on flat vectors; A must be symmetric.
        start: The start vector (flat, not zero); its dtype and device are used.
        tol: Relative residual to stop at.
        max_iters: Most products.

    Returns:
        The top Ritz pair. θ never exceeds A's largest eigenvalue.
    """
    n = start.numel()
    steps = min(max_iters, n)
    basis = torch.zeros(steps, n, dtype=start.dtype, device=start.device)
    alphas: list[float] = []
    betas: list[float] = []
    basis[0] = start / torch.linalg.vector_norm(start)
    theta, residual, ritz = math.nan, math.nan, torch.ones(1, dtype=torch.float64)
    for k in range(steps):
        w = matvec(basis[k])
        if not bool(torch.isfinite(w).all()):
            return TopEigen(math.nan, torch.full_like(start, math.nan), k + 1, math.nan, False)
        alphas.append(float(torch.dot(w, basis[k])))
        for _ in range(2):  # "twice is enough" (Kahan, Parlett)
            w = w - basis[: k + 1].T @ (basis[: k + 1] @ w)
        beta = float(torch.linalg.vector_norm(w))
        values, vectors = torch.linalg.eigh(_tridiagonal(alphas, betas))
        theta, ritz = float(values[-1]), vectors[:, -1]
        residual = beta * abs(float(ritz[-1]))
        scale = max(max(abs(a) for a in alphas), max(betas, default=0.0))
        invariant = beta <= torch.finfo(start.dtype).eps * scale
        if invariant or residual <= tol * abs(theta):
            return TopEigen(theta, _ritz_vector(basis, ritz), k + 1, residual, True)
        if k + 1 < steps:
            betas.append(beta)
            basis[k + 1] = w / beta
    return TopEigen(theta, _ritz_vector(basis, ritz), steps, residual, False)


def _tridiagonal(alphas: Sequence[float], betas: Sequence[float]) -> Tensor:
    t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if betas:
        off = torch.tensor(betas, dtype=torch.float64)
        t += torch.diag(off, 1) + torch.diag(off, -1)
    return t


def _ritz_vector(basis: Tensor, ritz: Tensor) -> Tensor:
    u = ritz.to(basis.dtype) @ basis[: len(ritz)]
    return u / torch.linalg.vector_norm(u)


class LossHessian:
    """``v -> H v`` for the mean cross-entropy of ``model`` on a fixed batch.

    The forward pass and the gradient (with ``create_graph=True``) are computed
    once, at construction; each product is one ``torch.autograd.grad`` through
    that graph (double backward): on SeedNet it takes 2 to 3.5 times as long as
    a forward and backward pass on the same images (``bench.sharpness``). The
    graph is freed with this object. Nothing is written to the parameters or
    their ``.grad``.

    Args:
        model: The model, in whatever mode it is in.
        images: Its input batch, on the model's device.
        labels: Their classes.
        params: The parameters the Hessian is taken over (by default those of
            ``model`` that require grad, in ``model.parameters()`` order).

    Attributes:
        params: The parameters, in the order of the flat vectors.
        dim: The number of scalar parameters.
        products: Hessian-vector products taken so far.
    """

    def __init__(
        self,
        model: nn.Module,
        images: Tensor,
        labels: Tensor,
        params: Sequence[Tensor] | None = None,
    ) -> None:
        self.params = (
            [p for p in model.parameters() if p.requires_grad] if params is None else list(params)
        )
        self.dim = sum(p.numel() for p in self.params)
        self.products = 0
        with torch.enable_grad():
            self.loss = F.cross_entropy(model(images), labels)
            grads = torch.autograd.grad(
                self.loss, self.params, create_graph=True, allow_unused=True
            )
        # A parameter the loss does not use, or whose gradient is constant, has
        # zero rows in H: it is left out of the double backward.
        self._live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
        self._grads = [grads[i] for i in self._live]

    def flatten(self, tensors: Sequence[Tensor]) -> Tensor:
        """One flat vector from per-parameter tensors (in `params` order)."""
        return torch.cat([t.reshape(-1) for t in tensors])

    def unflatten(self, flat: Tensor) -> list[Tensor]:
        """Per-parameter views of a flat vector (inverse of `flatten`)."""
        return [
            chunk.view(p.shape)
            for chunk, p in zip(
                flat.split([p.numel() for p in self.params]), self.params, strict=True
            )
        ]

    def __call__(self, v: Tensor) -> Tensor:
        """``H v`` for a flat ``v``."""
        self.products += 1
        if not self._grads:
            return torch.zeros_like(v)
        parts = self.unflatten(v)
        hv = torch.autograd.grad(
            self._grads,
            [self.params[i] for i in self._live],
            grad_outputs=[parts[i] for i in self._live],
            retain_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )
        out = [torch.zeros_like(p) for p in self.params]
        for i, h in zip(self._live, hv, strict=True):
            out[i] = h
        return self.flatten(out).detach()


def adam_preconditioner(
    optimizer: torch.optim.Optimizer, params: Sequence[Tensor]
) -> Tensor | None:
    """Adam's diagonal preconditioner P, flat over ``params``, as its step uses it.

    torch's Adam (and AdamW) step is
    ``param.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)`` with

    .. math::

        \\text{denom} = \\frac{\\sqrt{v_t}}{\\sqrt{1 - \\beta_2^{\\,t}}} + \\epsilon,

    :math:`v_t` = ``exp_avg_sq`` (``max_exp_avg_sq`` with amsgrad) and t the
    state's ``step``; P is ``diag(denom)``. The first moment's bias correction
    :math:`1/(1-\\beta_1^t)` scales the step, not P: it tends to 1 within a few
    dozen steps, and before then Adam's steps are longer than the threshold's
    η assumes.

    Returns:
        ``denom`` flat, or None before the first step (no state: P undefined)
        or when ``optimizer`` is not torch's Adam or AdamW.
    """
    if type(optimizer) not in _ADAM_TYPES:
        return None
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    parts = []
    for p in params:
        state, group = optimizer.state.get(p), group_of.get(id(p))
        if not state or group is None or "exp_avg_sq" not in state:
            return None
        v = state["max_exp_avg_sq"] if group["amsgrad"] else state["exp_avg_sq"]
        step = float(state["step"])
        bias_correction2_sqrt = (1 - float(group["betas"][1]) ** step) ** 0.5
        parts.append(((v.sqrt() / bias_correction2_sqrt) + group["eps"]).reshape(-1))
    return torch.cat(parts)


def sgd_threshold(optimizer: torch.optim.Optimizer) -> float | None:
    """The sharpness at which torch's SGD turns unstable on a quadratic.

    `optlab.optim.stability.sgd_threshold_of` of the values every param group
    holds now (as a scheduler left them): 2/η without momentum, (2 + 2μ)/η with
    heavy-ball momentum μ (Cohen et al. 2021), and the dampened and Nesterov
    forms derived there. Weight decay w adds w‖θ‖²/2 to the loss the step
    descends: compare ``lambda_max + weight_decay`` with the threshold when it
    matters.

    Returns:
        The threshold, or None: not torch's SGD (a subclass may step
        differently), ``maximize=True`` (it ascends), η = 0, d ≥ 1, or param
        groups that differ in lr, momentum, dampening or nesterov (one
        threshold needs one step size).
    """
    if type(optimizer) is not torch.optim.SGD:
        return None
    shared = _shared(optimizer, ("lr", "momentum", "dampening", "nesterov", "maximize"))
    return None if shared is None else sgd_threshold_of(shared)


def adam_threshold(optimizer: torch.optim.Optimizer) -> float | None:
    """The preconditioned sharpness at which Adam turns unstable (Cohen et al. 2022).

    :math:`\\lambda_1(P^{-1}H) = (2 + 2\\beta_1)/((1 - \\beta_1)\\eta)`, with η
    and β₁ the values the param groups hold now (38/η for β₁ = 0.9): the
    threshold of preconditioned gradient descent with Adam's exponential
    moving average of the gradient as momentum, for a frozen P. With Adam's
    (coupled) weight decay w the preconditioned matrix is P⁻¹(H + wI), as for
    SGD; AdamW's decoupled decay acts outside P.

    Returns:
        The threshold, or None: not torch's Adam or AdamW, ``maximize=True``,
        η = 0, or param groups that differ in lr or β₁.
    """
    if type(optimizer) not in _ADAM_TYPES:
        return None
    shared = _shared(optimizer, ("lr", "beta1", "maximize"))
    if shared is None or shared["maximize"]:
        return None
    lr, beta1 = float(shared["lr"]), float(shared["beta1"])
    if lr <= 0:
        return None
    return (2 + 2 * beta1) / ((1 - beta1) * lr)


def thresholds(optimizer: torch.optim.Optimizer) -> tuple[float | None, float | None]:
    """``(threshold, threshold_preconditioned)`` for ``optimizer`` as it is now.

    SGD has the first (`sgd_threshold`), Adam and AdamW the second
    (`adam_threshold`). Adam's raw sharpness has none: Cohen et al. (2022) see it
    keep rising into high-curvature regions while the preconditioner adapts to
    compensate. Every other
    optimizer gets ``(None, None)``: Adamax, NAdam, RAdam, Adafactor, RMSprop,
    Adagrad, Adadelta, Rprop, ASGD and L-BFGS step differently (NAdam's
    Nesterov-style mix, RAdam's rectification, sign steps, line searches), and
    neither paper gives their thresholds.
    """
    return sgd_threshold(optimizer), adam_threshold(optimizer)


class SharpnessMeter:
    """Measures one model's sharpness on a fixed batch, as a training loop goes.

    Build one per model (per optimizer slot) with the batch, then call
    `measure` after every step where ``cfg.due(step)``::

        meter = SharpnessMeter(x_first_m, y_first_m, cfg)
        ...
        if cfg.due(step):
            record = meter.measure(model, optimizer, step)

    With ``cfg.warm_start`` the meter keeps each estimate's eigenvectors and
    starts the next from them, so a run's values depend on the calls before
    (deterministically); a resumed run starts cold, within ``tol`` of the same
    values.

    Args:
        images: The M images, normalised as training normalises them.
        labels: Their classes.
        cfg: How to measure.

    Attributes:
        products: Hessian-vector products the last `measure` took (both
            eigenvalues together).

    Raises:
        ValueError: no images or more than ``MAX_IMAGES``, or labels that do not match.
    """

    def __init__(self, images: Tensor, labels: Tensor, cfg: SharpnessConfig | None = None) -> None:
        if not 1 <= len(images) <= MAX_IMAGES:
            raise ValueError(f"images: {len(images)} images, expected 1 to {MAX_IMAGES}")
        if labels.shape != (len(images),):
            raise ValueError(f"labels: expected shape ({len(images)},), got {tuple(labels.shape)}")
        self.cfg = cfg if cfg is not None else SharpnessConfig()
        self.images, self.labels = images, labels
        self.products = 0
        self._generator = torch.Generator().manual_seed(self.cfg.seed)
        self._previous: dict[str, Tensor] = {}

    def measure(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, step: int
    ) -> SharpnessRecord:
        """The sharpness at the model's current weights, and the optimizer's thresholds.

        Args:
            model: The model being trained (left exactly as it was).
            optimizer: Its optimizer, whose current param groups give η, μ, β₁
                and whose state gives Adam's preconditioner.
            step: Steps taken, for the record.

        Returns:
            The record; ``lambda_max`` is NaN (and the preconditioned value None)
            when the weights or the loss are not finite.

        Raises:
            ValueError: a model with no parameter that requires grad.
        """
        threshold, threshold_pre = thresholds(optimizer)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"model: {type(model).__name__} has no parameter that requires grad")
        device = params[0].device
        hessian = LossHessian(model, self.images.to(device), self.labels.to(device), params)
        top = self._top("hessian", hessian, hessian.dim, params[0])
        pre_value = None
        denom = adam_preconditioner(optimizer, params)
        if denom is not None and math.isfinite(top.value):
            scale = denom.rsqrt()
            top_pre = self._top(
                "preconditioned", lambda v: scale * hessian(scale * v), hessian.dim, params[0]
            )
            pre_value = top_pre.value
        self.products = hessian.products
        return SharpnessRecord(step, top.value, threshold, pre_value, threshold_pre)

    def _top(
        self, key: str, matvec: Callable[[Tensor], Tensor], dim: int, like: Tensor
    ) -> TopEigen:
        start = self._previous.get(key) if self.cfg.warm_start else None
        if start is None or start.numel() != dim or not bool(torch.isfinite(start).all()):
            # Drawn on the CPU so that a seed gives the same start on every device.
            start = torch.randn(dim, generator=self._generator, dtype=torch.float64)
        top = lanczos_top(
            matvec, start.to(like.device, like.dtype), self.cfg.tol, self.cfg.max_iters
        )
        if math.isfinite(top.value):
            self._previous[key] = top.vector
        return top


_ADAM_TYPES = (torch.optim.Adam, torch.optim.AdamW)


def _shared(optimizer: torch.optim.Optimizer, keys: Sequence[str]) -> dict | None:
    """The values of ``keys`` (``beta1``: ``betas[0]``) if every param group holds the
    same ones, else None."""

    def values(group: dict) -> dict:
        return {k: _plain(group["betas"][0] if k == "beta1" else group.get(k)) for k in keys}

    first, *others = (values(g) for g in optimizer.param_groups)
    return None if any(other != first for other in others) else first


def _plain(value: object) -> object:
    if isinstance(value, Tensor):
        return value.item()
    if isinstance(value, tuple | list):
        return tuple(_plain(v) for v in value)
    return value


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"Invalid {name} value: {value!r} (a whole number in [{low}, {high}])")
