"""StreamReader follows a receipt table's stream on a moto server (the dynamodbstreams API):
records in Lambda's shape, each read returning what was appended since, and a resume behind
a checkpointed sequence number."""

from __future__ import annotations

import dataclasses

import pytest
from boto3.dynamodb.types import TypeDeserializer

from receipt_compaction_tools.testing.pytest_plugin import ServerTable
from receipt_dynamo import ValidationStatus
from receipt_dynamo.testing import make_label, make_metadata

IMAGE = "3f52804b-2fad-4e00-92c8-b593da3a8ed3"

pytestmark = pytest.mark.integration


def test_insert_modify_remove_records_carry_both_images(server_table: ServerTable) -> None:
    client = server_table.client
    label = make_label(IMAGE, 1, 2, 3, "TOTAL")
    client.put_receipt_word_label(label)
    client.put_receipt_word_label(
        dataclasses.replace(label, validation_status=ValidationStatus.VALID)
    )
    client.delete_receipt_word_label(IMAGE, 1, 2, 3, "TOTAL")

    reader = server_table.stream_reader()
    records = reader.read()
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    insert, modify, remove = (r["dynamodb"] for r in records)
    assert insert["Keys"] == label.key
    assert "OldImage" not in insert
    assert insert["NewImage"] == label.to_item()
    assert modify["OldImage"]["validation_status"] == {"S": "PENDING"}
    assert modify["NewImage"]["validation_status"] == {"S": "VALID"}
    assert remove["OldImage"]["validation_status"] == {"S": "VALID"}
    assert "NewImage" not in remove

    # Lambda's shape: epoch seconds, source ARN, increasing sequence numbers.
    assert all(isinstance(r["dynamodb"]["ApproximateCreationDateTime"], int) for r in records)
    assert all(r["eventSourceARN"] == server_table.stream_arn for r in records)
    sequence = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequence == sorted(sequence)

    # A second read returns only what was appended since.
    client.put_receipt_metadata(make_metadata(IMAGE, 1))
    (latest,) = reader.read()
    image = {
        k: TypeDeserializer().deserialize(v) for k, v in latest["dynamodb"]["NewImage"].items()
    }
    assert (latest["eventName"], image["merchant_name"]) == ("INSERT", "Corner Market")


def test_read_after_resumes_behind_a_checkpointed_sequence_number(
    server_table: ServerTable,
) -> None:
    client = server_table.client
    for word in (1, 2, 3):
        client.put_receipt_word_label(make_label(IMAGE, 1, 1, word, "TOTAL"))

    reader = server_table.stream_reader()
    ((shard, records),) = reader.read_after({}).items()
    assert [r["dynamodb"]["Keys"]["SK"]["S"][-5:] for r in records] == ["TOTAL"] * 3
    second = records[1]["dynamodb"]["SequenceNumber"]

    # A consumer that checkpointed after the second record (and restarted) gets the third.
    (rest,) = reader.read_after({shard: second}).values()
    assert [r["dynamodb"]["SequenceNumber"] for r in rest] == [
        records[2]["dynamodb"]["SequenceNumber"]
    ]
    last = records[2]["dynamodb"]["SequenceNumber"]
    assert reader.read_after({shard: last}) == {shard: []}
