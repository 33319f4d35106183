"""Tests for optlab.optim: the registry of torch.optim optimizers and their configs.

Every test that concerns "each optimizer" enumerates `registry.optimizers()` (or `PRESETS`), so a
new registry entry is covered with no new test code.
"""

from __future__ import annotations

import inspect
import itertools
import math
import re
from collections.abc import Iterator

import pytest
import torch

from optlab.optim import registry
from optlab.optim.builtin import PRESETS
from optlab.optim.config import OptimizerConfig
from optlab.optim.hparams import HParam, HValue
from optlab.optim.spec import OptimizerSpec
from optlab.surface.problem import Problem
from optlab.surface.run import DONE, SurfaceRunConfig, run_surface

SPEC_IDS = [spec.key for spec in registry.optimizers()]
HPARAMS = [(spec, hp) for spec in registry.optimizers() for hp in spec.hparams]
HPARAM_IDS = [f"{spec.key}.{hp.name}" for spec, hp in HPARAMS]

# The convex bowl 0.5 (x^2 + 10 y^2) from a point off both axes.
BOWL_START = (1.5, -1.0)
BOWL_STEPS = 20
# Learning rates for the bowl. torch's defaults (1e-3 for SGD/Adam) barely move in 20
# steps, so the test uses 0.1, except where the default is already the natural scale:
# LBFGS (γ = 1 is a Newton-like step), Adadelta (γ = 1 recovers the paper) and Rprop
# (γ is only the initial per-coordinate step; it grows by 1.2 per step by itself).
# Prodigy's γ multiplies its own estimate d of the step size: γ = 1 is its design.
KEEP_DEFAULT_LR = {"lbfgs", "adadelta", "rprop", "po_prodigy"}
# Adadelta starts with steps of about sqrt(eps / (1 - rho)) ~ 3e-3, so in 20 steps it only
# makes honest but small progress (about 12% on this bowl). Prodigy starts with steps of
# d₀γ = 1e-6 and grows d as it learns the distance; SophiaH clips every coordinate's step
# to γρ (ρ = 0.01): both move, by design slowly at first.
SLOW_STARTERS = {"adadelta", "po_prodigy", "po_sophiah"}


def _bowl_lr(spec: OptimizerSpec) -> dict[str, HValue]:
    return {} if spec.key in KEEP_DEFAULT_LR else {"lr": 0.1}


def _run_bowl(opt: OptimizerConfig, steps: int) -> list:
    cfg = SurfaceRunConfig(
        (opt,), problem=Problem(surface="quadratic", start=BOWL_START, steps=steps)
    )
    return list(run_surface(cfg))


def _candidates(hp: HParam) -> Iterator[HValue]:
    """Values other than the default, most "awkward to format" first."""
    kind = hp.kind
    if kind == "bool":
        yield not hp.default
    elif kind == "choice":
        yield from (c for c in hp.choices if c != hp.default)
    elif kind == "pair":
        a, b = hp.default  # type: ignore[misc]
        if a is None or b is None:  # an optional element left empty: give it a number
            yield (1e-30 if a is None else a, 1e-30 if b is None else b)
            return
        yield from ((a * 0.3, b), (a, b * 0.3), (a * 3, b), (a, b * 3))
    elif kind == "int":
        d = int(hp.default) if hp.default is not None else 12  # type: ignore[arg-type]
        yield from (d + 1, d - 1, d * 2)
    else:
        d = float(hp.default) if hp.default is not None else 0.5  # type: ignore[arg-type]
        yield from (d * 0.3, d * 3, 0.3, 0.03, 3.0)
        if hp.low is not None and hp.high is not None:
            yield hp.low + 0.37 * (hp.high - hp.low)


def _other_values(hp: HParam) -> Iterator[HValue]:
    """Valid values of ``hp`` (by its own range) that differ from its default."""
    for value in _candidates(hp):
        try:
            valid = hp.validate(value)
        except ValueError:
            continue
        if valid != hp.default:
            yield valid


def _other_value(hp: HParam) -> HValue:
    """A valid value of ``hp`` that differs from its default."""
    for value in _other_values(hp):
        return value
    raise AssertionError(f"no valid non-default value found for {hp.name}")


def _config_changing(spec: OptimizerSpec, hp: HParam) -> OptimizerConfig:
    """A config with ``hp`` set to a non-default value that torch accepts.

    Where torch rejects every such value on its own (Nesterov needs momentum), one
    other hyperparameter is changed too.
    """
    values = list(_other_values(hp))
    assert values, f"no valid non-default value found for {hp.name}"
    for value in values:
        try:
            return OptimizerConfig(spec.key, ((hp.name, value),))
        except ValueError:
            continue
    for other in spec.hparams:
        if other.name == hp.name:
            continue
        try:
            return OptimizerConfig(
                spec.key, ((hp.name, values[0]), (other.name, _other_value(other)))
            )
        except ValueError:
            continue
    raise AssertionError(f"{spec.key}: no accepted config sets {hp.name}={values[0]!r}")


def _config_changing_most(spec: OptimizerSpec) -> OptimizerConfig:
    """A config with as many hyperparameters changed at once as torch accepts."""
    values: tuple[tuple[str, HValue], ...] = ()
    for hp in spec.hparams:
        for value in _other_values(hp):
            trial = (*values, (hp.name, value))
            try:
                OptimizerConfig(spec.key, trial)
            except ValueError:
                continue
            values = trial
            break
    assert len(values) >= len(spec.hparams) - 1, f"{spec.key}: only {values} accepted"
    return OptimizerConfig(spec.key, values)


# --- the registry itself -----------------------------------------------------------


REQUIRED_CLASSES = [
    "SGD",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "RAdam",
    "Adagrad",
    "Adadelta",
    "RMSprop",
    "Rprop",
    "ASGD",
    "LBFGS",
    *(["Adafactor"] if hasattr(torch.optim, "Adafactor") else []),
]


@pytest.mark.parametrize("name", REQUIRED_CLASSES)
def test_registry_covers_torch_optimizer(name: str) -> None:
    cls = getattr(torch.optim, name)
    assert any(spec.factory is cls for spec in registry.optimizers()), (
        f"torch.optim.{name} not registered"
    )


def test_registry_keys_are_unique_and_distinct_from_presets() -> None:
    keys = [spec.key for spec in registry.optimizers()]
    assert len(keys) == len(set(keys))
    assert not {p.key for p in PRESETS} & set(keys)


@pytest.mark.parametrize("spec", registry.optimizers(), ids=SPEC_IDS)
def test_spec_metadata(spec: OptimizerSpec) -> None:
    assert spec.label.strip()
    assert spec.paper is not None, f"{spec.key} has no paper"
    assert spec.paper.title.strip()
    assert spec.paper.url.startswith("https://")
    names = [hp.name for hp in spec.hparams]
    assert len(names) == len(set(names)), f"{spec.key}: duplicate hyperparameter"
    assert all(hp.help.strip() for hp in spec.hparams), f"{spec.key}: hyperparameter lacks help"


def _braces_balanced(tex: str) -> bool:
    depth = 0
    i = 0
    while i < len(tex):
        ch = tex[i]
        if ch == "\\":
            i += 2  # an escaped character such as \{ or \\ is not a group delimiter
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                return False
        i += 1
    return depth == 0


def test_brace_checker_can_fail() -> None:
    assert _braces_balanced(r"\frac{a}{b} \{x\}")
    assert not _braces_balanced(r"\frac{a}{b")
    assert not _braces_balanced(r"a}{")


@pytest.mark.parametrize("spec", registry.optimizers(), ids=SPEC_IDS)
def test_rule_is_well_formed_latex(spec: OptimizerSpec) -> None:
    rule = spec.rule.strip()
    assert rule, f"{spec.key} has no update rule"
    assert _braces_balanced(rule), f"{spec.key}: unbalanced braces in rule"
    assert rule.count(r"\begin{") == rule.count(r"\end{")
    assert "{DECAY}" not in rule, "template placeholder left in the rule"


@pytest.mark.parametrize("spec", registry.optimizers(), ids=SPEC_IDS)
def test_hparams_are_real_keyword_arguments(spec: OptimizerSpec) -> None:
    params = inspect.signature(spec.factory).parameters
    for hp in spec.hparams:
        assert hp.name in params, f"{spec.factory.__name__} has no argument {hp.name!r}"
        torch_default = params[hp.name].default
        if torch_default is not inspect.Parameter.empty and not isinstance(
            torch_default, torch.Tensor
        ):
            assert hp.default == torch_default, f"{spec.key}.{hp.name}: default differs from torch"


@pytest.mark.parametrize(("spec", "hp"), HPARAMS, ids=HPARAM_IDS)
def test_hparam_default_validates_and_round_trips(spec: OptimizerSpec, hp: HParam) -> None:
    assert hp.validate(hp.default) == hp.default
    text = hp.format(hp.default)
    assert hp.parse(text) == hp.default
    other = _other_value(hp)
    assert hp.parse(hp.format(other)) == other


@pytest.mark.parametrize("spec", registry.optimizers(), ids=SPEC_IDS)
def test_builds_from_defaults(spec: OptimizerSpec) -> None:
    cfg = OptimizerConfig(spec.key)
    assert cfg.kwargs == spec.defaults
    p = spec.probe_point()
    opt = cfg.build([p])
    assert isinstance(opt, torch.optim.Optimizer)
    assert opt.param_groups[0]["params"] == [p]


@pytest.mark.parametrize(("spec", "hp"), HPARAMS, ids=HPARAM_IDS)
def test_values_reach_torch(spec: OptimizerSpec, hp: HParam) -> None:
    cfg = _config_changing(spec, hp)
    p = spec.probe_point()
    # A matrix beside the point, so that every group a Muon builds exists.
    matrix = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    assert _reached(cfg.build([p, matrix]), hp.name) == cfg.kwargs[hp.name] != hp.default


#: Where pytorch-optimizer's Muon puts its AdamW part's knobs: that group's own keys.
_ADAMW_PART = {"adamw_lr": "lr", "adamw_betas": "betas", "adamw_wd": "weight_decay"}
#: Knobs pytorch-optimizer keeps on the optimizer object, under these names.
_ATTRIBUTES = {"hessian_distribution": "distribution"}


def _reached(opt: torch.optim.Optimizer, name: str) -> HValue:
    """The value the optimizer holds for knob ``name``: in its param groups (torch's
    way), else where pytorch-optimizer keeps it (`_ADAMW_PART`, `_ATTRIBUTES`)."""
    if name in _ADAMW_PART:
        (group,) = [g for g in opt.param_groups if g.get("use_muon") is False]
        return group[_ADAMW_PART[name]]
    for group in opt.param_groups:
        if name in group:
            return group[name]
    return getattr(opt, _ATTRIBUTES.get(name, name))


# The declared range of a scalar knob is what the UI offers; torch must accept all of it.
SCALAR_HPARAMS = [
    pytest.param(
        spec,
        hp,
        id=f"{spec.key}.{hp.name}",
    )
    for spec, hp in HPARAMS
    if hp.kind in ("float", "int")
]


def _range_points(hp: HParam) -> list[float]:
    points = []
    if hp.low is not None:
        points.append(hp.low + (max(abs(hp.low), 1.0) * 1e-6 if hp.low_open else 0.0))
    if hp.high is not None:
        points.append(hp.high - (max(abs(hp.high), 1.0) * 1e-6 if hp.high_open else 0.0))
    if hp.low is not None and hp.high is not None:
        points.append((hp.low + hp.high) / 2)
    if hp.integer:
        points = [float(math.ceil(p)) for p in points]
    return points


@pytest.mark.parametrize(("spec", "hp"), SCALAR_HPARAMS)
def test_declared_range_is_accepted_by_torch(spec: OptimizerSpec, hp: HParam) -> None:
    for value in _range_points(hp):
        OptimizerConfig(spec.key, ((hp.name, value),))


# --- it optimises ------------------------------------------------------------------


@pytest.mark.parametrize("spec", registry.optimizers(), ids=SPEC_IDS)
def test_descends_the_convex_bowl(spec: OptimizerSpec) -> None:
    records = _run_bowl(OptimizerConfig.create(spec.key, **_bowl_lr(spec)), BOWL_STEPS)
    first, last = records[0], records[-1]
    assert (first.x, first.y) == BOWL_START
    assert last.status == DONE and last.step == BOWL_STEPS
    assert last.loss < first.loss
    if spec.key not in SLOW_STARTERS:
        assert last.loss < 0.5 * first.loss, f"{spec.key}: {first.loss} -> {last.loss}"


MAXIMIZERS = [
    spec for spec in registry.optimizers() if any(hp.name == "maximize" for hp in spec.hparams)
]


@pytest.mark.parametrize("spec", MAXIMIZERS, ids=[s.key for s in MAXIMIZERS])
def test_maximize_ascends_the_bowl(spec: OptimizerSpec) -> None:
    # Few steps: ascent on a bowl runs away (SGD with γ = 0.1 doubles y each step).
    steps = 3
    records = _run_bowl(OptimizerConfig.create(spec.key, maximize=True, **_bowl_lr(spec)), steps)
    losses = [r.loss for r in records]
    assert records[-1].status == DONE
    assert losses[-1] > 1.01 * losses[0], losses
    assert all(b > a for a, b in itertools.pairwise(losses)), losses


# --- validation ----------------------------------------------------------------------

NAN = float("nan")

BAD_CONFIGS = [
    ("sgd", {"lr": -1}, "Invalid lr value: -1"),
    ("sgd", {"lr": -1e-9}, "torch's own check"),
    ("adam", {"lr": NAN}, "Invalid lr value: nan"),
    ("adam", {"lr": float("inf")}, "Invalid lr value: inf"),
    ("adam", {"lr": "0.1"}, "Invalid lr value: '0.1'"),
    ("adam", {"lr": True}, "Invalid lr value"),
    ("sgd", {"momentum": -1}, "Invalid momentum value: -1"),
    ("rmsprop", {"momentum": -0.5}, "Invalid momentum value: -0.5"),
    ("adam", {"betas": (0.9, 1.0)}, "Invalid betas value: 1"),
    ("adam", {"betas": (-0.1, 0.9)}, "Invalid betas value: -0.1"),
    ("adam", {"betas": 0.9}, "Invalid betas value"),
    ("adam", {"foo": 1}, "no hyperparameter 'foo'"),
    ("nope", {}, "unknown optimizer 'nope'"),
    ("sgd", {"nesterov": True}, "Nesterov momentum requires"),
    ("nesterov", {"dampening": 0.5}, "Nesterov momentum requires"),
    ("sgd", {"nesterov": 1}, "Invalid nesterov value"),
    ("adam", {"eps": -1e-12}, "Invalid eps value: -1e-12"),
    ("lbfgs", {"max_iter": 201}, "this server's cap: at most 200"),
    ("lbfgs", {"max_eval": 251}, "this server's cap: at most 250"),
    ("lbfgs", {"history_size": 0}, "OptLab's limit"),
    ("adadelta", {"rho": 1.01}, "Invalid rho value: 1.01"),
    ("rprop", {"etas": (0.5, 1.0)}, "etas[1] must be in (1, inf)"),
    ("lbfgs", {"max_iter": 2.5}, "must be an integer"),
    ("lbfgs", {"line_search_fn": "backtracking"}, "Invalid line_search_fn value: 'backtracking'"),
    ("rprop", {"etas": (1.5, 2.0)}, "eta"),
]


@pytest.mark.parametrize(
    ("key", "values", "fragment"), BAD_CONFIGS, ids=[f"{k}-{v}" for k, v, _ in BAD_CONFIGS]
)
def test_bad_config_raises_value_error(key: str, values: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        OptimizerConfig.create(key, **values)
    assert fragment in str(info.value)


def test_hparam_given_twice_is_rejected() -> None:
    with pytest.raises(ValueError, match="twice"):
        OptimizerConfig("sgd", (("lr", 0.1), ("lr", 0.2)))


# Values torch accepts that the app used to refuse: accepted now, with a warning saying
# what they do (the issue asks for exactly this change).
UNUSUAL_CONFIGS = [
    ("sgd", {"lr": 0}, "γ = 0"),
    ("sgd", {"momentum": 1}, "μ ≥ 1"),
    ("sgd", {"momentum": 1.5}, "classic divergence demo"),
    ("rmsprop", {"momentum": 1.5}, "μ ≥ 1"),
    ("adam", {"eps": 0}, "0/0 = NaN"),
    ("lbfgs", {"max_iter": 0}, "never moves"),
    ("rprop", {"step_sizes": (1.0, 0.5)}, "torch clamps every step size to Γmax"),
    ("rmsprop", {"alpha": 1.5}, "negative weight"),
]


@pytest.mark.parametrize(
    ("key", "values", "fragment"), UNUSUAL_CONFIGS, ids=[f"{k}-{v}" for k, v, _ in UNUSUAL_CONFIGS]
)
def test_unusual_values_torch_accepts_are_accepted_with_a_warning(
    key: str, values: dict, fragment: str
) -> None:
    cfg = OptimizerConfig.create(key, **values)
    assert any(fragment in w for w in cfg.warnings()), cfg.warnings()
    assert not OptimizerConfig(key).warnings()  # torch's defaults are never unusual


@pytest.mark.parametrize("spec", registry.optimizers(), ids=SPEC_IDS)
def test_defaults_have_no_warnings(spec: OptimizerSpec) -> None:
    assert OptimizerConfig(spec.key).warnings() == ()


# --- text form (CLI --opt and share links) --------------------------------------------

TEXT_EXAMPLES = [
    ("adam:lr=0.05", OptimizerConfig.create("adam", lr=0.05)),
    (
        "sgd:lr=0.001,momentum=0.9,nesterov=true",
        OptimizerConfig.create("sgd", lr=0.001, momentum=0.9, nesterov=True),
    ),
    (
        "lbfgs:lr=1,line_search_fn=strong_wolfe",
        OptimizerConfig.create("lbfgs", line_search_fn="strong_wolfe"),
    ),
    ("adam:betas=0.8/0.99", OptimizerConfig.create("adam", betas=(0.8, 0.99))),
    ("nesterov", OptimizerConfig.create("sgd", momentum=0.9, nesterov=True)),
    ("sgd_momentum", OptimizerConfig.create("sgd", momentum=0.9)),
    ("sgd_momentum:momentum=0.5", OptimizerConfig.create("sgd", momentum=0.5)),
    ("nesterov:lr=0.01", OptimizerConfig.create("sgd", lr=0.01, momentum=0.9, nesterov=True)),
    ("adam", OptimizerConfig("adam")),
    ("lbfgs:line_search_fn=none", OptimizerConfig("lbfgs")),
    ("lbfgs:max_iter=5", OptimizerConfig.create("lbfgs", max_iter=5)),
    ("lbfgs:max_eval=7", OptimizerConfig.create("lbfgs", max_eval=7)),
    ("lbfgs:max_eval=none", OptimizerConfig("lbfgs")),
    ("sgd:momentum=1.2,lr=0", OptimizerConfig.create("sgd", momentum=1.2, lr=0.0)),
    *(
        [
            ("adafactor:eps=1e-30/0.01", OptimizerConfig.create("adafactor", eps=(1e-30, 0.01))),
            ("adafactor:eps=none/0.01", OptimizerConfig.create("adafactor", eps=(None, 0.01))),
        ]
        if any(spec.key == "adafactor" for spec in registry.optimizers())
        else []
    ),
]


@pytest.mark.parametrize(("text", "expected"), TEXT_EXAMPLES, ids=[t for t, _ in TEXT_EXAMPLES])
def test_from_text_examples(text: str, expected: OptimizerConfig) -> None:
    cfg = OptimizerConfig.from_text(text)
    assert cfg == expected
    assert OptimizerConfig.from_text(cfg.to_text()) == cfg


def test_from_text_values_have_the_right_types() -> None:
    cfg = OptimizerConfig.from_text("lbfgs:max_iter=5,lr=1")
    assert type(cfg.kwargs["max_iter"]) is int
    assert type(cfg.kwargs["lr"]) is float
    assert OptimizerConfig.from_text("sgd:nesterov=true,momentum=0.9").kwargs["nesterov"] is True


@pytest.mark.parametrize("preset", PRESETS, ids=[p.key for p in PRESETS])
def test_presets_parse_and_apply_their_values(preset) -> None:
    cfg = OptimizerConfig.from_text(preset.key)
    assert cfg.key == preset.optimizer
    for name, value in preset.values:
        assert cfg.kwargs[name] == value
    assert cfg == OptimizerConfig.create(preset.key)
    assert OptimizerConfig.from_text(cfg.to_text()) == cfg


@pytest.mark.parametrize("spec", registry.optimizers(), ids=SPEC_IDS)
def test_text_round_trip_with_many_changes(spec: OptimizerSpec) -> None:
    cfg = _config_changing_most(spec)
    text = cfg.to_text()
    assert OptimizerConfig.from_text(text) == cfg
    for name in cfg.changed():
        assert f"{name}=" in text


@pytest.mark.parametrize(("spec", "hp"), HPARAMS, ids=HPARAM_IDS)
def test_text_round_trip_per_hparam(spec: OptimizerSpec, hp: HParam) -> None:
    cfg = _config_changing(spec, hp)
    assert OptimizerConfig.from_text(cfg.to_text()) == cfg


@pytest.mark.parametrize("spec", registry.optimizers(), ids=SPEC_IDS)
def test_default_config_text_is_the_key(spec: OptimizerSpec) -> None:
    assert OptimizerConfig(spec.key).to_text() == spec.key


BAD_TEXTS = [
    ("adam:lr", "expected name=value"),
    ("adam:lr=abc", "'abc'"),
    ("adam:foo=1", "'foo'"),
    ("nope", "unknown optimizer 'nope'"),
    ("sgd:nesterov=maybe", "'maybe'"),
    ("adam:betas=0.9", "two numbers"),
    ("adam:betas=0.9/x", "'0.9/x'"),
    ("adam:lr=1,lr=2", "twice"),
    ("lbfgs:max_iter=1.5", "max_iter"),
    ("adam:lr=-0.1", "Invalid lr value: -0.1"),
    ("", "empty"),
    ("   ", "empty"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD_TEXTS, ids=[repr(t) for t, _ in BAD_TEXTS])
def test_bad_text_raises_value_error(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        OptimizerConfig.from_text(text)
    assert fragment in str(info.value)


# --- identity: equal configs are equal and hash alike -------------------------------


@pytest.mark.parametrize("spec", registry.optimizers(), ids=SPEC_IDS)
def test_explicit_defaults_equal_implicit(spec: OptimizerSpec) -> None:
    implicit = OptimizerConfig(spec.key)
    explicit = OptimizerConfig(spec.key, tuple(spec.defaults.items()))
    reversed_order = OptimizerConfig(spec.key, tuple(reversed(spec.defaults.items())))
    assert implicit == explicit == reversed_order
    assert hash(implicit) == hash(explicit) == hash(reversed_order)
    assert len({implicit, explicit, reversed_order}) == 1


def test_equal_values_in_other_forms_hash_equal() -> None:
    a = OptimizerConfig.create("adam", lr=1, betas=[0.9, 0.99])
    b = OptimizerConfig.create("adam", lr=1.0, betas=(0.9, 0.99))
    assert a == b and hash(a) == hash(b)
    assert OptimizerConfig.create("nesterov") == OptimizerConfig.from_text(
        "sgd:nesterov=true,momentum=0.9"
    )
    assert OptimizerConfig.create("adam", lr=0.01) != OptimizerConfig.create("adam", lr=0.02)
    assert OptimizerConfig.create("adam") != OptimizerConfig.create("adamw", weight_decay=0.0)


# --- labels --------------------------------------------------------------------------


@pytest.mark.parametrize("spec", registry.optimizers(), ids=SPEC_IDS)
def test_default_label_is_the_spec_label(spec: OptimizerSpec) -> None:
    assert OptimizerConfig(spec.key).label == spec.label


@pytest.mark.parametrize(("spec", "hp"), HPARAMS, ids=HPARAM_IDS)
def test_label_names_changed_values(spec: OptimizerSpec, hp: HParam) -> None:
    cfg = _config_changing(spec, hp)
    label = cfg.label
    assert label.startswith(spec.label)
    for name, value in cfg.changed().items():
        shown = spec.hparam(name)
        assert name in label
        if value is not True:
            assert f"{name}={shown.short(value)}" in label
    unchanged = set(spec.defaults) - set(cfg.changed())
    for name in unchanged:  # a whole name: "lr=" is not in "adamw_lr=", "r=" not in "lr="
        assert not re.search(rf"(?<!\w){name}=", label), (name, label)


def test_label_examples() -> None:
    assert OptimizerConfig.create("sgd", lr=0.01).label == "SGD (lr=0.01)"
    assert OptimizerConfig.create("nesterov").label == "SGD (momentum=0.9, nesterov)"
    assert OptimizerConfig.create("adam", betas=(0.8, 0.99)).label == "Adam (betas=0.8/0.99)"


def test_changed_lists_only_differences() -> None:
    cfg = OptimizerConfig.create("sgd", lr=0.001, momentum=0.5)
    assert cfg.changed() == {"momentum": 0.5}
    assert math.isclose(cfg.kwargs["lr"], 0.001)


def test_labels_show_long_floats_to_six_digits() -> None:
    cfg = OptimizerConfig.create(
        "adam", lr=0.0018420699693267163, betas=(0.9495918367346938, 0.999)
    )
    assert cfg.label == "Adam (lr=0.00184207, betas=0.949592/0.999)"
    assert "lr=0.0018420699693267163" in cfg.to_text()  # the exact value where it matters


@pytest.mark.parametrize("spec", registry.optimizers(), ids=SPEC_IDS)
def test_the_input_table_sets_every_knob_away_from_its_default(spec: OptimizerSpec) -> None:
    """tests/support/inputs.py's promise, which the engine, inspector and script tests rely on."""
    from tests.support.inputs import INPUTS

    if spec.key not in INPUTS:
        return  # a plugin: its defaults are run
    rows = [found.config.kwargs for found in INPUTS[spec.key]]
    for hp in spec.hparams:
        assert any(row[hp.name] != hp.default for row in rows), f"{spec.key}: {hp.name}"
