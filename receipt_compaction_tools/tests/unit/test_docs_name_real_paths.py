"""The README and docs/*.md never name a repository path that does not exist.

Docs name files in several ways: from the repository root (``bench/reliability.py``),
from a package folder (``receipt_chroma/compaction/cycle.py`` for
``receipt_chroma/receipt_chroma/compaction/cycle.py``), from inside a package
(``compaction/config.py``), or as a relative markdown link. A name counts as a path when
its last part has a file extension, or it is a folder of two parts or more (``bench/results/``;
a lone ``objects/`` is an S3 prefix); it must resolve one of those ways.
Build outputs (``dist/``, ``build/``) and machine paths (``/mnt/…``) are not repository paths.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("receipt_dynamo", "receipt_dynamo_stream", "receipt_chroma", "receipt_compaction_tools")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CODE_SPAN = re.compile(r"`([A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]*)+)`")
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
EXTENSION = re.compile(r"\.(py|md|json|toml|ya?ml|txt|cfg|ini|sh|lock)$")
NOT_IN_REPOSITORY = ("dist/", "../dist/", "build/", "/", "http:", "https:", "mailto:", "~")


def candidates(name: str, doc: Path) -> list[Path]:
    found = [ROOT / name, doc.parent / name, ROOT / "infra" / name]
    for package in PACKAGES:
        found += [ROOT / package / name, ROOT / package / package / name]
    return found


def named_paths(doc: Path) -> list[str]:
    text = doc.read_text(encoding="utf-8")
    names = CODE_SPAN.findall(text) + LINK.findall(text)
    return sorted(
        {
            name
            for name in names
            if not name.startswith(NOT_IN_REPOSITORY)
            and (EXTENSION.search(name) or (name.endswith("/") and "/" in name[:-1]))
        }
    )


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_every_path_a_doc_names_exists(doc: Path) -> None:
    missing = [
        name for name in named_paths(doc) if not any(p.exists() for p in candidates(name, doc))
    ]
    assert missing == [], f"{doc.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_the_check_sees_paths_in_every_form() -> None:
    """The scanner itself: names in each form are found, and resolve or not as they should."""
    readme = ROOT / "README.md"
    assert any(p.exists() for p in candidates("receipt_chroma/compaction/cycle.py", readme))
    assert any(p.exists() for p in candidates("compaction/config.py", readme))
    assert any(p.exists() for p in candidates("bench/reliability.py", readme))
    assert not any(p.exists() for p in candidates("receipt_chroma/tests/support/x.py", readme))
