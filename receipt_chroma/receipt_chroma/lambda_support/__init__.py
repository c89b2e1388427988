"""What the compactor Lambda does around a cycle, kept here so it is testable without
Lambda: typed SQS records in (Powertools' ``SQSRecord`` fits ``QueueRecord``), their
messages grouped by collection, a cycle's metrics and log fields out, a tracing
subsegment per stage, and the early retry (visibility reset) of every message reported
failed (contract §5.1, §7, §9). The handler keeps Powertools' Logger, Metrics and Tracer
objects and the container's clients."""

from receipt_chroma.lambda_support.cycle_report import (
    cycle_log_fields,
    cycle_metrics,
)
from receipt_chroma.lambda_support.exceptions import QueueArnError
from receipt_chroma.lambda_support.models import (
    CycleMetric,
    EventLogger,
    QueueBatch,
    QueueRecord,
    VisibilityReset,
)
from receipt_chroma.lambda_support.records import parse_queue_record, split_by_collection
from receipt_chroma.lambda_support.stage_tracing import StageSegments
from receipt_chroma.lambda_support.visibility import (
    SQS_BATCH_LIMIT,
    queue_url,
    reset_visibility,
    schedule_retry,
)

__all__ = [
    "SQS_BATCH_LIMIT",
    "CycleMetric",
    "EventLogger",
    "QueueArnError",
    "QueueBatch",
    "QueueRecord",
    "StageSegments",
    "VisibilityReset",
    "cycle_log_fields",
    "cycle_metrics",
    "parse_queue_record",
    "queue_url",
    "reset_visibility",
    "schedule_retry",
    "split_by_collection",
]
