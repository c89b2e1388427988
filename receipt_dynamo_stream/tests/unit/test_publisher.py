"""Publishing to SQS (moto in-process): batching, retries, failures mapped to records."""

from __future__ import annotations

import json
from dataclasses import dataclass

import boto3
import pytest

from receipt_dynamo.testing import SqsBatchFaults, make_label, make_metadata, stream_record
from receipt_dynamo_stream import ConfigurationError, build_messages, publish_messages
from receipt_dynamo_stream.publisher import MAX_BATCH_BYTES

IMAGE = "3f52804b-2fad-4e00-92c8-b593da3a8ed3"


@dataclass
class Queues:
    sqs: object
    lines: str
    words: str

    def bodies(self, url: str) -> list[dict[str, object]]:
        found = []
        while True:
            batch = self.sqs.receive_message(  # type: ignore[attr-defined]
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                body = json.loads(message["Body"])
                body["_attributes"] = {
                    k: v["StringValue"] for k, v in message["MessageAttributes"].items()
                }
                found.append(body)
                self.sqs.delete_message(  # type: ignore[attr-defined]
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"]
                )


@pytest.fixture
def queues(mocked_aws: None) -> Queues:
    sqs = boto3.client("sqs")
    attributes = {"MaximumMessageSize": "262144"}
    return Queues(
        sqs=sqs,
        lines=sqs.create_queue(QueueName="lines", Attributes=attributes)["QueueUrl"],
        words=sqs.create_queue(QueueName="words", Attributes=attributes)["QueueUrl"],
    )


def _label_records(count: int, reasoning: str = "") -> list[dict[str, object]]:
    return [
        stream_record("INSERT", new=make_label(IMAGE, 1, 1, n, reasoning=reasoning or None))
        for n in range(1, count + 1)
    ]


def test_messages_reach_their_queues_in_batches_of_ten(queues: Queues) -> None:
    records = [*_label_records(23), stream_record("INSERT", new=make_metadata(IMAGE, 1))]
    built = build_messages(records)
    result = publish_messages(
        built.messages,
        sqs_client=queues.sqs,
        lines_queue_url=queues.lines,
        words_queue_url=queues.words,
    )
    assert result.failed == []
    assert len(result.published) == 25
    assert result.attempts == 4  # words: 24 messages in 3 batches; lines: 1
    words = queues.bodies(queues.words)
    lines = queues.bodies(queues.lines)
    assert len(words) == 24
    assert [b["entity_type"] for b in lines] == ["RECEIPT_METADATA"]
    assert lines[0]["_attributes"] == {
        "source": "dynamodb_stream",
        "entity_type": "RECEIPT_METADATA",
        "event_name": "INSERT",
        "collection": "lines",
    }


def test_batches_respect_the_256_kib_limit(queues: Queues) -> None:
    # Each body is ~60 KiB: at most four fit in one request.
    built = build_messages(_label_records(9, reasoning="x" * 60_000))
    result = publish_messages(built.messages, sqs_client=queues.sqs, words_queue_url=queues.words)
    assert result.failed == []
    assert result.attempts == 3
    assert all(len(m.to_json()) * 4 < MAX_BATCH_BYTES + 60_000 for _, m in built.messages)
    assert len(queues.bodies(queues.words)) == 9


def test_failed_entries_are_retried_until_they_succeed(queues: Queues) -> None:
    faults = SqsBatchFaults(fails=lambda body: '"word_id":3' in body, times=2)
    faults.install(queues.sqs.meta.events)  # type: ignore[attr-defined]
    built = build_messages(_label_records(5))
    result = publish_messages(
        built.messages, sqs_client=queues.sqs, words_queue_url=queues.words, backoff_seconds=0
    )
    assert result.failed == []
    assert len(queues.bodies(queues.words)) == 5
    assert result.attempts == 3


def test_persistent_failures_are_reported_with_their_sequence_numbers(queues: Queues) -> None:
    faults = SqsBatchFaults(fails=lambda body: '"word_id":2' in body)
    faults.install(queues.sqs.meta.events)  # type: ignore[attr-defined]
    records = _label_records(4)
    built = build_messages(records)
    result = publish_messages(
        built.messages,
        sqs_client=queues.sqs,
        words_queue_url=queues.words,
        max_attempts=3,
        backoff_seconds=0,
    )
    assert result.failed_sequence_numbers == {records[1]["dynamodb"]["SequenceNumber"]}  # type: ignore[index]
    assert "InternalError" in result.failed[0].error
    assert len(queues.bodies(queues.words)) == 3


def test_refused_batches_are_split_and_retried(queues: Queues) -> None:
    faults = SqsBatchFaults(refuse_batches=2)
    faults.install(queues.sqs.meta.events)  # type: ignore[attr-defined]
    built = build_messages(_label_records(6))
    result = publish_messages(
        built.messages, sqs_client=queues.sqs, words_queue_url=queues.words, backoff_seconds=0
    )
    assert result.failed == []
    assert len(queues.bodies(queues.words)) == 6


def test_missing_queue_url_names_the_variable(
    queues: Queues, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The URLs are the caller's (the handler resolves them): the environment is not read
    # again here, so the variable being set changes nothing.
    monkeypatch.setenv("WORDS_QUEUE_URL", queues.words)
    built = build_messages(_label_records(1))
    with pytest.raises(ConfigurationError, match="WORDS_QUEUE_URL is not set"):
        publish_messages(built.messages, sqs_client=queues.sqs, lines_queue_url=queues.lines)
    assert queues.bodies(queues.words) == []
