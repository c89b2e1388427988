"""Shared fixtures for every package's tests live in receipt_compaction_tools.testing."""

pytest_plugins = ["receipt_compaction_tools.testing.pytest_plugin"]
