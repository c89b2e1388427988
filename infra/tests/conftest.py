"""Fixtures for the Lambda entry points: a fresh handler module and a Lambda context."""

from __future__ import annotations

from types import ModuleType

import pytest

from receipt_compaction_tools.local.handlers import load_handler
from receipt_compaction_tools.local.pump import LocalLambdaContext


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
