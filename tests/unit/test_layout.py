"""The house rules of the package layout: no import circle, small modules, a pure domain."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("orchestrator", "workers", "verify_device")
MAX_LINES = 600
MAX_LOOSE_MODULES = 20


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, inside functions too; only `if TYPE_CHECKING:` bodies are exempt."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports. Importing `a.b.c` runs `a` and `a.b` as well,
    so a dependency's parent packages count too (except the importer's own ancestors, which
    Python has already run before the importer)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        own_ancestors = {name.rsplit(".", n)[0] for n in range(1, name.count(".") + 1)}
        deps: set[str] = set()
        for node in _imports(ast.parse(path.read_text())):
            for target in _targets(name, path.name == "__init__.py", node):
                if target not in modules:
                    continue
                parts = target.split(".")
                deps.update(".".join(parts[:n]) for n in range(1, len(parts) + 1))
        graph[name] = {d for d in deps if d in modules and d != name and d not in own_ancestors}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_function_level_imports_count_and_type_checking_ones_do_not() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from orchestrator import web\n"
        "def f():\n    from orchestrator.engine import store\n"
    )
    names = [t for node in _imports(tree) for t in _targets("orchestrator.x", False, node)]
    assert "orchestrator.engine.store" in names
    assert "orchestrator.web" not in names


def test_no_import_circle() -> None:
    assert cycles(import_graph()) == []


def test_no_module_over_600_lines() -> None:
    long = {
        name: n
        for name, path in _modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_few_modules_loose_at_the_top_of_orchestrator() -> None:
    loose = sorted(p.name for p in (ROOT / "orchestrator").glob("*.py"))
    assert len(loose) <= MAX_LOOSE_MODULES, loose


def test_the_domain_imports_no_io_library() -> None:
    io_libraries = {"aiohttp", "arq", "redis", "requests", "httpx", "aiosmtplib"}
    for path in (ROOT / "orchestrator" / "domain").rglob("*.py"):
        for node in _imports(ast.parse(path.read_text())):
            for target in _targets(_module_name(path), path.name == "__init__.py", node):
                assert target.split(".")[0] not in io_libraries, (path.name, target)
                assert not target.startswith(("orchestrator.", "workers")) or target.startswith(
                    "orchestrator.domain"
                ), (path.name, target)


def test_only_the_app_factory_wires_dialect_routes() -> None:
    """Route modules are leaves: nothing but the app factory imports a module that defines
    `setup_routes` (a route module importing another would bring the circle back)."""
    modules = _modules()
    route_modules = {n for n, p in modules.items() if "def setup_routes(" in p.read_text()}
    graph = import_graph()
    importers = {
        (importer, dep)
        for importer, deps in graph.items()
        for dep in deps & route_modules
        if importer not in {"orchestrator.http.app", "orchestrator.dialects.twilio.factors.routes"}
    }
    assert importers == set()
