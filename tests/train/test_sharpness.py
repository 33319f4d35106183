"""Sharpness: Lanczos against dense Hessians, Adam's preconditioner against torch's own step,
thresholds against torch.optim.SGD diverging, and a model left exactly as it was."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from optlab.train.models import init_parameters
from optlab.train.sharpness import (
    MAX_IMAGES,
    LossHessian,
    SharpnessConfig,
    SharpnessMeter,
    SharpnessRecord,
    adam_preconditioner,
    adam_threshold,
    lanczos_top,
    sgd_threshold,
    thresholds,
)

pytestmark = pytest.mark.usefixtures("one_thread")


class TinyNet(nn.Module):
    """A conv + max-pool + linear net of 214 parameters, shaped like SeedNet."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 2, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def softmax_regression() -> nn.Module:
    """Softmax regression on 2x2-average-pooled images: 10 classes, 130 parameters."""
    return nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(3 * 2 * 2, 10))


def batch(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 4, 4, generator=g), torch.randint(0, 10, (n,), generator=g)


def build(factory, seed: int = 0) -> nn.Module:
    model = factory()
    init_parameters(model, torch.Generator().manual_seed(seed))
    return model


def dense_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The full Hessian of the mean cross-entropy, in float64, by torch.autograd.functional."""
    named = list(model.named_parameters())
    flat = torch.cat([p.detach().reshape(-1) for _, p in named]).double()
    twin = copy.deepcopy(model).double()

    def loss(v: torch.Tensor) -> torch.Tensor:
        chunks = v.split([p.numel() for _, p in named])
        weights = {n: c.view(p.shape) for (n, p), c in zip(named, chunks, strict=True)}
        return F.cross_entropy(functional_call(twin, weights, (x.double(),)), y)

    return torch.autograd.functional.hessian(loss, flat, vectorize=True)


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int = 1) -> None:
    dtype = next(model.parameters()).dtype
    for i in range(steps):
        x, y = batch(32, seed=seed + i)
        opt.zero_grad()
        F.cross_entropy(model(x.to(dtype)), y).backward()
        opt.step()


# -- Lanczos and the Hessian-vector product -------------------------------------------------


def test_lanczos_finds_the_largest_eigenvalue_not_the_largest_magnitude() -> None:
    # Power iteration would converge to -10 here.
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(50, 50, generator=g, dtype=torch.float64))
    spectrum = torch.cat([torch.tensor([-10.0, 3.0]), torch.linspace(-2, 2.5, 48)]).double()
    a = q @ torch.diag(spectrum) @ q.T
    top = lanczos_top(lambda v: a @ v, torch.randn(50, generator=g, dtype=torch.float64), 1e-8, 50)
    assert top.converged
    assert top.value == pytest.approx(3.0, rel=1e-8)
    assert abs(float(top.vector @ q[:, 1])) == pytest.approx(1.0, abs=1e-8)
    assert float(torch.linalg.vector_norm(a @ top.vector - top.value * top.vector)) <= 3e-8


def test_lanczos_at_its_cap_reports_a_lower_bound_not_converged() -> None:
    a = torch.diag(torch.linspace(0, 1, 400, dtype=torch.float64))
    top = lanczos_top(lambda v: a @ v, torch.ones(400, dtype=torch.float64), 1e-12, 3)
    assert not top.converged and top.iterations == 3
    assert top.value < 1.0 and top.residual > 0


def test_lanczos_stops_on_an_invariant_subspace() -> None:
    a = torch.diag(torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64))
    top = lanczos_top(
        lambda v: a @ v, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), 1e-12, 10
    )
    assert top.converged and top.iterations == 1 and top.value == 5.0


@pytest.mark.parametrize("factory", [TinyNet, softmax_regression], ids=["tinynet", "softmax"])
def test_hessian_vector_products_equal_the_dense_hessian(factory) -> None:
    model = build(factory)
    x, y = batch()
    h = dense_hessian(model, x, y)
    op = LossHessian(model, x, y)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        v = torch.randn(op.dim, generator=g)
        torch.testing.assert_close(op(v).double(), h @ v.double(), rtol=1e-4, atol=1e-5)
    assert op.products == 3


@pytest.mark.parametrize("factory", [TinyNet, softmax_regression], ids=["tinynet", "softmax"])
def test_lambda_max_and_its_eigenvector_equal_the_dense_hessians(factory) -> None:
    model = build(factory)
    train(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), 20)
    x, y = batch()
    values, vectors = torch.linalg.eigh(dense_hessian(model, x, y))
    op = LossHessian(model, x, y)
    start = torch.randn(op.dim, generator=torch.Generator().manual_seed(0))
    top = lanczos_top(op, start, tol=1e-3, max_iters=100)
    assert top.converged
    assert top.value == pytest.approx(float(values[-1]), rel=1e-3)
    assert abs(float(top.vector.double() @ vectors[:, -1])) > 0.99
    record = SharpnessMeter(x, y).measure(model, torch.optim.SGD(model.parameters(), lr=0.1), 20)
    assert record.lambda_max == pytest.approx(float(values[-1]), rel=1e-3)


def test_channels_last_weights_give_the_same_sharpness() -> None:
    model = build(TinyNet)
    x, y = batch()
    plain = SharpnessMeter(x, y).measure(model, torch.optim.SGD(model.parameters(), lr=0.1), 0)
    model = model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
    last = SharpnessMeter(x, y).measure(model, torch.optim.SGD(model.parameters(), lr=0.1), 0)
    assert last.lambda_max == pytest.approx(plain.lambda_max, rel=1e-5)


# -- the model is left alone ----------------------------------------------------------------


@pytest.mark.parametrize("with_grads", [True, False])
def test_weights_grads_and_mode_are_left_exactly_as_they_were(with_grads: bool) -> None:
    model = build(TinyNet)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    train(model, opt, 3)
    x, y = batch()
    if with_grads:
        opt.zero_grad()
        F.cross_entropy(model(batch(16, seed=9)[0]), batch(16, seed=9)[1]).backward()
    else:
        opt.zero_grad(set_to_none=True)
    model.eval()
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    state = [(k, v.clone()) for s in opt.state.values() for k, v in s.items()]
    record = SharpnessMeter(x, y).measure(model, opt, 3)
    assert math.isfinite(record.lambda_max) and record.lambda_max_preconditioned is not None
    assert not model.training
    for n, p in model.named_parameters():
        assert torch.equal(p, weights[n])
        if grads[n] is None:
            assert p.grad is None
        else:
            assert torch.equal(p.grad, grads[n])
    after = [(k, v) for s in opt.state.values() for k, v in s.items()]
    assert [k for k, _ in after] == [k for k, _ in state]
    assert all(torch.equal(v, w) for (_, v), (_, w) in zip(after, state, strict=True))


# -- Adam's preconditioner and the preconditioned sharpness ---------------------------------


@pytest.mark.parametrize("amsgrad", [False, True])
def test_the_preconditioner_is_the_denominator_of_torchs_own_adam_step(amsgrad: bool) -> None:
    model = build(TinyNet).double()
    opt = torch.optim.Adam(
        model.parameters(), lr=1e-2, betas=(0.8, 0.99), eps=1e-6, amsgrad=amsgrad
    )
    train(model, opt, 4)
    before = [p.detach().clone() for p in model.parameters()]
    train(model, opt, 1, seed=50)
    params = list(model.parameters())
    denom = adam_preconditioner(opt, params)
    # torch stepped  θ -= lr / (1 - β1^t) * m / denom:  recover denom from that step.
    t = float(opt.state[params[0]]["step"])
    step_size = 1e-2 / (1 - 0.8**t)
    m = torch.cat([opt.state[p]["exp_avg"].reshape(-1) for p in params])
    delta = torch.cat([(p.detach() - b).reshape(-1) for p, b in zip(params, before, strict=True)])
    moving = delta.abs() > 1e-12
    torch.testing.assert_close(denom[moving], (-step_size * m / delta)[moving], rtol=1e-6, atol=0)


def test_no_preconditioner_before_the_first_step_or_for_other_optimizers() -> None:
    model = build(TinyNet)
    params = list(model.parameters())
    assert adam_preconditioner(torch.optim.Adam(params), params) is None
    sgd = torch.optim.SGD(params, lr=0.1)
    train(model, sgd, 1)
    assert adam_preconditioner(sgd, params) is None
    nadam = torch.optim.NAdam(params)
    train(model, nadam, 1)
    assert adam_preconditioner(nadam, params) is None


@pytest.mark.parametrize("kind", [torch.optim.Adam, torch.optim.AdamW])
def test_preconditioned_sharpness_equals_the_dense_symmetric_form(kind) -> None:
    model = build(TinyNet)
    opt = kind(model.parameters(), lr=1e-2)
    train(model, opt, 10)
    x, y = batch()
    params = list(model.parameters())
    # P from the state, written out here as torch's step computes its denominator.
    parts = []
    for p in params:
        s = opt.state[p]
        bias_correction2 = 1 - 0.999 ** float(s["step"])
        parts.append((s["exp_avg_sq"].sqrt() / bias_correction2**0.5 + 1e-8).reshape(-1))
    d = torch.cat(parts).double().rsqrt()
    h = dense_hessian(model, x, y)
    values, vectors = torch.linalg.eigh(d[:, None] * h * d[None, :])
    record = SharpnessMeter(x, y).measure(model, opt, 10)
    assert record.lambda_max_preconditioned == pytest.approx(float(values[-1]), rel=1e-3)
    # The same pieces by hand: P's rsqrt matches, and so does the eigenvector.
    scale = adam_preconditioner(opt, params).rsqrt()
    torch.testing.assert_close(scale.double(), d, rtol=1e-6, atol=0)
    op = LossHessian(model, x, y)
    start = torch.randn(op.dim, generator=torch.Generator().manual_seed(1))
    top = lanczos_top(lambda v: scale * op(scale * v), start)
    assert abs(float(top.vector.double() @ vectors[:, -1])) > 0.99
    assert record.lambda_max == pytest.approx(float(torch.linalg.eigvalsh(h)[-1]), rel=1e-3)
    assert record.threshold is None
    assert record.threshold_preconditioned == pytest.approx(3.8 / (0.1 * 1e-2))


# -- thresholds -------------------------------------------------------------------------------


def test_sgd_thresholds_follow_the_live_learning_rate() -> None:
    params = list(build(TinyNet).parameters())
    plain = torch.optim.SGD(params, lr=0.1)
    assert sgd_threshold(plain) == pytest.approx(20.0)
    heavy = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    assert sgd_threshold(heavy) == pytest.approx(3.8 / 0.1)
    sched = torch.optim.lr_scheduler.StepLR(heavy, step_size=1, gamma=0.5)
    heavy.step()
    sched.step()
    assert heavy.param_groups[0]["lr"] == pytest.approx(0.05)
    assert sgd_threshold(heavy) == pytest.approx(3.8 / 0.05)
    nesterov = torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True)
    assert sgd_threshold(nesterov) == pytest.approx(3.8 / (2.8 * 0.1))
    damped = torch.optim.SGD(params, lr=0.1, momentum=0.9, dampening=0.5)
    assert sgd_threshold(damped) == pytest.approx(3.8 / (0.5 * 0.1))
    assert thresholds(heavy) == (sgd_threshold(heavy), None)


def test_adam_thresholds_follow_the_live_learning_rate_and_beta1() -> None:
    params = list(build(TinyNet).parameters())
    adam = torch.optim.Adam(params, lr=1e-3)
    assert thresholds(adam) == (None, pytest.approx(38_000.0))
    sched = torch.optim.lr_scheduler.OneCycleLR(adam, max_lr=1e-2, total_steps=10)
    for _ in range(3):
        adam.step()
        sched.step()
    lr, beta1 = adam.param_groups[0]["lr"], adam.param_groups[0]["betas"][0]
    assert beta1 != 0.9  # OneCycleLR cycles β1 as it cycles lr
    assert adam_threshold(adam) == pytest.approx((2 + 2 * beta1) / ((1 - beta1) * lr))
    adamw = torch.optim.AdamW(params, lr=2e-3, betas=(0.5, 0.999))
    assert thresholds(adamw) == (None, pytest.approx(3.0 / (0.5 * 2e-3)))


@pytest.mark.parametrize(
    "make",
    [
        lambda p: torch.optim.RMSprop(p),
        lambda p: torch.optim.Adagrad(p),
        lambda p: torch.optim.Adamax(p),
        lambda p: torch.optim.NAdam(p),
        lambda p: torch.optim.RAdam(p),
        lambda p: torch.optim.LBFGS(p),
        lambda p: torch.optim.SGD(p, lr=0.1, maximize=True),
        lambda p: torch.optim.Adam(p, maximize=True),
        lambda p: torch.optim.SGD(p, lr=0.0),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=1.0),
    ],
    ids=[
        "rmsprop",
        "adagrad",
        "adamax",
        "nadam",
        "radam",
        "lbfgs",
        "sgd-max",
        "adam-max",
        "lr0",
        "d1",
    ],
)
def test_no_threshold_where_none_is_defined(make) -> None:
    assert thresholds(make(build(TinyNet).parameters())) == (None, None)


def test_no_threshold_when_param_groups_disagree() -> None:
    model = build(TinyNet)
    groups = [
        {"params": model.features.parameters()},
        {"params": model.classifier.parameters(), "lr": 0.2},
    ]
    assert thresholds(torch.optim.SGD(groups, lr=0.1)) == (None, None)
    same = [{"params": model.features.parameters()}, {"params": model.classifier.parameters()}]
    assert sgd_threshold(torch.optim.SGD(same, lr=0.1)) == pytest.approx(20.0)
    # Adam's threshold needs one lr and one β1; β2 may differ.
    beta2 = [
        {"params": model.features.parameters()},
        {"params": model.classifier.parameters(), "betas": (0.9, 0.99)},
    ]
    assert adam_threshold(torch.optim.Adam(beta2, lr=1e-3)) == pytest.approx(38_000.0)
    beta1 = [
        {"params": model.features.parameters()},
        {"params": model.classifier.parameters(), "betas": (0.8, 0.999)},
    ]
    assert adam_threshold(torch.optim.Adam(beta1, lr=1e-3)) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.1},
        {"lr": 0.1, "momentum": 0.9},
        {"lr": 0.05, "momentum": 0.5},
        {"lr": 0.1, "momentum": 0.9, "nesterov": True},
        {"lr": 0.1, "momentum": 0.9, "dampening": 0.5},
        {"lr": 0.1, "momentum": 0.9, "dampening": 0.9},
    ],
    ids=["gd", "heavy-ball", "heavy-ball-0.5", "nesterov", "dampening-0.5", "dampening-0.9"],
)
def test_torchs_sgd_is_stable_just_below_the_threshold_and_diverges_just_above(kwargs) -> None:
    threshold = sgd_threshold(torch.optim.SGD([torch.zeros(1)], **kwargs))
    # Two independent coordinates of a diagonal quadratic, 1% each side of the threshold.
    curvature = torch.tensor([0.99, 1.01], dtype=torch.float64) * threshold
    w = torch.ones(2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w], **kwargs)
    for _ in range(1500):
        opt.zero_grad()
        (0.5 * curvature * w**2).sum().backward()
        opt.step()
    below, above = w.detach().abs().tolist()
    assert below < 1e-2 and above > 1e2


# -- the meter and its records ----------------------------------------------------------------


def test_the_meter_is_deterministic_and_a_warm_start_keeps_its_accuracy() -> None:
    x, y = batch()
    runs = []
    for warm in (True, True, False):
        model = build(TinyNet)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        meter = SharpnessMeter(x, y, SharpnessConfig(images=64, seed=7, warm_start=warm))
        records, products = [], []
        for step in range(3):
            train(model, opt, 5, seed=10 * step)
            records.append(meter.measure(model, opt, 5 * (step + 1)))
            products.append(meter.products)
        runs.append((records, products))
    truth = float(torch.linalg.eigvalsh(dense_hessian(model, x, y))[-1])
    assert runs[0] == runs[1]  # same seed, same calls: the same numbers
    (warm, warm_products), (cold, cold_products) = runs[0], runs[2]
    assert warm[-1].lambda_max == pytest.approx(truth, rel=1e-3)
    assert cold[-1].lambda_max == pytest.approx(truth, rel=1e-3)
    assert sum(warm_products[1:]) < sum(cold_products[1:])


def test_record_keys() -> None:
    sgd = SharpnessRecord(step=5, lambda_max=12.5, threshold=20.0)
    assert sgd.to_dict() == {"step": 5, "lambda_max": 12.5, "threshold": 20.0}
    adam = SharpnessRecord(5, 12.5, None, 30.0, 38_000.0)
    assert adam.to_dict() == {
        "step": 5,
        "lambda_max": 12.5,
        "threshold": None,
        "lambda_max_preconditioned": 30.0,
        "threshold_preconditioned": 38_000.0,
    }
    first = SharpnessRecord(0, 12.5, None, None, 38_000.0).to_dict()
    assert first["lambda_max_preconditioned"] is None and "threshold_preconditioned" in first
    json.dumps(SharpnessRecord(7, math.nan, None).to_dict(), allow_nan=False)


def test_measure_keys_for_sgd_and_adam_before_and_after_its_first_step() -> None:
    x, y = batch()
    model = build(TinyNet)
    sgd = SharpnessMeter(x, y).measure(model, torch.optim.SGD(model.parameters(), lr=0.1), 0)
    assert set(sgd.to_dict()) == {"step", "lambda_max", "threshold"}
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    meter = SharpnessMeter(x, y)
    before = meter.measure(model, adam, 0)
    assert before.lambda_max_preconditioned is None
    assert before.threshold_preconditioned == pytest.approx(38_000.0)
    train(model, adam, 1)
    after = meter.measure(model, adam, 1).to_dict()
    assert set(after) == {
        "step",
        "lambda_max",
        "threshold",
        "lambda_max_preconditioned",
        "threshold_preconditioned",
    }
    assert after["lambda_max_preconditioned"] > after["lambda_max"]  # P ≪ 1 early on


def test_a_diverged_model_gives_nan_not_an_error() -> None:
    x, y = batch()
    model = build(TinyNet)
    opt = torch.optim.Adam(model.parameters())
    train(model, opt, 1)
    with torch.no_grad():
        model.classifier[1].weight[0, 0] = math.nan
    record = SharpnessMeter(x, y).measure(model, opt, 1)
    assert math.isnan(record.lambda_max) and record.lambda_max_preconditioned is None
    assert record.to_dict()["lambda_max"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("images", 0),
        ("images", MAX_IMAGES + 1),
        ("every", 0),
        ("tol", 0.0),
        ("tol", 0.5),
        ("tol", math.nan),
        ("max_iters", 0),
        ("seed", -1),
        ("warm_start", 1),
        ("images", 2.5),
    ],
)
def test_bad_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SharpnessConfig(**{field: value})


def test_due_every_k_steps() -> None:
    cfg = SharpnessConfig(every=3)
    assert [s for s in range(10) if cfg.due(s)] == [3, 6, 9]


def test_meter_checks_its_batch_and_model() -> None:
    x, y = batch(4)
    with pytest.raises(ValueError, match="labels"):
        SharpnessMeter(x, y[:3])
    with pytest.raises(ValueError, match="images"):
        SharpnessMeter(x[:0], y[:0])
    frozen = build(TinyNet).requires_grad_(False)
    with pytest.raises(ValueError, match="model"):
        SharpnessMeter(x, y).measure(frozen, torch.optim.SGD([torch.zeros(1)], lr=0.1), 0)
