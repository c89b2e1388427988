"""The convergence oracle must be derived from the SPEC alone: its modules may import the
standard library and each other, nothing else (in particular none of our packages), so a
misreading in the product cannot leak into what the product is checked against."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ORACLE = (
    Path(__file__).resolve().parents[3]
    / "receipt_compaction_tools"
    / "receipt_compaction_tools"
    / "testing"
    / "spec_oracle"
)
ORACLE_MODULES = sorted(ORACLE.glob("*.py"))
OUR_PACKAGES = (
    "receipt_dynamo",
    "receipt_dynamo_stream",
    "receipt_chroma",
    "receipt_compaction_tools",
    "chromadb_compaction",
)


def imported_modules(source: str) -> list[tuple[int, str]]:
    """Every module an import statement names (relative imports as ``.name``)."""
    modules: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules.append((node.lineno, "." * node.level + (node.module or "")))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            in {"__import__", "import_module"}
        ):
            modules.append((node.lineno, "<dynamic import>"))
    return modules


def is_standard_library(module: str) -> bool:
    if module == "<dynamic import>" or module.startswith("."):
        return False
    top = module.split(".", maxsplit=1)[0]
    return top in sys.stdlib_module_names and top not in OUR_PACKAGES


def is_allowed(module: str) -> bool:
    """The standard library, or a sibling module of the oracle (``from .contract import``)."""
    if module.startswith(".") and not module.startswith(".."):
        return (ORACLE / f"{module[1:]}.py").is_file()
    return is_standard_library(module)


def test_the_oracle_imports_only_the_standard_library() -> None:
    assert len(ORACLE_MODULES) > 1, ORACLE_MODULES
    offending = [
        f"{path.name} line {line}: {module}"
        for path in ORACLE_MODULES
        for line, module in imported_modules(path.read_text(encoding="utf-8"))
        if not is_allowed(module)
    ]
    assert not offending, f"the oracle must import only the standard library: {offending}"


def test_the_oracle_names_none_of_our_packages() -> None:
    named = [
        f"{path.name} line {line}: {module}"
        for path in ORACLE_MODULES
        for line, module in imported_modules(path.read_text(encoding="utf-8"))
        if module.lstrip(".").split(".")[0] in OUR_PACKAGES
    ]
    assert not named, named


def test_the_check_catches_what_it_must() -> None:
    """The checker itself: our packages, third-party modules, relative and dynamic imports."""
    for source in (
        "import receipt_chroma",
        "from receipt_dynamo.entities import Receipt",
        "import receipt_dynamo_stream.models as m",
        "from receipt_compaction_tools.testing import factories",
        "import chromadb",
        "from . import x",
        "import importlib\nimportlib.import_module('receipt_chroma')",
    ):
        modules = [m for _, m in imported_modules(source)]
        assert not all(is_standard_library(m) for m in modules), source
    for source in ("import hashlib", "from datetime import UTC", "import os.path"):
        assert all(is_standard_library(m) for _, m in imported_modules(source)), source
    assert is_allowed(".contract")
    assert not is_allowed(".factories")  # not a module of the oracle
    assert not is_allowed("..factories")
    assert [m for _, m in imported_modules("from __future__ import annotations")] == ["__future__"]
