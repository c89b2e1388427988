"""Stream records → queue messages (contract §3.3 and §3.4)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from receipt_dynamo.constants import EntityType
from receipt_dynamo.timestamps import now_iso
from receipt_dynamo_stream.change_detection.detector import (
    relevant_changes,
    relevant_values_from_image,
)
from receipt_dynamo_stream.change_rules import CHANGE_RULES
from receipt_dynamo_stream.exceptions import UnparseableRecordError
from receipt_dynamo_stream.models import (
    BuildResult,
    EventName,
    FieldChange,
    MessageSource,
    ParsedStreamRecord,
    StreamMessage,
)
from receipt_dynamo_stream.parsing.compaction_run import parse_compaction_run
from receipt_dynamo_stream.parsing.parsers import parse_stream_record


def _changes(parsed: ParsedStreamRecord) -> dict[str, FieldChange] | None:
    """Relevant changes of a metadata/label record, or None when it yields no message."""
    event = parsed.event_name
    old = None if event is EventName.INSERT else _image(parsed, "OldImage", parsed.old_image)
    if event is not EventName.REMOVE and parsed.new_image is None and old is not None:
        # The old image is read before the new one is missed: a bad old value is the error.
        relevant_values_from_image(parsed.entity_type, old, parsed.ids)
    new = None if event is EventName.REMOVE else _image(parsed, "NewImage", parsed.new_image)
    changes = relevant_changes(parsed.entity_type, old, new, parsed.ids)
    if event is EventName.MODIFY and not changes:
        return None
    return changes


def _image(parsed: ParsedStreamRecord, name: str, image: dict[str, Any] | None) -> dict[str, Any]:
    if image is None:
        raise UnparseableRecordError(
            f"{parsed.entity_type.value} {parsed.event_name.value} record lacks "
            f"dynamodb.{name} ({parsed.pk} / {parsed.sk})"
        )
    return image


def messages_for_record(parsed: ParsedStreamRecord, timestamp: str) -> list[StreamMessage]:
    """The messages one relevant record produces (possibly none)."""
    entity_type, event = parsed.entity_type, parsed.event_name
    rule = CHANGE_RULES[entity_type]
    if event not in rule.events:
        return []
    changes: dict[str, FieldChange] = {}
    if entity_type is EntityType.COMPACTION_RUN:
        run = parse_compaction_run(parsed)
        entity_data = [
            {
                "run_id": run.run_id,
                "image_id": run.image_id,
                "receipt_id": run.receipt_id,
                "delta_s3_prefix": run.delta_prefixes[collection],
            }
            for collection in rule.targets
        ]
    else:
        if rule.relevant_fields:
            detected = _changes(parsed)
            if detected is None:
                return []
            changes = detected
        entity_data = [{"image_id": parsed.image_id, **parsed.ids}] * len(rule.targets)
    return [
        StreamMessage(
            entity_type=entity_type,
            event_name=event,
            collection=collection,
            entity_data=data,
            timestamp=timestamp,
            changes=changes,
            source=MessageSource.DYNAMODB_STREAM,
            sequence_number=parsed.sequence_number,
            change_time=parsed.change_time,
            stream_record_id=parsed.event_id,
            aws_region=parsed.aws_region,
        )
        for collection, data in zip(rule.targets, entity_data, strict=True)
    ]


def build_messages(records: Iterable[Any]) -> BuildResult:
    """Messages for a batch of Lambda stream records, each paired with its SequenceNumber.

    Unparseable records are returned with their error (never raised); records that
    produce no message are counted as irrelevant.
    """
    timestamp = now_iso()
    messages: list[tuple[str, StreamMessage]] = []
    unparseable: list[tuple[Any, UnparseableRecordError]] = []
    irrelevant = 0
    for record in records:
        try:
            parsed = parse_stream_record(record, message_events_only=True)
            built = [] if parsed is None else messages_for_record(parsed, timestamp)
        except UnparseableRecordError as error:
            unparseable.append((record, error))
            continue
        except Exception as error:  # a malformed record must not fail the whole batch
            unparseable.append((record, UnparseableRecordError(f"{type(error).__name__}: {error}")))
            continue
        if not built or parsed is None:
            irrelevant += 1
            continue
        for message in built:
            messages.append((parsed.sequence_number, message))
    return BuildResult(messages=messages, unparseable=unparseable, irrelevant=irrelevant)
