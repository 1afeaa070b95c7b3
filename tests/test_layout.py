"""The layout's rules, checked on the source: no import cycle, the simulator stands alone, modules stay small."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "aegis"
MAX_LINES = 480  # "no module over ~450 lines": a module that grows past this is two concepts


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path, modules: set[str]) -> set[str]:
    """Modules imported when ``path`` is imported (not those under ``if TYPE_CHECKING:``).

    ``from package import submodule`` depends on the submodule, not on the package's __init__.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{alias.name}" for alias in node.names} & modules
            found.update(subs)
            if len(subs) < len(node.names):
                found.add(node.module)
    return {name for name in found if name.startswith("aegis")}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {dep for dep in _runtime_imports(path, set(modules)) if dep in modules and dep != name}
    return graph


def test_no_import_cycle_between_engine_modules() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep):], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_simulator_imports_nothing_from_the_engine() -> None:
    graph = _graph()
    leaks = {
        mod: sorted(dep for dep in deps if not dep.startswith("aegis.sim"))
        for mod, deps in graph.items()
        if mod.startswith("aegis.sim")
    }
    assert {mod: deps for mod, deps in leaks.items() if deps} == {}


def test_only_the_adapter_talks_to_ccxt() -> None:
    users = sorted(
        _module_name(p)
        for p in ROOT.rglob("*.py")
        if "ccxt" in {a.split(".")[0] for a in _all_imports(p)} and not _module_name(p).startswith("aegis.binance")
    )
    assert users == []


def _all_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_module_is_two_concepts_long() -> None:
    long = {
        str(p.relative_to(ROOT.parent)): n
        for p in ROOT.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def _third_party_imports() -> set[str]:
    """Top-level names of every module the package imports that is neither aegis nor the standard library."""
    found: set[str] = set()
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return {n for n in found if n != "aegis" and n not in sys.stdlib_module_names}


def test_every_library_the_package_imports_is_a_declared_runtime_dependency() -> None:
    """A user's ``pip install aegis`` (and ``make run``) gets only these: a module that arrives through a
    dev tool or another library's dependencies works in the test venv and fails on a user's machine."""
    project = tomllib.loads((ROOT.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {canonical(re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0]) for spec in project["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    provided_by = {name: {canonical(d) for d in distributions.get(name, [name])} for name in _third_party_imports()}
    missing = {name: dists for name, dists in provided_by.items() if not declared & dists}
    assert not missing, f"imported by aegis but not in [project] dependencies: {missing}"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
