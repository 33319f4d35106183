"""Layering and safety rules that hold for the whole code base.

- Imports point one way (read from every import statement of the code itself,
  `tests.support.imports`): pages -> optlab.ui -> the engine. The shared core
  (caps, files, charts, lookup) imports nothing else of OptLab; ``optlab.optim``
  imports no product; the products ``surface``, ``sweep`` and ``train`` never
  import one another, except ``sweep`` -> ``surface`` (sweeps run on surfaces) and
  ``study`` -> ``train`` (a study's trials are trainings); ``workshop`` (replicas
  behind HAProxy) imports only the core; ``lessons`` (the Lessons page's engine) runs
  the exported scripts' loops on surfaces and the CNN, with the example plugins;
  the integrations (links, export, script, cli) never import the UI. There is
  no import cycle anywhere.
- A module holds one concept: none is over `MAX_LINES` lines, and no OptLab
  module is imported under a one-letter alias.
- The engine (everything under ``optlab/`` except ``optlab/ui/``) never imports
  streamlit: checked by importing every engine module in a fresh interpreter, and
  statically on the source.
- No code evaluates text as Python: no ``eval(``, ``exec(`` or builtin ``compile(``
  calls anywhere in ``optlab/``, ``pages/`` or ``app.py``.

Modules are discovered from the package directory, so new files are checked as they
appear.
"""

from __future__ import annotations

import ast
import json
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.imports import Graph, read_graph, source_files
from tests.support.resources import ROOT

PACKAGE = ROOT / "optlab"
UI = PACKAGE / "ui"
CORE_MODULES = {
    "optlab",
    "optlab.optim.registry",
    "optlab.surface.surfaces",
    "optlab.surface.run",
    "optlab.surface.formula",
    "optlab.optim.hparams",
}


def _engine_modules(path: Path = PACKAGE, prefix: str = "optlab") -> list[str]:
    """Every importable module under the package except optlab.ui, without importing.

    ``__main__`` is left out: importing it runs the CLI. The static check below still
    reads its source.
    """
    found = [prefix] if prefix == "optlab" else []
    for info in pkgutil.iter_modules([str(path)]):
        name = f"{prefix}.{info.name}"
        if name == "optlab.ui" or info.name == "__main__":
            continue
        found.append(name)
        if info.ispkg:
            found.extend(_engine_modules(path / info.name, name))
    return found


_PROBE = textwrap.dedent(
    """
    import importlib, json, sys
    culprit = None
    for name in json.loads(sys.argv[1]):
        importlib.import_module(name)
        if culprit is None and "streamlit" in sys.modules:
            culprit = name
    print(json.dumps({"culprit": culprit}))
    """
)


def _first_streamlit_importer(modules: list[str], extra_path: Path | None = None) -> str | None:
    """Imports ``modules`` in order in a fresh interpreter; returns the first that
    pulled in streamlit, or None."""
    env = dict(os.environ)
    paths = [str(ROOT), *([str(extra_path)] if extra_path else [])]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(modules)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"importing {modules} failed:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])["culprit"]


def test_discovery_finds_the_engine_modules() -> None:
    modules = _engine_modules()
    assert set(modules) >= CORE_MODULES, CORE_MODULES - set(modules)
    assert not any(m == "optlab.ui" or m.startswith("optlab.ui.") for m in modules)


def test_engine_does_not_load_streamlit() -> None:
    assert _first_streamlit_importer(_engine_modules()) is None


def test_import_probe_can_fail(tmp_path: Path) -> None:
    # A stand-in streamlit package proves the probe notices the import.
    (tmp_path / "streamlit").mkdir()
    (tmp_path / "streamlit" / "__init__.py").write_text("")
    (tmp_path / "clean_mod.py").write_text("import json\n")
    (tmp_path / "ui_mod.py").write_text("import streamlit as st\n")
    modules = ["clean_mod", "ui_mod"]
    assert _first_streamlit_importer(modules, tmp_path) == "ui_mod"
    assert _first_streamlit_importer(["clean_mod"], tmp_path) is None


# --- static checks --------------------------------------------------------------------


def _python_files() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    pages = ROOT / "pages"
    if pages.is_dir():
        files += sorted(pages.rglob("*.py"))
    if (ROOT / "app.py").is_file():
        files.append(ROOT / "app.py")
    return [f for f in files if "__pycache__" not in f.parts]


def _engine_files() -> list[Path]:
    return [f for f in sorted(PACKAGE.rglob("*.py")) if UI not in f.parents]


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _streamlit_imports(tree: ast.Module) -> list[int]:
    """Line numbers that import streamlit (statements or importlib/__import__ calls)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if any(alias.name.split(".")[0] == "streamlit" for alias in node.names):
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").split(".")[0] == "streamlit":
                lines.append(node.lineno)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0]
            if (
                name in ("import_module", "__import__")
                and isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
                and arg.value.split(".")[0] == "streamlit"
            ):
                lines.append(node.lineno)
    return lines


_DYNAMIC = ("eval", "exec", "compile")


def _bound_names(tree: ast.Module) -> set[str]:
    """Names the module binds itself (then ``compile(...)`` is not the builtin)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def _dynamic_code_calls(tree: ast.Module) -> list[tuple[int, str]]:
    """Calls of the builtins eval, exec and compile (comments and strings ignored)."""
    shadowed = _bound_names(tree)
    hits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in _DYNAMIC and func.id not in shadowed:
            hits.append((node.lineno, func.id))
        elif (
            isinstance(func, ast.Attribute)
            and func.attr in _DYNAMIC
            and isinstance(func.value, ast.Name)
            and func.value.id in ("builtins", "__builtins__")
        ):
            hits.append((node.lineno, f"builtins.{func.attr}"))
    return hits


def test_static_checks_can_fail() -> None:
    bad = ast.parse(
        textwrap.dedent(
            """
            import os, streamlit.components.v1 as components
            from streamlit import session_state
            import importlib
            importlib.import_module("streamlit")
            # eval(x) in a comment is fine, and so is "exec(" in a string
            text = "exec(code)"
            pattern = re.compile("x")
            torch.compile(model)
            value = eval("1 + 1")
            exec("y = 2")
            code = compile("1", "<s>", "eval")
            builtins.eval("3")
            """
        )
    )
    assert _streamlit_imports(bad) == [2, 3, 5]
    assert [name for _, name in _dynamic_code_calls(bad)] == [
        "eval",
        "exec",
        "compile",
        "builtins.eval",
    ]
    shadowing = ast.parse("from re import compile\npattern = compile('x')\n")
    assert _dynamic_code_calls(shadowing) == []
    assert _streamlit_imports(ast.parse("from .streamlit import x\nimport streamlitish\n")) == []


def test_engine_sources_do_not_import_streamlit() -> None:
    files = _engine_files()
    assert {f.name for f in files} >= {"registry.py", "surfaces.py", "run.py"}
    offenders = {
        str(f.relative_to(ROOT)): lines for f in files if (lines := _streamlit_imports(_parse(f)))
    }
    assert not offenders, f"streamlit imported outside optlab/ui: {offenders}"


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_eval_exec_or_compile(path: Path) -> None:
    hits = _dynamic_code_calls(_parse(path))
    assert not hits, f"{path.relative_to(ROOT)} evaluates code: {hits}"


# --- the import graph ------------------------------------------------------------------

#: The largest module (lines, docstrings and comments included).
MAX_LINES = 600
#: Each layer of OptLab, by module prefix (the longest matching prefix wins).
LAYERS = {
    "optlab": "core",
    "optlab.caps": "core",
    "optlab.files": "core",
    "optlab.charts": "core",
    "optlab.lookup": "core",
    "optlab.optim": "optim",
    "optlab.optimizers": "plugin api",
    "optlab.hparams": "plugin api",
    "optlab.examples": "plugin",
    "optlab.surface": "surface",
    "optlab.sweep": "sweep",
    "optlab.train": "train",
    "optlab.study": "study",
    "optlab.rooms": "rooms",
    "optlab.workshop": "workshop",
    "optlab.worker": "worker",
    "optlab.lessons": "lessons",
    "optlab.links": "integration",
    "optlab.export": "integration",
    "optlab.script": "integration",
    "optlab.cli": "integration",
    "optlab.__main__": "integration",
    "optlab.ui": "ui",
    "pages": "pages",
    "app": "pages",
}
PRODUCTS = ("surface", "sweep", "train", "study")
#: What each layer may import (besides itself).
ALLOWED = {
    "core": {"core"},
    "optim": {"core", "optim"},
    "plugin api": {"optim"},
    "plugin": {"core", "optim"},
    "surface": {"core", "optim", "surface"},
    "sweep": {"core", "optim", "surface", "sweep"},
    "train": {"core", "optim", "train"},
    "study": {"core", "optim", "train", "study"},
    "workshop": {"core", "workshop"},
    # The engine process runs the 2-D runs and sweeps beside a server.
    "worker": {"core", "optim", "surface", "sweep", "worker"},
    "integration": {"core", "optim", *PRODUCTS, "workshop", "integration"},
    # Rooms verify challenge entries on surfaces and read playground share links.
    "rooms": {"core", "optim", "surface", "integration", "rooms"},
    # Lessons run the exported scripts' loops (integration) on surfaces and the CNN,
    # and teach with the example plugins (Lion, Adam without bias correction).
    "lessons": {"core", "optim", "plugin", "surface", "train", "integration", "lessons"},
    "ui": {
        "core",
        "optim",
        *PRODUCTS,
        "workshop",
        "worker",
        "integration",
        "rooms",
        "lessons",
        "ui",
    },
    "pages": {
        "core",
        "optim",
        *PRODUCTS,
        "workshop",
        "integration",
        "rooms",
        "lessons",
        "ui",
        "pages",
    },
}


def layer(module: str) -> str:
    """The layer a module belongs to."""
    parts = module.split(".")
    while parts:
        found = LAYERS.get(".".join(parts))
        if found is not None:
            return found
        parts.pop()
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


@pytest.fixture(scope="module")
def graph() -> Graph:
    return read_graph()


def test_every_module_has_a_layer(graph: Graph) -> None:
    for module in graph.files:
        assert layer(module) in ALLOWED


def test_imports_point_one_way(graph: Graph) -> None:
    wrong = [
        f"{source} ({layer(source)}) imports {target} ({layer(target)})"
        for source, targets in graph.edges.items()
        for target in sorted(targets)
        if layer(target) not in ALLOWED[layer(source)]
    ]
    assert not wrong, "\n".join(wrong)


def test_there_is_no_import_cycle(graph: Graph) -> None:
    assert graph.cycles() == []


def test_the_graph_reader_sees_what_it_must_forbid(tmp_path: Path) -> None:
    """A cycle, a product importing another, and a lazy import: all found."""
    (tmp_path / "optlab" / "surface").mkdir(parents=True)
    (tmp_path / "optlab" / "train").mkdir()
    (tmp_path / "pages").mkdir()
    (tmp_path / "app.py").write_text("")
    (tmp_path / "optlab" / "__init__.py").write_text("")
    (tmp_path / "optlab" / "surface" / "__init__.py").write_text("")
    (tmp_path / "optlab" / "train" / "__init__.py").write_text("")
    (tmp_path / "optlab" / "surface" / "a.py").write_text("from optlab.surface import b\n")
    (tmp_path / "optlab" / "surface" / "b.py").write_text(
        "def later():\n    from optlab.surface.a import x\n"
    )
    (tmp_path / "optlab" / "train" / "c.py").write_text("from .. import surface\n")
    found = read_graph(tmp_path)
    assert found.cycles() == [["optlab.surface.a", "optlab.surface.b"]]
    assert found.edges["optlab.train.c"] == {"optlab.surface"}
    assert layer("optlab.train.c") == "train" and "surface" not in ALLOWED["train"]


def test_modules_stay_small() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in source_files()
    }
    big = {name: lines for name, lines in sizes.items() if lines > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them by concept): {big}"


def _optlab_aliases(tree: ast.Module) -> list[str]:
    """OptLab modules imported under a one-letter alias (``import ... as R``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("optlab"):
            found += [a.asname for a in node.names if a.asname and len(a.asname) == 1]
        elif isinstance(node, ast.Import):
            found += [
                a.asname
                for a in node.names
                if a.name.startswith("optlab") and a.asname and len(a.asname) == 1
            ]
    return found


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_one_letter_module_aliases(path: Path) -> None:
    assert _optlab_aliases(_parse(path)) == []


def test_the_alias_check_can_fail() -> None:
    tree = ast.parse("from optlab.ui.cnn import results as R\nimport optlab.links as L\n")
    assert _optlab_aliases(tree) == ["R", "L"]
