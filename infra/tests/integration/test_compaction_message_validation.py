"""Contract §5.1 (rev 3) through the real compaction handler: bodies whose values no producer
could have made are reported failed (never acknowledged), logged with the rule they broke,
counted in ``InvalidMessages`` and retried early (§7) — while the valid messages of the same
batch are applied and published. And every body the stream side builds from real stream
records, or a backfill builds from real rows, is valid."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from receipt_chroma.ids import word_vector_id
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo import ValidationStatus
from receipt_dynamo.testing import IMAGE_ID, make_label, make_metadata
from receipt_dynamo_stream import backfill_messages

pytestmark = pytest.mark.integration

RETRY_WINDOW = (2, 3)  # RETRY_VISIBILITY_SECONDS for these tests
UPPER_IMAGE_ID = IMAGE_ID.upper()
NO_STREAM_FIELDS = {"sequence_number": None, "change_time": None, "stream_record_id": None}
ID_RULE = "must be an integer in 1..99999"
UUID_RULE = "entity_data.image_id must be a lower-case UUID v4/v5 string"
LABEL_RULE = "entity_data.label must match [A-Z0-9_]{1,34}"

# The impossible bodies of issue 21, each a valid body of the named type with one value
# changed, and the rule (contract §5.1, §3.1, §3.4) its error must name.
IMPOSSIBLE: dict[str, tuple[str, dict[str, Any], str]] = {
    "run image_id not a uuid": (
        "COMPACTION_RUN",
        {"entity_data.image_id": "NOT-A-UUID"},
        f"{UUID_RULE}, got 'NOT-A-UUID'",
    ),
    "run image_id upper-cased": (
        "COMPACTION_RUN",
        {"entity_data.image_id": UPPER_IMAGE_ID},
        f"{UUID_RULE}, got '{UPPER_IMAGE_ID}'",
    ),
    "receipt_id 0": (
        "COMPACTION_RUN",
        {"entity_data.receipt_id": 0},
        f"entity_data.receipt_id {ID_RULE}, got 0",
    ),
    "receipt_id -7": (
        "RECEIPT_METADATA",
        {"entity_data.receipt_id": -7},
        f"entity_data.receipt_id {ID_RULE}, got -7",
    ),
    "receipt_id 10**12": (
        "RECEIPT_WORD_LABEL",
        {"entity_data.receipt_id": 10**12},
        f"entity_data.receipt_id {ID_RULE}, got 1000000000000",
    ),
    "receipt_id true": (
        "RECEIPT_METADATA",
        {"entity_data.receipt_id": True},
        f"entity_data.receipt_id {ID_RULE}, got True",
    ),
    "label lower-case": (
        "RECEIPT_WORD_LABEL",
        {"entity_data.label": "total"},
        f"{LABEL_RULE}, got 'total'",
    ),
    "label with a separator": (
        "RECEIPT_WORD_LABEL",
        {"entity_data.label": "A#B"},
        f"{LABEL_RULE}, got 'A#B'",
    ),
    "word_id 0": (
        "RECEIPT_WORD_LABEL",
        {"entity_data.word_id": 0},
        f"entity_data.word_id {ID_RULE}, got 0",
    ),
    "schema_version true": (
        "RECEIPT_METADATA",
        {"schema_version": True},
        "schema_version must be the integer 1, got True",
    ),
    "backfill REMOVE": (
        "RECEIPT_WORD_LABEL",
        {"source": "backfill", "event_name": "REMOVE", **NO_STREAM_FIELDS},
        "a backfill message must be an INSERT, got REMOVE",
    ),
    "backfill with a sequence number": (
        "COMPACTION_RUN",
        {"source": "backfill", **NO_STREAM_FIELDS, "sequence_number": "17"},
        "sequence_number of a backfill message must be null, got '17'",
    ),
    "garbage timestamp": (
        "RECEIPT_METADATA",
        {"timestamp": "not a time"},
        "timestamp must be an ISO-8601 time, got 'not a time'",
    ),
    "garbage change_time": (
        "RECEIPT_WORD_LABEL",
        {"change_time": "2026-13-45T99:00:00"},
        "change_time must be an ISO-8601 time, got '2026-13-45T99:00:00'",
    ),
    "sequence_number abc": (
        "COMPACTION_RUN",
        {"sequence_number": "abc"},
        "sequence_number of a dynamodb_stream message must be a decimal string, got 'abc'",
    ),
}


@pytest.fixture
def world(
    aws_endpoint: str, tmp_path: Path, compactor_environment: Callable[..., None]
) -> CompactionWorld:
    world = CompactionWorld(tmp_path)
    compactor_environment(world, RETRY_VISIBILITY_SECONDS="{}-{}".format(*RETRY_WINDOW))
    return world


def _emf(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def _invocation(output: str) -> dict[str, Any]:
    (invocation,) = [m for m in _emf(output) if "InvalidMessages" in m]
    return invocation


def _changed(body: dict[str, Any], changes: dict[str, Any]) -> str:
    result = copy.deepcopy(body)
    for name, value in changes.items():
        if name.startswith("entity_data."):
            result["entity_data"][name.removeprefix("entity_data.")] = value
        else:
            result[name] = value
    return json.dumps(result)


def test_impossible_bodies_fail_naming_their_rule_while_the_batch_publishes(
    world: CompactionWorld,
    words_queue: Any,
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    receipt = SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension)
    world.add_receipt(receipt)
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1))
    world.dynamo.put_receipt_word_label(
        make_label(IMAGE_ID, 1, 1, 1, "TOTAL", validation_status=ValidationStatus.VALID)
    )
    valid = world.pump()["words"]
    templates = {m.entity_type.value: json.loads(m.to_json()) for _, m in valid}
    assert set(templates) == {"COMPACTION_RUN", "RECEIPT_METADATA", "RECEIPT_WORD_LABEL"}
    assert len(IMPOSSIBLE) == 15
    impossible = {
        _changed(templates[entity_type], changes): case
        for case, (entity_type, changes, _) in IMPOSSIBLE.items()
    }
    words_queue.publish(valid)
    words_queue.send_bodies(impossible)
    records = words_queue.receive()
    case_of = {r["messageId"]: impossible[r["body"]] for r in records if r["body"] in impossible}
    assert len(records) == len(valid) + 15

    response = compaction_handler.lambda_handler({"Records": records}, lambda_context)
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    words_queue.delete(records, failed)

    assert failed == set(case_of)
    # Each is logged naming the rule it broke.
    logged = {
        r.__dict__["message_id"]: str(r.__dict__["error"])
        for r in caplog.records
        if r.getMessage() == "invalid queue message"
    }
    assert set(logged) == set(case_of)
    for message_id, case in case_of.items():
        assert IMPOSSIBLE[case][2] in logged[message_id], (case, logged[message_id])
    # The valid messages of the same batch were applied and published.
    words = world.snapshot_from_s3("words")
    assert set(words) == {
        word_vector_id(IMAGE_ID, 1, w.line_id, w.word_id) for w in receipt.word_rows
    }
    first_word = words[word_vector_id(IMAGE_ID, 1, 1, 1)][0]
    assert (first_word["merchant_name"], first_word["valid_labels_array"]) == (
        "Corner Market",
        ["TOTAL"],
    )
    invocation = _invocation(capsys.readouterr().out)
    assert invocation["InvalidMessages"] == [15.0]
    assert invocation["VisibilityResets"] == [15.0]
    assert invocation["CompactionLambdaError"] == [1.0]
    # Reported failed, and back within the retry window (contract §7): not after 600 s.
    _, seen = words_queue.wait_until_visible(set(case_of), timeout=RETRY_WINDOW[1] + 5)
    assert seen == set(case_of)


def test_the_stream_lambda_and_backfill_build_only_bodies_the_compactor_accepts(
    world: CompactionWorld,
    words_queue: Any,
    lines_queue: Any,
    compaction_handler: ModuleType,
    stream_processor: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Real records of every kind that makes a message — inserts, modifies and removes of
    metadata and labels (with odd but valid values: the longest label name, empty and
    malformed timestamps, non-ASCII text), runs, and removals of words, lines and
    receipts — through the real stream Lambda, then a backfill of the rows that remain."""
    queues = {"lines": lines_queue, "words": words_queue}
    for collection, queue in queues.items():
        monkeypatch.setenv(f"{collection.upper()}_QUEUE_URL", queue.url)
    for receipt_id in (1, 99_999):
        world.add_receipt(SyntheticReceipt(IMAGE_ID, receipt_id, dimension=world.dimension))
    longest = "L" * 34
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Café 東京"))
    malformed = make_metadata(IMAGE_ID, 1).to_item()
    malformed["timestamp"] = {"S": "yesterday"}  # an invalid row (§5.4), still a message
    boto3.client("dynamodb").put_item(TableName=world.table, Item=malformed)
    world.dynamo.put_receipt_word_label(make_label(IMAGE_ID, 1, 1, 1, longest))
    world.dynamo.put_receipt_word_label(
        make_label(IMAGE_ID, 1, 1, 1, longest, validation_status=ValidationStatus.INVALID)
    )
    world.dynamo.put_receipt_word_label(make_label(IMAGE_ID, 1, 1, 2, "TOTAL"))
    world.dynamo.delete_receipt_word_label(IMAGE_ID, 1, 1, 2, "TOTAL")
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 99_999))
    world.dynamo.delete_entity(make_metadata(IMAGE_ID, 99_999))
    receipt_99999 = SyntheticReceipt(IMAGE_ID, 99_999, dimension=world.dimension)
    world.dynamo.delete_entity(receipt_99999.word_rows[0])
    world.dynamo.delete_entity(receipt_99999.line_rows[-1])
    world.dynamo.delete_receipt(IMAGE_ID, 99_999)

    records = world.reader.read()
    stream_response = stream_processor.lambda_handler({"Records": records}, lambda_context)
    assert stream_response == {"batchItemFailures": []}
    items = boto3.client("dynamodb").scan(TableName=world.table, ConsistentRead=True)["Items"]
    backfilled = backfill_messages(items)
    for collection, queue in queues.items():
        queue.publish([(None, m) for m in backfilled if m.collection.value == collection])
    capsys.readouterr()

    delivered: dict[str, set[tuple[str, str, str]]] = {}
    for collection, queue in queues.items():
        records = queue.receive()
        bodies = [json.loads(r["body"]) for r in records]
        delivered[collection] = {(b["source"], b["entity_type"], b["event_name"]) for b in bodies}
        response = compaction_handler.lambda_handler({"Records": records}, lambda_context)
        assert response == {"batchItemFailures": []}, collection
        assert _invocation(capsys.readouterr().out)["InvalidMessages"] == [0.0]

    stream = "dynamodb_stream"
    assert delivered["words"] == {
        (stream, "COMPACTION_RUN", "INSERT"),
        (stream, "RECEIPT_METADATA", "INSERT"),
        (stream, "RECEIPT_METADATA", "MODIFY"),
        (stream, "RECEIPT_METADATA", "REMOVE"),
        (stream, "RECEIPT_WORD_LABEL", "INSERT"),
        (stream, "RECEIPT_WORD_LABEL", "MODIFY"),
        (stream, "RECEIPT_WORD_LABEL", "REMOVE"),
        (stream, "RECEIPT_WORD", "REMOVE"),
        (stream, "RECEIPT", "REMOVE"),
        ("backfill", "COMPACTION_RUN", "INSERT"),
        ("backfill", "RECEIPT_METADATA", "INSERT"),
        ("backfill", "RECEIPT_WORD_LABEL", "INSERT"),
    }
    assert delivered["lines"] == {
        (stream, "COMPACTION_RUN", "INSERT"),
        (stream, "RECEIPT_METADATA", "INSERT"),
        (stream, "RECEIPT_METADATA", "MODIFY"),
        (stream, "RECEIPT_METADATA", "REMOVE"),
        (stream, "RECEIPT_LINE", "REMOVE"),
        (stream, "RECEIPT", "REMOVE"),
        ("backfill", "COMPACTION_RUN", "INSERT"),
        ("backfill", "RECEIPT_METADATA", "INSERT"),
    }
