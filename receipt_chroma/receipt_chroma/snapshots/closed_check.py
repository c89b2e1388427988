"""The publish check of contract §6.3 step 1 without reopening Chroma (SPEC rev 3).

Reopening the working copy (``check_snapshot``) replays every log entry its HNSW files do
not hold yet: the apply stage has just paid that re-index, and the check paid it a second
time (1-4 s per cycle at 20,000 x 1536-d, growing with the unindexed tail until the next
flush). This check establishes the same facts from the directory's files. Why each is as
strong as the reopen:

- **The collection exists and opens.** It is looked up in the tenant and database a local
  client opens, and its schema - what a reopen deserializes first - must parse and name an
  HNSW vector index with a known distance space. A collection without a schema (an older
  chromadb's) is not checked here: ``prepare_directory`` reopens it.
- **Its count** is what a reopened client reports: chromadb 1.5.9 (local) answers
  ``count()`` from the metadata segment's ``embeddings`` table, and every write call
  applies its log entries to that segment before it returns. The check requires that
  segment to have applied the whole log (else a reopen would apply the rest first).
- **Its dimension** is the collection's recorded ``dimension``, which chromadb sets from the
  first vector and enforces on every later one; every log entry past the vector segment's
  persisted position that carries a vector - what a reopen replays - must hold that many
  float32 values.
- **Its HNSW files load.** The caller uses this check only while the HNSW files are byte
  for byte (size and sha256) those the copy started the cycle with: its label's - the base
  version's files, as verified against its manifest on download or as this container
  published them (after a cycle that wrote nothing, as hashed then) - or, when this cycle
  first loaded the index, the files as that load left them (chromadb rewrites two of them
  in place when it replays unindexed records into them; the reopen check published files
  its own load had rewritten in the same way). And the cycle being published made write
  calls: chromadb loads the vector segment - those very files, unchanged since (with the
  client kept open between cycles, loaded when the container first wrote) - before it
  applies any write, so a segment that could not load would have failed the apply, and a
  log the metadata segment has not fully applied is refused above. When any HNSW file
  changed (a flush, or chromadb persisting by itself), ``prepare_directory`` reopens.
- **The database file is sound**: ``PRAGMA quick_check`` (which the reopen never ran).

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
_SCHEMA_VECTOR_INDEX = ("keys", "#embedding", "float_list", "vector_index", "config")
SPACES = frozenset({"cosine", "l2", "ip"})
# The tenant and database every local client opens (chromadb's defaults).
DEFAULT_TENANT = "default_tenant"
DEFAULT_DATABASE = "default_database"


def index_files_unchanged(files: Iterable[FileEntry], base_files: Iterable[FileEntry]) -> bool:
    """True when every file but the database is, by path, size and sha256, one of the
    base version's files, and none of the base's is missing."""
    now = {entry for entry in files if entry.path != DATABASE}
    before = {entry for entry in base_files if entry.path != DATABASE}
    return now == before


def check_closed_copy(
    path: Path, collection: str, dimension: int | None, *, label: str | None = None
) -> SnapshotCheck | None:
    """The facts of ``check_snapshot`` read from ``path/chroma.sqlite3`` (opened
    read-only). The caller has established that the HNSW files are the label's, and that
    the cycle wrote through chromadb. None: the files do not say (no collection schema),
    so the caller reopens.

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
) -> SnapshotCheck | None:
    integrity = [row[0] for row in connection.execute("PRAGMA quick_check")]
    if integrity != ["ok"]:
        raise SnapshotCheckError(f"{where}: {DATABASE} is damaged: {'; '.join(integrity[:3])}")
    collection_id, recorded_dimension, schema = _collection_row(connection, where, collection)
    if schema is None:
        return None  # an older chromadb's collection: its settings are where a reopen looks
    hnsw = _vector_index(where, collection, schema)
    segments = _segments(connection, where, collection, collection_id)
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
            dimension=recorded_dimension,
        )
    return SnapshotCheck(
        collection=collection,
        record_count=int(count),
        dimension=recorded_dimension if count else None,
        sync_threshold=_sync_threshold(hnsw),
    )


def _collection_row(
    connection: sqlite3.Connection, where: str, collection: str
) -> tuple[str, int | None, str | None]:
    """The collection's id, recorded dimension and schema, in the tenant and database a
    local client opens."""
    rows = connection.execute(
        "SELECT c.id, c.dimension, c.schema_str FROM collections c "
        "JOIN databases d ON d.id = c.database_id "
        "WHERE c.name = ? AND d.name = ? AND d.tenant_id = ?",
        (collection, DEFAULT_DATABASE, DEFAULT_TENANT),
    ).fetchall()
    if len(rows) != 1:
        found = "no collection" if not rows else f"{len(rows)} collections named"
        raise SnapshotCheckError(f"{where}: {found} {collection!r}")
    collection_id, dimension, schema = rows[0]
    return collection_id, dimension, schema


def _segments(
    connection: sqlite3.Connection, where: str, collection: str, collection_id: str
) -> dict[str, str]:
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
    return segments


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


def _vector_index(where: str, collection: str, schema: str) -> dict[str, Any]:
    """The HNSW settings of the collection's vector index, from the schema a reopen
    deserializes first: a schema that does not parse, or names no HNSW index with a
    known distance space, is refused (a reopen would fail on it)."""
    try:
        found: Any = json.loads(schema)
    except json.JSONDecodeError as error:
        raise SnapshotCheckError(
            f"{where}: collection {collection!r} has a schema that does not parse: {error}"
        ) from error
    config: Any = found
    for key in _SCHEMA_VECTOR_INDEX:
        config = config.get(key) if isinstance(config, dict) else None
    hnsw = config.get("hnsw") if isinstance(config, dict) else None
    if not isinstance(hnsw, dict) or config.get("space") not in SPACES:
        raise SnapshotCheckError(
            f"{where}: collection {collection!r} has no HNSW vector index with a known "
            "distance space in its schema"
        )
    return hnsw


def _sync_threshold(hnsw: dict[str, Any]) -> int | None:
    """``hnsw.sync_threshold`` where chromadb 1.5.9 keeps it (and ``modify`` writes it);
    None when absent, so the publish sets it."""
    threshold = hnsw.get("sync_threshold")
    return threshold if isinstance(threshold, int) else None
