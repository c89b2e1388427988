"""CompactionRun records: the trigger to merge a producer's embedding deltas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from receipt_dynamo.constants import EntityType
from receipt_dynamo.entities import CompactionRun
from receipt_dynamo_stream.exceptions import UnparseableRecordError
from receipt_dynamo_stream.models import EventName, ParsedStreamRecord
from receipt_dynamo_stream.parsing.parsers import parse_entity, parse_stream_record


def is_compaction_run(record: Mapping[str, Any] | ParsedStreamRecord) -> bool:
    """True for records of a CompactionRun row (by key alone; nothing is decoded)."""
    parsed = record if isinstance(record, ParsedStreamRecord) else parse_stream_record(record)
    return parsed is not None and parsed.entity_type is EntityType.COMPACTION_RUN


def parse_compaction_run(record: Mapping[str, Any] | ParsedStreamRecord) -> CompactionRun:
    """The CompactionRun of an INSERT record, decoded and validated."""
    parsed = record if isinstance(record, ParsedStreamRecord) else parse_stream_record(record)
    if parsed is None or parsed.entity_type is not EntityType.COMPACTION_RUN:
        raise UnparseableRecordError("record is not a CompactionRun record")
    image = parsed.new_image if parsed.event_name is not EventName.REMOVE else parsed.old_image
    if image is None:
        raise UnparseableRecordError(
            f"CompactionRun {parsed.event_name.value} record lacks its image ({parsed.sk})"
        )
    return cast(
        CompactionRun, parse_entity(image, EntityType.COMPACTION_RUN, pk=parsed.pk, sk=parsed.sk)
    )
