"""Text forms of run settings, shared by the CLI and share links.

A share link is the run config as URL query parameters; the CLI takes the
same pieces as options. Both go through the parsers here and then through
`SurfaceRunConfig` validation, so a value is accepted or rejected the same
way wherever it comes from, with the same message.

Query parameters::

    surface=rosenbrock  sp=kappa=100 (repeated)  expr=x**2+y**2
    bounds=-5,5,-5,5  start=-1.5,2  steps=300  noise=0  seed=0
    opt=adam:lr=0.05 (repeated, SPEC as the CLI's --opt)
    plan=cosine|200:lr=0.001 (one per opt, in order, when any optimizer has one)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from optlab.optimizers import OptimizerConfig
from optlab.plans import Plan
from optlab.surface_run import MAX_OPTIMIZERS, SurfaceRunConfig
from optlab.surfaces import CUSTOM, Bounds, Point, get_surface
from optlab.train_run import MAX_SLOTS, TrainRunConfig, TrainSlot

#: Longest accepted value of one parameter (a formula is at most 500).
MAX_VALUE_LENGTH = 1000
KNOWN_KEYS = ("surface", "sp", "expr", "bounds", "start", "steps", "noise", "seed", "opt", "plan")


def _numbers(text: str, count: int, what: str, example: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what}: expected {count} finite numbers like {example}, got {text!r}")
    return values


def parse_point(text: str, what: str = "start") -> Point:
    """Parses ``X,Y``."""
    x, y = _numbers(text, 2, what, "-1.5,2")
    return (x, y)


def format_point(point: Point) -> str:
    """The inverse of `parse_point`."""
    return ",".join(repr(float(v)) for v in point)


def parse_bounds(text: str) -> Bounds:
    """Parses ``XMIN,XMAX,YMIN,YMAX``."""
    x0, x1, y0, y1 = _numbers(text, 4, "bounds", "-5,5,-5,5")
    return ((x0, x1), (y0, y1))


def format_bounds(bounds: Bounds) -> str:
    """The inverse of `parse_bounds`."""
    return ",".join(repr(float(v)) for pair in bounds for v in pair)


def parse_int(text: str, what: str) -> int:
    """Parses a whole number, naming the field when it is not one."""
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{what}: expected a whole number, got {text!r}") from None


def parse_float(text: str, what: str) -> float:
    """Parses a finite number, naming the field when it is not one."""
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{what}: expected a number, got {text!r}")
    return value


def parse_surface_values(surface: str, items: Sequence[str]) -> tuple[tuple[str, float], ...]:
    """Parses ``name=value`` parameters of a registered surface."""
    if surface == CUSTOM:
        if items:
            raise ValueError("surface parameters do not apply to a custom formula")
        return ()
    spec = get_surface(surface)
    by_name = {hp.name: hp for hp in spec.params}
    values = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"surface parameter {item!r}: expected name=value")
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            raise ValueError(f"{spec.label} has no parameter {name!r} (known: {known})")
        if name in values:
            raise ValueError(f"surface parameter {name} is given twice")
        values[name] = float(by_name[name].parse(raw))
    return tuple(values.items())


def config_to_params(cfg: SurfaceRunConfig) -> dict[str, str | list[str]]:
    """The share-link query parameters that reproduce ``cfg``."""
    params: dict[str, str | list[str]] = {"surface": cfg.surface}
    if cfg.surface == CUSTOM:
        params["expr"] = cfg.expr or ""
        params["bounds"] = format_bounds(cfg.bounds)
    else:
        default = get_surface(cfg.surface)
        changed = [
            f"{name}={value!r}"
            for (name, value), hp in zip(cfg.surface_values, default.params, strict=True)
            if value != hp.default
        ]
        if changed:
            params["sp"] = changed
        if cfg.bounds != default.bounds:
            params["bounds"] = format_bounds(cfg.bounds)
    params["start"] = format_point(cfg.start)
    params["steps"] = str(cfg.steps)
    params["noise"] = repr(cfg.noise)
    params["seed"] = str(cfg.seed)
    params["opt"] = [opt.to_text() for opt in cfg.optimizers]
    if cfg.plans:
        params["plan"] = [plan.to_text() for plan in cfg.plans]
    return params


def link_readers(
    params: Mapping[str, Sequence[str]],
) -> tuple[Callable[[str], list[str]], Callable[[str], str | None]]:
    """``values(key)`` and ``one(key)`` over a link's query parameters.

    ``values`` gives every value of a key, ``one`` its single value or None;
    both refuse a value over `MAX_VALUE_LENGTH` characters and ``one`` a key
    given twice, with a ValueError naming the key.
    """

    def values(key: str) -> list[str]:
        got = list(params.get(key, ()))
        for v in got:
            if len(v) > MAX_VALUE_LENGTH:
                raise ValueError(f"{key}: value too long ({len(v)} characters)")
        return got

    def one(key: str) -> str | None:
        got = values(key)
        if len(got) > 1:
            raise ValueError(f"{key}: given {len(got)} times, expected once")
        return got[0] if got else None

    return values, one


def config_from_params(
    params: Mapping[str, Sequence[str]],
    default_optimizers: tuple[OptimizerConfig, ...] = (),
) -> SurfaceRunConfig:
    """Rebuilds a config from query parameters (each key maps to its values).

    Unknown keys are ignored (links pick up tracking parameters); everything
    else is validated exactly as the CLI validates it. A link without ``opt``
    uses ``default_optimizers`` (``?surface=beale`` shows the usual comparison
    on Beale) when there are any.

    Raises:
        ValueError: naming the first bad parameter.
    """

    values, one = link_readers(params)

    surface = (one("surface") or "rosenbrock").strip().lower()
    opts = values("opt")
    if not opts and not default_optimizers:
        raise ValueError("opt: the link names no optimizer")
    if len(opts) > MAX_OPTIMIZERS:
        raise ValueError(f"opt: at most {MAX_OPTIMIZERS} optimizers, the link has {len(opts)}")
    expr, bounds, start = one("expr"), one("bounds"), one("start")
    steps, noise, seed = one("steps"), one("noise"), one("seed")
    kwargs = {}
    if steps is not None:
        kwargs["steps"] = parse_int(steps, "steps")
    if noise is not None:
        kwargs["noise"] = parse_float(noise, "noise")
    if seed is not None:
        kwargs["seed"] = parse_int(seed, "seed")
    optimizers = tuple(OptimizerConfig.from_text(t) for t in opts) or default_optimizers
    plans = values("plan")
    if plans and len(plans) != len(optimizers):
        raise ValueError(
            f"plan: one per optimizer, the link has {len(plans)} for {len(optimizers)}"
        )
    kwargs["plans"] = tuple(Plan.from_text(t) for t in plans)
    return SurfaceRunConfig(
        optimizers=optimizers,
        surface=surface,
        surface_values=parse_surface_values(surface, values("sp")),
        expr=expr,
        bounds=None if bounds is None else parse_bounds(bounds),
        start=None if start is None else parse_point(start),
        **kwargs,
    )


# --- the CNN lab's share links -------------------------------------------------------------

#: CIFAR-10's training and test images: the largest subsets a CNN link may ask for.
CIFAR_TRAIN_IMAGES, CIFAR_TEST_IMAGES = 50_000, 10_000
#: Query keys of a training comparison (one ``opt``, ``clr`` and ``plan`` per optimizer).
TRAIN_KEYS = (
    "page", "data", "model", "opt", "clr", "plan", "batch", "steps", "epochs", "train", "test",
    "augment", "clip", "eval", "seed", "device",
)  # fmt: skip


def train_to_params(cfg: TrainRunConfig, data: str) -> dict[str, str | list[str]]:
    """The CNN page's share-link query parameters for ``cfg`` on ``data``
    (``cifar10`` or ``synthetic``)."""
    params: dict[str, str | list[str]] = {
        "page": "cnn",
        "data": data,
        "model": cfg.model,
        "opt": [s.optimizer.to_text() for s in cfg.slots],
        "batch": str(cfg.batch_size),
        "train": str(cfg.train_limit) if cfg.train_limit is not None else "all",
        "test": str(cfg.test_limit) if cfg.test_limit is not None else "all",
        "eval": str(cfg.eval_every),
        "seed": str(cfg.seed),
        "device": cfg.device,
    }
    if cfg.steps is not None:
        params["steps"] = str(cfg.steps)
    else:
        params["epochs"] = str(cfg.epochs)
    if any(s.classifier_lr_mult != 1 for s in cfg.slots):
        params["clr"] = [repr(float(s.classifier_lr_mult)) for s in cfg.slots]
    plans = [Plan(s.scheduler, s.changes) for s in cfg.slots]
    if any(not p.empty for p in plans):
        params["plan"] = [p.to_text() for p in plans]
    if cfg.augment:
        params["augment"] = "true"
    if cfg.clip_grad_norm is not None:
        params["clip"] = repr(float(cfg.clip_grad_norm))
    return params


def train_from_params(params: Mapping[str, Sequence[str]]) -> tuple[TrainRunConfig, str]:
    """Rebuilds a training comparison (and its data choice) from a share link.

    Raises:
        ValueError: naming the first bad parameter.
    """

    values, one = link_readers(params)

    def limit(key: str, default: int, most: int) -> int | None:
        text = one(key)
        if text is None:
            return default
        if text.strip().lower() == "all":
            return None
        # The page's inputs stop at CIFAR-10's size; a larger subset would be
        # replaced there by the input's minimum, silently.
        value = parse_int(text, key)
        if not 1 <= value <= most:
            raise ValueError(f"{key}: expected a whole number in [1, {most}] or all, got {value}")
        return value

    opts = values("opt")
    if not opts:
        raise ValueError("opt: the link names no optimizer")
    n = len(opts)
    if n > MAX_SLOTS:  # before any is parsed: a link may carry hundreds
        raise ValueError(f"opt: at most {MAX_SLOTS} optimizers, the link has {n}")
    clrs, plans = values("clr") or ["1"] * n, values("plan") or ["none"] * n
    for key, got in (("clr", clrs), ("plan", plans)):
        if len(got) != n:
            raise ValueError(f"{key}: one per optimizer, the link has {len(got)} for {n}")
    slots = []
    for opt, clr, plan_text in zip(opts, clrs, plans, strict=True):
        plan = Plan.from_text(plan_text)
        slots.append(
            TrainSlot(
                OptimizerConfig.from_text(opt),
                parse_float(clr, "clr"),
                plan.scheduler,
                plan.changes,
            )
        )
    steps, epochs = one("steps"), one("epochs")
    data = (one("data") or "synthetic").strip().lower()
    if data not in ("cifar10", "synthetic"):
        raise ValueError(f"data: cifar10 or synthetic, got {data!r}")
    augment = (one("augment") or "false").strip().lower()
    if augment not in ("true", "false"):
        raise ValueError(f"augment: true or false, got {augment!r}")
    clip = one("clip")
    cfg = TrainRunConfig(
        slots=tuple(slots),
        model=(one("model") or "seednet").strip().lower(),
        batch_size=parse_int(one("batch") or "64", "batch"),
        steps=None if steps is None else parse_int(steps, "steps"),
        epochs=None if epochs is None and steps is not None else parse_int(epochs or "1", "epochs"),
        train_limit=limit("train", 4000, CIFAR_TRAIN_IMAGES),
        test_limit=limit("test", 1000, CIFAR_TEST_IMAGES),
        augment=augment == "true",
        clip_grad_norm=None if clip is None else parse_float(clip, "clip"),
        eval_every=parse_int(one("eval") or "50", "eval"),
        seed=parse_int(one("seed") or "0", "seed"),
        device=(one("device") or "auto").strip().lower(),
    )
    return cfg, data
