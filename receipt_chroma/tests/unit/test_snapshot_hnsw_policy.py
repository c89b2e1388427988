"""The HNSW flush policy on the pinned chromadb (contract §6.2): with the collection's
``sync_threshold`` raised, writes change only ``chroma.sqlite3``; ``index_state`` counts
what waits for the index; a planned flush persists it. A canary for chromadb upgrades:
if the mechanism stops working, these fail."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from receipt_chroma import ChromaClient
from receipt_chroma.snapshots import check_snapshot
from receipt_chroma.snapshots.database import compact_database
from receipt_chroma.snapshots.files import directory_entries
from receipt_chroma.snapshots.hnsw import (
    HnswPolicy,
    apply_flush_policy,
    index_state,
    set_sync_threshold,
)

DIMENSION = 8
RNG = np.random.default_rng(7)


def _write(path: Path, ids: list[str], *, metadata_only: bool = False) -> None:
    with ChromaClient(path, mode="write") as client:
        collection = client.get_or_create_collection("words")
        if metadata_only:
            collection.update(ids=ids, metadatas=[{"label_status": "validated"}] * len(ids))
        else:
            client.upsert(
                collection,
                ids,
                RNG.random((len(ids), DIMENSION), dtype=np.float32),
                metadatas=[{"text": i} for i in ids],
            )


def _hashes(path: Path) -> dict[str, str]:
    return {entry.path: entry.sha256 for entry in directory_entries(path)}


def test_raised_threshold_keeps_hnsw_files_and_a_planned_flush_indexes(tmp_path: Path) -> None:
    path = tmp_path / "db"
    _write(path, [f"r{n}" for n in range(30)])
    before = index_state(path, "words")
    assert (before.unindexed_records, before.pending_log_records) == (30, 30)

    policy = HnswPolicy(sync_threshold=100_000, flush_records=20)
    outcome = apply_flush_policy(path, "words", policy)
    assert outcome.flushed
    assert outcome.after.unindexed_records == 0
    flushed = _hashes(path)
    assert any(name.endswith("data_level0.bin") for name in flushed)
    assert check_snapshot(path, "words", DIMENSION).sync_threshold == 100_000

    # Below the bound: new vectors and metadata updates change only chroma.sqlite3.
    _write(path, [f"s{n}" for n in range(5)])
    _write(path, ["r1", "r2"], metadata_only=True)
    assert not apply_flush_policy(path, "words", policy).flushed
    after = _hashes(path)
    assert {name for name in after if after[name] != flushed.get(name)} == {"chroma.sqlite3"}
    state = index_state(path, "words")
    assert (state.unindexed_records, state.pending_log_records) == (5, 7)
    assert check_snapshot(path, "words", DIMENSION).record_count == 35

    # An operator's flush persists whatever waits, whatever the bound.
    forced = apply_flush_policy(path, "words", policy, force=True)
    assert forced.flushed
    assert (forced.after.unindexed_records, forced.after.pending_log_records) == (0, 0)
    assert _hashes(path) != after
    with ChromaClient(path, mode="read") as client:
        found = client.get_collection("words").get(ids=["s4", "r1"], include=["metadatas"])
    assert sorted(found["ids"]) == ["r1", "s4"]


def test_nothing_to_flush_publishes_nothing_new(tmp_path: Path) -> None:
    path = tmp_path / "db"
    _write(path, ["a", "b"])
    apply_flush_policy(path, "words", HnswPolicy(flush_records=0))
    hashes = _hashes(path)
    outcome = apply_flush_policy(path, "words", HnswPolicy(flush_records=0), force=True)
    assert not outcome.flushed
    assert _hashes(path) == hashes


def test_threshold_is_set_on_the_collection(tmp_path: Path) -> None:
    path = tmp_path / "db"
    _write(path, ["a"])
    set_sync_threshold(path, "words", 12_345)
    assert check_snapshot(path, "words", DIMENSION).sync_threshold == 12_345


def test_a_sparse_database_is_vacuumed_and_keeps_its_records(tmp_path: Path) -> None:
    path = tmp_path / "db"
    _write(path, [f"r{n}" for n in range(300)])
    with ChromaClient(path, mode="write") as client:
        client.get_collection("words").delete(ids=[f"r{n}" for n in range(250)])
    apply_flush_policy(path, "words", HnswPolicy(flush_records=0))  # purges the log

    outcome = compact_database(path)

    assert outcome.vacuumed
    assert outcome.bytes_after < outcome.bytes_before
    assert check_snapshot(path, "words", DIMENSION).record_count == 50
    assert not compact_database(path).vacuumed  # nothing left to reclaim
