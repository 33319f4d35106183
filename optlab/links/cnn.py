"""The CNN lab's share link: a `TrainRunConfig` and where its images come from."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optlab.links.table import (
    PER_OPTIMIZER,
    LinkField,
    LinkTable,
    Params,
    format_subset,
    page_takes,
    parse_bool,
    parse_float,
    parse_int,
    parse_key,
    parse_subset,
)
from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Plan
from optlab.train.freeze import OFF, Freeze
from optlab.train.run import MAX_SLOTS, TrainRunConfig, TrainSlot

#: Where a CNN link's images come from.
DATA_SOURCES = ("cifar10", "synthetic")
#: The sidebar's ranges for the classifier lr multiple and the clipping norm,
#: narrower than the engine's: a link beyond them is refused, not clamped.
CLR_RANGE = (0.001, 1000.0)
CLIP_MIN = 1e-6
#: The longest CIFAR-10 folder a link may name (the page's text box takes as many).
MAX_FOLDER_CHARS = 500


@dataclass(frozen=True)
class CnnLink:
    """What a CNN lab link carries: the comparison and where its images come from.

    Attributes:
        config: The comparison.
        data: ``cifar10`` or ``synthetic``.
        folder: The CIFAR-10 folder typed on the page that made the link (a path
            on that server; empty: ``$OPTLAB_DATA_DIR``, else the download cache).
    """

    config: TrainRunConfig
    data: str = "synthetic"
    folder: str = ""


def _data_source(text: str, what: str) -> str:
    value = text.strip().lower()
    if value not in DATA_SOURCES:
        raise ValueError(f"{what}: cifar10 or synthetic, got {value!r}")
    return value


def _folder(text: str, what: str) -> str:
    value = text.strip()
    if len(value) > MAX_FOLDER_CHARS:
        raise ValueError(f"{what}: at most {MAX_FOLDER_CHARS} characters, got {len(value)}")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{what}: a folder name without control characters, got {value!r}")
    return value


def _cnn(values: dict[str, Any]) -> CnnLink:
    opts = values.get("opt", [])
    if not opts:
        raise ValueError("opt: the link names no optimizer")
    n = len(opts)
    clrs, plans = values.get("clr", [1.0] * n), values.get("plan", [Plan()] * n)
    freezes = values.get("freeze", [None] * n)
    for key, got in (("clr", clrs), ("plan", plans), ("freeze", freezes)):
        if len(got) != n:
            raise ValueError(f"{key}: one per optimizer, the link has {len(got)} for {n}")
    slots = tuple(
        TrainSlot(opt, clr, plan.scheduler, plan.changes, freeze)
        for opt, clr, plan, freeze in zip(opts, clrs, plans, freezes, strict=True)
    )
    steps, epochs = values.get("steps"), values.get("epochs")
    cfg = TrainRunConfig(
        slots=slots,
        model=values.get("model", "seednet"),
        batch_size=values.get("batch", 64),
        steps=steps,
        epochs=epochs if epochs is not None or steps is not None else 1,
        train_limit=values.get("train", 4000),
        test_limit=values.get("test", 1000),
        augment=values.get("augment", False),
        clip_grad_norm=values.get("clip"),
        eval_every=values.get("eval", 50),
        seed=values.get("seed", 0),
        device=values.get("device", "auto"),
    )
    data = values.get("data", "synthetic")
    return CnnLink(cfg, data, values.get("dir", "") if data == "cifar10" else "")


def _limit(name: str) -> Callable[[CnnLink], int | str]:
    # "all" (None) is written out: a link without the key means the default subset.
    def get(link: CnnLink) -> int | str:
        value = getattr(link.config, name)
        return "all" if value is None else value

    return get


def _per_slot(read: Callable[[TrainSlot], Any], differs: Callable[[Any], bool]):
    def get(link: CnnLink) -> list[Any] | None:
        got = [read(s) for s in link.config.slots]
        return got if any(differs(v) for v in got) else None

    return get


#: The CNN lab's link: a `CnnLink`.
CNN: LinkTable[CnnLink] = LinkTable(
    page="cnn",
    fields=(
        LinkField("data", "data", _data_source, str, lambda k: k.data),
        LinkField(
            "dir",
            "folder",
            _folder,
            str,
            lambda k: k.folder.strip() if k.data == "cifar10" and k.folder.strip() else None,
        ),
        LinkField("model", "config.model", parse_key, str, lambda k: k.config.model),
        LinkField(
            "opt",
            "config.slots[].optimizer",
            lambda t, w: OptimizerConfig.from_text(t),
            OptimizerConfig.to_text,
            lambda k: [s.optimizer for s in k.config.slots],
            many=True,
            most=MAX_SLOTS,
        ),
        LinkField(
            "clr",
            "config.slots[].classifier_lr_mult",
            parse_float,
            lambda v: repr(float(v)),
            _per_slot(lambda s: s.classifier_lr_mult, lambda v: v != 1),
            many=True,
            most=MAX_SLOTS,
            counted=PER_OPTIMIZER,
            check=page_takes(*CLR_RANGE),
        ),
        LinkField(
            "plan",
            "config.slots[].scheduler, config.slots[].changes",
            lambda t, w: Plan.from_text(t),
            Plan.to_text,
            _per_slot(lambda s: Plan(s.scheduler, s.changes), lambda p: not p.empty),
            many=True,
            most=MAX_SLOTS,
            counted=PER_OPTIMIZER,
        ),
        LinkField(
            "freeze",
            "config.slots[].freeze",
            lambda t, w: Freeze.from_text(t),
            lambda v: OFF if v is None else v.to_text(),
            _per_slot(lambda s: s.freeze, lambda v: v is not None),
            many=True,
            most=MAX_SLOTS,
            counted=PER_OPTIMIZER,
        ),
        LinkField("batch", "config.batch_size", parse_int, str, lambda k: k.config.batch_size),
        LinkField("steps", "config.steps", parse_int, str, lambda k: k.config.steps),
        LinkField(
            "epochs",
            "config.epochs",
            parse_int,
            str,
            lambda k: k.config.epochs if k.config.steps is None else None,
        ),
        LinkField(
            "train", "config.train_limit", parse_subset, format_subset, _limit("train_limit")
        ),
        LinkField("test", "config.test_limit", parse_subset, format_subset, _limit("test_limit")),
        LinkField(
            "augment",
            "config.augment",
            parse_bool,
            lambda v: "true",
            lambda k: True if k.config.augment else None,
        ),
        LinkField(
            "clip",
            "config.clip_grad_norm",
            parse_float,
            lambda v: repr(float(v)),
            lambda k: k.config.clip_grad_norm,
            check=page_takes(CLIP_MIN, None),
        ),
        LinkField("eval", "config.eval_every", parse_int, str, lambda k: k.config.eval_every),
        LinkField("seed", "config.seed", parse_int, str, lambda k: k.config.seed),
        LinkField("device", "config.device", parse_key, str, lambda k: k.config.device),
    ),
    build=_cnn,
)
#: Query keys of a training comparison (one ``opt``, ``clr``, ``plan`` and ``freeze`` per
#: optimizer).
TRAIN_KEYS = CNN.keys


def train_to_params(cfg: TrainRunConfig, data: str, folder: str = "") -> Params:
    """The CNN page's share-link query parameters for ``cfg`` on ``data``
    (``cifar10`` or ``synthetic``; for CIFAR-10, the typed ``folder`` if any)."""
    return CNN.to_params(CnnLink(cfg, data, folder))


def train_from_params(params: Mapping[str, Sequence[str]]) -> tuple[TrainRunConfig, str]:
    """Rebuilds a training comparison (and its data choice) from a share link.

    Raises:
        ValueError: naming the first bad parameter.
    """
    link = CNN.from_params(params)
    return link.config, link.data
