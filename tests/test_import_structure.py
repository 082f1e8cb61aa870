"""The layering of ``src/tkms``, read from the source with ``ast`` (nothing is imported).

Every import counts, also one under ``TYPE_CHECKING`` or inside a function: a
cycle hidden there is still two modules that cannot be understood apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "tkms"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imported(path: Path) -> set[str]:
    """The ``tkms`` modules ``path`` imports (a ``from pkg import name`` of a submodule is it)."""
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {name for name in found if name in MODULES and name != here}


GRAPH = {name: _imported(path) for name, path in MODULES.items()}


def test_the_gateway_imports_nothing_of_the_sdk() -> None:
    offenders = {
        f"{path.name} imports {name}"
        for path in sorted((PACKAGE / "gateway").glob("*.py"))
        for name in _imported(path)
        if name == "tkms.client" or name.startswith("tkms.client.")
    }
    assert not offenders, sorted(offenders)


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(name: str) -> None:
        order[name] = low[name] = len(order)
        stack.append(name)
        for target in sorted(graph[name]):
            if target not in order:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in stack:
                low[name] = min(low[name], order[target])
        if low[name] == order[name]:
            component = {stack.pop()}
            while name not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.append(frozenset(component))

    for name in sorted(graph):
        if name not in order:
            visit(name)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    assert "tkms.devnet.run" in GRAPH and "tkms.devnet.manifest" in GRAPH
    assert [sorted(c) for c in _cycles(GRAPH)] == []


def test_the_devnet_manifest_is_a_leaf_the_sdk_may_import() -> None:
    assert not {
        m for m in GRAPH["tkms.devnet.manifest"] if m.startswith(("tkms.devnet", "tkms.client"))
    }
    assert GRAPH["tkms.devnet"] == set()


def test_the_walk_sees_imports_and_cycles() -> None:
    """A walk that found nothing would pass the tests above."""
    assert "tkms.crypto.eip712" in GRAPH["tkms.protocol.delegation"]
    assert "tkms.gateway.fanout" in GRAPH["tkms.gateway.service"]
    assert "tkms.client.trust" in GRAPH["tkms.client.gateway_open"]
    tiny = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(tiny) == [frozenset({"a", "b", "c"})]
