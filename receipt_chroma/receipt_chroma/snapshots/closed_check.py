"""The publish check of contract §6.3 step 1 without reopening Chroma (SPEC rev 3).

Reopening the closed working copy (``check_snapshot``) replays every log entry its HNSW
files do not hold yet: the apply stage has just paid that re-index, and the check paid it a
second time (1-4 s per cycle at 20,000 x 1536-d, growing with the unindexed tail until the
next flush). This check establishes the same facts from the directory's files:

- **The collection, its count and dimension** are what a reopened client would report:
  chromadb 1.5.9 (local) answers ``count()`` from the metadata segment's ``embeddings``
  table, and every write call applies its log entries to that segment before it returns;
  the check requires that segment to have applied the whole log (else a reopen would
  apply the rest first, and the count here could differ). The dimension is the
  collection's recorded ``dimension``, which chromadb sets from the first vector and
  enforces on every later one.
- **The vectors a reopen would replay** are readable and of that dimension: every log
  entry past the vector segment's persisted position that carries a vector holds
  ``dimension`` float32 values.
- **The HNSW files load**: they are byte for byte (size and sha256) the files of the base
  version, which passed this check (or the reopen check) when it was published and were
  verified against its manifest when downloaded. When any of them changed — a flush, or
  chromadb persisting by itself — or there is no base to compare with, ``prepare_directory``
  reopens instead.
- **The database file is sound**: ``PRAGMA quick_check`` (which the reopen check never ran).

``tests/unit/test_snapshot_closed_check.py`` is the canary: on directories in every state
the cycle produces, both checks report the same facts, and each broken fact is refused.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from receipt_chroma.exceptions import SnapshotCheckError
from receipt_chroma.snapshots.check import SnapshotCheck
from receipt_chroma.snapshots.hnsw import sequence_number
from receipt_chroma.snapshots.manifest import FileEntry

DATABASE = "chroma.sqlite3"
FLOAT32_BYTES = 4
_SCHEMA_HNSW = ("keys", "#embedding", "float_list", "vector_index", "config", "hnsw")


def index_files_unchanged(files: Iterable[FileEntry], base_files: Iterable[FileEntry]) -> bool:
    """True when every file but the database is, by path, size and sha256, one of the
    base version's files, and none of the base's is missing."""
    now = {entry for entry in files if entry.path != DATABASE}
    before = {entry for entry in base_files if entry.path != DATABASE}
    return now == before


def check_closed_copy(
    path: Path, collection: str, dimension: int | None, *, label: str | None = None
) -> SnapshotCheck:
    """The facts of ``check_snapshot`` read from ``path/chroma.sqlite3`` (closed; opened
    read-only). The caller has established that the HNSW files are the base version's.

    Raises SnapshotCheckError naming what is wrong (``label`` instead of ``path``).
    """
    where = label or str(path)
    database = path / DATABASE
    if not database.is_file():
        raise SnapshotCheckError(f"{where}: no {DATABASE}")
    connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return _check(connection, where, collection, dimension)
    except sqlite3.Error as error:
        raise SnapshotCheckError(f"{where}: {DATABASE} cannot be read: {error}") from error
    finally:
        connection.close()


def _check(
    connection: sqlite3.Connection, where: str, collection: str, dimension: int | None
) -> SnapshotCheck:
    integrity = [row[0] for row in connection.execute("PRAGMA quick_check")]
    if integrity != ["ok"]:
        raise SnapshotCheckError(f"{where}: {DATABASE} is damaged: {'; '.join(integrity[:3])}")
    rows = connection.execute(
        "SELECT id, dimension, config_json_str, schema_str FROM collections WHERE name = ?",
        (collection,),
    ).fetchall()
    if len(rows) != 1:
        found = "no collection" if not rows else f"{len(rows)} collections named"
        raise SnapshotCheckError(f"{where}: {found} {collection!r}")
    collection_id, recorded_dimension, configuration, schema = rows[0]
    segments = dict(
        connection.execute(
            "SELECT scope, id FROM segments WHERE collection = ?", (collection_id,)
        ).fetchall()
    )
    if set(segments) != {"METADATA", "VECTOR"}:
        raise SnapshotCheckError(
            f"{where}: collection {collection!r} has segments {sorted(segments)}, "
            "expected METADATA and VECTOR"
        )
    topic = f"%/{collection_id}"
    metadata_position = _position(connection, segments["METADATA"])
    (last_entry,) = connection.execute(
        "SELECT coalesce(max(seq_id), 0) FROM embeddings_queue WHERE topic LIKE ?", (topic,)
    ).fetchone()
    if metadata_position < last_entry:
        raise SnapshotCheckError(
            f"{where}: collection {collection!r}: the metadata segment has applied the log "
            f"up to {metadata_position}, not to its end ({last_entry})"
        )
    (count,) = connection.execute(
        "SELECT count(*) FROM embeddings WHERE segment_id = ?", (segments["METADATA"],)
    ).fetchone()
    if count and recorded_dimension is None:
        raise SnapshotCheckError(f"{where}: collection {collection!r} records no dimension")
    if count and dimension is not None and recorded_dimension != dimension:
        raise SnapshotCheckError(
            f"{where}: collection {collection!r} has dimension {recorded_dimension}, "
            f"expected {dimension}"
        )
    if recorded_dimension is not None:
        _check_unindexed_vectors(
            connection,
            where,
            collection,
            topic,
            after=_position(connection, segments["VECTOR"]),
            dimension=int(recorded_dimension),
        )
    return SnapshotCheck(
        collection=collection,
        record_count=int(count),
        dimension=int(recorded_dimension) if count else None,
        sync_threshold=_sync_threshold(configuration, schema),
    )


def _check_unindexed_vectors(
    connection: sqlite3.Connection,
    where: str,
    collection: str,
    topic: str,
    *,
    after: int,
    dimension: int,
) -> None:
    bad: Sequence[tuple[int, int | None, str | None]] = connection.execute(
        "SELECT seq_id, length(vector), encoding FROM embeddings_queue "
        "WHERE topic LIKE ? AND seq_id > ? AND vector IS NOT NULL "
        "AND (length(vector) != ? OR encoding IS NOT 'FLOAT32') ORDER BY seq_id LIMIT 3",
        (topic, after, dimension * FLOAT32_BYTES),
    ).fetchall()
    if bad:
        shown = ", ".join(f"entry {seq} ({size} bytes, {encoding})" for seq, size, encoding in bad)
        raise SnapshotCheckError(
            f"{where}: collection {collection!r}: unindexed vectors are not "
            f"{dimension} float32 values: {shown}"
        )


def _position(connection: sqlite3.Connection, segment_id: str) -> int:
    """How far a segment has applied (metadata) or persisted (vector) the log; 0: never."""
    row = connection.execute(
        "SELECT seq_id FROM max_seq_id WHERE segment_id = ?", (segment_id,)
    ).fetchone()
    return 0 if row is None else sequence_number(row[0])


def _sync_threshold(configuration: str | None, schema: str | None) -> int | None:
    """``hnsw.sync_threshold`` as chromadb 1.5.9 reads it: from the collection schema's
    vector index (where ``modify`` writes it), else from the legacy configuration."""
    for text, path in ((schema, _SCHEMA_HNSW), (configuration, ("hnsw",))):
        found: Any = _load(text)
        for key in path:
            found = found.get(key) if isinstance(found, dict) else None
        threshold = found.get("sync_threshold") if isinstance(found, dict) else None
        if isinstance(threshold, int):
            return threshold
    return None


def _load(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
