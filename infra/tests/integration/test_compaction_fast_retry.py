"""contract §7 (rev 2): messages failed by lease contention or a moved pointer are given a short
jittered visibility (``RETRY_VISIBILITY_SECONDS``) with ``ChangeMessageVisibilityBatch``
before the handler reports them, so they return within seconds here instead of after the
queue's long visibility timeout. Real messages on a real moto SQS queue throughout; faults
are injected with botocore event hooks on the handler's own clients."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from receipt_compaction_tools.testing.factories import IMAGE_ID, make_label, make_metadata
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo import ChromaDBCollection
from receipt_dynamo_stream import StreamMessage, publish_messages

if TYPE_CHECKING:
    from types_boto3_sqs.client import SQSClient

pytestmark = pytest.mark.integration

QUEUE_VISIBILITY_SECONDS = 600  # "6 x the function timeout": far beyond any wait here
RETRY_WINDOW = (2, 3)  # RETRY_VISIBILITY_SECONDS for these tests


@pytest.fixture
def world(
    aws_endpoint: str, tmp_path: Path, compactor_environment: Callable[..., None]
) -> CompactionWorld:
    world = CompactionWorld(tmp_path)
    compactor_environment(
        world, LOCK_WAIT_SECONDS="1", RETRY_VISIBILITY_SECONDS="{}-{}".format(*RETRY_WINDOW)
    )
    return world


@dataclass
class Queue:
    sqs: SQSClient
    url: str
    arn: str

    @classmethod
    def create(cls, name: str = "words") -> Queue:
        sqs = boto3.client("sqs")
        url = sqs.create_queue(
            QueueName=name, Attributes={"VisibilityTimeout": str(QUEUE_VISIBILITY_SECONDS)}
        )["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return cls(sqs, url, arn)

    def deliver(self, messages: list[tuple[str, StreamMessage]]) -> list[dict[str, Any]]:
        """Publish, then receive every message (kept in flight) as Lambda's SQS records."""
        assert (
            publish_messages(messages, sqs_client=self.sqs, words_queue_url=self.url).failed == []
        )
        records: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", []):
            records += [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": {},
                    "messageAttributes": {
                        name: {"stringValue": v["StringValue"], "dataType": v["DataType"]}
                        for name, v in m.get("MessageAttributes", {}).items()
                    },
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn,
                    "awsRegion": self.arn.split(":")[3],
                }
                for m in batch
            ]
        assert len(records) == len(messages)
        return records

    def visible_ids(self) -> set[str]:
        """Ids of the messages receivable right now (received again, then released)."""
        found: dict[str, str] = {}
        while batch := self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, VisibilityTimeout=60
        ).get("Messages", []):
            found.update((m["MessageId"], m["ReceiptHandle"]) for m in batch)
        for handle in found.values():
            self.sqs.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=handle, VisibilityTimeout=0
            )
        return set(found)

    def wait_until_visible(self, expected: set[str], timeout: float) -> tuple[float, set[str]]:
        """Receive until every ``expected`` id came back (fails after ``timeout`` s): the
        seconds it took and every id received meanwhile."""
        started = time.monotonic()
        seen: set[str] = set()
        while time.monotonic() - started < timeout:
            seen |= {
                m["MessageId"]
                for m in self.sqs.receive_message(
                    QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                ).get("Messages", [])
            }
            if expected <= seen:
                return time.monotonic() - started, seen
        raise AssertionError(f"{len(expected - seen)} messages not visible after {timeout} s")


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


def test_lease_contention_makes_messages_visible_again_within_the_retry_window(
    world: CompactionWorld,
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    queue = Queue.create()
    records = queue.deliver(_label_messages(world))
    ids = {r["messageId"] for r in records}
    _hold_the_lease(world)

    response = compaction_handler.lambda_handler({"Records": records}, lambda_context)
    returned = time.monotonic()

    assert _failed(response) == ids
    assert queue.visible_ids() == set()  # not at once: the reset is at least 2 s
    waited, _ = queue.wait_until_visible(ids, timeout=15)
    assert waited + (time.monotonic() - returned) < RETRY_WINDOW[1] + 5 < QUEUE_VISIBILITY_SECONDS
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
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    queue = Queue.create()
    records = queue.deliver(_label_messages(world))
    ids = {r["messageId"] for r in records}
    cycle = compaction_handler.cycle_for(ChromaDBCollection.WORDS)
    moved: list[str] = []

    def publish_elsewhere_first(**_: Any) -> None:
        # Another publisher's pointer lands between this cycle's read and its publish.
        if not moved:
            moved.append(world.dynamo.adopt_snapshot_pointer("words", "elsewhere").version)

    cycle.dynamo.client.meta.events.register(
        "before-call.dynamodb.TransactWriteItems", publish_elsewhere_first
    )

    response = compaction_handler.lambda_handler({"Records": records}, lambda_context)

    assert moved
    assert _failed(response) == ids
    queue.wait_until_visible(ids, timeout=15)
    output = capsys.readouterr().out
    metrics = _cycle_metrics(output)
    assert metrics["SnapshotPublishFailures"] == [1.0]
    assert metrics["VisibilityResets"] == [float(len(ids))]
    assert metrics["VisibilityResetFailures"] == [0.0]
    assert _invocation_metrics(output)["CompactionLambdaError"] == [1.0]


def test_a_failing_visibility_reset_is_counted_and_changes_nothing_else(
    world: CompactionWorld,
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = Queue.create()
    records = queue.deliver(_label_messages(world))
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

    region = queue.arn.split(":")[3]
    compaction_handler.sqs_client(region).meta.events.register(
        "before-call.sqs.ChangeMessageVisibilityBatch", access_denied
    )

    response = compaction_handler.lambda_handler({"Records": records}, lambda_context)

    assert _failed(response) == ids  # still reported failed
    assert sorted(calls) == sorted([10, len(ids) - 10])  # at most 10 entries per call
    time.sleep(RETRY_WINDOW[1] + 1)
    assert queue.visible_ids() == set()  # still under the queue's own visibility timeout
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
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = Queue.create()
    records = queue.deliver(_label_messages(world))
    ids = {r["messageId"] for r in records}
    by_handle = {r["receiptHandle"]: r["messageId"] for r in records}
    _hold_the_lease(world)
    spoiled: set[str] = set()

    def spoil_first_entry(params: dict[str, Any], **_: Any) -> None:
        # SQS then answers that entry in `Failed` (ReceiptHandleIsInvalid).
        entry = params["Entries"][0]
        spoiled.add(by_handle[entry["ReceiptHandle"]])
        entry["ReceiptHandle"] = "not-a-receipt-handle"

    region = queue.arn.split(":")[3]
    compaction_handler.sqs_client(region).meta.events.register(
        "before-parameter-build.sqs.ChangeMessageVisibilityBatch", spoil_first_entry
    )

    response = compaction_handler.lambda_handler({"Records": records}, lambda_context)

    assert _failed(response) == ids
    calls = -(-len(ids) // 10)  # at most 10 entries per call
    assert len(spoiled) == calls == 2
    _, seen = queue.wait_until_visible(ids - spoiled, timeout=15)
    assert not spoiled & seen  # their visibility was not changed
    cycle = _cycle_metrics(capsys.readouterr().out)
    assert cycle["VisibilityResetFailures"] == [float(calls)]
    assert cycle["VisibilityResets"] == [float(len(ids) - calls)]
    failures = [r.__dict__ for r in caplog.records if r.getMessage() == "visibility not reset"]
    assert {f.get("message_id") for f in failures} == spoiled
    assert {f.get("code") for f in failures} == {"ReceiptHandleIsInvalid"}
