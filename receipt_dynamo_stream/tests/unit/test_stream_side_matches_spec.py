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

import copy
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receipt_dynamo.constants import EntityType
from receipt_dynamo_stream import CHROMADB_RELEVANT_FIELDS, UnparseableRecordError, build_messages
from receipt_dynamo_stream.change_detection.detector import (
    diff_relevant_values,
    relevant_changes,
    relevant_values_from_image,
)

IMAGE = "3f52804b-2fad-4e00-92c8-b593da3a8ed3"
PK = f"IMAGE#{IMAGE}"
RUN = "6c1e0c7a-0d2b-4c55-b8f4-3f2a5d0b9a11"
T1 = "2026-11-28T10:15:00.000000+00:00"
T2 = "2026-11-29T08:00:00.000000+00:00"
LABEL_SK = "RECEIPT#00001#LINE#00002#WORD#00003#LABEL#TOTAL"
METADATA_SK = "RECEIPT#00004#METADATA"
RUN_SK = f"RECEIPT#00005#COMPACTION_RUN#{RUN}"
CREATED = 1_795_860_900
MAX_BODY = 64 * 1024

# --- the oracle: contract §3 as written -------------------------------------------------------

PK_SHAPE = re.compile(
    r"IMAGE#([0-9a-f]{8}-[0-9a-f]{4}-[45][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})", re.ASCII
)
# §3.1: SK pattern, entity type, names of its parts.
SK_SHAPES = (
    (r"RECEIPT#(\d{5})", "RECEIPT", ("receipt_id",)),
    (r"RECEIPT#(\d{5})#LINE#(\d{5})", "RECEIPT_LINE", ("receipt_id", "line_id")),
    (
        r"RECEIPT#(\d{5})#LINE#(\d{5})#WORD#(\d{5})",
        "RECEIPT_WORD",
        ("receipt_id", "line_id", "word_id"),
    ),
    (
        r"RECEIPT#(\d{5})#LINE#(\d{5})#WORD#(\d{5})#LABEL#([^#]+)",
        "RECEIPT_WORD_LABEL",
        ("receipt_id", "line_id", "word_id", "label"),
    ),
    (r"RECEIPT#(\d{5})#METADATA", "RECEIPT_METADATA", ("receipt_id",)),
    (r"RECEIPT#(\d{5})#COMPACTION_RUN#([^#]+)", "COMPACTION_RUN", ("receipt_id", "run_id")),
)
ALL = ("INSERT", "MODIFY", "REMOVE")
# §3.3: events that produce messages, and their collections in the table's order.
EVENT_TABLE = {
    "RECEIPT_METADATA": (ALL, ("lines", "words")),
    "RECEIPT_WORD_LABEL": (ALL, ("words",)),
    "COMPACTION_RUN": (("INSERT",), ("lines", "words")),
    "RECEIPT": (("REMOVE",), ("lines", "words")),
    "RECEIPT_LINE": (("REMOVE",), ("lines",)),
    "RECEIPT_WORD": (("REMOVE",), ("words",)),
}
# §3.2 with the rev 3 timestamps, in the contract's order.
RELEVANT = {
    "RECEIPT_METADATA": (
        "canonical_merchant_name",
        "merchant_name",
        "merchant_category",
        "address",
        "phone_number",
        "place_id",
        "timestamp",
    ),
    "RECEIPT_WORD_LABEL": (
        "label",
        "reasoning",
        "validation_status",
        "label_proposed_by",
        "label_consolidated_from",
        "timestamp_added",
    ),
}
# §3.4: entity_data keys by type, in order.
ENTITY_DATA = ("image_id", "receipt_id", "line_id", "word_id", "label")


def _relevant_value(image: dict[str, Any], name: str, key: dict[str, Any]) -> str | None:
    if name == "label":  # §2: the label name comes from the SK
        return str(key["label"])
    raw = image.get(name)
    if raw is None or raw == {"NULL": True}:
        value = None
    elif "S" in raw:
        value = raw["S"]
    elif "N" in raw and name in ("timestamp", "timestamp_added"):
        value = raw["N"]  # compared as text, not validated (§3.2 rev 3)
    else:
        raise AssertionError(f"the oracle reads strings, NULL and numeric timestamps: {raw}")
    if name == "validation_status":
        return value or "NONE"  # absent -> NONE (§2)
    return value or None  # "" and None are both empty


def _truncated(body: dict[str, Any]) -> str:
    def cut(value: Any) -> Any:
        return value[:1024] if isinstance(value, str) and len(value) > 1024 else value

    body["changes"] = {
        name: {side: cut(value) for side, value in change.items()}
        for name, change in body["changes"].items()
    }
    body["changes_truncated"] = True
    return json.dumps(body, ensure_ascii=True, separators=(",", ":"))


def _shape(sk: str) -> tuple[str, dict[str, str]] | None:
    """The entity type an SK names and its parts, by the first §3.1 pattern it matches."""
    for pattern, entity_type, names in SK_SHAPES:
        found = re.fullmatch(pattern, sk, re.ASCII)
        if found is not None:
            return entity_type, dict(zip(names, found.groups(), strict=True))
    return None


def expected_bodies(record: dict[str, Any], built_at: str) -> list[tuple[str, str]]:
    """(collection, SQS body) for each message the contract says the record produces."""
    event = record["eventName"]
    dynamodb = record["dynamodb"]
    pk_match = PK_SHAPE.fullmatch(dynamodb["Keys"]["PK"]["S"])
    if event not in ALL or pk_match is None:
        return []
    shape = _shape(dynamodb["Keys"]["SK"]["S"])
    if shape is None:
        return []
    entity_type, parts = shape
    events, collections = EVENT_TABLE[entity_type]
    if event not in events:
        return []
    key: dict[str, Any] = {"image_id": pk_match.group(1)}
    for name, text in parts.items():
        key[name] = text if name in ("label", "run_id") else int(text)
    changes: dict[str, dict[str, str | None]] = {}
    if entity_type in RELEVANT:
        fields = RELEVANT[entity_type]
        old = {} if event == "INSERT" else dynamodb["OldImage"]
        new = {} if event == "REMOVE" else dynamodb["NewImage"]
        for name in fields:
            before = None if event == "INSERT" else _relevant_value(old, name, key)
            after = None if event == "REMOVE" else _relevant_value(new, name, key)
            if before != after:
                changes[name] = {"old": before, "new": after}
        if event == "MODIFY" and not changes:
            return []
    bodies = []
    for collection in collections:
        if entity_type == "COMPACTION_RUN":
            prefix = dynamodb["NewImage"][f"{collection}_delta_prefix"]["S"]
            entity_data = {
                "run_id": key["run_id"],
                "image_id": key["image_id"],
                "receipt_id": key["receipt_id"],
                "delta_s3_prefix": prefix,
            }
        else:
            entity_data = {name: key[name] for name in ENTITY_DATA if name in key}
        body = {
            "schema_version": 1,
            "source": "dynamodb_stream",
            "entity_type": entity_type,
            "event_name": event,
            "collection": collection,
            "entity_data": entity_data,
            "changes": changes,
            "sequence_number": dynamodb["SequenceNumber"],
            "change_time": datetime.fromtimestamp(
                dynamodb["ApproximateCreationDateTime"], UTC
            ).isoformat(),
            "stream_record_id": record.get("eventID"),
            "aws_region": record.get("awsRegion"),
            "timestamp": built_at,
        }
        text = json.dumps(body, ensure_ascii=True, separators=(",", ":"))
        bodies.append((collection, text if len(text) <= MAX_BODY else _truncated(body)))
    return bodies


# --- records -----------------------------------------------------------------------------------

_sequence = iter(range(4_421_584_500_000_000_017_450_439_091, 10**30))


def record(
    event: str,
    sk: str,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    pk: str = PK,
) -> dict[str, Any]:
    sequence = str(next(_sequence))
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": CREATED,
        "Keys": {"PK": {"S": pk}, "SK": {"S": sk}},
        "SequenceNumber": sequence,
        "SizeBytes": 300,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    for name, image in (("OldImage", old), ("NewImage", new)):
        if image is not None:
            dynamodb[name] = {"PK": {"S": pk}, "SK": {"S": sk}, **image}
    return {
        "eventID": f"evt-{sequence[-8:]}",
        "eventName": event,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "dynamodb": dynamodb,
    }


def _with(item: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy with attributes replaced (a typed value), or removed (None)."""
    result = copy.deepcopy(item)
    for name, value in changes.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def S(text: str) -> dict[str, str]:
    return {"S": text}


LABEL = {
    "TYPE": S("RECEIPT_WORD_LABEL"),
    "reasoning": S("model said so"),
    "timestamp_added": S(T1),
    "validation_status": S("PENDING"),
    "label_proposed_by": S("tests"),
    "GSI1PK": S("LABEL#TOTAL".ljust(40, "_")),
    "GSI1SK": S(f"IMAGE#{IMAGE}#RECEIPT#00001#LINE#00002#WORD#00003"),
}
METADATA = {
    "TYPE": S("RECEIPT_METADATA"),
    "place_id": S("ChIJ-place"),
    "merchant_name": S("Corner Market"),
    "merchant_category": S("grocery"),
    "address": S("1 Main St"),
    "phone_number": S("555-0100"),
    "matched_fields": {"SS": ["name", "phone"]},
    "validated_by": S("tests"),
    "timestamp": S(T1),
    "validation_status": S("MATCHED"),
    "reasoning": S("looked it up"),
}
RUN_ROW = {
    "TYPE": S("COMPACTION_RUN"),
    "run_id": S(RUN),
    "image_id": S(IMAGE),
    "receipt_id": {"N": "5"},
    "lines_delta_prefix": S(f"lines/delta/{RUN}/"),
    "words_delta_prefix": S(f"words/delta/{RUN}/"),
    "lines_state": S("PENDING"),
    "words_state": S("PENDING"),
    "created_at": S(T1),
}
GEOMETRY = {
    "text": S("TOTAL"),
    "bounding_box": {
        "M": {"x": {"N": "0.1"}, "y": {"N": "0.8"}, "width": {"N": "0.8"}, "height": {"N": "0.1"}}
    },
    "confidence": {"N": "0.97"},
    "angle_degrees": {"N": "0.5"},
    "is_noise": {"BOOL": False},
}
RECEIPT_SK, LINE_SK, WORD_SK = "RECEIPT#00001", "RECEIPT#00001#LINE#00002", LABEL_SK[:35]
LETTER_SK = f"{WORD_SK}#LETTER#00001"
RECEIPT_ROW = {"TYPE": S("RECEIPT"), "width": {"N": "1000"}, "raw_s3_key": S("raw/1.png")}
LINE_ROW = {"TYPE": S("RECEIPT_LINE"), **GEOMETRY}
WORD_ROW = {"TYPE": S("RECEIPT_WORD"), **GEOMETRY, "extracted_data": {"M": {"type": S("total")}}}
LETTER_ROW = {"TYPE": S("RECEIPT_LETTER"), **GEOMETRY, "text": S("T")}
HUGE = "é" * 40_000  # 240,000 characters once escaped to ASCII

GOOD_RECORDS = {
    # RECEIPT_WORD_LABEL
    "label insert": record("INSERT", LABEL_SK, new=LABEL),
    "label insert, no status, NULL reasoning": record(
        "INSERT",
        LABEL_SK,
        new=_with(LABEL, validation_status=None, reasoning={"NULL": True}),
    ),
    "label modify, status": record(
        "MODIFY", LABEL_SK, old=LABEL, new=_with(LABEL, validation_status=S("VALID"))
    ),
    "label modify, several fields": record(
        "MODIFY",
        LABEL_SK,
        old=LABEL,
        new=_with(
            LABEL,
            validation_status=S("INVALID"),
            reasoning=S('Ünïcode 東京 "quoted" \\ done'),
            label_consolidated_from=S("TAX"),
            label_proposed_by=S(""),
        ),
    ),
    "label modify, timestamp only": record(
        "MODIFY", LABEL_SK, old=LABEL, new=_with(LABEL, timestamp_added=S(T2))
    ),
    "label modify, numeric timestamp": record(
        "MODIFY", LABEL_SK, old=LABEL, new=_with(LABEL, timestamp_added={"N": "1795860900"})
    ),
    "label modify, malformed timestamp": record(
        "MODIFY", LABEL_SK, old=LABEL, new=_with(LABEL, timestamp_added=S("yesterday"))
    ),
    "label modify, nothing relevant": record(
        "MODIFY", LABEL_SK, old=LABEL, new=_with(LABEL, GSI1PK=S("x"))
    ),
    "label modify, absent status is NONE": record(
        "MODIFY",
        LABEL_SK,
        old=_with(LABEL, validation_status=S("NONE")),
        new=_with(LABEL, validation_status=None),
    ),
    "label modify, empty is NULL": record(
        "MODIFY",
        LABEL_SK,
        old=_with(LABEL, reasoning=S("")),
        new=_with(LABEL, reasoning={"NULL": True}),
    ),
    "label remove": record("REMOVE", LABEL_SK, old=LABEL),
    "label remove, huge reasoning": record("REMOVE", LABEL_SK, old=_with(LABEL, reasoning=S(HUGE))),
    "label of another name": record(
        "INSERT", LABEL_SK.replace("TOTAL", "GRAND_TOTAL_2"), new=LABEL
    ),
    # RECEIPT_METADATA
    "metadata insert": record("INSERT", METADATA_SK, new=METADATA),
    "metadata insert, empty and NULL fields": record(
        "INSERT",
        METADATA_SK,
        new=_with(METADATA, address=S(""), phone_number={"NULL": True}, merchant_category=None),
    ),
    "metadata modify, canonical name": record(
        "MODIFY",
        METADATA_SK,
        old=METADATA,
        new=_with(METADATA, canonical_merchant_name=S("Corner Market Inc")),
    ),
    "metadata modify, timestamp only": record(
        "MODIFY", METADATA_SK, old=METADATA, new=_with(METADATA, timestamp=S(T2))
    ),
    "metadata modify, irrelevant fields": record(
        "MODIFY",
        METADATA_SK,
        old=METADATA,
        new=_with(METADATA, reasoning=S("again"), validation_status=S("NO_MATCH")),
    ),
    "metadata modify, huge address": record(
        "MODIFY", METADATA_SK, old=METADATA, new=_with(METADATA, address=S(HUGE))
    ),
    "metadata remove": record("REMOVE", METADATA_SK, old=METADATA),
    # COMPACTION_RUN
    "run insert": record("INSERT", RUN_SK, new=RUN_ROW),
    "run modify": record(
        "MODIFY", RUN_SK, old=RUN_ROW, new=_with(RUN_ROW, lines_state=S("COMPLETED"))
    ),
    "run remove": record("REMOVE", RUN_SK, old=RUN_ROW),
    # RECEIPT, RECEIPT_LINE, RECEIPT_WORD
    "receipt insert": record("INSERT", RECEIPT_SK, new=RECEIPT_ROW),
    "receipt modify": record("MODIFY", RECEIPT_SK, old=RECEIPT_ROW, new=RECEIPT_ROW),
    "receipt remove": record("REMOVE", RECEIPT_SK, old=RECEIPT_ROW),
    "line insert": record("INSERT", LINE_SK, new=LINE_ROW),
    "line modify": record("MODIFY", LINE_SK, old=LINE_ROW, new=LINE_ROW),
    "line remove": record("REMOVE", LINE_SK, old=LINE_ROW),
    "word insert": record("INSERT", WORD_SK, new=WORD_ROW),
    "word modify, undecodable images": record(
        "MODIFY", WORD_SK, old={"text": {"Q": 1}}, new={"text": {"Q": 2}}
    ),
    "word remove": record("REMOVE", WORD_SK, old=WORD_ROW),
    # Rows the pipeline ignores.
    "letter insert": record("INSERT", LETTER_SK, new=LETTER_ROW),
    "letter modify": record("MODIFY", LETTER_SK, old=LETTER_ROW, new=LETTER_ROW),
    "letter remove": record("REMOVE", LETTER_SK, old=LETTER_ROW),
    "label name with a #": record("INSERT", f"{LABEL_SK}#X", new=LABEL),
    "upper-case image id": record("REMOVE", RECEIPT_SK, old=RECEIPT_ROW, pk=PK.upper()),
    "lock row": record("MODIFY", "LOCK", old={}, new={}, pk="LOCK#words#chroma-words-compaction"),
}


def _bad(event: str, sk: str, **parts: Any) -> dict[str, Any]:
    """A relevant record, then its top-level or ``dynamodb`` parts replaced or removed."""
    result = record(
        event,
        sk,
        old=None if event == "INSERT" else LABEL,
        new=None if event == "REMOVE" else LABEL,
    )
    for name, value in parts.items():
        target = result["dynamodb"] if name[0].isupper() else result
        if value is None:
            target.pop(name)
        else:
            target[name] = value
    return result


BAD_RECORDS = [
    (
        record("INSERT", LABEL_SK.replace("TOTAL", "total"), new=LABEL),
        "invalid key 'IMAGE#3f52804b-2fad-4e00-92c8-b593da3a8ed3' / "
        "'RECEIPT#00001#LINE#00002#WORD#00003#LABEL#total': "
        "label must match [A-Z0-9_]{1,34}, got 'total'",
    ),
    (
        record("INSERT", LABEL_SK.replace("TOTAL", "A" * 35), new=LABEL),
        f"label must match [A-Z0-9_]{{1,34}}, got '{'A' * 35}'",
    ),
    (
        record("REMOVE", "RECEIPT#00000#LINE#00002", old=LINE_ROW),
        "receipt_id must be an integer in 1..99999, got 0",
    ),
    (
        record("REMOVE", "RECEIPT#00001#LINE#00002#WORD#00000", old=WORD_ROW),
        "word_id must be an integer in 1..99999, got 0",
    ),
    (_bad("INSERT", LABEL_SK, SequenceNumber=None), "lacks a decimal dynamodb.SequenceNumber"),
    (
        _bad("INSERT", LABEL_SK, SequenceNumber="١٢٣"),
        "record lacks a decimal dynamodb.SequenceNumber, got '١٢٣'",
    ),
    (
        _bad("INSERT", LABEL_SK, ApproximateCreationDateTime=None),
        "record lacks dynamodb.ApproximateCreationDateTime",
    ),
    (
        _bad("INSERT", LABEL_SK, ApproximateCreationDateTime="soon"),
        "ApproximateCreationDateTime is not a time: 'soon'",
    ),
    (_bad("INSERT", LABEL_SK, eventName=None), "record lacks eventName"),
    (
        _bad("INSERT", LABEL_SK, Keys={"PK": {"S": PK}}),
        "record lacks dynamodb.Keys.SK.S",
    ),
    (_bad("INSERT", LABEL_SK, NewImage=[LABEL]), "dynamodb.NewImage must be a map, got list"),
    (
        _bad("MODIFY", LABEL_SK, OldImage=None),
        f"RECEIPT_WORD_LABEL MODIFY record lacks dynamodb.OldImage ({PK} / {LABEL_SK})",
    ),
    (
        _bad("MODIFY", LABEL_SK, NewImage=None),
        f"RECEIPT_WORD_LABEL MODIFY record lacks dynamodb.NewImage ({PK} / {LABEL_SK})",
    ),
    (
        # The old image is read first: its bad value is the error, not the missing new one.
        record("MODIFY", LABEL_SK, old=_with(LABEL, label_proposed_by={"N": "1"})),
        "label_proposed_by must be a string, got 1",
    ),
    (
        record("MODIFY", METADATA_SK, old=METADATA, new=_with(METADATA, place_id={"L": []})),
        "place_id must be a string, got a list []",
    ),
    (
        record("INSERT", LABEL_SK, new=_with(LABEL, validation_status=S("MAYBE"))),
        'validation_status is not a status: "MAYBE"',
    ),
    (
        record("INSERT", LABEL_SK, new=_with(LABEL, validation_status={"M": {"a": S("b")}})),
        'validation_status is not a status: a map {"a": "b"}',
    ),
    (
        # The same bad value on both sides of a MODIFY is still a bad value.
        record(
            "MODIFY",
            LABEL_SK,
            old=_with(LABEL, validation_status=S("MAYBE")),
            new=_with(LABEL, validation_status=S("MAYBE")),
        ),
        'validation_status is not a status: "MAYBE"',
    ),
    (
        record("INSERT", METADATA_SK, new=_with(METADATA, merchant_name={"N": "5"})),
        "merchant_name must be a string, got 5",
    ),
    (
        record(
            "MODIFY",
            LABEL_SK,
            old=LABEL,
            new=_with(LABEL, reasoning={"M": {"a": S("b")}}),
        ),
        'reasoning must be a string, got a map {"a": "b"}',
    ),
    (
        record("REMOVE", LABEL_SK, old=_with(LABEL, reasoning={"Q": "x"})),
        "reasoning cannot be decoded",
    ),
    (
        record("INSERT", RUN_SK, new=_with(RUN_ROW, words_delta_prefix=None)),
        f"CompactionRun {PK} / {RUN_SK}: words_delta_prefix must be a non-empty string, got None",
    ),
    (
        record("INSERT", RUN_SK, new=_with(RUN_ROW, lines_delta_prefix=S(""))),
        "lines_delta_prefix must be a non-empty string",
    ),
]


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
