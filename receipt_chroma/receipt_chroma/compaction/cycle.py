"""One compaction cycle for one collection (contract §5.2 and §6).

lease → pointer → working copy from the cheapest tier → apply the batch → verify →
upload → compare-and-swap of the pointer under the lease → derived pointers and EFS →
mark runs → release → retention. Messages are reported failed exactly when their
effect was not durably published.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from receipt_chroma.compaction.config import CompactionConfig
from receipt_chroma.compaction.efs_snapshot_manager import EFSSnapshotManager
from receipt_chroma.compaction.lease import LockManager
from receipt_chroma.compaction.models import CollectionUpdateResult, MessageFailure
from receipt_chroma.compaction.operations import OperationLogger
from receipt_chroma.compaction.processor import process_collection_updates, record_run_outcomes
from receipt_chroma.data.chroma_client import ChromaClient
from receipt_chroma.exceptions import SnapshotError, SnapshotUnavailableError
from receipt_chroma.snapshots.s3_store import S3SnapshotStore
from receipt_chroma.snapshots.versions import new_version_id
from receipt_chroma.snapshots.working_copy import CacheTier, WorkingCopy
from receipt_dynamo.constants import ChromaDBCollection
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.entities import SnapshotPointer
from receipt_dynamo.exceptions import (
    EntityAlreadyExistsError,
    LeaseHeldError,
    LeaseLostError,
    PointerMovedError,
)
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
    ) -> None:
        self.config = config
        self.collection = ChromaDBCollection(collection)
        self.dynamo = dynamo
        self.s3_client = s3_client
        self.logger = logger
        self.on_stage = on_stage
        self.store = S3SnapshotStore(s3_client, config.bucket, self.collection.value)
        self.efs = EFSSnapshotManager(config.chroma_root, self.collection.value)
        self.working = WorkingCopy(config.work_dir, self.collection.value)

    def _stage(self, name: str) -> None:
        if self.on_stage is not None:
            self.on_stage(name)

    def _pointer_version(self) -> str | None:
        pointer = self.dynamo.get_snapshot_pointer(self.collection)
        return None if pointer is None else pointer.version

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
        copy_changed = False
        try:
            self._stage("lease_acquired")
            started = time.perf_counter()
            pointer, result.tier = self._prepare_working_copy()
            result.base_version = pointer.version if pointer else None
            result.timings_ms["working_copy"] = (time.perf_counter() - started) * 1000
            self._stage("working_copy_ready")

            started = time.perf_counter()
            # Unlabelled before the first write, so a crash mid-apply never leaves
            # unpublished writes under the published version's label.
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

            if pointer is not None and not client.wrote:
                # No write call reached the copy: it still is that version.
                self.working.relabel(pointer.version)
                published = pointer
            else:
                started = time.perf_counter()
                published = self._publish(pointer, lease, result)
                result.timings_ms["publish"] = (time.perf_counter() - started) * 1000
            copy_changed = False
            result.failures = list(update.failures)
            self._after_publish(pointer, published, update, result)
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
            result.timings_ms["lease_hold"] = lease.held_seconds * 1000
            lease.release()
        return result

    # --- working copy -------------------------------------------------------------------

    def _prepare_working_copy(self) -> tuple[SnapshotPointer | None, CacheTier]:
        pointer = self.dynamo.get_snapshot_pointer(self.collection)
        if pointer is None:
            return self._without_pointer()
        self._repair_derived_caches(pointer)
        try:
            tier = self.working.prepare(
                pointer.version, self.efs, self.store, self.collection.value
            )
        except SnapshotError as error:
            raise SnapshotUnavailableError(
                f"pointer of {self.collection.value} names {pointer.version}, which cannot "
                f"be had: {error}"
            ) from error
        return pointer, tier

    def _repair_derived_caches(self, pointer: SnapshotPointer) -> None:
        try:
            self.store.sync_pointer_file(self._pointer_version)
        except Exception as error:  # derived cache: repaired again next cycle
            self.logger.info("pointer file not repaired", extra={"error": str(error)})
        try:
            if self.efs.has_version(pointer.version) and (
                self.efs.current_version() != pointer.version
            ):
                self.efs.set_current_version(pointer.version)
        except OSError as error:
            self.logger.info("EFS .version not repaired", extra={"error": str(error)})

    def _without_pointer(self) -> tuple[SnapshotPointer | None, CacheTier]:
        """Adopt a verified S3 snapshot, bootstrap when nothing exists, else refuse."""
        pointer_file = self.store.read_pointer_file()
        if pointer_file is None:
            if self.store.has_any_object():
                raise SnapshotUnavailableError(
                    f"{self.collection.value}: versions exist under snapshot/timestamped/ but "
                    "there is no pointer; refusing to bootstrap over data"
                )
            return None, self.working.start_empty()
        try:
            self.working.fetch_from_s3(pointer_file.version, self.store)
        except SnapshotError as error:
            raise SnapshotUnavailableError(
                f"{self.collection.value}: latest-pointer.txt names {pointer_file.version}, "
                f"which does not verify: {error}"
            ) from error
        try:
            pointer = self.dynamo.adopt_snapshot_pointer(self.collection, pointer_file.version)
        except EntityAlreadyExistsError:
            current = self.dynamo.get_snapshot_pointer(self.collection)
            if current is None or current.version != pointer_file.version:
                raise SnapshotUnavailableError(
                    f"{self.collection.value}: pointer appeared while adopting"
                ) from None
            pointer = current
        self.logger.info(
            "snapshot adopted",
            extra={"collection": self.collection.value, "version": pointer.version},
        )
        return pointer, CacheTier.S3

    # --- publishing ---------------------------------------------------------------------

    def _verify_working_copy(self) -> None:
        with ChromaClient(self.working.path, mode="read") as check:
            collection = check.get_collection(self.collection.value)
            if collection.count():
                embeddings: Any = collection.peek(1)["embeddings"]
                if embeddings is None or len(embeddings[0]) != self.config.dimension:
                    raise SnapshotError(
                        f"{self.collection.value}: working copy has dimension "
                        f"{None if embeddings is None else len(embeddings[0])}, expected "
                        f"{self.config.dimension}"
                    )

    def _publish(
        self, base: SnapshotPointer | None, lease: LockManager, result: CycleResult
    ) -> SnapshotPointer:
        self._verify_working_copy()
        version = new_version_id()
        snapshot_hash = self.store.upload(version, self.working.path)
        self._stage("uploaded")
        try:
            lease.ensure_held()
            assert lease.fencing_token is not None
            published = self.dynamo.publish_snapshot_pointer(
                self.collection,
                version,
                base=base,
                owner=lease.owner,
                fencing_token=lease.fencing_token,
            )
        except (LeaseLostError, PointerMovedError):
            if base is None:
                # A refused first publish must not leave a version without a pointer: the
                # bootstrap rule would then refuse every later cycle. The version is ours
                # alone (its id is new), so removing it touches nobody else's data.
                self.store.delete_version(version)
            raise
        self.working.relabel(version)
        result.published_version = version
        self._stage("committed")
        try:
            self.store.sync_pointer_file(self._pointer_version)
        except Exception as error:  # derived: the next cycle repairs it
            result.derived_cache_errors.append(f"pointer file: {error}")
        self._stage("pointer_file_synced")
        try:
            self.efs.store_version(version, self.working.path, snapshot_hash)
            self.efs.set_current_version(version)
        except OSError as error:
            result.derived_cache_errors.append(f"efs: {error}")
        self.logger.info(
            "snapshot published",
            extra={
                "collection": self.collection.value,
                "version": version,
                "previous_version": base.version if base else None,
            },
        )
        return published

    def _after_publish(
        self,
        base: SnapshotPointer | None,
        published: SnapshotPointer,
        update: CollectionUpdateResult,
        result: CycleResult,
    ) -> None:
        """Mark runs and apply retention; none of it can unpublish, so errors are logged."""
        result.derived_cache_errors += [
            f"run marks: {error}" for error in record_run_outcomes(self.dynamo, update)
        ]
        try:
            dropped = set(base.history if base else ()) - set(published.history)
            for version in dropped:
                self.store.delete_version(version)
            self.store.apply_retention(
                set(published.history),
                orphan_age=timedelta(seconds=2 * self.config.lock_duration_seconds),
            )
            keep = {published.version} | (
                {published.previous_version} if published.previous_version else set()
            )
            self.efs.cleanup(keep)
        except Exception as error:
            result.derived_cache_errors.append(f"retention: {error}")
