"""The publish sequence (contract §6.3), owned in one place.

1. ``Stage.CHECK``: the caller has closed its client. The HNSW flush policy runs on the
   closed directory (a planned flush when due), a sparse ``chroma.sqlite3`` is vacuumed,
   then the directory is reopened, checked (collection, count, dimension) and closed.
2. ``Stage.UPLOAD``: every file is hashed; the objects S3 lacks are uploaded (bounded
   parallelism). ``Stage.MANIFEST``: ``manifest.json`` and ``.manifest_hash`` under a new
   version id.
3. ``Stage.COMMIT``: ``swap_pointer``, one transaction — lease check and pointer put
   conditioned on the base. Lease lost / pointer moved raise; nothing is published, and
   nothing is deleted: the uploads are orphans a later holder's retention removes.
4. and 5. The derived caches (``derived_caches``): ``latest-pointer.txt``, then the EFS
   version, written from the swapped pointer before the holder's deadline.
The cycle then marks its runs and runs retention (``retention.retain``); ``publish`` does
all of it for the operator's ``snapshot flush``.

``swap_pointer`` is also what rollback uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import chromadb

from receipt_chroma.snapshots.check import SnapshotCheck, check_snapshot
from receipt_chroma.snapshots.closed_check import check_closed_copy, index_files_unchanged
from receipt_chroma.snapshots.database import compact_database
from receipt_chroma.snapshots.derived_caches import (
    holder_fence,
    store_published_on_efs,
    sync_pointer_file_after_commit,
)
from receipt_chroma.snapshots.files import directory_entries
from receipt_chroma.snapshots.hnsw import apply_flush_policy, set_sync_threshold
from receipt_chroma.snapshots.manifest import FileEntry, Manifest
from receipt_chroma.snapshots.retention import retain
from receipt_chroma.snapshots.service import CollectionSnapshots, Lease
from receipt_chroma.snapshots.stats import SnapshotStats
from receipt_chroma.snapshots.versions import new_version_id
from receipt_chroma.stages import Stage, StageRunner
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.entities import SnapshotPointer
from receipt_dynamo.timestamps import now_iso


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


def prepare_directory(
    snapshots: CollectionSnapshots,
    stats: SnapshotStats,
    *,
    force_flush: bool = False,
    base_files: Sequence[FileEntry] | None = None,
) -> SnapshotCheck:
    """Step 1 on the closed working copy: flush policy, then the check.

    With ``base_files`` (the files of the version the copy was opened at), a copy whose
    HNSW files are still exactly those is checked from its files (``closed_check``): no
    reopen, so the records the apply stage indexed are not indexed a second time, and the
    working copy's client stays open for the next cycle (an idle client's directory is
    byte for byte the closed one: ``resident_client``). A flush, any changed HNSW file or
    no base reopens the directory (``check_snapshot``).
    """
    path, collection = snapshots.working.path, snapshots.collection
    # The working copy's client may still be open (it is kept between cycles); whatever
    # must open the directory afresh or rewrite it releases it first.
    close_client = snapshots.working.client.release
    policy = snapshots.settings.hnsw
    index = apply_flush_policy(
        path, collection, policy, force=force_flush, before_flush=close_client
    )
    stats.hnsw_flushed = index.flushed
    stats.unindexed_records = index.after.unindexed_records
    if index.flushed and index.after.unindexed_records:
        snapshots.logger.info(
            "HNSW flush left records unindexed",
            extra={"collection": collection, "unindexed": index.after.unindexed_records},
        )
    compact_database(path, before_vacuum=close_client)
    dimension = snapshots.settings.dimension
    files = tuple(directory_entries(path)) if base_files is not None else None
    closed = None
    if files is not None and base_files is not None and index_files_unchanged(files, base_files):
        closed = check_closed_copy(path, collection, dimension)
    if closed is not None:
        check = replace(closed, files=files)
    else:
        close_client()
        check = check_snapshot(path, collection, dimension)
    if check.sync_threshold != policy.sync_threshold:
        close_client()
        set_sync_threshold(path, collection, policy.sync_threshold)
        check = replace(check, files=None)  # the database file changed
    return check


def write_version(
    snapshots: CollectionSnapshots,
    directory: Path,
    check: SnapshotCheck,
    *,
    base_version: str | None,
    stats: SnapshotStats,
    stages: StageRunner | None = None,
) -> tuple[Manifest, bytes, list[str]]:
    """Step 2: hash, upload the objects S3 lacks, then the manifest and its hash. Returns
    the manifest, its bytes and the objects this call wrote."""
    stages = stages or StageRunner()
    with stages.run(Stage.UPLOAD):
        entries = list(check.files) if check.files is not None else directory_entries(directory)
        uploaded = snapshots.store.objects.upload_missing(directory, entries, stats)
    with stages.run(Stage.MANIFEST):
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


def commit_version(
    snapshots: CollectionSnapshots,
    base: SnapshotPointer | None,
    lease: Lease,
    *,
    stats: SnapshotStats,
    errors: list[str],
    stages: StageRunner,
    force_flush: bool = False,
    base_files: Sequence[FileEntry] | None = None,
) -> SnapshotPointer:
    """Steps 1 to 5 for the (closed) working copy on top of ``base``: the published
    pointer. Raises (nothing published) until the swap; errors after it never unpublish
    and are appended to ``errors``. ``base_files``: see ``prepare_directory``."""
    with stages.run(Stage.CHECK):
        check = prepare_directory(snapshots, stats, force_flush=force_flush, base_files=base_files)
    manifest, data, _ = write_version(
        snapshots,
        snapshots.working.path,
        check,
        base_version=base.version if base else None,
        stats=stats,
        stages=stages,
    )
    with stages.run(Stage.COMMIT):
        published = swap_pointer(
            snapshots.dynamo, snapshots.collection, manifest.version_id, base=base, lease=lease
        )
        _relabel_published(snapshots, manifest, errors)
    fence = holder_fence(lease.deadline)
    with stages.run(Stage.POINTER_FILE):
        sync_pointer_file_after_commit(snapshots, stats, errors)
    with stages.run(Stage.EFS):
        store_published_on_efs(snapshots, published, data, fence=fence, stats=stats, errors=errors)
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
    return published


def _relabel_published(
    snapshots: CollectionSnapshots, manifest: Manifest, errors: list[str]
) -> None:
    """After the swap the copy is the published version. A label that cannot be written
    never unpublishes: the copy stays unlabelled (marked dirty before its first write),
    so the next cycle reads the version from a cache tier instead."""
    try:
        snapshots.working.relabel(manifest.version_id, manifest)
    except Exception as error:
        errors.append(f"working copy: not labelled {manifest.version_id}: {error}")


def publish(
    snapshots: CollectionSnapshots,
    base: SnapshotPointer | None,
    lease: Lease,
    *,
    stats: SnapshotStats,
    errors: list[str],
    force_flush: bool = False,
) -> SnapshotPointer:
    """Publish the (closed) working copy on top of ``base`` and run retention: the
    operator's ``snapshot flush``, which has no runs to mark."""
    published = commit_version(
        snapshots,
        base,
        lease,
        stats=stats,
        errors=errors,
        stages=StageRunner(),
        force_flush=force_flush,
    )
    errors += retain(snapshots, lease, stats, dropped=dropped_versions(base, published)).errors
    return published


def dropped_versions(base: SnapshotPointer | None, published: SnapshotPointer) -> set[str]:
    """Versions a publish pushed out of the history (they can never return to it)."""
    return set(base.history if base else ()) - set(published.history)
