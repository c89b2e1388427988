"""Both sinks, for the migration from snapshots to a Chroma server (contract §12): a
message succeeds only when both sinks hold its effect.

The server is written first, then the snapshot is applied and published, both under the
one lease. Each sink reads the rows and merges the deltas itself (the same strongly
consistent reads; the table may move between the two, which every later message repairs
in both). A failure of either fails its messages; an unreachable server fails the whole
cycle before the snapshot is touched. A run is COMPLETED only when it merged in both —
marked once the snapshot version holding it is published — so a run one sink missed is
merged again by the retry (a re-merge is idempotent in the other).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from receipt_chroma.compaction.lease import LockManager
from receipt_chroma.compaction.models import (
    CollectionUpdateResult,
    CycleResult,
    MessageFailure,
    RunMergeResult,
)
from receipt_chroma.compaction.sinks.base import Durable
from receipt_chroma.compaction.sinks.server import ServerSink
from receipt_chroma.compaction.sinks.snapshot import SnapshotSink
from receipt_dynamo_stream.models import StreamMessage


def _combined_run(runs: list[RunMergeResult]) -> RunMergeResult:
    """One run's outcome over the two sinks: failed if it failed in either, merged only if
    it merged in both, otherwise left as it is (not marked). A run missing from one sink's
    results was not merged there (its row could not be read or marked PROCESSING; its
    messages fail in that sink)."""
    failed = [run.error for run in runs if run.error is not None]
    if failed:
        return replace(runs[-1], error="; ".join(failed))
    skipped = [run.skipped_reason for run in runs if run.skipped_reason is not None]
    if len(runs) < 2:
        skipped.append("not merged by both sinks")
    if skipped:
        return replace(runs[-1], skipped_reason=skipped[0])
    return runs[-1]


def combine(
    server: CollectionUpdateResult, snapshot: CollectionUpdateResult
) -> CollectionUpdateResult:
    """What both sinks did: the failures of either (one per message, both reasons), the
    runs merged in both, and the snapshot's counts (the sink still authoritative while
    migrating; the server's match once it is seeded)."""
    reasons: dict[str, list[str]] = {}
    for sink, update in (("server", server), ("snapshot", snapshot)):
        for failure in update.failures:
            reasons.setdefault(failure.message_id, []).append(f"{sink}: {failure.reason}")
    runs: dict[tuple[str, str, int], list[RunMergeResult]] = {}
    for run in (*server.runs, *snapshot.runs):
        runs.setdefault((run.run_id, run.image_id, run.receipt_id), []).append(run)
    return replace(
        snapshot,
        failures=[MessageFailure(m, "; ".join(why)) for m, why in reasons.items()],
        runs=[_combined_run(outcomes) for outcomes in runs.values()],
    )


class BothSink:
    name = "both"

    def __init__(self, server: ServerSink, snapshot: SnapshotSink) -> None:
        self.server = server
        self.snapshot = snapshot

    def apply(
        self,
        messages: Sequence[tuple[str, StreamMessage]],
        lease: LockManager,
        result: CycleResult,
        durable: Durable,
    ) -> CollectionUpdateResult:
        # The server's runs are marked together with the snapshot's, after the publish.
        on_server = self.server.apply(messages, lease, result, durable=lambda _: None)
        on_snapshot = self.snapshot.apply(
            messages, lease, result, durable=lambda update: durable(combine(on_server, update))
        )
        result.update = combine(on_server, on_snapshot)
        return result.update
