"""The version a cycle starts from (contract §5.2 step 2, §6.5 bootstrap and adoption).

With a pointer item: repair the derived caches (``latest-pointer.txt``, EFS ``.version``,
``derived_caches``) when they differ, and fill the working copy from the cheapest tier. Without one:
adopt the version ``latest-pointer.txt`` names if it exists and verifies (either format;
one that does not verify is ``SnapshotUnavailableError``). With no pointer file either,
the versions under ``<c>/snapshot/`` are uncommitted publishes (a commit creates the item
first; rev 3: a refused publish deletes nothing): adopt the newest that verifies, and
bootstrap an empty snapshot when none does. Objects no manifest names never block a
bootstrap. Adoption is the lock-checked pointer transaction, so only the lease holder
adopts.
"""

from __future__ import annotations

import logging
from datetime import datetime

from receipt_chroma.exceptions import SnapshotError, SnapshotUnavailableError
from receipt_chroma.snapshots.derived_caches import holder_fence, repair_derived_caches
from receipt_chroma.snapshots.fence import DeleteFence
from receipt_chroma.snapshots.models import CacheTier
from receipt_chroma.snapshots.s3_store import VersionKeys
from receipt_chroma.snapshots.service import CollectionSnapshots, Lease
from receipt_chroma.snapshots.stats import SnapshotStats
from receipt_chroma.snapshots.versions import is_version_id, version_time
from receipt_dynamo.entities import SnapshotPointer

_LOGGER = logging.getLogger(__name__)


def open_base(
    snapshots: CollectionSnapshots, stats: SnapshotStats, lease: Lease
) -> tuple[SnapshotPointer | None, CacheTier]:
    """The pointer (None when bootstrapping) and the tier the working copy came from.

    The pointer item is read once here, under the lease: it is the commit this cycle
    builds on, and what the derived caches are repaired to."""
    pointer = snapshots.pointer()
    if pointer is None:
        return _without_pointer(snapshots, stats, lease)
    repair_derived_caches(snapshots, pointer, stats, holder_fence(lease.deadline))
    try:
        tier = snapshots.working.prepare(
            pointer.version,
            snapshots.store,
            snapshots.efs,
            stats,
            fence=DeleteFence(confirm=lease.confirm),
        )
    except SnapshotError as error:
        raise SnapshotUnavailableError(
            f"pointer of {snapshots.collection} names {pointer.version}, which cannot be "
            f"had: {error}"
        ) from error
    return pointer, tier


def _without_pointer(
    snapshots: CollectionSnapshots, stats: SnapshotStats, lease: Lease
) -> tuple[SnapshotPointer | None, CacheTier]:
    collection, store = snapshots.collection, snapshots.store
    pointer_file = store.read_pointer_file()
    if pointer_file is not None:
        try:
            snapshots.working.fetch_from_s3(
                pointer_file.version, store, snapshots.efs, stats, committed=False
            )
        except SnapshotError as error:
            raise SnapshotUnavailableError(
                f"{collection}: latest-pointer.txt names {pointer_file.version}, which does "
                f"not verify: {error}"
            ) from error
        return _adopt(snapshots, pointer_file.version, lease, stats), CacheTier.S3
    for version in _newest_first(store.list_all().versions):
        try:
            snapshots.working.fetch_from_s3(version, store, snapshots.efs, stats, committed=False)
        except SnapshotError as error:
            _LOGGER.warning(
                "uncommitted snapshot version does not verify; trying an older one",
                extra={"collection": collection, "version": version, "error": str(error)},
            )
            continue
        return _adopt(snapshots, version, lease, stats), CacheTier.S3
    return None, snapshots.working.start_empty()


def _newest_first(versions: dict[str, VersionKeys]) -> list[str]:
    def minted(version: str) -> tuple[datetime, str]:
        keys = versions[version]
        return (version_time(version) if is_version_id(version) else keys.modified, version)

    return sorted(versions, key=minted, reverse=True)


def _adopt(
    snapshots: CollectionSnapshots, version: str, lease: Lease, stats: SnapshotStats
) -> SnapshotPointer:
    """Create the pointer item for a verified version, under the lease (a pointer that
    appeared meanwhile is PointerMovedError: the messages are retried); only then do the
    derived caches name it."""
    pointer = snapshots.dynamo.adopt_snapshot_pointer(
        snapshots.collection, version, owner=lease.owner, fencing_token=lease.token
    )
    repair_derived_caches(snapshots, pointer, stats, holder_fence(lease.deadline))
    snapshots.logger.info(
        "snapshot adopted", extra={"collection": snapshots.collection, "version": version}
    )
    return pointer
