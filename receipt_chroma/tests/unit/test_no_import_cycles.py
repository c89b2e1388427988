"""No module of our packages imports itself back, directly or through other modules.

Every ``import`` statement counts: at module level, under ``if TYPE_CHECKING:`` and inside
functions (a cycle hidden in a function body or a type-checking block is still a cycle
between the two rooms). The imports are read from the source with ``ast``; nothing is
imported. An edge goes to the module an import names: ``from pkg import name`` is an edge
to ``pkg.name`` when that is a module, else to ``pkg`` (its ``__init__``). Only modules
of the package count; a package's ``__init__`` is not implied by importing one of its
submodules.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGE_DIR = ROOT / "receipt_chroma" / "receipt_chroma"
# Every package of the repository, the Pulumi program's components included.
PACKAGE_DIRS = [
    ROOT / "receipt_dynamo" / "receipt_dynamo",
    ROOT / "receipt_dynamo_stream" / "receipt_dynamo_stream",
    PACKAGE_DIR,
    ROOT / "receipt_compaction_tools" / "receipt_compaction_tools",
    ROOT / "infra" / "chromadb_compaction",
]

Graph = dict[str, set[str]]


def module_files(package_dir: Path) -> dict[str, Path]:
    """Dotted module name → source file, for every module under ``package_dir``."""
    modules: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from`` import names (resolving ``from . import x``)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    keep = len(base) - node.level + (1 if is_package else 0)
    parts = base[:keep] + ([node.module] if node.module else [])
    return ".".join(parts)


def imported_modules(module: str, path: Path, known: Mapping[str, Path]) -> set[str]:
    """The modules of ``known`` that ``module`` imports anywhere in its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, is_package, node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in known:
                    found.add(submodule)
                elif source in known:
                    found.add(source)
    found.discard(module)
    return found


def import_graph(package_dir: Path) -> Graph:
    known = module_files(package_dir)
    return {name: imported_modules(name, path, known) for name, path in known.items()}


def _strongly_connected(graph: Graph) -> Iterator[list[str]]:
    """Tarjan's algorithm: each group of modules that reach one another."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> Iterator[list[str]]:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                yield from visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            yield sorted(group)

    for node in sorted(graph):
        if node not in index:
            yield from visit(node)


def _shortest_cycle(graph: Graph, group: list[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start, members = group[0], set(group)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(graph[node] & members):
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if target not in came_from:
                came_from[target] = node
                queue.append(target)
    raise AssertionError(f"{group} is not a cycle")


def import_cycles(graph: Graph) -> list[list[str]]:
    """One shortest cycle per group of modules that import one another."""
    return [_shortest_cycle(graph, group) for group in _strongly_connected(graph) if len(group) > 1]


def test_receipt_chroma_has_no_import_cycles() -> None:
    graph = import_graph(PACKAGE_DIR)
    # The graph is read from the real tree: the seed's import path of the operations
    # (``from receipt_chroma.compaction import update_receipt_metadata``) is an edge.
    assert "receipt_chroma.compaction.operations" in graph["receipt_chroma.compaction"]
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


@pytest.mark.parametrize("package_dir", PACKAGE_DIRS, ids=lambda path: path.name)
def test_no_package_has_import_cycles(package_dir: Path) -> None:
    graph = import_graph(package_dir)
    assert len(graph) > 1, f"no modules found under {package_dir}"
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def _write(root: Path, relative: str, source: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")


def test_a_cycle_through_a_type_checking_block_is_named(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    _write(package, "__init__.py", "")
    _write(
        package,
        "cycle.py",
        "from typing import TYPE_CHECKING\n"
        "from pkg.sinks import Sink\n"
        "if TYPE_CHECKING:\n"
        "    from pkg.models import Result\n",
    )
    _write(package, "sinks/__init__.py", "from pkg.sinks.base import Sink\n")
    _write(
        package,
        "sinks/base.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.cycle import Result\n",
    )
    _write(package, "models.py", "import os\n")

    cycles = import_cycles(import_graph(package))

    assert cycles == [["pkg.cycle", "pkg.sinks", "pkg.sinks.base", "pkg.cycle"]]


def test_imports_inside_functions_and_relative_imports_count(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    _write(package, "__init__.py", "")
    _write(package, "store.py", "from pkg import reader\n")
    _write(package, "reader.py", "from .legacy import download\n")
    _write(package, "legacy.py", "def download():\n    from pkg.store import Store\n")
    _write(package, "leaf.py", "from pkg.store import Store\n")

    cycles = import_cycles(import_graph(package))

    assert cycles == [["pkg.legacy", "pkg.store", "pkg.reader", "pkg.legacy"]]
