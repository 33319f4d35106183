"""Every accepted range equals torch's own constructor checks, probed on torch itself.

For every numeric hyperparameter of every built-in optimizer (each element
of a pair on its own), the real ``torch.optim`` class is constructed at and
just beyond each bound the spec declares, and at values far out on every
side it leaves open. The app must accept exactly what torch accepts; where it
refuses a value torch takes, the message must name the app's own stated limit
(a server's cap, OptLab's limit, or its need for finite numbers), and where
torch refuses, the message must be the app's clear one, not torch's.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from optlab.optim.builtin import BUILTIN_OPTIMIZERS
from optlab.optim.config import OptimizerConfig
from optlab.optim.hparams import TORCH_CHECK, HParam
from optlab.optim.spec import OptimizerSpec

#: Phrases that mark a refusal as the app's own stated limit, not torch's.
APP_LIMITS = ("this server's cap", "OptLab's limit")

KNOBS = [
    (spec, hp, index)
    for spec in BUILTIN_OPTIMIZERS
    for hp in spec.hparams
    if hp.kind in ("int", "float", "pair")
    for index in ((0, 1) if hp.kind == "pair" else (None,))
]
KNOB_IDS = [
    f"{spec.key}.{hp.name}" + ("" if index is None else f"[{index}]") for spec, hp, index in KNOBS
]


def _element(hp: HParam, index: int | None) -> HParam:
    return hp if index is None else hp.part(index)


def _beyond(value: float, direction: float, integer: bool) -> float:
    """The next representable value past ``value`` towards ``direction``."""
    if integer:
        return value + (1 if direction > 0 else -1)
    return math.nextafter(value, direction)


def _probes(hp: HParam, element: HParam) -> Iterator[Any]:
    """At and just beyond each declared bound (torch's, and OptLab's limit), far out
    where a side is open, a few ordinary values, and None for an optional knob."""
    integer = element.integer
    for bound, outward in ((element.low, -math.inf), (element.high, math.inf)):
        if bound is None:
            yield (-(10**9) if outward < 0 else 10**9) if integer else math.copysign(1e300, outward)
        else:
            yield int(bound) if integer else bound
            yield _beyond(bound, outward, integer)
            yield _beyond(bound, -outward, integer)
    if element.limit is not None:
        for bound, outward in ((element.limit.low, -math.inf), (element.limit.high, math.inf)):
            if bound is not None:
                yield int(bound)
                yield _beyond(bound, outward, integer)
    yield from ((-1, 0, 1, 2, 3) if integer else (-1.0, 0.0, 0.5, 1.0, 2.0))
    if element.optional:
        yield None


def _with(spec: OptimizerSpec, hp: HParam, index: int | None, value: Any) -> dict[str, Any]:
    values = dict(spec.defaults)
    if index is None:
        values[hp.name] = value
    else:
        pair = list(values[hp.name])  # type: ignore[arg-type]
        pair[index] = value
        values[hp.name] = tuple(pair)
    return values


def _torch_accepts(spec: OptimizerSpec, values: dict[str, Any]) -> bool:
    try:
        spec.factory([spec.probe_point()], **values)
    except (ValueError, TypeError):
        return False
    return True


def _app(spec: OptimizerSpec, hp: HParam, values: dict[str, Any]) -> str:
    """ "" when the app accepts ``hp``'s value, else its message."""
    try:
        OptimizerConfig(spec.key, ((hp.name, values[hp.name]),))
    except ValueError as err:
        return str(err)
    return ""


@pytest.mark.parametrize(("spec", "hp", "index"), KNOBS, ids=KNOB_IDS)
def test_the_app_accepts_exactly_what_torch_accepts(spec, hp, index) -> None:
    element = _element(hp, index)
    assert hp.origin == TORCH_CHECK, f"{spec.key}.{hp.name}: a built-in range is torch's check"
    for value in _probes(hp, element):
        values = _with(spec, hp, index, value)
        torch_ok, refusal = _torch_accepts(spec, values), _app(spec, hp, values)
        if torch_ok and refusal:
            assert any(phrase in refusal for phrase in APP_LIMITS), (
                f"{spec.key}.{hp.name}={value!r}: torch accepts it, the app refuses it "
                f"without naming a limit of its own: {refusal}"
            )
            assert element.limit is not None, f"{spec.key}.{hp.name}: refused with no Limit"
        if not torch_ok:
            assert refusal, f"{spec.key}.{hp.name}={value!r}: torch refuses it, the app accepts it"
            assert refusal.startswith(f"Invalid {hp.name} value: "), refusal
            assert TORCH_CHECK in refusal, refusal  # the app's words, saying whose rule it is


@pytest.mark.parametrize(("spec", "hp", "index"), KNOBS, ids=KNOB_IDS)
def test_every_declared_bound_is_where_torch_changes_its_answer(spec, hp, index) -> None:
    """A bound the spec declares is not a guess: torch accepts one side and refuses
    the other, right at it (and a side left open is open in torch too)."""
    element = _element(hp, index)
    for bound, outward, is_open in (
        (element.low, -math.inf, element.low_open),
        (element.high, math.inf, element.high_open),
    ):
        if bound is None:
            far = math.copysign(1e300, outward) if not element.integer else int(outward > 0) * 2 - 1
            far = far * (10**9 if element.integer else 1)
            assert _torch_accepts(spec, _with(spec, hp, index, far)), (spec.key, hp.name, far)
            continue
        at = _torch_accepts(spec, _with(spec, hp, index, bound))
        past = _torch_accepts(
            spec, _with(spec, hp, index, _beyond(bound, outward, element.integer))
        )
        inside = _torch_accepts(
            spec, _with(spec, hp, index, _beyond(bound, -outward, element.integer))
        )
        assert inside and not past, (spec.key, hp.name, bound)
        assert at == (not is_open), (spec.key, hp.name, bound, is_open)


@pytest.mark.parametrize("text", ["inf", "-inf", "nan"])
def test_non_finite_values_are_refused_as_the_apps_own_limit(text: str) -> None:
    point = torch.zeros(2, requires_grad=True)
    torch.optim.SGD([point], lr=float(text) if text != "-inf" else 0.1)  # torch takes inf and nan
    with pytest.raises(ValueError, match="must be finite, OptLab's limit"):
        OptimizerConfig.from_text(f"sgd:lr={text}")


CHOICES = [(spec, hp) for spec in BUILTIN_OPTIMIZERS for hp in spec.hparams if hp.kind == "choice"]


@pytest.mark.parametrize(
    ("spec", "hp"), CHOICES, ids=[f"{spec.key}.{hp.name}" for spec, hp in CHOICES]
)
def test_choices_are_what_torchs_step_supports(spec, hp) -> None:
    def one_step(choice: str | None) -> None:
        point = spec.as_param(torch.tensor([1.0, 2.0], dtype=torch.float64)).requires_grad_(True)
        optimizer = spec.factory([point], **{**spec.defaults, hp.name: choice})

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = (point**2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)

    for choice in hp.choices:
        one_step(choice)  # every offered choice steps
    if hp.origin == TORCH_CHECK:  # refused by torch's constructor (Muon's adjust_lr_fn)
        with pytest.raises(ValueError):
            one_step("backtracking")
        with pytest.raises(ValueError, match=f"one of: .*; {TORCH_CHECK}"):
            OptimizerConfig(spec.key, ((hp.name, "backtracking"),))
        return
    with pytest.raises(RuntimeError):
        one_step("backtracking")  # torch's constructor took it; its step() does not
    with pytest.raises(ValueError, match="torch's step\\(\\) supports only these"):
        OptimizerConfig(spec.key, ((hp.name, "backtracking"),))


@pytest.mark.parametrize(("spec", "hp", "index"), KNOBS, ids=KNOB_IDS)
def test_the_update_rules_page_shows_the_range_the_app_checks(spec, hp, index) -> None:
    text = hp.allowed_text()
    assert hp.range_text() in text
    element = _element(hp, index)
    if element.limit is not None:
        assert element.limit.owner in text and element.limit.why in text
