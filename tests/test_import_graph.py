"""The import graph of `glus_cli` has no circle, counting imports inside functions and `TYPE_CHECKING`.

Every module is read with `ast` (nothing is imported), every `import` / `from ... import` anywhere in it
becomes an edge to the `glus_cli` module it names (a name imported from a package counts as its
submodule when one exists, else as the package), and the graph is searched for a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import glus_cli

PACKAGE_ROOT = Path(glus_cli.__file__).parent


def module_names() -> dict[str, Path]:
    """Every module of the package by dotted name (packages by their name, from `__init__.py`)."""
    modules = {}
    for path in PACKAGE_ROOT.rglob("*.py"):
        parts = ("glus_cli", *path.relative_to(PACKAGE_ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The `glus_cli` modules that module `name` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a list of modules (first repeated last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def package_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports. A package's `__init__` that only re-exports lazily
    (`glus_cli.model`) is a module like the others."""
    modules = module_names()
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def test_the_package_has_no_import_cycle() -> None:
    graph = package_graph()
    assert len(graph) > 40 and "glus_cli.pipeline" in graph["glus_cli.runner"]  # the walk sees lazy imports
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
