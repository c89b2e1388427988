"""The stream package stays light: receipt_dynamo and boto3 only, no chromadb or numpy."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import requires

from packaging.requirements import Requirement

import receipt_dynamo_stream


def test_declared_dependencies_are_receipt_dynamo_and_boto3_only() -> None:
    declared = [Requirement(text) for text in requires("receipt-dynamo-stream") or []]
    # Requirements under an extra's marker (the test extra) are not installed with the package.
    runtime = {r.name for r in declared if r.marker is None}
    assert runtime == {"receipt-dynamo", "boto3"}


def test_importing_the_package_loads_no_heavy_module() -> None:
    script = (
        "import sys, receipt_dynamo_stream; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'chromadb', 'numpy', 'pydantic', 'onnxruntime', 'receipt_chroma', 'moto'}))"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout
    assert output.strip() == "[]"


def test_public_api_is_exported() -> None:
    for name in (
        "detect_entity_type",
        "parse_entity",
        "parse_stream_record",
        "is_compaction_run",
        "parse_compaction_run",
        "get_chromadb_relevant_changes",
        "CHROMADB_RELEVANT_FIELDS",
        "FieldChange",
        "ParsedStreamRecord",
        "StreamMessage",
        "build_messages",
        "publish_messages",
    ):
        assert name in receipt_dynamo_stream.__all__
        assert hasattr(receipt_dynamo_stream, name)
