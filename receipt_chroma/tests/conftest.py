"""Fixtures for receipt_chroma tests: real Chroma on temporary directories."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from receipt_chroma import ChromaClient


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaClient]:
    """A real persistent Chroma client in write mode on a fresh directory."""
    client = ChromaClient(tmp_path / "snapshot", mode="write")
    yield client
    client.close()


@pytest.fixture
def test_logger() -> logging.Logger:
    # Outside the receipt_chroma hierarchy: a test of the same worker that imports the
    # compaction handler gives the package logger Powertools' level and handler (no
    # propagation), which would hide these records from caplog.
    return logging.getLogger("tests.receipt_chroma")
