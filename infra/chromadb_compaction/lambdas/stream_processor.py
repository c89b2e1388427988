"""Stream processor Lambda (zip): DynamoDB stream records → SQS messages for the compactor.

Thin on purpose: parsing, change detection, message building and publishing live in
``receipt_dynamo_stream``. The response reports records whose messages were not all
published (``ReportBatchItemFailures``); unparseable records are parked on
``STREAM_DLQ_URL`` instead of being retried forever.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from receipt_dynamo.aws_clients import aws_client
from receipt_dynamo_stream import (
    StreamSettings,
    Telemetry,
    build_messages,
    park_records,
    publish_messages,
)
from receipt_dynamo_stream.settings import SERVICE_STREAM

if TYPE_CHECKING:
    from types_boto3_sqs.client import SQSClient

TELEMETRY = Telemetry.from_env(service=SERVICE_STREAM)

logger = Logger(service=TELEMETRY.service)
metrics = Metrics(namespace=TELEMETRY.metrics_namespace, service=TELEMETRY.service)
tracer = Tracer(service=TELEMETRY.service)

# Every module's records — the packages' plain `logging` loggers included — reach the
# Lambda log as the same JSON as the handler's (contract §9). Registering the package
# loggers first lets the copy find them; their modules' loggers propagate to them.
LOGGED_PACKAGES = frozenset({"receipt_dynamo", "receipt_dynamo_stream"})
for _package in LOGGED_PACKAGES:
    logging.getLogger(_package)
copy_config_to_registered_loggers(source_logger=logger, include=set(LOGGED_PACKAGES))


@cache
def _sqs() -> SQSClient:
    """One client per container: creating clients costs more than most invocations."""
    client: SQSClient = aws_client("sqs")
    return client


def _record_keys(record: Any) -> dict[str, Any]:
    """Identifying parts of a record for logs (whatever shape it has)."""
    if not isinstance(record, dict):
        return {"record_type": type(record).__name__}
    dynamodb = record.get("dynamodb")
    if not isinstance(dynamodb, dict):
        dynamodb = {}
    return {
        "event_id": record.get("eventID"),
        "event_name": record.get("eventName"),
        "keys": dynamodb.get("Keys"),
        "sequence_number": dynamodb.get("SequenceNumber"),
    }


def _max_lag_seconds(records: list[Any]) -> float | None:
    now = time.time()
    lags = []
    for record in records:
        dynamodb = record.get("dynamodb") if isinstance(record, dict) else None
        if not isinstance(dynamodb, dict):
            continue
        created = dynamodb.get("ApproximateCreationDateTime")
        if isinstance(created, int | float) and not isinstance(created, bool):
            lags.append(max(0.0, now - float(created)))
    return max(lags) if lags else None


def _park(unparseable: list[tuple[Any, Exception]], dlq_url: str | None) -> set[str]:
    """Park unparseable records; returns sequence numbers to retry (parking failed)."""
    for record, error in unparseable:
        logger.error("unparseable stream record", error=str(error), **_record_keys(record))
    if not unparseable or not dlq_url:
        return set()
    retry: set[str] = set()
    for record, error in park_records(unparseable, dlq_url, sqs_client=_sqs()):
        sequence_number = _record_keys(record).get("sequence_number")
        if not isinstance(sequence_number, str):
            # Nothing to report it by: fail the invocation so Lambda retries the batch.
            raise RuntimeError(f"could not park a record without SequenceNumber: {error}")
        logger.error("could not park record", error=str(error), **_record_keys(record))
        retry.add(sequence_number)
    metrics.add_metric("StreamRecordsParked", MetricUnit.Count, len(unparseable) - len(retry))
    return retry


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records") or []
    # Read on each invocation (a few lookups): a bad value fails the batch, which Lambda
    # retries, with an error naming the variable.
    settings = StreamSettings.from_env()
    # One subsegment per stage of the batch (X-Ray, active tracing).
    with tracer.provider.in_subsegment("## build_messages"):
        built = build_messages(records)
    unparseable: list[tuple[Any, Exception]] = list(built.unparseable)
    with tracer.provider.in_subsegment("## park_unparseable"):
        retry = _park(unparseable, settings.dlq_url)

    with tracer.provider.in_subsegment("## publish_messages"):
        published = publish_messages(
            built.messages,
            sqs_client=_sqs(),
            lines_queue_url=settings.lines_queue_url,
            words_queue_url=settings.words_queue_url,
        )
    for failure in published.failed:
        logger.error(
            "message not published",
            sequence_number=failure.sequence_number,
            collection=failure.message.collection.value,
            entity_type=failure.message.entity_type.value,
            error=failure.error,
        )
    retry |= published.failed_sequence_numbers

    per_queue = Counter(message.collection.value for _, message in published.published)
    relevant = len(records) - built.irrelevant - len(built.unparseable)
    metrics.add_metric("StreamProcessorProcessedRecords", MetricUnit.Count, len(records))
    metrics.add_metric("StreamRecordsRelevant", MetricUnit.Count, relevant)
    metrics.add_metric("StreamRecordsNotRelevant", MetricUnit.Count, built.irrelevant)
    metrics.add_metric("StreamParseFailures", MetricUnit.Count, len(built.unparseable))
    metrics.add_metric("StreamPublishFailures", MetricUnit.Count, len(published.failed))
    metrics.add_metric("LinesMessagesPublished", MetricUnit.Count, per_queue["lines"])
    metrics.add_metric("WordsMessagesPublished", MetricUnit.Count, per_queue["words"])
    lag = _max_lag_seconds(records)
    if lag is not None:
        metrics.add_metric("StreamLagSeconds", MetricUnit.Seconds, lag)
    logger.info(
        "stream batch processed",
        records=len(records),
        relevant=relevant,
        not_relevant=built.irrelevant,
        unparseable=len(built.unparseable),
        messages_published=len(published.published),
        messages_failed=len(published.failed),
        records_to_retry=len(retry),
    )
    return {"batchItemFailures": [{"itemIdentifier": s} for s in sorted(retry, key=int)]}
