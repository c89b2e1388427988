"""Compaction Lambda (container): SQS messages → one compaction cycle per collection.

Thin on purpose: the cycle (lease, working copy, merge/apply, publish) lives in
``receipt_chroma.compaction``. The response names exactly the messages of this event
whose effect was not published; invalid bodies (contract §5.1: form and values) are
failures too, so they reach the queue's DLQ through its redrive policy instead of being
acknowledged silently.

Every message reported failed, whatever the cause, is first given a short jittered
visibility timeout (``RETRY_VISIBILITY_SECONDS``), so it comes back within minutes instead
of after the queue's visibility timeout (contract §7 rev 3); one that keeps failing reaches
the DLQ after ``maxReceiveCount`` quick receives.
"""

from __future__ import annotations

import functools
import logging
import os
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
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
from receipt_dynamo.aws_clients import aws_client
from receipt_dynamo_stream import MessageValidationError, StreamMessage

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client
    from types_boto3_sqs.client import SQSClient
    from types_boto3_sqs.type_defs import ChangeMessageVisibilityBatchRequestEntryTypeDef

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "receipt-compactor")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "ReceiptCompaction")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)

# Every module's records — the packages' plain `logging` loggers (lease, working copy,
# delta reader, …) included — reach the Lambda log as the same JSON as the handler's
# (contract §9). Registering the package loggers first lets the copy find them; their
# modules' loggers propagate to them.
LOGGED_PACKAGES = frozenset({"receipt_chroma", "receipt_dynamo", "receipt_dynamo_stream"})
for _package in LOGGED_PACKAGES:
    logging.getLogger(_package)
copy_config_to_registered_loggers(source_logger=logger, include=set(LOGGED_PACKAGES))


class StageSegments:
    """One X-Ray subsegment per cycle stage. The cycle marks the end of each stage
    (``on_stage``); the mark closes the running subsegment and opens the next stage's."""

    NEXT: ClassVar[dict[str, str]] = {
        "lease_acquired": "working_copy",
        "working_copy_ready": "apply",
        "applied": "publish_check",
        "checked": "publish_upload",
        "objects_uploaded": "publish_manifest",
        "uploaded": "publish_swap",
        "committed": "publish_derived_caches",
        "pointer_file_synced": "publish_efs",
        "efs_written": "publish_run_marks",
        "runs_marked": "publish_retention",
        "retained": "release",
        "server_applied": "run_marks_and_release",
    }

    def __init__(self) -> None:
        self._open: AbstractContextManager[Any] | None = None

    def _begin(self, stage: str) -> None:
        self._end()
        self._open = tracer.provider.in_subsegment(f"## {stage}")
        self._open.__enter__()

    def _end(self) -> None:
        if self._open is not None:
            self._open.__exit__(None, None, None)
            self._open = None

    def mark(self, name: str) -> None:
        self._begin(self.NEXT.get(name, f"after_{name}"))

    @contextmanager
    def cycle(self, collection: str) -> Iterator[None]:
        with tracer.provider.in_subsegment(f"## compaction_cycle {collection}"):
            self._begin("lease")
            try:
                yield
            finally:
                self._end()


stages = StageSegments()

# One cycle per collection per container: it keeps the warm working copy between calls.
_cycles: dict[ChromaDBCollection, CompactionCycle] = {}
# One SQS client per region per container, created on first use (visibility resets only).
_sqs_clients: dict[str, SQSClient] = {}
# The delta reader process imports chromadb while the container initialises, so the first
# batch with deltas finds it ready; it lives as long as the container.
shared_delta_reader()

CAUSE_METRICS = {
    FailureCause.LEASE_ACQUISITION: "LeaseAcquisitionFailures",
    FailureCause.LEASE_LOST: "LeaseLost",
    FailureCause.POINTER_MOVED: "SnapshotPublishFailures",
    FailureCause.PUBLISH_FAILED: "SnapshotPublishFailures",
    FailureCause.SNAPSHOT_UNAVAILABLE: "SnapshotUnavailable",
    FailureCause.SINK_UNAVAILABLE: "SinkUnavailable",
}
SQS_BATCH_LIMIT = 10  # entries per ChangeMessageVisibilityBatch call
TIMING_METRICS = {
    "lease_wait": "LeaseWaitTime",
    "lease_hold": "LeaseHoldTime",
    "working_copy": "WorkingCopyTime",
    "apply": "ApplyTime",
    "publish": "PublishTime",
    "server_apply": "ServerApplyTime",
}


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
            on_stage=stages.mark,
        )
    return _cycles[collection]


def sqs_client(region: str) -> SQSClient:
    """This container's SQS client for ``region``."""
    if region not in _sqs_clients:
        _sqs_clients[region] = aws_client("sqs", region_name=region)
    return _sqs_clients[region]


def queue_of(event_source_arn: str) -> tuple[SQSClient, str]:
    """The client and URL of the queue ``arn:<partition>:sqs:<region>:<account>:<name>``.

    The URL is ``<the regional client's endpoint>/<account>/<name>`` — the form SQS itself
    returns — so no ``GetQueueUrl`` call (and no permission for one) is needed.
    """
    parts = event_source_arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not all(parts[3:]):
        raise ValueError(f"not an SQS queue ARN: {event_source_arn!r}")
    region, account, name = parts[3:]
    client = sqs_client(region)
    return client, f"{client.meta.endpoint_url.rstrip('/')}/{account}/{name}"


class VisibilityReset:
    """The outcome of shortening the visibility of one cycle's failed messages.

    (A plain class: a dataclass needs its module in ``sys.modules``, which the local
    handler loader does not arrange.)
    """

    def __init__(self, timeout_seconds: int) -> None:
        self.timeout_seconds = timeout_seconds
        self.reset = 0  # messages whose visibility was changed
        self.failed = 0  # messages whose visibility could not be changed


def reset_visibility(
    records: Sequence[Mapping[str, Any]], window: tuple[int, int]
) -> VisibilityReset:
    """Make the messages of ``records`` visible again after a jittered ``window`` (§7).

    One timeout for the whole batch: its messages come back together and are batched
    together again, while the jitter keeps competing invocations apart. Nothing here raises:
    a message whose visibility could not be changed is logged and counted, and is still
    reported failed (it then returns after the queue's visibility timeout).
    """
    outcome = VisibilityReset(timeout_seconds=random.randint(*window))
    for arn, pending in _pending_by_queue(records, outcome).items():
        _reset_queue(arn, pending, outcome)
    return outcome


def _pending_by_queue(
    records: Sequence[Mapping[str, Any]], outcome: VisibilityReset
) -> dict[str, list[tuple[str, str]]]:
    """The (message id, receipt handle) of each record by its queue's ARN; a record
    without a handle or an ARN is logged and counted failed."""
    by_queue: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for record in records:
        message_id = str(record.get("messageId"))
        handle = record.get("receiptHandle")
        arn = record.get("eventSourceARN")
        if not isinstance(handle, str) or not handle or not isinstance(arn, str):
            logger.error(
                "visibility not reset",
                message_id=message_id,
                error="record has no receiptHandle or eventSourceARN",
            )
            outcome.failed += 1
            continue
        by_queue[arn].append((message_id, handle))
    return by_queue


def _reset_queue(arn: str, pending: list[tuple[str, str]], outcome: VisibilityReset) -> None:
    """Reset the messages of one queue, ``SQS_BATCH_LIMIT`` per call."""
    try:
        client, url = queue_of(arn)
    except Exception as error:  # a malformed ARN, or no client for its region
        logger.error(
            "visibility not reset",
            message_ids=[m for m, _ in pending],
            error=f"{type(error).__name__}: {error}",
        )
        outcome.failed += len(pending)
        return
    for start in range(0, len(pending), SQS_BATCH_LIMIT):
        _reset_batch(client, url, pending[start : start + SQS_BATCH_LIMIT], outcome)


def _reset_batch(
    client: SQSClient, url: str, batch: list[tuple[str, str]], outcome: VisibilityReset
) -> None:
    """One ChangeMessageVisibilityBatch call; counts the entries it reset and failed."""
    chunk = dict(enumerate(batch))
    entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
        {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": outcome.timeout_seconds}
        for index, (_, handle) in chunk.items()
    ]
    try:
        response = client.change_message_visibility_batch(QueueUrl=url, Entries=entries)
    except Exception as error:
        logger.error(
            "visibility not reset",
            queue_url=url,
            message_ids=[m for m, _ in chunk.values()],
            error=f"{type(error).__name__}: {error}",
        )
        outcome.failed += len(chunk)
        return
    ids = {str(index): message_id for index, (message_id, _) in chunk.items()}
    for failure in response.get("Failed", []):
        logger.error(
            "visibility not reset",
            queue_url=url,
            message_id=ids.get(failure.get("Id", "")),
            code=failure.get("Code"),
            sender_fault=failure.get("SenderFault"),
            error=failure.get("Message"),
        )
    outcome.failed += len(response.get("Failed", []))
    outcome.reset += len(response.get("Successful", []))


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


# A row's value for a cycle (and its visibility reset, if any); None: the row is not emitted.
Getter = Callable[[CycleResult, VisibilityReset | None], float | None]


def _update(attribute: str) -> Getter:
    """A count of the cycle's table update; none when there was no update."""
    return lambda result, _: None if result.update is None else getattr(result.update, attribute)


def _deltas_merged(result: CycleResult, _: VisibilityReset | None) -> float | None:
    return None if result.update is None else sum(1 for run in result.update.runs if run.merged)


def _flag(test: Callable[[CycleResult], object]) -> Getter:
    """1 when ``test`` holds for the cycle; none otherwise."""
    return lambda result, _: 1 if test(result) else None


def _timing(stage: str) -> Getter:
    return lambda result, _: result.timings_ms.get(stage)


def _reset(attribute: str) -> Getter:
    return lambda _, reset: None if reset is None else getattr(reset, attribute)


COUNT, BYTES = MetricUnit.Count, MetricUnit.Bytes
CYCLE_METRICS: tuple[tuple[str, MetricUnit, Getter], ...] = (
    ("DeltasMerged", COUNT, _deltas_merged),
    ("VectorsMerged", COUNT, _update("vectors_merged")),
    ("CompactionMetadataUpdates", COUNT, _update("metadata_updates")),
    ("CompactionLabelUpdates", COUNT, _update("label_updates")),
    ("RecordsDeleted", COUNT, _update("records_deleted")),
    ("InvalidTableRows", COUNT, _update("invalid_rows")),
    ("SnapshotPublished", COUNT, _flag(lambda r: r.published_version is not None)),
    ("ServerSinkApplied", COUNT, _flag(lambda r: r.server_applied)),
    ("DerivedCacheErrors", COUNT, lambda r, _: len(r.derived_cache_errors) or None),
    *((name, MetricUnit.Milliseconds, _timing(key)) for key, name in TIMING_METRICS.items()),
    ("MessageFailures", COUNT, lambda r, _: len(r.failures)),
    ("VisibilityResets", COUNT, _reset("reset")),
    ("VisibilityResetFailures", COUNT, _reset("failed")),
    # Contract §9 (rev 2): S3 bytes the cycle moved, and what the published version's HNSW
    # files do not hold yet (only when a version was published).
    ("SnapshotBytesUploaded", BYTES, lambda r, _: r.snapshot_bytes_uploaded),
    ("SnapshotBytesDownloaded", BYTES, lambda r, _: r.snapshot_bytes_downloaded),
    ("UnindexedRecords", COUNT, lambda r, _: r.unindexed_records),
    # Caches repaired (a warm copy or EFS version that did not match what was recorded for
    # it, read again) and EFS operations that failed (the cycle read from S3 instead).
    ("SnapshotCacheRepairs", COUNT, lambda r, _: r.snapshot_cache_repairs),
    ("EfsFailures", COUNT, lambda r, _: r.efs_failures),
    ("CacheRepairFailures", COUNT, lambda r, _: r.cache_repair_failures),
    ("RetentionSkipped", COUNT, lambda r, _: r.retention_skipped),
    ("EfsWriteFailures", COUNT, lambda r, _: r.efs_write_failures),
)


def emit_cycle_metrics(
    result: CycleResult, messages: list[StreamMessage], reset: VisibilityReset | None = None
) -> None:
    """The cycle's metrics, with its collection as a dimension (one EMF document): messages
    by entity type, the cache tier and failure cause (named by their values), then the
    rows of ``CYCLE_METRICS`` that have a value."""
    sink = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    sink.add_dimension(name="collection", value=result.collection.value)
    for entity_type, count in Counter(m.entity_type.value for m in messages).items():
        name = f"Messages{entity_type.title().replace('_', '')}"
        sink.add_metric(name=name, unit=COUNT, value=count)
    if result.tier is not None:
        # The contract's names: CacheTierWarm, CacheTierCatchUp, CacheTierEfs, CacheTierS3.
        sink.add_metric(name=result.tier.metric_name, unit=COUNT, value=1)
    if result.cause is not None:
        sink.add_metric(name=CAUSE_METRICS[result.cause], unit=COUNT, value=1)
    for name, unit, getter in CYCLE_METRICS:
        value = getter(result, reset)
        if value is not None:
            sink.add_metric(name=name, unit=unit, value=value)
    sink.flush_metrics()


def process_records(records: list[dict[str, Any]]) -> list[str]:
    """Run one cycle per collection; the ids of the messages to report failed, each
    already scheduled for an early retry (contract §7)."""
    by_id: dict[str, dict[str, Any]] = {}
    invalid: list[str] = []
    grouped: dict[ChromaDBCollection, list[tuple[str, StreamMessage]]] = defaultdict(list)
    for record in records:
        message_id = record["messageId"]  # always present in SQS events
        by_id[message_id] = record
        try:
            message = parse_record(record)
        except MessageValidationError as error:
            # The error names the rule the body broke (contract §5.1).
            logger.error("invalid queue message", message_id=message_id, error=str(error))
            invalid.append(message_id)
            continue
        grouped[message.collection].append((message_id, message))
    metrics.add_metric(name="InvalidMessages", unit=MetricUnit.Count, value=len(invalid))
    if invalid:
        # No collection to file them under: counted with the invocation's own metrics.
        invalid_reset = schedule_retry([by_id[m] for m in invalid], reason="invalid queue message")
        metrics.add_metric(
            name="VisibilityResets", unit=MetricUnit.Count, value=invalid_reset.reset
        )
        metrics.add_metric(
            name="VisibilityResetFailures", unit=MetricUnit.Count, value=invalid_reset.failed
        )

    failed = list(invalid)
    for collection, pairs in grouped.items():
        result = run_cycle(collection, pairs)
        failed_ids = sorted(result.failed_message_ids)
        reset: VisibilityReset | None = None
        if failed_ids:
            reset = schedule_retry(
                [by_id[m] for m in failed_ids if m in by_id],
                reason=result.cause.value if result.cause else "message not applied",
                collection=collection.value,
            )
        emit_cycle_metrics(result, [message for _, message in pairs], reset)
        failed += failed_ids
    return failed


def run_cycle(
    collection: ChromaDBCollection, pairs: list[tuple[str, StreamMessage]]
) -> CycleResult:
    """One cycle, logged. A cycle that raises (an AWS error outside the stages the cycle
    handles, such as taking or giving up the lease) fails all its messages, named, so they
    are retried early like any other failure instead of failing the whole invocation."""
    cycle = cycle_for(collection)
    try:
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
    logger.info(
        "compaction cycle finished",
        collection=collection.value,
        messages=len(pairs),
        failed=len(result.failures),
        cause=result.cause.value if result.cause else None,
        sink=result.sink,
        tier=result.tier.value if result.tier else None,
        version=result.published_version,
        base_version=result.base_version,
        timings_ms={k: round(v, 1) for k, v in result.timings_ms.items()},
        derived_cache_errors=result.derived_cache_errors,
    )
    return result


def schedule_retry(
    records: Sequence[Mapping[str, Any]], *, reason: str, collection: str | None = None
) -> VisibilityReset:
    """Shorten the visibility of messages about to be reported failed (contract §7), and
    log the outcome."""
    reset = reset_visibility(records, compactor_config().retry_visibility_seconds)
    logger.info(
        "failed messages scheduled for early retry",
        collection=collection,
        cause=reason,
        visibility_timeout_seconds=reset.timeout_seconds,
        reset=reset.reset,
        failed=reset.failed,
    )
    return reset


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Success / Error count invocations (contract §9): Error when any message of the event,
    # invalid ones included, is reported failed — or when the invocation itself fails.
    try:
        failed = process_records(event.get("Records") or [])
    except Exception:
        metrics.add_metric(name="CompactionLambdaError", unit=MetricUnit.Count, value=1)
        raise
    metrics.add_metric(
        name="CompactionLambdaError" if failed else "CompactionLambdaSuccess",
        unit=MetricUnit.Count,
        value=1,
    )
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
