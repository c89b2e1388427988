"""Compaction Lambda (container): SQS messages → one compaction cycle per collection.

Thin on purpose: parse the event → run one cycle per collection → metrics → report
failures. The cycle lives in ``receipt_chroma.compaction``; reading the records, a cycle's
metrics and log fields, the stage subsegments and the early retry (contract §7 rev 3: a
short jittered visibility for every message reported failed) in
``receipt_chroma.lambda_support``. The response names exactly the messages of this event
whose effect was not published; invalid bodies (contract §5.1) are failures too, so they
reach the queue's DLQ through its redrive policy instead of being acknowledged silently.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.data_classes import SQSEvent, SQSRecord, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from receipt_chroma.compaction import (
    CompactionConfig,
    CompactionCycle,
    CycleResult,
    FailureCause,
    shared_delta_reader,
)
from receipt_chroma.lambda_support import (
    StageSegments,
    VisibilityReset,
    cycle_log_fields,
    cycle_metrics,
    schedule_retry,
    split_by_collection,
)
from receipt_dynamo import ChromaDBCollection, DynamoClient
from receipt_dynamo.aws_clients import aws_client
from receipt_dynamo_stream import StreamMessage, Telemetry
from receipt_dynamo_stream.settings import SERVICE_COMPACTOR

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client
    from types_boto3_sqs.client import SQSClient

TELEMETRY = Telemetry.from_env(service=SERVICE_COMPACTOR)

logger = Logger(service=TELEMETRY.service)
metrics = Metrics(namespace=TELEMETRY.metrics_namespace, service=TELEMETRY.service)
tracer = Tracer(service=TELEMETRY.service)

# Every module's records — the packages' plain `logging` loggers (lease, working copy,
# delta reader, …) included — reach the Lambda log as the same JSON as the handler's
# (contract §9). Registering the package loggers first lets the copy find them; their
# modules' loggers propagate to them.
LOGGED_PACKAGES = frozenset({"receipt_chroma", "receipt_dynamo", "receipt_dynamo_stream"})
for _package in LOGGED_PACKAGES:
    logging.getLogger(_package)
copy_config_to_registered_loggers(source_logger=logger, include=set(LOGGED_PACKAGES))

stages = StageSegments(tracer)

# One cycle per collection per container: it keeps the warm working copy between calls.
_cycles: dict[ChromaDBCollection, CompactionCycle] = {}
# One SQS client per region per container, created on first use (visibility resets only).
_sqs_clients: dict[str, SQSClient] = {}
# The delta reader process imports chromadb while the container initialises, so the first
# batch with deltas finds it ready; it lives as long as the container.
shared_delta_reader()


@functools.cache
def compactor_config() -> CompactionConfig:
    """This container's settings (contract §8), read on first use; a ConfigurationError
    names a variable that is wrong."""
    return CompactionConfig.from_env()


def cycle_for(collection: ChromaDBCollection) -> CompactionCycle:
    if collection not in _cycles:
        config = compactor_config()
        s3: S3Client = aws_client("s3")
        _cycles[collection] = CompactionCycle(
            config,
            collection,
            dynamo=DynamoClient(config.table_name),
            s3_client=s3,
            logger=logger,
            trace=stages.stage,
        )
    return _cycles[collection]


def sqs_client(region: str) -> SQSClient:
    """This container's SQS client for ``region``."""
    if region not in _sqs_clients:
        _sqs_clients[region] = aws_client("sqs", region_name=region)
    return _sqs_clients[region]


def retry_early(
    records: Sequence[SQSRecord], *, reason: str, collection: str | None = None
) -> VisibilityReset:
    """Shorten the visibility of messages about to be reported failed (contract §7)."""
    window = compactor_config().retry_visibility_seconds
    return schedule_retry(
        records, window, reason=reason, collection=collection, sqs_client=sqs_client, logger=logger
    )


def emit_cycle_metrics(
    result: CycleResult, messages: list[StreamMessage], reset: VisibilityReset | None
) -> None:
    """The cycle's metrics with its collection as a dimension (one EMF document)."""
    sink = EphemeralMetrics(namespace=TELEMETRY.metrics_namespace, service=TELEMETRY.service)
    sink.add_dimension(name="collection", value=result.collection.value)
    for metric in cycle_metrics(result, messages, reset):
        sink.add_metric(name=metric.name, unit=metric.unit, value=metric.value)
    sink.flush_metrics()


def process_records(records: list[SQSRecord]) -> list[str]:
    """Run one cycle per collection; the ids of the messages to report failed, each
    already scheduled for an early retry (contract §7)."""
    batch = split_by_collection(records)
    for message_id, error in batch.invalid.items():
        # The error names the rule the body broke (contract §5.1).
        logger.error("invalid queue message", message_id=message_id, error=str(error))
    metrics.add_metric(name="InvalidMessages", unit=MetricUnit.Count, value=len(batch.invalid))
    if batch.invalid:
        # No collection to file them under: counted with the invocation's own metrics.
        reset = retry_early(batch.records_of(batch.invalid), reason="invalid queue message")
        metrics.add_metric(name="VisibilityResets", unit=MetricUnit.Count, value=reset.reset)
        metrics.add_metric(
            name="VisibilityResetFailures", unit=MetricUnit.Count, value=reset.failed
        )
    failed = list(batch.invalid)
    for collection, pairs in batch.messages.items():
        result = run_cycle(collection, pairs)
        failed_ids = sorted(result.failed_message_ids)
        cycle_reset: VisibilityReset | None = None
        if failed_ids:
            cycle_reset = retry_early(
                batch.records_of(failed_ids),
                reason=result.cause.value if result.cause else "message not applied",
                collection=collection.value,
            )
        emit_cycle_metrics(result, [message for _, message in pairs], cycle_reset)
        failed += failed_ids
    return failed


def run_cycle(
    collection: ChromaDBCollection, pairs: list[tuple[str, StreamMessage]]
) -> CycleResult:
    """One cycle, logged. A cycle that raises (an AWS error outside the stages the cycle
    handles, such as taking or giving up the lease) fails all its messages, named, so they
    are retried early like any other failure instead of failing the whole invocation."""
    try:
        cycle = cycle_for(collection)  # a wrong setting fails the messages, not the event
        with stages.cycle(collection.value):
            result = cycle.run(pairs)
    except Exception as error:
        logger.exception("compaction cycle raised", collection=collection.value)
        result = CycleResult(collection, [message_id for message_id, _ in pairs]).fail_all(
            FailureCause.PUBLISH_FAILED, f"{type(error).__name__}: {error}"
        )
    for failure in result.failures:
        logger.warning(
            "message not applied",
            message_id=failure.message_id,
            collection=collection.value,
            reason=failure.reason,
        )
    logger.info("compaction cycle finished", **cycle_log_fields(result, len(pairs)))
    return result


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@event_source(data_class=SQSEvent)
def lambda_handler(event: SQSEvent, context: LambdaContext) -> dict[str, Any]:
    # Success / Error count invocations (contract §9): Error when any message of the event,
    # invalid ones included, is reported failed — or when the invocation itself fails.
    try:
        failed = process_records(list(event.records) if event.get("Records") else [])
    except Exception:
        metrics.add_metric(name="CompactionLambdaError", unit=MetricUnit.Count, value=1)
        raise
    metrics.add_metric(
        name="CompactionLambdaError" if failed else "CompactionLambdaSuccess",
        unit=MetricUnit.Count,
        value=1,
    )
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
