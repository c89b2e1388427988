"""Shared fixtures for every package's tests live in receipt_compaction_tools.testing.

Under pytest-xdist (``make test`` runs ``--dist loadfile --no-loadscope-reorder``), each
test file runs whole on one worker, so module-scoped fixtures are built once, and files are
handed out in collection order; tests marked ``slow`` are collected first, so the files
holding the longest tests start at once on different workers instead of last.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["receipt_compaction_tools.testing.pytest_plugin"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
