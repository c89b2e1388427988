"""Shared fixtures for every package's tests live in receipt_dynamo.testing."""

pytest_plugins = ["receipt_dynamo.testing.pytest_plugin"]
