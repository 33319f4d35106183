"""The safe pieces an exported script is made of, and OptLab's own code embedded in it.

Values become Python source through `literal` (never by pasting text), text
a user typed only ever lands in string literals and comments (`string`,
`comment`, `doc`), and `Embedded` gathers the source of OptLab's own
functions and classes (the script runtime, a surface's torch function, the
CNN) with every definition they use, checked to need nothing but torch, the
standard library and each other.
"""

from __future__ import annotations

import _codecs
import argparse
import ast
import functools
import inspect
import io
import json
import linecache
import math
import os
import pickle
import sys
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd
from torch.optim import lr_scheduler

from optlab.optim.config import OptimizerConfig
from optlab.optim.packs import library_of

# Names OptLab's embedded code may use from outside the optlab package: each
# with the object it must be and the import line that provides it in the script.
_KNOWN_GLOBALS: dict[str, tuple[object, str]] = {
    "torch": (torch, "import torch"),
    "math": (math, "import math"),
    "json": (json, "import json"),
    "io": (io, "import io"),
    "os": (os, "import os"),
    "sys": (sys, "import sys"),
    "pickle": (pickle, "import pickle"),
    "argparse": (argparse, "import argparse"),
    "_codecs": (_codecs, "import _codecs"),
    "Path": (Path, "from pathlib import Path"),
    "nn": (torch.nn, "from torch import nn"),
    "F": (torch.nn.functional, "import torch.nn.functional as F"),
    "Tensor": (torch.Tensor, "from torch import Tensor"),
    "Optimizer": (torch.optim.Optimizer, "from torch.optim import Optimizer"),
    "lr_scheduler": (lr_scheduler, "from torch.optim import lr_scheduler"),
    "_ConvNd": (_ConvNd, "from torch.nn.modules.conv import _ConvNd"),
    "_NormBase": (_NormBase, "from torch.nn.modules.batchnorm import _NormBase"),
    "Mapping": (Mapping, "from collections.abc import Mapping"),
    "Any": (Any, "from typing import Any"),
}


def _embeddable(module: str | None, home: str) -> bool:
    """Whether a definition in ``module`` may be embedded for one in ``home``: OptLab's
    own code (an optimizer plugin's own module too), never a third party's."""
    return module == home or (module or "").split(".")[0] == "optlab"


def literal(value: object) -> str:
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
        return string(value)
    if isinstance(value, tuple | list):
        items = ", ".join(literal(v) for v in value)
        if isinstance(value, list):
            return f"[{items}]"
        return f"({items},)" if len(value) == 1 else f"({items})"
    raise ValueError(f"export as script: cannot write the value {value!r} as Python source")


def string(text: str) -> str:
    """A string literal: ``ascii`` escapes quotes, line breaks and anything non-ASCII."""
    source = ascii(text)
    return f'"{source[1:-1]}"' if source[0] == "'" and '"' not in text else source


def is_literal(value: object) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    return isinstance(value, tuple) and all(is_literal(v) for v in value)


def operand(value: float) -> str:
    """A float as an operand: negative numbers get parentheses."""
    text = literal(value)
    return f"({text})" if text.startswith("-") else text


def comment(value: object) -> str:
    """Text fit for a comment: one line, no control or invisible characters."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(value))


def doc(value: object) -> str:
    """Text fit for a docstring: as for a comment, without quotes or backslashes."""
    return comment(value).replace("\\", "/").replace('"', "'")


def kwargs_literal(values: dict[str, Any], indent: int) -> str:
    """A dict literal of constructor arguments, one per line."""
    pad = " " * indent
    lines = [f"{pad}    {string(str(k))}: {literal(v)}," for k, v in values.items()]
    return "{\n" + "\n".join(lines) + f"\n{pad}}}"


@dataclass
class Embedded:
    """Source gathered for a script: imports, constants, definitions (dependencies first).

    A script is written in sections (the surface, the optimizers, the loop):
    `add` what a section needs, then `take` its source; a definition that an
    earlier section already holds is not written twice.
    """

    imports: set[str] = field(default_factory=set)
    constants: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    objects: dict[str, object] = field(default_factory=dict)
    taken: int = 0
    constants_taken: int = 0

    def add(self, *objects: object) -> None:
        """Adds each function or class, after every definition it uses.

        Raises:
            ValueError: a definition needs something a script cannot rebuild,
                or two different definitions share a name.
        """
        for obj in objects:
            self._visit(obj)

    def take(self, *more: str) -> str:
        """The constants and definitions added since the last `take`, then ``more``,
        two blank lines apart."""
        names = list(self.constants)[self.constants_taken :]
        constants = "".join(f"{name} = {self.constants[name]}\n" for name in names)
        sources = list(self.sources.values())[self.taken :]
        self.taken, self.constants_taken = len(self.sources), len(self.constants)
        return "\n\n".join(block for block in [constants, *sources, *more] if block)

    def _visit(self, obj: Any) -> None:
        obj = inspect.unwrap(obj)  # a decorated function: its own globals, not the wrapper's
        name = obj.__name__
        if name in self.objects:
            if self.objects[name] is not obj:
                raise ValueError(f"export as script: the name {name!r} would be defined twice")
            return
        self.objects[name] = obj
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
            elif (inspect.isfunction(value) or inspect.isclass(value)) and _embeddable(
                getattr(value, "__module__", None), obj.__module__
            ):
                self._visit(value)
            elif is_literal(value):
                self._constant(used, literal(value))
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

    def _constant(self, name: str, source: str) -> None:
        if self.constants.setdefault(name, source) != source:
            raise ValueError(f"export as script: two different values of {name}")

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


def call_source(factory: Any) -> tuple[Any, str]:
    """The class a model factory builds and the call that builds it (``SeedNet(relu=True)``)."""
    args: tuple[Any, ...] = ()
    keywords: dict[str, Any] = {}
    if isinstance(factory, functools.partial):
        factory, args, keywords = factory.func, factory.args, dict(factory.keywords)
    if not inspect.isclass(factory):
        raise ValueError("export as script: the model's factory is not a class")
    parts = [literal(a) for a in args] + [f"{k}={literal(v)}" for k, v in keywords.items()]
    return factory, f"{factory.__name__}({', '.join(parts)})"


def optimizer_class(opt: OptimizerConfig, embedded: Embedded) -> str:
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
    library = library_of(factory)
    if library is not None:  # a script needs only torch; its code is the library's
        raise ValueError(
            f"export as script: {opt.spec.label} comes from the {library} library (an "
            "optimizer pack), and an exported script needs only torch"
        )
    embedded.add(factory)
    return name


def paragraph(text: str) -> str:
    """``text`` wrapped for a docstring."""
    return textwrap.fill(text, width=79, break_long_words=False, break_on_hyphens=False)


def section(code: str) -> str:
    """``code`` set apart by the blank lines top-level definitions need, if any."""
    return f"\n{code}\n\n" if code else ""


def checked(source: str) -> str:
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


def sorted_imports(lines: Iterable[str]) -> str:
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
