"""The commit's derived caches (contract §6): ``latest-pointer.txt`` in S3 and EFS
``.version``, checked and repaired here and nowhere else.

The pointer item is the commit. The two caches name its version for readers that do not
read DynamoDB; they may lag, and are repaired by the next holder, but never go backwards:
- ``latest-pointer.txt`` is written from the item's *current* value (§6.3 step 4): each
  attempt reads the file, then the item, and writes conditionally on the file's ETag, so
  a writer that landed in between makes the write fail and the attempt starts again. A
  file that already names the version the cycle read at its start is left as it is,
  without reading the item again (the item read once per cycle is the commit).
- EFS ``.version`` never moves back from a newer version EFS holds, and a holder writes
  EFS only before its deadline (the confirmed expiry minus the safety margin).
"""

from __future__ import annotations

import logging
from datetime import datetime

from receipt_chroma.snapshots.efs_tier import store_on_efs
from receipt_chroma.snapshots.fence import DeleteFence
from receipt_chroma.snapshots.s3_store import S3SnapshotStore
from receipt_chroma.snapshots.service import CollectionSnapshots
from receipt_chroma.snapshots.stats import SnapshotStats
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.entities import SnapshotPointer

_LOGGER = logging.getLogger(__name__)


def holder_fence(deadline: datetime | None) -> DeleteFence:
    """The fence of a holder's cache writes: its last confirmed deadline (no deadline: the
    lease was never confirmed, and nothing is written)."""
    if deadline is None:
        return DeleteFence(refused="the lease has no confirmed deadline")
    return DeleteFence(deadline=deadline)


def refresh_pointer_file(
    dynamo: DynamoClient, store: S3SnapshotStore, collection: str, *, known: str | None = None
) -> str | None:
    """Make ``latest-pointer.txt`` say what the pointer item says *now* (re-read on every
    attempt, written conditionally), so it never goes backwards. A file that already says
    ``known`` (the version a holder read at its start) is left without re-reading the item.
    Returns the version the file names (None when there is no item)."""

    def current() -> str | None:
        pointer = dynamo.get_snapshot_pointer(collection)
        return None if pointer is None else pointer.version

    return store.sync_pointer_file(current, known=known)


def repair_derived_caches(
    snapshots: CollectionSnapshots,
    pointer: SnapshotPointer,
    stats: SnapshotStats,
    fence: DeleteFence,
) -> None:
    """At the start of a holder's cycle: make ``latest-pointer.txt`` and EFS ``.version``
    agree with the item just read (best effort: a failure is logged and counted in
    ``stats``, and the next holder tries again)."""
    try:
        refresh_pointer_file(
            snapshots.dynamo, snapshots.store, snapshots.collection, known=pointer.version
        )
    except Exception as error:  # derived cache: repaired again next cycle
        stats.add(cache_repair_failures=1)
        snapshots.logger.info("pointer file not repaired", extra={"error": str(error)})
    efs = snapshots.efs
    if efs is None:
        return
    try:
        if (
            efs.has_version(pointer.version)
            and efs.current_version() != pointer.version
            and fence.allows()
        ):
            efs.set_current_version(pointer.version)
    except OSError as error:
        stats.add(efs_failures=1, cache_repair_failures=1)
        snapshots.logger.info("EFS .version not repaired", extra={"error": str(error)})


def sync_pointer_file_after_commit(
    snapshots: CollectionSnapshots, stats: SnapshotStats, errors: list[str]
) -> None:
    """§6.3 step 4: ``latest-pointer.txt`` from the item's current value, right after the
    swap. A failure never unpublishes: it is reported in ``errors`` and the next holder
    repairs it."""
    try:
        refresh_pointer_file(snapshots.dynamo, snapshots.store, snapshots.collection)
    except Exception as error:
        stats.add(cache_repair_failures=1)
        errors.append(f"pointer file: {error}")


def store_published_on_efs(
    snapshots: CollectionSnapshots,
    published: SnapshotPointer,
    manifest_bytes: bytes,
    *,
    fence: DeleteFence,
    stats: SnapshotStats,
    errors: list[str],
) -> None:
    """§6.3 step 5: the version just committed on EFS, and ``.version`` naming it (never
    back from a newer version EFS holds). Skipped past the holder's deadline."""
    if snapshots.efs is None:
        return
    if not fence.allows():
        errors.append(f"efs: not written: {fence.refused}")
        return
    try:
        efs_error: Exception | None = store_on_efs(
            snapshots.efs,
            published.version,
            snapshots.working.path,
            manifest_bytes,
            stats,
            current=published.version,
        )
    except Exception as error:  # a cache: whatever failed, the version stays published
        stats.add(efs_failures=1, efs_write_failures=1)
        efs_error = error
    if efs_error is not None:
        errors.append(f"efs: {efs_error}")
