"""Shared fixtures for every package's tests live in receipt_compaction_tools.testing.

Scheduling under pytest-xdist (``make test`` runs ``--dist loadgroup``): tests marked
``slow`` come first and are each scheduled on their own, so the longest ones start at once
on different workers; every other test runs on one worker together with the rest of its
module, so that module-scoped fixtures are built once.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["receipt_compaction_tools.testing.pytest_plugin"]


def _is_slow(item: pytest.Item) -> bool:
    return item.get_closest_marker("slow") is not None


# Before xdist's own hook, which turns xdist_group marks into scheduling groups.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not _is_slow(item))
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if not _is_slow(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
