"""The model registry: the networks the CNN lab trains on CIFAR-10.

Each entry is a `ModelSpec`: a factory for an ``nn.Module`` that maps
``(B, 3, 32, 32)`` images to ``(B, 10)`` logits, plus notes the UI shows.
Adding a model is one entry plus one line in `MODELS`; it then shows up in
the page, the CLI and the parametrised tests.

A registered model has two submodules, ``features`` and ``classifier``, so
`param_groups` can give the classifier its own learning rate exactly as the
per-parameter-options example of ``torch.optim`` does.

`build_model` draws the initial weights from a local ``torch.Generator``:
optimizers compared side by side start from identical weights, and the
process-wide RNG (shared by every user of one server) is never touched.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd

from optlab.lookup import lookup

#: Name of the param group holding the convolutional feature extractor.
FEATURES = "features"
#: Name of the param group holding the linear classifier head.
CLASSIFIER = "classifier"


class SeedNet(nn.Module):
    """The small CIFAR-10 CNN from the ``torch.optim`` tutorials OptLab grew from.

    Layers, with the shape of one image after each pooling stage::

        Conv2d(3, 32, 5, padding=2)  -> MaxPool2d(2)   32x16x16
        Conv2d(32, 32, 5, padding=2) -> MaxPool2d(2)   32x8x8
        Conv2d(32, 64, 5, padding=2) -> MaxPool2d(2)   64x4x4
        Flatten -> Linear(1024, 64) -> Linear(64, 10)

    The tutorial's net has no activation function, but it is not a linear
    model: each max-pool keeps the largest of four values, which is
    nonlinear, and on CIFAR-10 it learns about as well as with ReLUs and far
    better than a linear softmax classifier. ``relu=True`` adds a ReLU after
    each convolution and after the first linear layer.

    Attributes:
        features: The convolutions and poolings, ``(B, 3, 32, 32) -> (B, 64, 4, 4)``.
        classifier: Flatten and the two linear layers, ``-> (B, 10)`` logits.
        relu: Whether the ReLUs are present.
    """

    def __init__(self, relu: bool = False) -> None:
        """Builds the layers.

        Args:
            relu: Add a ReLU after each convolution and the first linear layer.
        """
        super().__init__()
        self.relu = relu

        def act() -> list[nn.Module]:
            return [nn.ReLU()] if relu else []

        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 5, padding=2),
            *act(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 5, padding=2),
            *act(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            *act(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 64),
            *act(),
            nn.Linear(64, 10),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Maps a ``(B, 3, 32, 32)`` batch to ``(B, 10)`` logits (for CrossEntropyLoss)."""
        return self.classifier(self.features(x))


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Attributes:
        key: Identifier used by configs, the CLI (``--model``) and checkpoints.
        label: Human-readable name.
        factory: Builds the module with no arguments. The module must have
            ``features`` and ``classifier`` submodules that hold all of its
            parameters between them (see `param_groups`).
        notes: Caveats the UI shows next to the model.
        input_shape: ``(C, H, W)`` of one input image.
        num_classes: Number of logits the model outputs.
    """

    key: str
    label: str
    factory: Callable[[], nn.Module] = field(compare=False)
    notes: tuple[str, ...] = ()
    input_shape: tuple[int, int, int] = (3, 32, 32)
    num_classes: int = 10

    def build(self, seed: int) -> nn.Module:
        """Builds the model with initial weights determined by ``seed`` alone.

        See `build_model`.
        """
        _check_seed(seed)
        # On the meta device the constructor's own reset_parameters() allocates
        # nothing and draws nothing from the global RNG.
        with torch.device("meta"):
            model = self.factory()
        model.to_empty(device="cpu")
        # Always drawn on the CPU, so a seed gives the same weights on any
        # device the caller moves the model to.
        init_parameters(model, torch.Generator(device="cpu").manual_seed(seed))
        return model


SEEDNET = ModelSpec(
    key="seednet",
    label="SeedNet (tutorial CNN)",
    factory=SeedNet,
    notes=(
        "The tutorial's net: no activation function, yet not a linear model. Max-pooling "
        "(the largest of each 2x2 window) is nonlinear, and on CIFAR-10 it learns about as "
        "well as with ReLUs, far better than a linear softmax classifier.",
        "3 conv(5x5) + max-pool stages, then Linear(1024, 64) and Linear(64, 10); "
        "trained with CrossEntropyLoss.",
    ),
)

SEEDNET_RELU = ModelSpec(
    key="seednet-relu",
    label="SeedNet + ReLU",
    factory=functools.partial(SeedNet, relu=True),
    notes=(
        "The tutorial's net with a ReLU after each convolution and the first linear layer: "
        "same layers and parameter count, with ReLUs added to the nonlinearity max-pooling "
        "already gives.",
    ),
)

#: The registry, in display order. One line here adds a model everywhere.
MODELS: tuple[ModelSpec, ...] = (SEEDNET, SEEDNET_RELU)
_BY_KEY: dict[str, ModelSpec] = {spec.key: spec for spec in MODELS}


def get_model_spec(key: str) -> ModelSpec:
    """Looks up a registered model.

    Raises:
        ValueError: naming the unknown key and listing the known ones.
    """
    return lookup(_BY_KEY, key, "model")


def build_model(key: str, seed: int) -> nn.Module:
    """Builds a registered model on the CPU with deterministic initial weights.

    Two calls with the same key and seed give identical weights (the same
    values ``torch.manual_seed(seed)`` followed by the default constructor
    would give), and the global RNG state is left untouched.

    Args:
        key: A key of `MODELS`.
        seed: Seed of the local generator the weights are drawn from.

    Raises:
        ValueError: on an unknown key or a seed torch cannot use.
    """
    return get_model_spec(key).build(seed)


def _check_seed(seed: int) -> None:
    # bool is an int subclass; True as a seed is almost surely a wiring bug.
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ValueError(f"Invalid seed value: {seed!r} (an integer in [0, 2**64))")


@torch.no_grad()
def init_parameters(model: nn.Module, generator: torch.Generator) -> None:
    """Re-initialises every parameter and buffer of ``model`` from ``generator``.

    Uses the distributions of PyTorch's default ``reset_parameters``, in
    module registration order, so the result equals the default init under
    the same seed:

    .. math::

        W \\sim \\mathcal U\\left(-\\tfrac{1}{\\sqrt{\\text{fan\\_in}}},
        \\tfrac{1}{\\sqrt{\\text{fan\\_in}}}\\right)
        \\ (\\text{kaiming\\_uniform\\_},\\ a=\\sqrt 5), \\qquad
        b \\sim \\mathcal U\\left(-\\tfrac{1}{\\sqrt{\\text{fan\\_in}}},
        \\tfrac{1}{\\sqrt{\\text{fan\\_in}}}\\right)

    Args:
        model: The module; its parameters may hold uninitialised memory.
        generator: A CPU generator; the only randomness used.

    Raises:
        TypeError: if a module has parameters or buffers of a kind whose
            initialisation is not known here (so none is left uninitialised).
    """
    for module in model.modules():
        if isinstance(module, nn.Linear | _ConvNd):
            _init_weight_and_bias(module, generator)
        elif isinstance(module, _NormBase | nn.LayerNorm | nn.GroupNorm):
            # Their defaults are constants (ones, zeros), so no RNG is involved.
            module.reset_parameters()
        elif (
            next(module.parameters(recurse=False), None) is not None
            or next(module.buffers(recurse=False), None) is not None
        ):
            raise TypeError(
                f"cannot initialise {type(module).__name__} from a seed: "
                "add its default init to optlab.train.models.init_parameters"
            )


def _init_weight_and_bias(module: nn.Linear | _ConvNd, generator: torch.Generator) -> None:
    weight: Tensor = module.weight
    # Drawn into a contiguous buffer so the values do not depend on the
    # weight's memory format (channels_last), as torch's own init does.
    values = torch.empty(weight.shape, dtype=weight.dtype, device="cpu")
    nn.init.kaiming_uniform_(values, a=math.sqrt(5), generator=generator)
    weight.copy_(values)
    bias: Tensor | None = module.bias
    if bias is not None:
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        values = torch.empty(bias.shape, dtype=bias.dtype, device="cpu")
        nn.init.uniform_(values, -bound, bound, generator=generator)
        bias.copy_(values)


def param_groups(
    model: nn.Module, lr: float | None = None, classifier_lr_mult: float = 1.0
) -> list[dict[str, Any]]:
    """Splits a model's parameters into ``features`` and ``classifier`` groups.

    The result goes straight into any ``torch.optim`` constructor, as in its
    per-parameter-options example::

        optim.SGD(param_groups(model, lr=1e-2, classifier_lr_mult=10.0), lr=1e-2)

    The classifier group gets ``"lr": lr * classifier_lr_mult`` only when the
    multiplier is not 1; otherwise both groups use the optimizer's default
    lr. The extra ``"name"`` key is kept by torch in ``optimizer.param_groups``
    and its ``state_dict()``, which lets records and the UI label each group's
    lr. (L-BFGS accepts only one group: pass ``model.parameters()`` to it.)

    Args:
        model: A module with ``features`` and ``classifier`` submodules that
            hold all of its parameters between them.
        lr: The base learning rate; needed when ``classifier_lr_mult != 1``.
        classifier_lr_mult: Factor applied to ``lr`` for the classifier group.

    Raises:
        ValueError: on a non-positive or non-finite ``lr`` or multiplier, a
            multiplier other than 1 without ``lr``, or a model whose
            parameters the two groups do not cover exactly once.
    """
    if not (math.isfinite(classifier_lr_mult) and classifier_lr_mult > 0):
        raise ValueError(f"Invalid classifier_lr_mult value: {classifier_lr_mult}")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"Invalid lr value: {lr}")
    if lr is None and classifier_lr_mult != 1.0:
        # Silently ignoring the multiplier would train with a different setup
        # than the one the user asked for.
        raise ValueError(f"classifier_lr_mult={classifier_lr_mult} needs the base lr it multiplies")
    try:
        features = list(model.get_submodule(FEATURES).parameters())
        classifier = list(model.get_submodule(CLASSIFIER).parameters())
    except AttributeError:
        raise ValueError(
            f"{type(model).__name__} has no {FEATURES!r} and {CLASSIFIER!r} submodules"
        ) from None
    grouped = [id(p) for p in features + classifier]
    # An uncovered parameter would silently never be trained, and a shared one
    # would be stepped twice (torch rejects it, with a less helpful message).
    if len(set(grouped)) != len(grouped) or set(grouped) != {id(p) for p in model.parameters()}:
        raise ValueError(
            f"the {FEATURES!r} and {CLASSIFIER!r} submodules of {type(model).__name__} "
            "must hold each of its parameters exactly once"
        )
    head: dict[str, Any] = {"name": CLASSIFIER, "params": classifier}
    if lr is not None and classifier_lr_mult != 1.0:
        head["lr"] = lr * classifier_lr_mult
    return [{"name": FEATURES, "params": features}, head]


def count_parameters(model: nn.Module) -> int:
    """The number of scalar parameters (each shared tensor counted once)."""
    return sum(p.numel() for p in model.parameters())
