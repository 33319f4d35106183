"""Each spec's explicit symbol mapping: every symbol the step inspector shows is its rule's own.

The inspector labels a hyperparameter with ``OptimizerSpec.symbols`` and an
entry of ``optimizer.state[p]`` with ``OptimizerSpec.state``; nothing is
guessed from Unicode character names or help texts (that once wrote λ as
``\\lamda`` and ASGD's λ and α, NAdam's ψ and Adafactor's c as η, μ, β).
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from optlab.optim import registry
from optlab.optim.builtin import BUILTIN_OPTIMIZERS
from optlab.optim.spec import OptimizerSpec
from optlab.surface.inspector import record_steps
from optlab.surface.run import SurfaceRunConfig
from tests.support.inputs import SURFACES, inputs

IDS = [spec.key for spec in BUILTIN_OPTIMIZERS]


def _squash(tex: str) -> str:
    """LaTeX with its spacing removed, for substring checks (``\\hat v_t`` -> ``\\hatv_t``)."""
    return re.sub(r"\s+|\\[,;!:]|\\quad|\\qquad", "", tex)


def _names(spec: OptimizerSpec) -> set[str]:
    names = set()
    for hp in spec.hparams:
        if hp.kind == "pair":
            names |= {f"{hp.name}[0]", f"{hp.name}[1]"}
        elif hp.kind in ("int", "float"):
            names.add(hp.name)
    return names


@pytest.mark.parametrize("spec", BUILTIN_OPTIMIZERS, ids=IDS)
def test_every_numeric_hyperparameter_has_a_symbol_from_its_rule(spec: OptimizerSpec) -> None:
    mapped = dict(spec.symbols)
    assert set(mapped) == _names(spec), f"{spec.key}: mapped {set(mapped)} vs {_names(spec)}"
    rule = _squash(spec.rule)
    for name, symbol in mapped.items():
        assert _squash(symbol) in rule, f"{spec.key}.{name}: {symbol!r} is not in its rule"


@pytest.mark.parametrize("spec", BUILTIN_OPTIMIZERS, ids=IDS)
def test_every_state_symbol_is_in_its_rule(spec: OptimizerSpec) -> None:
    rule = _squash(spec.rule)
    for entry in spec.state:
        for symbol in (entry.after, entry.before):
            if symbol:
                assert _squash(symbol) in rule, f"{spec.key}.{entry.key}: {symbol!r} not in rule"
        assert entry.meaning, f"{spec.key}.{entry.key} says nothing about what it holds"


@pytest.mark.parametrize("spec", BUILTIN_OPTIMIZERS, ids=IDS)
def test_every_state_entry_torch_keeps_is_mapped(spec: OptimizerSpec) -> None:
    """Run every input of the optimizer's table (amsgrad, centered, momentum...) and
    check each key torch puts in ``optimizer.state[p]`` has an entry in the spec."""
    seen: set[str] = set()
    for found in inputs(spec.key) or ():
        problem = replace(SURFACES[found.surfaces[0]], steps=3)
        cfg = SurfaceRunConfig((found.config,), problem=problem)
        for snap in record_steps(cfg, 0):
            seen |= set(snap.state_after)
    assert seen, f"{spec.key}: no input ran"
    mapped = {entry.key for entry in spec.state}
    assert seen <= mapped, f"{spec.key}: state entries with no symbol: {seen - mapped}"


def test_the_symbols_the_issue_names_are_the_rules_own() -> None:
    by_key = {spec.key: spec for spec in registry.optimizers()}
    assert by_key["sgd"].symbol("weight_decay") == r"\lambda"  # never \lamda
    assert by_key["asgd"].symbol("lambd") == r"\lambda_d"
    assert by_key["asgd"].symbol("alpha") == r"\alpha"
    assert by_key["nadam"].symbol("momentum_decay") == r"\psi"
    assert by_key["adam"].symbol("betas[0]") == r"\beta_1"
    assert by_key["rprop"].symbol("etas[0]") == r"\eta^-"
    if "adafactor" in by_key:
        assert by_key["adafactor"].symbol("beta2_decay") == "c"
    assert by_key["adam"].state_symbol("max_exp_avg_sq").after == r"\hat v_t"


def test_spec_symbols_are_valid_macros() -> None:
    """A macro KaTeX does not know shows as raw red text: the browser test reads the
    DOM; here, every command used is one of the few the rules use."""
    known = {
        "gamma", "lambda", "epsilon", "beta", "mu", "tau", "psi", "eta", "alpha", "rho",
        "Gamma", "min", "max", "text", "hat", "bar", "theta", "prod", "le", "frac", "top",
    }  # fmt: skip
    for spec in BUILTIN_OPTIMIZERS:
        tex = (
            " ".join(s for _, s in spec.symbols)
            + " "
            + " ".join(f"{e.after} {e.before}" for e in spec.state)
        )
        for command in re.findall(r"\\([A-Za-z]+)", tex):
            assert command in known, f"{spec.key}: \\{command}"
