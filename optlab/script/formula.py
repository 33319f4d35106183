"""A user's formula as torch source: the renderer behind a custom surface's script.

It walks the validated syntax tree with the compiler's own tables
(`optlab.surface.formula`: the functions with their torch calls, the binary
operators, the named constants, constant folding), so the script computes
bit-identical values and gradients, and the text the user typed never
becomes code.
"""

from __future__ import annotations

import ast
import textwrap
from typing import NamedTuple

from optlab.script.source import literal, operand
from optlab.surface.formula import parse_formula
from optlab.surface.formula_grammar import BINARY_OPERATORS, CONSTANTS, FUNCTIONS, fold

# Binding levels of the rendered source, loosest first.
_ADD, _MUL, _UNARY, _ATOM = 1, 2, 3, 4


class _Source(NamedTuple):
    """Rendered source of a tensor-valued node and how tightly it binds."""

    text: str
    level: int


def _level(value: float | _Source) -> int:
    return _ATOM if isinstance(value, float) else value.level


def _text_of(value: float | _Source) -> str:
    return operand(value) if isinstance(value, float) else value.text


def _wrap(value: float | _Source, level: int) -> str:
    """The operand's source, in parentheses if it binds less tightly than ``level``."""
    text = _text_of(value)
    return f"({text})" if _level(value) < level else text


class _FormulaSource:
    """Renders a validated formula's tree as torch source over ``x`` and ``y``.

    Mirrors `optlab.surface.formula`'s evaluator node for node: constant subtrees are
    folded to floats the same way, and every other node becomes the very
    operation the evaluator applies (Python operators on tensors and floats,
    ``torch.pow``, the allow-listed torch functions), so the script computes
    bit-identical values and gradients.
    """

    def __init__(self) -> None:
        self.used: set[str] = set()

    def render(self, node: ast.expr) -> float | _Source:
        """A folded constant, or source text for a tensor."""
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id in ("x", "y"):
                self.used.add(node.id)
                return _Source(node.id, _ATOM)
            return CONSTANTS[node.id]
        if isinstance(node, ast.UnaryOp):
            inner = self.render(node.operand)
            if isinstance(node.op, ast.UAdd):
                return inner
            if isinstance(inner, float):
                return -inner
            return _Source(f"-{_wrap(inner, _ATOM)}", _UNARY)
        if isinstance(node, ast.BinOp):
            impl, symbol = BINARY_OPERATORS[type(node.op)]
            left, right = self.render(node.left), self.render(node.right)
            if isinstance(left, float) and isinstance(right, float):
                return fold(impl, left, right)
            if symbol == "**":
                return _Source(f"torch.pow({_text_of(left)}, {_text_of(right)})", _ATOM)
            level = _ADD if symbol in "+-" else _MUL
            # Python's operators group to the left, so a right operand of the
            # same level keeps its parentheses (a - (b - c), and a + (b + c),
            # whose rounding differs from a + b + c).
            a = _wrap(left, level)
            b = _wrap(right, _ATOM if _level(right) == _UNARY else level + 1)
            return _Source(f"{a} {symbol} {b}", level)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            spec = FUNCTIONS[name]
            args = [self.render(arg) for arg in node.args]
            if all(isinstance(a, float) for a in args):
                return fold(spec.impl, *args)
            parts = [
                f"torch.tensor({literal(a)}, dtype=torch.float64)"
                if isinstance(a, float)
                else a.text
                for a in args
            ]
            return _Source(f"{spec.source}({', '.join(parts)})", _ATOM)
        raise ValueError(f"export as script: cannot write {type(node).__name__} nodes")


def formula_function(text: str) -> str:
    """``def f(xy)`` for a user's formula, as torch source."""
    formula = parse_formula(text)  # validates; FormulaError is a ValueError
    tree = ast.parse(formula.text.replace("^", "**"), mode="eval")
    renderer = _FormulaSource()
    expr = _text_of(renderer.render(tree.body))
    wrapped = textwrap.wrap(
        expr, width=80, break_long_words=False, break_on_hyphens=False, subsequent_indent="    "
    )
    lines = [
        "def f(xy: Tensor) -> Tensor:",
        '    """The formula in FORMULA at points of shape (..., 2), as torch operations."""',
        "    x, y = xy[..., 0], xy[..., 1]",
    ]
    if len(wrapped) == 1:
        lines.append(f"    out = {expr}")
    else:
        lines += ["    out = (", *(f"        {w.strip()}" for w in wrapped), "    )"]
    for name in ("x", "y"):
        if name not in renderer.used:
            lines.append(
                f"    out = out + 0 * {name}  # the formula ignores {name}: keeps the shape "
                "and gradient"
            )
    lines.append("    return out")
    return "\n".join(lines) + "\n"
