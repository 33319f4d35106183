"""OptLab's import graph, read from the code itself (every import statement, lazy ones too).

The layering test checks its rules on it, and ``python -m tests.support.imports``
prints the measures a restructure is judged by: the import levels (the longest
chain of imports), the largest modules, and the cycles, if any.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def module_name(path: Path, root: Path = ROOT) -> str:
    """``optlab/ui/cnn/session.py`` -> ``optlab.ui.cnn.session`` (a package: its name)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files(root: Path = ROOT) -> list[Path]:
    """Every Python file of the product: optlab/, pages/ and app.py."""
    package = root / "optlab"
    files = sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)
    files += sorted((root / "pages").glob("*.py"))
    return [*files, root / "app.py"]


def _imported(tree: ast.AST, name: str, is_package: bool) -> list[tuple[str, list[str]]]:
    """What ``tree`` imports: ``(module, names)`` pairs, relative imports resolved
    against ``name`` (``names`` is empty for a plain ``import module``)."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append((base, [alias.name for alias in node.names]))
    return found


@dataclass
class Graph:
    """Modules (by dotted name) and the OptLab modules each imports."""

    files: dict[str, Path] = field(default_factory=dict)
    edges: dict[str, set[str]] = field(default_factory=dict)

    def resolve(self, dotted: str) -> str | None:
        """The longest known module that ``dotted`` names or lies in, or None."""
        parts = dotted.split(".")
        while parts:
            candidate = ".".join(parts)
            if candidate in self.files:
                return candidate
            parts.pop()
        return None

    def cycles(self) -> list[list[str]]:
        """Every strongly connected set of more than one module (Tarjan's algorithm)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []

        def visit(v: str) -> None:
            index[v] = low[v] = len(index)
            stack.append(v)
            on_stack.add(v)
            for w in sorted(self.edges[v]):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                group = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    group.append(w)
                    if w == v:
                        break
                if len(group) > 1:
                    found.append(sorted(group))

        for v in sorted(self.edges):
            if v not in index:
                visit(v)
        return found

    def levels(self) -> dict[str, int]:
        """Each module's level: 1 for one that imports no OptLab module, else one more
        than the highest level it imports; the modules of a cycle count as one."""
        group = {v: v for v in self.edges}
        for members in self.cycles():
            for v in members:
                group[v] = members[0]
        memo: dict[str, int] = {}

        def level(v: str) -> int:
            g = group[v]
            if g not in memo:
                memo[g] = 0  # guards the walk inside a cycle
                members = [w for w in self.edges if group[w] == g]
                below = {group[w] for m in members for w in self.edges[m]} - {g}
                memo[g] = 1 + max((level(w) for w in below), default=0)
            return memo[g]

        return {v: level(v) for v in self.edges}


def _is_package_module(name: str) -> bool:
    return name.startswith("optlab") or name.startswith("pages") or name == "app"


def read_graph(root: Path = ROOT) -> Graph:
    """The import graph of a checkout's `source_files`, edges among them only."""
    graph = Graph()
    for path in source_files(root):
        graph.files[module_name(path, root)] = path
    for name, path in graph.files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: set[str | None] = set()
        for module, names in _imported(tree, name, path.name == "__init__.py"):
            if not _is_package_module(module):
                continue
            # "from pkg import x": the module pkg.x when there is one, else pkg itself.
            submodules = [f"{module}.{n}" for n in names if f"{module}.{n}" in graph.files]
            targets.update(submodules)
            if len(submodules) < len(names) or not names:
                targets.add(graph.resolve(module))
        # A package's __init__ re-exporting its modules is not a dependency of theirs.
        graph.edges[name] = {t for t in targets if t is not None and t != name}
    return graph


def main(argv: list[str]) -> None:
    """Prints the import levels, the largest modules and any cycles (of the checkout
    named on the command line, this one by default)."""
    graph = read_graph(Path(argv[0]).resolve() if argv else ROOT)
    engine = {n: p for n, p in graph.files.items() if n.startswith("optlab")}
    levels = graph.levels()
    if levels:
        deepest = max(levels[n] for n in engine)
        print(f"import levels (optlab/): {deepest}")
        chain, name = [], max(engine, key=lambda n: levels[n])
        while True:
            chain.append(name)
            below = [w for w in graph.edges[name] if levels[w] == levels[name] - 1]
            below = below or [w for w in graph.edges[name] if levels[w] == levels[name]]
            below = [w for w in below if w not in chain]
            if not below:
                break
            name = sorted(below)[0]
        print("  the longest chain: " + " -> ".join(chain))
    for group in graph.cycles():
        print("cycle: " + ", ".join(group))
    sizes = sorted(
        ((len(p.read_text(encoding="utf-8").splitlines()), n) for n, p in engine.items()),
        reverse=True,
    )
    print("largest modules: " + ", ".join(f"{n} {lines}" for lines, n in sizes[:5]))


if __name__ == "__main__":
    main(sys.argv[1:])
