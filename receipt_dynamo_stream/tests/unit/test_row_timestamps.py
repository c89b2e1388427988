"""Contract §3.2 (rev 3): a metadata row's ``timestamp`` and a label row's ``timestamp_added``
are relevant fields. They feed ``merchant_updated_at``, ``label_validated_at`` and
``labels_updated_at`` (§4), so a MODIFY changing only them produces a message; they are
compared as text and not validated by the stream.

Expected messages are written out from the contract's tables: metadata goes to lines and
words, labels to words; a MODIFY's ``changes`` hold exactly the changed fields."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from receipt_dynamo import DynamoEntity
from receipt_dynamo.constants import EntityType
from receipt_dynamo.entities import Item
from receipt_dynamo.testing import make_label, make_metadata, stream_record
from receipt_dynamo_stream import (
    StreamMessage,
    UnparseableRecordError,
    build_messages,
    get_chromadb_relevant_changes,
)
from receipt_dynamo_stream.change_detection.detector import relevant_values_from_image

IMAGE = "3f52804b-2fad-4e00-92c8-b593da3a8ed3"
EARLIER = "2026-11-28T10:15:00.000000+00:00"
LATER = "2026-11-29T08:00:00.000000+00:00"
METADATA = make_metadata(IMAGE, 1, timestamp=EARLIER)
LABEL = make_label(IMAGE, 1, 2, 3, "TOTAL", timestamp_added=EARLIER)


def _build(
    event: str, old: DynamoEntity | Item | None, new: DynamoEntity | Item | None
) -> list[StreamMessage]:
    result = build_messages([stream_record(event, old=old, new=new)])
    assert result.unparseable == []
    return sorted((m for _, m in result.messages), key=lambda m: m.collection.value)


def _changes(messages: list[StreamMessage]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (m.collection.value, {name: (c.old, c.new) for name, c in m.changes.items()})
        for m in messages
    ]


def test_a_metadata_modify_changing_only_its_timestamp_reaches_both_collections() -> None:
    messages = _build("MODIFY", METADATA, dataclasses.replace(METADATA, timestamp=LATER))
    assert _changes(messages) == [
        ("lines", {"timestamp": (EARLIER, LATER)}),
        ("words", {"timestamp": (EARLIER, LATER)}),
    ]


def test_a_label_modify_changing_only_timestamp_added_reaches_words() -> None:
    messages = _build("MODIFY", LABEL, dataclasses.replace(LABEL, timestamp_added=LATER))
    assert _changes(messages) == [("words", {"timestamp_added": (EARLIER, LATER)})]
    assert messages[0].entity_data == {
        "image_id": IMAGE,
        "receipt_id": 1,
        "line_id": 2,
        "word_id": 3,
        "label": "TOTAL",
    }


def test_a_rewrite_with_the_same_timestamps_produces_nothing() -> None:
    assert _build("MODIFY", METADATA, METADATA) == []
    assert _build("MODIFY", LABEL, LABEL) == []


def test_timestamps_are_compared_as_text_not_as_instants() -> None:
    # The same instant written another way is a different value (§3.2: "compared as text").
    same_instant = "2026-11-28T10:15:00+00:00"
    messages = _build("MODIFY", LABEL, dataclasses.replace(LABEL, timestamp_added=same_instant))
    assert _changes(messages) == [("words", {"timestamp_added": (EARLIER, same_instant)})]


@pytest.mark.parametrize(
    ("stored", "text"),
    [
        ({"S": "yesterday"}, "yesterday"),
        ({"N": "7"}, "7"),
        ({"S": ""}, None),
        ({"NULL": True}, None),
    ],
)
def test_a_malformed_timestamp_still_makes_its_message(
    stored: dict[str, Any], text: str | None
) -> None:
    new_item = LABEL.to_item()
    new_item["timestamp_added"] = stored
    messages = _build("MODIFY", LABEL, new_item)
    assert _changes(messages) == [("words", {"timestamp_added": (EARLIER, text)})]
    metadata_item = METADATA.to_item()
    metadata_item["timestamp"] = stored
    messages = _build("MODIFY", metadata_item, METADATA)
    assert _changes(messages) == [
        ("lines", {"timestamp": (text, EARLIER)}),
        ("words", {"timestamp": (text, EARLIER)}),
    ]


def test_inserts_and_removes_carry_the_timestamp_like_every_non_empty_field() -> None:
    (insert,) = _build("INSERT", None, LABEL)
    assert insert.changes["timestamp_added"].old is None
    assert insert.changes["timestamp_added"].new == EARLIER
    lines, words = _build("REMOVE", METADATA, None)
    assert lines.changes["timestamp"].old == words.changes["timestamp"].old == EARLIER
    assert lines.changes["timestamp"].new is None


def test_entity_change_detection_names_the_timestamps() -> None:
    later_metadata = dataclasses.replace(METADATA, timestamp=LATER)
    later_label = dataclasses.replace(LABEL, timestamp_added=LATER)
    metadata_changes = get_chromadb_relevant_changes("RECEIPT_METADATA", METADATA, later_metadata)
    label_changes = get_chromadb_relevant_changes("RECEIPT_WORD_LABEL", LABEL, later_label)
    assert {n: (c.old, c.new) for n, c in metadata_changes.items()} == {
        "timestamp": (EARLIER, LATER)
    }
    assert {n: (c.old, c.new) for n, c in label_changes.items()} == {
        "timestamp_added": (EARLIER, LATER)
    }


def test_messages_with_a_malformed_timestamp_are_valid_bodies() -> None:
    new_item = LABEL.to_item()
    new_item["timestamp_added"] = {"N": "7"}
    (message,) = _build("MODIFY", LABEL, new_item)
    assert StreamMessage.from_json(message.to_json()) == message


def test_a_map_where_a_string_belongs_is_named_readably() -> None:
    """An operator reads the bad value as the table holds it, not as a Python repr."""
    image = {"merchant_name": {"M": {"a": {"S": "b"}}}}
    with pytest.raises(UnparseableRecordError) as caught:
        relevant_values_from_image(EntityType.RECEIPT_METADATA, image, {})
    assert str(caught.value) == 'merchant_name must be a string, got a map {"a": "b"}'
