"""Tests for optlab.surface.formula: the safe parser of user-typed formulas f(x, y)."""

from __future__ import annotations

import math
import pickle
import time
import warnings
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from optlab.surface.formula import (
    FUNCTIONS,
    MAX_DEPTH,
    MAX_FORMULA_LENGTH,
    MAX_NODES,
    Formula,
    FormulaError,
    parse_formula,
)

# A hostile input must be rejected this fast (seconds).
REJECTION_BUDGET = 0.050


def _scalar(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float64)


def _evaluate(formula: Formula, point: tuple[float, float]) -> float:
    return float(formula(_scalar(point[0]), _scalar(point[1])))


VALID_CASES: list[tuple[str, tuple[float, float], float]] = [
    ("x**2 + y**2", (1, 2), 5.0),
    ("x^2 + 3*y", (2, 1), 7.0),
    ("x ^ 2 + y ^ 2", (3, 4), 25.0),
    ("2^3^2", (0, 0), 512.0),  # ^ is right-associative, like **
    ("-x^2", (3, 0), -9.0),  # and binds tighter than unary minus
    ("sin(x)*cos(y)", (0.5, 0.25), math.sin(0.5) * math.cos(0.25)),
    ("-x", (1.5, 0), -1.5),
    ("+x - -y", (1.5, 2), 3.5),
    ("(1-x)**2 + 100*(y-x**2)**2", (1, 1), 0.0),
    ("(1-x)**2 + 100*(y-x**2)**2", (-1.2, 1), 24.2),
    ("exp(-(x**2+y**2))", (0.5, -0.5), math.exp(-0.5)),
    ("max(x, y)", (1, 2), 2.0),
    ("min(x, y)", (1, 2), 1.0),
    ("max(x, 0)", (-3, 0), 0.0),
    ("atan2(y, x)", (-1, 1), math.atan2(1, -1)),
    ("hypot(x, y)", (3, 4), 5.0),
    ("pi", (7, 8), math.pi),
    ("e", (7, 8), math.e),
    ("3", (7, 8), 3.0),
    ("1/3", (0, 0), 1 / 3),  # true division, not integer division
    ("7/2 + x", (0, 0), 3.5),
    ("x / y", (1, 4), 0.25),
    ("2**x", (10, 0), 1024.0),
    ("sqrt(abs(x*y))", (-2, 8), 4.0),
    ("log(x) + log2(y) + log10(100)", (math.e, 8), 1 + 3 + 2),
    (
        "sigmoid(x) + softplus(y)",
        (0.3, -0.7),
        1 / (1 + math.exp(-0.3)) + math.log1p(math.exp(-0.7)),
    ),
    ("tanh(x) + sinh(y) + cosh(x)", (0.2, 0.3), math.tanh(0.2) + math.sinh(0.3) + math.cosh(0.2)),
    (
        "asin(x) + acos(y) + atan(x*y)",
        (0.5, 0.25),
        math.asin(0.5) + math.acos(0.25) + math.atan(0.125),
    ),
    ("tan(x)", (0.4, 0), math.tan(0.4)),
    ("3*x*y - 2.5e-1*y + 0x10", (2, 4), 24 - 1 + 16),
    ("x**-1", (4, 0), 0.25),
    ("(-8)**(1/3) + x", (1, 0), math.nan),  # negative base, fractional power: nan, like torch
    ("  x + y\n", (1, 2), 3.0),
    ("(x +\n y)", (1, 2), 3.0),
]


@pytest.mark.parametrize(("text", "point", "expected"), VALID_CASES)
def test_valid_formula_value(text: str, point: tuple[float, float], expected: float) -> None:
    formula = parse_formula(text)
    assert formula.text == text.strip()
    assert _evaluate(formula, point) == pytest.approx(expected, rel=1e-12, abs=1e-12, nan_ok=True)


MATH_REFERENCE: dict[str, Callable[..., float]] = {
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "exp": math.exp,
    "log": math.log,
    "log2": math.log2,
    "log10": math.log10,
    "sqrt": math.sqrt,
    "abs": abs,
    "sigmoid": lambda v: 1 / (1 + math.exp(-v)),
    "softplus": lambda v: math.log1p(math.exp(v)),
    "atan2": math.atan2,
    "min": min,
    "max": max,
    "hypot": math.hypot,
}


def test_reference_covers_every_function() -> None:
    assert set(MATH_REFERENCE) == set(FUNCTIONS)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_function_matches_math(name: str) -> None:
    arity = FUNCTIONS[name].arity
    x, y = 0.3, 0.6
    if arity == 1:
        # Tensor argument, then a constant argument (folded at parse time).
        assert _evaluate(parse_formula(f"{name}(x)"), (x, y)) == pytest.approx(
            MATH_REFERENCE[name](x), rel=1e-12
        )
        assert _evaluate(parse_formula(f"{name}(0.6)"), (x, y)) == pytest.approx(
            MATH_REFERENCE[name](0.6), rel=1e-12
        )
    else:
        expected = MATH_REFERENCE[name](x, y)
        # Two tensors, a tensor and a constant either way round, and two constants.
        for text in (f"{name}(x, y)", f"{name}(x, 0.6)", f"{name}(0.3, y)", f"{name}(0.3, 0.6)"):
            assert _evaluate(parse_formula(text), (x, y)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("text", ["3", "pi", "2**3 - e", "sin(1) * max(1, 2)"])
def test_constant_formula_broadcasts_and_backpropagates(text: str) -> None:
    formula = parse_formula(text)
    x = torch.zeros(4, 1, dtype=torch.float64, requires_grad=True)
    y = torch.zeros(1, 5, dtype=torch.float64, requires_grad=True)
    out = formula(x, y)
    assert out.shape == (4, 5)
    out.sum().backward()
    assert x.grad is not None
    assert y.grad is not None
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert torch.equal(y.grad, torch.zeros_like(y))


def test_formula_of_one_variable_still_reaches_the_other() -> None:
    formula = parse_formula("x**2")
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    grad_x, grad_y = torch.autograd.grad(formula(x, y).sum(), (x, y))
    assert torch.allclose(grad_x, 2 * x.detach())
    assert float(grad_y) == 0.0


def test_on_points_on_a_grid() -> None:
    formula = parse_formula("(1-x)^2 + 100*(y-x^2)^2")
    xs = torch.linspace(-2, 2, 60, dtype=torch.float64)
    ys = torch.linspace(-1, 3, 50, dtype=torch.float64)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    xy = torch.stack([grid_x, grid_y], dim=-1)
    assert xy.shape == (50, 60, 2)
    values = formula.on_points(xy)
    assert values.shape == (50, 60)
    assert values.dtype == torch.float64
    expected = (1 - grid_x) ** 2 + 100 * (grid_y - grid_x**2) ** 2
    assert torch.allclose(values, expected)


def test_on_points_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        parse_formula("x").on_points(torch.zeros(3, 3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_is_kept(dtype: torch.dtype) -> None:
    x = torch.ones(3, dtype=dtype)
    for text in ("x^2 + pi", "atan2(y, 2)", "max(x, 0.5) + 3", "7"):
        assert parse_formula(text)(x, x).dtype == dtype


def test_gradient_matches_analytic() -> None:
    formula = parse_formula("(1-x)**2 + 100*(y-x**2)**2 + sin(x)*exp(y)")
    xy = torch.randn(20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    xy.requires_grad_(True)
    (grad,) = torch.autograd.grad(formula.on_points(xy).sum(), xy)
    x, y = xy.detach().unbind(-1)
    expected_dx = -2 * (1 - x) - 400 * x * (y - x**2) + torch.cos(x) * torch.exp(y)
    expected_dy = 200 * (y - x**2) + torch.sin(x) * torch.exp(y)
    assert torch.allclose(grad, torch.stack([expected_dx, expected_dy], dim=-1))


def test_equal_text_gives_equal_hashable_formulas() -> None:
    a, b = parse_formula("x^2 + y"), parse_formula("  x^2 + y \n")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b, parse_formula("x**2 + y")}) == 2
    assert Formula("x^2 + y") == a
    assert a != parse_formula("x^2 + y + 0")


def test_formula_pickles_by_text() -> None:
    formula = parse_formula("sin(x) + y^2")
    copy = pickle.loads(pickle.dumps(formula))
    assert copy == formula
    point = (_scalar(0.5), _scalar(2.0))
    assert torch.equal(copy(*point), formula(*point))


def test_formula_is_frozen() -> None:
    formula = parse_formula("x")
    with pytest.raises(AttributeError):
        formula.text = "y"  # type: ignore[misc]


def test_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse_formula(3)  # type: ignore[arg-type]


def test_limits_are_exactly_at_the_documented_values() -> None:
    longest = "x" + " " * (MAX_FORMULA_LENGTH - 2) + "y"
    assert len(longest) == MAX_FORMULA_LENGTH
    with pytest.raises(FormulaError, match=r"unknown name|syntax"):
        parse_formula(longest)  # within the cap; rejected for another reason
    with pytest.raises(FormulaError, match="too long"):
        parse_formula(longest + "y")
    parse_formula("-" * (MAX_DEPTH - 1) + "x")
    with pytest.raises(FormulaError, match="nested too deeply"):
        parse_formula("-" * MAX_DEPTH + "x")
    # max(x, max(x, ...)): each level adds a Call and a Name, so keep depth out of the way.
    parse_formula("+".join(["x"] * MAX_DEPTH))
    # 21 nodes per term, 329 in all, yet only 25 levels deep and 359 characters long.
    wide = "+".join(["(x+x+x+x+x+x+x+x+x+x+x)"] * 15)
    assert len(wide) <= MAX_FORMULA_LENGTH
    with pytest.raises(FormulaError, match=f"more than {MAX_NODES}"):
        parse_formula(wide)


def test_syntax_warnings_as_errors_still_give_formula_error() -> None:
    # "1in x" makes the parser warn; under -W error that warning becomes a SyntaxError.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FormulaError):
            parse_formula("1in x")


HOSTILE_CASES: list[tuple[str, str]] = [
    ("", "the formula is empty"),
    ("   \n\t ", "the formula is empty"),
    ("x" * 100_000, "too long (100000 characters; at most 500)"),
    ("(" * 10_000 + "x" + ")" * 10_000, "too long"),
    ("-" * 10_000 + "x", "too long"),
    ("(" * 5000, "too long"),
    ("(" * 220 + "x" + ")" * 220, "nested too deeply"),
    ("-" * 499 + "x", "nested too deeply"),
    ("-(" * 110 + "x" + ")" * 110, "nested too deeply"),
    ("x" + "+x" * 249, "nested too deeply"),
    ("__import__('os').system('ls')", "attribute access is not allowed"),
    ("__import__('os')", "unknown function '__import__'"),
    ("().__class__.__bases__", "attribute access is not allowed"),
    ("x.real", "attribute access is not allowed"),
    ("x.__class__", "attribute access is not allowed"),
    ("lambda: 1", "lambda"),
    ("[x for x in y]", "comprehensions"),
    ("(x for x in y)", "comprehensions"),
    ('"a"*10**9', "strings are not allowed"),
    ("'x'", "strings are not allowed"),
    ("b'x'", "strings are not allowed"),
    ("f'{x}'", "f-strings are not allowed"),
    ("9**9**9", "exponent too large"),
    ("2**1000", "exponent too large"),
    ("x**(10**3)", "exponent too large"),
    ("x^-101", "exponent too large"),
    ("x**(0/0)", "exponent is not a number"),
    ("x**log(0)", "exponent too large"),
    ("1e999", "number is not finite"),
    ("x + 1e13", "number too large"),
    ("9" * 400, "number too large"),
    ("z", "unknown name 'z': use x, y, pi, e"),
    ("__builtins__", "unknown name '__builtins__'"),
    ("foo(x)", "unknown function 'foo'; allowed: abs, acos"),
    ("sin(x, y)", "sin() takes 1 argument, got 2"),
    ("atan2(x)", "atan2() takes 2 arguments, got 1"),
    ("max()", "max() takes 2 arguments, got 0"),
    ("sin(x=1)", "keyword arguments"),
    ("sin(*x)", "starred"),
    ("x[0]", "subscripts"),
    ("x < y", "comparisons are not allowed"),
    ("x if y else 1", "conditional expressions"),
    ("(z := 1)", "assignment expressions"),
    ("x and y", "boolean operators"),
    ("not x", "'not' is not allowed"),
    ("~x", "operator '~' is not allowed"),
    ("x & y", "operator '&' is not allowed"),
    ("x | y", "operator '|' is not allowed"),
    ("x << 2", "operator '<<' is not allowed"),
    ("x // 2", "operator '//' is not allowed"),
    ("x % 2", "operator '%' is not allowed"),
    ("x @ y", "operator '@' is not allowed"),
    ("1j", "complex numbers"),
    ("True", "True and False"),
    ("None", "None"),
    ("...", "Ellipsis"),
    ("[x, y]", "lists are not allowed"),
    ("{x}", "sets are not allowed"),
    ("{x: y}", "dictionaries are not allowed"),
    ("x, y", "tuples are not allowed"),
    ("await x", "'await' is not allowed"),
    ("(yield)", "'yield' is not allowed"),
    ("sin", "'sin' is a function"),
    ("x(2)", "'x' is not a function"),
    ("(x)(2)", "'x' is not a function"),
    ("(1)(2)", "only the allowed functions can be called"),
    ("x +", "syntax error at the end of the formula"),
    ("x + * y", "syntax error at column 5"),
    ("x ^^ y", "syntax error at column 4"),
    ("x = 1", "syntax error at column"),
    ("import os", "syntax error at column"),
    ("x\x00", "null bytes"),
    ("x\ud800", "could not be read"),
]


@pytest.mark.parametrize(("text", "fragment"), HOSTILE_CASES, ids=lambda v: repr(v)[:40])
def test_hostile_input_is_rejected_fast(text: str, fragment: str) -> None:
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        try:
            parse_formula(text)
        except FormulaError as error:
            best = min(best, time.perf_counter() - start)
            message = str(error)
        else:
            pytest.fail(f"{text[:60]!r} was accepted")
    assert fragment in message
    assert "\n" not in message
    assert best < REJECTION_BUDGET, f"rejection took {best * 1000:.1f} ms"


_FORMULA_TOKENS = [
    *"xy0123456789.+-*/^() ,sincoexplog_abc[]'\":=<>&|~@%!{}#\\\n\t",
    "x",
    "y",
    "pi",
    "e",
    "e5",
    "1e999",
    "**",
    "^",
    "//",
    "sin(",
    "atan2(",
    "max(",
    "foo(",
    "lambda",
    " if ",
    " for ",
    " in ",
    " and ",
    " not ",
    "__class__",
    "__import__",
    ".real",
    "1j",
    "True",
    "None",
    "9**9**9",
    "0x",
    "_",
]

formula_like_text = st.one_of(
    st.text(),
    st.text(alphabet="xy0123456789.+-*/^() ,sincoexplog_abc[]'\""),
    st.lists(st.sampled_from(_FORMULA_TOKENS), max_size=40).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(formula_like_text)
def test_any_text_parses_or_raises_formula_error(text: str) -> None:
    try:
        formula = parse_formula(text)
    except FormulaError as error:
        assert str(error)
        assert "\n" not in str(error)
        return
    assert isinstance(formula, Formula)


# Well-formed formulas built from the grammar: they must parse (unless a documented limit
# trips) and evaluate to the broadcast shape without raising.
_leaves = st.one_of(
    st.sampled_from(["x", "y", "pi", "e"]),
    st.integers(min_value=0, max_value=1000).map(str),
    st.floats(min_value=0, max_value=1e6, allow_nan=False).map(repr),
)


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    unary = sorted(name for name, spec in FUNCTIONS.items() if spec.arity == 1)
    binary = sorted(name for name, spec in FUNCTIONS.items() if spec.arity == 2)
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**", "^"]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        children.map(lambda c: f"-{c}"),
        st.tuples(st.sampled_from(unary), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(binary), children, children).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"
        ),
    )


grammar_formulas = st.recursive(_leaves, _extend, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(grammar_formulas)
def test_grammar_formulas_evaluate_with_broadcast_shape(text: str) -> None:
    try:
        formula = parse_formula(text)
    except FormulaError as error:
        assert "exponent" in str(error) or "too" in str(error)
        return
    x = torch.linspace(-2, 2, 3, dtype=torch.float64).reshape(3, 1).requires_grad_(True)
    y = torch.linspace(-1, 1, 4, dtype=torch.float64).reshape(1, 4).requires_grad_(True)
    out = formula(x, y)
    assert out.shape == (3, 4)
    assert out.dtype == torch.float64
    out.sum().backward()
    assert x.grad is not None
    assert y.grad is not None
