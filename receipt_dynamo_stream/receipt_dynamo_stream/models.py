"""Data types of the stream side: parsed records, field changes and queue messages.

``StreamMessage`` owns the JSON form of contract §3.4 in both directions; the compactor parses
queue bodies with ``StreamMessage.from_json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, TypeVar

from receipt_dynamo.constants import ChromaDBCollection, EntityType
from receipt_dynamo_stream.change_rules import CHANGE_RULES
from receipt_dynamo_stream.exceptions import MessageValidationError, UnparseableRecordError

E = TypeVar("E", bound=StrEnum)

SCHEMA_VERSION: Final = 1
MAX_BODY_BYTES: Final = 64 * 1024
TRUNCATED_STRING_LENGTH: Final = 1024


class EventName(StrEnum):
    INSERT = "INSERT"
    MODIFY = "MODIFY"
    REMOVE = "REMOVE"


class MessageSource(StrEnum):
    DYNAMODB_STREAM = "dynamodb_stream"
    BACKFILL = "backfill"
    REPLAY = "replay"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """Old and new value of one ChromaDB-relevant field (empty values are None)."""

    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        return {"old": self.old, "new": self.new}


# Not frozen: one is made per relevant stream record, and a frozen dataclass's __init__
# costs ~5x more (a descriptor call per field), a measurable share of the stream budget.
@dataclass(slots=True)
class ParsedStreamRecord:
    """A relevant stream record: its event, entity type, ids and undecoded images."""

    event_name: EventName
    entity_type: EntityType
    pk: str
    sk: str
    image_id: str
    ids: dict[str, Any]
    sequence_number: str
    old_image: dict[str, Any] | None
    new_image: dict[str, Any] | None
    change_time: str | None
    event_id: str | None
    aws_region: str | None


@dataclass(frozen=True, slots=True)
class RunDeltas:
    """What a CompactionRun record contributes to messages: its ids and, per collection,
    the S3 prefix of its delta."""

    run_id: str
    image_id: str
    receipt_id: int
    delta_prefixes: dict[ChromaDBCollection, str]


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable: {value!r}")


def _dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=True, separators=(",", ":"), default=_json_default)


def _truncate(value: Any) -> Any:
    if isinstance(value, str) and len(value) > TRUNCATED_STRING_LENGTH:
        return value[:TRUNCATED_STRING_LENGTH]
    return value


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One queue message: a trigger to re-establish the invariant for the ids it names."""

    entity_type: EntityType
    event_name: EventName
    collection: ChromaDBCollection
    entity_data: dict[str, Any]
    timestamp: str
    changes: dict[str, FieldChange] = field(default_factory=dict)
    source: MessageSource = MessageSource.DYNAMODB_STREAM
    sequence_number: str | None = None
    change_time: str | None = None
    stream_record_id: str | None = None
    aws_region: str | None = None
    changes_truncated: bool = False
    schema_version: int = SCHEMA_VERSION

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "schema_version": self.schema_version,
            "source": self.source.value,
            "entity_type": self.entity_type.value,
            "event_name": self.event_name.value,
            "collection": self.collection.value,
            "entity_data": self.entity_data,
            "changes": {name: change.to_dict() for name, change in self.changes.items()},
            "sequence_number": self.sequence_number,
            "change_time": self.change_time,
            "stream_record_id": self.stream_record_id,
            "aws_region": self.aws_region,
            "timestamp": self.timestamp,
        }
        if self.changes_truncated:
            body["changes_truncated"] = True
        return body

    def to_json(self) -> str:
        """The SQS body: pure ASCII, at most 64 KiB (long change values are cut)."""
        body = self.to_body()
        text = _dumps(body)
        if len(text) <= MAX_BODY_BYTES:
            return text
        body["changes"] = {
            name: {side: _truncate(value) for side, value in change.items()}
            for name, change in body["changes"].items()
        }
        body["changes_truncated"] = True
        return _dumps(body)

    def message_attributes(self) -> dict[str, dict[str, str]]:
        return {
            name: {"DataType": "String", "StringValue": value}
            for name, value in (
                ("source", self.source.value),
                ("entity_type", self.entity_type.value),
                ("event_name", self.event_name.value),
                ("collection", self.collection.value),
            )
        }

    @classmethod
    def from_json(cls, text: str) -> StreamMessage:
        """Parse and validate a body; MessageValidationError names the offending field."""
        try:
            body = json.loads(text)
        except (TypeError, ValueError) as error:
            raise MessageValidationError(f"message body is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise MessageValidationError(f"message body must be a JSON object, got {body!r:.80}")
        return cls.from_body(body)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> StreamMessage:
        version = body.get("schema_version")
        if version != SCHEMA_VERSION:
            raise MessageValidationError(
                f"schema_version must be {SCHEMA_VERSION}, got {version!r}"
            )
        entity_data = body.get("entity_data")
        if not isinstance(entity_data, dict):
            raise MessageValidationError(f"entity_data must be an object, got {entity_data!r}")
        changes = body.get("changes", {})
        if not isinstance(changes, dict) or not all(
            isinstance(c, dict) and set(c) == {"old", "new"} for c in changes.values()
        ):
            raise MessageValidationError(
                f"changes must map field names to {{old, new}}, got {changes!r:.200}"
            )
        timestamp = body.get("timestamp")
        if not isinstance(timestamp, str):
            raise MessageValidationError(f"timestamp must be a string, got {timestamp!r}")
        entity_type = _enum(EntityType, body, "entity_type")
        event_name = _enum(EventName, body, "event_name")
        collection = _enum(ChromaDBCollection, body, "collection")
        _check_combination(entity_type, event_name, collection, entity_data)
        return cls(
            entity_type=entity_type,
            event_name=event_name,
            collection=collection,
            source=_enum(MessageSource, body, "source"),
            entity_data=entity_data,
            changes={name: FieldChange(old=c["old"], new=c["new"]) for name, c in changes.items()},
            timestamp=timestamp,
            changes_truncated=bool(body.get("changes_truncated", False)),
            sequence_number=_optional_str(body, "sequence_number"),
            change_time=_optional_str(body, "change_time"),
            stream_record_id=_optional_str(body, "stream_record_id"),
            aws_region=_optional_str(body, "aws_region"),
        )


def _check_combination(
    entity_type: EntityType,
    event_name: EventName,
    collection: ChromaDBCollection,
    entity_data: dict[str, Any],
) -> None:
    """Only messages the stream side produces are valid (the change rule table)."""
    rule = CHANGE_RULES.get(entity_type)
    if rule is None or not rule.produces(event_name, collection):
        raise MessageValidationError(
            f"no {entity_type.value} {event_name.value} message goes to the "
            f"{collection.value} collection"
        )
    for key, kind in rule.entity_data:
        value = entity_data.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or value == "":
            raise MessageValidationError(
                f"entity_data.{key} of a {entity_type.value} message must be a non-empty "
                f"{kind.__name__}, got {value!r}"
            )


def _enum(enum: type[E], body: dict[str, Any], name: str) -> E:
    value = body.get(name)
    for member in enum:
        if member.value == value:
            return member
    allowed = "|".join(m.value for m in enum)
    raise MessageValidationError(f"{name} must be one of {allowed}, got {value!r}")


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise MessageValidationError(f"{name} must be a string or null, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class BuildResult:
    """Messages built from a batch of stream records, keyed by source SequenceNumber."""

    messages: list[tuple[str, StreamMessage]]
    unparseable: list[tuple[Any, UnparseableRecordError]]
    irrelevant: int


@dataclass(frozen=True, slots=True)
class FailedMessage:
    sequence_number: str | None
    message: StreamMessage
    error: str


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What reached the queues, what did not (with its source SequenceNumber), and tries."""

    published: list[tuple[str | None, StreamMessage]]
    failed: list[FailedMessage]
    attempts: int

    @property
    def failed_sequence_numbers(self) -> set[str]:
        return {f.sequence_number for f in self.failed if f.sequence_number is not None}
