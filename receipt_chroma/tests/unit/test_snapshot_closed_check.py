"""The publish check read from a closed directory's files (contract §6.3 step 1, rev 3):
on the pinned chromadb, in every state a cycle leaves a copy in, it reports what a
reopened client reports, and each broken fact is refused by name. A canary for chromadb
upgrades: if chromadb moves the facts, the two checks disagree here.

The expected counts are the records written, counted by the test itself."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from receipt_chroma import ChromaClient
from receipt_chroma.exceptions import SnapshotCheckError
from receipt_chroma.snapshots import check_snapshot
from receipt_chroma.snapshots.closed_check import check_closed_copy, index_files_unchanged
from receipt_chroma.snapshots.files import directory_entries
from receipt_chroma.snapshots.hnsw import flush_index, index_state, set_sync_threshold

DIMENSION = 8
THRESHOLD = 100_000
RNG = np.random.default_rng(11)


def _upsert(path: Path, ids: list[str]) -> None:
    with ChromaClient(path, mode="write") as client:
        collection = client.get_or_create_collection("words")
        vectors = RNG.random((len(ids), DIMENSION), dtype=np.float32)
        client.upsert(collection, ids, vectors, metadatas=[{"text": i} for i in ids])


def _update_and_delete(path: Path, updated: list[str], deleted: list[str]) -> None:
    with ChromaClient(path, mode="write") as client:
        collection = client.get_collection("words")
        if updated:
            collection.update(ids=updated, metadatas=[{"label": "TOTAL"}] * len(updated))
        if deleted:
            collection.delete(ids=deleted)


def _facts(path: Path, dimension: int | None = DIMENSION) -> tuple[object, ...]:
    closed = check_closed_copy(path, "words", dimension)
    reopened = check_snapshot(path, "words", dimension)
    assert closed == reopened
    return (closed.record_count, closed.dimension, closed.sync_threshold)


@pytest.fixture
def published(tmp_path: Path) -> Path:
    """A fully indexed copy with the product's raised threshold: 40 records."""
    path = tmp_path / "db"
    _upsert(path, [f"r{n}" for n in range(40)])
    set_sync_threshold(path, "words", THRESHOLD)
    flush_index(path, "words", THRESHOLD)
    return path


def test_both_checks_agree_in_every_state_a_cycle_leaves(published: Path) -> None:
    assert _facts(published) == (40, DIMENSION, THRESHOLD)

    _upsert(published, [f"n{n}" for n in range(6)])  # unindexed vectors
    assert index_state(published, "words").unindexed_records == 6
    assert _facts(published) == (46, DIMENSION, THRESHOLD)

    _update_and_delete(published, [f"r{n}" for n in range(10)], ["r30", "n0"])
    assert _facts(published) == (44, DIMENSION, THRESHOLD)

    _update_and_delete(published, ["r1"], [])  # a metadata-only tail entry
    assert _facts(published) == (44, DIMENSION, THRESHOLD)

    flush_index(published, "words", THRESHOLD)
    assert _facts(published) == (44, DIMENSION, THRESHOLD)

    every = [f"r{n}" for n in range(40) if n != 30] + [f"n{n}" for n in range(1, 6)]
    _update_and_delete(published, [], every)
    assert _facts(published) == (0, None, THRESHOLD)


def test_a_cycle_without_a_flush_leaves_the_hnsw_files_of_its_base(published: Path) -> None:
    base = directory_entries(published)
    _upsert(published, [f"n{n}" for n in range(6)])
    _update_and_delete(published, ["r1"], ["r2"])
    assert index_files_unchanged(directory_entries(published), base)
    flush_index(published, "words", THRESHOLD)
    assert not index_files_unchanged(directory_entries(published), base)
    assert not index_files_unchanged(directory_entries(published), [])


def _broken(source: Path, target: Path, statement: str) -> Path:
    shutil.copytree(source, target)
    connection = sqlite3.connect(target / "chroma.sqlite3")
    with connection:
        connection.execute(statement)
    connection.close()
    return target


def test_each_broken_fact_is_refused_by_name(published: Path, tmp_path: Path) -> None:
    _upsert(published, [f"n{n}" for n in range(3)])
    with pytest.raises(SnapshotCheckError, match="dimension 8, expected 16"):
        check_closed_copy(published, "words", 16)
    with pytest.raises(SnapshotCheckError, match="no collection 'lines'"):
        check_closed_copy(published, "lines", DIMENSION)

    short = _broken(
        published,
        tmp_path / "short",
        "UPDATE embeddings_queue SET vector = substr(vector, 1, 16) "
        "WHERE seq_id = (SELECT max(seq_id) FROM embeddings_queue WHERE vector IS NOT NULL)",
    )
    with pytest.raises(SnapshotCheckError, match=r"not 8 float32 values: entry \d+ \(16 bytes"):
        check_closed_copy(short, "words", DIMENSION)

    behind = _broken(
        published,
        tmp_path / "behind",
        "UPDATE max_seq_id SET seq_id = seq_id - 1 WHERE segment_id = "
        "(SELECT id FROM segments WHERE scope = 'METADATA')",
    )
    with pytest.raises(SnapshotCheckError, match="metadata segment has applied the log up to"):
        check_closed_copy(behind, "words", DIMENSION)

    damaged = tmp_path / "damaged"
    shutil.copytree(published, damaged)
    database = damaged / "chroma.sqlite3"
    data = bytearray(database.read_bytes())
    data[4096 : 4096 * 3] = bytes(4096 * 2)  # two pages of the file zeroed
    database.write_bytes(bytes(data))
    with pytest.raises(SnapshotCheckError, match=r"chroma\.sqlite3"):
        check_closed_copy(damaged, "words", DIMENSION)

    with pytest.raises(SnapshotCheckError, match=r"no chroma\.sqlite3"):
        check_closed_copy(tmp_path / "nowhere", "words", DIMENSION)


def test_the_collection_a_local_client_opens_and_its_schema(
    published: Path, tmp_path: Path
) -> None:
    """Only the default tenant's default database counts (what a reopen opens); a schema
    a reopen could not deserialize is refused; without one (an older chromadb's
    collection) the files do not say, and the publish reopens."""
    elsewhere = _broken(
        published,
        tmp_path / "elsewhere",
        "UPDATE databases SET name = 'other_database'",
    )
    with pytest.raises(SnapshotCheckError, match="no collection 'words'"):
        check_closed_copy(elsewhere, "words", DIMENSION)

    unreadable = _broken(
        published, tmp_path / "unreadable", "UPDATE collections SET schema_str = '{'"
    )
    with pytest.raises(SnapshotCheckError, match="schema that does not parse"):
        check_closed_copy(unreadable, "words", DIMENSION)

    unknown_space = _broken(
        published,
        tmp_path / "space",
        "UPDATE collections SET schema_str = replace(schema_str, '\"cosine\"', '\"bogus\"')",
    )
    with pytest.raises(SnapshotCheckError, match="known distance space"):
        check_closed_copy(unknown_space, "words", DIMENSION)

    older = _broken(published, tmp_path / "older", "UPDATE collections SET schema_str = NULL")
    assert check_closed_copy(older, "words", DIMENSION) is None
