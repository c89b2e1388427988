"""Stream record parsing."""

from receipt_dynamo_stream.parsing.compaction_run import is_compaction_run, parse_compaction_run
from receipt_dynamo_stream.parsing.parsers import (
    detect_entity_type,
    parse_entity,
    parse_stream_record,
)

__all__ = [
    "detect_entity_type",
    "is_compaction_run",
    "parse_compaction_run",
    "parse_entity",
    "parse_stream_record",
]
