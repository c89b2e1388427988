"""The compaction Lambda on real queue messages: SQS event in, partial-failure response
out, snapshot published, structured logs and EMF metrics written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from receipt_chroma.ids import word_vector_id
from receipt_compaction_tools.testing.sqs_events import published_sqs_event
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo.testing import IMAGE_ID, make_metadata
from receipt_dynamo_stream import StreamMessage
from receipt_dynamo_stream.exceptions import ConfigurationError

pytestmark = pytest.mark.integration


@pytest.fixture
def world(
    aws_endpoint: str, tmp_path: Path, compactor_environment: Callable[..., None]
) -> CompactionWorld:
    world = CompactionWorld(tmp_path)
    compactor_environment(world)
    return world


def _sqs_event(
    messages: list[tuple[str, StreamMessage]], extra: list[dict[str, Any]]
) -> dict[str, Any]:
    """The published messages as Lambda hands them on, then the ``extra`` records."""
    return {"Records": published_sqs_event(messages)["Records"] + extra}


def _emf(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def _invocation(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """The one EMF document of the invocation's own metrics (no collection dimension)."""
    (invocation,) = [
        m for m in metrics if "CompactionLambdaSuccess" in m or "CompactionLambdaError" in m
    ]
    assert "collection" not in invocation
    assert invocation["service"] == "receipt-compactor"
    return invocation


def test_handler_publishes_and_reports_only_invalid_messages(
    world: CompactionWorld,
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1))
    valid = world.pump()["words"]
    good = json.loads(valid[0][1].to_json())
    invalid = [
        {"messageId": "not-json", "body": "{oops", "messageAttributes": {}},
        {
            "messageId": "future-schema",
            "body": json.dumps({**good, "schema_version": 2}),
            "messageAttributes": {"collection": {"stringValue": "words", "dataType": "String"}},
        },
        {
            "messageId": "wrong-queue",
            "body": json.dumps(good),
            "messageAttributes": {"collection": {"stringValue": "lines", "dataType": "String"}},
        },
    ]
    event = _sqs_event(valid, invalid)

    response = compaction_handler.lambda_handler(event, lambda_context)

    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == [
        "future-schema",
        "not-json",
        "wrong-queue",
    ]
    words = world.snapshot_from_s3("words")
    assert len(words) == 6
    assert words[word_vector_id(IMAGE_ID, 1, 1, 1)][0]["merchant_name"] == "Corner Market"

    output = capsys.readouterr().out
    metrics = _emf(output)
    per_collection = [m for m in metrics if m.get("collection") == "words"]
    names = {k for m in per_collection for k in m if k[0].isupper()}
    assert {
        "CacheTierBootstrap",
        "SnapshotPublished",
        "VectorsMerged",
        "DeltasMerged",
        "CompactionMetadataUpdates",
        "CompactionLabelUpdates",
        "InvalidTableRows",
        "MessageFailures",
    } <= names
    assert not {"CompactionLambdaSuccess", "CompactionLambdaError"} & names
    assert per_collection[0]["VectorsMerged"] == [6.0]
    assert per_collection[0]["MessageFailures"] == [0.0]
    assert per_collection[0]["InvalidTableRows"] == [0.0]
    assert "VisibilityResetFailures" not in names  # nothing to retry early
    # Per invocation (contract §9): the cycle published everything, but invalid messages of the
    # event were reported failed, so the invocation is an error.
    invocation = _invocation(metrics)
    assert invocation["CompactionLambdaError"] == [1.0]
    assert "CompactionLambdaSuccess" not in invocation
    assert invocation["InvalidMessages"] == [3.0]
    assert ["service"] in invocation["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert per_collection[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ReceiptCompaction"
    assert ["collection", "service"] in per_collection[0]["_aws"]["CloudWatchMetrics"][0][
        "Dimensions"
    ]
    logs = [(r.getMessage(), r.__dict__) for r in caplog.records]
    assert any(
        message == "metadata update"
        and fields.get("image_id") == IMAGE_ID
        and fields.get("receipt_id") == 1
        for message, fields in logs
    )
    assert any(message == "invalid queue message" for message, _ in logs)


def test_second_invocation_reuses_the_warm_copy(
    world: CompactionWorld,
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
    compaction_handler.lambda_handler(_sqs_event(world.pump()["words"], []), lambda_context)
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Warm"))
    capsys.readouterr()
    response = compaction_handler.lambda_handler(
        _sqs_event(world.pump()["words"], []), lambda_context
    )
    assert response == {"batchItemFailures": []}
    metrics = _emf(capsys.readouterr().out)
    assert any("CacheTierWarm" in m for m in metrics)
    invocation = _invocation(metrics)
    assert invocation["CompactionLambdaSuccess"] == [1.0]
    assert "CompactionLambdaError" not in invocation
    assert (
        world.snapshot_from_s3("words")[word_vector_id(IMAGE_ID, 1, 1, 1)][0]["merchant_name"]
        == "Warm"
    )


def test_an_event_of_only_invalid_messages_is_one_failed_invocation(
    world: CompactionWorld,
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = {"Records": [{"messageId": "not-json", "body": "{oops", "messageAttributes": {}}]}

    response = compaction_handler.lambda_handler(event, lambda_context)

    assert response == {"batchItemFailures": [{"itemIdentifier": "not-json"}]}
    metrics = _emf(capsys.readouterr().out)
    assert not [m for m in metrics if "collection" in m]  # no cycle ran
    invocation = _invocation(metrics)
    assert invocation["CompactionLambdaError"] == [1.0]
    assert invocation["InvalidMessages"] == [1.0]


def test_an_invocation_that_raises_counts_as_a_failed_invocation(
    world: CompactionWorld,
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
    event = _sqs_event(world.pump()["words"], [])
    monkeypatch.setenv("RETRY_VISIBILITY_SECONDS", "soon")

    # A misconfigured container fails the whole invocation (Lambda retries the batch),
    # naming the variable; the invocation still counts as an error.
    with pytest.raises(ConfigurationError, match="RETRY_VISIBILITY_SECONDS"):
        compaction_handler.lambda_handler(event, lambda_context)

    invocation = _invocation(_emf(capsys.readouterr().out))
    assert invocation["CompactionLambdaError"] == [1.0]
