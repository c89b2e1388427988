"""The oracle of ``test_stream_side_matches_spec``: contract §3 as written — the key shapes
of §3.1, the relevant fields of §3.2, the event table of §3.3 and the body and its
serialisation of §3.4 — deriving the SQS bodies a stream record must yield. It calls
nothing of the product."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

MAX_BODY = 64 * 1024


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
