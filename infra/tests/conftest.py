"""Fixtures for the Lambda entry points: a fresh handler module, a Lambda context, and the
compactor's environment for a test world."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

from receipt_compaction_tools.local.handlers import load_handler
from receipt_compaction_tools.local.pump import LocalLambdaContext
from receipt_compaction_tools.testing.world import CompactionWorld


def _fresh_handler(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # The handler copies its level to every package logger at import, read from LOG_LEVEL:
    # a tool run earlier in this process (the reliability suite sets WARNING) must not
    # decide what these tests see.
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    module = load_handler(name)
    # Powertools reuses the stdlib logger of a service across imports, level included;
    # an earlier local run in this process may have lowered it.
    module.logger.setLevel("INFO")
    return module


@pytest.fixture
def lambda_context() -> LocalLambdaContext:
    return LocalLambdaContext()


@pytest.fixture
def stream_processor(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _fresh_handler("stream_processor", monkeypatch)


@pytest.fixture
def compaction_handler(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _fresh_handler("enhanced_compaction_handler", monkeypatch)


@pytest.fixture
def compactor_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., None]:
    """Point the compaction handler at a test world (contract §8 variables); keyword
    arguments override or add variables."""

    def apply(world: CompactionWorld, **overrides: str) -> None:
        values = {
            "DYNAMODB_TABLE_NAME": world.table,
            "CHROMADB_BUCKET": world.bucket,
            "CHROMA_ROOT": str(world.config.chroma_root),
            "CHROMA_WORK_DIR": str(world.config.work_dir),
            "EMBEDDING_DIMENSION": str(world.dimension),
            "LOCK_WAIT_SECONDS": "5",
            **overrides,
        }
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return apply
