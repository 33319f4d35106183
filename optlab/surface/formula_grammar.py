"""What a formula may contain: the allow-list that compiles it and writes it as a script.

One table per kind of node: the named constants, the functions (with their
torch implementation, arity and the call an exported script writes), the
binary operators, and the messages for what is refused. The compiler
(`optlab.surface.formula`) and the script renderer (`optlab.script.formula`)
both read these, so the two never disagree on what a formula means.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

Value = torch.Tensor | float
"""What a node produces: a tensor once ``x`` or ``y`` is involved, else a folded float."""

# Names the user may write besides function calls; x and y are bound at call time.
VARIABLES = ("x", "y")
CONSTANTS: Mapping[str, float] = MappingProxyType({"pi": math.pi, "e": math.e})
"""The named constants a formula may use."""


class FunctionSpec(NamedTuple):
    """An allow-listed function.

    Attributes:
        impl: The torch implementation. Every argument it receives is a tensor or a float,
            and at least one of them is a tensor.
        arity: The exact number of positional arguments the function takes.
        source: The torch call an exported script writes for it (its arguments all
            tensors there), e.g. ``torch.sin``.
    """

    impl: Callable[..., torch.Tensor]
    arity: int
    source: str


def _as_tensor_like(value: Value, like: torch.Tensor) -> torch.Tensor:
    """Turns a folded constant into a tensor that can meet ``like`` in a binary torch op.

    Args:
        value: A tensor (returned unchanged) or a float.
        like: The other operand, whose device (and floating dtype, if any) is adopted.

    Returns:
        ``value`` as a 0-d tensor, which broadcasts against ``like``.
    """
    if isinstance(value, torch.Tensor):
        return value
    # Adopting the partner's dtype keeps float32 inputs float32; an integer partner would
    # truncate the constant, so fall back to the default floating dtype there.
    dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
    return torch.as_tensor(value, dtype=dtype, device=like.device)


def _tensor_pair(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[..., Any]:
    """Wraps a torch function that insists on two tensors so that one may be a float.

    Args:
        fn: A binary torch function such as ``torch.atan2``.

    Returns:
        A function of two values, at least one of which is a tensor.
    """

    def apply(a: Value, b: Value) -> torch.Tensor:
        if not isinstance(a, torch.Tensor):
            a = _as_tensor_like(a, b)  # type: ignore[arg-type]
        elif not isinstance(b, torch.Tensor):
            b = _as_tensor_like(b, a)
        return fn(a, b)

    apply.__name__ = getattr(fn, "__name__", "apply")
    apply.__doc__ = f"{apply.__name__}(a, b) where a or b may be a float."
    return apply


FUNCTIONS: Mapping[str, FunctionSpec] = MappingProxyType(
    {
        "sin": FunctionSpec(torch.sin, 1, "torch.sin"),
        "cos": FunctionSpec(torch.cos, 1, "torch.cos"),
        "tan": FunctionSpec(torch.tan, 1, "torch.tan"),
        "asin": FunctionSpec(torch.asin, 1, "torch.asin"),
        "acos": FunctionSpec(torch.acos, 1, "torch.acos"),
        "atan": FunctionSpec(torch.atan, 1, "torch.atan"),
        "sinh": FunctionSpec(torch.sinh, 1, "torch.sinh"),
        "cosh": FunctionSpec(torch.cosh, 1, "torch.cosh"),
        "tanh": FunctionSpec(torch.tanh, 1, "torch.tanh"),
        "exp": FunctionSpec(torch.exp, 1, "torch.exp"),
        "log": FunctionSpec(torch.log, 1, "torch.log"),
        "log2": FunctionSpec(torch.log2, 1, "torch.log2"),
        "log10": FunctionSpec(torch.log10, 1, "torch.log10"),
        "sqrt": FunctionSpec(torch.sqrt, 1, "torch.sqrt"),
        "abs": FunctionSpec(torch.abs, 1, "torch.abs"),
        "sigmoid": FunctionSpec(torch.sigmoid, 1, "torch.sigmoid"),
        "softplus": FunctionSpec(F.softplus, 1, "torch.nn.functional.softplus"),
        "atan2": FunctionSpec(_tensor_pair(torch.atan2), 2, "torch.atan2"),
        "min": FunctionSpec(_tensor_pair(torch.minimum), 2, "torch.minimum"),
        "max": FunctionSpec(_tensor_pair(torch.maximum), 2, "torch.maximum"),
        "hypot": FunctionSpec(_tensor_pair(torch.hypot), 2, "torch.hypot"),
    }
)
"""The allow-listed functions: name -> (torch implementation, arity)."""


class OperatorSpec(NamedTuple):
    """An allow-listed binary operator.

    Attributes:
        impl: What evaluates it (a float may stand on either side of a tensor).
        symbol: How Python source writes it (``**``: an exported script writes
            ``torch.pow``, as ``impl`` is).
    """

    impl: Callable[[Value, Value], Value]
    symbol: str


# torch.pow accepts a float on either side, and Python's operators dispatch to the tensor
# whichever side it is on, so these need no wrapping.
BINARY_OPERATORS: Mapping[type[ast.operator], OperatorSpec] = MappingProxyType(
    {
        ast.Add: OperatorSpec(operator.add, "+"),
        ast.Sub: OperatorSpec(operator.sub, "-"),
        ast.Mult: OperatorSpec(operator.mul, "*"),
        ast.Div: OperatorSpec(operator.truediv, "/"),
        ast.Pow: OperatorSpec(torch.pow, "**"),
    }
)
"""The allow-listed binary operators: node type -> (implementation, symbol)."""

# Only used to name a rejected operator in the message.
REJECTED_OPERATORS: Mapping[type[ast.AST], str] = MappingProxyType(
    {
        ast.FloorDiv: "//",
        ast.Mod: "%",
        ast.MatMult: "@",
        ast.BitAnd: "&",
        ast.BitOr: "|",
        ast.BitXor: "^",
        ast.LShift: "<<",
        ast.RShift: ">>",
        ast.Invert: "~",
    }
)

REJECTED_NODES: Mapping[type[ast.AST], str] = MappingProxyType(
    {
        ast.Attribute: "attribute access is not allowed",
        ast.Subscript: "subscripts (indexing with [...]) are not allowed",
        ast.Slice: "slices are not allowed",
        ast.Compare: "comparisons are not allowed",
        ast.BoolOp: "boolean operators (and, or) are not allowed",
        ast.IfExp: "conditional expressions (... if ... else ...) are not allowed",
        ast.Lambda: "lambda expressions are not allowed",
        ast.NamedExpr: "assignment expressions (:=) are not allowed",
        ast.Starred: "starred expressions (*...) are not allowed",
        ast.JoinedStr: "f-strings are not allowed",
        ast.FormattedValue: "f-strings are not allowed",
        ast.ListComp: "comprehensions are not allowed",
        ast.SetComp: "comprehensions are not allowed",
        ast.DictComp: "comprehensions are not allowed",
        ast.GeneratorExp: "comprehensions are not allowed",
        ast.List: "lists are not allowed",
        ast.Tuple: "tuples are not allowed (a stray comma?)",
        ast.Set: "sets are not allowed",
        ast.Dict: "dictionaries are not allowed",
        ast.Await: "'await' is not allowed",
        ast.Yield: "'yield' is not allowed",
        ast.YieldFrom: "'yield' is not allowed",
    }
)

ALLOWED_HINT = "use numbers, x, y, pi, e, + - * / ** ^ and functions like sin(x)"


def fold(impl: Callable[..., Value], *args: float) -> float:
    """Evaluates an operation on constants once, at parse time.

    torch is used instead of Python arithmetic so that folded constants behave exactly as
    they would on tensors: ``1/0`` is ``inf`` rather than ``ZeroDivisionError``, and
    ``(-8)**(1/3)`` is ``nan`` rather than a complex number.

    Args:
        impl: The torch implementation of the operation.
        *args: The constant operands.

    Returns:
        The result as a Python float.
    """
    result = impl(*(torch.tensor(arg, dtype=torch.float64) for arg in args))
    return float(result)
