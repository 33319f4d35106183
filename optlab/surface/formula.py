"""Safe parsing of user-typed formulas ``f(x, y)`` into torch functions.

A formula such as ``(1 - x)^2 + 100*(y - x^2)^2`` comes straight from a text box, so it is
treated as hostile input. The text is capped in length, parsed with
``ast.parse(text, mode="eval")`` (which only builds a syntax tree and runs nothing), checked
node by node against an allow-list, and then turned into a tree of small closures that call
torch operations. Python itself never executes the text, so attribute access, imports, dunder
tricks and the like have no way in: anything the allow-list does not name is rejected with a
one-line message that can be shown to the user.

Example:
    >>> f = parse_formula("x^2 + 3*y")
    >>> f(torch.tensor(2.0), torch.tensor(1.0))
    tensor(7.)
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

import torch

from optlab.caps import CAPS
from optlab.surface.formula_grammar import (
    ALLOWED_HINT,
    BINARY_OPERATORS,
    CONSTANTS,
    FUNCTIONS,
    REJECTED_NODES,
    REJECTED_OPERATORS,
    VARIABLES,
    FunctionSpec,
    Value,
    fold,
)

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_FORMULA_LENGTH",
    "MAX_LITERAL",
    "MAX_NODES",
    "Formula",
    "FormulaError",
    "FunctionSpec",
    "parse_formula",
]

MAX_FORMULA_LENGTH = CAPS.formula_length
"""Longest accepted formula, in characters (after stripping surrounding whitespace)."""

MAX_NODES = CAPS.formula_nodes
"""Most expression nodes a formula may have."""

MAX_DEPTH = CAPS.formula_depth
"""Deepest nesting of expression nodes a formula may have."""

MAX_LITERAL = 1e12
"""Largest magnitude a numeric literal may have."""

MAX_EXPONENT = 100.0
"""Largest magnitude a constant exponent (one without ``x`` or ``y``) may have."""


Evaluator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""The compiled form of a whole formula: ``(x, y) -> f(x, y)``."""

_Node = Callable[[torch.Tensor, torch.Tensor], Value]


class FormulaError(ValueError):
    """A formula was rejected; ``str(err)`` is a one-line message fit to show a user."""


def _fail(message: str) -> NoReturn:
    """Raises a :class:`FormulaError`; a helper so that rejections read as one line."""
    raise FormulaError(message)


def _constant_node(value: float) -> _Node:
    """Wraps a folded constant as a node, for use as an operand next to a tensor."""

    def constant(x: torch.Tensor, y: torch.Tensor) -> float:
        return value

    return constant


def _get_x(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x


def _get_y(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return y


def _shorten(text: str, limit: int = 40) -> str:
    """Keeps echoed user text short enough for a one-line message."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Compiler:
    """Walks a parsed formula against the allow-list and builds its closure tree.

    Attributes:
        source: The text given to ``ast.parse``, used to quote rejected literals.
        nodes: Expression nodes seen so far, checked against :data:`MAX_NODES`.
        used: Which of ``x`` and ``y`` the formula (after folding) depends on.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.nodes = 0
        self.used: set[str] = set()

    def build(self, node: ast.expr, depth: int = 1) -> _Node | float:
        """Checks one expression node and builds what evaluates it.

        The depth check comes first, so this recursion never goes deeper than
        :data:`MAX_DEPTH` however deep the tree that ``ast.parse`` produced.

        Args:
            node: The node to build.
            depth: Its nesting depth, 1 for the root.

        Returns:
            A float if the node contains no ``x`` or ``y`` (it is folded at parse time),
            else a closure ``(x, y) -> value``.

        Raises:
            FormulaError: If the node, or anything below it, is not allowed.
        """
        self.nodes += 1
        if self.nodes > MAX_NODES:
            _fail(f"the formula is too complex (more than {MAX_NODES} parts)")
        if depth > MAX_DEPTH:
            _fail(f"the formula is nested too deeply (more than {MAX_DEPTH} levels)")

        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node, depth)
        if isinstance(node, ast.BinOp):
            return self._binary(node, depth)
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        message = REJECTED_NODES.get(type(node))
        if message is None:
            message = f"'{type(node).__name__}' expressions are not allowed; {ALLOWED_HINT}"
        _fail(message)

    def _constant(self, node: ast.Constant) -> float:
        value = node.value
        # bool is an int subclass, so it must be ruled out before the numeric check.
        if isinstance(value, bool):
            _fail("True and False are not allowed")
        if isinstance(value, str | bytes):
            _fail("strings are not allowed")
        if isinstance(value, complex):
            _fail("complex numbers are not allowed")
        if not isinstance(value, int | float):
            _fail(f"{value!r} is not allowed")
        shown = _shorten(ast.get_source_segment(self.source, node) or repr(value))
        if isinstance(value, float) and not math.isfinite(value):
            _fail(f"number is not finite: {shown}")
        # int vs float comparison is exact in Python, so a huge int cannot overflow here.
        if abs(value) > MAX_LITERAL:
            _fail(f"number too large: {shown} (at most {MAX_LITERAL:g} in magnitude)")
        return float(value)

    def _name(self, node: ast.Name) -> _Node | float:
        name = node.id
        if name in VARIABLES:
            self.used.add(name)
            return _get_x if name == "x" else _get_y
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name in FUNCTIONS:
            _fail(f"'{name}' is a function: call it like {name}(x)")
        _fail(f"unknown name '{_shorten(name)}': use x, y, pi, e")

    def _unary(self, node: ast.UnaryOp, depth: int) -> _Node | float:
        if isinstance(node.op, ast.Not):
            _fail("'not' is not allowed")
        if not isinstance(node.op, ast.USub | ast.UAdd):
            symbol = REJECTED_OPERATORS.get(type(node.op), type(node.op).__name__)
            _fail(f"operator '{symbol}' is not allowed")
        operand = self.build(node.operand, depth + 1)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(operand, float):
            return -operand
        child = operand

        def negate(x: torch.Tensor, y: torch.Tensor) -> Value:
            return -child(x, y)

        return negate

    def _binary(self, node: ast.BinOp, depth: int) -> _Node | float:
        spec = BINARY_OPERATORS.get(type(node.op))
        if spec is None:
            symbol = REJECTED_OPERATORS.get(type(node.op), type(node.op).__name__)
            _fail(f"operator '{symbol}' is not allowed; use + - * / ** or ^")
        left = self.build(node.left, depth + 1)
        right = self.build(node.right, depth + 1)
        if isinstance(node.op, ast.Pow) and isinstance(right, float):
            # A constant exponent is known now, so absurd ones (9**9**9) fail here instead
            # of producing a grid of inf later; torch.pow itself never hangs on floats.
            if math.isnan(right):
                _fail("exponent is not a number (nan)")
            if abs(right) > MAX_EXPONENT:
                _fail(f"exponent too large: {right:g} (at most {MAX_EXPONENT:g} in magnitude)")
        return self._combine(spec.impl, [left, right])

    def _call(self, node: ast.Call, depth: int) -> _Node | float:
        func = node.func
        if isinstance(func, ast.Attribute):
            _fail("attribute access is not allowed")
        if not isinstance(func, ast.Name):
            _fail("only the allowed functions can be called, like sin(x)")
        name = func.id
        spec = FUNCTIONS.get(name)
        if spec is None:
            if name in VARIABLES or name in CONSTANTS:
                _fail(f"'{name}' is not a function (a missing '*'?)")
            allowed = ", ".join(sorted(FUNCTIONS))
            _fail(f"unknown function '{_shorten(name)}'; allowed: {allowed}")
        if node.keywords:
            _fail(f"{name}() does not take keyword arguments")
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            _fail(REJECTED_NODES[ast.Starred])
        if len(node.args) != spec.arity:
            noun = "argument" if spec.arity == 1 else "arguments"
            _fail(f"{name}() takes {spec.arity} {noun}, got {len(node.args)}")
        args = [self.build(arg, depth + 1) for arg in node.args]
        return self._combine(spec.impl, args)

    @staticmethod
    def _combine(impl: Callable[..., Value], args: list[_Node | float]) -> _Node | float:
        """Folds an operation on constants, or builds the closure that applies it.

        Args:
            impl: The torch implementation.
            args: The built operands.

        Returns:
            A float if every operand is one, else a closure.
        """
        if all(isinstance(arg, float) for arg in args):
            return fold(impl, *args)  # type: ignore[arg-type]
        nodes = [_constant_node(arg) if isinstance(arg, float) else arg for arg in args]
        # Separate closures for the common arities avoid building an argument list on every
        # evaluation of the hot path.
        if len(nodes) == 1:
            (only,) = nodes

            def apply1(x: torch.Tensor, y: torch.Tensor) -> Value:
                return impl(only(x, y))

            return apply1
        first, second = nodes

        def apply2(x: torch.Tensor, y: torch.Tensor) -> Value:
            return impl(first(x, y), second(x, y))

        return apply2


def _original_column(line: str, column: int) -> int:
    """Maps a 1-based column in a ``^``-expanded line back to the user's line.

    Args:
        line: The line as the user typed it.
        column: A column in the same line after every ``^`` became ``**``.

    Returns:
        The matching 1-based column in ``line``.
    """
    expanded = 0
    for index, char in enumerate(line):
        expanded += 2 if char == "^" else 1
        if expanded >= column:
            return index + 1
    return len(line) + 1


def _syntax_message(error: SyntaxError, text: str) -> str:
    """Turns a SyntaxError from ``ast.parse`` into a one-line message about ``text``."""
    lines_of_msg = (error.msg or "").strip().splitlines()
    detail = lines_of_msg[0] if lines_of_msg else "invalid syntax"
    if "too many nested parentheses" in detail:
        return f"the formula is nested too deeply ({detail})"
    if error.offset is None:
        return f"syntax error: {detail}"
    if error.offset < 1:
        # CPython reports offset 0 when the text ends in the middle of an expression.
        return f"syntax error at the end of the formula: {detail}"
    lines = text.splitlines() or [""]
    lineno = error.lineno or 1
    line = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
    column = _original_column(line, error.offset)
    where = f"column {column}" if lineno == 1 else f"line {lineno}, column {column}"
    return f"syntax error at {where}: {detail}"


def _build_evaluator(text: str) -> tuple[str, Evaluator]:
    """Validates a formula and builds its evaluator.

    Args:
        text: The formula as typed.

    Returns:
        The stripped text and the evaluator for it.

    Raises:
        FormulaError: If the formula is rejected.
        TypeError: If ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"a formula must be a str, got {type(text).__name__}")
    text = text.strip()
    if not text:
        _fail("the formula is empty")
    # The cap comes before parsing so that no parser work scales with hostile input size.
    if len(text) > MAX_FORMULA_LENGTH:
        _fail(f"the formula is too long ({len(text)} characters; at most {MAX_FORMULA_LENGTH})")

    # Python's ^ is XOR and binds more loosely than + and *, so x^2 + 1 would parse as
    # x ^ (2 + 1). Spelling it ** gives the mathematical reading (tight, right-associative).
    # A blind replace is sound because strings, the only place a ^ could mean something
    # else, are rejected anyway.
    source = text.replace("^", "**")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        _fail(_syntax_message(error, text))
    except (RecursionError, MemoryError):
        _fail("the formula is nested too deeply")
    except ValueError as error:
        # e.g. lone surrogates, which cannot be encoded for the parser.
        _fail(f"the formula could not be read: {_shorten(str(error), 60)}")

    compiler = _Compiler(source)
    root = compiler.build(tree.body)
    body = _constant_node(root) if isinstance(root, float) else root
    # A variable the formula ignores is still mixed in as 0*v so that the result has the
    # broadcast shape of x and y and autograd can always reach both inputs.
    pad_x = "x" not in compiler.used
    pad_y = "y" not in compiler.used

    def evaluate(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = body(x, y)
        if pad_x:
            out = out + 0 * x
        if pad_y:
            out = out + 0 * y
        return out  # type: ignore[return-value]

    return text, evaluate


@dataclass(frozen=True)
class Formula:
    """A validated formula f(x, y), callable on tensors.

    Constructing one parses and validates the text, so ``Formula(text)`` is the same as
    ``parse_formula(text)``. Formulas compare and hash by their (stripped) text.

    Attributes:
        text: The formula as typed, with surrounding whitespace stripped.
    """

    text: str
    _evaluate: Evaluator = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        """Parses ``text``.

        Raises:
            FormulaError: If the formula is rejected.
        """
        text, evaluate = _build_evaluator(self.text)
        # The dataclass is frozen; this is its own initialisation, not a mutation.
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "_evaluate", evaluate)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Evaluates the formula elementwise.

        Args:
            x: The x coordinates; a floating tensor.
            y: The y coordinates; a floating tensor broadcastable with ``x``.

        Returns:
            f(x, y) with the broadcast shape of ``x`` and ``y``. It is differentiable with
            respect to both, even for a formula that ignores one of them (the gradient is
            then zero; note that the 0*v padding turns an infinite v into nan).
        """
        return self._evaluate(x, y)

    def on_points(self, xy: torch.Tensor) -> torch.Tensor:
        """Evaluates the formula on stacked points.

        Args:
            xy: Points of shape ``(..., 2)``, x first.

        Returns:
            The values, of shape ``(...)``.

        Raises:
            ValueError: If the last dimension of ``xy`` is not 2.
        """
        if xy.ndim == 0 or xy.shape[-1] != 2:
            raise ValueError(f"expected points of shape (..., 2), got {tuple(xy.shape)}")
        return self._evaluate(xy[..., 0], xy[..., 1])

    def __reduce__(self) -> tuple[Callable[[str], Formula], tuple[str]]:
        """Pickles by text, since the compiled closures cannot be pickled."""
        return (parse_formula, (self.text,))


def parse_formula(text: str) -> Formula:
    """Parses and validates a user-typed formula f(x, y).

    Allowed: int and float literals (at most 1e12 in magnitude), the names ``x``, ``y``,
    ``pi`` and ``e``, binary ``+ - * / **``, ``^`` as a synonym of ``**``, unary ``-`` and
    ``+``, and calls of the functions in :data:`FUNCTIONS` with positional arguments.

    Args:
        text: The formula as typed.

    Returns:
        The validated formula.

    Raises:
        FormulaError: If the formula is rejected; the message names the reason.
        TypeError: If ``text`` is not a string.
    """
    return Formula(text)
