"""What a finished cycle reports (contract §9): its metrics, under its collection's
dimension, and the fields of its ``compaction cycle finished`` log line."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from receipt_chroma.compaction import FailureCause
from receipt_chroma.compaction.sinks import SERVER_STAGES
from receipt_chroma.lambda_support.models import CycleMetric, MetricUnitName, VisibilityReset
from receipt_chroma.stages import Stage
from receipt_dynamo_stream.models import StreamMessage

if TYPE_CHECKING:
    from receipt_chroma.compaction import CycleResult

CAUSE_METRICS = {
    FailureCause.LEASE_ACQUISITION: "LeaseAcquisitionFailures",
    FailureCause.LEASE_LOST: "LeaseLost",
    FailureCause.POINTER_MOVED: "SnapshotPublishFailures",
    FailureCause.PUBLISH_FAILED: "SnapshotPublishFailures",
    FailureCause.SNAPSHOT_UNAVAILABLE: "SnapshotUnavailable",
    FailureCause.SINK_UNAVAILABLE: "SinkUnavailable",
}
TIMING_METRICS = {
    "lease_wait": "LeaseWaitTime",
    "lease_hold": "LeaseHoldTime",
    Stage.OPEN.segment: "WorkingCopyTime",
    Stage.APPLY.segment: "ApplyTime",
    f"{SERVER_STAGES}{Stage.APPLY.segment}": "ServerApplyTime",
}
# PublishTime: the snapshot commit's stages, from the check to the EFS version.
PUBLISH_STAGES = tuple(
    stage.segment
    for stage in (
        Stage.CHECK,
        Stage.UPLOAD,
        Stage.MANIFEST,
        Stage.COMMIT,
        Stage.POINTER_FILE,
        Stage.EFS,
    )
)

# A row's value for a cycle (and its visibility reset, if any); None: the row is not emitted.
Getter = Callable[["CycleResult", VisibilityReset | None], float | None]


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


def _publish_time(result: CycleResult, _: VisibilityReset | None) -> float | None:
    """The snapshot commit's stages summed, for a cycle that published (a cycle that wrote
    nothing only relabels its copy; one that failed published nothing)."""
    if result.published_version is None:
        return None
    times = [result.timings_ms[s] for s in PUBLISH_STAGES if s in result.timings_ms]
    return sum(times) if times else None


def _reset(attribute: str) -> Getter:
    return lambda _, reset: None if reset is None else getattr(reset, attribute)


COUNT: MetricUnitName = "Count"
BYTES: MetricUnitName = "Bytes"
MILLISECONDS: MetricUnitName = "Milliseconds"
CYCLE_METRICS: tuple[tuple[str, MetricUnitName, Getter], ...] = (
    ("DeltasMerged", COUNT, _deltas_merged),
    ("VectorsMerged", COUNT, _update("vectors_merged")),
    ("CompactionMetadataUpdates", COUNT, _update("metadata_updates")),
    ("CompactionLabelUpdates", COUNT, _update("label_updates")),
    ("RecordsDeleted", COUNT, _update("records_deleted")),
    ("InvalidTableRows", COUNT, _update("invalid_rows")),
    ("SnapshotPublished", COUNT, _flag(lambda r: r.published_version is not None)),
    ("ServerSinkApplied", COUNT, _flag(lambda r: r.server_applied)),
    ("DerivedCacheErrors", COUNT, lambda r, _: len(r.derived_cache_errors) or None),
    *((name, MILLISECONDS, _timing(key)) for key, name in TIMING_METRICS.items()),
    ("PublishTime", MILLISECONDS, _publish_time),
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


def message_type_metric(message: StreamMessage) -> str:
    """``MessagesReceiptWordLabel`` for a RECEIPT_WORD_LABEL message, and so on."""
    return f"Messages{message.entity_type.value.title().replace('_', '')}"


def cycle_metrics(
    result: CycleResult,
    messages: Sequence[StreamMessage],
    reset: VisibilityReset | None = None,
) -> list[CycleMetric]:
    """The cycle's metrics: its messages by entity type, the cache tier and failure cause
    (named by their values), then the rows of ``CYCLE_METRICS`` that have a value."""
    metrics = [
        CycleMetric(name, COUNT, count)
        for name, count in Counter(message_type_metric(m) for m in messages).items()
    ]
    if result.tier is not None:
        # The contract's names: CacheTierWarm, CacheTierCatchUp, CacheTierEfs, CacheTierS3.
        metrics.append(CycleMetric(result.tier.metric_name, COUNT, 1))
    if result.cause is not None:
        metrics.append(CycleMetric(CAUSE_METRICS[result.cause], COUNT, 1))
    for name, unit, getter in CYCLE_METRICS:
        value = getter(result, reset)
        if value is not None:
            metrics.append(CycleMetric(name, unit, value))
    return metrics


def cycle_log_fields(result: CycleResult, messages: int) -> dict[str, Any]:
    """The fields of the cycle's ``compaction cycle finished`` log line."""
    return {
        "collection": result.collection.value,
        "messages": messages,
        "failed": len(result.failures),
        "cause": result.cause.value if result.cause else None,
        "sink": result.sink,
        "tier": result.tier.value if result.tier else None,
        "version": result.published_version,
        "base_version": result.base_version,
        "timings_ms": {k: round(v, 1) for k, v in result.timings_ms.items()},
        "derived_cache_errors": result.derived_cache_errors,
    }
