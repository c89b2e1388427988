"""One compaction cycle for one collection (contract §5.2, §6 and §12), stage by stage.

lease → open → plan → apply → commit → mark → retain → release (``receipt_chroma.stages``).
The plan reads the receipts' rows and marks the runs it merges PROCESSING, once; each sink
(``compaction.sinks``, chosen by ``CHROMA_SINK``) opens its collection, the plan is applied
to it — the deltas fetched once, ahead of the writes — and the sink commits: a snapshot
version published by the pointer swap, or every server write acknowledged under a
confirmed lease. Only then are the runs marked, and retention runs under the confirmed
lease. The cycle builds its ``CycleResult`` itself: messages are reported failed exactly
when their effect is not durably in every sink.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from receipt_chroma.compaction.apply_batch import apply_plan, record_run_outcomes
from receipt_chroma.compaction.compaction_run import MergeTarget, fetch_deltas
from receipt_chroma.compaction.config import CompactionConfig
from receipt_chroma.compaction.deltas.fetch import FetchedDeltas
from receipt_chroma.compaction.efs_snapshot_manager import EFSSnapshotManager
from receipt_chroma.compaction.lease import LockManager
from receipt_chroma.compaction.models import CollectionUpdateResult, CycleResult, FailureCause
from receipt_chroma.compaction.operations import OperationLogger
from receipt_chroma.compaction.plan import BatchPlan, plan_batch
from receipt_chroma.compaction.sinks import (
    SERVER_STAGES,
    Commit,
    OpenedCollection,
    Sink,
    combine,
    sinks_for,
)
from receipt_chroma.exceptions import SinkUnavailableError, SnapshotUnavailableError
from receipt_chroma.snapshots.fence import call_budget
from receipt_chroma.snapshots.publisher import dropped_versions
from receipt_chroma.snapshots.retention import retain
from receipt_chroma.snapshots.service import CollectionSnapshots, SnapshotSettings
from receipt_chroma.stages import OnStage, Stage, StageRunner, Trace
from receipt_dynamo.constants import ChromaDBCollection
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.exceptions import LeaseHeldError, LeaseLostError, PointerMovedError
from receipt_dynamo_stream.compactor_defaults import SinkKind
from receipt_dynamo_stream.models import StreamMessage

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

_LOGGER = logging.getLogger(__name__)

# What fails every message of a cycle, and the cause it is reported under.
_CAUSES: tuple[tuple[type[Exception], FailureCause], ...] = (
    (LeaseLostError, FailureCause.LEASE_LOST),
    (PointerMovedError, FailureCause.POINTER_MOVED),
    (SnapshotUnavailableError, FailureCause.SNAPSHOT_UNAVAILABLE),
    (SinkUnavailableError, FailureCause.SINK_UNAVAILABLE),
)


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


@dataclass
class _Progress:
    """What the stages of one cycle produced so far (the cycle's result is built from it,
    whether the cycle finished or not)."""

    opened: dict[SinkKind, OpenedCollection] = field(default_factory=dict)
    plan: BatchPlan | None = None
    commits: dict[SinkKind, Commit] = field(default_factory=dict)
    update: CollectionUpdateResult | None = None
    errors: list[str] = field(default_factory=list)


class CompactionCycle:
    """Runs cycles for one collection; keep one per container to reuse the warm copy.

    ``on_stage`` is told each stage that ended (tests and the interleaving explorer stop a
    compactor there); ``trace`` wraps each stage's work (the Lambda's tracing subsegments).
    ``snapshot_settings`` overrides the config's (tests and benchmarks tune the HNSW policy).
    """

    def __init__(
        self,
        config: CompactionConfig,
        collection: ChromaDBCollection | str,
        *,
        dynamo: DynamoClient,
        s3_client: S3Client,
        logger: OperationLogger = _LOGGER,
        on_stage: OnStage | None = None,
        trace: Trace | None = None,
        snapshot_settings: SnapshotSettings | None = None,
    ) -> None:
        self.config = config
        self.collection = ChromaDBCollection(collection)
        self.dynamo = dynamo
        self.s3_client = s3_client
        self.logger = logger
        self.on_stage = on_stage
        self.trace = trace
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
        self.efs = self.snapshots.efs
        self.working = self.snapshots.working
        self.sinks: tuple[Sink, ...] = sinks_for(config, self.snapshots)
        _warn_if_retention_cannot_fit(config, s3_client)

    def _lease(self) -> LockManager:
        return LockManager(
            self.dynamo,
            self.collection,
            duration_seconds=self.config.lock_duration_seconds,
            heartbeat_interval_seconds=self.config.heartbeat_interval_seconds,
            max_heartbeat_failures=self.config.heartbeat_max_failures,
            wait_seconds=self.config.lock_wait_seconds,
            backoff_seconds=self.config.lock_backoff_seconds,
            safety_margin_seconds=self.config.lease_safety_margin_seconds,
        )

    # --- the cycle ----------------------------------------------------------------------

    def run(self, messages: Sequence[tuple[str, StreamMessage]]) -> CycleResult:
        stages = StageRunner(self.on_stage, self.trace)
        lease = self._lease()
        progress = _Progress()
        failure: tuple[FailureCause, str] | None = None
        try:
            with stages.run(Stage.LEASE):
                lease.acquire()
            self._under_lease(messages, lease, stages, progress)
        except LeaseHeldError as error:
            failure = (FailureCause.LEASE_ACQUISITION, str(error))
        except Exception as error:
            failure = _cause_of(error)
        finally:
            held_ms = None if lease.acquired_at is None else lease.held_seconds * 1000
            _release(lease, stages)
        result = self._result(messages, progress, stages, lease, held_ms=held_ms)
        return result if failure is None else result.fail_all(*failure)

    def _under_lease(
        self,
        messages: Sequence[tuple[str, StreamMessage]],
        lease: LockManager,
        stages: StageRunner,
        progress: _Progress,
    ) -> None:
        try:
            # Every sink is opened before the plan marks a run PROCESSING: an unavailable
            # snapshot or server fails the cycle with the table as it was.
            for sink in self.sinks:
                with stages.run(Stage.OPEN, _prefix(sink)):
                    progress.opened[sink.kind] = sink.open(lease)
            update = self._plan_apply_commit(messages, lease, stages, progress)
        except BaseException:
            for sink in self.sinks:
                opened = progress.opened.get(sink.kind)
                if opened is not None and sink.kind not in progress.commits:
                    sink.abandon(opened)
            raise
        with stages.run(Stage.MARK):
            unmarked = record_run_outcomes(self.dynamo, update)
        for run_id, why in unmarked.items():
            # Published but still PROCESSING: the retry marks it (its re-merge writes
            # nothing), so its messages are not acknowledged yet.
            assert progress.plan is not None  # a cycle that applied had a plan
            update.failures += progress.plan.run_failures(run_id, f"not marked: {why}")
        opened = progress.opened.get(SinkKind.SNAPSHOT)
        if opened is not None:
            published = progress.commits[SinkKind.SNAPSHOT].published
            with stages.run(Stage.RETAIN):
                # Orphans age out even when nothing is published (a quiet collection).
                retention = retain(
                    self.snapshots,
                    lease,
                    opened.stats,
                    dropped=dropped_versions(opened.base, published) if published else None,
                )
                progress.errors += retention.errors

    def _plan_apply_commit(
        self,
        messages: Sequence[tuple[str, StreamMessage]],
        lease: LockManager,
        stages: StageRunner,
        progress: _Progress,
    ) -> CollectionUpdateResult:
        """Plan once, fetch the deltas once, then apply and commit each sink in turn (the
        server before the snapshot). Returns what every sink did."""
        with stages.run(Stage.PLAN):
            plan = progress.plan = plan_batch(messages, self.collection, self.dynamo, self.logger)
        updates: dict[SinkKind, CollectionUpdateResult] = {}
        with self._fetched(plan) as deltas:
            for sink in self.sinks:
                opened = progress.opened[sink.kind]
                with stages.run(Stage.APPLY, _prefix(sink)):
                    updates[sink.kind] = progress.update = _apply(plan, opened, deltas, self.logger)
                commit = sink.commit(opened, lease, stages)
                progress.commits[sink.kind] = commit
                progress.errors += commit.errors
        server, snapshot = updates.get(SinkKind.SERVER), updates.get(SinkKind.SNAPSHOT)
        if server is not None and snapshot is not None:
            update = combine(server, snapshot)
        else:
            found = server or snapshot
            assert found is not None  # every configuration has a sink
            update = found
        progress.update = update
        return update

    @contextmanager
    def _fetched(self, plan: BatchPlan) -> Iterator[FetchedDeltas[MergeTarget] | None]:
        """The plan's deltas, fetched once for every sink of the cycle (none to merge: None)."""
        if not plan.targets:
            yield None
            return
        with fetch_deltas(
            plan.targets,
            plan.collection,
            bucket=self.config.bucket,
            s3_client=self.s3_client,
            dimension=self.config.dimension,
            work_dir=self.config.work_dir,
            keep=len(self.sinks) > 1,
        ) as deltas:
            yield deltas

    def _result(
        self,
        messages: Sequence[tuple[str, StreamMessage]],
        progress: _Progress,
        stages: StageRunner,
        lease: LockManager,
        *,
        held_ms: float | None = None,
    ) -> CycleResult:
        """The cycle's result, from what its stages produced (contract §9's metrics)."""
        result = CycleResult(self.collection, [message_id for message_id, _ in messages])
        result.sink = self.config.sink.value
        result.update = progress.update
        if progress.update is not None:
            result.failures = list(progress.update.failures)
        result.derived_cache_errors = list(progress.errors)
        result.timings_ms = {"lease_wait": lease.waited_seconds * 1000, **stages.timings_ms}
        if held_ms is not None:
            result.timings_ms["lease_hold"] = held_ms
        result.server_applied = SinkKind.SERVER in progress.commits
        opened = progress.opened.get(SinkKind.SNAPSHOT)
        if opened is not None:
            result.tier = opened.tier
            result.base_version = opened.base.version if opened.base else None
            _report_stats(result, opened)
            commit = progress.commits.get(SinkKind.SNAPSHOT)
            if commit is not None and commit.published is not None:
                result.published_version = commit.published.version
                result.unindexed_records = opened.stats.unindexed_records
                result.hnsw_flushed = opened.stats.hnsw_flushed
        return result


def _release(lease: LockManager, stages: StageRunner) -> None:
    """Give the lease up. A release that fails changes nothing the cycle did: the lease
    expires on its own, and the next holder takes it then."""
    try:
        with stages.run(Stage.RELEASE):
            lease.release()
    except Exception as error:
        _LOGGER.warning(
            "lease not released; it expires on its own",
            extra={
                "collection": lease.collection.value,
                "error": f"{type(error).__name__}: {error}",
            },
        )


def _prefix(sink: Sink) -> str:
    return SERVER_STAGES if sink.kind is SinkKind.SERVER else ""


def _apply(
    plan: BatchPlan,
    opened: OpenedCollection,
    deltas: FetchedDeltas[MergeTarget] | None,
    logger: OperationLogger,
) -> CollectionUpdateResult:
    """The apply stage in one sink. A server's client is closed when the stage ends; the
    snapshot sink's stays open for its commit (``close_after_apply``). A server that went
    away fails the cycle."""
    try:
        return apply_plan(plan, opened.client, deltas, logger)
    except Exception as error:
        if opened.client.unavailable is None:
            raise
        raise SinkUnavailableError(opened.client.unavailable) from error
    finally:
        if opened.close_after_apply:
            opened.client.close()


def _report_stats(result: CycleResult, opened: OpenedCollection) -> None:
    stats = opened.stats
    result.snapshot_bytes_uploaded = stats.bytes_uploaded
    result.snapshot_bytes_downloaded = stats.bytes_downloaded
    result.snapshot_cache_repairs = stats.cache_repairs
    result.efs_failures = stats.efs_failures
    result.efs_write_failures = stats.efs_write_failures
    result.cache_repair_failures = stats.cache_repair_failures
    result.retention_skipped = stats.retention_skipped


def _cause_of(error: Exception) -> tuple[FailureCause, str]:
    for kind, cause in _CAUSES:
        if isinstance(error, kind):
            return cause, str(error)
    return FailureCause.PUBLISH_FAILED, f"{type(error).__name__}: {error}"
