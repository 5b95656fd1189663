"""The library's modules import one another one way: no import circle, counting the imports inside
functions as well as those at module level.

An edge A -> B is an import in A (anywhere in its code) of the library module B, plus every package
on B's path that is not a package of A's own (importing ``recbole_autodenoise.schemes.base`` from
outside ``schemes`` runs ``schemes/__init__.py`` first; from inside it, that package is already
being imported). ``from P import name`` is an import of ``P.name`` where that is a module, else
of ``P``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "recbole_autodenoise"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def module_names(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _packages(name: str, modules: dict[str, Path]) -> list[str]:
    """``name``'s enclosing packages, outermost first (``a.b.c`` -> ``a``, ``a.b``)."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in modules]


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return name in modules and modules[name].name == "__init__.py"


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The library modules ``name`` imports anywhere in its code (functions included)."""
    package = name if _is_package(name, modules) else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, one level up per extra dot
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                child = f"{base}.{alias.name}"
                targets.add(child if child in modules else base)
    return {target for target in targets if target == PACKAGE or target.startswith(PACKAGE + ".")}


def import_graph(modules: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """Module -> the library modules importing it runs (see the module docstring)."""
    modules = module_names() if modules is None else modules
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        own = set(_packages(name, modules)) | ({name} if _is_package(name, modules) else set())
        edges: set[str] = set()
        for target in imported_modules(name, path, modules):
            if target not in modules:
                continue
            runs = [*_packages(target, modules), target]
            edges |= {module for module in runs if module not in own and module != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as ``[a, b, ..., a]``, or ``None`` where the graph has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_the_library_has_no_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_graph_sees_function_local_and_package_imports(tmp_path):
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text(f"from {PACKAGE}.sub import leaf\n")
    (package / "sub" / "leaf.py").write_text(f"from {PACKAGE}.sub import other\n")
    (package / "sub" / "other.py").write_text("")
    (package / "user.py").write_text(f"def late():\n    from {PACKAGE}.sub.leaf import x\n")
    (package / "back.py").write_text(f"from {PACKAGE} import user\n")
    (package / "sub" / "other.py").write_text(f"def late():\n    import {PACKAGE}.back\n")
    graph = import_graph(module_names(package))
    assert graph[f"{PACKAGE}.user"] == {f"{PACKAGE}.sub", f"{PACKAGE}.sub.leaf"}
    assert graph[f"{PACKAGE}.sub.leaf"] == {f"{PACKAGE}.sub.other"}  # its own package is under way
    assert graph[f"{PACKAGE}.back"] == {f"{PACKAGE}.user"}
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1]
    names = ("back", "user", "sub", "sub.leaf", "sub.other")
    assert set(cycle) == {f"{PACKAGE}.{m}" for m in names}


def test_a_graph_without_circles_passes():
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
