"""The HNSW flush policy that keeps publishes small (contract §6.2).

chromadb 1.5.9 writes every change to a log table in ``chroma.sqlite3`` and rewrites the
HNSW files (``data_level0.bin``, ``link_lists.bin``, the pickle …) only when the
collection's vector segment *persists*: when ``hnsw.sync_threshold`` log entries have
accumulated since the last persist. A persist rewrites the link header of most elements,
so every HNSW file changes. With the threshold raised (``HNSW_SYNC_THRESHOLD``), a cycle
changes only ``chroma.sqlite3`` and the HNSW objects are shared with the previous version.

The price: log entries the HNSW files do not hold yet are replayed into memory whenever
the directory is opened — the compactor's own cycles and every query service's first
query pay for it, about linearly in the number of *vectors* waiting (metadata-only
updates and deletions replay cheaply). So a **planned flush** persists the index once
``UnindexedRecords`` (log entries carrying a vector, not yet in the HNSW files) exceed
``HNSW_FLUSH_RECORDS``, or when an operator asks.

The flush mechanism (chromadb has no public "flush" call) was verified against the
pinned chromadb: the vector segment applies ``sync_threshold`` when it is loaded, and a
load replays the log — with the threshold set to 1, the load persists everything. So a
flush is: set ``sync_threshold`` 1, close; reopen and read (the segment loads, replays
and persists); set the threshold back; close. ``index_state`` reads the log position of
the vector segment straight from ``chroma.sqlite3`` (read-only), so the policy costs no
replay when no flush is due, and every flush is checked afterwards.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from receipt_chroma.chroma_client import ChromaClient
from receipt_chroma.exceptions import SnapshotIndexError
from receipt_dynamo_stream import compactor_defaults as defaults


@dataclass(frozen=True)
class HnswPolicy:
    """``HNSW_SYNC_THRESHOLD`` (log entries after which chromadb persists by itself) and
    ``HNSW_FLUSH_RECORDS`` (unindexed vectors after which a publish flushes first)."""

    sync_threshold: int = defaults.HNSW_SYNC_THRESHOLD
    flush_records: int = defaults.HNSW_FLUSH_RECORDS


@dataclass(frozen=True)
class IndexState:
    unindexed_records: int  # log entries with a vector that the HNSW files do not hold
    pending_log_records: int  # every log entry the vector segment has not persisted


def index_state(path: Path, collection: str) -> IndexState:
    """Where the HNSW files stand against the log, read from a *closed* directory."""
    database = path / "chroma.sqlite3"
    if not database.is_file():
        raise SnapshotIndexError(f"no chroma.sqlite3 in {path}")
    connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = connection.execute(
            "SELECT c.id, s.id FROM collections c JOIN segments s ON s.collection = c.id "
            "WHERE c.name = ? AND s.scope = 'VECTOR'",
            (collection,),
        ).fetchone()
        if row is None:
            raise SnapshotIndexError(f"{path}: no vector segment for collection {collection!r}")
        collection_id, segment_id = row
        found = connection.execute(
            "SELECT seq_id FROM max_seq_id WHERE segment_id = ?", (segment_id,)
        ).fetchone()
        persisted = sequence_number(found[0]) if found else 0
        pending, unindexed = connection.execute(
            "SELECT count(*), coalesce(sum(vector IS NOT NULL), 0) FROM embeddings_queue "
            "WHERE seq_id > ? AND topic LIKE ?",
            (persisted, f"%/{collection_id}"),
        ).fetchone()
    except sqlite3.Error as error:
        raise SnapshotIndexError(f"{path}: cannot read the index state: {error}") from error
    finally:
        connection.close()
    return IndexState(unindexed_records=int(unindexed), pending_log_records=int(pending))


def sequence_number(value: object) -> int:
    """A ``max_seq_id.seq_id`` value as an int."""
    if isinstance(value, bytes):  # older chromadb stored sequence ids as big-endian blobs
        return int.from_bytes(value, "big")
    if isinstance(value, int):
        return value
    return int(str(value))


def set_sync_threshold(path: Path, collection: str, value: int) -> None:
    with ChromaClient(path, mode="write") as client:
        client.get_collection(collection).modify(configuration={"hnsw": {"sync_threshold": value}})


def flush_index(path: Path, collection: str, sync_threshold: int) -> IndexState:
    """Persist the HNSW index of a closed directory; returns the state afterwards."""
    set_sync_threshold(path, collection, 1)
    with ChromaClient(path, mode="write") as client:
        target = client.get_collection(collection)
        if target.count():
            target.peek(1)  # the vector segment loads: replays the log and persists it
        target.modify(configuration={"hnsw": {"sync_threshold": sync_threshold}})
    return index_state(path, collection)


@dataclass(frozen=True)
class IndexOutcome:
    before: IndexState
    after: IndexState
    flushed: bool


def apply_flush_policy(
    path: Path,
    collection: str,
    policy: HnswPolicy,
    *,
    force: bool = False,
    before_flush: Callable[[], None] | None = None,
) -> IndexOutcome:
    """Flush when unindexed vectors exceed the policy's bound (or when forced and the
    log holds anything unpersisted); ``before_flush`` runs first (it closes any client
    still open on ``path``: a flush must open the directory afresh)."""
    before = index_state(path, collection)
    due = before.unindexed_records > policy.flush_records
    if not (due or (force and before.pending_log_records)):
        return IndexOutcome(before, before, flushed=False)
    if before_flush is not None:
        before_flush()
    after = flush_index(path, collection, policy.sync_threshold)
    return IndexOutcome(before, after, flushed=True)
