"""The stream records ``test_stream_side_matches_spec`` feeds to ``build_messages``: every
entity type under each event, rows the pipeline ignores (``GOOD_RECORDS``), and bad
records with the error each must be reported with (``BAD_RECORDS``)."""

from __future__ import annotations

import copy
from typing import Any

IMAGE = "3f52804b-2fad-4e00-92c8-b593da3a8ed3"
PK = f"IMAGE#{IMAGE}"
RUN = "6c1e0c7a-0d2b-4c55-b8f4-3f2a5d0b9a11"
T1 = "2026-11-28T10:15:00.000000+00:00"
T2 = "2026-11-29T08:00:00.000000+00:00"
LABEL_SK = "RECEIPT#00001#LINE#00002#WORD#00003#LABEL#TOTAL"
METADATA_SK = "RECEIPT#00004#METADATA"
RUN_SK = f"RECEIPT#00005#COMPACTION_RUN#{RUN}"
CREATED = 1_795_860_900


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
