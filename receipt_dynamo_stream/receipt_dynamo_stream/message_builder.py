"""Stream records → queue messages (contract §3.3 and §3.4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from receipt_dynamo.constants import EntityType
from receipt_dynamo.timestamps import now_iso
from receipt_dynamo_stream.change_detection.detector import (
    diff_relevant_values,
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


def _relevant_values(
    parsed: ParsedStreamRecord, name: str, image: Mapping[str, Any] | None
) -> dict[str, str | None]:
    if image is None:
        raise UnparseableRecordError(
            f"{parsed.entity_type.value} {parsed.event_name.value} record lacks "
            f"dynamodb.{name} ({parsed.pk} / {parsed.sk})"
        )
    return relevant_values_from_image(parsed.entity_type, image, parsed.ids)


def _changes(parsed: ParsedStreamRecord) -> dict[str, FieldChange] | None:
    """Relevant changes of a metadata/label record, or None when it yields no message."""
    event = parsed.event_name
    old = (
        None
        if event is EventName.INSERT
        else _relevant_values(parsed, "OldImage", parsed.old_image)
    )
    new = (
        None
        if event is EventName.REMOVE
        else _relevant_values(parsed, "NewImage", parsed.new_image)
    )
    changes = diff_relevant_values(old, new)
    if event is EventName.MODIFY and not changes:
        return None
    return changes


def messages_for_record(parsed: ParsedStreamRecord, timestamp: str) -> list[StreamMessage]:
    """The messages one relevant record produces (possibly none)."""
    entity_type, event = parsed.entity_type, parsed.event_name
    rule = CHANGE_RULES[entity_type]
    common: dict[str, Any] = {
        "entity_type": entity_type,
        "event_name": event,
        "source": MessageSource.DYNAMODB_STREAM,
        "sequence_number": parsed.sequence_number,
        "change_time": parsed.change_time,
        "stream_record_id": parsed.event_id,
        "aws_region": parsed.aws_region,
        "timestamp": timestamp,
    }
    if entity_type is EntityType.COMPACTION_RUN:
        if event not in rule.events:
            return []
        run = parse_compaction_run(parsed)
        return [
            StreamMessage(
                collection=collection,
                entity_data={
                    "run_id": run.run_id,
                    "image_id": run.image_id,
                    "receipt_id": run.receipt_id,
                    "delta_s3_prefix": run.delta_prefixes[collection],
                },
                **common,
            )
            for collection in rule.targets
        ]
    if event not in rule.events:
        return []
    if not rule.relevant_fields:
        changes: dict[str, FieldChange] = {}
    else:
        detected = _changes(parsed)
        if detected is None:
            return []
        changes = detected
    entity_data = {"image_id": parsed.image_id, **parsed.ids}
    return [
        StreamMessage(collection=collection, entity_data=entity_data, changes=changes, **common)
        for collection in rule.targets
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
            parsed = parse_stream_record(record)
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
        messages.extend((parsed.sequence_number, message) for message in built)
    return BuildResult(messages=messages, unparseable=unparseable, irrelevant=irrelevant)
