"""Tests for optlab.train.models: the registry of CIFAR-10 networks.

Generic tests enumerate `MODELS`, so a new model is checked with no new test code;
the SeedNet tests pin the tutorial's architecture layer by layer.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from optlab.train.models import (
    CLASSIFIER,
    FEATURES,
    MODELS,
    ModelSpec,
    SeedNet,
    build_model,
    count_parameters,
    get_model_spec,
    param_groups,
)

MODEL_IDS = [m.key for m in MODELS]

# The tutorial's layers: (type, constructor arguments that matter).
TUTORIAL = [
    (nn.Conv2d, (3, 32)),
    (nn.MaxPool2d, ()),
    (nn.Conv2d, (32, 32)),
    (nn.MaxPool2d, ()),
    (nn.Conv2d, (32, 64)),
    (nn.MaxPool2d, ()),
    (nn.Flatten, ()),
    (nn.Linear, (1024, 64)),
    (nn.Linear, (64, 10)),
]
# Weights + biases of each conv (5x5 kernels) and linear layer, written out.
SEEDNET_PARAMS = (
    (3 * 32 * 25 + 32)
    + (32 * 32 * 25 + 32)
    + (32 * 64 * 25 + 64)
    + (1024 * 64 + 64)
    + (64 * 10 + 10)
)


def _batch(spec: ModelSpec, n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *spec.input_shape, generator=g)
    y = torch.randint(0, spec.num_classes, (n,), generator=g)
    return x, y


def _layers(model: nn.Module) -> list[nn.Module]:
    return [*model.get_submodule(FEATURES), *model.get_submodule(CLASSIFIER)]


def test_seednet_parameter_count_is_the_tutorials() -> None:
    assert SEEDNET_PARAMS == 145_578
    assert count_parameters(SeedNet()) == SEEDNET_PARAMS
    assert count_parameters(SeedNet(relu=True)) == SEEDNET_PARAMS


@pytest.mark.parametrize(("key", "relu"), [("seednet", False), ("seednet-relu", True)])
def test_seednet_layers_are_the_tutorials(key: str, relu: bool) -> None:
    layers = _layers(build_model(key, seed=0))
    relus = [i for i, layer in enumerate(layers) if isinstance(layer, nn.ReLU)]
    plain = [layer for layer in layers if not isinstance(layer, nn.ReLU)]
    assert [type(layer) for layer in plain] == [t for t, _ in TUTORIAL]
    for layer, (_, args) in zip(plain, TUTORIAL, strict=True):
        if isinstance(layer, nn.Conv2d):
            assert (layer.in_channels, layer.out_channels) == args
            assert layer.kernel_size == (5, 5)
            assert layer.padding == (2, 2)
            assert layer.stride == (1, 1)
            assert layer.bias is not None
        elif isinstance(layer, nn.MaxPool2d):
            assert layer.kernel_size == 2
            assert layer.stride == 2
        elif isinstance(layer, nn.Linear):
            assert (layer.in_features, layer.out_features) == args
            assert layer.bias is not None
    if relu:
        # Right after each conv and after the first linear layer, nowhere else.
        after = [type(layers[i - 1]) for i in relus]
        assert after == [nn.Conv2d, nn.Conv2d, nn.Conv2d, nn.Linear]
        assert isinstance(layers[-1], nn.Linear)
    else:
        assert relus == []
        assert not any(isinstance(m, nn.ReLU) for m in build_model(key, seed=0).modules())


@pytest.mark.parametrize("spec", MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
def test_output_shape(spec: ModelSpec, channels_last: bool) -> None:
    model = build_model(spec.key, seed=0)
    x, _ = _batch(spec, n=5)
    with torch.no_grad():
        expected = model(x)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        out = model(x)
    assert out.shape == (5, spec.num_classes)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("spec", MODELS, ids=MODEL_IDS)
def test_spec_is_consistent(spec: ModelSpec) -> None:
    assert get_model_spec(spec.key) is spec
    assert spec.label
    assert spec.notes and all(isinstance(n, str) and n for n in spec.notes)
    model = spec.factory()
    assert isinstance(model.get_submodule(FEATURES), nn.Module)
    assert isinstance(model.get_submodule(CLASSIFIER), nn.Module)


def test_registry_keys_are_unique_and_tutorial_net_says_what_is_true() -> None:
    """The tutorial's net has no activation, yet max-pooling makes it nonlinear: its
    note says so, and the net itself is not additive (f(a + b) - f(0) differs from
    f(a) - f(0) + f(b) - f(0)), which a linear map would be."""
    assert len(set(MODEL_IDS)) == len(MODEL_IDS)
    spec = get_model_spec("seednet")
    notes = " ".join(spec.notes)
    assert "not a linear model" in notes and "Max-pooling" in notes
    model = spec.factory().eval()
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 4, 3, 32, 32, generator=gen)
    with torch.no_grad():
        zero = model(torch.zeros_like(a))
        together = model(a + b) - zero
        apart = (model(a) - zero) + (model(b) - zero)
    assert not torch.allclose(together, apart, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("spec", MODELS, ids=MODEL_IDS)
def test_init_is_deterministic_by_seed_and_leaves_global_rng_alone(spec: ModelSpec) -> None:
    before = torch.get_rng_state()
    a = build_model(spec.key, seed=123).state_dict()
    b = build_model(spec.key, seed=123).state_dict()
    c = build_model(spec.key, seed=124).state_dict()
    assert torch.equal(torch.get_rng_state(), before)
    assert a.keys() == b.keys() == c.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
        assert not torch.equal(a[name], c[name]), name


@pytest.mark.parametrize("spec", MODELS, ids=MODEL_IDS)
def test_init_equals_torch_default_init_under_the_same_seed(spec: ModelSpec) -> None:
    ours = build_model(spec.key, seed=7).state_dict()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        reference = spec.factory().state_dict()
    assert ours.keys() == reference.keys()
    for name in ours:
        assert torch.equal(ours[name], reference[name]), name


@pytest.mark.parametrize("spec", MODELS, ids=MODEL_IDS)
def test_init_statistics_are_plausible(spec: ModelSpec) -> None:
    model = build_model(spec.key, seed=0)
    for module in model.modules():
        if not isinstance(module, nn.Linear | nn.Conv2d):
            continue
        fan_in = module.weight[0].numel()
        # kaiming_uniform_(a=sqrt(5)) and the bias init both use U(-1/sqrt(fan_in), +).
        bound = 1 / math.sqrt(fan_in)
        for p in (module.weight, module.bias):
            assert p.device.type == "cpu"
            assert p.abs().max() <= bound
            # Uniform on [-b, b]: mean 0, std b/sqrt(3); loose for the 10-32 element biases.
            n = p.numel()
            assert abs(p.mean().item()) < 4 * bound / math.sqrt(3 * n)
            if n >= 1000:
                assert p.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
                assert p.abs().max() > 0.95 * bound


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, True, "0"])
def test_bad_seed_is_rejected(seed: object) -> None:
    with pytest.raises(ValueError, match="Invalid seed value"):
        build_model("seednet", seed)  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize("mult", [1.0, 10.0, 0.1])
def test_param_groups_cover_every_parameter_once(spec: ModelSpec, mult: float) -> None:
    model = build_model(spec.key, seed=0)
    groups = param_groups(model, lr=0.01, classifier_lr_mult=mult)
    assert [g["name"] for g in groups] == [FEATURES, CLASSIFIER]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}
    assert {id(p) for p in groups[1]["params"]} == {
        id(p) for p in model.get_submodule(CLASSIFIER).parameters()
    }
    assert "lr" not in groups[0]
    if mult == 1.0:
        assert "lr" not in groups[1]
    else:
        assert groups[1]["lr"] == pytest.approx(0.01 * mult)


def test_param_groups_without_lr_leave_lr_to_the_optimizer() -> None:
    groups = param_groups(SeedNet())
    assert all("lr" not in g for g in groups)


@pytest.mark.parametrize(
    ("lr", "mult", "match"),
    [
        (None, 10.0, "needs the base lr"),
        (0.1, 0.0, "Invalid classifier_lr_mult value: 0.0"),
        (0.1, -1.0, "Invalid classifier_lr_mult value: -1.0"),
        (0.1, math.inf, "Invalid classifier_lr_mult value: inf"),
        (0.1, math.nan, "Invalid classifier_lr_mult value: nan"),
        (0.0, 2.0, "Invalid lr value: 0.0"),
        (-0.1, 1.0, "Invalid lr value: -0.1"),
    ],
)
def test_param_groups_reject_bad_values(lr: float | None, mult: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        param_groups(SeedNet(), lr=lr, classifier_lr_mult=mult)


def test_param_groups_reject_models_the_groups_do_not_cover() -> None:
    with pytest.raises(ValueError, match="no 'features' and 'classifier' submodules"):
        param_groups(nn.Linear(2, 2))

    class Extra(SeedNet):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))

    with pytest.raises(ValueError, match="exactly once"):
        param_groups(Extra())


@pytest.mark.parametrize("spec", MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize("factory", [torch.optim.SGD, torch.optim.Adam], ids=["sgd", "adam"])
def test_optimizers_step_with_a_classifier_lr(spec: ModelSpec, factory: type) -> None:
    model = build_model(spec.key, seed=0)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = factory(param_groups(model, lr=1e-3, classifier_lr_mult=10.0), lr=1e-3)
    assert [g["name"] for g in optimizer.param_groups] == [FEATURES, CLASSIFIER]
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-3, 1e-2])
    x, y = _batch(spec)
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    for name, p in model.named_parameters():
        assert not torch.equal(p, before[name]), name
    # The names survive a checkpoint round trip, so resumed runs keep their labels.
    state = optimizer.state_dict()
    assert [g["name"] for g in state["param_groups"]] == [FEATURES, CLASSIFIER]
    factory(param_groups(model, lr=1e-3, classifier_lr_mult=10.0), lr=1e-3).load_state_dict(state)


def test_classifier_lr_really_scales_the_classifier_step() -> None:
    # Plain SGD moves each parameter by exactly lr * grad, so from the same
    # weights and batch the classifier's step is mult times its step at mult = 1
    # and the features' step is unchanged.
    # float64, so the rounding of (p - lr * g) - p stays far below the tolerance.
    x, y = _batch(get_model_spec("seednet"))
    x = x.double()
    deltas: list[dict[str, torch.Tensor]] = []
    for mult in (1.0, 10.0):
        model = build_model("seednet", seed=0).double()
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        optimizer = torch.optim.SGD(param_groups(model, lr=1e-3, classifier_lr_mult=mult), lr=1e-3)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        deltas.append({name: p.detach() - before[name] for name, p in model.named_parameters()})
    plain, scaled = deltas
    assert any(name.startswith(f"{CLASSIFIER}.") for name in plain)
    for name in plain:
        assert plain[name].abs().max() > 0, name
        factor = 10.0 if name.startswith(f"{CLASSIFIER}.") else 1.0
        torch.testing.assert_close(scaled[name], factor * plain[name], rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("spec", MODELS, ids=MODEL_IDS)
def test_a_few_sgd_steps_reduce_the_loss(spec: ModelSpec) -> None:
    model = build_model(spec.key, seed=0)
    x, y = _batch(spec, n=32, seed=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert math.isfinite(losses[-1])
    # Both start near ln(10); the ReLU net learns more slowly from this init.
    assert losses[0] == pytest.approx(math.log(10), abs=0.1)
    assert losses[-1] < 0.9 * losses[0]


def test_unknown_model_lists_the_known_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'resnet'.*seednet, seednet-relu"):
        get_model_spec("resnet")
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet", seed=0)


def test_unsupported_layers_fail_loudly_instead_of_staying_uninitialised() -> None:
    class WithEmbedding(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(4, 2)

    spec = ModelSpec("embed", "Embedding", WithEmbedding)
    with pytest.raises(TypeError, match="cannot initialise Embedding"):
        spec.build(seed=0)
