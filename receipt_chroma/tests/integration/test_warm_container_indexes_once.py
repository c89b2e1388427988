"""A warm container keeps its working copy's Chroma client open from one cycle to the next
(``snapshots.resident_client``), so the records it indexed are not indexed again; each
version it publishes still holds exactly what the batches wrote, read back from S3.

Expected records come from the receipts the test wrote (ids, vectors, label keys as
contract §4 defines them), never from the product."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import numpy as np
import pytest

from receipt_chroma import ChromaClient
from receipt_chroma.ids import word_vector_id
from receipt_chroma.snapshots import CacheTier, HnswPolicy, SnapshotSettings
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo.testing import make_label

pytestmark = pytest.mark.integration

FLUSH_RECORDS = 9  # a second receipt of six words since the last flush flushes


@pytest.fixture
def world(aws_endpoint: str, tmp_path: Path) -> CompactionWorld:
    return CompactionWorld(tmp_path)


def _assert_holds_exactly(
    published: dict[str, tuple[dict[str, object], list[float]]],
    receipts: list[SyntheticReceipt],
) -> None:
    expected = {
        vector_id: vector
        for receipt in receipts
        for vector_id, vector, _, _ in receipt.word_records()
    }
    assert set(published) == set(expected)
    for vector_id, (_, vector) in published.items():
        # float32 storage, read back rounded to 5 places
        assert np.allclose(vector, expected[vector_id], atol=2e-5), vector_id


def test_a_warm_container_publishes_every_batch_with_its_client_kept_open(
    world: CompactionWorld,
) -> None:
    settings = SnapshotSettings(
        dimension=world.dimension,
        hnsw=HnswPolicy(sync_threshold=100_000, flush_records=FLUSH_RECORDS),
    )
    cycle = world.cycle("words", snapshot_settings=settings)
    receipts: list[SyntheticReceipt] = []
    outcomes = []
    kept_open = []
    for _ in range(4):
        receipts.append(SyntheticReceipt(str(uuid.uuid4()), 1, dimension=world.dimension))
        world.add_receipt(receipts[-1])
        result = cycle.run(world.pump()["words"])
        assert result.failures == []
        outcomes.append((result.tier, result.hnsw_flushed, result.unindexed_records))
        _assert_holds_exactly(world.snapshot_from_s3("words"), receipts)
        kept_open.append(cycle.working.client.is_open)

    assert outcomes == [
        (CacheTier.BOOTSTRAP, False, 6),
        (CacheTier.WARM, True, 0),
        (CacheTier.WARM, False, 6),
        (CacheTier.WARM, True, 0),
    ]
    # The bootstrap (no base version to compare with) and each flush reopen the copy,
    # which closes the client; a cycle between flushes keeps it open for the next.
    assert kept_open == [False, False, True, False]

    first = receipts[0]
    label = make_label(first.image_id, 1, 1, 1, "TOTAL", validation_status="VALID")
    world.dynamo.put_receipt_word_label(label)
    result = cycle.run(world.pump()["words"])
    assert (result.failures, result.tier) == ([], CacheTier.WARM)
    metadata, _ = world.snapshot_from_s3("words")[word_vector_id(first.image_id, 1, 1, 1)]
    assert (metadata["label_status"], metadata["valid_labels_array"]) == ("validated", ["TOTAL"])
    assert cycle.working.client.is_open


def _hashes(path: Path) -> dict[str, str]:
    return {
        p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def test_an_idle_clients_directory_is_byte_for_byte_the_closed_one(tmp_path: Path) -> None:
    """The canary for hashing a copy while its client stays open: chromadb 1.5.9 commits
    each write call to chroma.sqlite3 and writes nothing more when it closes."""
    path = tmp_path / "db"
    rng = np.random.default_rng(3)
    client = ChromaClient(path, mode="write")
    words = client.get_or_create_collection("words")
    for batch in range(3):
        ids = [f"b{batch}-{n}" for n in range(20)]
        client.upsert(words, ids, rng.random((20, 8), dtype=np.float32))
        words.update(ids=ids[:5], metadatas=[{"label": "TAX"}] * 5)
        words.delete(ids=ids[-2:])
    idle = _hashes(path)
    client.close()
    assert _hashes(path) == idle


def test_a_container_starting_between_two_flushes_keeps_its_client_from_the_first_cycle(
    world: CompactionWorld,
) -> None:
    """Its first load of the index rewrites two HNSW files (chromadb replays the unindexed
    records into them): the publish compares with the files as that load left them, so the
    check still needs no reopen and the client stays open."""
    settings = SnapshotSettings(
        dimension=world.dimension, hnsw=HnswPolicy(sync_threshold=100_000, flush_records=100)
    )
    receipts = [SyntheticReceipt(str(uuid.uuid4()), 1, dimension=world.dimension)]
    world.add_receipt(receipts[0])
    first = world.cycle("words", work="first", snapshot_settings=settings)
    assert first.run(world.pump()["words"]).failures == []
    first.working.unlock()  # that container ends; the version has 6 unindexed records

    later = world.cycle("words", work="later", snapshot_settings=settings)
    for _ in range(2):
        receipts.append(SyntheticReceipt(str(uuid.uuid4()), 1, dimension=world.dimension))
        world.add_receipt(receipts[-1])
        result = later.run(world.pump()["words"])
        assert result.failures == []
        assert not result.hnsw_flushed
        assert later.working.client.is_open
        _assert_holds_exactly(world.snapshot_from_s3("words"), receipts)


def test_a_flush_refuses_while_another_client_holds_the_copy(world: CompactionWorld) -> None:
    """A flush must open the directory afresh; another client of the same path in the
    process would keep chromadb's shared system alive and the flush would silently not
    happen. The cycle fails instead, and succeeds once that client is closed."""
    settings = SnapshotSettings(
        dimension=world.dimension, hnsw=HnswPolicy(sync_threshold=100_000, flush_records=8)
    )
    cycle = world.cycle("words", snapshot_settings=settings)
    receipts = [SyntheticReceipt(str(uuid.uuid4()), 1, dimension=world.dimension)]
    world.add_receipt(receipts[0])
    assert cycle.run(world.pump()["words"]).failures == []
    receipts.append(SyntheticReceipt(str(uuid.uuid4()), 1, dimension=world.dimension))
    world.add_receipt(receipts[-1])
    messages = world.pump()["words"]

    reader = ChromaClient(cycle.working.path, mode="read")
    refused = cycle.run(messages)
    reader.close()
    assert refused.failures
    assert "another Chroma client" in refused.failures[0].reason

    retried = cycle.run(messages)
    assert (retried.failures, retried.hnsw_flushed) == ([], True)
    _assert_holds_exactly(world.snapshot_from_s3("words"), receipts)
