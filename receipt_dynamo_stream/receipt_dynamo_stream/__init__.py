"""receipt_dynamo_stream: DynamoDB stream records → ChromaDB queue messages.

Light enough for a zip Lambda: depends on receipt_dynamo and boto3 only.
"""

from receipt_dynamo_stream.backfill import backfill_messages
from receipt_dynamo_stream.change_detection.detector import (
    CHROMADB_RELEVANT_FIELDS,
    get_chromadb_relevant_changes,
)
from receipt_dynamo_stream.change_rules import CHANGE_RULES, ChangeRule
from receipt_dynamo_stream.exceptions import (
    ConfigurationError,
    MessageValidationError,
    StreamProcessingError,
    UnparseableRecordError,
)
from receipt_dynamo_stream.message_builder import build_messages
from receipt_dynamo_stream.models import (
    BuildResult,
    EventName,
    FailedMessage,
    FieldChange,
    MessageSource,
    ParsedStreamRecord,
    PublishResult,
    StreamMessage,
)
from receipt_dynamo_stream.parking import park_records
from receipt_dynamo_stream.parsing.compaction_run import is_compaction_run, parse_compaction_run
from receipt_dynamo_stream.parsing.parsers import (
    detect_entity_type,
    parse_entity,
    parse_stream_record,
)
from receipt_dynamo_stream.publisher import publish_messages
from receipt_dynamo_stream.settings import StreamSettings, Telemetry

__all__ = [
    "CHANGE_RULES",
    "CHROMADB_RELEVANT_FIELDS",
    "ChangeRule",
    "BuildResult",
    "ConfigurationError",
    "EventName",
    "FailedMessage",
    "FieldChange",
    "MessageSource",
    "MessageValidationError",
    "ParsedStreamRecord",
    "PublishResult",
    "StreamMessage",
    "StreamProcessingError",
    "StreamSettings",
    "Telemetry",
    "UnparseableRecordError",
    "backfill_messages",
    "build_messages",
    "detect_entity_type",
    "get_chromadb_relevant_changes",
    "is_compaction_run",
    "park_records",
    "parse_compaction_run",
    "parse_entity",
    "parse_stream_record",
    "publish_messages",
]
