"""Data types of the stream side: parsed records, field changes and queue messages.

``StreamMessage`` owns the JSON form of contract §3.4 in both directions; the compactor parses
queue bodies with ``StreamMessage.from_json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, TypeGuard, TypeVar

from receipt_dynamo.constants import ChromaDBCollection, EntityType
from receipt_dynamo.keys import validate_id, validate_image_id, validate_label
from receipt_dynamo_stream.change_rules import CHANGE_RULES
from receipt_dynamo_stream.exceptions import MessageValidationError, UnparseableRecordError

E = TypeVar("E", bound=StrEnum)

SCHEMA_VERSION: Final = 1
MAX_BODY_BYTES: Final = 64 * 1024
TRUNCATED_STRING_LENGTH: Final = 1024


def is_decimal_string(value: object) -> TypeGuard[str]:
    """A non-empty string of the ASCII digits 0-9 (a stream sequence number, §3.4):
    ``str.isdigit`` alone also accepts digits such as "٣" and "²"."""
    return isinstance(value, str) and value.isascii() and value.isdigit()


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


# One encoder for every body (``json.dumps`` with options builds one per call). A body is
# a tree of fresh dicts and scalars, never cyclic: the per-container cycle check is skipped.
_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=True, separators=(",", ":"), default=_json_default, check_circular=False
)


def _dumps(body: dict[str, Any]) -> str:
    return _ENCODER.encode(body)


QueueAttributes = Mapping[str, Mapping[str, str]]
_ATTRIBUTE_NAMES: Final = ("source", "entity_type", "event_name", "collection")
_ATTRIBUTES: dict[tuple[StrEnum, ...], QueueAttributes] = {}


def _truncate(value: Any) -> Any:
    if isinstance(value, str) and len(value) > TRUNCATED_STRING_LENGTH:
        return value[:TRUNCATED_STRING_LENGTH]
    return value


# Not frozen, like ParsedStreamRecord: one is made per message on the stream side, and a
# frozen dataclass's __init__ (an object.__setattr__ call per field, 13 here) costs ~4x.
@dataclass(slots=True)
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
        # The enum members are str (StrEnum): the encoder writes their values, and an
        # enum's .value is a Python-level property read per field and message.
        body: dict[str, Any] = {
            "schema_version": self.schema_version,
            "source": self.source,
            "entity_type": self.entity_type,
            "event_name": self.event_name,
            "collection": self.collection,
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

    def message_attributes(self) -> QueueAttributes:
        """The SQS message attributes. Every message of one kind shares one mapping (typed
        read-only; plain dicts, since botocore accepts only a dict): a handful of kinds
        exist, and building four dicts per message cost a tenth of the stream side."""
        kind = (self.source, self.entity_type, self.event_name, self.collection)
        attributes = _ATTRIBUTES.get(kind)
        if attributes is None:
            attributes = _ATTRIBUTES[kind] = {
                name: {"DataType": "String", "StringValue": value.value}
                for name, value in zip(_ATTRIBUTE_NAMES, kind, strict=True)
            }
        return attributes

    @classmethod
    def from_json(cls, text: str) -> StreamMessage:
        """Parse and validate a body; MessageValidationError names the rule it broke."""
        try:
            body = json.loads(text)
        except (TypeError, ValueError) as error:
            raise MessageValidationError(f"message body is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise MessageValidationError(f"message body must be a JSON object, got {body!r:.80}")
        return cls.from_body(body)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> StreamMessage:
        """A decoded body checked against the §3.4 form and the §5.1 value rules: only a
        message the stream side (or a backfill) could have built is valid."""
        version = body.get("schema_version")
        if type(version) is not int or version != SCHEMA_VERSION:
            raise MessageValidationError(
                f"schema_version must be the integer {SCHEMA_VERSION}, got {version!r}"
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
        timestamp = _iso_time(body.get("timestamp"), "timestamp")
        entity_type = _enum(EntityType, body, "entity_type")
        event_name = _enum(EventName, body, "event_name")
        collection = _enum(ChromaDBCollection, body, "collection")
        _check_combination(entity_type, event_name, collection, entity_data)
        source = _enum(MessageSource, body, "source")
        sequence_number, change_time, stream_record_id = _record_fields(source, event_name, body)
        truncated = body.get("changes_truncated", False)
        if not isinstance(truncated, bool):
            raise MessageValidationError(
                f"changes_truncated must be true or false, got {truncated!r}"
            )
        return cls(
            entity_type=entity_type,
            event_name=event_name,
            collection=collection,
            source=source,
            entity_data=entity_data,
            changes={name: FieldChange(old=c["old"], new=c["new"]) for name, c in changes.items()},
            timestamp=timestamp,
            changes_truncated=truncated,
            sequence_number=sequence_number,
            change_time=change_time,
            stream_record_id=stream_record_id,
            aws_region=_optional_str(body, "aws_region"),
        )


def _non_empty_text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


# Contract §5.1 (rev 3): each entity_data value by the rule that made it — the key's
# parts (§3.1: a v4/v5 UUID, five-digit ids, a label name) or a run row's text.
_ENTITY_DATA_RULES: Final[dict[str, Callable[[object, str], object]]] = {
    "image_id": validate_image_id,
    "receipt_id": validate_id,
    "line_id": validate_id,
    "word_id": validate_id,
    "label": validate_label,
    "run_id": _non_empty_text,
    "delta_s3_prefix": _non_empty_text,
}


def _check_combination(
    entity_type: EntityType,
    event_name: EventName,
    collection: ChromaDBCollection,
    entity_data: dict[str, Any],
) -> None:
    """Only messages the stream side produces are valid (the change rule table), and
    their ``entity_data`` holds valid values of every key its type needs."""
    rule = CHANGE_RULES.get(entity_type)
    if rule is None or not rule.produces(event_name, collection):
        raise MessageValidationError(
            f"no {entity_type.value} {event_name.value} message goes to the "
            f"{collection.value} collection"
        )
    for key, _ in rule.entity_data:
        if key not in entity_data:
            raise MessageValidationError(
                f"entity_data.{key} is required in a {entity_type.value} message"
            )
        try:
            _ENTITY_DATA_RULES[key](entity_data[key], f"entity_data.{key}")
        except ValueError as error:
            raise MessageValidationError(str(error)) from None


def _record_fields(
    source: MessageSource, event_name: EventName, body: dict[str, Any]
) -> tuple[str | None, str | None, str | None]:
    """``sequence_number``, ``change_time`` and ``stream_record_id`` by the message's
    source: a backfill is an INSERT and comes from no stream record (all three null);
    stream and replayed messages are built from a record, whose sequence number is
    decimal and whose creation time is an ISO-8601 time."""
    names = ("sequence_number", "change_time", "stream_record_id")
    if source is MessageSource.BACKFILL:
        if event_name is not EventName.INSERT:
            raise MessageValidationError(
                f"a backfill message must be an INSERT, got {event_name.value}"
            )
        for name in names:
            if body.get(name) is not None:
                raise MessageValidationError(
                    f"{name} of a backfill message must be null, got {body[name]!r}"
                )
        return None, None, None
    sequence_number = body.get("sequence_number")
    if not is_decimal_string(sequence_number):
        raise MessageValidationError(
            f"sequence_number of a {source.value} message must be a decimal string, "
            f"got {sequence_number!r}"
        )
    change_time = _iso_time(body.get("change_time"), "change_time")
    return sequence_number, change_time, _optional_str(body, "stream_record_id")


def _iso_time(value: object, name: str) -> str:
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return value
    raise MessageValidationError(f"{name} must be an ISO-8601 time, got {value!r}")


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
