"""Contract §5.1: the records of Lambda's SQS event (Powertools' ``SQSRecord``) become
messages grouped by collection; a body that is not a valid message, or whose collection is
not its queue's, is kept apart with an error naming what is wrong — never dropped."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import SQSEvent, SQSRecord

from receipt_chroma.lambda_support import parse_queue_record, split_by_collection
from receipt_dynamo import ChromaDBCollection
from receipt_dynamo_stream import MessageValidationError

IMAGE_ID = "3f52804b-2fad-4e00-92c8-b593da3a8ed3"


def _body(collection: str, entity_type: str = "RECEIPT", **entity_data: Any) -> str:
    """A stream REMOVE message of §3.4, written out by hand."""
    return json.dumps(
        {
            "schema_version": 1,
            "source": "dynamodb_stream",
            "entity_type": entity_type,
            "event_name": "REMOVE",
            "collection": collection,
            "entity_data": {"image_id": IMAGE_ID, "receipt_id": 1, **entity_data},
            "changes": {},
            "sequence_number": "4421584500000000017450439091",
            "change_time": "2026-11-28T10:15:00+00:00",
            "stream_record_id": "event-1",
            "aws_region": "us-east-1",
            "timestamp": "2026-11-28T10:15:01.123456+00:00",
        }
    )


def _record(message_id: str, body: str, queue: str | None) -> dict[str, Any]:
    attributes = (
        {} if queue is None else {"collection": {"stringValue": queue, "dataType": "String"}}
    )
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {},
        "messageAttributes": attributes,
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
        "awsRegion": "us-east-1",
    }


def test_a_valid_record_is_its_message() -> None:
    record = SQSRecord(_record("m1", _body("words", "RECEIPT_WORD", line_id=2, word_id=3), "words"))

    message = parse_queue_record(record)

    assert message.collection is ChromaDBCollection.WORDS
    assert message.entity_type.value == "RECEIPT_WORD"
    assert message.event_name.value == "REMOVE"
    assert message.entity_data == {
        "image_id": IMAGE_ID,
        "receipt_id": 1,
        "line_id": 2,
        "word_id": 3,
    }
    assert message.sequence_number == "4421584500000000017450439091"


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (_record("m", _body("words"), "lines"), "does not match the queue's collection attribute"),
        (_record("m", _body("words"), None), "collection attribute None"),
        (_record("m", "{oops", "words"), "message body is not JSON"),
        (_record("m", _body("words", receipt_id=0), "words"), "entity_data.receipt_id"),
        ({"messageId": "m", "messageAttributes": {}}, "the SQS record has no body"),
        (
            {
                k: v
                for k, v in _record("m", _body("words"), "words").items()
                if k != "messageAttributes"
            },
            "collection attribute None",
        ),
    ],
    ids=["other queue", "no attribute", "not json", "receipt 0", "no body", "no attributes"],
)
def test_an_invalid_record_names_what_is_wrong(raw: dict[str, Any], error: str) -> None:
    with pytest.raises(MessageValidationError, match=error):
        parse_queue_record(SQSRecord(raw))


def test_an_event_splits_into_collections_in_order_with_invalid_records_apart() -> None:
    raw = [
        _record("w1", _body("words"), "words"),
        _record("l1", _body("lines"), "lines"),
        _record("bad", "{oops", "words"),
        _record("w2", _body("words", "RECEIPT_WORD", line_id=1, word_id=1), "words"),
        _record("wrong-queue", _body("lines"), "words"),
    ]
    records = list(SQSEvent({"Records": raw}).records)

    batch = split_by_collection(records)

    assert {c: [m for m, _ in pairs] for c, pairs in batch.messages.items()} == {
        ChromaDBCollection.WORDS: ["w1", "w2"],
        ChromaDBCollection.LINES: ["l1"],
    }
    assert list(batch.invalid) == ["bad", "wrong-queue"]
    assert "not JSON" in str(batch.invalid["bad"])
    assert "'lines'" in str(batch.invalid["wrong-queue"])
    # Every record is found again by its id, for the early retry of those reported failed.
    assert [r.receipt_handle for r in batch.records_of(["wrong-queue", "unknown", "w1"])] == [
        "handle-wrong-queue",
        "handle-w1",
    ]


def test_a_record_with_null_message_attributes_is_invalid_while_the_others_are_messages() -> None:
    broken = _record("m1", _body("words"), "words")
    broken["messageAttributes"] = None
    good = _record("m2", _body("lines"), "lines")

    batch = split_by_collection(SQSRecord(r) for r in (broken, good))

    assert "does not match the queue's collection attribute None" in str(batch.invalid["m1"])
    assert [mid for mid, _ in batch.messages[ChromaDBCollection.LINES]] == ["m2"]
