"""The import graph of the project's own modules, from the source (ast): circles, in-function imports,
environment reads, and the longest functions.

    python tests/import_graph.py [ROOT]      # the figures for the checkout at ROOT (default: this one)

Modules: every .py under attribution/, components/, pages/ and app.py. An import is "module level"
when it runs at import time (top of the module, or inside if/try at the top, `if TYPE_CHECKING:`
blocks excluded), "typing" inside `if TYPE_CHECKING:`, and "in function" anywhere inside a def.
`from pkg import name` points at the module pkg.name when there is one, else at pkg.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SOURCES = ("attribution", "components", "pages", "app.py")
ENVIRONMENT_NAMES = frozenset({"environ", "getenv", "putenv", "unsetenv"})


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (one of ours)
    line: int
    kind: str  # "module" | "typing" | "function"
    function: str = ""  # the enclosing function for kind "function"


@dataclass
class Graph:
    modules: dict[str, Path] = field(default_factory=dict)
    imports: list[Import] = field(default_factory=list)
    outside: list[Import] = field(default_factory=list)  # in-function imports of other packages (target: its name)
    env_reads: list[tuple[str, int, str]] = field(default_factory=list)  # (module, line, what)
    functions: list[tuple[int, str]] = field(default_factory=list)  # (lines, module:function)

    def edges(self, kinds: tuple[str, ...]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {m: set() for m in self.modules}
        for imp in self.imports:
            if imp.kind in kinds and imp.target != imp.source:
                out[imp.source].add(imp.target)
        return out

    def circles(self, kinds: tuple[str, ...] = ("module",)) -> list[list[str]]:
        """Strongly connected components of more than one module (each a set of modules importing in a circle)."""
        return [sorted(c) for c in _components(self.edges(kinds)) if len(c) > 1]

    def mutual_pairs(self, kinds: tuple[str, ...]) -> list[tuple[str, str]]:
        edges = self.edges(kinds)
        return sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if a in edges.get(b, set())})  # type: ignore[misc]


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def build(root: Path) -> Graph:
    graph = Graph()
    for source in SOURCES:
        base = root / source
        files = [base] if base.is_file() else sorted(base.rglob("*.py"))
        for path in files:
            graph.modules[module_name(root, path)] = path
    for name, path in graph.modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node, kind, function in _walk(tree):
            targets = _targets(node, name, is_package, graph.modules)
            for target in targets:
                graph.imports.append(Import(name, target, node.lineno, kind, function))
            if kind == "function" and not targets and not getattr(node, "level", 0):
                top = (node.module if isinstance(node, ast.ImportFrom) else node.names[0].name) or ""
                graph.outside.append(Import(name, top, node.lineno, kind, function))
        graph.env_reads += [(name, line, what) for line, what in _environment_reads(tree)]
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                graph.functions.append((length, f"{path.relative_to(root)}:{node.name}"))
    return graph


def _walk(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, str, str]]:
    """Every import with its kind and enclosing function."""

    def visit(node: ast.AST, kind: str, function: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, str, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, kind, function
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from visit(child, "function", function or getattr(child, "name", "<lambda>"))
            elif isinstance(child, ast.If) and kind == "module" and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from visit(ast.Module(body=[stmt], type_ignores=[]), "typing", function)
                for stmt in child.orelse:
                    yield from visit(ast.Module(body=[stmt], type_ignores=[]), kind, function)
            else:
                yield from visit(child, kind, function)

    yield from visit(tree, "module", "")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, ours: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [_ours(alias.name, ours) for alias in node.names if _ours(alias.name, ours)]
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    found = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        target = candidate if candidate in ours else _ours(base, ours)
        if target:
            found.append(target)
    return found


def _ours(name: str, ours: dict[str, Path]) -> str:
    """The longest prefix of a dotted name that is one of our modules ("" when none)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in ours:
            return candidate
    return ""


def _environment_reads(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """os.environ / os.getenv uses, and imports of the settings module (which reads PAIRLENS_*)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT_NAMES:
            yield node.lineno, f"os.{node.attr}"
        elif isinstance(node, ast.ImportFrom):
            names = {a.name for a in node.names}
            if (node.module or "").endswith("settings") or "settings" in names or names & ENVIRONMENT_NAMES:
                yield node.lineno, f"from {'.' * node.level}{node.module or ''} import {', '.join(sorted(names))}"
        elif isinstance(node, ast.Import) and any(a.name.endswith("settings") for a in node.names):
            yield node.lineno, "import settings"


def _components(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                found.append(component)
    return found


def report(root: Path) -> str:
    graph = build(root)
    in_function = {(i.source, i.line) for i in graph.imports if i.kind == "function"}
    outside = {(i.source, i.line) for i in graph.outside}
    runtime = graph.circles(("module", "function"))
    every = graph.circles(("module", "typing", "function"))
    lines = [
        f"modules: {len(graph.modules)}",
        f"circles, module-level imports: {len(graph.circles(('module',)))} {graph.circles(('module',))}",
        f"circles, run-time imports (module level + in-function): {len(runtime)} {runtime}",
        f"circles, all imports (+ TYPE_CHECKING): {len(every)} {every}",
        f"in-function import statements: {len(in_function | outside)} ({len(in_function)} of our modules, "
        f"{len(outside)} of other packages)",
        f"core modules reading the environment: {[r for r in graph.env_reads if r[0].startswith('attribution.core')]}",
        "10 longest functions: " + ", ".join(f"{where} {n}" for n, where in sorted(graph.functions, reverse=True)[:10]),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]))
