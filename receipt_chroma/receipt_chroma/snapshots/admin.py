"""Operator operations on a collection's snapshots, for the CLI (``snapshot list / inspect /
verify / download / rollback / flush``). Each returns plain data (a JSON-able dict) and
raises this package's errors with messages meant for an operator.

Both formats are read everywhere. Rollback and the planned flush run under the
collection's lease, which the caller supplies as a factory of context managers (the
compaction ``LockManager``), e.g. ``lease=lambda: LockManager(dynamo, collection)``.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from receipt_chroma.chroma_client import ChromaClient
from receipt_chroma.exceptions import (
    SnapshotDestinationError,
    SnapshotError,
    SnapshotIndexError,
    SnapshotVersionCorruptError,
    SnapshotVersionMissingError,
)
from receipt_chroma.snapshots.check import check_snapshot
from receipt_chroma.snapshots.derived_caches import refresh_pointer_file
from receipt_chroma.snapshots.fence import DeleteFence
from receipt_chroma.snapshots.hnsw import apply_flush_policy
from receipt_chroma.snapshots.models import EfsTier
from receipt_chroma.snapshots.publisher import publish, swap_pointer
from receipt_chroma.snapshots.reader import VersionRead, read_version
from receipt_chroma.snapshots.s3_store import S3SnapshotStore
from receipt_chroma.snapshots.service import CollectionSnapshots, Lease, SnapshotSettings
from receipt_chroma.snapshots.stats import SnapshotStats
from receipt_chroma.snapshots.working_copy import WorkingCopy
from receipt_dynamo.aws_clients import aws_client
from receipt_dynamo.data.dynamo_client import DynamoClient

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

LeaseFactory = Callable[[], AbstractContextManager[Lease]]


def _names(items: Iterable[str]) -> str:
    """A list for a message: comma-separated, or "none"."""
    return ", ".join(items) or "none"


def _store(bucket: str, collection: str, s3_client: S3Client | None) -> S3SnapshotStore:
    return S3SnapshotStore(s3_client or aws_client("s3"), bucket, collection)


def _describe(read: VersionRead) -> dict[str, Any]:
    described: dict[str, Any] = {
        "version": read.version,
        "format": read.format,
        "hash": read.digest,
    }
    if read.manifest is not None:
        described.update(
            base_version=read.manifest.base_version,
            created_at=read.manifest.created_at,
            chromadb_version=read.manifest.chromadb_version,
            files=len(read.manifest.files),
            bytes=read.manifest.total_size,
        )
    return described


def list_versions(
    dynamo: DynamoClient,
    bucket: str,
    collection: str,
    *,
    efs: EfsTier | None = None,
    s3_client: S3Client | None = None,
) -> dict[str, Any]:
    """The pointer, its history, the pointer file and every version in S3 (both formats)."""
    store = _store(bucket, collection, s3_client)
    pointer = dynamo.get_snapshot_pointer(collection)
    history = list(pointer.history) if pointer else []
    pointer_file = store.read_pointer_file()
    versions = []
    for version, keys in sorted(store.list_all().versions.items()):
        entry: dict[str, Any] = {
            "version": version,
            "format": keys.format,
            "modified": keys.modified.isoformat(),
            "in_history": version in history,
        }
        if keys.format == 2:
            try:
                found = store.read_manifest(version)
            except SnapshotError as error:
                entry["error"] = str(error)
            else:
                if found is not None:
                    manifest = found[0]
                    entry.update(records=manifest.record_count, bytes=manifest.total_size)
        versions.append(entry)
    return {
        "collection": collection,
        "pointer": pointer.version if pointer else None,
        "history": history,
        "pointer_file": pointer_file.version if pointer_file else None,
        "versions": versions,
        "efs_current": efs.current_version() if efs else None,
    }


def download(
    bucket: str,
    collection: str,
    version: str,
    destination: Path,
    *,
    s3_client: S3Client | None = None,
) -> dict[str, Any]:
    """Read and verify ``version`` into ``destination`` (a new path or an empty directory;
    never an existing file or a non-empty directory)."""
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        kind = "directory is not empty" if destination.is_dir() else "is an existing file"
        raise SnapshotDestinationError(f"refusing to download into {destination}: {kind}")
    stats = SnapshotStats()
    read = read_version(_store(bucket, collection, s3_client), version, destination, stats=stats)
    return {**_describe(read), "path": str(destination), "bytes_downloaded": stats.bytes_downloaded}


def verify(
    bucket: str,
    collection: str,
    version: str,
    dimension: int,
    *,
    s3_client: S3Client | None = None,
) -> dict[str, Any]:
    """Every hash, then open, count and dimension of one version.

    Errors name the version, and for a file its path in the manifest and its object key
    (sha256) — never the temporary directory the version is read into. Every way the
    version fails to verify is a SnapshotError (exit status 1 in the CLI): a missing
    object or manifest of a version that exists too, and a directory Chroma cannot open.
    Only a version that does not exist at all stays SnapshotVersionMissingError.
    """
    where = f"{collection} version {version}"
    store = _store(bucket, collection, s3_client)
    with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
        directory = Path(tmp) / "s"
        try:
            read = read_version(store, version, directory)
        except SnapshotVersionMissingError as error:
            if store.version_format(version) is None:
                raise  # no such version: nothing to verify
            raise SnapshotVersionCorruptError(str(error)) from error
        except OSError as error:
            raise SnapshotError(_local_failure(where, Path(tmp), error)) from error
        try:
            check = check_snapshot(directory, collection, dimension, label=where)
        except SnapshotError:
            raise
        except OSError as error:
            raise SnapshotError(_local_failure(where, Path(tmp), error)) from error
        except Exception as error:  # chromadb's own errors: the files are not a database
            detail = str(error).replace(str(directory), where).replace(tmp, where)
            raise SnapshotVersionCorruptError(
                f"{where}: does not open as a Chroma snapshot: {type(error).__name__}: {detail}"
            ) from error
    if read.manifest is not None and read.manifest.record_count != check.record_count:
        raise SnapshotError(
            f"{where}: manifest says {read.manifest.record_count} records, "
            f"the snapshot holds {check.record_count}"
        )
    return {
        **_describe(read),
        "records": check.record_count,
        "dimension": check.dimension,
        "ok": True,
    }


def _local_failure(where: str, tmp: Path, error: OSError) -> str:
    """``error`` (writing a version into ``tmp``) with the file named by its path in the
    version — the part after the temporary build directory — instead of its local path."""
    name = "a file"
    if error.filename is not None:
        local = Path(str(error.filename))
        parts = local.relative_to(tmp).parts if local.is_relative_to(tmp) else (local.name,)
        relative = "/".join(parts[1:]) if len(parts) > 1 else ""
        name = relative or "the version's directory"
    reason = error.strerror or type(error).__name__
    return f"{where}: could not write {name} to local disk: {reason}"


def inspect(
    bucket: str, collection: str, version: str, *, s3_client: S3Client | None = None
) -> dict[str, Any]:
    """Record count and how many records carry each metadata key."""
    with tempfile.TemporaryDirectory(prefix="inspect-") as tmp:
        read = read_version(_store(bucket, collection, s3_client), version, Path(tmp) / "s")
        with ChromaClient(Path(tmp) / "s", mode="read") as client:
            found = client.get_collection(collection).get(include=["metadatas"])
    keys: Counter[str] = Counter()
    for metadata in found["metadatas"] or []:
        keys.update((metadata or {}).keys())
    return {
        **_describe(read),
        "records": len(found["ids"]),
        "metadata_keys": dict(sorted(keys.items())),
    }


def _check_readable(store: S3SnapshotStore, version: str) -> int:
    """The format of a version whose manifest verifies and whose objects all exist (or
    whose tarball and hash exist); SnapshotVersionMissingError otherwise."""
    found = store.read_manifest(version)
    if found is not None:
        absent = [e.path for e in found[0].files if not store.objects.exists(e.sha256)]
        if absent:
            raise SnapshotVersionMissingError(
                f"{store.collection} {version}: objects missing for {_names(absent)}"
            )
        return 2
    if store.version_format(version) == 1:
        return 1
    raise SnapshotVersionMissingError(f"{store.collection} {version} does not exist in S3")


def rollback(
    dynamo: DynamoClient,
    bucket: str,
    collection: str,
    version: str,
    *,
    lease: LeaseFactory,
    s3_client: S3Client | None = None,
) -> dict[str, Any]:
    """Move the pointer to a retained version under the lease (contract §6.5), then —
    after releasing it — refresh ``latest-pointer.txt`` from the item's current value (a
    cycle may publish right after the release; the file must never go back behind it)."""
    pointer = dynamo.get_snapshot_pointer(collection)
    if pointer is None or version not in pointer.history:
        retained = list(pointer.history) if pointer else []
        raise SnapshotError(
            f"{version} is not a retained {collection} version; retained: {_names(retained)}"
        )
    store = _store(bucket, collection, s3_client)
    snapshot_format = _check_readable(store, version)
    with lease() as held:
        base = dynamo.get_snapshot_pointer(collection)
        if base is None or version not in base.history:  # retention ran meanwhile
            retained = list(base.history) if base else []
            raise SnapshotError(
                f"{version} is no longer a retained {collection} version; "
                f"retained: {_names(retained)}"
            )
        moved = swap_pointer(dynamo, collection, version, base=base, lease=held)
    outcome: dict[str, Any] = {
        "collection": collection,
        "version": moved.version,
        "format": snapshot_format,
        "previous_version": moved.previous_version,
        "history": list(moved.history),
    }
    try:
        outcome["pointer_file"] = refresh_pointer_file(dynamo, store, collection)
    except Exception as error:  # derived cache: the pointer moved; the next cycle repairs it
        outcome["pointer_file"] = None
        outcome["pointer_file_error"] = f"{type(error).__name__}: {error}"
    return outcome


def flush(
    dynamo: DynamoClient,
    bucket: str,
    collection: str,
    *,
    lease: LeaseFactory,
    work_dir: Path,
    settings: SnapshotSettings,
    efs: EfsTier | None = None,
    s3_client: S3Client | None = None,
) -> dict[str, Any]:
    """A planned HNSW flush under the lease: the current version with every record indexed,
    published as a new version. Nothing is published when nothing waits for the index."""
    with lease() as held:
        snapshots = CollectionSnapshots.create(
            collection=collection,
            dynamo=dynamo,
            s3_client=s3_client or aws_client("s3"),
            bucket=bucket,
            work_dir=work_dir,
            efs=efs,
            settings=settings,
        )
        base = snapshots.pointer()
        if base is None:
            raise SnapshotError(f"{collection} has no published snapshot to flush")
        stats = SnapshotStats()
        try:
            tier = snapshots.working.prepare(
                base.version, snapshots.store, efs, stats, fence=DeleteFence(confirm=held.confirm)
            )
            return _flush_and_publish(snapshots, base, held, stats, tier.value)
        finally:
            snapshots.working.unlock()


def _flush_and_publish(
    snapshots: CollectionSnapshots, base: Any, lease: Lease, stats: SnapshotStats, tier: str
) -> dict[str, Any]:
    working: WorkingCopy = snapshots.working
    manifest = working.manifest()
    working.mark_dirty()
    try:
        index = apply_flush_policy(
            working.path, snapshots.collection, snapshots.settings.hnsw, force=True
        )
        if index.after.unindexed_records:
            raise SnapshotIndexError(
                f"{snapshots.collection}: {index.after.unindexed_records} records still "
                "unindexed after the flush; nothing published"
            )
        outcome: dict[str, Any] = {
            "collection": snapshots.collection,
            "base_version": base.version,
            "tier": tier,
            "unindexed_before": index.before.unindexed_records,
            "pending_log_before": index.before.pending_log_records,
            "flushed": index.flushed,
        }
        if not index.flushed:
            working.relabel(base.version, manifest)
            return {**outcome, "version": base.version, "published": False}
        errors: list[str] = []
        published = publish(snapshots, base, lease, stats=stats, errors=errors)
    except BaseException:
        working.discard()
        raise
    return {
        **outcome,
        "version": published.version,
        "published": True,
        "bytes_uploaded": stats.bytes_uploaded,
        "bytes_downloaded": stats.bytes_downloaded,
        "derived_cache_errors": errors,
    }
