"""The snapshot sink (contract §5.2 and §6): the working copy of the published version
from the cheapest tier, the batch applied to it, then a new version published by the
compare-and-swap of the pointer under the lease (``receipt_chroma.snapshots``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from receipt_chroma.chroma_client import ChromaClient
from receipt_chroma.compaction.apply_batch import process_collection_updates
from receipt_chroma.compaction.config import CompactionConfig
from receipt_chroma.compaction.lease import LockManager
from receipt_chroma.compaction.models import CollectionUpdateResult, CycleResult
from receipt_chroma.compaction.operations import OperationLogger
from receipt_chroma.compaction.sinks.base import Durable, Stage
from receipt_chroma.snapshots.base import open_base
from receipt_chroma.snapshots.manifest import Manifest
from receipt_chroma.snapshots.publisher import publish, retain
from receipt_chroma.snapshots.service import CollectionSnapshots
from receipt_chroma.snapshots.stats import SnapshotStats
from receipt_dynamo.constants import ChromaDBCollection
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.entities import SnapshotPointer
from receipt_dynamo_stream.models import StreamMessage

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

_LOGGER = logging.getLogger(__name__)


class SnapshotSink:
    """Applies a batch to the working copy and publishes it; keeps the warm copy between
    cycles (one sink per collection per container)."""

    name = "snapshot"

    def __init__(
        self,
        config: CompactionConfig,
        collection: ChromaDBCollection,
        snapshots: CollectionSnapshots,
        *,
        dynamo: DynamoClient,
        s3_client: S3Client,
        logger: OperationLogger = _LOGGER,
        stage: Stage,
    ) -> None:
        self.config = config
        self.collection = collection
        self.snapshots = snapshots
        self.working = snapshots.working
        self.dynamo = dynamo
        self.s3_client = s3_client
        self.logger = logger
        self.stage = stage

    def apply(
        self,
        messages: Sequence[tuple[str, StreamMessage]],
        lease: LockManager,
        result: CycleResult,
        durable: Durable,
    ) -> CollectionUpdateResult:
        stats = SnapshotStats()
        copy_changed = False
        try:
            started = time.perf_counter()
            pointer, result.tier = open_base(self.snapshots, stats, lease)
            result.base_version = pointer.version if pointer else None
            result.timings_ms["working_copy"] = (time.perf_counter() - started) * 1000
            self.stage("working_copy_ready")

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
            self.stage("applied")

            self._conclude(
                pointer,
                manifest=manifest,
                wrote=client.wrote,
                update=update,
                lease=lease,
                stats=stats,
                result=result,
                durable=durable,
            )
            copy_changed = False
            return update
        finally:
            if copy_changed:
                self.working.discard()
            result.snapshot_bytes_uploaded = stats.bytes_uploaded
            result.snapshot_bytes_downloaded = stats.bytes_downloaded
            result.snapshot_cache_repairs = stats.cache_repairs
            result.efs_failures = stats.efs_failures
            result.efs_write_failures = stats.efs_write_failures
            result.cache_repair_failures = stats.cache_repair_failures
            result.retention_skipped = stats.retention_skipped

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
        durable: Durable,
    ) -> None:
        """Publish the applied copy — or, when no write call reached it, give it its
        label back — and mark the runs. Raises (before the pointer moved) what fails the
        cycle's messages."""
        if pointer is not None and not wrote:
            # No write call reached the copy: it still is that version. Its runs are
            # marked under the lease (§5.4), so the lease is confirmed first.
            lease.heartbeat()
            lease.ensure_held()
            self.working.relabel_unwritten(pointer.version, manifest)
            durable(update)
            # Orphans age out even when nothing is published (a quiet collection).
            retain(self.snapshots, lease, result.derived_cache_errors, stats)
            return
        started = time.perf_counter()
        published = publish(
            self.snapshots,
            pointer,
            lease,
            stats=stats,
            errors=result.derived_cache_errors,
            on_stage=self.stage,
            after_commit=lambda: durable(update),
        )
        result.published_version = published.version
        result.unindexed_records = stats.unindexed_records
        result.hnsw_flushed = stats.hnsw_flushed
        result.timings_ms["publish"] = (time.perf_counter() - started) * 1000
