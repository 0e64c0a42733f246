"""The layers import one way: no cycles in the core, and sinks use only its public face."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = {"logdriver", "logdriver.abc", "logdriver.config", "logdriver.replies", "logdriver.testing"}


def imports(package: str, folder: Path) -> dict[str, set[str]]:
    """Module → the modules it imports, for every module under ``folder`` (absolute names)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(folder).with_suffix("").parts
        if "_proto" in parts:
            continue
        name = ".".join([package, *parts]).removesuffix(".__init__")
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                graph[name].add(node.module)
            elif isinstance(node, ast.Import):
                graph[name].update(alias.name for alias in node.names)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], dict.fromkeys(graph, 0)

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(t for t in graph[node] if t in graph):
            if state[target] == 1:
                found.append([*path[path.index(target) :], target])
            elif state[target] == 0:
                visit(target, [*path, target])
        state[node] = 2

    for node in graph:
        if state[node] == 0:
            visit(node, [node])
    return found


def test_the_core_has_no_import_cycles() -> None:
    graph = imports("logdriver", ROOT / "logdriver")
    # A package's __init__ re-exports its modules: an edge into the package, not a layer.
    graph = {m: {t for t in ts if not (m.startswith(t + ".") and t != "logdriver")} for m, ts in graph.items()}
    assert cycles(graph) == []


def test_sinks_import_only_the_public_face() -> None:
    graph = imports("logdriver_sinks", ROOT / "sinks")
    private = {(m, t) for m, ts in graph.items() for t in ts if t.startswith("logdriver.") and t not in PUBLIC}
    assert private == set()


def test_sink_tests_use_only_the_public_face() -> None:
    """What a sink author's tests may use: ``logdriver.testing`` and the rest of the public face."""
    graph = imports("tests.sinks", ROOT / "tests" / "sinks")
    private = {(m, t) for m, ts in graph.items() for t in ts if t.startswith("logdriver.") and t not in PUBLIC}
    assert private == set()


def test_the_layers_import_one_way() -> None:
    """config ← store ← delivery ← reading ← server: nothing imports a layer above it."""
    order = ["config", "store", "delivery", "reading", "server"]
    graph = imports("logdriver", ROOT / "logdriver")
    upward = set()
    for module, targets in graph.items():
        layer = module.split(".")[1] if module.count(".") >= 1 else ""
        if layer not in order:
            continue
        for target in targets:
            other = target.split(".")[1] if target.startswith("logdriver.") else ""
            if other in order and order.index(other) > order.index(layer):
                upward.add((module, target))
    assert upward == set()
