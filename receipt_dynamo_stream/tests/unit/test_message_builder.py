"""Every cell of the contract §3.3 table, message content (§3.4) and change detection (§3.2)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from receipt_dynamo import DynamoEntity
from receipt_dynamo.testing import (
    make_compaction_run,
    make_label,
    make_line,
    make_metadata,
    make_receipt,
    make_word,
    stream_record,
)
from receipt_dynamo_stream import (
    FieldChange,
    MessageValidationError,
    StreamMessage,
    build_messages,
    get_chromadb_relevant_changes,
)

IMAGE = "3f52804b-2fad-4e00-92c8-b593da3a8ed3"
RUN = "6c1e0c7a-0d2b-4c55-b8f4-3f2a5d0b9a11"


def _messages(event: str, old: DynamoEntity | None, new: DynamoEntity | None) -> list[Any]:
    result = build_messages([stream_record(event, old=old, new=new)])
    assert result.unparseable == []
    return [message for _, message in result.messages]


def _targets(messages: list[StreamMessage]) -> list[str]:
    return sorted(m.collection.value for m in messages)


METADATA = make_metadata(IMAGE, 1)
LABEL = make_label(IMAGE, 1, 2, 3, "TOTAL")


@pytest.mark.parametrize(
    ("event", "old", "new", "targets"),
    [
        # RECEIPT_METADATA
        ("INSERT", None, METADATA, ["lines", "words"]),
        (
            "MODIFY",
            METADATA,
            dataclasses.replace(METADATA, address="2 Side St"),
            ["lines", "words"],
        ),
        ("MODIFY", METADATA, dataclasses.replace(METADATA, reasoning="irrelevant"), []),
        ("REMOVE", METADATA, None, ["lines", "words"]),
        # RECEIPT_WORD_LABEL
        ("INSERT", None, LABEL, ["words"]),
        ("MODIFY", LABEL, dataclasses.replace(LABEL, validation_status="VALID"), ["words"]),
        ("MODIFY", LABEL, dataclasses.replace(LABEL, reasoning="irrelevant"), ["words"]),
        ("MODIFY", LABEL, dataclasses.replace(LABEL, label_consolidated_from="TAX"), ["words"]),
        ("MODIFY", LABEL, LABEL, []),
        ("REMOVE", LABEL, None, ["words"]),
        # COMPACTION_RUN
        ("INSERT", None, make_compaction_run(IMAGE, 1, RUN), ["lines", "words"]),
        (
            "MODIFY",
            make_compaction_run(IMAGE, 1, RUN),
            make_compaction_run(IMAGE, 1, RUN, lines_state="COMPLETED"),
            [],
        ),
        ("REMOVE", make_compaction_run(IMAGE, 1, RUN), None, []),
        # RECEIPT, RECEIPT_LINE, RECEIPT_WORD: removals only
        ("INSERT", None, make_receipt(IMAGE, 1), []),
        ("MODIFY", make_receipt(IMAGE, 1), make_receipt(IMAGE, 1, width=5), []),
        ("REMOVE", make_receipt(IMAGE, 1), None, ["lines", "words"]),
        ("INSERT", None, make_line(IMAGE, 1, 2), []),
        ("MODIFY", make_line(IMAGE, 1, 2), make_line(IMAGE, 1, 2, text="x"), []),
        ("REMOVE", make_line(IMAGE, 1, 2), None, ["lines"]),
        ("INSERT", None, make_word(IMAGE, 1, 2, 3), []),
        ("MODIFY", make_word(IMAGE, 1, 2, 3), make_word(IMAGE, 1, 2, 3, text="x"), []),
        ("REMOVE", make_word(IMAGE, 1, 2, 3), None, ["words"]),
    ],
)
def test_event_table(
    event: str, old: DynamoEntity | None, new: DynamoEntity | None, targets: list[str]
) -> None:
    messages = _messages(event, old, new)
    assert _targets(messages) == targets
    assert all(m.event_name.value == event for m in messages)


def test_label_modify_message_carries_ids_changes_and_record_fields() -> None:
    record = stream_record(
        "MODIFY", old=LABEL, new=dataclasses.replace(LABEL, validation_status="VALID")
    )
    ((sequence, message),) = build_messages([record]).messages
    body = json.loads(message.to_json())
    assert sequence == record["dynamodb"]["SequenceNumber"]
    assert body["entity_data"] == {
        "image_id": IMAGE,
        "receipt_id": 1,
        "line_id": 2,
        "word_id": 3,
        "label": "TOTAL",
    }
    assert body["changes"] == {"validation_status": {"old": "PENDING", "new": "VALID"}}
    assert body["schema_version"] == 1
    assert body["source"] == "dynamodb_stream"
    assert body["sequence_number"] == record["dynamodb"]["SequenceNumber"]
    assert body["change_time"] == "2026-11-28T10:15:00+00:00"
    assert body["stream_record_id"] == record["eventID"]
    assert body["aws_region"] == "us-east-1"
    assert message.message_attributes()["collection"] == {
        "DataType": "String",
        "StringValue": "words",
    }


def test_insert_and_remove_carry_every_non_empty_field() -> None:
    (insert,) = _messages("INSERT", None, dataclasses.replace(LABEL, reasoning=""))
    assert insert.changes == {
        "label": FieldChange(None, "TOTAL"),
        "validation_status": FieldChange(None, "PENDING"),
        "label_proposed_by": FieldChange(None, "tests"),
        "timestamp_added": FieldChange(None, LABEL.timestamp_added),
    }
    (remove,) = _messages("REMOVE", LABEL, None)
    assert remove.changes["label"] == FieldChange("TOTAL", None)


def test_metadata_changes_and_entity_data() -> None:
    new = dataclasses.replace(METADATA, canonical_merchant_name="Corner Market Inc")
    lines, words = sorted(_messages("MODIFY", METADATA, new), key=lambda m: m.collection)
    assert lines.entity_data == words.entity_data == {"image_id": IMAGE, "receipt_id": 1}
    assert lines.changes == {"canonical_merchant_name": FieldChange(None, "Corner Market Inc")}


def test_empty_string_and_none_do_not_differ() -> None:
    before = dataclasses.replace(METADATA, address="", phone_number=None)
    after = dataclasses.replace(METADATA, address=None, phone_number="")
    assert get_chromadb_relevant_changes("RECEIPT_METADATA", before, after) == {}
    assert _messages("MODIFY", before, after) == []


def test_missing_validation_status_equals_none() -> None:
    old_item = LABEL.to_item()
    old_item["validation_status"] = {"S": "NONE"}
    new_item = dict(old_item)
    del new_item["validation_status"]
    result = build_messages([stream_record("MODIFY", old=old_item, new=new_item)])
    assert (result.messages, result.irrelevant) == ([], 1)


def test_compaction_run_insert_yields_one_message_per_collection_with_its_prefix() -> None:
    run = make_compaction_run(IMAGE, 3, RUN)
    messages = sorted(_messages("INSERT", None, run), key=lambda m: m.collection)
    assert [m.entity_data for m in messages] == [
        {
            "run_id": RUN,
            "image_id": IMAGE,
            "receipt_id": 3,
            "delta_s3_prefix": f"lines/delta/{RUN}/",
        },
        {
            "run_id": RUN,
            "image_id": IMAGE,
            "receipt_id": 3,
            "delta_s3_prefix": f"words/delta/{RUN}/",
        },
    ]
    assert all(m.changes == {} for m in messages)


def test_removal_messages_have_no_changes() -> None:
    (message,) = _messages("REMOVE", make_word(IMAGE, 1, 2, 3), None)
    assert message.entity_data == {"image_id": IMAGE, "receipt_id": 1, "line_id": 2, "word_id": 3}
    assert json.loads(message.to_json())["changes"] == {}


def test_body_is_ascii_json_and_round_trips() -> None:
    new = dataclasses.replace(METADATA, merchant_name="Café Ünïcode 東京")
    for message in _messages("INSERT", None, new):
        text = message.to_json()
        assert text.isascii()
        assert StreamMessage.from_json(text) == message
        assert "Café Ünïcode 東京" in json.loads(text)["changes"]["merchant_name"]["new"]


def test_decimals_and_sets_serialise_as_numbers_and_sorted_lists() -> None:
    from decimal import Decimal

    message = StreamMessage.from_json(_messages("INSERT", None, LABEL)[0].to_json())
    odd = dataclasses.replace(
        message,
        entity_data={"receipt_id": Decimal("3"), "score": Decimal("0.25"), "tags": {"b", "a"}},
    )
    body = json.loads(odd.to_json())
    assert body["entity_data"] == {"receipt_id": 3, "score": 0.25, "tags": ["a", "b"]}


def test_null_attributes_in_images_read_as_empty() -> None:
    item = METADATA.to_item()
    item["address"] = {"NULL": True}
    item["merchant_category"] = {"NULL": True}
    lines, _ = sorted(_messages_from_items(item), key=lambda m: m.collection)
    assert "address" not in lines.changes
    assert "merchant_category" not in lines.changes


def _messages_from_items(new_item: dict[str, Any]) -> list[StreamMessage]:
    return [m for _, m in build_messages([stream_record("INSERT", new=new_item)]).messages]


def test_oversized_body_is_truncated_below_64_kib() -> None:
    huge = dataclasses.replace(LABEL, reasoning="é" * 40_000)
    (message,) = _messages("INSERT", None, huge)
    text = message.to_json()
    assert len(text) <= 64 * 1024
    body = json.loads(text)
    assert body["changes_truncated"] is True
    assert body["changes"]["reasoning"]["new"] == "é" * 1024
    assert body["changes"]["label"]["new"] == "TOTAL"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("not json", "not JSON"),
        ("[]", "JSON object"),
        ('{"schema_version": 2}', "schema_version"),
        ('{"schema_version": 1, "entity_data": []}', "entity_data"),
    ],
)
def test_invalid_bodies_are_rejected_with_the_reason(body: str, field: str) -> None:
    with pytest.raises(MessageValidationError, match=field):
        StreamMessage.from_json(body)


def test_unknown_collection_is_rejected() -> None:
    body = json.loads(_messages("INSERT", None, LABEL)[0].to_json())
    body["collection"] = "images"
    with pytest.raises(MessageValidationError, match=r"collection must be one of lines\|words"):
        StreamMessage.from_json(json.dumps(body))


# --- contract §3.5 rev 2: only what a message is built from is validated ----------------------


def test_attributes_no_message_uses_are_not_validated() -> None:
    label = make_label(IMAGE, 1, 1, 1, "TOTAL").to_item()
    label["timestamp_added"] = {"S": "not-a-time"}
    run = make_compaction_run(IMAGE, 1, RUN).to_item()
    run["created_at"] = {"S": "yesterday"}
    run["updated_at"] = {"N": "7"}

    result = build_messages([stream_record("INSERT", new=label), stream_record("INSERT", new=run)])

    assert result.unparseable == []
    runs = [m for _, m in result.messages if m.entity_type.value == "COMPACTION_RUN"]
    assert {m.collection.value: m.entity_data["delta_s3_prefix"] for m in runs} == {
        "lines": run["lines_delta_prefix"]["S"],
        "words": run["words_delta_prefix"]["S"],
    }
    labels = [m for _, m in result.messages if m.entity_type.value == "RECEIPT_WORD_LABEL"]
    assert [m.entity_data["label"] for m in labels] == ["TOTAL"]


def test_a_run_without_a_delta_prefix_is_unparseable() -> None:
    run = make_compaction_run(IMAGE, 1, RUN).to_item()
    del run["words_delta_prefix"]
    result = build_messages([stream_record("INSERT", new=run)])
    assert result.messages == []
    assert "words_delta_prefix" in str(result.unparseable[0][1])
