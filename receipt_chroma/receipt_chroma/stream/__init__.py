"""The stream-side API, re-exported from ``receipt_dynamo_stream``."""

from receipt_chroma.stream.change_detector import (
    CHROMADB_RELEVANT_FIELDS,
    get_chromadb_relevant_changes,
)
from receipt_chroma.stream.models import (
    EventName,
    FieldChange,
    MessageSource,
    ParsedStreamRecord,
    StreamMessage,
)

__all__ = [
    "CHROMADB_RELEVANT_FIELDS",
    "EventName",
    "FieldChange",
    "MessageSource",
    "ParsedStreamRecord",
    "StreamMessage",
    "get_chromadb_relevant_changes",
]
