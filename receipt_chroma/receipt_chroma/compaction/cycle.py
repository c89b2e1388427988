"""One compaction cycle for one collection (contract §5.2 and §6).

lease → pointer → working copy from the cheapest tier → apply the batch → publish
(``receipt_chroma.snapshots``: check, upload what S3 lacks, compare-and-swap of the
pointer under the lease, derived pointers and EFS, mark runs, retention) → release.
Messages are reported failed exactly when their effect was not durably published.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from receipt_chroma.chroma_client import ChromaClient
from receipt_chroma.compaction.apply_batch import process_collection_updates, record_run_outcomes
from receipt_chroma.compaction.config import CompactionConfig
from receipt_chroma.compaction.efs_snapshot_manager import EFSSnapshotManager
from receipt_chroma.compaction.lease import LockManager
from receipt_chroma.compaction.models import CollectionUpdateResult, MessageFailure
from receipt_chroma.compaction.operations import OperationLogger
from receipt_chroma.exceptions import SnapshotUnavailableError
from receipt_chroma.snapshots.base import open_base
from receipt_chroma.snapshots.manifest import Manifest
from receipt_chroma.snapshots.publisher import publish
from receipt_chroma.snapshots.service import CollectionSnapshots, SnapshotSettings
from receipt_chroma.snapshots.stats import SnapshotStats
from receipt_chroma.snapshots.working_copy import CacheTier
from receipt_dynamo.constants import ChromaDBCollection
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.entities import SnapshotPointer
from receipt_dynamo.exceptions import LeaseHeldError, LeaseLostError, PointerMovedError
from receipt_dynamo_stream.models import StreamMessage

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

_LOGGER = logging.getLogger(__name__)


class FailureCause(StrEnum):
    LEASE_ACQUISITION = "lease_acquisition"
    LEASE_LOST = "lease_lost"
    POINTER_MOVED = "pointer_moved"
    SNAPSHOT_UNAVAILABLE = "snapshot_unavailable"
    PUBLISH_FAILED = "publish_failed"


@dataclass
class CycleResult:
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
    unindexed_records: int | None = None
    hnsw_flushed: bool = False

    @property
    def failed_message_ids(self) -> set[str]:
        return {f.message_id for f in self.failures}

    def fail_all(self, cause: FailureCause, reason: str) -> CycleResult:
        self.cause = cause
        self.failures = [MessageFailure(m, f"{cause.value}: {reason}") for m in self.message_ids]
        return self


class CompactionCycle:
    """Runs cycles for one collection; keep one per container to reuse the warm copy."""

    def __init__(
        self,
        config: CompactionConfig,
        collection: ChromaDBCollection | str,
        *,
        dynamo: DynamoClient,
        s3_client: S3Client,
        logger: OperationLogger = _LOGGER,
        on_stage: Callable[[str], None] | None = None,
        snapshot_settings: SnapshotSettings | None = None,
    ) -> None:
        self.config = config
        self.collection = ChromaDBCollection(collection)
        self.dynamo = dynamo
        self.s3_client = s3_client
        self.logger = logger
        self.on_stage = on_stage
        self.snapshots = CollectionSnapshots.create(
            collection=self.collection.value,
            dynamo=dynamo,
            s3_client=s3_client,
            bucket=config.bucket,
            work_dir=config.work_dir,
            efs=EFSSnapshotManager(config.chroma_root, self.collection.value),
            settings=snapshot_settings
            or SnapshotSettings.from_env(
                dimension=config.dimension, lock_duration_seconds=config.lock_duration_seconds
            ),
            logger=logger,
        )
        self.store = self.snapshots.store
        self.efs = self.snapshots.efs
        self.working = self.snapshots.working

    def _stage(self, name: str) -> None:
        if self.on_stage is not None:
            self.on_stage(name)

    # --- the cycle ----------------------------------------------------------------------

    def run(self, messages: Sequence[tuple[str, StreamMessage]]) -> CycleResult:
        result = CycleResult(self.collection, [message_id for message_id, _ in messages])
        lease = LockManager(
            self.dynamo,
            self.collection,
            duration_seconds=self.config.lock_duration_seconds,
            heartbeat_interval_seconds=self.config.heartbeat_interval_seconds,
            max_heartbeat_failures=self.config.heartbeat_max_failures,
            wait_seconds=self.config.lock_wait_seconds,
            backoff_seconds=self.config.lock_backoff_seconds,
        )
        try:
            lease.acquire()
        except LeaseHeldError as error:
            result.timings_ms["lease_wait"] = lease.waited_seconds * 1000
            return result.fail_all(FailureCause.LEASE_ACQUISITION, str(error))
        result.timings_ms["lease_wait"] = lease.waited_seconds * 1000
        stats = SnapshotStats()
        copy_changed = False
        try:
            self._stage("lease_acquired")
            started = time.perf_counter()
            pointer, result.tier = open_base(self.snapshots, stats)
            result.base_version = pointer.version if pointer else None
            result.timings_ms["working_copy"] = (time.perf_counter() - started) * 1000
            self._stage("working_copy_ready")

            started = time.perf_counter()
            # Unlabelled before the first write, so a crash mid-apply never leaves
            # unpublished writes under the published version's label.
            manifest = self.working.manifest()
            self.working.mark_dirty()
            copy_changed = True
            with ChromaClient(self.working.path, mode="write") as client:
                update = process_collection_updates(
                    messages,
                    self.collection,
                    client,
                    self.dynamo,
                    bucket=self.config.bucket,
                    s3_client=self.s3_client,
                    dimension=self.config.dimension,
                    work_dir=self.config.work_dir,
                    logger=self.logger,
                )
            result.update = update
            result.timings_ms["apply"] = (time.perf_counter() - started) * 1000
            self._stage("applied")

            self._conclude(
                pointer,
                manifest=manifest,
                wrote=client.wrote,
                update=update,
                lease=lease,
                stats=stats,
                result=result,
            )
            copy_changed = False
        except LeaseLostError as error:
            result.fail_all(FailureCause.LEASE_LOST, str(error))
        except PointerMovedError as error:
            result.fail_all(FailureCause.POINTER_MOVED, str(error))
        except SnapshotUnavailableError as error:
            result.fail_all(FailureCause.SNAPSHOT_UNAVAILABLE, str(error))
        except Exception as error:
            result.fail_all(FailureCause.PUBLISH_FAILED, f"{type(error).__name__}: {error}")
        finally:
            if copy_changed:
                self.working.discard()
            result.snapshot_bytes_uploaded = stats.bytes_uploaded
            result.snapshot_bytes_downloaded = stats.bytes_downloaded
            result.timings_ms["lease_hold"] = lease.held_seconds * 1000
            lease.release()
        return result

    def _conclude(
        self,
        pointer: SnapshotPointer | None,
        *,
        manifest: Manifest | None,
        wrote: bool,
        update: CollectionUpdateResult,
        lease: LockManager,
        stats: SnapshotStats,
        result: CycleResult,
    ) -> None:
        """Publish the applied copy — or, when no write call reached it, give it its
        label back — and mark the runs. Raises (before the pointer moved) what fails the
        cycle's messages."""
        if pointer is not None and not wrote:
            # No write call reached the copy: it still is that version.
            self.working.relabel(pointer.version, manifest)
            result.failures = list(update.failures)
            self._mark_runs(update, result)
            return
        started = time.perf_counter()
        published = publish(
            self.snapshots,
            pointer,
            lease,
            stats=stats,
            errors=result.derived_cache_errors,
            on_stage=self._stage,
            after_commit=lambda: self._mark_runs(update, result),
        )
        result.published_version = published.version
        result.unindexed_records = stats.unindexed_records
        result.hnsw_flushed = stats.hnsw_flushed
        result.failures = list(update.failures)
        result.timings_ms["publish"] = (time.perf_counter() - started) * 1000

    def _mark_runs(self, update: CollectionUpdateResult, result: CycleResult) -> None:
        """Mark each run on its own; none of it can unpublish, so errors are reported."""
        result.derived_cache_errors += [
            f"run marks: {error}" for error in record_run_outcomes(self.dynamo, update)
        ]
