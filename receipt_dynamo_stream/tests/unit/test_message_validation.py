"""Contract §5.1 (rev 3): queue bodies are validated against the rules that made their values
(§3.1 keys, §3.4 fields), and the error names the rule a body broke. Every body the stream
side or a backfill builds must still validate — checked on records of every kind, and on
records with arbitrary values in every field a body is built from."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    MessageValidationError,
    StreamMessage,
    backfill_messages,
    build_messages,
)

IMAGE = "3f52804b-2fad-4e00-92c8-b593da3a8ed3"
RUN = "6c1e0c7a-0d2b-4c55-b8f4-3f2a5d0b9a11"

# One record of every cell of the §3.3 table that produces messages.
PRODUCING_RECORDS = [
    stream_record("INSERT", new=make_metadata(IMAGE, 1)),
    stream_record("MODIFY", old=make_metadata(IMAGE, 1), new=make_metadata(IMAGE, 1, address="")),
    stream_record("REMOVE", old=make_metadata(IMAGE, 99_999)),
    stream_record("INSERT", new=make_label(IMAGE, 1, 2, 3, "GRAND_TOTAL")),
    stream_record(
        "MODIFY",
        old=make_label(IMAGE, 1, 2, 3),
        new=make_label(IMAGE, 1, 2, 3, validation_status="VALID"),
    ),
    stream_record("REMOVE", old=make_label(IMAGE, 1, 2, 3, "A" * 34)),
    stream_record("INSERT", new=make_compaction_run(IMAGE, 1, RUN)),
    stream_record("REMOVE", old=make_receipt(IMAGE, 1)),
    stream_record("REMOVE", old=make_line(IMAGE, 1, 2)),
    stream_record("REMOVE", old=make_word(IMAGE, 1, 2, 3)),
]


def _bodies() -> dict[str, dict[str, Any]]:
    """A valid body of each entity type (words collection where it goes)."""
    built = build_messages(PRODUCING_RECORDS)
    assert built.unparseable == []
    bodies: dict[str, dict[str, Any]] = {}
    for _, message in built.messages:
        bodies.setdefault(message.entity_type.value, json.loads(message.to_json()))
    return bodies


BODIES = _bodies()


def test_every_message_the_stream_side_builds_validates() -> None:
    built = build_messages(PRODUCING_RECORDS)
    assert len(built.messages) == 15  # metadata 3 x 2, labels 3, run 2, receipt 2, line, word
    for _, message in built.messages:
        assert StreamMessage.from_json(message.to_json()) == message


def test_every_backfill_message_validates() -> None:
    items = [
        make_metadata(IMAGE, 1).to_item(),
        make_label(IMAGE, 1, 2, 3).to_item(),
        make_compaction_run(IMAGE, 1, RUN).to_item(),
    ]
    messages = backfill_messages(items)
    assert len(messages) == 5
    for message in messages:
        body = json.loads(message.to_json())
        assert (body["source"], body["event_name"]) == ("backfill", "INSERT")
        assert StreamMessage.from_json(message.to_json()) == message


def _with(entity_type: str, **fields: Any) -> Callable[[], dict[str, Any]]:
    def body() -> dict[str, Any]:
        result = copy.deepcopy(BODIES[entity_type])
        for name, value in fields.items():
            if name.startswith("entity_data."):
                result["entity_data"][name.removeprefix("entity_data.")] = value
            else:
                result[name] = value
        return result

    return body


def _without(entity_type: str, name: str) -> Callable[[], dict[str, Any]]:
    def body() -> dict[str, Any]:
        result = copy.deepcopy(BODIES[entity_type])
        del result["entity_data"][name]
        return result

    return body


UPPER_IMAGE = IMAGE.upper()
V1_IMAGE = "3f52804b-2fad-1e00-92c8-b593da3a8ed3"
BACKFILL = {"source": "backfill", "sequence_number": None, "change_time": None}
BACKFILL_RUN = {**BACKFILL, "stream_record_id": None}

# (a body, the rule its error must name): every rule of §5.1, each broken alone.
INVALID = {
    "image_id not a uuid": (
        _with("COMPACTION_RUN", **{"entity_data.image_id": "NOT-A-UUID"}),
        "entity_data.image_id must be a lower-case UUID v4/v5 string, got 'NOT-A-UUID'",
    ),
    "image_id upper-cased": (
        _with("COMPACTION_RUN", **{"entity_data.image_id": UPPER_IMAGE}),
        f"entity_data.image_id must be a lower-case UUID v4/v5 string, got '{UPPER_IMAGE}'",
    ),
    "image_id a v1 uuid": (
        _with("RECEIPT_METADATA", **{"entity_data.image_id": V1_IMAGE}),
        "entity_data.image_id must be a lower-case UUID v4/v5 string",
    ),
    "receipt_id 0": (
        _with("COMPACTION_RUN", **{"entity_data.receipt_id": 0}),
        "entity_data.receipt_id must be an integer in 1..99999, got 0",
    ),
    "receipt_id negative": (
        _with("RECEIPT", **{"entity_data.receipt_id": -7}),
        "entity_data.receipt_id must be an integer in 1..99999, got -7",
    ),
    "receipt_id beyond five digits": (
        _with("RECEIPT_METADATA", **{"entity_data.receipt_id": 10**12}),
        f"entity_data.receipt_id must be an integer in 1..99999, got {10**12}",
    ),
    "receipt_id a boolean": (
        _with("RECEIPT_METADATA", **{"entity_data.receipt_id": True}),
        "entity_data.receipt_id must be an integer in 1..99999, got True",
    ),
    "receipt_id a float": (
        _with("RECEIPT_METADATA", **{"entity_data.receipt_id": 1.0}),
        "entity_data.receipt_id must be an integer in 1..99999, got 1.0",
    ),
    "line_id 100000": (
        _with("RECEIPT_LINE", **{"entity_data.line_id": 100_000}),
        "entity_data.line_id must be an integer in 1..99999, got 100000",
    ),
    "word_id 0": (
        _with("RECEIPT_WORD_LABEL", **{"entity_data.word_id": 0}),
        "entity_data.word_id must be an integer in 1..99999, got 0",
    ),
    "word_id a string": (
        _with("RECEIPT_WORD", **{"entity_data.word_id": "3"}),
        "entity_data.word_id must be an integer in 1..99999, got '3'",
    ),
    "label lower-case": (
        _with("RECEIPT_WORD_LABEL", **{"entity_data.label": "total"}),
        "entity_data.label must match [A-Z0-9_]{1,34}, got 'total'",
    ),
    "label with a key separator": (
        _with("RECEIPT_WORD_LABEL", **{"entity_data.label": "A#B"}),
        "entity_data.label must match [A-Z0-9_]{1,34}, got 'A#B'",
    ),
    "label too long": (
        _with("RECEIPT_WORD_LABEL", **{"entity_data.label": "A" * 35}),
        "entity_data.label must match [A-Z0-9_]{1,34}",
    ),
    "run_id empty": (
        _with("COMPACTION_RUN", **{"entity_data.run_id": ""}),
        "entity_data.run_id must be a non-empty string, got ''",
    ),
    "delta_s3_prefix not a string": (
        _with("COMPACTION_RUN", **{"entity_data.delta_s3_prefix": 5}),
        "entity_data.delta_s3_prefix must be a non-empty string, got 5",
    ),
    "label missing": (
        _without("RECEIPT_WORD_LABEL", "label"),
        "entity_data.label is required in a RECEIPT_WORD_LABEL message",
    ),
    "schema_version true": (
        _with("RECEIPT", schema_version=True),
        "schema_version must be the integer 1, got True",
    ),
    "schema_version 1.0": (
        _with("RECEIPT", schema_version=1.0),
        "schema_version must be the integer 1, got 1.0",
    ),
    "source unknown": (
        _with("RECEIPT", source="kafka"),
        "source must be one of dynamodb_stream|backfill|replay, got 'kafka'",
    ),
    "backfill REMOVE": (
        _with("RECEIPT", **BACKFILL_RUN),
        "a backfill message must be an INSERT, got REMOVE",
    ),
    "backfill with a sequence number": (
        _with("COMPACTION_RUN", **{**BACKFILL_RUN, "sequence_number": "17"}),
        "sequence_number of a backfill message must be null, got '17'",
    ),
    "backfill with a stream record id": (
        _with("COMPACTION_RUN", **BACKFILL),
        "stream_record_id of a backfill message must be null",
    ),
    "garbage timestamp": (
        _with("RECEIPT_WORD", timestamp="soon"),
        "timestamp must be an ISO-8601 time, got 'soon'",
    ),
    "garbage change_time": (
        _with("RECEIPT_WORD", change_time="last tuesday"),
        "change_time must be an ISO-8601 time, got 'last tuesday'",
    ),
    "stream message without change_time": (
        _with("RECEIPT_WORD", change_time=None),
        "change_time must be an ISO-8601 time, got None",
    ),
    "sequence_number not decimal": (
        _with("RECEIPT_METADATA", sequence_number="abc"),
        "sequence_number of a dynamodb_stream message must be a decimal string, got 'abc'",
    ),
    "sequence_number with non-ASCII digits": (
        _with("RECEIPT_METADATA", sequence_number="١٢٣"),
        "sequence_number of a dynamodb_stream message must be a decimal string",
    ),
    "replay without a sequence number": (
        _with("RECEIPT_METADATA", source="replay", sequence_number=None),
        "sequence_number of a replay message must be a decimal string, got None",
    ),
    "changes_truncated not a boolean": (
        _with("RECEIPT_METADATA", changes_truncated="yes"),
        "changes_truncated must be true or false, got 'yes'",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_a_body_breaking_a_rule_is_refused_naming_the_rule(case: str) -> None:
    body, rule = INVALID[case]
    with pytest.raises(MessageValidationError) as refused:
        StreamMessage.from_json(json.dumps(body()))
    assert rule in str(refused.value)


@pytest.mark.parametrize("entity_type", sorted(BODIES))
def test_the_valid_bodies_the_cases_start_from_validate(entity_type: str) -> None:
    StreamMessage.from_json(json.dumps(BODIES[entity_type]))


def test_a_backfill_insert_validates() -> None:
    body = _with("COMPACTION_RUN", **BACKFILL_RUN)()
    assert StreamMessage.from_json(json.dumps(body)).source.value == "backfill"


# --- the stream side never builds a body the compactor refuses ------------------------------

_text = st.text(max_size=12)
_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text
_attribute = st.one_of(
    st.builds(lambda s: {"S": s}, _text),
    st.builds(lambda n: {"N": str(n)}, st.integers(-(10**6), 10**6)),
    st.just({"NULL": True}),
    st.builds(lambda v: {"S": v}, st.sampled_from(["", "2026-11-28T10:15:00+00:00", "VALID"])),
)


@st.composite
def _record(draw: st.DrawFn) -> dict[str, Any]:
    """A producing record with arbitrary values in every field a body is built from: the
    record's sequence number, creation time, event id and region, the key's ids and label,
    and the image's attributes."""
    record = copy.deepcopy(draw(st.sampled_from(PRODUCING_RECORDS)))
    dynamodb = record["dynamodb"]
    dynamodb["SequenceNumber"] = draw(
        st.from_regex(r"[0-9]{1,30}", fullmatch=True) | _text | st.sampled_from(["٣", "²", "1 "])
    )
    dynamodb["ApproximateCreationDateTime"] = draw(
        st.integers(-(10**12), 10**12) | st.floats(allow_nan=True) | _json_scalars
    )
    record["eventID"] = draw(_json_scalars)
    record["awsRegion"] = draw(_json_scalars)
    sk = dynamodb["Keys"]["SK"]["S"]
    if draw(st.booleans()):
        receipt_id = draw(st.from_regex(r"[0-9]{5}", fullmatch=True))
        sk = f"RECEIPT#{receipt_id}{sk[len('RECEIPT#00000') :]}"
    if "#LABEL#" in sk and draw(st.booleans()):
        sk = sk.split("#LABEL#")[0] + "#LABEL#" + draw(_text.filter(lambda t: "#" not in t))
    if "#COMPACTION_RUN#" in sk and draw(st.booleans()):
        sk = sk.split("#COMPACTION_RUN#")[0] + "#COMPACTION_RUN#" + draw(_text)
    dynamodb["Keys"]["SK"] = {"S": sk}
    for image in ("OldImage", "NewImage"):
        if image in dynamodb:
            dynamodb[image]["SK"] = {"S": sk}
            for name in draw(st.lists(st.sampled_from(sorted(dynamodb[image])), max_size=4)):
                if name not in ("PK", "SK"):
                    dynamodb[image][name] = draw(_attribute)
    return record


@settings(max_examples=400, deadline=None)
@given(records=st.lists(_record(), min_size=1, max_size=4))
def test_no_record_builds_a_body_the_compactor_refuses(records: list[dict[str, Any]]) -> None:
    for _, message in build_messages(records).messages:
        assert StreamMessage.from_json(message.to_json()) == message
