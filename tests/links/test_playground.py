"""Tests for share links: a run config as URL query parameters and back.

`config_to_params` writes the link, `config_from_params` reads it. Parameters
arrive the way ``st.query_params.get_all`` gives them: each key maps to a list
of strings. A link is hostile input: everything it carries is validated, and
anything wrong is a ValueError naming the parameter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optlab.links import KNOWN_KEYS, config_from_params, config_to_params
from optlab.optim import registry
from optlab.optim.builtin import PRESETS
from optlab.optim.config import OptimizerConfig
from optlab.surface.problem import MAX_NOISE, MAX_SEED, MAX_SEEDS, MAX_STEPS, Problem
from optlab.surface.run import MAX_OPTIMIZERS, SurfaceRunConfig
from optlab.surface.surfaces import CUSTOM, SURFACES, get_surface


def listify(params: Mapping[str, str | list[str]]) -> dict[str, list[str]]:
    """What st.query_params.get_all returns for each key."""
    return {k: list(v) if isinstance(v, list) else [v] for k, v in params.items()}


def round_trip(cfg: SurfaceRunConfig) -> SurfaceRunConfig:
    return config_from_params(listify(config_to_params(cfg)))


def opt(key: str, **values: Any) -> OptimizerConfig:
    return OptimizerConfig.create(key, **values)


CONFIGS = {
    "defaults": SurfaceRunConfig((opt("adam"),)),
    "custom formula with bounds": SurfaceRunConfig(
        (opt("sgd", lr=0.01),),
        problem=Problem(
            surface=CUSTOM,
            expr="x**2 + 10*y**2 - sin(3*x)",
            bounds=((-3.0, 3.5), (-2.25, 4.0)),
            start=(1.5, -2.0),
        ),
    ),
    "custom formula default start": SurfaceRunConfig(
        (opt("adam"),), problem=Problem(surface=CUSTOM, expr="(x-1)**2 + y**2")
    ),
    "quadratic kappa": SurfaceRunConfig(
        (opt("sgd", lr=0.01),),
        problem=Problem(surface="quadratic", surface_values=(("kappa", 123.5),)),
    ),
    "quadratic default kappa": SurfaceRunConfig(
        (opt("sgd"),), problem=Problem(surface="quadratic")
    ),
    "registered surface own bounds": SurfaceRunConfig(
        (opt("adam"),),
        problem=Problem(surface="himmelblau", bounds=((-6.0, 6.0), (-1.0, 5.0)), start=(0.1, 0.2)),
    ),
    "noise and seed": SurfaceRunConfig(
        (opt("adam", lr=0.05),),
        problem=Problem(surface="beale", noise=0.375, seed=MAX_SEED, steps=MAX_STEPS),
    ),
    "several with presets": SurfaceRunConfig(
        (
            opt("adam", lr=0.05),
            opt("sgd_momentum", lr=1e-4),
            opt("nesterov"),
            opt("rmsprop", centered=True, momentum=0.5),
            opt("adagrad", lr_decay=0.01),
        ),
        problem=Problem(steps=1),
    ),
    "lbfgs strong wolfe": SurfaceRunConfig(
        (opt("lbfgs", lr=1.0, line_search_fn="strong_wolfe", history_size=7),)
    ),
    "adam betas": SurfaceRunConfig((opt("adam", betas=(0.8, 0.95), eps=1e-6, amsgrad=True),)),
    "awkward floats": SurfaceRunConfig(
        (opt("sgd", lr=0.1 + 0.2, momentum=1 / 3),),
        problem=Problem(start=(-1 / 3, 2 / 7), noise=1e-300),
    ),
    "every optimizer": SurfaceRunConfig(
        tuple(opt(spec.key) for spec in registry.optimizers()[:MAX_OPTIMIZERS]),
        problem=Problem(surface="saddle"),
    ),
}


@pytest.mark.parametrize("cfg", CONFIGS.values(), ids=CONFIGS.keys())
def test_round_trip(cfg: SurfaceRunConfig) -> None:
    assert round_trip(cfg) == cfg


@pytest.mark.parametrize("cfg", CONFIGS.values(), ids=CONFIGS.keys())
def test_params_are_strings_under_known_keys(cfg: SurfaceRunConfig) -> None:
    params = config_to_params(cfg)
    assert set(params) <= set(KNOWN_KEYS)
    for value in params.values():
        items = value if isinstance(value, list) else [value]
        assert items and all(isinstance(v, str) for v in items)
    assert params["opt"] == [o.to_text() for o in cfg.optimizers]


def test_default_surface_values_are_left_out_of_the_link() -> None:
    params = config_to_params(CONFIGS["quadratic default kappa"])
    assert "sp" not in params and "bounds" not in params
    assert listify(config_to_params(CONFIGS["quadratic kappa"]))["sp"] == ["kappa=123.5"]


def test_link_from_parts_equals_the_config() -> None:
    params = {
        "surface": ["quadratic"],
        "sp": ["kappa=50"],
        "start": ["-1.5,1"],
        "steps": ["300"],
        "noise": ["0.1"],
        "seed": ["3"],
        "opt": ["adam:lr=0.05", "nesterov:lr=0.001", "lbfgs:line_search_fn=strong_wolfe"],
    }
    assert config_from_params(params) == SurfaceRunConfig(
        (
            opt("adam", lr=0.05),
            opt("nesterov", lr=0.001),
            opt("lbfgs", line_search_fn="strong_wolfe"),
        ),
        problem=Problem(
            surface="quadratic",
            surface_values=(("kappa", 50.0),),
            start=(-1.5, 1.0),
            steps=300,
            noise=0.1,
            seed=3,
        ),
    )


def test_missing_fields_take_the_defaults() -> None:
    cfg = config_from_params({"opt": ["adam"]})
    assert cfg == SurfaceRunConfig((opt("adam"),))
    assert cfg.problem.surface == "rosenbrock"
    assert cfg.problem.start == get_surface("rosenbrock").start


def test_unknown_keys_are_ignored() -> None:
    params = listify(config_to_params(CONFIGS["noise and seed"]))
    noisy = {
        **params,
        "utm_source": ["newsletter"],
        "utm_medium": ["a", "b"],
        "fbclid": ["x" * 100_000],
    }
    assert config_from_params(noisy) == CONFIGS["noise and seed"]


# --- Hostile and malformed links -------------------------------------------------------

BASE = {"surface": ["rosenbrock"], "opt": ["adam"]}
HOSTILE = [
    ("no opt", {"surface": ["rosenbrock"]}, "opt: the link names no optimizer"),
    ("empty opt list", {"opt": []}, "opt: the link names no optimizer"),
    ("nine opts", {"opt": ["adam"] * (MAX_OPTIMIZERS + 1)}, f"at most {MAX_OPTIMIZERS}"),
    ("unknown opt", {"opt": ["evil"]}, "unknown optimizer 'evil'"),
    ("empty opt", {"opt": [""]}, "empty optimizer spec"),
    ("bad lr", {"opt": ["adam:lr=-1"]}, "Invalid lr value: -1"),
    ("nan lr", {"opt": ["adam:lr=nan"]}, "Invalid lr value: nan"),
    ("unknown hparam", {"opt": ["adam:momentum=0.9"]}, "no hyperparameter 'momentum'"),
    ("bad betas", {"opt": ["adam:betas=0.9"]}, "Invalid betas value"),
    ("steps float", {**BASE, "steps": ["1e3"]}, "steps: expected a whole number"),
    ("steps negative", {**BASE, "steps": ["-5"]}, "steps: must be between 1 and"),
    ("steps too many", {**BASE, "steps": [str(MAX_STEPS + 1)]}, "steps: must be between 1 and"),
    ("steps empty", {**BASE, "steps": [""]}, "steps: expected a whole number"),
    ("steps twice", {**BASE, "steps": ["10", "20"]}, "steps: given 2 times"),
    ("surface twice", {**BASE, "surface": ["beale", "booth"]}, "surface: given 2 times"),
    ("noise nan", {**BASE, "noise": ["nan"]}, "noise: expected a number"),
    ("noise inf", {**BASE, "noise": ["inf"]}, "noise: expected a number"),
    ("noise negative", {**BASE, "noise": ["-1"]}, "noise: must be a number"),
    ("noise huge", {**BASE, "noise": [str(MAX_NOISE * 10)]}, "noise: must be a number"),
    ("seed negative", {**BASE, "seed": ["-1"]}, "seed: must be in"),
    ("seed huge", {**BASE, "seed": [str(2**64)]}, "seed: must be in"),
    ("seed text", {**BASE, "seed": ["abc"]}, "seed: expected a whole number"),
    ("start one number", {**BASE, "start": ["1"]}, "start: expected 2 finite numbers"),
    ("start nan", {**BASE, "start": ["nan,0"]}, "start: expected 2 finite numbers"),
    ("start inf", {**BASE, "start": ["0,1e400"]}, "start: expected 2 finite numbers"),
    ("start far", {**BASE, "start": ["1e9,0"]}, "start: must be finite and within"),
    ("bounds three", {**BASE, "bounds": ["1,2,3"]}, "bounds: expected 4 finite numbers"),
    ("bounds reversed", {**BASE, "bounds": ["1,0,0,1"]}, "bounds: xmin must be below xmax"),
    ("long expr", {**BASE, "expr": ["x" * 100_000]}, "expr: value too long"),
    ("long opt", {"opt": ["adam:lr=" + "1" * 100_000]}, "opt: value too long"),
    ("long opt among many", {"opt": ["adam", "x" * 2000]}, "opt: value too long"),
    (
        "import in expr",
        {"surface": [CUSTOM], "expr": ["__import__('os')"], "opt": ["adam"]},
        "__import__",
    ),
    (
        "attribute in expr",
        {"surface": [CUSTOM], "expr": ["x.__class__"], "opt": ["adam"]},
        "attribute",
    ),
    ("custom without expr", {"surface": [CUSTOM], "opt": ["adam"]}, "needs a formula"),
    ("expr on a registered surface", {**BASE, "expr": ["x**2"]}, "only used with surface"),
    ("path as surface", {**BASE, "surface": ["../../etc/passwd"]}, "unknown surface"),
    ("unknown sp", {**BASE, "surface": ["quadratic"], "sp": ["foo=1"]}, "no parameter 'foo'"),
    ("sp out of range", {**BASE, "surface": ["quadratic"], "sp": ["kappa=0.5"]}, "kappa"),
    ("sp without =", {**BASE, "surface": ["quadratic"], "sp": ["kappa"]}, "expected name=value"),
    ("sp on paramless", {**BASE, "sp": ["kappa=2"]}, "Rosenbrock has no parameter 'kappa'"),
    (
        "sp on custom",
        {"surface": [CUSTOM], "expr": ["x**2"], "sp": ["kappa=2"], "opt": ["adam"]},
        "do not apply to a custom formula",
    ),
]


@pytest.mark.parametrize(
    ("params", "fragment"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE]
)
def test_hostile_params_raise_a_clear_value_error(
    params: dict[str, list[str]], fragment: str
) -> None:
    with pytest.raises(ValueError) as info:
        config_from_params(params)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert len(message) < 600, "a message fit to show a user, not an echo of the input"


# --- Property: every valid config survives the link ------------------------------------

FORMULAS = ("x**2 + 10*y**2", "sin(x)*cos(y) + 0.1*(x**2 + y**2)", "(1-x)**2 + (y-x**2)**2")


@st.composite
def optimizer_configs(draw: st.DrawFn) -> OptimizerConfig:
    keys = [spec.key for spec in registry.optimizers()] + [p.key for p in PRESETS]
    key = draw(st.sampled_from(keys))
    base = OptimizerConfig.create(key).spec
    # Any lr its spec accepts: torch's own (any lr >= 0, 0 and the largest doubles
    # included), or a plugin's narrower range.
    lr = next(hp for hp in base.hparams if hp.name == "lr")
    values: dict[str, Any] = {
        "lr": draw(
            st.floats(
                min_value=lr.low,
                max_value=lr.high,
                exclude_min=lr.low_open and lr.low is not None,
                exclude_max=lr.high_open and lr.high is not None,
                allow_nan=False,
                allow_infinity=False,
            )
        )
    }
    for hp in base.hparams:
        if hp.kind == "bool" and hp.name != "nesterov" and draw(st.booleans()):
            values[hp.name] = True
    return OptimizerConfig.create(key, **values)


@st.composite
def run_configs(draw: st.DrawFn) -> SurfaceRunConfig:
    optimizers = tuple(draw(st.lists(optimizer_configs(), min_size=1, max_size=MAX_OPTIMIZERS)))
    fields: dict[str, Any] = {
        "steps": draw(st.integers(1, MAX_STEPS)),
        "noise": draw(st.floats(min_value=0.0, max_value=MAX_NOISE)),
        "seed": draw(st.integers(0, MAX_SEED - MAX_SEEDS)),
        "seeds": draw(st.integers(1, MAX_SEEDS)),
    }
    surface = draw(st.sampled_from([*SURFACES, None]))
    if surface is None:
        x0 = draw(st.floats(-100, 100))
        y0 = draw(st.floats(-100, 100))
        bounds = ((x0, x0 + draw(st.floats(0.5, 50))), (y0, y0 + draw(st.floats(0.5, 50))))
        fields.update(surface=CUSTOM, expr=draw(st.sampled_from(FORMULAS)), bounds=bounds)
    else:
        bounds = surface.bounds
        fields["surface"] = surface.key
        fields["surface_values"] = tuple(
            (hp.name, draw(st.floats(hp.low, hp.high))) for hp in surface.params
        )
        if draw(st.booleans()):
            (a, b), (c, d) = bounds
            bounds = ((a - draw(st.floats(0, 3)), b), (c, d + draw(st.floats(0, 3))))
            fields["bounds"] = bounds
    if draw(st.booleans()):
        (x0, x1), (y0, y1) = bounds
        fields["start"] = (draw(st.floats(x0, x1)), draw(st.floats(y0, y1)))
    return SurfaceRunConfig(optimizers, Problem(**fields))


@settings(max_examples=60, deadline=None)
@given(run_configs())
def test_round_trip_property(cfg: SurfaceRunConfig) -> None:
    back = round_trip(cfg)
    assert back == cfg
    assert hash(back) == hash(cfg)
    assert all(math.isfinite(v) for v in back.problem.start)


def test_huge_integer_in_a_link_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="far too large"):
        config_from_params({"opt": ["lbfgs:max_iter=" + "9" * 400]})


def test_link_without_optimizers_uses_the_given_defaults() -> None:
    defaults = (OptimizerConfig("adam"), OptimizerConfig("sgd"))
    cfg = config_from_params({"surface": ["beale"]}, default_optimizers=defaults)
    assert cfg.problem.surface == "beale" and cfg.optimizers == defaults


def test_bounds_of_a_built_in_surface_round_trip() -> None:
    zoomed = SurfaceRunConfig(
        (OptimizerConfig("adam"),), problem=Problem(bounds=((0.0, 1.5), (0.0, 1.5)))
    )
    params = config_to_params(zoomed)
    assert params["bounds"] == "0.0,1.5,0.0,1.5"
    listed = {k: v if isinstance(v, list) else [v] for k, v in params.items()}
    assert config_from_params(listed) == zoomed
