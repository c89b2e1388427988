"""``receipt-compaction snapshot …`` and ``backfill``: operator tools on a deployment."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import boto3

from receipt_chroma.chroma_client import ChromaClient
from receipt_chroma.compaction.efs_snapshot_manager import EFSSnapshotManager
from receipt_chroma.compaction.lease import LockManager
from receipt_chroma.exceptions import SnapshotError
from receipt_chroma.snapshots.s3_store import S3SnapshotStore
from receipt_dynamo import ChromaDBCollection, DynamoClient, EntityType
from receipt_dynamo_stream import backfill_messages, publish_messages


def list_versions(
    dynamo: DynamoClient, bucket: str, collection: str, chroma_root: Path | None
) -> dict[str, Any]:
    pointer = dynamo.get_snapshot_pointer(collection)
    store = S3SnapshotStore(boto3.client("s3"), bucket, collection)
    pointer_file = store.read_pointer_file()
    efs = EFSSnapshotManager(chroma_root, collection) if chroma_root else None
    return {
        "collection": collection,
        "pointer": pointer.version if pointer else None,
        "history": list(pointer.history) if pointer else [],
        "pointer_file": pointer_file.version if pointer_file else None,
        "s3_versions": sorted(store.list_versions()),
        "efs_versions": efs.versions() if efs else None,
        "efs_current": efs.current_version() if efs else None,
    }


def _open(store: S3SnapshotStore, version: str, target: Path) -> tuple[str, ChromaClient]:
    digest = store.download(version, target)
    return digest, ChromaClient(target, mode="read")


def inspect(bucket: str, collection: str, version: str) -> dict[str, Any]:
    store = S3SnapshotStore(boto3.client("s3"), bucket, collection)
    with tempfile.TemporaryDirectory(prefix="inspect-") as tmp:
        digest, client = _open(store, version, Path(tmp) / "s")
        with client:
            found = client.get_collection(collection).get(include=["metadatas"])
    keys: Counter[str] = Counter()
    for metadata in found["metadatas"] or []:
        keys.update((metadata or {}).keys())
    return {
        "version": version,
        "hash": digest,
        "records": len(found["ids"]),
        "metadata_keys": dict(sorted(keys.items())),
    }


def verify(bucket: str, collection: str, version: str, dimension: int) -> dict[str, Any]:
    """Hash check, safe extraction, open, count and dimension of one version."""
    store = S3SnapshotStore(boto3.client("s3"), bucket, collection)
    with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
        digest, client = _open(store, version, Path(tmp) / "s")
        with client:
            target = client.get_collection(collection)
            count = target.count()
            embeddings: Any = target.peek(1)["embeddings"] if count else None
    found = len(embeddings[0]) if embeddings is not None else None
    if found is not None and found != dimension:
        raise SnapshotError(f"{collection} {version}: dimension {found}, expected {dimension}")
    return {"version": version, "hash": digest, "records": count, "dimension": found, "ok": True}


def download(bucket: str, collection: str, version: str, destination: Path) -> dict[str, Any]:
    store = S3SnapshotStore(boto3.client("s3"), bucket, collection)
    digest = store.download(version, destination)
    return {"version": version, "hash": digest, "path": str(destination)}


def rollback(dynamo: DynamoClient, bucket: str, collection: str, version: str) -> dict[str, Any]:
    """Move the pointer to a retained version under the lease (contract §6), then refresh
    ``latest-pointer.txt`` from the pointer item's current value: a cycle may publish
    right after the lease is released, and the file must never go back behind it."""
    pointer = dynamo.get_snapshot_pointer(collection)
    if pointer is None or version not in pointer.history:
        retained = list(pointer.history) if pointer else []
        raise SnapshotError(f"{version} is not a retained {collection} version: {retained}")
    store = S3SnapshotStore(boto3.client("s3"), bucket, collection)
    if store.read_hash(version) is None:
        raise SnapshotError(f"{collection} {version} has no tarball hash in S3")
    with LockManager(dynamo, collection) as lease:
        base = dynamo.get_snapshot_pointer(collection)
        if base is None or version not in base.history:  # retention ran meanwhile
            retained = list(base.history) if base else []
            raise SnapshotError(
                f"{version} is no longer a retained {collection} version: {retained}"
            )
        moved = dynamo.publish_snapshot_pointer(
            collection, version, base=base, owner=lease.owner, fencing_token=lease.token
        )

    def current_version() -> str | None:  # re-read on every attempt: never the stale `moved`
        current = dynamo.get_snapshot_pointer(collection)
        return None if current is None else current.version

    outcome: dict[str, Any] = {
        "collection": collection,
        "version": moved.version,
        "previous_version": moved.previous_version,
        "history": list(moved.history),
    }
    try:
        outcome["pointer_file"] = store.sync_pointer_file(current_version)
    except Exception as error:  # derived cache: the pointer moved; the next cycle repairs it
        outcome["pointer_file"] = None
        outcome["pointer_file_error"] = f"{type(error).__name__}: {error}"
    return outcome


BACKFILL_TYPES = (
    EntityType.RECEIPT_METADATA,
    EntityType.RECEIPT_WORD_LABEL,
    EntityType.COMPACTION_RUN,
)


def backfill(
    dynamo: DynamoClient,
    *,
    lines_queue_url: str | None,
    words_queue_url: str | None,
    chunk: int = 500,
) -> dict[str, Any]:
    """Messages (``source: backfill``) for every metadata, label and run row, in chunks."""
    counts: Counter[str] = Counter()
    failed = 0
    for entity_type in BACKFILL_TYPES:
        pages = dynamo.client.get_paginator("query").paginate(
            TableName=dynamo.table_name,
            IndexName="GSITYPE",
            KeyConditionExpression="#type = :type",
            ExpressionAttributeNames={"#type": "TYPE"},
            ExpressionAttributeValues={":type": {"S": entity_type.value}},
            PaginationConfig={"PageSize": chunk},
        )
        for page in pages:
            messages = backfill_messages(page.get("Items", []))
            result = publish_messages(
                [(None, m) for m in messages],
                lines_queue_url=lines_queue_url,
                words_queue_url=words_queue_url,
            )
            failed += len(result.failed)
            counts.update(m.collection.value for _, m in result.published)
    return {
        "published": dict(counts),
        "failed": failed,
        "collections": [c.value for c in ChromaDBCollection],
    }
