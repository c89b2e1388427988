"""Shared fixtures: the light ones (factories, stream records, moto in-process, failing
endpoints) live in receipt_dynamo.testing, the servers (moto, Chroma) in
receipt_compaction_tools.testing, whose plugin loads both.

Under pytest-xdist (``make test`` runs ``--dist loadfile --no-loadscope-reorder``), each
test file runs whole on one worker, so module-scoped fixtures are built once, and files are
handed out in collection order. Tests marked ``slow`` are collected first, longest first
(``slow(seconds=N)`` gives a test's usual time on an idle machine; a bare ``slow`` counts as
shortest of them), so the longest files start at once on different workers instead of
leaving one running alone at the end.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["receipt_compaction_tools.testing.pytest_plugin"]


def _expected_seconds(item: pytest.Item) -> float:
    """The ``slow`` marker's usual time (0 for a bare ``slow``), -1 for other tests."""
    marker = item.get_closest_marker("slow")
    if marker is None:
        return -1.0
    seconds: float = marker.kwargs.get("seconds", 0.0)
    return seconds


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_expected_seconds, reverse=True)
