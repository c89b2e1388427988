"""Moving a collection from snapshots to a Chroma server (contract §12): ``seed`` loads the
published snapshot into an empty server collection, ``verify`` compares the two.

Both read the version the pointer names, under the collection's lease by default: no cycle
runs meanwhile, so what is compared or copied is one consistent state (in ``both`` mode the
two sinks are written under that same lease). Both work in pages of ids, so a collection
of millions of records never has to fit in memory at once. Each returns plain data for the
operator commands ``receipt-compaction sink seed|verify``; the compactor never runs them.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from receipt_chroma.chroma_client import ChromaClient, ClientCollection
from receipt_chroma.chroma_server import ChromaServer
from receipt_chroma.compaction.lease import LockManager
from receipt_chroma.constants import PROVENANCE_KEYS
from receipt_chroma.exceptions import SinkUnavailableError, SnapshotError
from receipt_chroma.snapshots.reader import read_version
from receipt_chroma.snapshots.s3_store import S3SnapshotStore
from receipt_dynamo.aws_clients import aws_client
from receipt_dynamo.data.dynamo_client import DynamoClient

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

PAGE = 500  # records per read and write page: a few MB of vectors at 1536-d
VECTOR_TOLERANCE = 1e-6  # float32 survives both stores exactly; this only absorbs noise
Advance = Callable[[int], None]


class SeedRefusedError(SnapshotError):
    """The server collection is not empty: seeding would mix two histories."""


def _no_progress(_: int) -> None:
    return None


def _pages(ids: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def all_ids(collection: ClientCollection, page: int = PAGE * 10) -> list[str]:
    """Every id of ``collection``, read in pages (servers cap how much one call returns)."""
    ids: list[str] = []
    while True:
        found = collection.get(limit=page, offset=len(ids), include=[])["ids"]
        ids += found
        if len(found) < page:
            return ids


def _records(collection: ClientCollection, ids: list[str]) -> dict[str, tuple[Any, Any, Any]]:
    """id → (embedding, document, metadata) for the ``ids`` that exist."""
    found = collection.get(ids=ids, include=["embeddings", "documents", "metadatas"])
    embeddings = found["embeddings"] if found["embeddings"] is not None else [None] * len(ids)
    documents = found["documents"] or [None] * len(found["ids"])
    metadatas = found["metadatas"] or [None] * len(found["ids"])
    return {
        record_id: (embedding, document, dict(metadata or {}))
        for record_id, embedding, document, metadata in zip(
            found["ids"], embeddings, documents, metadatas, strict=True
        )
    }


class _Published(AbstractContextManager["_Published"]):
    """The version the pointer names, downloaded, verified and opened read-only."""

    def __init__(self, dynamo: DynamoClient, bucket: str, collection: str, s3: S3Client) -> None:
        pointer = dynamo.get_snapshot_pointer(collection)
        if pointer is None:
            raise SnapshotError(f"{collection} has no published snapshot (no pointer item)")
        self.version = pointer.version
        self._tmp = tempfile.TemporaryDirectory(prefix=f"sink-{collection}-")
        path = Path(self._tmp.name) / "snapshot"
        try:
            read_version(S3SnapshotStore(s3, bucket, collection), self.version, path)
            self.client = ChromaClient(path, mode="read")
            self.collection = self.client.get_collection(collection)
        except BaseException:
            self._tmp.cleanup()
            raise

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self._tmp.cleanup()


def _lease(
    dynamo: DynamoClient, collection: str, hold: bool
) -> AbstractContextManager[LockManager | None]:
    return LockManager(dynamo, collection) if hold else nullcontext()


def seed(
    dynamo: DynamoClient,
    bucket: str,
    collection: str,
    server: ChromaServer,
    *,
    hold_lease: bool = True,
    s3_client: S3Client | None = None,
    advance: Advance = _no_progress,
) -> dict[str, Any]:
    """Copy the published version of ``collection`` into the server's (empty) collection:
    ids, vectors, documents and metadata as they are, in writes within the server's batch
    limit. Refuses a server collection that holds records."""
    started = time.perf_counter()
    with _lease(dynamo, collection, hold_lease) as lease:
        guard = lease.ensure_held if lease is not None else None
        s3 = s3_client or aws_client("s3")
        # The server first: an unreachable one fails before a snapshot is downloaded.
        with (
            server.connect(mode="write", write_guard=guard) as client,
            _Published(dynamo, bucket, collection, s3) as published,
        ):
            target = client.get_or_create_collection(collection)
            held = target.count()
            if held:
                raise SeedRefusedError(
                    f"server collection {collection} at {server.describe()} already holds "
                    f"{held} records; seed loads a snapshot into an empty collection only"
                )
            ids = sorted(all_ids(published.collection))
            for page in _pages(ids, min(PAGE, client.max_batch_size)):
                _write_page(target, _records(published.collection, page), page)
                advance(len(page))
            count = target.count()
            if client.unavailable is not None:
                raise SinkUnavailableError(client.unavailable)
    if count != len(ids):
        raise SnapshotError(
            f"seeded {len(ids)} records of {collection} {published.version}, the server "
            f"collection holds {count}"
        )
    return {
        "collection": collection,
        "version": published.version,
        "server": server.describe(),
        "records": count,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _write_page(
    target: ClientCollection, records: dict[str, tuple[Any, Any, Any]], page: list[str]
) -> None:
    """Upsert one page of records into the server collection. A record without a document
    is written without one (Chroma takes a documents list only when every entry is a
    string)."""
    for with_document in (True, False):
        part = [i for i in page if i in records and (records[i][1] is not None) is with_document]
        if part:
            target.upsert(
                ids=part,
                embeddings=np.asarray([records[i][0] for i in part], dtype=np.float32),
                documents=[records[i][1] for i in part] if with_document else None,
                metadatas=[records[i][2] for i in part],
            )


def _vector_distance(left: Any, right: Any) -> float:
    if left is None or right is None:
        return 0.0 if left is None and right is None else float("inf")
    a, b = np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


class _Differences:
    """Counts per kind of difference, and the first ``show`` examples."""

    def __init__(self, show: int) -> None:
        self.show = show
        self.counts: Counter[str] = Counter()
        self.keys: Counter[str] = Counter()
        self.examples: list[dict[str, Any]] = []

    def add(self, kind: str, record_id: str, detail: str) -> None:
        self.counts[kind] += 1
        if len(self.examples) < self.show:
            self.examples.append({"id": record_id, "difference": kind, "detail": detail})

    def compare(
        self,
        record_id: str,
        snapshot: tuple[Any, Any, Any],
        server: tuple[Any, Any, Any],
        tolerance: float,
    ) -> None:
        distance = _vector_distance(snapshot[0], server[0])
        if distance > tolerance:
            self.add("vector", record_id, f"max |snapshot - server| = {distance:.3g}")
        if snapshot[1] != server[1]:
            self.add("document", record_id, f"snapshot {snapshot[1]!r}, server {server[1]!r}")
        want, have = snapshot[2], server[2]
        differing = sorted(k for k in set(want) | set(have) if not _same(want.get(k), have.get(k)))
        for key in differing:
            self.keys[key] += 1
        # A record is counted under every kind of difference it has.
        provenance = [k for k in differing if k in PROVENANCE_KEYS]
        for kind, keys in (
            ("provenance", provenance),
            ("metadata", [k for k in differing if k not in PROVENANCE_KEYS]),
        ):
            if keys:
                self.add(kind, record_id, ", ".join(_key_detail(k, want, have) for k in keys))


def _same(left: Any, right: Any) -> bool:
    """Equal values of the same type: §4 gives each key a type, so 1, 1.0 and True differ
    (Python's == would call them equal); lists compare element by element alike."""
    if type(left) is not type(right):
        return False
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(map(_same, left, right))
    return bool(left == right)


def _key_detail(key: str, want: dict[str, Any], have: dict[str, Any]) -> str:
    def shown(values: dict[str, Any]) -> str:
        if key not in values:
            return "<absent>"
        value = values[key]
        return f"{value!r} ({type(value).__name__})"

    return f"{key}: snapshot {shown(want)}, server {shown(have)}"


def verify(
    dynamo: DynamoClient,
    bucket: str,
    collection: str,
    server: ChromaServer,
    *,
    hold_lease: bool = True,
    tolerance: float = VECTOR_TOLERANCE,
    show: int = 20,
    s3_client: S3Client | None = None,
    advance: Advance = _no_progress,
) -> dict[str, Any]:
    """Compare the published version of ``collection`` with the server's collection: the
    ids of each, and for every shared id its provenance, every metadata key, its document
    and its vector (within ``tolerance``). ``ok`` is true when nothing differs."""
    started = time.perf_counter()
    differences = _Differences(show)
    with _lease(dynamo, collection, hold_lease):
        s3 = s3_client or aws_client("s3")
        with (
            server.connect(mode="read") as client,
            _Published(dynamo, bucket, collection, s3) as published,
        ):
            target = client.get_collection(collection)
            local, remote = set(all_ids(published.collection)), set(all_ids(target))
            for record_id in sorted(local - remote):
                differences.add("missing_on_server", record_id, "in the snapshot only")
            for record_id in sorted(remote - local):
                differences.add("extra_on_server", record_id, "on the server only")
            shared = sorted(local & remote)
            for page in _pages(shared, PAGE):
                mine, theirs = _records(published.collection, page), _records(target, page)
                for record_id in page:
                    differences.compare(record_id, mine[record_id], theirs[record_id], tolerance)
                advance(len(page))
    total = sum(differences.counts.values())
    return {
        "collection": collection,
        "version": published.version,
        "server": server.describe(),
        "snapshot_records": len(local),
        "server_records": len(remote),
        "compared": len(shared),
        "differences": dict(sorted(differences.counts.items())),
        "differing_keys": dict(sorted(differences.keys.items())),
        "examples": differences.examples,
        "total_differences": total,
        "ok": total == 0,
        "seconds": round(time.perf_counter() - started, 1),
    }
