"""No import circle among tkms's modules (TYPE_CHECKING imports count: they are a design link)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
# Removed by the gateway/client restructuring branch; drop this line once merged.
KNOWN = {frozenset({"tkms.client.gateway_core", "tkms.client.gateway_open"})}


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "tkms").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # `from pkg import mod` links to pkg.mod when that is a module
                subs = [f"{node.module}.{a.name}" for a in node.names]
                targets = [t for t in subs if t in modules] or [node.module]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle() -> None:
    graph = _graph()
    assert "tkms.devnet.run" in graph and "tkms.devnet.manifest" in graph
    assert [sorted(c) for c in _circles(graph) if c not in KNOWN] == []


def test_the_manifest_is_a_leaf_the_sdk_may_import() -> None:
    graph = _graph()
    assert not {
        m for m in graph["tkms.devnet.manifest"] if m.startswith(("tkms.devnet", "tkms.client"))
    }
    assert graph["tkms.devnet"] == set()
