"""The stream side, record by record, against contract §3 derived independently.

Every kind of record (each entity type under each event, rows the pipeline ignores, bad
records) goes through ``build_messages``. Each message's SQS body must equal, byte for
byte, the body this test derives from the SPEC text alone (§3.1 key shapes, §3.2 relevant
fields, §3.3 event table, §3.4 body and serialisation); the oracle calls nothing of the
product. Bad records are reported unparseable with an error naming what is wrong, and cost
the good records of their batch nothing. Last, the one-pass reading of relevant fields is
checked against the two-pass reading for every form a raw value can take.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stream_contract_oracle import MAX_BODY, expected_bodies
from stream_record_cases import BAD_RECORDS, GOOD_RECORDS

from receipt_dynamo.constants import EntityType
from receipt_dynamo_stream import CHROMADB_RELEVANT_FIELDS, UnparseableRecordError, build_messages
from receipt_dynamo_stream.change_detection.detector import (
    diff_relevant_values,
    relevant_changes,
    relevant_values_from_image,
)

# --- tests ---------------------------------------------------------------------------------------


def _built_at(timestamps: set[str], before: datetime, after: datetime) -> str:
    """The batch's build time (§3.4 ``timestamp``): one per batch, canonical, in range."""
    (timestamp,) = timestamps
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", timestamp)
    assert before <= datetime.fromisoformat(timestamp) <= after
    return timestamp


def _attributes(collection: str, body: str) -> dict[str, dict[str, str]]:
    parsed = json.loads(body)
    return {
        "source": {"DataType": "String", "StringValue": "dynamodb_stream"},
        "entity_type": {"DataType": "String", "StringValue": parsed["entity_type"]},
        "event_name": {"DataType": "String", "StringValue": parsed["event_name"]},
        "collection": {"DataType": "String", "StringValue": collection},
    }


@pytest.mark.parametrize("name", list(GOOD_RECORDS))
def test_each_record_yields_the_contracts_bodies(name: str) -> None:
    stream_record = GOOD_RECORDS[name]
    before = datetime.now(UTC)
    result = build_messages([stream_record])
    after = datetime.now(UTC)

    assert result.unparseable == []
    timestamps = {message.timestamp for _, message in result.messages}
    built_at = _built_at(timestamps, before, after) if timestamps else ""
    expected = expected_bodies(stream_record, built_at)
    assert [(m.collection.value, m.to_json()) for _, m in result.messages] == expected
    assert [m.message_attributes() for _, m in result.messages] == [
        _attributes(collection, body) for collection, body in expected
    ]
    sequence = stream_record["dynamodb"]["SequenceNumber"]
    assert [number for number, _ in result.messages] == [sequence] * len(expected)
    assert result.irrelevant == (0 if expected else 1)


def test_the_oracle_sees_every_kind_of_outcome() -> None:
    """The records above cover messages to one and to two queues, and records that yield
    none; bodies above 64 KiB are cut."""
    bodies = {name: expected_bodies(r, "t") for name, r in GOOD_RECORDS.items()}
    assert {len(b) for b in bodies.values()} == {0, 1, 2}
    assert "changes_truncated" in bodies["label remove, huge reasoning"][0][1]
    assert all(len(body) <= MAX_BODY for found in bodies.values() for _, body in found)


@pytest.mark.parametrize(("bad", "error"), BAD_RECORDS, ids=[e[:50] for _, e in BAD_RECORDS])
def test_a_bad_record_is_reported_with_what_is_wrong(bad: dict[str, Any], error: str) -> None:
    result = build_messages([bad])
    assert result.messages == []
    ((reported, raised),) = result.unparseable
    assert reported is bad
    assert error in str(raised)


def test_a_batch_of_every_kind_with_bad_records_among_them() -> None:
    """Records are independent: a batch yields each good record's bodies in order, paired
    with its sequence number, and each bad record once, with its error."""
    good = list(GOOD_RECORDS.values())
    bad = [b for b, _ in BAD_RECORDS]
    batch: list[dict[str, Any]] = []
    for index, stream_record in enumerate(good):
        batch.append(stream_record)
        if index < len(bad):
            batch.append(bad[index])
    batch += bad[len(good) :]
    before = datetime.now(UTC)
    result = build_messages(batch)
    after = datetime.now(UTC)

    built_at = _built_at({m.timestamp for _, m in result.messages}, before, after)
    expected = [
        (r["dynamodb"]["SequenceNumber"], body)
        for r in good
        for _, body in expected_bodies(r, built_at)
    ]
    assert [(number, m.to_json()) for number, m in result.messages] == expected
    assert [r for r, _ in result.unparseable] == bad
    assert [str(e) for _, e in result.unparseable] == [
        str(build_messages([b]).unparseable[0][1]) for b in bad
    ]
    assert result.irrelevant == sum(1 for r in good if not expected_bodies(r, built_at))


# --- the one-pass reading of relevant fields is the two-pass reading ---------------------------

RAW_VALUES = st.one_of(
    st.sampled_from(
        [
            {"S": ""},
            {"S": "NONE"},
            {"S": "VALID"},
            {"S": "MAYBE"},
            {"NULL": True},
            {"NULL": False},
            {"N": "5"},
            {"BOOL": True},
            {"M": {"a": {"S": "b"}}},
            {"L": []},
            {"Q": "x"},
            {"S": None},
            {"S": 7},
            {},
            {"S": "a", "N": "1"},
            "plain text",
        ]
    ),
    st.text(max_size=3).map(lambda text: {"S": text}),
)


def _image_of(fields: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(fields), RAW_VALUES, max_size=len(fields))


def _outcome(read: Any) -> Any:
    try:
        return read()
    except UnparseableRecordError as error:
        return f"error: {error}"


@settings(max_examples=400, deadline=None)
@given(
    entity_type=st.sampled_from([EntityType.RECEIPT_WORD_LABEL, EntityType.RECEIPT_METADATA]),
    data=st.data(),
)
def test_one_pass_changes_equal_the_two_pass_diff(entity_type: EntityType, data: Any) -> None:
    """Values, emptiness, defaults and errors (the old image's first) are the same whichever
    way the fields are read; the fast path only takes the forms nothing can refuse."""
    fields = CHROMADB_RELEVANT_FIELDS[entity_type]
    old = data.draw(st.none() | _image_of(fields))
    new = data.draw(st.none() | _image_of(fields))
    key = {"receipt_id": 1, "label": "TOTAL"} if "label" in fields else {"receipt_id": 1}

    def two_pass() -> dict[str, Any]:
        before = None if old is None else relevant_values_from_image(entity_type, old, key)
        after = None if new is None else relevant_values_from_image(entity_type, new, key)
        return diff_relevant_values(before, after)

    assert _outcome(lambda: relevant_changes(entity_type, old, new, key)) == _outcome(two_pass)
