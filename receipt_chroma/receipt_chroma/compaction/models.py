"""Results of compaction work: per run, per batch of messages, and per cycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from receipt_chroma.snapshots.models import CacheTier
from receipt_dynamo.constants import ChromaDBCollection

ReceiptKey = tuple[str, int]
"""(image_id, receipt_id)."""


@dataclass(frozen=True, slots=True)
class DeltaRecord:
    """One record of a delta: ``(id, embedding, document, metadata)``."""

    id: str
    embedding: Any  # a float32 row of the delta's vector block (read_delta)
    document: str | None
    metadata: dict[str, Any]


@dataclass(slots=True)
class RunMergeResult:
    """What happened to one CompactionRun in one collection."""

    run_id: str
    image_id: str
    receipt_id: int
    collection: ChromaDBCollection
    merged_vectors: int = 0
    dropped_vectors: int = 0  # delta records whose line/word row is absent
    held_by_newer: int = 0  # delta records whose record holds a newer run's vector
    skipped_reason: str | None = None
    error: str | None = None
    # A backfill re-merge of a run already COMPLETED: a failure leaves it COMPLETED (the
    # published version still holds its merge).
    was_completed: bool = False

    @property
    def merged(self) -> bool:
        """The delta was merged in this batch (not skipped, not failed); the run is marked
        COMPLETED once the batch's version is published (or, when the merge needed no
        write, at the end of the cycle)."""
        return self.error is None and self.skipped_reason is None


@dataclass(frozen=True, slots=True)
class MessageFailure:
    message_id: str
    reason: str


@dataclass(slots=True)
class CollectionUpdateResult:
    """The outcome of applying one batch of messages to one collection."""

    collection: ChromaDBCollection
    failures: list[MessageFailure] = field(default_factory=list)
    runs: list[RunMergeResult] = field(default_factory=list)
    receipts: int = 0
    metadata_updates: int = 0
    label_updates: int = 0
    records_updated: int = 0
    records_deleted: int = 0
    invalid_rows: int = 0

    @property
    def failed_message_ids(self) -> set[str]:
        return {f.message_id for f in self.failures}

    @property
    def vectors_merged(self) -> int:
        return sum(r.merged_vectors for r in self.runs)


class FailureCause(StrEnum):
    """Why a cycle failed all of its messages."""

    LEASE_ACQUISITION = "lease_acquisition"
    LEASE_LOST = "lease_lost"
    POINTER_MOVED = "pointer_moved"
    SNAPSHOT_UNAVAILABLE = "snapshot_unavailable"
    PUBLISH_FAILED = "publish_failed"
    SINK_UNAVAILABLE = "sink_unavailable"  # the Chroma server cannot be reached (§12)


@dataclass
class CycleResult:
    """The outcome of one compaction cycle for one collection: the messages to report
    failed, and what the cycle did (contract §9 metrics)."""

    collection: ChromaDBCollection
    message_ids: list[str]
    failures: list[MessageFailure] = field(default_factory=list)
    cause: FailureCause | None = None
    tier: CacheTier | None = None
    published_version: str | None = None
    base_version: str | None = None
    update: CollectionUpdateResult | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    derived_cache_errors: list[str] = field(default_factory=list)
    # Contract §9 (rev 2): SnapshotBytesUploaded / SnapshotBytesDownloaded (S3 bytes this
    # cycle moved: compressed objects, manifests, format 1 tarballs) and UnindexedRecords
    # (vectors the published version's HNSW files do not hold yet; None when nothing
    # was published).
    snapshot_bytes_uploaded: int = 0
    snapshot_bytes_downloaded: int = 0
    # SnapshotCacheRepairs / EfsFailures / EfsWriteFailures / CacheRepairFailures: see
    # ``SnapshotStats`` (cached copies read again; failed EFS operations, and the EFS
    # writes among them; derived caches not brought in line with the pointer).
    snapshot_cache_repairs: int = 0
    efs_failures: int = 0
    efs_write_failures: int = 0
    cache_repair_failures: int = 0
    # RetentionSkipped (§9 rev 3): retention not done, or cut short, because the lease was
    # lost or unconfirmable or its deadline came first; the next holder does it.
    retention_skipped: int = 0
    unindexed_records: int | None = None
    hnsw_flushed: bool = False
    sink: str = "snapshot"
    server_applied: bool = False  # every server write of the batch was acknowledged

    @property
    def failed_message_ids(self) -> set[str]:
        return {f.message_id for f in self.failures}

    def fail_all(self, cause: FailureCause, reason: str) -> CycleResult:
        self.cause = cause
        self.failures = [MessageFailure(m, f"{cause.value}: {reason}") for m in self.message_ids]
        return self
