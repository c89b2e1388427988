"""Both sinks, for the migration from snapshots to a Chroma server (contract §12): a
message succeeds only when both sinks hold its effect.

The cycle plans and fetches once, then applies the plan to the server and commits it,
then to the snapshot, which it publishes — both under the one lease. A failure of either
fails its messages; an unreachable server fails the whole cycle before the snapshot is
touched. A run is COMPLETED only when it merged in both — marked once the snapshot version
holding it is published — so a run one sink missed is merged again by the retry (a
re-merge is idempotent in the other).
"""

from __future__ import annotations

from dataclasses import replace

from receipt_chroma.compaction.models import (
    CollectionUpdateResult,
    MessageFailure,
    RunMergeResult,
)


def _combined_run(runs: list[RunMergeResult]) -> RunMergeResult:
    """One run's outcome over the two sinks: failed if it failed in either, merged only if
    it merged in both, otherwise left as it is (not marked). A run missing from one sink's
    results was not merged there."""
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
