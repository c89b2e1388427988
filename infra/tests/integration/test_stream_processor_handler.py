"""The stream Lambda on real stream records from a moto server, publishing to real queues."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import pytest

from receipt_compaction_tools.testing.pytest_plugin import TableFixture
from receipt_dynamo import ValidationStatus
from receipt_dynamo.testing import (
    SqsBatchFaults,
    make_compaction_run,
    make_label,
    make_line,
    make_metadata,
    make_receipt,
    make_word,
)

pytestmark = pytest.mark.integration

IMAGE = "3f52804b-2fad-4e00-92c8-b593da3a8ed3"
RUN = "6c1e0c7a-0d2b-4c55-b8f4-3f2a5d0b9a11"


@dataclass
class StreamQueues:
    lines: str
    words: str
    dlq: str

    def drain(self, url: str) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs")
        found: list[dict[str, Any]] = []
        while batch := sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", []):
            for message in batch:
                body = json.loads(message["Body"])
                body["_attributes"] = {
                    k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()
                }
                found.append(body)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return found


@pytest.fixture
def queues(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> StreamQueues:
    sqs = boto3.client("sqs")
    urls = StreamQueues(
        *(
            sqs.create_queue(QueueName=name, Attributes={"MaximumMessageSize": "262144"})[
                "QueueUrl"
            ]
            for name in ("lines", "words", "stream-dlq")
        )
    )
    monkeypatch.setenv("LINES_QUEUE_URL", urls.lines)
    monkeypatch.setenv("WORDS_QUEUE_URL", urls.words)
    monkeypatch.setenv("STREAM_DLQ_URL", urls.dlq)
    return urls


def _write_receipt(table: TableFixture) -> None:
    client = table.client
    client.put_entities(
        [
            make_receipt(IMAGE, 1),
            make_line(IMAGE, 1, 1),
            make_word(IMAGE, 1, 1, 1),
            make_word(IMAGE, 1, 1, 2),
        ]
    )
    client.put_receipt_metadata(make_metadata(IMAGE, 1))
    label = make_label(IMAGE, 1, 1, 1, "TOTAL")
    client.put_receipt_word_label(label)
    client.put_receipt_word_label(
        dataclasses.replace(label, validation_status=ValidationStatus.VALID)
    )
    client.add_compaction_run(make_compaction_run(IMAGE, 1, RUN))
    client.delete_receipt_word(IMAGE, 1, 1, 2)


def _summary(bodies: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((b["entity_type"], b["event_name"]) for b in bodies)


def test_real_records_become_messages_on_both_queues(
    server_table: TableFixture,
    queues: StreamQueues,
    stream_processor: ModuleType,
    lambda_context: Any,
) -> None:
    _write_receipt(server_table)
    records = server_table.stream_reader().read()

    response = stream_processor.lambda_handler({"Records": records}, lambda_context)

    assert response == {"batchItemFailures": []}
    words = queues.drain(queues.words)
    lines = queues.drain(queues.lines)
    assert _summary(words) == Counter(
        {
            ("RECEIPT_METADATA", "INSERT"): 1,
            ("RECEIPT_WORD_LABEL", "INSERT"): 1,
            ("RECEIPT_WORD_LABEL", "MODIFY"): 1,
            ("COMPACTION_RUN", "INSERT"): 1,
            ("RECEIPT_WORD", "REMOVE"): 1,
        }
    )
    assert _summary(lines) == Counter(
        {("RECEIPT_METADATA", "INSERT"): 1, ("COMPACTION_RUN", "INSERT"): 1}
    )
    modify = next(b for b in words if b["event_name"] == "MODIFY")
    assert modify["changes"] == {"validation_status": {"old": "PENDING", "new": "VALID"}}
    source = next(r for r in records if r["eventName"] == "MODIFY")
    assert modify["sequence_number"] == source["dynamodb"]["SequenceNumber"]
    assert modify["stream_record_id"] == source["eventID"]
    assert modify["_attributes"] == {
        "source": "dynamodb_stream",
        "entity_type": "RECEIPT_WORD_LABEL",
        "event_name": "MODIFY",
        "collection": "words",
    }
    run_message = next(b for b in lines if b["entity_type"] == "COMPACTION_RUN")
    assert run_message["entity_data"]["delta_s3_prefix"] == f"lines/delta/{RUN}/"
    assert queues.drain(queues.dlq) == []


def test_partial_sqs_failure_reports_exactly_the_failing_records(
    server_table: TableFixture,
    queues: StreamQueues,
    stream_processor: ModuleType,
    lambda_context: Any,
) -> None:
    _write_receipt(server_table)
    records = server_table.stream_reader().read()
    # Every attempt to publish the label MODIFY fails; one other message fails once.
    persistent = SqsBatchFaults(fails=lambda body: '"event_name":"MODIFY"' in body)
    transient = SqsBatchFaults(fails=lambda body: '"entity_type":"RECEIPT_WORD"' in body, times=1)
    boto3.setup_default_session()
    persistent.install(boto3.DEFAULT_SESSION.events)
    transient.install(boto3.DEFAULT_SESSION.events)
    try:
        response = stream_processor.lambda_handler({"Records": records}, lambda_context)
    finally:
        boto3.setup_default_session()

    modify = next(r for r in records if r["eventName"] == "MODIFY")
    assert response == {
        "batchItemFailures": [{"itemIdentifier": modify["dynamodb"]["SequenceNumber"]}]
    }
    assert transient.attempts  # the word removal failed once and was retried
    words = queues.drain(queues.words)
    assert ("RECEIPT_WORD", "REMOVE") in _summary(words)
    assert ("RECEIPT_WORD_LABEL", "MODIFY") not in _summary(words)
    assert len(words) == 4


def test_unparseable_record_is_parked_and_the_rest_published(
    server_table: TableFixture,
    queues: StreamQueues,
    stream_processor: ModuleType,
    lambda_context: Any,
) -> None:
    bad = make_label(IMAGE, 1, 1, 1, "TOTAL").to_item()
    bad["validation_status"] = {"S": "BOGUS"}  # written by a buggy producer
    boto3.client("dynamodb").put_item(TableName=server_table.name, Item=bad)
    server_table.client.put_receipt_metadata(make_metadata(IMAGE, 1))
    records = server_table.stream_reader().read()

    response = stream_processor.lambda_handler({"Records": records}, lambda_context)

    assert response == {"batchItemFailures": []}
    (parked,) = queues.drain(queues.dlq)
    assert parked["kind"] == "unparseable_stream_record"
    assert parked["_attributes"] == {"kind": "unparseable_stream_record"}
    assert "validation_status" in parked["error"]
    assert parked["record"]["dynamodb"]["Keys"] == records[0]["dynamodb"]["Keys"]
    assert [b["entity_type"] for b in queues.drain(queues.lines)] == ["RECEIPT_METADATA"]
    assert [b["entity_type"] for b in queues.drain(queues.words)] == ["RECEIPT_METADATA"]
