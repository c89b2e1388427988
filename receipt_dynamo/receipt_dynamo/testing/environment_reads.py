"""Where a package's source reads the process environment or resolves settings: what each
package's "one settings source" test checks (contract §8; issue 22: nothing below a
handler reads the environment again). The source is read with ``ast``; nothing is
imported.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# The names of ``os`` that read (or write) the process environment.
ENVIRONMENT_NAMES: Final = frozenset(
    {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
)


@dataclass(frozen=True)
class SourceSite:
    """One place in a package's source."""

    path: Path
    line: int
    text: str
    # ``**os.environ`` in a dict display: the whole environment handed on unread (to a
    # child process), not a setting read.
    passed_through: bool = False

    def describe(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}:{self.line}: {self.text}"


def _modules(package_dir: Path) -> list[tuple[Path, str, ast.Module]]:
    found: list[tuple[Path, str, ast.Module]] = []
    for path in sorted(package_dir.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        found.append((path, source, ast.parse(source, filename=str(path))))
    return found


def _environment_reads(path: Path, source: str, tree: ast.Module) -> list[SourceSite]:
    os_names = {"os"} | {
        alias.asname
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name == "os" and alias.asname
    }
    unpacked = {
        id(value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict)
        for key, value in zip(node.keys, node.values, strict=True)
        if key is None
    }
    sites: list[SourceSite] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ENVIRONMENT_NAMES
            and isinstance(node.value, ast.Name)
            and node.value.id in os_names
        ):
            text = ast.get_source_segment(source, node) or node.attr
            sites.append(SourceSite(path, node.lineno, text, id(node) in unpacked))
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            sites += [
                SourceSite(path, node.lineno, f"from os import {alias.name}")
                for alias in node.names
                if alias.name in ENVIRONMENT_NAMES
            ]
    return sites


def environment_reads(package_dir: Path) -> list[SourceSite]:
    """Every use of ``os.environ``/``os.getenv`` (and kin) under ``package_dir``."""
    return [
        site
        for path, source, tree in _modules(package_dir)
        for site in _environment_reads(path, source, tree)
    ]


def settings_resolvers(package_dir: Path) -> list[SourceSite]:
    """Every function named ``from_env`` or ``*_from_env``, and every use of the name
    ``Environment`` (the settings reader of ``receipt_dynamo_stream.settings``), under
    ``package_dir``."""
    sites: list[SourceSite] = []
    for path, _, tree in _modules(package_dir):
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and (
                node.name == "from_env" or node.name.endswith("_from_env")
            ):
                sites.append(SourceSite(path, node.lineno, f"def {node.name}"))
            elif isinstance(node, ast.Name) and node.id == "Environment":
                sites.append(SourceSite(path, node.lineno, "Environment"))
    return sites
