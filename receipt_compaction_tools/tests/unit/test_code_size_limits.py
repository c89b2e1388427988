"""Every module stays small enough to read in one sitting (issue 22, item 6): in the five
packages (``receipt_dynamo``, ``receipt_dynamo_stream``, ``receipt_chroma``,
``receipt_compaction_tools``, ``infra``) a module outside ``tests/`` has at most 400 lines,
each of its functions at most 60 (from the ``def`` line to the function's last line,
decorators excluded; methods and nested functions count on their own), and a module
under ``tests/`` at most 600 lines.

The files are the ones git knows — tracked, or new and not ignored — so a module being
written is held to the limits before its first commit. They are read with ``ast``;
nothing is imported.
"""

from __future__ import annotations

import ast
import subprocess
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = (
    "receipt_dynamo",
    "receipt_dynamo_stream",
    "receipt_chroma",
    "receipt_compaction_tools",
    "infra",
)
MODULE_LINES = 400
FUNCTION_LINES = 60
TEST_MODULE_LINES = 600


def python_files() -> list[Path]:
    """The packages' ``.py`` files git knows (tracked or untracked, not ignored) that exist."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *PACKAGES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return sorted(
        {ROOT / name for name in listed if name.endswith(".py") and (ROOT / name).is_file()}
    )


def is_test_module(path: Path) -> bool:
    return "tests" in path.relative_to(ROOT).parts


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def function_sizes(source: str) -> Iterator[tuple[str, int, int]]:
    """(qualified name, first line, lines) of every function and method in ``source``."""

    def visit(node: ast.AST, scope: str) -> Iterator[tuple[str, int, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{scope}{child.name}"
                end = child.end_lineno or child.lineno
                yield name, child.lineno, end - child.lineno + 1
                yield from visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{scope}{child.name}.")
            else:
                yield from visit(child, scope)

    yield from visit(ast.parse(source), "")


def _report(title: str, offenders: list[str]) -> str:
    return f"{len(offenders)} {title}:\n" + "\n".join(f"  {line}" for line in offenders)


def test_every_module_is_at_most_400_lines() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {lines} lines"
        for path in python_files()
        if not is_test_module(path) and (lines := line_count(path)) > MODULE_LINES
    ]
    assert not offenders, _report(f"modules over {MODULE_LINES} lines", offenders)


def test_every_function_is_at_most_60_lines() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{first} {name}: {lines} lines"
        for path in python_files()
        if not is_test_module(path)
        for name, first, lines in function_sizes(path.read_text(encoding="utf-8"))
        if lines > FUNCTION_LINES
    ]
    assert not offenders, _report(f"functions over {FUNCTION_LINES} lines", offenders)


def test_every_test_module_is_at_most_600_lines() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {lines} lines"
        for path in python_files()
        if is_test_module(path) and (lines := line_count(path)) > TEST_MODULE_LINES
    ]
    assert not offenders, _report(f"test modules over {TEST_MODULE_LINES} lines", offenders)


def test_the_checks_see_the_whole_tree() -> None:
    """The listing holds the packages' modules and tests (and this file), nothing else."""
    files = python_files()
    assert Path(__file__).resolve() in files
    assert ROOT / "receipt_chroma" / "receipt_chroma" / "__init__.py" in files
    assert ROOT / "infra" / "chromadb_compaction" / "pipeline.py" in files
    assert all(path.relative_to(ROOT).parts[0] in PACKAGES for path in files)
    assert any(is_test_module(path) for path in files)
    assert not is_test_module(ROOT / "receipt_compaction_tools" / "testing" / "world.py")


def test_a_function_is_measured_from_def_to_its_last_line() -> None:
    """Decorators are not counted; a method and a nested function are named and measured
    on their own, the enclosing function including the nested one's lines."""
    source = (
        "import functools\n"  # 1
        "@functools.cache\n"  # 2
        "def top(x):\n"  # 3
        "    def inner():\n"  # 4
        "        return (\n"  # 5
        "            x\n"  # 6
        "        )\n"  # 7
        "    return inner\n"  # 8
        "class Holder:\n"  # 9
        "    @property\n"  # 10
        "    def value(self):\n"  # 11
        '        """A docstring\n'  # 12
        'over two lines."""\n'  # 13
        "        return 1\n"  # 14
    )
    assert sorted(function_sizes(source)) == [
        ("Holder.value", 11, 4),
        ("top", 3, 6),
        ("top.inner", 4, 4),
    ]
