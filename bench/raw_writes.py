"""The raw chromadb minimum for the writes a cycle made (issue 24 item 1).

``WriteRecorder`` records, passing them through, the write calls the compactor makes on
chromadb collections while it is active. ``raw_minimum`` then applies the same writes,
the least way chromadb allows — one ``upsert``, one ``update`` and one ``delete`` call per
maximum batch size, each id's writes merged in order — to a copy of the version the cycle
started from whose collection has chromadb's default HNSW settings (``sync_threshold``
1,000; only the contract's distance space differs from a bare collection). The copy is
opened and its vector segment loaded before the clock starts: the minimum is the writes
alone. The product's own tuning never serves as its reference.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
from chromadb.api.models.Collection import Collection
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings

from receipt_chroma.snapshots.hnsw import set_sync_threshold

CHROMADB_DEFAULT_SYNC_THRESHOLD = 1000


@dataclasses.dataclass
class RecordedWrites:
    upserts: dict[str, tuple[Any, Any, Any]] = dataclasses.field(default_factory=dict)
    updates: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    deletes: list[str] = dataclasses.field(default_factory=list)
    calls: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "upserted": len(self.upserts),
            "updated": len(self.updates),
            "deleted": len(self.deletes),
            "product_write_calls": self.calls,
        }


class WriteRecorder:
    """Pass-through recording of ``Collection.upsert``/``update``/``delete``."""

    def __init__(self) -> None:
        self.writes: RecordedWrites | None = None
        originals = {name: getattr(Collection, name) for name in ("upsert", "update", "delete")}
        recorder = self

        def wrap(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
            def recorded(collection: Collection, **kwargs: Any) -> Any:
                if recorder.writes is not None and collection.name == "words":
                    recorder.note(name, kwargs)
                return original(collection, **kwargs)

            return recorded

        for name, original in originals.items():
            setattr(Collection, name, wrap(name, original))

    @contextmanager
    def recording(self) -> Iterator[RecordedWrites]:
        self.writes = RecordedWrites()
        try:
            yield self.writes
        finally:
            self.writes = None

    def note(self, name: str, kwargs: dict[str, Any]) -> None:
        writes = self.writes
        assert writes is not None
        writes.calls += 1
        ids = list(kwargs["ids"])
        if name == "delete":
            writes.deletes += ids
            return
        metadatas = kwargs.get("metadatas") or [None] * len(ids)
        if name == "update":
            for record_id, metadata in zip(ids, metadatas, strict=True):
                writes.updates.setdefault(record_id, {}).update(metadata or {})
            return
        embeddings = np.asarray(kwargs["embeddings"], dtype=np.float32)
        documents = kwargs.get("documents") or [None] * len(ids)
        for n, record_id in enumerate(ids):
            writes.upserts[record_id] = (embeddings[n].copy(), documents[n], metadatas[n])


def raw_minimum(base: Path, writes: RecordedWrites) -> float:
    """Seconds to apply ``writes`` to ``base`` (a closed copy this call may change) with
    chromadb's default settings, in the fewest calls."""
    set_sync_threshold(base, "words", CHROMADB_DEFAULT_SYNC_THRESHOLD)
    client = chromadb.PersistentClient(
        path=str(base), settings=Settings(anonymized_telemetry=False)
    )
    try:
        words = client.get_collection("words", embedding_function=None)
        words.get(limit=1, include=["embeddings"])  # the vector segment loads: not timed
        size = client.get_max_batch_size()
        started = time.perf_counter()
        ids = list(writes.upserts)
        for at in range(0, len(ids), size):
            part = ids[at : at + size]
            words.upsert(
                ids=part,
                embeddings=np.stack([writes.upserts[i][0] for i in part]),
                documents=[writes.upserts[i][1] for i in part],
                metadatas=[writes.upserts[i][2] for i in part],
            )
        ids = list(writes.updates)
        for at in range(0, len(ids), size):
            part = ids[at : at + size]
            words.update(ids=part, metadatas=[writes.updates[i] for i in part])
        for at in range(0, len(writes.deletes), size):
            words.delete(ids=writes.deletes[at : at + size])
        return time.perf_counter() - started
    finally:
        client.close()
        if not SharedSystemClient._identifier_to_system:
            SharedSystemClient.clear_system_cache()
        shutil.rmtree(base, ignore_errors=True)
