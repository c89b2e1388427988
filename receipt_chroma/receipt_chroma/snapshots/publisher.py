"""The publish sequence (contract §6.3), owned in one place.

1. The caller has closed its client. The HNSW flush policy runs on the closed directory
   (a planned flush when due), a sparse ``chroma.sqlite3`` is vacuumed, then the
   directory is reopened, checked (collection, count, dimension) and closed again.
2. Every file is hashed; the objects S3 lacks are uploaded (bounded parallelism), then
   ``manifest.json`` and ``.manifest_hash`` under a new version id.
3. ``swap_pointer``: one transaction — lease check and pointer put conditioned on the
   base. Lease lost / pointer moved raise; nothing is published.
4. ``latest-pointer.txt`` is refreshed from the pointer item's *current* value.
5. The EFS version is written (best effort; failures are reported, never raised).
6. ``after_commit`` (the cycle marks its runs), then retention of S3 and EFS — only after
   the lease is confirmed, from the pointer item re-read at that moment, each delete
   before the lease's deadline (§6 rev 3, ``retain``). A refused publish deletes nothing:
   what it uploaded is an orphan that a later holder's retention removes.

``swap_pointer`` and ``refresh_pointer_file`` are also what rollback uses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import chromadb

from receipt_chroma.snapshots.check import SnapshotCheck, check_snapshot
from receipt_chroma.snapshots.database import compact_database
from receipt_chroma.snapshots.efs_tier import store_on_efs
from receipt_chroma.snapshots.fence import DeleteFence
from receipt_chroma.snapshots.files import directory_entries
from receipt_chroma.snapshots.hnsw import apply_flush_policy, set_sync_threshold
from receipt_chroma.snapshots.manifest import Manifest
from receipt_chroma.snapshots.retention import apply_retention
from receipt_chroma.snapshots.s3_store import S3SnapshotStore
from receipt_chroma.snapshots.service import CollectionSnapshots, Lease
from receipt_chroma.snapshots.stats import SnapshotStats
from receipt_chroma.snapshots.versions import new_version_id
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.entities import SnapshotPointer
from receipt_dynamo.timestamps import now_iso

Stage = Callable[[str], None]
_LOGGER = logging.getLogger(__name__)


def _no_stage(_: str) -> None:
    return None


def swap_pointer(
    dynamo: DynamoClient,
    collection: str,
    version: str,
    *,
    base: SnapshotPointer | None,
    lease: Lease,
) -> SnapshotPointer:
    """The pointer transaction (§6.3 step 3) from ``base`` to ``version`` under ``lease``.

    Raises LeaseLostError or PointerMovedError; nothing is written in either case.
    """
    lease.ensure_held()
    return dynamo.swap_snapshot_pointer(
        collection, version, base=base, owner=lease.owner, fencing_token=lease.token
    )


def refresh_pointer_file(
    dynamo: DynamoClient, store: S3SnapshotStore, collection: str
) -> str | None:
    """Make ``latest-pointer.txt`` say what the pointer item says *now* (re-read on every
    attempt, written conditionally), so it never goes backwards. Returns that version."""

    def current() -> str | None:
        pointer = dynamo.get_snapshot_pointer(collection)
        return None if pointer is None else pointer.version

    return store.sync_pointer_file(current)


def prepare_directory(
    snapshots: CollectionSnapshots, stats: SnapshotStats, *, force_flush: bool = False
) -> SnapshotCheck:
    """Step 1 on the closed working copy: flush policy, then reopen and check."""
    path, collection = snapshots.working.path, snapshots.collection
    policy = snapshots.settings.hnsw
    index = apply_flush_policy(path, collection, policy, force=force_flush)
    stats.hnsw_flushed = index.flushed
    stats.unindexed_records = index.after.unindexed_records
    if index.flushed and index.after.unindexed_records:
        snapshots.logger.info(
            "HNSW flush left records unindexed",
            extra={"collection": collection, "unindexed": index.after.unindexed_records},
        )
    compact_database(path)
    check = check_snapshot(path, collection, snapshots.settings.dimension)
    if check.sync_threshold != policy.sync_threshold:
        set_sync_threshold(path, collection, policy.sync_threshold)
    return check


def write_version(
    snapshots: CollectionSnapshots,
    directory: Path,
    check: SnapshotCheck,
    *,
    base_version: str | None,
    stats: SnapshotStats,
    on_stage: Stage = _no_stage,
) -> tuple[Manifest, bytes, list[str]]:
    """Step 2: hash, upload missing objects, then the manifest and its hash. Returns the
    manifest, its bytes and the objects this call wrote."""
    entries = directory_entries(directory)
    uploaded = snapshots.store.objects.upload_missing(directory, entries, stats)
    on_stage("objects_uploaded")
    manifest = Manifest(
        collection=snapshots.collection,
        version_id=new_version_id(),
        base_version=base_version,
        created_at=now_iso(),
        chromadb_version=chromadb.__version__,
        dimension=check.dimension or snapshots.settings.dimension,
        record_count=check.record_count,
        files=tuple(entries),
    )
    data = snapshots.store.put_manifest(manifest, stats)
    return manifest, data, uploaded


def publish(
    snapshots: CollectionSnapshots,
    base: SnapshotPointer | None,
    lease: Lease,
    *,
    stats: SnapshotStats,
    errors: list[str],
    on_stage: Stage = _no_stage,
    after_commit: Callable[[], None] | None = None,
    force_flush: bool = False,
) -> SnapshotPointer:
    """Publish the (closed) working copy on top of ``base``: steps 1 to 6 of §6.3.

    Errors after the pointer moved never unpublish: they are appended to ``errors``.
    """
    check = prepare_directory(snapshots, stats, force_flush=force_flush)
    on_stage("checked")
    path = snapshots.working.path
    manifest, data, _ = write_version(
        snapshots,
        path,
        check,
        base_version=base.version if base else None,
        stats=stats,
        on_stage=on_stage,
    )
    on_stage("uploaded")
    # Refused (lease lost, pointer moved): nothing is deleted; the uploads become orphans.
    published = swap_pointer(
        snapshots.dynamo, snapshots.collection, manifest.version_id, base=base, lease=lease
    )
    snapshots.working.relabel(manifest.version_id, manifest)
    on_stage("committed")
    _after_swap(
        snapshots, base, published, data=data, stats=stats, errors=errors, on_stage=on_stage
    )
    if after_commit is not None:
        try:
            after_commit()
        except Exception as error:
            errors.append(f"run marks: {error}")
    on_stage("runs_marked")
    retain(snapshots, lease, errors, stats, dropped=_dropped(base, published))
    on_stage("retained")
    return published


def _dropped(base: SnapshotPointer | None, published: SnapshotPointer) -> set[str]:
    """Versions this publish pushed out of the history (they can never return to it)."""
    return set(base.history if base else ()) - set(published.history)


def _after_swap(
    snapshots: CollectionSnapshots,
    base: SnapshotPointer | None,
    published: SnapshotPointer,
    *,
    data: bytes,
    stats: SnapshotStats,
    errors: list[str],
    on_stage: Stage,
) -> None:
    """Steps 4 and 5: derived caches; their failures never unpublish."""
    current: str | None = published.version
    try:
        current = refresh_pointer_file(snapshots.dynamo, snapshots.store, snapshots.collection)
    except Exception as error:  # derived cache: the next cycle repairs it
        stats.add(cache_repair_failures=1)
        errors.append(f"pointer file: {error}")
    on_stage("pointer_file_synced")
    # .version names the pointer's current version (as just read for the pointer file).
    efs_error = store_on_efs(
        snapshots.efs,
        published.version,
        snapshots.working.path,
        data,
        stats,
        current=current if current is not None else published.version,
    )
    if efs_error is not None:
        errors.append(f"efs: {efs_error}")
    on_stage("efs_written")
    snapshots.logger.info(
        "snapshot published",
        extra={
            "collection": snapshots.collection,
            "version": published.version,
            "previous_version": base.version if base else None,
            "bytes_uploaded": stats.bytes_uploaded,
            "unindexed_records": stats.unindexed_records,
            "hnsw_flushed": stats.hnsw_flushed,
        },
    )


def retain(
    snapshots: CollectionSnapshots,
    lease: Lease,
    errors: list[str],
    stats: SnapshotStats,
    *,
    dropped: set[str] | None = None,
) -> None:
    """Step 6's retention under the confirmed lease (§6 rev 3, "Who may delete").

    Confirm the lease (a heartbeat that must succeed) and re-read the pointer item: the
    retained set is that item's ``version`` + ``history``, never a history carried from
    earlier in the cycle. A holder whose lease is lost or unconfirmable, or whose deadline
    comes before a delete could end, stops deleting (``RetentionSkipped``); the next holder
    does it. S3 keeps the retained versions and what they name; EFS keeps the pointer's
    version and its predecessor.
    """
    try:
        fence = DeleteFence(lease.confirm())
        pointer = snapshots.pointer()
    except Exception as error:  # lost, unconfirmable, or the item could not be read
        _skip_retention(snapshots, stats, errors, f"{type(error).__name__}: {error}")
        return
    if pointer is None:
        _skip_retention(snapshots, stats, errors, "no pointer item to retain from")
        return
    try:
        report = apply_retention(
            snapshots.store,
            keep={pointer.version, *pointer.history},
            dropped=dropped,
            orphan_age=snapshots.settings.orphan_age,
            fence=fence,
        )
        if report.objects_kept_because:
            errors.append(f"retention: {report.objects_kept_because}")
        if report.stopped_at_deadline:
            _skip_retention(snapshots, stats, errors, report.stopped_at_deadline)
            return
        if snapshots.efs is not None:
            keep = {pointer.version}
            if pointer.previous_version:
                keep.add(pointer.previous_version)
            snapshots.efs.cleanup(keep, fence)
            if fence.refused:
                _skip_retention(snapshots, stats, errors, fence.refused)
    except Exception as error:
        errors.append(f"retention: {type(error).__name__}: {error}")


def _skip_retention(
    snapshots: CollectionSnapshots, stats: SnapshotStats, errors: list[str], why: str
) -> None:
    stats.add(retention_skipped=1)
    errors.append(f"retention skipped: {why}")
    _LOGGER.warning("retention skipped", extra={"collection": snapshots.collection, "reason": why})
