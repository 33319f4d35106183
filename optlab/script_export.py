"""Export as script: a run as one standalone Python file that needs only torch.

`surface_script` and `train_script` turn a run's config into the source of a
script that repeats the run with the textbook ``torch.optim`` loop
(``zero_grad()``, ``loss.backward()``, ``step()``, ``step(closure)`` for
L-BFGS, ``scheduler.step()``) and prints where each optimizer ended. Its last
line is one JSON object::

    {"runs": [{"optimizer": "adam", "label": ..., "status": "done",
               "final": [x, y] or null, "final_loss": ..., ...}]}

(``final`` is null for CNN runs, whose ``final_loss`` is the last test loss and
which also report ``final_test_acc``). The numbers equal the engine's: the
script runs the same torch operations in the same order, one optimizer after
the other instead of in lockstep, which changes nothing since the optimizers
never interact.

What the engine computes with OptLab's own code is embedded as source, so it
cannot drift from the engine: a registered surface's torch function, the CNN
class, its seeded initialisation and the batch normalisation and augmentation
(via `inspect`, each checked to need nothing but torch, math and each other).
A user's formula is rendered from its validated syntax tree into torch calls;
the text the user typed never reaches the script except inside string
literals and comments, escaped.
"""

from __future__ import annotations

import ast
import functools
import inspect
import linecache
import math
import operator
import os
import sys
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd

from optlab import __version__
from optlab.data import DATA_DIR_ENV, FOLDER_NAME, default_cache_dir, resolve_data_dir
from optlab.data.batches import augment, normalise
from optlab.formula import FUNCTIONS, parse_formula
from optlab.models import CLASSIFIER, FEATURES, get_model_spec, init_parameters
from optlab.optimizers import OptimizerConfig
from optlab.plans import Change
from optlab.schedulers import SchedulerConfig
from optlab.surface_run import SurfaceRunConfig, divergence_box
from optlab.surfaces import CUSTOM
from optlab.train_run import CIFAR10_MEAN, CIFAR10_STD, EVAL_CHUNK, TrainRunConfig, TrainSlot

__all__ = ["data_folder_hint", "surface_script", "train_script"]

#: Data kinds a training script can reproduce (see `optlab.data.DataKind`).
CIFAR_KINDS = ("folder", "cache", "download")

# Names OptLab's embedded code may use from outside its own module: each with
# the object it must be and the import line that provides it in the script.
_KNOWN_GLOBALS: dict[str, tuple[object, str]] = {
    "torch": (torch, "import torch"),
    "math": (math, "import math"),
    "nn": (torch.nn, "from torch import nn"),
    "F": (torch.nn.functional, "import torch.nn.functional as F"),
    "Tensor": (torch.Tensor, "from torch import Tensor"),
    "Optimizer": (torch.optim.Optimizer, "from torch.optim import Optimizer"),
    "_ConvNd": (_ConvNd, "from torch.nn.modules.conv import _ConvNd"),
    "_NormBase": (_NormBase, "from torch.nn.modules.batchnorm import _NormBase"),
}

# --- Safe pieces of source -----------------------------------------------------------


def _literal(value: object) -> str:
    """Python source for a plain value (a hyperparameter, a constant)."""
    if value is None or isinstance(value, bool | int):
        return repr(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "math.nan"
        if math.isinf(value):
            return "math.inf" if value > 0 else "-math.inf"
        return repr(value)
    if isinstance(value, str):
        return _str(value)
    if isinstance(value, tuple | list):
        items = ", ".join(_literal(v) for v in value)
        if isinstance(value, list):
            return f"[{items}]"
        return f"({items},)" if len(value) == 1 else f"({items})"
    raise ValueError(f"export as script: cannot write the value {value!r} as Python source")


def _str(text: str) -> str:
    """A string literal: ``ascii`` escapes quotes, line breaks and anything non-ASCII."""
    source = ascii(text)
    return f'"{source[1:-1]}"' if source[0] == "'" and '"' not in text else source


def _is_literal(value: object) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    return isinstance(value, tuple) and all(_is_literal(v) for v in value)


def _operand(value: float) -> str:
    """A float as an operand: negative numbers get parentheses."""
    text = _literal(value)
    return f"({text})" if text.startswith("-") else text


def _comment(value: object) -> str:
    """Text fit for a comment: one line, no control or invisible characters."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(value))


def _doc(value: object) -> str:
    """Text fit for a docstring: as for a comment, without quotes or backslashes."""
    return _comment(value).replace("\\", "/").replace('"', "'")


def _kwargs(values: dict[str, Any], indent: int) -> str:
    """A dict literal of constructor arguments, one per line."""
    pad = " " * indent
    lines = [f"{pad}    {_str(str(k))}: {_literal(v)}," for k, v in values.items()]
    return "{\n" + "\n".join(lines) + f"\n{pad}}}"


# --- Embedding OptLab's own functions and classes -------------------------------------


@dataclass
class _Embedded:
    """Source gathered for a script: imports, constants, definitions (dependencies first)."""

    imports: set[str] = field(default_factory=set)
    constants: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def add(self, *objects: object) -> None:
        for obj in objects:
            self._visit(obj)

    def _visit(self, obj: Any) -> None:
        obj = inspect.unwrap(obj)  # a decorated function: its own globals, not the wrapper's
        name = obj.__name__
        if name in self.sources:
            return
        source, tree = _definition(obj)
        namespace = _namespace(obj)
        self.sources[name] = ""  # marks it as in progress (a recursive helper)
        local = _bound_names(tree)
        for used in sorted(_global_names(tree)):
            if used == name or used not in namespace:
                continue  # a builtin, a local or the definition itself
            value = namespace[used]
            known = _KNOWN_GLOBALS.get(used)
            if known is not None and value is known[0]:
                self.imports.add(known[1])
            elif (inspect.isfunction(value) or inspect.isclass(value)) and getattr(
                value, "__module__", None
            ) == obj.__module__:
                self._visit(value)
            elif _is_literal(value):
                self.constants[used] = _literal(value)
            elif used not in local:  # else most likely a local that shares the name
                raise ValueError(
                    f"export as script: {name} uses {used}, which a standalone script "
                    "cannot rebuild"
                )
        # Names only annotations use need not exist when the script runs (it
        # defers annotations), but readers and type checkers like them imported.
        for used in sorted(_annotation_names(tree) - _global_names(tree)):
            self._import_for_annotation(namespace.get(used), used)
        # Re-inserted after its dependencies, so definitions read top-down.
        del self.sources[name]
        self.sources[name] = source

    def _import_for_annotation(self, value: object, name: str) -> None:
        known = _KNOWN_GLOBALS.get(name)
        if known is not None and value is known[0]:
            self.imports.add(known[1])
            return
        module = getattr(value, "__module__", None)
        if module in ("collections.abc", "typing") and getattr(sys.modules[module], name) is value:
            self.imports.add(f"from {module} import {name}")


def _namespace(obj: Any) -> dict[str, Any]:
    """The module globals ``obj`` was defined among."""
    if inspect.isfunction(obj):
        return obj.__globals__
    for member in vars(obj).values():
        func = getattr(member, "__func__", member)
        if inspect.isfunction(func):
            return func.__globals__
    module = sys.modules.get(obj.__module__)
    if module is None:
        raise ValueError(f"export as script: the module of {obj.__qualname__} is not loaded")
    return vars(module)


def _definition(obj: Any) -> tuple[str, ast.Module]:
    """The source of a module-level ``def`` or ``class`` and its syntax tree.

    Raises:
        ValueError: ``obj`` is a lambda, nested, or has no source on disk.
    """
    if "." in obj.__qualname__ or obj.__name__ == "<lambda>":
        raise ValueError(
            f"export as script: {obj.__qualname__} is not a module-level function or class"
        )
    try:
        source = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        # A plugin module is no longer in sys.modules, where inspect looks for
        # a class's file: find the class in the file its methods came from.
        source = _class_source_from_methods(obj)
    tree = ast.parse(source)
    kinds = ast.FunctionDef | ast.ClassDef
    if not (len(tree.body) == 1 and isinstance(tree.body[0], kinds)):
        raise ValueError(f"export as script: cannot read the source of {obj.__qualname__}")
    if tree.body[0].name != obj.__name__:
        raise ValueError(f"export as script: cannot read the source of {obj.__qualname__}")
    return source.rstrip() + "\n", tree


def _class_source_from_methods(obj: Any) -> str:
    if inspect.isclass(obj):
        for member in vars(obj).values():
            func = getattr(member, "__func__", member)
            if not inspect.isfunction(func):
                continue
            filename = func.__code__.co_filename
            lines = linecache.getlines(filename)
            module = ast.parse("".join(lines))
            for node in module.body:
                if isinstance(node, ast.ClassDef) and node.name == obj.__name__:
                    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                    return "".join(lines[first - 1 : node.end_lineno])
    raise ValueError(f"export as script: the source of {obj.__qualname__} is not available")


def _global_names(tree: ast.AST) -> set[str]:
    """Names read in ``tree``, leaving out annotations (the script never evaluates them)."""
    names: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_Name(self, node: ast.Name) -> None:
            if isinstance(node.ctx, ast.Load):
                names.add(node.id)

        def visit_arg(self, node: ast.arg) -> None:
            return  # only its annotation lies below

        def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
            if node.value is not None:
                self.visit(node.value)
            self.visit(node.target)

        def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
            for child in (*node.decorator_list, *node.args.defaults, *node.body):
                self.visit(child)
            for default in node.args.kw_defaults:
                if default is not None:
                    self.visit(default)

        visit_FunctionDef = _function
        visit_AsyncFunctionDef = _function

    Visitor().visit(tree)
    return names


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _bound_names(tree: ast.Module) -> set[str]:
    """Names a definition binds inside itself: parameters, assignments, nested definitions."""
    (top,) = tree.body
    names = {arg.arg for arg in ast.walk(tree) if isinstance(arg, ast.arg)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, _DEFINITIONS) and node is not top:
            names.add(node.name)
    return names


def _annotation_names(tree: ast.AST) -> set[str]:
    """Names read anywhere in ``tree``, annotations included."""
    return {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }


def _call_source(factory: Any) -> tuple[Any, str]:
    """The class a model factory builds and the call that builds it (``SeedNet(relu=True)``)."""
    args: tuple[Any, ...] = ()
    keywords: dict[str, Any] = {}
    if isinstance(factory, functools.partial):
        factory, args, keywords = factory.func, factory.args, dict(factory.keywords)
    if not inspect.isclass(factory):
        raise ValueError("export as script: the model's factory is not a class")
    parts = [_literal(a) for a in args] + [f"{k}={_literal(v)}" for k, v in keywords.items()]
    return factory, f"{factory.__name__}({', '.join(parts)})"


def _optimizer_class(opt: OptimizerConfig, embedded: _Embedded) -> str:
    """How the script names the optimizer's class: ``torch.optim.X``, or its embedded source."""
    factory = opt.spec.factory
    name = getattr(factory, "__name__", "")
    if inspect.isclass(factory) and getattr(torch.optim, name, None) is factory:
        return f"torch.optim.{name}"
    if not (inspect.isclass(factory) and issubclass(factory, torch.optim.Optimizer)):
        raise ValueError(
            f"export as script: {opt.spec.label} is not a torch.optim.Optimizer class, "
            "so a script cannot rebuild it"
        )
    embedded.add(factory)
    return name


# --- A user's formula as torch source --------------------------------------------------

_OPERATORS: dict[type[ast.operator], tuple[str, Callable[..., Any]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.Pow: ("**", torch.pow),
}
#: The formula's functions as torch source. The pairs turn a constant operand
#: into a float64 tensor first, as `optlab.formula` does.
_CALLS: dict[str, str] = {
    "sin": "torch.sin",
    "cos": "torch.cos",
    "tan": "torch.tan",
    "asin": "torch.asin",
    "acos": "torch.acos",
    "atan": "torch.atan",
    "sinh": "torch.sinh",
    "cosh": "torch.cosh",
    "tanh": "torch.tanh",
    "exp": "torch.exp",
    "log": "torch.log",
    "log2": "torch.log2",
    "log10": "torch.log10",
    "sqrt": "torch.sqrt",
    "abs": "torch.abs",
    "sigmoid": "torch.sigmoid",
    "softplus": "torch.nn.functional.softplus",
    "atan2": "torch.atan2",
    "min": "torch.minimum",
    "max": "torch.maximum",
    "hypot": "torch.hypot",
}
_NAMED_CONSTANTS = {"pi": math.pi, "e": math.e}


def _fold(impl: Callable[..., Any], *args: float) -> float:
    # Exactly as optlab.formula folds constants: in float64 torch, not Python
    # arithmetic (1/0 is inf there, not an exception).
    return float(impl(*(torch.tensor(a, dtype=torch.float64) for a in args)))


# Binding levels of the rendered source, loosest first.
_ADD, _MUL, _UNARY, _ATOM = 1, 2, 3, 4


class _Source(NamedTuple):
    """Rendered source of a tensor-valued node and how tightly it binds."""

    text: str
    level: int


def _level(value: float | _Source) -> int:
    return _ATOM if isinstance(value, float) else value.level


def _text_of(value: float | _Source) -> str:
    return _operand(value) if isinstance(value, float) else value.text


def _wrap(value: float | _Source, level: int) -> str:
    """The operand's source, in parentheses if it binds less tightly than ``level``."""
    text = _text_of(value)
    return f"({text})" if _level(value) < level else text


class _FormulaSource:
    """Renders a validated formula's tree as torch source over ``x`` and ``y``.

    Mirrors `optlab.formula`'s evaluator node for node: constant subtrees are
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
            return _NAMED_CONSTANTS[node.id]
        if isinstance(node, ast.UnaryOp):
            operand = self.render(node.operand)
            if isinstance(node.op, ast.UAdd):
                return operand
            if isinstance(operand, float):
                return -operand
            return _Source(f"-{_wrap(operand, _ATOM)}", _UNARY)
        if isinstance(node, ast.BinOp):
            symbol, impl = _OPERATORS[type(node.op)]
            left, right = self.render(node.left), self.render(node.right)
            if isinstance(left, float) and isinstance(right, float):
                return _fold(impl, left, right)
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
            if name not in _CALLS:
                raise ValueError(f"export as script: cannot write the function {name}()")
            args = [self.render(arg) for arg in node.args]
            if all(isinstance(a, float) for a in args):
                return _fold(spec.impl, *args)
            parts = [
                f"torch.tensor({_literal(a)}, dtype=torch.float64)"
                if isinstance(a, float)
                else a.text
                for a in args
            ]
            return _Source(f"{_CALLS[name]}({', '.join(parts)})", _ATOM)
        raise ValueError(f"export as script: cannot write {type(node).__name__} nodes")


def _formula_function(text: str) -> str:
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


# --- Surface runs --------------------------------------------------------------------


def _surface_source(cfg: SurfaceRunConfig, embedded: _Embedded) -> tuple[str, str]:
    """The surface's definition (``def f``) and a one-line description of it."""
    surface = cfg.resolved_surface
    if cfg.surface == CUSTOM:
        assert cfg.expr is not None  # the config has validated it
        about = "your formula f(x, y), kept in FORMULA below"
        return f"FORMULA = {_str(cfg.expr.strip())}\n\n\n" + _formula_function(cfg.expr), about
    embedded.add(surface.fn)
    args = "".join(f", {name}={_literal(value)}" for name, value in surface.values)
    about = f"{surface.label}: {surface.tex}" if surface.tex else surface.label
    source = (
        "def f(xy: Tensor) -> Tensor:\n"
        f'    """{_doc(surface.label)} at points of shape (..., 2)."""\n'
        f"    return {surface.fn.__name__}(xy{args})\n"
    )
    return source, about


def _definitions(embedded: _Embedded, *more: str) -> str:
    """The embedded constants and definitions (then ``more``), two blank lines apart."""
    constants = "".join(f"{name} = {value}\n" for name, value in embedded.constants.items())
    blocks = [constants, *embedded.sources.values(), *more]
    return "\n\n".join(block for block in blocks if block)


def surface_script(cfg: SurfaceRunConfig) -> str:
    """A standalone script that repeats a surface run and prints where each optimizer ended.

    Args:
        cfg: The run.

    Returns:
        The script's source: it needs only torch, and its last printed line is
        the JSON described in the module docstring (``final`` is ``[x, y]``).

    Raises:
        ValueError: the run uses something a script cannot rebuild (an
            optimizer that is not a ``torch.optim.Optimizer`` class, a surface
            whose function has no readable source).
    """
    embedded, classes_code = _Embedded(), _Embedded()
    classes = [_optimizer_class(opt, classes_code) for opt in cfg.optimizers]
    surface, about = _surface_source(cfg, embedded)
    entries = []
    for i, (opt, cls) in enumerate(zip(cfg.optimizers, classes, strict=True)):
        plan = cfg.plan(i)
        kwargs = opt.kwargs
        # OptLab names foreach=False (the implementation torch picks on the CPU
        # anyway) to skip torch's per-step choice; the math is the same.
        if "foreach" in inspect.signature(opt.spec.factory).parameters:
            kwargs["foreach"] = False
        entries.append(
            "    {\n"
            f'        "key": {_str(opt.key)},\n'
            f'        "label": {_str(opt.label)},\n'
            f'        "class": {cls},\n'
            f'        "kwargs": {_kwargs(kwargs, 8)},\n'
            f'        "closure": {opt.spec.uses_closure!r},  # step(closure) instead of step()\n'
            f'        "changes": {_changes(plan.changes)},  # see apply_changes\n'
            f'        "scheduler": {_scheduler_factory(plan.scheduler)},\n'
            f'        "plateau": {plan.scheduler.spec.on_plateau!r},  # stepped with the loss\n'
            "    },"
        )
    imports = embedded.imports | classes_code.imports
    if any(cfg.plan(i).scheduler.spec.factory is not None for i in range(len(cfg.optimizers))):
        imports |= {"from torch.optim import lr_scheduler"}
    imports |= {
        "import json",
        "import math",
        "import sys",
        "import torch",
        "from torch import Tensor",
    }
    name = "your formula" if cfg.surface == CUSTOM else cfg.resolved_surface.label
    return _checked(
        _SURFACE_TEMPLATE.format(
            apply_changes=_APPLY_CHANGES,
            torch_version=torch.__version__,
            summary=_paragraph(
                f'Made by OptLab {__version__} ("Export as script") with torch '
                f"{torch.__version__} from a run of {cfg.steps} steps on {_doc(name)}, "
                "with these optimizers:"
            ),
            steps=cfg.steps,
            labels="\n".join(f"    - {_doc(opt.label)}" for opt in cfg.optimizers),
            imports=_sorted_imports(imports),
            start=_literal(tuple(cfg.start)),
            noise=_literal(cfg.noise),
            seed=cfg.seed,
            box=_literal(divergence_box(cfg.resolved_surface)),
            about="\n# ".join(textwrap.wrap(_comment(about), width=80, break_long_words=False)),
            definitions=_definitions(embedded, surface),
            classes=_section(_definitions(classes_code)),
            optimizers="\n".join(entries),
        )
    )


def _paragraph(text: str) -> str:
    """``text`` wrapped for a docstring."""
    return textwrap.fill(text, width=79, break_long_words=False, break_on_hyphens=False)


def _section(code: str) -> str:
    """``code`` set apart by the blank lines top-level definitions need, if any."""
    return f"\n{code}\n\n" if code else ""


def _checked(source: str) -> str:
    """``source`` once it parses and binds no top-level name twice.

    Embedded definitions share the script's namespace with the template's, so
    a clash (a surface function called ``f``) must fail here, not at run time.
    """
    seen: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names = [node.name]
        elif isinstance(node, ast.Import | ast.ImportFrom) and node.col_offset == 0:
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                continue
            names = [(alias.asname or alias.name).split(".")[0] for alias in node.names]
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        else:
            continue
        for name in names:
            if name in seen:
                raise ValueError(f"export as script: the name {name!r} would be defined twice")
            seen.add(name)
    return source


def _sorted_imports(lines: Iterable[str]) -> str:
    """The standard library's imports, then torch's, as isort lays them out."""
    plain: tuple[set[str], set[str]] = (set(), set())
    froms: tuple[dict[str, set[str]], dict[str, set[str]]] = ({}, {})
    for line in lines:
        words = line.split(maxsplit=3)
        group = words[1].split(".")[0] == "torch"
        if words[0] == "from":  # from MODULE import NAME
            froms[group].setdefault(words[1], set()).add(words[3])
        else:
            plain[group].add(line)
    blocks = []
    for group in (False, True):
        merged = [f"from {m} import {', '.join(sorted(n))}" for m, n in froms[group].items()]
        block = sorted(plain[group]) + sorted(merged)
        if block:
            blocks.append("\n".join(block))
    return "\n\n".join(blocks)


#: The scripts' planned-change helper (one function, in both kinds of script).
_APPLY_CHANGES = '''\
def apply_changes(optimizer, changes: list, step: int, per_epoch: int = 1) -> None:
    """The planned mid-run changes due before this step (0-based), made the way
    the tutorials do it by hand: editing optimizer.param_groups."""
    for at, epoch, group, name, value, multiply in changes:
        if (at * per_epoch if epoch else at) == step:
            for param_group in optimizer.param_groups:
                if group is None or param_group.get("name") == group:
                    param_group[name] = param_group[name] * value if multiply else value
'''

_SURFACE_TEMPLATE = """\
\"\"\"An OptLab surface run, exported as a standalone script.

{summary}
{labels}

It repeats the run with the textbook torch.optim loop, one optimizer after the
other, and prints where each one ended. Its last line is JSON:

    {{"runs": [{{"optimizer": ..., "final": [x, y], "final_loss": ..., ...}}]}}

Run it with:  python <this file>        (it needs only torch)

Everything is float64; with torch {torch_version} the numbers equal OptLab's.
\"\"\"

from __future__ import annotations

{imports}

START = {start}  # every optimizer starts here
STEPS = {steps}  # optimizer steps: one step() or step(closure) call each
NOISE = {noise}  # standard deviation of the Gaussian noise added to each gradient
SEED = {seed}  # seeds the noise: every optimizer sees the same noise sequence
# A point outside this box (xmin, xmax, ymin, ymax) counts as diverged: the
# surface's bounds, widened by ten times their width on every side.
BOX = {box}


# --- The surface: {about}


{definitions}

# --- The optimizers: their classes and constructor arguments

{classes}OPTIMIZERS = [
{optimizers}
]


{apply_changes}

def finite_or_none(value: float) -> float | None:
    \"\"\"JSON has no NaN or infinity: those become null.\"\"\"
    return value if math.isfinite(value) else None


def run(optimizer: dict) -> dict:
    \"\"\"Runs one optimizer from START for STEPS steps; returns where it ended.\"\"\"
    xy = torch.tensor(START, dtype=torch.float64, requires_grad=True)
    opt = optimizer["class"]([xy], **optimizer["kwargs"])
    noise = torch.Generator().manual_seed(SEED)

    def add_noise() -> None:
        if NOISE > 0:
            xy.grad = xy.grad + NOISE * torch.randn(2, generator=noise, dtype=torch.float64)

    def closure() -> Tensor:
        # L-BFGS calls this as often as it needs f and its gradient in one
        # step; each call draws its own noise.
        opt.zero_grad()
        loss = f(xy)
        loss.backward()
        add_noise()
        return loss

    make = optimizer["scheduler"]
    scheduler = make(opt, STEPS) if make is not None else None
    status = "done"
    for step in range(STEPS + 1):
        apply_changes(opt, optimizer["changes"], step)
        opt.zero_grad()
        loss = f(xy)
        loss.backward()
        # Where the optimizer is now, with the true (noise-free) gradient.
        x, y = xy.tolist()
        value = loss.item()
        grad_norm = math.hypot(*xy.grad.tolist())
        # NaN fails every comparison, so the box test also catches a NaN point.
        inside = BOX[0] <= x <= BOX[1] and BOX[2] <= y <= BOX[3]
        if not (inside and math.isfinite(value) and math.isfinite(grad_norm)):
            status = "diverged"
            break
        if step == STEPS:
            break
        if optimizer["closure"]:
            opt.step(closure)
        else:
            add_noise()
            opt.step()
        if scheduler is not None:
            scheduler.step(value) if optimizer["plateau"] else scheduler.step()
    return {{
        "optimizer": optimizer["key"],
        "label": optimizer["label"],
        "status": status,
        "steps": step,
        "final": [finite_or_none(x), finite_or_none(y)],
        "final_loss": finite_or_none(value),
    }}


def main() -> None:
    if torch.__version__ != "{torch_version}":
        print(
            "note: made with torch {torch_version}, this is torch "
            f"{{torch.__version__}}: the last digits may differ",
            file=sys.stderr,
        )
    runs = [run(optimizer) for optimizer in OPTIMIZERS]
    for result in runs:
        x, y = result["final"]
        print(
            f"{{result['label']}}: {{result['status']}} after {{result['steps']}} steps "
            f"at ({{x}}, {{y}}), f = {{result['final_loss']}}"
        )
    print(json.dumps({{"runs": runs}}, allow_nan=False))


if __name__ == "__main__":
    main()
"""


# --- Training runs -------------------------------------------------------------------

_SCHEDULER_CALLS: dict[str, Callable[[dict[str, Any]], str]] = {
    "step": lambda v: (
        f"lr_scheduler.StepLR(optimizer, step_size={int(v['step_size'])}, "
        f"gamma={_literal(v['gamma'])})"
    ),
    "multistep": lambda v: (
        "lr_scheduler.MultiStepLR(optimizer, milestones="
        f"{_literal(sorted(int(m) for m in v['milestones']))}, gamma={_literal(v['gamma'])})"
    ),
    "exponential": lambda v: f"lr_scheduler.ExponentialLR(optimizer, gamma={_literal(v['gamma'])})",
    "cosine": lambda v: (
        "lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps, "
        f"eta_min={_literal(v['eta_min'])})"
    ),
    "onecycle": lambda v: (
        "lr_scheduler.OneCycleLR(\n"
        "        optimizer,\n"
        f'        max_lr=[group["lr"] * {_operand(v["max_lr_mult"])} '
        "for group in optimizer.param_groups],\n"
        "        total_steps=total_steps,\n"
        f"        pct_start={_literal(v['pct_start'])},\n"
        "    )"
    ),
    "warmup": lambda v: (
        f"lr_scheduler.LinearLR(optimizer, start_factor={_literal(v['start_factor'])}, "
        f"total_iters={int(v['total_iters'])})"
    ),
    "plateau": lambda v: (
        'lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", '
        f"factor={_literal(v['factor'])}, patience={int(v['patience'])})"
    ),
}


def _changes(changes: tuple[Change, ...]) -> str:
    """The planned changes as a literal list of tuples."""
    items = [(c.at, c.epoch, c.group, c.name, float(c.value), c.multiply) for c in changes]
    return _literal(items) if items else "[]"


def _scheduler_factory(scheduler: SchedulerConfig) -> str:
    """``lambda optimizer, total_steps: <scheduler>``, or None for a constant lr."""
    if scheduler.spec.factory is None:
        return "None"
    return f"lambda optimizer, total_steps: {_scheduler_source(scheduler)}"


def _scheduler_source(scheduler: SchedulerConfig) -> str:
    """The scheduler's construction over ``optimizer`` (``None`` for a constant lr)."""
    if scheduler.spec.factory is None:
        return "None"
    render = _SCHEDULER_CALLS.get(scheduler.key)
    if render is None:
        raise ValueError(f"export as script: cannot write the scheduler {scheduler.spec.label}")
    return render(dict(scheduler.values))


def _setup_source(number: int, slot: TrainSlot, cls: str) -> str:
    """``def setup_N(model, total_steps)``: the slot's optimizer and scheduler."""
    opt = slot.optimizer
    lines = [
        f"def setup_{number}(model: nn.Module, total_steps: int):",
        f'    """{_doc(slot.label)}."""',
    ]
    if opt.spec.uses_closure:
        # torch's L-BFGS takes one param group only.
        params = "model.parameters()"
    else:
        head = f'"name": {_str(CLASSIFIER)}, "params": list(model.{CLASSIFIER}.parameters())'
        lines += [
            "    # Two param groups, as in torch.optim's per-parameter options example.",
            "    groups = [",
            f'        {{"name": {_str(FEATURES)}, "params": list(model.{FEATURES}.parameters())}},',
        ]
        if slot.classifier_lr_mult != 1:
            lr = opt.kwargs.get("lr")
            if isinstance(lr, bool) or not isinstance(lr, int | float):
                raise ValueError(f"export as script: {opt.spec.label} has no lr to multiply")
            mult = slot.classifier_lr_mult
            lines.append(f"        # The classifier's own lr: {lr!r} x {mult!r}.")
            head += f', "lr": {_literal(lr * mult)}'
        lines += [f"        {{{head}}},", "    ]"]
        params = "groups"
    for name in opt.kwargs:
        if not name.isidentifier():
            raise ValueError(f"export as script: {name!r} is not a keyword argument name")
    lines += [
        f"    optimizer = {cls}(",
        f"        {params},",
        *(f"        {k}={_literal(v)}," for k, v in opt.kwargs.items()),
        "    )",
        f"    scheduler = {_scheduler_source(slot.scheduler)}",
        "    return optimizer, scheduler",
    ]
    return "\n".join(lines) + "\n"


def data_folder_hint(kind: str, data_dir: str | os.PathLike[str] | None = None) -> str | None:
    """The CIFAR-10 folder a run's data came from, as a script's default.

    Args:
        kind: The data's `optlab.data.LoadedData.kind`.
        data_dir: The folder (or its parent) the data was loaded from, if one
            was named; None falls back to ``$OPTLAB_DATA_DIR`` for ``folder``.

    Returns:
        An absolute ``cifar-10-batches-py`` path, or None when unknown.
    """
    if kind == "folder":
        named = data_dir or os.environ.get(DATA_DIR_ENV)
        return str(resolve_data_dir(named)) if named else None
    if kind in ("cache", "download"):
        return str(default_cache_dir() / FOLDER_NAME)
    return None


def train_script(cfg: TrainRunConfig, data_dir_hint: str | None, *, data_kind: str) -> str:
    """A standalone script that repeats a CNN run and prints each optimizer's final test scores.

    Args:
        cfg: The run.
        data_dir_hint: The ``cifar-10-batches-py`` folder the run used (see
            `data_folder_hint`), the script's default; None for none (the
            script then needs the folder as an argument or in
            ``$OPTLAB_DATA_DIR``).
        data_kind: The data's `optlab.data.LoadedData.kind`: a script can
            only reproduce runs on CIFAR-10, not on the synthetic set.

    Returns:
        The script's source: it needs only torch and the CIFAR-10 python
        batches, and its last printed line is the JSON described in the
        module docstring (``final`` is null, ``final_loss`` the last test loss).

    Raises:
        ValueError: the run used the synthetic set, or something a script
            cannot rebuild (an optimizer that is not a ``torch.optim.Optimizer``
            class, a model whose source is not self-contained).
    """
    if data_kind == "synthetic":
        raise ValueError(
            "export as script: this run trained on the synthetic shapes set, which only "
            "OptLab can generate; a script can reproduce runs on CIFAR-10 only"
        )
    if data_kind not in CIFAR_KINDS:
        raise ValueError(f"export as script: unknown data kind {data_kind!r}")
    embedded, classes_code = _Embedded(), _Embedded()
    model_spec = get_model_spec(cfg.model)
    model_class, model_call = _call_source(model_spec.factory)
    embedded.add(normalise, augment, model_class, init_parameters)
    classes = [_optimizer_class(slot.optimizer, classes_code) for slot in cfg.slots]
    for name, value in (("CIFAR10_MEAN", CIFAR10_MEAN), ("CIFAR10_STD", CIFAR10_STD)):
        if embedded.constants.setdefault(name, _literal(value)) != _literal(value):
            raise ValueError(f"export as script: two different values of {name}")
    setups = [
        _setup_source(i, slot, cls)
        for i, (slot, cls) in enumerate(zip(cfg.slots, classes, strict=True), 1)
    ]
    runs = "\n".join(
        "    {\n"
        f'        "optimizer": {_str(slot.optimizer.key)},\n'
        f'        "label": {_str(slot.label)},\n'
        f'        "setup": setup_{i},\n'
        f'        "closure": {slot.optimizer.spec.uses_closure!r},  # step(closure), as L-BFGS\n'
        f'        "changes": {_changes(slot.changes)},  # see apply_changes\n'
        "    },"
        for i, slot in enumerate(cfg.slots, 1)
    )
    length = f"{cfg.steps} steps" if cfg.steps is not None else f"{cfg.epochs} epoch(s)"
    train_images = "all" if cfg.train_limit is None else f"the first {cfg.train_limit}"
    test_images = "all" if cfg.test_limit is None else f"the first {cfg.test_limit}"
    imports = embedded.imports | classes_code.imports
    imports |= {"import _codecs", "import argparse", "import json"}
    imports |= {"import math", "import os", "import pickle", "import sys"}
    imports |= {"from pathlib import Path", "import torch", "from torch import nn"}
    imports |= {"from torch.optim import lr_scheduler"}
    return _checked(
        _TRAIN_TEMPLATE.format(
            apply_changes=_APPLY_CHANGES,
            torch_version=torch.__version__,
            summary=_paragraph(
                f'Made by OptLab {__version__} ("Export as script") with torch '
                f"{torch.__version__} from a run training {_doc(model_spec.label)} for {length} "
                f"of {cfg.batch_size} images ({train_images} training and {test_images} test "
                "images) with these optimizers:"
            ),
            batch_size=cfg.batch_size,
            labels="\n".join(f"    - {_doc(slot.label)}" for slot in cfg.slots),
            imports=_sorted_imports(imports),
            data_dir=_literal(data_dir_hint),
            data_env=DATA_DIR_ENV,
            folder_name=FOLDER_NAME,
            steps=_literal(cfg.steps),
            epochs=_literal(cfg.epochs),
            train_limit=_literal(cfg.train_limit),
            test_limit=_literal(cfg.test_limit),
            augment=_literal(cfg.augment),
            clip=_literal(cfg.clip_grad_norm),
            eval_every=cfg.eval_every,
            seed=cfg.seed,
            device=_literal(cfg.device),
            channels_last=_literal(cfg.channels_last),
            eval_chunk=EVAL_CHUNK,
            definitions=_definitions(embedded),
            model_call=model_call,
            setups=_definitions(classes_code, *setups),
            runs=runs,
        )
    )


_TRAIN_TEMPLATE = """\
\"\"\"An OptLab CNN training run on CIFAR-10, exported as a standalone script.

{summary}
{labels}

It repeats the run with the textbook training loop, one optimizer after the
other, each from the same initial weights and on the same batches in the same
order, and prints each one's test loss and accuracy. Its last line is JSON:

    {{"runs": [{{"optimizer": ..., "final": null, "final_loss": <the last test loss>,
               "final_test_acc": ..., "status": "done" or "diverged", ...}}]}}

Run it with:

    python <this file> /path/to/{folder_name}

or set ${data_env} to that folder (or its parent). It needs only torch and the
CIFAR-10 batches in the python format (https://www.cs.toronto.edu/~kriz/cifar.html).
Options: --device auto|cpu|cuda|mps (default: the run's), --save PATH (writes
the trained weights, for torch.load). On the run's device, with torch
{torch_version}, the numbers equal OptLab's.
\"\"\"

from __future__ import annotations

{imports}

BATCH_SIZE = {batch_size}
STEPS = {steps}  # optimizer steps in all (None: EPOCHS passes over the training images)
EPOCHS = {epochs}
TRAIN_LIMIT = {train_limit}  # train on the first N training images (None: all)
TEST_LIMIT = {test_limit}  # test on the first N test images (None: all)
AUGMENT = {augment}  # random crop (padding 4) and horizontal flip per batch
CLIP_GRAD_NORM = {clip}  # clip the gradient norm to this (None: off)
EVAL_EVERY = {eval_every}  # test every this many steps, at each epoch's end and at the end
SEED = {seed}  # initial weights and data order (augmentation: SEED + 1)
DEVICE = {device}  # auto: CUDA, then MPS, then CPU
CHANNELS_LAST = {channels_last}  # the channels-last memory format on the CPU
EVAL_CHUNK = {eval_chunk}  # test images per forward pass
# The run's {folder_name} folder (an argument or ${data_env} comes first).
DATA_DIR = {data_dir}


# --- CIFAR-10: the official python batches, read without numpy
#
# The batches are pickles of numpy arrays, and unpickling can run code. This
# unpickler knows only the few globals an array is made of, and stands in for
# them with small classes that keep the array's bytes, dtype and shape.


class _DType:
    \"\"\"A numpy dtype: its name ("u1", "i8", ...) and byte order.\"\"\"

    def __init__(self, name: str, align: bool = False, copy: bool = True) -> None:
        self.name, self.byteorder = name, "="

    def __setstate__(self, state: tuple) -> None:
        self.byteorder = state[1]


class _Array:
    \"\"\"A numpy array: its bytes, dtype and shape, until it becomes a tensor.\"\"\"

    TYPES = {{"u1": torch.uint8, "i1": torch.int8, "i2": torch.int16, "i4": torch.int32}}
    TYPES["i8"] = torch.int64

    def __init__(self, *args: object) -> None:
        self.shape, self.dtype, self.raw = (), None, b""

    def __setstate__(self, state: tuple) -> None:
        _version, self.shape, self.dtype, fortran_order, raw = state
        if fortran_order and len(self.shape) > 1:
            raise pickle.UnpicklingError("Fortran-ordered arrays are not supported")
        # Arrays pickled by Python 2 hold their bytes as a latin1 string.
        self.raw = raw.encode("latin1") if isinstance(raw, str) else bytes(raw)

    def tensor(self) -> torch.Tensor:
        native = "<" if sys.byteorder == "little" else ">"
        if self.dtype is None or self.dtype.name not in self.TYPES:
            raise pickle.UnpicklingError("unsupported array type")
        if self.dtype.byteorder not in ("|", "=", native):
            raise pickle.UnpicklingError("unsupported byte order")
        flat = torch.frombuffer(bytearray(self.raw), dtype=self.TYPES[self.dtype.name])
        return flat.reshape(self.shape)


def _reconstruct(cls: object, shape: object, typecode: object) -> _Array:
    return _Array()  # filled in by __setstate__


def _frombuffer(buffer: bytes, dtype: _DType, shape: tuple, order: str) -> _Array:
    array = _Array()
    array.__setstate__((1, shape, dtype, order == "F", buffer))
    return array


def _scalar(dtype: _DType, raw: bytes | str) -> int:
    array = _Array()
    array.__setstate__((1, (), dtype, False, raw))
    return int(array.tensor())


class _BatchUnpickler(pickle.Unpickler):
    ALLOWED = {{("_codecs", "encode"): _codecs.encode, ("numpy", "ndarray"): _Array}}
    ALLOWED[("numpy", "dtype")] = _DType
    for _core in ("numpy.core", "numpy._core"):
        ALLOWED[(_core + ".multiarray", "_reconstruct")] = _reconstruct
        ALLOWED[(_core + ".multiarray", "scalar")] = _scalar
        ALLOWED[(_core + ".numeric", "_frombuffer")] = _frombuffer

    def find_class(self, module: str, name: str) -> object:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"forbidden global {{module}}.{{name}}") from None


def _read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    \"\"\"One batch file: images (N, 3, 32, 32) uint8 and labels (N,) int64.\"\"\"
    with open(path, "rb") as f:
        entries = _BatchUnpickler(f, encoding="latin1").load()
    entries = {{k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entries.items()}}
    images, labels = entries["data"].tensor(), entries["labels"]
    labels = labels.tensor() if isinstance(labels, _Array) else torch.tensor(labels)
    return images.reshape(-1, 3, 32, 32), labels.to(torch.int64)


def load_cifar10(folder: Path) -> tuple[torch.Tensor, ...]:
    \"\"\"Train images and labels, test images and labels, cut to the run's limits.\"\"\"
    train = [_read_batch(folder / f"data_batch_{{i}}") for i in range(1, 6)]
    test_images, test_labels = _read_batch(folder / "test_batch")
    train_images = torch.cat([images for images, _ in train])[:TRAIN_LIMIT]
    train_labels = torch.cat([labels for _, labels in train])[:TRAIN_LIMIT]
    return train_images, train_labels, test_images[:TEST_LIMIT], test_labels[:TEST_LIMIT]


# --- OptLab's own code: batches, the model and its seeded initial weights


{definitions}

def build_model() -> nn.Module:
    \"\"\"The model with the initial weights SEED gives: the same for every optimizer.\"\"\"
    # On the meta device the constructor allocates nothing and draws nothing;
    # init_parameters then draws every weight from a generator seeded with SEED.
    with torch.device("meta"):
        model = {model_call}
    model.to_empty(device="cpu")
    init_parameters(model, torch.Generator(device="cpu").manual_seed(SEED))
    return model


# --- The optimizers, each with its learning-rate scheduler
#
# A scheduler steps once per optimizer step (so T_max, step_size and
# total_iters count steps), except ReduceLROnPlateau: it steps with each test loss.


{setups}

RUNS = [
{runs}
]


# --- Training: the textbook loop


def resolve_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("mps" if torch.backends.mps.is_available() else "cpu")


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, channels_last: bool):
    \"\"\"Test loss (mean cross-entropy) and accuracy.\"\"\"
    device = next(model.parameters()).device
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(labels), EVAL_CHUNK):
        x = normalise(images[start : start + EVAL_CHUNK].to(device), CIFAR10_MEAN, CIFAR10_STD)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = labels[start : start + EVAL_CHUNK].to(device)
        logits = model(x)
        total_loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(1) == y).sum())
    model.train()
    return total_loss / len(labels), correct / len(labels)


{apply_changes}

def train(run: dict, data: tuple[torch.Tensor, ...], device: torch.device):
    \"\"\"Trains a copy of the model with one optimizer; returns its results and the model.\"\"\"
    train_images, train_labels, test_images, test_labels = data
    per_epoch = len(train_labels) // BATCH_SIZE  # the last partial batch is dropped
    if per_epoch < 1:
        sys.exit(f"error: batches of {{BATCH_SIZE}} need more than {{len(train_labels)}} images")
    total_steps = STEPS if STEPS is not None else EPOCHS * per_epoch
    channels_last = CHANNELS_LAST and device.type == "cpu"
    # torch's L-BFGS flattens gradients with .view(-1), which channels-last
    # conv weights do not allow: its model keeps the default layout.
    use_layout = channels_last and not run["closure"]
    layout = torch.channels_last if use_layout else torch.contiguous_format
    model = build_model().to(device, memory_format=layout)
    optimizer, scheduler = run["setup"](model, total_steps)
    plateau = isinstance(scheduler, lr_scheduler.ReduceLROnPlateau)
    loss_fn = nn.CrossEntropyLoss()
    order_gen = torch.Generator().manual_seed(SEED)  # the data order
    augment_gen = torch.Generator().manual_seed(SEED + 1)  # crops and flips

    status, test_loss, test_acc, step = "done", None, None, 0
    while step < total_steps and status == "done":
        order = torch.randperm(len(train_labels), generator=order_gen)  # each epoch anew
        for position in range(min(per_epoch, total_steps - step)):
            apply_changes(optimizer, run["changes"], step, per_epoch)
            idx = order[position * BATCH_SIZE : (position + 1) * BATCH_SIZE]
            images = train_images[idx]
            if AUGMENT:
                images = augment(images, augment_gen)
            x = normalise(images.to(device), CIFAR10_MEAN, CIFAR10_STD)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = train_labels[idx].to(device)

            def closure() -> torch.Tensor:
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                if CLIP_GRAD_NORM is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_GRAD_NORM)
                return loss

            if run["closure"]:
                loss = optimizer.step(closure)  # the loss before the step
            else:
                loss = closure()
                optimizer.step()
            if scheduler is not None and not plateau:
                scheduler.step()
            step += 1
            if not math.isfinite(loss.item()):
                status = "diverged"
                print(f"{{run['label']}}: diverged at step {{step}} (loss {{loss.item()}})")
                break
            if step == total_steps or step % EVAL_EVERY == 0 or step % per_epoch == 0:
                test_loss, test_acc = evaluate(model, test_images, test_labels, channels_last)
                print(
                    f"{{run['label']}}: step {{step}}, "
                    f"test loss {{test_loss:.4f}}, accuracy {{test_acc:.1%}}"
                )
                if plateau:
                    scheduler.step(test_loss)
    finite = test_loss is not None and math.isfinite(test_loss)
    result = {{
        "optimizer": run["optimizer"],
        "label": run["label"],
        "status": status,
        "steps": step,
        "final": None,
        "final_loss": test_loss if finite else None,
        "final_test_acc": test_acc,
    }}
    return result, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", help="the {folder_name} folder (or its parent)")
    parser.add_argument("--device", default=DEVICE, help="auto, cpu, cuda or mps")
    parser.add_argument("--save", metavar="PATH", help="write the trained weights here")
    args = parser.parse_args()
    named = args.data or os.environ.get("{data_env}") or DATA_DIR
    if not named:
        sys.exit("error: name the {folder_name} folder: python <this file> FOLDER")
    folder = Path(named).expanduser()
    if not (folder / "test_batch").exists() and (folder / "{folder_name}").is_dir():
        folder = folder / "{folder_name}"
    if not (folder / "test_batch").is_file():
        sys.exit(f"error: {{folder}} is not a {folder_name} folder")
    if torch.__version__ != "{torch_version}":
        print(
            "note: made with torch {torch_version}, this is torch "
            f"{{torch.__version__}}: the last digits may differ",
            file=sys.stderr,
        )
    data = load_cifar10(folder)
    device = resolve_device(args.device)
    results, models = [], []
    for run in RUNS:
        result, model = train(run, data, device)
        results.append(result)
        models.append(model)
    if args.save:
        weights = [{{k: v.cpu() for k, v in m.state_dict().items()}} for m in models]
        torch.save({{"labels": [r["label"] for r in results], "models": weights}}, args.save)
        print(f"wrote {{args.save}}")
    print(json.dumps({{"runs": results}}, allow_nan=False))


if __name__ == "__main__":
    main()
"""
