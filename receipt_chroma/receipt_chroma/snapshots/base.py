"""The version a cycle starts from (contract §5.2 step 2, §6.5 bootstrap and adoption).

With a pointer item: repair the derived caches (``latest-pointer.txt``, EFS ``.version``)
when they differ, and fill the working copy from the cheapest tier. Without one:
adopt the version ``latest-pointer.txt`` names if it exists and verifies (either format);
bootstrap an empty snapshot only when nothing at all exists under ``<c>/snapshot/``;
refuse anything else (``SnapshotUnavailableError``) — never bootstrap over data.
"""

from __future__ import annotations

from receipt_chroma.exceptions import SnapshotError, SnapshotUnavailableError
from receipt_chroma.snapshots.publisher import refresh_pointer_file
from receipt_chroma.snapshots.service import CollectionSnapshots
from receipt_chroma.snapshots.stats import SnapshotStats
from receipt_chroma.snapshots.working_copy import CacheTier
from receipt_dynamo.entities import SnapshotPointer
from receipt_dynamo.exceptions import EntityAlreadyExistsError


def open_base(
    snapshots: CollectionSnapshots, stats: SnapshotStats
) -> tuple[SnapshotPointer | None, CacheTier]:
    """The pointer (None when bootstrapping) and the tier the working copy came from."""
    pointer = snapshots.pointer()
    if pointer is None:
        return _without_pointer(snapshots, stats)
    repair_derived_caches(snapshots, pointer, stats)
    try:
        tier = snapshots.working.prepare(pointer.version, snapshots.store, snapshots.efs, stats)
    except SnapshotError as error:
        raise SnapshotUnavailableError(
            f"pointer of {snapshots.collection} names {pointer.version}, which cannot be "
            f"had: {error}"
        ) from error
    return pointer, tier


def repair_derived_caches(
    snapshots: CollectionSnapshots, pointer: SnapshotPointer, stats: SnapshotStats
) -> None:
    """Make ``latest-pointer.txt`` and EFS ``.version`` agree with the item (best effort:
    a failure is logged and counted in ``stats``, and the next cycle tries again)."""
    try:
        refresh_pointer_file(snapshots.dynamo, snapshots.store, snapshots.collection)
    except Exception as error:  # derived cache: repaired again next cycle
        stats.add(cache_repair_failures=1)
        snapshots.logger.info("pointer file not repaired", extra={"error": str(error)})
    efs = snapshots.efs
    if efs is None:
        return
    try:
        if efs.has_version(pointer.version) and efs.current_version() != pointer.version:
            efs.set_current_version(pointer.version)
    except OSError as error:
        stats.add(efs_failures=1, cache_repair_failures=1)
        snapshots.logger.info("EFS .version not repaired", extra={"error": str(error)})


def _without_pointer(
    snapshots: CollectionSnapshots, stats: SnapshotStats
) -> tuple[SnapshotPointer | None, CacheTier]:
    collection, store = snapshots.collection, snapshots.store
    pointer_file = store.read_pointer_file()
    if pointer_file is None:
        if store.has_any_object():
            raise SnapshotUnavailableError(
                f"{collection}: objects exist under {store.prefix} but there is no pointer "
                "item and no latest-pointer.txt; refusing to bootstrap over data"
            )
        return None, snapshots.working.start_empty()
    try:
        snapshots.working.fetch_from_s3(pointer_file.version, store, snapshots.efs, stats)
    except SnapshotError as error:
        raise SnapshotUnavailableError(
            f"{collection}: latest-pointer.txt names {pointer_file.version}, which does not "
            f"verify: {error}"
        ) from error
    try:
        pointer = snapshots.dynamo.adopt_snapshot_pointer(collection, pointer_file.version)
    except EntityAlreadyExistsError:
        current = snapshots.pointer()
        if current is None or current.version != pointer_file.version:
            raise SnapshotUnavailableError(
                f"{collection}: pointer appeared while adopting {pointer_file.version}"
            ) from None
        pointer = current
    snapshots.logger.info(
        "snapshot adopted", extra={"collection": collection, "version": pointer.version}
    )
    return pointer, CacheTier.S3
