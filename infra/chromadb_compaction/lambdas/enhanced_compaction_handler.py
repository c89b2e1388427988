"""Compaction Lambda (container): SQS messages → one compaction cycle per collection.

Thin on purpose: the cycle (lease, working copy, merge/apply, publish) lives in
``receipt_chroma.compaction``. The response names exactly the messages of this event
whose effect was not published; invalid bodies are failures too, so they reach the
queue's DLQ through its redrive policy instead of being acknowledged silently.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from receipt_chroma.compaction import (
    CompactionConfig,
    CompactionCycle,
    CycleResult,
    FailureCause,
    shared_delta_reader,
)
from receipt_dynamo import ChromaDBCollection, DynamoClient
from receipt_dynamo_stream import MessageValidationError, StreamMessage

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "receipt-compactor")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "ReceiptCompaction")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# One cycle per collection per container: it keeps the warm working copy between calls.
_cycles: dict[ChromaDBCollection, CompactionCycle] = {}
# The delta reader process imports chromadb while the container initialises, so the first
# batch with deltas finds it ready; it lives as long as the container.
shared_delta_reader()

CAUSE_METRICS = {
    FailureCause.LEASE_ACQUISITION: "LeaseAcquisitionFailures",
    FailureCause.LEASE_LOST: "LeaseLost",
    FailureCause.POINTER_MOVED: "SnapshotPublishFailures",
    FailureCause.PUBLISH_FAILED: "SnapshotPublishFailures",
    FailureCause.SNAPSHOT_UNAVAILABLE: "SnapshotUnavailable",
}
TIMING_METRICS = {
    "lease_wait": "LeaseWaitTime",
    "lease_hold": "LeaseHoldTime",
    "working_copy": "WorkingCopyTime",
    "apply": "ApplyTime",
    "publish": "PublishTime",
}


def cycle_for(collection: ChromaDBCollection) -> CompactionCycle:
    if collection not in _cycles:
        config = CompactionConfig.from_env()
        s3: S3Client = boto3.client("s3")
        _cycles[collection] = CompactionCycle(
            config,
            collection,
            dynamo=DynamoClient(config.table_name),
            s3_client=s3,
            logger=logger,
        )
    return _cycles[collection]


def parse_record(record: dict[str, Any]) -> StreamMessage:
    """The message of one SQS record; MessageValidationError when it is not a valid one."""
    body = record.get("body")
    message = StreamMessage.from_json(body if isinstance(body, str) else "")
    attributes = record.get("messageAttributes") or {}
    queue_collection = (attributes.get("collection") or {}).get("stringValue")
    if queue_collection != message.collection.value:
        raise MessageValidationError(
            f"collection {message.collection.value!r} does not match the queue's collection "
            f"attribute {queue_collection!r}"
        )
    return message


def emit_cycle_metrics(result: CycleResult, messages: list[StreamMessage]) -> None:
    sink = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    sink.add_dimension(name="collection", value=result.collection.value)
    for entity_type, count in Counter(m.entity_type.value for m in messages).items():
        sink.add_metric(
            name=f"Messages{entity_type.title().replace('_', '')}",
            unit=MetricUnit.Count,
            value=count,
        )
    if result.tier is not None:
        sink.add_metric(
            name=f"CacheTier{result.tier.value.title()}", unit=MetricUnit.Count, value=1
        )
    if result.update is not None:
        merged = [r for r in result.update.runs if r.merged]
        sink.add_metric(name="DeltasMerged", unit=MetricUnit.Count, value=len(merged))
        sink.add_metric(
            name="VectorsMerged", unit=MetricUnit.Count, value=result.update.vectors_merged
        )
        sink.add_metric(
            name="CompactionMetadataUpdates",
            unit=MetricUnit.Count,
            value=result.update.metadata_updates,
        )
        sink.add_metric(
            name="CompactionLabelUpdates", unit=MetricUnit.Count, value=result.update.label_updates
        )
        sink.add_metric(
            name="RecordsDeleted", unit=MetricUnit.Count, value=result.update.records_deleted
        )
    if result.published_version is not None:
        sink.add_metric(name="SnapshotPublished", unit=MetricUnit.Count, value=1)
    if result.cause is not None:
        sink.add_metric(name=CAUSE_METRICS[result.cause], unit=MetricUnit.Count, value=1)
    if result.derived_cache_errors:
        sink.add_metric(
            name="DerivedCacheErrors", unit=MetricUnit.Count, value=len(result.derived_cache_errors)
        )
    for key, name in TIMING_METRICS.items():
        if key in result.timings_ms:
            sink.add_metric(name=name, unit=MetricUnit.Milliseconds, value=result.timings_ms[key])
    sink.add_metric(name="MessageFailures", unit=MetricUnit.Count, value=len(result.failures))
    sink.add_metric(
        name="CompactionLambdaError" if result.failures else "CompactionLambdaSuccess",
        unit=MetricUnit.Count,
        value=1,
    )
    sink.flush_metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records") or []
    failed: list[str] = []
    grouped: dict[ChromaDBCollection, list[tuple[str, StreamMessage]]] = defaultdict(list)
    for record in records:
        message_id = record["messageId"]  # always present in SQS events
        try:
            message = parse_record(record)
        except MessageValidationError as error:
            logger.error("invalid queue message", message_id=message_id, error=str(error))
            failed.append(message_id)
            continue
        grouped[message.collection].append((message_id, message))
    metrics.add_metric(name="InvalidMessages", unit=MetricUnit.Count, value=len(failed))

    for collection, pairs in grouped.items():
        result = cycle_for(collection).run(pairs)
        for failure in result.failures:
            logger.warning(
                "message not applied",
                message_id=failure.message_id,
                collection=collection.value,
                reason=failure.reason,
            )
        logger.info(
            "compaction cycle finished",
            collection=collection.value,
            messages=len(pairs),
            failed=len(result.failures),
            cause=result.cause.value if result.cause else None,
            tier=result.tier.value if result.tier else None,
            version=result.published_version,
            base_version=result.base_version,
            timings_ms={k: round(v, 1) for k, v in result.timings_ms.items()},
            derived_cache_errors=result.derived_cache_errors,
        )
        emit_cycle_metrics(result, [message for _, message in pairs])
        failed += sorted(result.failed_message_ids)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
