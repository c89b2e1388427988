"""Stream record parsing: relevance from the keys first, images decoded only when needed."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, TypeGuard

from receipt_dynamo.constants import EntityType
from receipt_dynamo.entities import DynamoEntity
from receipt_dynamo.keys import IMAGE_PK_RE, validate_id, validate_label
from receipt_dynamo_stream.change_rules import CHANGE_RULES
from receipt_dynamo_stream.exceptions import UnparseableRecordError
from receipt_dynamo_stream.models import EventName, ParsedStreamRecord, is_decimal_string

ENTITY_CLASSES: Final[dict[EntityType, type[DynamoEntity]]] = {
    entity_type: rule.entity_class for entity_type, rule in CHANGE_RULES.items()
}
_EVENT_NAMES: Final = {e.value: e for e in EventName}
# One regex run decides an SK's type (the alternative that matched names it) and yields
# its ids (each alternative's groups follow its name group), instead of one run per type.
_SK_PATTERNS: Final = {entity_type: rule.sk_pattern for entity_type, rule in CHANGE_RULES.items()}
_ANY_SK: Final = re.compile(
    "|".join(f"(?P<{t.value}>{p.pattern})" for t, p in _SK_PATTERNS.items()), re.ASCII
)
# Per alternative: its entity type and, for each id, the group holding it and its name.
_ID_GROUPS: Final = {
    name: (
        EntityType(name),
        tuple(
            (index + 1 + offset, id_name)
            for offset, id_name in enumerate(CHANGE_RULES[EntityType(name)].id_names)
        ),
    )
    for name, index in _ANY_SK.groupindex.items()
}


def detect_entity_type(pk: str, sk: str) -> tuple[EntityType, dict[str, Any]] | None:
    """The entity type and ids named by a key, or None when the key is not relevant.

    Raises UnparseableRecordError when the key has a relevant shape but invalid parts
    (an id of 00000, a label outside ``[A-Z0-9_]{1,34}``).
    """
    pk_match = IMAGE_PK_RE.fullmatch(pk)
    if pk_match is None:
        return None
    shape = _ANY_SK.fullmatch(sk)
    if shape is None or shape.lastgroup is None:
        return None
    entity_type, groups = _ID_GROUPS[shape.lastgroup]
    ids: dict[str, Any] = {"image_id": pk_match.group(1)}
    try:
        for group, name in groups:
            text = shape.group(group)
            if name == "label":
                ids[name] = validate_label(text)
            elif name == "run_id":
                ids[name] = text
            else:  # five digits: only 00000 is out of range
                ids[name] = validate_id(int(text), name) if text == "00000" else int(text)
    except ValueError as error:
        raise UnparseableRecordError(f"invalid key {pk!r} / {sk!r}: {error}") from None
    return entity_type, ids


def _is_map(value: object) -> TypeGuard[Mapping[str, Any]]:
    # Lambda's records are plain dicts; the ABC check (slow) only for other mappings.
    return type(value) is dict or isinstance(value, Mapping)


def _string_key(keys: Mapping[str, Any], name: str) -> str:
    value = keys.get(name)
    text = value.get("S") if _is_map(value) else None
    if not isinstance(text, str):
        raise UnparseableRecordError(f"record lacks dynamodb.Keys.{name}.S")
    return text


def change_time_iso(value: Any) -> str | None:
    """``ApproximateCreationDateTime`` (epoch seconds from Lambda) as ISO 8601 UTC."""
    if type(value) is int:  # what Lambda delivers
        return _epoch_iso(value)
    if value is None:
        return None
    if isinstance(value, datetime):  # records read with boto3 rather than from Lambda
        return value.astimezone(UTC).isoformat()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _epoch_iso(value)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UnparseableRecordError(f"ApproximateCreationDateTime is not a time: {value!r}")
    try:
        return datetime.fromtimestamp(float(value), UTC).isoformat()
    except (ValueError, OverflowError):
        raise UnparseableRecordError(
            f"ApproximateCreationDateTime is not a time: {value!r}"
        ) from None


@functools.lru_cache(maxsize=4096)
def _epoch_iso(value: float) -> str:
    # A batch's records share a handful of creation seconds: format each once.
    try:
        return datetime.fromtimestamp(float(value), UTC).isoformat()
    except (ValueError, OverflowError, OSError):
        raise UnparseableRecordError(
            f"ApproximateCreationDateTime is not a time: {value!r}"
        ) from None


def parse_stream_record(
    record: Any, *, message_events_only: bool = False
) -> ParsedStreamRecord | None:
    """Parse a Lambda stream record; None when it is not relevant to the pipeline (its
    event or key is of no relevant shape) or, with ``message_events_only``, when its event
    makes no message for its type (``build_messages``: an OCR word written, say).

    Raises UnparseableRecordError for records missing ``eventName``, the string keys or
    a decimal ``SequenceNumber``, for relevant records without
    ``ApproximateCreationDateTime``, and for relevant keys with invalid parts. Images stay
    undecoded.
    """
    if not _is_map(record):
        raise UnparseableRecordError(f"record must be a map, got {type(record).__name__}")
    event_name = record.get("eventName")
    if not isinstance(event_name, str):
        raise UnparseableRecordError("record lacks eventName")
    dynamodb = record.get("dynamodb")
    if not _is_map(dynamodb):
        raise UnparseableRecordError("record lacks dynamodb")
    keys = dynamodb.get("Keys")
    if not _is_map(keys):
        raise UnparseableRecordError("record lacks dynamodb.Keys")
    pk = _string_key(keys, "PK")
    sk = _string_key(keys, "SK")
    sequence_number = dynamodb.get("SequenceNumber")
    if not is_decimal_string(sequence_number):
        raise UnparseableRecordError(
            f"record lacks a decimal dynamodb.SequenceNumber, got {sequence_number!r}"
        )
    event = _EVENT_NAMES.get(event_name)
    if event is None:
        return None
    detected = detect_entity_type(pk, sk)
    if detected is None:
        return None
    entity_type, ids = detected
    if message_events_only and event not in CHANGE_RULES[entity_type].events:
        # An OCR word or line written or edited: only its removal makes a message (§3.3).
        # Most of a realistic batch is such rows; they stop here, before any allocation.
        return None
    # Every message names its record's creation time (contract §5.1 rev 3 refuses a stream
    # message without one), so a relevant record must carry it.
    change_time = change_time_iso(dynamodb.get("ApproximateCreationDateTime"))
    if change_time is None:
        raise UnparseableRecordError("record lacks dynamodb.ApproximateCreationDateTime")
    return ParsedStreamRecord(
        event_name=event,
        entity_type=entity_type,
        pk=pk,
        sk=sk,
        image_id=ids.pop("image_id"),
        ids=ids,
        sequence_number=sequence_number,
        old_image=_image(dynamodb, "OldImage"),
        new_image=_image(dynamodb, "NewImage"),
        change_time=change_time,
        event_id=_optional_text(record, "eventID"),
        aws_region=_optional_text(record, "awsRegion"),
    )


def _image(dynamodb: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    image = dynamodb.get(name)
    if image is None:
        return None
    if not isinstance(image, dict):
        raise UnparseableRecordError(f"dynamodb.{name} must be a map, got {type(image).__name__}")
    return image


def _optional_text(record: Mapping[str, Any], name: str) -> str | None:
    value = record.get(name)
    return value if isinstance(value, str) else None


def parse_entity(
    image: Mapping[str, Any], entity_type: EntityType, *, pk: str, sk: str
) -> DynamoEntity:
    """Decode and validate a whole typed image as its entity (keys injected from the record)."""
    try:
        return ENTITY_CLASSES[entity_type].from_item({**image, "PK": {"S": pk}, "SK": {"S": sk}})
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise UnparseableRecordError(f"{entity_type.value} image {pk} / {sk}: {error}") from None
