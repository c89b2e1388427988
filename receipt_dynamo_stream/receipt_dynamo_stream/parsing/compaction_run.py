"""CompactionRun records: the trigger to merge a producer's embedding deltas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from receipt_dynamo.constants import ChromaDBCollection, EntityType
from receipt_dynamo_stream.exceptions import UnparseableRecordError
from receipt_dynamo_stream.models import EventName, ParsedStreamRecord, RunDeltas
from receipt_dynamo_stream.parsing.parsers import parse_stream_record


def is_compaction_run(record: Mapping[str, Any] | ParsedStreamRecord) -> bool:
    """True for records of a CompactionRun row (by key alone; nothing is decoded)."""
    parsed = record if isinstance(record, ParsedStreamRecord) else parse_stream_record(record)
    return parsed is not None and parsed.entity_type is EntityType.COMPACTION_RUN


def parse_compaction_run(record: Mapping[str, Any] | ParsedStreamRecord) -> RunDeltas:
    """The run a CompactionRun record names and its delta prefixes.

    Only what the messages are built from is validated: the ids (from the key) and each
    collection's ``<collection>_delta_prefix`` (a non-empty string). Other attributes of
    the row are the compactor's business.
    """
    parsed = record if isinstance(record, ParsedStreamRecord) else parse_stream_record(record)
    if parsed is None or parsed.entity_type is not EntityType.COMPACTION_RUN:
        raise UnparseableRecordError("record is not a CompactionRun record")
    image = parsed.new_image if parsed.event_name is not EventName.REMOVE else parsed.old_image
    if image is None:
        raise UnparseableRecordError(
            f"CompactionRun {parsed.event_name.value} record lacks its image ({parsed.sk})"
        )
    prefixes: dict[ChromaDBCollection, str] = {}
    for collection in ChromaDBCollection:
        name = f"{collection.value}_delta_prefix"
        value = image.get(name)
        text = value.get("S") if isinstance(value, Mapping) else None
        if not isinstance(text, str) or not text:
            raise UnparseableRecordError(
                f"CompactionRun {parsed.pk} / {parsed.sk}: {name} must be a non-empty "
                f"string, got {value!r}"
            )
        prefixes[collection] = text
    return RunDeltas(
        run_id=str(parsed.ids["run_id"]),
        image_id=parsed.image_id,
        receipt_id=int(parsed.ids["receipt_id"]),
        delta_prefixes=prefixes,
    )
