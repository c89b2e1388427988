"""Contract §7 (rev 3): every message the handler reports failed, whatever the cause, is given
a short jittered visibility (``RETRY_VISIBILITY_SECONDS``) with
``ChangeMessageVisibilityBatch`` before the handler returns, so it comes back within
seconds here instead of after the queue's long visibility timeout (600 s). Real messages on
a real moto SQS queue throughout; faults are injected with botocore event hooks on the
handler's own clients."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo import ChromaDBCollection, SnapshotPointer
from receipt_dynamo.testing import IMAGE_ID, make_label, make_metadata
from receipt_dynamo.timestamps import now_iso
from receipt_dynamo_stream import StreamMessage

pytestmark = pytest.mark.integration

RETRY_WINDOW = (2, 3)  # RETRY_VISIBILITY_SECONDS for these tests
# Back within the window's end plus the receive loop's own second, whatever the cause.
BACK_WITHIN = RETRY_WINDOW[1] + 5


@pytest.fixture
def world(
    aws_endpoint: str, tmp_path: Path, compactor_environment: Callable[..., None]
) -> CompactionWorld:
    world = CompactionWorld(tmp_path)
    compactor_environment(
        world, LOCK_WAIT_SECONDS="1", RETRY_VISIBILITY_SECONDS="{}-{}".format(*RETRY_WINDOW)
    )
    return world


def _label_messages(world: CompactionWorld) -> list[tuple[str, StreamMessage]]:
    """Real words messages, more than one ChangeMessageVisibilityBatch call holds."""
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1))
    for line in (1, 2, 3):
        for word in (1, 2):
            for label in ("TOTAL", "DATE"):
                world.dynamo.put_receipt_word_label(make_label(IMAGE_ID, 1, line, word, label))
    messages = world.pump()["words"]
    assert len(messages) > 10
    return messages


def _hold_the_lease(world: CompactionWorld) -> None:
    world.dynamo.acquire_lease("words", owner="another-compactor", duration_seconds=300)


def _emf(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def _cycle_metrics(output: str) -> dict[str, Any]:
    (cycle,) = [m for m in _emf(output) if m.get("collection") == "words"]
    return cycle


def _invocation_metrics(output: str) -> dict[str, Any]:
    (invocation,) = [
        m for m in _emf(output) if "CompactionLambdaSuccess" in m or "CompactionLambdaError" in m
    ]
    return invocation


def _failed(response: dict[str, Any]) -> set[str]:
    return {f["itemIdentifier"] for f in response["batchItemFailures"]}


def _reasons(caplog: pytest.LogCaptureFixture) -> set[str]:
    return {
        str(r.__dict__.get("reason"))
        for r in caplog.records
        if r.getMessage() == "message not applied"
    }


def _error_response(code: str, message: str) -> Callable[..., tuple[AWSResponse, dict[str, Any]]]:
    """A botocore ``before-call`` hook answering the call with a (non-retried) error."""

    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return AWSResponse(params["url"], 400, HTTPHeaders(), None), {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }

    return answer


def test_lease_contention_makes_messages_visible_again_within_the_retry_window(
    world: CompactionWorld,
    words_queue: Any,
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    records = words_queue.deliver(_label_messages(world))
    ids = {r["messageId"] for r in records}
    _hold_the_lease(world)

    response = compaction_handler.lambda_handler({"Records": records}, lambda_context)
    returned = time.monotonic()

    assert _failed(response) == ids
    assert words_queue.visible_ids() == set()  # not at once: the reset is at least 2 s
    waited, _ = words_queue.wait_until_visible(ids, timeout=15)
    assert waited + (time.monotonic() - returned) < BACK_WITHIN
    output = capsys.readouterr().out
    cycle = _cycle_metrics(output)
    assert cycle["LeaseAcquisitionFailures"] == [1.0]
    assert cycle["VisibilityResets"] == [float(len(ids))]
    assert cycle["VisibilityResetFailures"] == [0.0]
    invocation = _invocation_metrics(output)
    assert invocation["CompactionLambdaError"] == [1.0]
    assert "CompactionLambdaSuccess" not in invocation


def test_pointer_moved_makes_messages_visible_again_within_the_retry_window(
    world: CompactionWorld,
    words_queue: Any,
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    records = words_queue.deliver(_label_messages(world))
    ids = {r["messageId"] for r in records}
    cycle = compaction_handler.cycle_for(ChromaDBCollection.WORDS)
    moved: list[str] = []

    def publish_elsewhere_first(**_: Any) -> None:
        # Another publisher's pointer lands between this cycle's read and its publish.
        if not moved:
            elsewhere = SnapshotPointer(
                collection=ChromaDBCollection.WORDS,
                version="elsewhere",
                history=("elsewhere",),
                fencing_token=0,
                updated_at=now_iso(),
            )
            world.dynamo.put_entities([elsewhere])
            moved.append(elsewhere.version)

    cycle.dynamo.client.meta.events.register(
        "before-call.dynamodb.TransactWriteItems", publish_elsewhere_first
    )

    response = compaction_handler.lambda_handler({"Records": records}, lambda_context)

    assert moved
    assert _failed(response) == ids
    words_queue.wait_until_visible(ids, timeout=15)
    output = capsys.readouterr().out
    metrics = _cycle_metrics(output)
    assert metrics["SnapshotPublishFailures"] == [1.0]
    assert metrics["VisibilityResets"] == [float(len(ids))]
    assert metrics["VisibilityResetFailures"] == [0.0]
    assert _invocation_metrics(output)["CompactionLambdaError"] == [1.0]


def test_a_failing_visibility_reset_is_counted_and_changes_nothing_else(
    world: CompactionWorld,
    words_queue: Any,
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = words_queue.deliver(_label_messages(world))
    ids = {r["messageId"] for r in records}
    _hold_the_lease(world)
    calls: list[int] = []

    def access_denied(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        calls.append(len(json.loads(params["body"])["Entries"]))
        error = {"Code": "AccessDenied", "Message": "not authorized: sqs:ChangeMessageVisibility"}
        return AWSResponse(params["url"], 403, HTTPHeaders(), None), {
            "Error": error,
            "ResponseMetadata": {"HTTPStatusCode": 403},
        }

    region = words_queue.arn.split(":")[3]
    compaction_handler.sqs_client(region).meta.events.register(
        "before-call.sqs.ChangeMessageVisibilityBatch", access_denied
    )

    response = compaction_handler.lambda_handler({"Records": records}, lambda_context)

    assert _failed(response) == ids  # still reported failed
    assert sorted(calls) == sorted([10, len(ids) - 10])  # at most 10 entries per call
    time.sleep(RETRY_WINDOW[1] + 1)
    assert words_queue.visible_ids() == set()  # still under the queue's own visibility timeout
    cycle = _cycle_metrics(capsys.readouterr().out)
    assert cycle["VisibilityResetFailures"] == [float(len(ids))]
    assert cycle["VisibilityResets"] == [0.0]
    assert cycle["LeaseAcquisitionFailures"] == [1.0]
    assert any(
        r.getMessage() == "visibility not reset" and "AccessDenied" in str(r.__dict__)
        for r in caplog.records
    )


def test_per_entry_reset_failures_are_counted_and_the_rest_are_reset(
    world: CompactionWorld,
    words_queue: Any,
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = words_queue.deliver(_label_messages(world))
    ids = {r["messageId"] for r in records}
    by_handle = {r["receiptHandle"]: r["messageId"] for r in records}
    _hold_the_lease(world)
    spoiled: set[str] = set()

    def spoil_first_entry(params: dict[str, Any], **_: Any) -> None:
        # SQS then answers that entry in `Failed` (ReceiptHandleIsInvalid).
        entry = params["Entries"][0]
        spoiled.add(by_handle[entry["ReceiptHandle"]])
        entry["ReceiptHandle"] = "not-a-receipt-handle"

    region = words_queue.arn.split(":")[3]
    compaction_handler.sqs_client(region).meta.events.register(
        "before-parameter-build.sqs.ChangeMessageVisibilityBatch", spoil_first_entry
    )

    response = compaction_handler.lambda_handler({"Records": records}, lambda_context)

    assert _failed(response) == ids
    calls = -(-len(ids) // 10)  # at most 10 entries per call
    assert len(spoiled) == calls == 2
    _, seen = words_queue.wait_until_visible(ids - spoiled, timeout=15)
    assert not spoiled & seen  # their visibility was not changed
    cycle = _cycle_metrics(capsys.readouterr().out)
    assert cycle["VisibilityResetFailures"] == [float(calls)]
    assert cycle["VisibilityResets"] == [float(len(ids) - calls)]
    failures = [r.__dict__ for r in caplog.records if r.getMessage() == "visibility not reset"]
    assert {f.get("message_id") for f in failures} == spoiled
    assert {f.get("code") for f in failures} == {"ReceiptHandleIsInvalid"}


# --- every other cause of a failure (contract §7 rev 3) -------------------------------------


def test_a_lost_lease_makes_messages_visible_again_within_the_retry_window(
    world: CompactionWorld,
    words_queue: Any,
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    records = words_queue.deliver(_label_messages(world))
    ids = {r["messageId"] for r in records}
    cycle = compaction_handler.cycle_for(ChromaDBCollection.WORDS)
    stolen: list[str] = []

    def take_the_lease_over(**_: Any) -> None:
        # The lease passes to another compactor just before this one commits (§2 lock row).
        if not stolen:
            boto3.client("dynamodb").update_item(
                TableName=world.table,
                Key={"PK": {"S": "LOCK#words#chroma-words-compaction"}, "SK": {"S": "LOCK"}},
                UpdateExpression="SET #owner = :other",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":other": {"S": "another-compactor"}},
            )
            stolen.append("another-compactor")

    cycle.dynamo.client.meta.events.register(
        "before-call.dynamodb.TransactWriteItems", take_the_lease_over
    )

    response = compaction_handler.lambda_handler({"Records": records}, lambda_context)

    assert stolen
    assert _failed(response) == ids
    words_queue.wait_until_visible(ids, timeout=BACK_WITHIN)
    metrics = _cycle_metrics(capsys.readouterr().out)
    assert metrics["LeaseLost"] == [1.0]
    assert metrics["VisibilityResets"] == [float(len(ids))]
    assert world.published_version("words") is None  # nothing was published


def test_an_unreachable_sink_makes_messages_visible_again_within_the_retry_window(
    world: CompactionWorld,
    words_queue: Any,
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name, value in {
        "CHROMA_SINK": "server",
        "CHROMA_HOST": "127.0.0.1",
        "CHROMA_PORT": str(port),
        "CHROMA_RETRY_ATTEMPTS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    records = words_queue.deliver(_label_messages(world))
    ids = {r["messageId"] for r in records}

    response = compaction_handler.lambda_handler({"Records": records}, lambda_context)

    assert _failed(response) == ids
    words_queue.wait_until_visible(ids, timeout=BACK_WITHIN)
    metrics = _cycle_metrics(capsys.readouterr().out)
    assert metrics["SinkUnavailable"] == [1.0]
    assert metrics["VisibilityResets"] == [float(len(ids))]


def test_one_failed_merge_in_a_published_cycle_comes_back_within_the_retry_window(
    world: CompactionWorld,
    words_queue: Any,
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension), run_id="run-good")
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 2, dimension=world.dimension), run_id="run-lost")
    # Its delta is gone: that run's merge fails (naming it), the rest of the cycle publishes.
    world.s3.delete_object(Bucket=world.bucket, Key="words/delta/run-lost/delta.tar.gz")
    records = words_queue.deliver(_label_messages(world))
    (lost,) = [
        r["messageId"]
        for r in records
        if json.loads(r["body"])["entity_data"].get("run_id") == "run-lost"
    ]

    response = compaction_handler.lambda_handler({"Records": records}, lambda_context)
    words_queue.delete(records, _failed(response))

    assert _failed(response) == {lost}
    _, seen = words_queue.wait_until_visible({lost}, timeout=BACK_WITHIN)
    assert seen == {lost}  # the others were acknowledged and deleted
    assert any("run-lost" in reason for reason in _reasons(caplog))
    metrics = _cycle_metrics(capsys.readouterr().out)
    assert metrics["SnapshotPublished"] == [1.0]
    assert metrics["VisibilityResets"] == [1.0]


def test_an_aws_error_makes_messages_visible_again_within_the_retry_window(
    world: CompactionWorld,
    words_queue: Any,
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = words_queue.deliver(_label_messages(world))
    ids = {r["messageId"] for r in records}
    cycle = compaction_handler.cycle_for(ChromaDBCollection.WORDS)
    deny = _error_response("AccessDeniedException", "not authorized to perform: dynamodb:*")
    denied: list[str] = []

    def deny_the_first_call(params: dict[str, Any], **kwargs: Any) -> Any:
        # The cycle's first DynamoDB call, whichever it is, is refused.
        if denied:
            return None
        denied.append(params["url"])
        return deny(params, **kwargs)

    cycle.dynamo.client.meta.events.register("before-call.dynamodb", deny_the_first_call)

    response = compaction_handler.lambda_handler({"Records": records}, lambda_context)

    assert denied
    assert _failed(response) == ids
    words_queue.wait_until_visible(ids, timeout=BACK_WITHIN)
    (reason,) = _reasons(caplog)
    assert "AccessDeniedException" in reason
    output = capsys.readouterr().out
    assert _cycle_metrics(output)["VisibilityResets"] == [float(len(ids))]
    assert _invocation_metrics(output)["CompactionLambdaError"] == [1.0]
