"""Fixtures for the Lambda entry points: load a handler from its file, a Lambda context."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

LAMBDAS = Path(__file__).resolve().parents[1] / "chromadb_compaction" / "lambdas"


def load_handler_module(name: str) -> ModuleType:
    """Import ``infra/chromadb_compaction/lambdas/<name>.py`` as Lambda would (fresh)."""
    spec = importlib.util.spec_from_file_location(f"lambda_{name}", LAMBDAS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class FakeLambdaContext:
    function_name: str = "receipt-stream-processor"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:receipt-stream-processor"
    )
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/receipt-stream-processor"
    log_stream_name: str = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def stream_processor() -> ModuleType:
    return load_handler_module("stream_processor")


@pytest.fixture
def compaction_handler() -> ModuleType:
    return load_handler_module("enhanced_compaction_handler")
