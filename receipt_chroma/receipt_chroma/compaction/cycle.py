"""One compaction cycle for one collection (contract §5.2, §6 and §12).

lease → the sink (``compaction.sinks``, chosen by ``CHROMA_SINK``) → release. The snapshot
sink takes the pointer, a working copy from the cheapest tier, applies the batch and
publishes (``receipt_chroma.snapshots``: check, upload what S3 lacks, compare-and-swap of
the pointer under the lease, derived pointers and EFS, mark runs, retention); the server
sink applies the batch to a Chroma server and marks the runs once every write is
acknowledged; ``both`` does both. Messages are reported failed exactly when their effect
is not durably in the sink.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from receipt_chroma.compaction.apply_batch import record_run_outcomes
from receipt_chroma.compaction.config import CompactionConfig
from receipt_chroma.compaction.efs_snapshot_manager import EFSSnapshotManager
from receipt_chroma.compaction.lease import LockManager
from receipt_chroma.compaction.models import CollectionUpdateResult, CycleResult, FailureCause
from receipt_chroma.compaction.operations import OperationLogger
from receipt_chroma.compaction.sinks import Sink, sink_for
from receipt_chroma.exceptions import SinkUnavailableError, SnapshotUnavailableError
from receipt_chroma.snapshots.fence import call_budget
from receipt_chroma.snapshots.service import CollectionSnapshots, SnapshotSettings
from receipt_dynamo.constants import ChromaDBCollection
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.exceptions import LeaseHeldError, LeaseLostError, PointerMovedError
from receipt_dynamo_stream.models import StreamMessage

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

_LOGGER = logging.getLogger(__name__)


def _no_stage(_: str) -> None:
    return None


def _warn_if_retention_cannot_fit(config: CompactionConfig, s3_client: S3Client) -> None:
    """Retention deletes only when a call's worst case ends before the lease deadline
    (§6 rev 3): say at once when this client's timeouts can never fit this lease."""
    room = config.lock_duration_seconds - min(
        config.lease_safety_margin_seconds, config.lock_duration_seconds / 4
    )
    budget = call_budget(s3_client).total_seconds()
    if budget >= room:
        _LOGGER.error(
            "retention can never delete: an S3 call may take longer than the lease leaves",
            extra={
                "s3_call_worst_case_seconds": budget,
                "lease_seconds_before_deadline": room,
                "settings": "LOCK_DURATION_SECONDS, LEASE_SAFETY_MARGIN_SECONDS",
            },
        )


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
            settings=snapshot_settings or config.snapshot_settings,
            logger=logger,
        )
        self.store = self.snapshots.store
        _warn_if_retention_cannot_fit(config, s3_client)
        self.efs = self.snapshots.efs
        self.working = self.snapshots.working
        # The sink gets the caller's callback, not a method of this cycle: no reference
        # cycle, so a dropped cycle (and the flock of its working copy) is freed at once.
        self.sink: Sink = sink_for(
            config,
            self.collection,
            self.snapshots,
            dynamo=dynamo,
            s3_client=s3_client,
            logger=logger,
            stage=on_stage or _no_stage,
        )

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
            safety_margin_seconds=self.config.lease_safety_margin_seconds,
        )
        try:
            lease.acquire()
        except LeaseHeldError as error:
            result.timings_ms["lease_wait"] = lease.waited_seconds * 1000
            return result.fail_all(FailureCause.LEASE_ACQUISITION, str(error))
        result.timings_ms["lease_wait"] = lease.waited_seconds * 1000
        result.sink = self.sink.name
        try:
            self._stage("lease_acquired")
            update = self.sink.apply(
                messages, lease, result, durable=lambda done: self._mark_runs(done, result)
            )
            result.failures = list(update.failures)
        except LeaseLostError as error:
            result.fail_all(FailureCause.LEASE_LOST, str(error))
        except PointerMovedError as error:
            result.fail_all(FailureCause.POINTER_MOVED, str(error))
        except SnapshotUnavailableError as error:
            result.fail_all(FailureCause.SNAPSHOT_UNAVAILABLE, str(error))
        except SinkUnavailableError as error:
            result.fail_all(FailureCause.SINK_UNAVAILABLE, str(error))
        except Exception as error:
            result.fail_all(FailureCause.PUBLISH_FAILED, f"{type(error).__name__}: {error}")
        finally:
            result.timings_ms["lease_hold"] = lease.held_seconds * 1000
            lease.release()
        return result

    def _mark_runs(self, update: CollectionUpdateResult, result: CycleResult) -> None:
        """Mark each run on its own; none of it can unpublish, so errors are reported."""
        result.derived_cache_errors += [
            f"run marks: {error}" for error in record_run_outcomes(self.dynamo, update)
        ]
