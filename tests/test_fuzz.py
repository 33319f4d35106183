"""Property-based fuzzing (hypothesis) of the text that reaches OptLab from outside.

Fuzzed: the formula parser (`optlab.surface.formula.parse_formula`, `formula_surface`,
`resolve_surface("custom", ...)`), the SPEC parsers (`OptimizerConfig.from_text`,
`SchedulerConfig.from_text`, `Plan.from_text`, `Change.from_text`, `Axis.from_text`) and
the share-link decoders (`config_from_params`, `train_from_params`, the sweeps page's
`SWEEP` table with `apply_share_params`).
Each gets several families of input: well-formed ones built from its own grammar and
registry (names, ranges, caps and their edges), hostile ones (junk mixed in, Python
tricks such as ``__import__('os')``, deep nesting, huge numbers) and arbitrary text
(any code point, lone surrogates included, up to a few thousand characters).

Two properties hold for every input:

1. the call returns, or raises its own error type (`FormulaError` for the parser,
   `ValueError` with a message for the rest), never anything else; a compiled formula
   evaluates on a ``(..., 2)`` tensor to a tensor (possibly non-finite);
2. the call takes less than 50 ms (`BUDGET`).

Runs are derandomized, so CI explores the same examples every time.
"""

from __future__ import annotations

import io
import math
import string
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from optlab.links import (
    KNOWN_KEYS,
    MAX_VALUE_LENGTH,
    SWEEP,
    TRAIN_KEYS,
    config_from_params,
    train_from_params,
)
from optlab.optim import registry
from optlab.optim.builtin import PRESETS
from optlab.optim.config import OptimizerConfig
from optlab.optim.hparams import HParam
from optlab.optim.plans import GROUPS, MAX_CHANGES, Change, Plan
from optlab.optim.registry import get_spec
from optlab.optim.schedulers import SCHEDULERS, SchedulerConfig
from optlab.surface import problem as surface_problem
from optlab.surface import surfaces
from optlab.surface.formula import (
    FUNCTIONS,
    MAX_FORMULA_LENGTH,
    Formula,
    FormulaError,
    parse_formula,
)
from optlab.surface.run import MAX_OPTIMIZERS, SurfaceRunConfig
from optlab.surface.surfaces import CUSTOM, FORMULA_BOUNDS, MAX_COORD, SURFACES, Surface
from optlab.sweep.batched import sweepable
from optlab.sweep.config import MAX_RESOLUTION, SCALES, START_AXES, Axis
from optlab.train.checkpoint import REQUIRED_KEYS, read_checkpoint
from optlab.train.models import MODELS
from optlab.train.run import DEVICES, MAX_SLOTS, TrainRunConfig
from optlab.ui.sweep import settings as sweep_settings

#: The most one parse (or one share-link decode) may take, in seconds.
BUDGET = 0.050
#: Tries before a call counts as slow: a one-off pause (the garbage collector, the OS
#: scheduler) is not the parser's, but an input that is slow stays slow on every try.
TRIES = 3


def apply_share_params(state: dict[str, Any], params: dict[str, list[str]]) -> None:
    """What the sweeps page does with a link: decode it with its table, write the widgets."""
    sweep_settings.apply_link(state, SWEEP.from_params(params))


FUZZ = settings(
    max_examples=120,
    deadline=None,  # the budget is asserted by the tests themselves, best of TRIES
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ_FEW = settings(FUZZ, max_examples=60)


# --- helpers -------------------------------------------------------------------------------


def _clear_caches() -> None:
    """Empties the surface caches, so that every timing measures the real work."""
    surface_problem.resolve_surface.cache_clear()
    surfaces.formula_surface.cache_clear()
    surfaces._grid.cache_clear()


def timed(
    call: Callable[[], Any], allowed: type[Exception] | tuple[type[Exception], ...]
) -> tuple[Any, float]:
    """Runs ``call``: its result or ``allowed`` error, and the best time of up to `TRIES`.

    Any other exception propagates and fails the test, with the input in the report.
    """
    best = math.inf
    outcome: Any = None
    for _ in range(TRIES):
        _clear_caches()
        start = time.perf_counter()
        try:
            outcome = call()
        except allowed as err:
            outcome = err
        best = min(best, time.perf_counter() - start)
        if best < BUDGET:
            break
    return outcome, best


def check_budget(seconds: float, what: object) -> None:
    shown = repr(what)
    shown = shown if len(shown) <= 300 else shown[:300] + "..."
    assert seconds < BUDGET, f"took {seconds * 1000:.1f} ms (budget {BUDGET * 1000:.0f}) on {shown}"


def check_message(err: Exception) -> None:
    """An expected rejection carries a message fit to show the user."""
    assert str(err).strip(), f"{type(err).__name__} without a message"


@pytest.fixture(scope="module", autouse=True)
def _one_thread_and_warm() -> Iterator[None]:
    """One intra-op torch thread (as in test_cnn_changes.py): on a machine busy with other
    work, OpenMP's threads wait on each other at every operation, and a 100-deep formula
    drawn on its 64 x 64 grid then took 800 ms instead of 2 ms; the budget is about the
    parsers' own work. Then one call of everything: lazy imports and torch's first-call
    setup are not what the budget measures either."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        parse_formula("sin(x) + y**2").on_points(torch.zeros(3, 2, dtype=torch.float64))
        surfaces.formula_surface("x**2 + y**2")
        surface_problem.resolve_surface(CUSTOM, (), "x*y", None)
        for spec in registry.optimizers():
            OptimizerConfig.from_text(spec.key)
        SchedulerConfig.from_text("cosine")
        Plan.from_text("step|10:lr=0.1")
        Axis.from_text("lr=1e-3:1:log:5")
        config_from_params({"opt": ["adam"], "surface": [CUSTOM], "expr": ["x**2+y**2"]})
        train_from_params({"opt": ["adam"]})
        state: dict[str, Any] = {}
        sweep_settings._defaults(state)
        apply_share_params(state, {"opt": ["sgd"], "x": ["lr=1e-4:1e-1:log:10"]})
        _clear_caches()
        yield
    finally:
        torch.set_num_threads(threads)


#: Points a compiled formula is evaluated on: the origin, signs, fractions, big values.
POINTS = torch.tensor(
    [[0.0, 0.0], [1.0, -1.0], [-2.5, 0.5], [3.0, 7.0], [-1e6, 1e6]], dtype=torch.float64
)


def check_values(values: object) -> None:
    assert isinstance(values, torch.Tensor)
    assert values.shape == POINTS.shape[:-1]


# --- strategies: text and numbers ----------------------------------------------------------

#: Every code point, lone surrogates included (they cannot even be encoded).
any_char = st.characters(codec=None, exclude_categories=())
any_text = st.text(any_char, max_size=80)


def long_text(pieces: st.SearchStrategy[str], limit: int = 4000) -> st.SearchStrategy[str]:
    """Long strings (up to ``limit`` characters) made by repeating a short piece."""
    return st.builds(
        lambda piece, n: (piece * n)[:limit], pieces.filter(bool), st.integers(1, 2000)
    )


arbitrary_text = st.one_of(any_text, long_text(st.text(any_char, max_size=12)))


def numbers_text() -> st.SearchStrategy[str]:
    """Numbers as a user or a link might spell them, extremes and near-misses included."""
    return st.one_of(
        st.integers(-(10**30), 10**30).map(str),
        st.integers(-(10**400), 10**400).map(str),
        st.floats().map(repr),
        st.floats().map(str),
        st.sampled_from([400, 4300, 4301, 5000]).map(lambda n: "9" * n),  # int()'s digit limit
        st.sampled_from(
            [
                "0", "-0", "-0.0", "1", "0.5", "1e308", "1e309", "-1e308", "5e-324", "1e-400",
                "inf", "-inf", "nan", "NaN", "Infinity", "1_000", "0x10", "1e", ".", "",
                " 1 ", "+1", "--1", "1/2", "١٢٣", "²", "½", "1e99999",
            ]
        ),
    )  # fmt: skip


_JUNK_WORDS = ["", " ", "SGD", " Adam ", "foo", "adam:", "adam::", "sgd_", "torch", "__class__",
               "none", "custom", "ｓｇｄ", "sgd\x00", "\ud800", "LR", "lr ", "betas.0", "foreach",
               "params", "key", "values", "fused", "capturable", "differentiable", "=", ":",
               "lr=lr", "ｌｒ", ",", "|", "/", "*=", "…"]  # fmt: skip
junk = st.one_of(any_text, st.text(string.printable, max_size=30), st.sampled_from(_JUNK_WORDS))
_WORDS = ["true", "false", "True", "FALSE", "1", "0", "yes", "none", "None", "strong_wolfe",
          "Strong_Wolfe", "null"]  # fmt: skip
#: Any value a SPEC item might carry: numbers, words, pairs, triples, junk.
spec_values = st.one_of(
    numbers_text(),
    st.sampled_from(_WORDS),
    st.tuples(numbers_text(), numbers_text()).map("/".join),
    st.lists(numbers_text(), min_size=3, max_size=4).map("/".join),
    junk,
)


# --- strategies: formulas ------------------------------------------------------------------

_UNARY_FUNCTIONS = sorted(name for name, spec in FUNCTIONS.items() if spec.arity == 1)
_BINARY_FUNCTIONS = sorted(name for name, spec in FUNCTIONS.items() if spec.arity == 2)
_valid_leaves = st.one_of(
    st.sampled_from(["x", "y", "pi", "e"]),
    st.sampled_from(["0", "1", "2", "0.5", "1e12", "1e-300", "100", "3.0", "1e-12"]),
    st.floats(0, 1e12).map(repr),
    st.integers(0, 10**12).map(str),
)


def _valid_extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**", "^", " ** "]), children).map(
            lambda t: f"({''.join(t)})"
        ),
        st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map("".join),
        st.tuples(st.sampled_from(["-", "+", "- "]), children).map("".join),
        st.tuples(st.sampled_from(_UNARY_FUNCTIONS), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(_BINARY_FUNCTIONS), children, children).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"
        ),
    )


#: Formulas the allow-list accepts, unless a cap trips (exponent, nodes, depth, length).
valid_formulas = st.recursive(_valid_leaves, _valid_extend, max_leaves=60)

_NAMES = [*FUNCTIONS, "foo", "sinx", "Sin", "exp2", "eval", "exec", "open", "__import__",
          "print", "getattr", "globals", "torch", "math", "os", "x", "y", "pi", "e"]  # fmt: skip
_ATOMS = [
    "x", "y", "pi", "e", "0", "1", "2.5", "1e12", "1e13", "1e308", "1e999", "0.0", "1j",
    "True", "None", "...", "z", "X", "inf", "nan", "_", "__builtins__", "'a'", "b'a'",
    "__import__('os')", "__import__('os').getcwd()", "().__class__",
    "().__class__.__bases__[0].__subclasses__()", "x.real", "x.__class__", "[x][0]", "x[0]",
    "[x]", "(x, y)", "{x}", "{x: y}", "lambda: x", "(lambda x: x)(y)", "x if y else 1",
    "(x := 1)", "*x", "not x", "x < y", "x and y", "f'{x}'", "f'{__import__(\"os\")}'",
    "[i for i in (1, 2)]", "(i for i in x)", "await x", "(yield x)", "sin.__call__(x)",
    "sin(x=1)", "max(*x)", "sin(**x)", "sin", "sin()", "sin(x, y)", "atan2(x)", "x(y)",
    "sin(x)(y)", "9**9**9", "9^9^9", "2**1e12", "x**(9**9)", "x^1e12", "(1e12)**100",
    "0**-1", "(-8)**(1/3)", "x**nan", "1/0", "x//y", "x%y", "x@y", "x&y", "x|y", "~x",
    "x<<y", "x>>y", "\x00", "\ud800", "x\n+y", "x\\\ny", "# comment", "ｘ", "1if", "0b2",
]  # fmt: skip
_BINARY = ["+", "-", "*", "/", "**", "^", "//", "%", "@", "&", "|", "<<", ">>", " and ", "<"]


def _hostile_extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(_BINARY), children).map("".join),
        st.tuples(children, st.sampled_from(_BINARY), children).map(lambda t: f"({''.join(t)})"),
        st.tuples(st.sampled_from(["-", "+", "~", "not ", "--"]), children).map("".join),
        st.tuples(st.sampled_from(_NAMES), st.lists(children, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"
        ),
        children.map(lambda c: f"({c})"),
        children.map(lambda c: f"[{c}]"),
        children.map(lambda c: f"{c}.real"),
        children.map(lambda c: f"{c}[0]"),
    )


#: Formula-shaped text with everything the allow-list must refuse mixed in.
hostile_formulas = st.one_of(
    st.recursive(
        st.one_of(st.sampled_from(_ATOMS), numbers_text()), _hostile_extend, max_leaves=40
    ),
    st.lists(st.sampled_from(_ATOMS + _BINARY + ["(", ")", ",", " "]), max_size=60).map("".join),
    long_text(st.sampled_from(_ATOMS + _BINARY + ["(", ")", ",", " "])),
)


@st.composite
def extreme_formulas(draw: st.DrawFn) -> str:
    """Deep nesting, long chains and power towers around the caps (length, nodes, depth)."""
    n = draw(st.integers(0, 700))
    inner = draw(st.sampled_from(["x", "y", "1", "x+y", "9", ""]))
    kind = draw(st.sampled_from(["paren", "call", "unary", "tower", "sum", "list", "pow", "pad"]))
    if kind == "paren":
        return "(" * n + inner + ")" * draw(st.sampled_from([n, max(n - 1, 0), n + 1]))
    if kind == "call":
        name = draw(st.sampled_from(["sin", "exp", "sqrt", "foo", "abs"]))
        return f"{name}(" * n + inner + ")" * n
    if kind == "unary":
        return draw(st.sampled_from(["-", "+", "~", "- "])) * n + inner
    if kind == "tower":
        return inner + draw(st.sampled_from(["**9", "^9", "**x", "^1.5", "**-1"])) * n
    if kind == "sum":
        return inner + draw(st.sampled_from(["+x", "*y", "-1", "+sin(x)", "/exp(y)"])) * n
    if kind == "list":
        return "[" * n + inner + "]" * n
    if kind == "pow":
        return "9" + "**9" * (n % 6) + draw(st.sampled_from(["", ".0", "e2"]))
    # Around the length cap, which counts after strip().
    return " " * n + "1" * draw(st.integers(MAX_FORMULA_LENGTH - 2, MAX_FORMULA_LENGTH + 2))


FORMULA_FAMILIES = {
    "well-formed": valid_formulas,
    "hostile": hostile_formulas,
    "extreme": extreme_formulas(),
    "arbitrary": arbitrary_text,
}
formula_texts = st.one_of(*FORMULA_FAMILIES.values())

_coord = st.floats(-MAX_COORD, MAX_COORD, allow_nan=False, allow_infinity=False)
_range = st.tuples(_coord, _coord).map(sorted).map(tuple).filter(lambda p: p[0] < p[1])
#: Valid bounds ((xmin, xmax), (ymin, ymax)), from tiny to the largest allowed.
valid_bounds = st.one_of(st.just(FORMULA_BOUNDS), st.tuples(_range, _range))


# --- 1. the formula parser ----------------------------------------------------------------


@pytest.mark.parametrize("family", list(FORMULA_FAMILIES))
@pytest.mark.filterwarnings("ignore::SyntaxWarning")  # ast.parse warns on e.g. "1if"
@FUZZ
@given(data=st.data())
def test_parse_formula_returns_a_formula_or_raises_formula_error_fast(
    family: str, data: st.DataObject
) -> None:
    text = data.draw(FORMULA_FAMILIES[family], label="text")
    outcome, seconds = timed(lambda: parse_formula(text), FormulaError)
    check_budget(seconds, text)
    if isinstance(outcome, FormulaError):
        check_message(outcome)
        assert "\n" not in str(outcome)
        return
    assert isinstance(outcome, Formula)
    try:
        values = outcome.on_points(POINTS)
    except FormulaError as err:  # evaluating may only fail with the parser's own error
        check_message(err)
        return
    check_values(values)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "().__class__.__bases__[0].__subclasses__()",
        "open('/etc/passwd').read()",
        "9**9**9",
        "x**(9**9**9)",
        "(" * 99 + "x" + ")" * 99,
        "(" * 200 + "x" + ")" * 200,
        "-" * 499 + "x",
        "+".join(["x"] * 250),
        "sin(" * 150 + "x" + ")" * 150,
        "\ud800",
        "x\x00",
        "1" * 10_000,
        " " * 10_000 + "x",
    ],
)
@pytest.mark.filterwarnings("ignore::SyntaxWarning")
def test_formula_regressions(text: str) -> None:
    outcome, seconds = timed(lambda: parse_formula(text), FormulaError)
    check_budget(seconds, text)
    assert isinstance(outcome, Formula | FormulaError)


@pytest.mark.filterwarnings("ignore::SyntaxWarning")
@FUZZ_FEW
@given(st.one_of(valid_formulas, formula_texts), valid_bounds)
@example("x**2 + y**2", FORMULA_BOUNDS)
@example("sqrt(x) + log(y)", FORMULA_BOUNDS)
@example("1/0 + 0*x", FORMULA_BOUNDS)
@example("exp(exp(exp(x*y)))", ((-MAX_COORD, MAX_COORD), (-MAX_COORD, MAX_COORD)))
@example("+".join(["exp(sin(x)*cos(y))"] * 27), FORMULA_BOUNDS)
def test_formula_surface_returns_a_surface_or_raises_formula_error_fast(
    text: str, bounds: surfaces.Bounds
) -> None:
    # The uncached function: each example does the full work (parse, grid, start point).
    build = surfaces.formula_surface.__wrapped__
    outcome, seconds = timed(lambda: build(text, bounds), FormulaError)
    check_budget(seconds, (text, bounds))
    if isinstance(outcome, FormulaError):
        check_message(outcome)
        return
    assert isinstance(outcome, Surface)
    try:
        values = outcome(POINTS)
    except FormulaError as err:
        check_message(err)
        return
    check_values(values)


@pytest.mark.filterwarnings("ignore::SyntaxWarning")
@FUZZ_FEW
@given(st.one_of(valid_formulas, formula_texts))
@example("")
@example("x**2 + 10*y**2 + 3*sin(3*x)")
@example("0/0 + 0*x*y")
def test_resolve_surface_custom_returns_a_surface_or_raises_value_error_fast(text: str) -> None:
    outcome, seconds = timed(
        lambda: surface_problem.resolve_surface(CUSTOM, (), text, None), ValueError
    )
    check_budget(seconds, text)
    if isinstance(outcome, ValueError):
        check_message(outcome)
        return
    assert isinstance(outcome, Surface)
    try:
        values = outcome(POINTS)
    except ValueError as err:
        check_message(err)
        return
    check_values(values)


# --- strategies: SPEC texts ----------------------------------------------------------------


def hparam_text(hp: HParam) -> st.SearchStrategy[str]:
    """A value of ``hp`` as text, in its own form: within its range, edges included."""
    kind = hp.kind
    if kind == "bool":
        return st.sampled_from(["true", "false", "True", " FALSE "])
    if kind == "choice":
        return st.sampled_from([hp.format(c) for c in hp.choices])
    low = -1e6 if hp.low is None else hp.low
    high = 1e6 if hp.high is None else hp.high
    if kind == "int":
        number = st.integers(int(low) - 1, int(high) + 1).map(str)
    else:
        number = st.one_of(st.floats(low, high).map(repr), st.sampled_from([repr(low), repr(high)]))
    return st.tuples(number, number).map("/".join) if kind == "pair" else number


@st.composite
def spec_texts(draw: st.DrawFn, registry: dict[str, tuple[HParam, ...]], noisy: bool) -> str:
    """``key:name=value,...`` with a registry key and distinct knobs of its own; ``noisy``
    mixes in junk keys, names, values, repeated names and odd separators."""
    keys = st.sampled_from(sorted(registry))
    key = draw(st.one_of(keys, junk) if noisy else keys)
    hparams = registry.get(key, ())
    chosen = (
        draw(st.lists(st.sampled_from(hparams), unique_by=lambda hp: hp.name)) if hparams else []
    )
    values = [
        draw(st.one_of(hparam_text(hp), spec_values) if noisy else hparam_text(hp)) for hp in chosen
    ]
    items = [f"{hp.name}={value}" for hp, value in zip(chosen, values, strict=True)]
    if noisy:
        extra = st.one_of(
            st.tuples(junk, st.sampled_from(["=", "==", ""]), spec_values).map("".join),
            junk,
            st.sampled_from(items) if items else junk,  # a repeated name
        )
        for item in draw(st.lists(extra, max_size=3)):
            items.insert(draw(st.integers(0, len(items))), item)
        colon = draw(st.sampled_from([":", " : ", "", "::", ";"]))
        comma = draw(st.sampled_from([",", ", ", ",,", ";"]))
    else:
        colon, comma = ":", draw(st.sampled_from([",", ", "]))
    return key + (colon + comma.join(items) if items else draw(st.sampled_from(["", ":"])))


_OPT_REGISTRY = {spec.key: spec.hparams for spec in registry.optimizers()} | {
    p.key: get_spec(p.optimizer).hparams for p in PRESETS
}
_OPT_KEYS = sorted(_OPT_REGISTRY)
_SCHED_REGISTRY = {spec.key: spec.hparams for spec in SCHEDULERS}
_OPT_NAMES = sorted({hp.name for spec in registry.optimizers() for hp in spec.hparams})
_NUMERIC_NAMES = sorted(
    {
        hp.name
        for spec in registry.optimizers()
        for hp in spec.hparams
        if hp.kind in ("float", "int")
    }
)


def change_texts(noisy: bool) -> st.SearchStrategy[str]:
    """``[epoch]AT:[GROUP.]NAME=VALUE`` or ``...NAME*=FACTOR``."""
    if not noisy:
        return st.tuples(
            st.sampled_from(["", "epoch", "EPOCH ", " "]),
            st.integers(0, 10**6).map(str),
            st.sampled_from([":", " : "]),
            st.sampled_from(["", *(g + "." for g in GROUPS)]),
            st.sampled_from(_NUMERIC_NAMES),
            st.sampled_from(["=", "*=", " *= "]),
            st.one_of(st.floats(1e-6, 10).map(repr), st.sampled_from(["0", "1", "-1"])),
        ).map("".join)
    return st.one_of(
        st.tuples(
            st.sampled_from(["", "epoch", "step", "-"]),
            numbers_text(),
            st.sampled_from([":", "", "=", "::"]),
            st.sampled_from(["", *(g + "." for g in GROUPS), "head.", ".", "features.."]),
            st.sampled_from(_OPT_NAMES) | junk,
            st.sampled_from(["=", "*=", "+=", "", "=="]),
            spec_values,
        ).map("".join),
        junk,
    )


def plan_texts(noisy: bool) -> st.SearchStrategy[str]:
    """``SCHEDULER[|CHANGE...]``, or only changes, up to past `MAX_CHANGES`."""
    scheduler, change = spec_texts(_SCHED_REGISTRY, noisy), change_texts(noisy)
    plans = st.one_of(
        st.tuples(scheduler, st.lists(change, max_size=MAX_CHANGES + 2)).map(
            lambda t: "|".join([t[0], *t[1]])
        ),
        st.lists(change, max_size=MAX_CHANGES + 2).map("|".join),
    )
    if noisy:
        plans = st.one_of(
            plans,
            st.lists(st.one_of(scheduler, change, junk), max_size=25).map("|".join),
            st.lists(change, max_size=4).map(lambda cs: "||".join(cs) + "|"),
        )
    return plans


_AXIS_NAMES = [*_NUMERIC_NAMES, *START_AXES, "betas.0", "betas.1"]


def axis_texts(noisy: bool) -> st.SearchStrategy[str]:
    """``NAME=LOW:HIGH:log|lin:N``."""
    if not noisy:
        bound = st.one_of(st.floats(1e-6, 10).map(repr), st.integers(-5, 5).map(str))
        return st.tuples(
            st.sampled_from(_AXIS_NAMES),
            st.sampled_from(["=", " = "]),
            st.tuples(
                bound, bound, st.sampled_from([*SCALES, "LOG"]),
                st.integers(0, MAX_RESOLUTION + 1).map(str),
            ).map(":".join),
        ).map("".join)  # fmt: skip
    return st.tuples(
        st.sampled_from([*_AXIS_NAMES, "betas", "betas.2", ""]) | junk,
        st.sampled_from(["=", "", "=="]),
        st.lists(
            st.one_of(numbers_text(), st.sampled_from([*SCALES, "exp"]), junk), max_size=6
        ).map(":".join),
    ).map("".join)


def optimizer_texts(noisy: bool) -> st.SearchStrategy[str]:
    return spec_texts(_OPT_REGISTRY, noisy)


def scheduler_texts(noisy: bool) -> st.SearchStrategy[str]:
    return spec_texts(_SCHED_REGISTRY, noisy)


SPEC_PARSERS = {
    "optimizer": (OptimizerConfig.from_text, OptimizerConfig, optimizer_texts),
    "scheduler": (SchedulerConfig.from_text, SchedulerConfig, scheduler_texts),
    "plan": (Plan.from_text, Plan, plan_texts),
    "change": (Change.from_text, Change, change_texts),
    "axis": (Axis.from_text, Axis, axis_texts),
}
SPEC_FAMILIES = {
    "well-formed": lambda make: make(False),
    "noisy": lambda make: make(True),
    "arbitrary": lambda make: st.one_of(arbitrary_text, long_text(make(True), limit=3000)),
}


# --- 2. the SPEC parsers ------------------------------------------------------------------


@pytest.mark.parametrize("family", list(SPEC_FAMILIES))
@pytest.mark.parametrize("parser", list(SPEC_PARSERS))
@FUZZ
@given(data=st.data())
def test_spec_parsers_return_a_config_or_raise_value_error_fast(
    parser: str, family: str, data: st.DataObject
) -> None:
    parse, kind, make = SPEC_PARSERS[parser]
    text = data.draw(SPEC_FAMILIES[family](make), label="text")
    outcome, seconds = timed(lambda: parse(text), ValueError)
    check_budget(seconds, text)
    if isinstance(outcome, ValueError):
        check_message(outcome)
        return
    assert isinstance(outcome, kind)


@pytest.mark.parametrize(
    "text",
    [
        "adam:lr=1e308",
        "adam:lr=nan",
        "adam:lr=-0",
        "adam:betas=0.9/0.999/0.5",
        "adam:betas=nan/0.5",
        "lbfgs:max_iter=" + "9" * 400,
        "lbfgs:max_iter=" + "9" * 5000,
        "lbfgs:history_size=1e3",
        "lbfgs:line_search_fn=None",
        "sgd:nesterov=true",
        "nesterov:momentum=0",
        "rprop:etas=1.5/0.5",
        "rprop:step_sizes=50/1e-6",
        "sgd:lr=0.1,lr=0.2",
        "sgd:foreach=true",
        "sgd:lr",
        "sgd:" + ",".join(["lr=0.1"] * 2000),
    ],
)
def test_optimizer_spec_regressions(text: str) -> None:
    outcome, seconds = timed(lambda: OptimizerConfig.from_text(text), ValueError)
    check_budget(seconds, text)
    assert isinstance(outcome, OptimizerConfig | ValueError)


# --- strategies: share links ---------------------------------------------------------------

_SWEEP_KEYS = ("page", "mode", "surface", "expr", "start", "steps", "noise", "seed", "starts",
               "fair", "lr", "opt", "x", "y", "metric")  # fmt: skip
_SURFACE_PARAMS = {hp.name: hp for s in SURFACES for hp in s.params}
_small = st.floats(-10, 10).map(repr)


def _ints(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(str)


def _floats(low: float, high: float) -> st.SearchStrategy[str]:
    return st.floats(low, high).map(repr)


def _bounds_text() -> st.SearchStrategy[str]:
    return st.tuples(_range, _range).map(lambda b: ",".join(repr(v) for p in b for v in p))


#: Values a valid link carries for each key (a few are near-misses: edges of ranges).
LINK_VALUES: dict[str, st.SearchStrategy[str]] = {
    "page": st.sampled_from(["sweep", "cnn", "playground"]),
    "surface": st.sampled_from([*(s.key for s in SURFACES), CUSTOM, "CUSTOM", " beale "]),
    "sp": st.sampled_from(sorted(_SURFACE_PARAMS)).flatmap(
        lambda name: hparam_text(_SURFACE_PARAMS[name]).map(lambda v: f"{name}={v}")
    ),
    "expr": st.one_of(valid_formulas, formula_texts),
    "bounds": _bounds_text(),
    "start": st.tuples(_small, _small).map(",".join),
    "steps": _ints(1, 5_000),
    "noise": _floats(0, 10),
    "seed": _ints(0, 2**53 - 1),
    "opt": spec_texts(_OPT_REGISTRY, False),
    "plan": plan_texts(False),
    "data": st.sampled_from(["cifar10", "synthetic", "CIFAR10"]),
    "model": st.sampled_from([m.key for m in MODELS]),
    "clr": _floats(1e-3, 1000),
    "freeze": st.one_of(
        st.sampled_from(["off", "OFF", "epoch1", " epoch2 ", "0"]), _ints(1, 5_000)
    ),
    "batch": _ints(1, 1024),
    "epochs": _ints(1, 200),
    "train": st.one_of(st.sampled_from(["all", "ALL", " all "]), _ints(1, 10**7)),
    "test": st.one_of(st.sampled_from(["all", "ALL", " all "]), _ints(1, 10**7)),
    "augment": st.sampled_from(["true", "false", "True"]),
    "clip": _floats(1e-3, 1e3),
    "eval": _ints(1, 100_000),
    "device": st.sampled_from(DEVICES),
    "mode": st.sampled_from(list(sweep_settings.MODES)),
    "starts": _ints(2, MAX_RESOLUTION),
    "fair": st.sampled_from(sweepable()),
    "lr": axis_texts(False),
    "x": axis_texts(False),
    "y": axis_texts(False),
    "metric": st.sampled_from(["final_loss", "best_loss", "steps_to_target", "diverged_at"]),
}
#: What a hostile link may put in any value: near-miss numbers, junk, anything.
_BAD_VALUES = st.one_of(
    numbers_text(),
    junk,
    st.sampled_from(["", "all", "none", "/etc", "../../data", "cuda:0", "tpu", "-1,1"]),
    st.text(any_char, min_size=MAX_VALUE_LENGTH - 1, max_size=MAX_VALUE_LENGTH + 1),
)
_JUNK_KEYS = ["utm_source", "fbclid", "", "OPT", "opt ", "__proto__", "page\x00"]


@st.composite
def link_params(
    draw: st.DrawFn, keys: tuple[str, ...], optimizers: list[str], noisy: bool
) -> dict[str, list[str]]:
    """Query parameters as ``st.query_params.get_all`` gives them: key -> 0-3 strings.

    A well-formed link has each chosen key once with a plausible value and one to
    `MAX_SLOTS` optimizers; a noisy one has junk keys, 0-3 values per key, and values
    drawn from anything.
    """
    key_choice = st.sampled_from(keys)
    if noisy:
        key_choice = st.one_of(key_choice, st.sampled_from(_JUNK_KEYS), any_text)
    params: dict[str, list[str]] = {}
    for key in draw(st.lists(key_choice, max_size=10, unique=True)):
        plausible = LINK_VALUES.get(key, any_text)
        if noisy:
            count = draw(st.integers(0, 3))
            params[key] = [draw(st.one_of(plausible, _BAD_VALUES)) for _ in range(count)]
        else:
            params[key] = [draw(plausible)]
    if not noisy or draw(st.booleans()):
        params["opt"] = draw(
            st.lists(
                st.one_of(st.sampled_from(optimizers), LINK_VALUES["opt"]),
                min_size=1,
                max_size=1 if keys == _SWEEP_KEYS else MAX_SLOTS,
            )
        )
    return params


LINK_FAMILIES = ["well-formed", "noisy"]


# --- 3. the share-link decoders -----------------------------------------------------------


@pytest.mark.filterwarnings("ignore::SyntaxWarning")
@pytest.mark.parametrize("family", LINK_FAMILIES)
@FUZZ
@given(
    data=st.data(),
    defaults=st.sampled_from([(), (OptimizerConfig.create("adam"), OptimizerConfig.create("sgd"))]),
)
def test_config_from_params_returns_a_config_or_raises_value_error_fast(
    family: str, data: st.DataObject, defaults: tuple[OptimizerConfig, ...]
) -> None:
    params = data.draw(link_params(KNOWN_KEYS, _OPT_KEYS, family == "noisy"), label="params")
    outcome, seconds = timed(lambda: config_from_params(params, defaults), ValueError)
    check_budget(seconds, params)
    if isinstance(outcome, ValueError):
        check_message(outcome)
        return
    assert isinstance(outcome, SurfaceRunConfig)


@pytest.mark.parametrize(
    "params",
    [
        {"surface": [CUSTOM], "expr": ["sin(" * 99 + "x" + ")" * 99], "opt": ["adam"]},
        {"surface": [CUSTOM], "expr": ["+".join(["exp(x*y)"] * 60)], "opt": ["adam"]},
        {"surface": [CUSTOM], "expr": ["x"], "bounds": ["-1e6,1e6,-1e6,1e6"], "opt": ["sgd"]},
        {"surface": [CUSTOM], "expr": ["x"], "bounds": ["1e308,-1e308,0,1"], "opt": ["sgd"]},
        {"opt": ["lbfgs:max_iter=200"], "steps": ["5000"]},
        {"opt": ["adam"] * (MAX_OPTIMIZERS + 1)},
        {"opt": ["adam"] * 5000},
        {"opt": ["adam"], "plan": ["|".join(["1:lr=0.1"] * (MAX_CHANGES + 1))]},
        {"opt": ["adam"], "plan": ["none"] * 5000},
        {"opt": ["adam"], "sp": ["kappa=1"] * 5000},
        {"opt": ["adam"], "surface": ["quadratic"], "sp": ["kappa=1", "kappa=2"] * 2500},
    ],
    ids=lambda p: ",".join(f"{k}x{len(v)}" for k, v in p.items()),
)
@pytest.mark.filterwarnings("ignore::SyntaxWarning")
def test_playground_link_regressions(params: dict[str, list[str]]) -> None:
    outcome, seconds = timed(lambda: config_from_params(params), ValueError)
    check_budget(seconds, params)
    assert isinstance(outcome, SurfaceRunConfig | ValueError)


@pytest.mark.parametrize("family", LINK_FAMILIES)
@FUZZ
@given(data=st.data())
def test_train_from_params_returns_a_config_or_raises_value_error_fast(
    family: str, data: st.DataObject
) -> None:
    params = data.draw(link_params(TRAIN_KEYS, _OPT_KEYS, family == "noisy"), label="params")
    outcome, seconds = timed(lambda: train_from_params(params), ValueError)
    check_budget(seconds, params)
    if isinstance(outcome, ValueError):
        check_message(outcome)
        return
    cfg, data_choice = outcome
    assert isinstance(cfg, TrainRunConfig)
    assert data_choice in ("cifar10", "synthetic")


@pytest.mark.parametrize(
    "params",
    [
        {"opt": ["adam"] * (MAX_SLOTS + 1)},
        {"opt": ["lbfgs"], "clr": ["2"]},
        {"opt": ["lbfgs", "adam"], "freeze": ["5", "epoch1"], "steps": ["5"]},
        {"opt": ["adam"], "train": ["9" * MAX_VALUE_LENGTH]},
        {"opt": ["adam"], "plan": ["epoch3:classifier.lr*=0.1"], "data": ["../../etc"]},
        {"opt": ["adam"], "device": ["cuda:0"]},
    ],
    ids=lambda p: ",".join(f"{k}x{len(v)}" for k, v in p.items()),
)
def test_train_link_regressions(params: dict[str, list[str]]) -> None:
    outcome, seconds = timed(lambda: train_from_params(params), ValueError)
    check_budget(seconds, params)
    assert isinstance(outcome, tuple | ValueError)


@pytest.mark.filterwarnings("ignore::SyntaxWarning")
@pytest.mark.parametrize("family", LINK_FAMILIES)
@FUZZ
@given(data=st.data())
def test_apply_share_params_fills_the_state_or_raises_value_error_fast(
    family: str, data: st.DataObject
) -> None:
    params = data.draw(link_params(_SWEEP_KEYS, sweepable(), family == "noisy"), label="params")
    state: dict[str, Any] = {}
    sweep_settings._defaults(state)
    outcome, seconds = timed(lambda: apply_share_params(state, params), ValueError)
    check_budget(seconds, params)
    if isinstance(outcome, ValueError):
        check_message(outcome)
        return
    assert outcome is None
    assert state[sweep_settings.MODE] in sweep_settings.MODES


@pytest.mark.parametrize(
    "params",
    [
        {"mode": ["fair"], "fair": ["adam", "lbfgs"]},
        {"mode": ["fair"], "fair": ["adam"] * 5000},
        {"opt": ["lbfgs"]},
        {"x": ["lr=1:1:lin:2"]},
        {"surface": [CUSTOM], "expr": ["__import__('os')"]},
        {"starts": ["9" * MAX_VALUE_LENGTH]},
    ],
    ids=lambda p: ",".join(f"{k}x{len(v)}" for k, v in p.items()),
)
def test_sweep_link_regressions(params: dict[str, list[str]]) -> None:
    state: dict[str, Any] = {}
    sweep_settings._defaults(state)
    outcome, seconds = timed(lambda: apply_share_params(state, params), ValueError)
    check_budget(seconds, params)
    assert outcome is None or isinstance(outcome, ValueError)


# --- regressions found by fuzzing ---------------------------------------------------------
#
# Each keeps the input that found a bug (now fixed) as an explicit case.

#: Distinct (unknown) knob names in one SPEC: about 47 kB of text, a fraction of what the
#: checkpoint uploader lets through (server.maxUploadSize is 20 MB).
MANY_NAMES = 6000


def _many_names(key: str) -> str:
    return key + ":" + ",".join(f"k{i}=1" for i in range(MANY_NAMES))


def _checkpoint_with_long_optimizer_spec() -> None:
    """The upload path of the CNN page: read_checkpoint, then TrainRunConfig.from_dict."""
    state: dict[str, Any] = dict.fromkeys(REQUIRED_KEYS, 0)
    state["config"] = {"slots": [{"optimizer": _many_names("sgd")}]}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    checkpoint = read_checkpoint(buffer.getvalue())  # accepted: only plain data inside
    TrainRunConfig.from_dict(checkpoint["config"])


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: OptimizerConfig.from_text(_many_names("sgd")), id="optimizer"),
        pytest.param(lambda: SchedulerConfig.from_text(_many_names("step")), id="scheduler"),
        pytest.param(_checkpoint_with_long_optimizer_spec, id="checkpoint-upload"),
    ],
)
def test_spec_with_thousands_of_distinct_names_is_rejected_fast(
    call: Callable[[], object],
) -> None:
    start = time.perf_counter()  # one try: this input is slow on every try
    with pytest.raises(ValueError, match="has no"):
        call()
    check_budget(time.perf_counter() - start, f"a SPEC with {MANY_NAMES} distinct names")


def test_train_link_with_hundreds_of_optimizers_is_rejected_fast(monkeypatch) -> None:
    parsed: list[str] = []
    real_from_text = OptimizerConfig.from_text

    def counting_from_text(text: str) -> OptimizerConfig:
        parsed.append(text)
        return real_from_text(text)

    monkeypatch.setattr(OptimizerConfig, "from_text", staticmethod(counting_from_text))
    plan = "step:step_size=5,gamma=0.5|" + "|".join(f"{i}:lr*=0.9" for i in range(MAX_CHANGES))
    opt = "lbfgs:history_size=1000,line_search_fn=strong_wolfe"
    # 1000 query fields, about 150 kB: a link Streamlit passes on to the page.
    params = {"opt": [opt] * 500, "plan": [plan] * 500}
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"slots|opt"):
        train_from_params(params)
    seconds = time.perf_counter() - start
    # The deterministic form of the budget (timings vary by machine): a link over the cap
    # is refused before its optimizers are parsed, as config_from_params does.
    assert len(parsed) <= MAX_SLOTS, f"parsed {len(parsed)} optimizer specs"
    check_budget(seconds, "500 opt and 500 plan values")


#: `sweep_settings.fair_section` draws the fair-comparison optimizers with
#: ``st.multiselect(..., max_selections=6)``.
FAIR_MAX_SELECTIONS = 6


def test_sweep_link_with_more_fair_optimizers_than_the_page_allows_is_refused() -> None:
    state: dict[str, Any] = {}
    sweep_settings._defaults(state)
    params = {"mode": ["fair"], "fair": sweepable()[: FAIR_MAX_SELECTIONS + 1]}
    assert len(params["fair"]) > FAIR_MAX_SELECTIONS
    try:
        apply_share_params(state, params)
    except ValueError as err:
        check_message(err)
        return
    assert len(state[sweep_settings.FAIR_OPTS]) <= FAIR_MAX_SELECTIONS, state[
        sweep_settings.FAIR_OPTS
    ]
