"""The one check that a persist directory holds a usable snapshot of a collection.

Publishing runs it on the closed working copy (contract §6.3 step 1); ``verify`` runs it
on a downloaded version. It opens the directory with a fresh client, reads the count
and one embedding's dimension, and closes the client again (clearing chromadb's shared
system cache), so the directory is released before it is hashed or copied.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from receipt_chroma.chroma_client import ChromaClient
from receipt_chroma.exceptions import ChromaClientError, SnapshotCheckError
from receipt_chroma.snapshots.manifest import FileEntry


@dataclass(frozen=True)
class SnapshotCheck:
    collection: str
    record_count: int
    dimension: int | None  # None for an empty collection
    sync_threshold: int | None  # the collection's hnsw.sync_threshold
    # The directory's files as the check hashed them (None: it did not hash them); the
    # publish reuses them for the manifest instead of hashing every file again.
    files: tuple[FileEntry, ...] | None = None


def check_snapshot(
    path: Path, collection: str, dimension: int | None, *, label: str | None = None
) -> SnapshotCheck:
    """Open ``path``, check ``collection`` exists with vectors of ``dimension`` (any
    dimension when None).

    Raises SnapshotCheckError naming what is wrong; its message names ``label`` (e.g.
    ``words version <id>``) instead of ``path`` when one is given — a temporary
    directory means nothing to an operator.
    """
    where = label or str(path)
    try:
        with ChromaClient(path, mode="read") as client:
            if collection not in client.list_collection_names():
                raise SnapshotCheckError(f"{where}: no collection {collection!r}")
            target = client.get_collection(collection)
            count = target.count()
            embeddings: Any = target.peek(1)["embeddings"] if count else None
            hnsw = (target.configuration or {}).get("hnsw") or {}
    except ChromaClientError as error:
        raise SnapshotCheckError(f"{where}: {str(error).replace(str(path), where)}") from error
    found = None if embeddings is None or len(embeddings) == 0 else len(embeddings[0])
    if count and dimension is not None and found != dimension:
        raise SnapshotCheckError(
            f"{where}: collection {collection!r} has dimension {found}, expected {dimension}"
        )
    threshold = hnsw.get("sync_threshold")
    return SnapshotCheck(
        collection=collection,
        record_count=count,
        dimension=found,
        sync_threshold=int(threshold) if isinstance(threshold, int) else None,
    )
