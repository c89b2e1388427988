"""The query-side snapshot reader (issue 24 item 2): queries answered while a refresh runs,
catch-up by the files that differ, old copies pruned but never under a query, and a
version that does not verify refused while the old one keeps serving.

Versions are published by the real compaction cycle on a moto server; the expected values
come from the table rows the test writes and the manifests in S3, never from the reader."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
import zstandard

from receipt_chroma.compaction import CompactionCycle
from receipt_chroma.exceptions import SnapshotVersionCorruptError
from receipt_chroma.reader import (
    NoPointerError,
    NothingServedError,
    ReaderBusyError,
    RefreshKind,
    SnapshotReader,
    VersionCheckError,
)
from receipt_chroma.reader import snapshot_reader as snapshot_reader_module
from receipt_chroma.snapshots import HnswPolicy, S3SnapshotStore, SnapshotSettings
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo.testing import IMAGE_ID, make_metadata

pytestmark = pytest.mark.integration

PROBE = [1.0] * 8


@pytest.fixture
def world(aws_endpoint: str, tmp_path: Path) -> CompactionWorld:
    return CompactionWorld(tmp_path)


class Publisher:
    """One compactor container publishing words versions: the first fully indexed, the
    next ones changing the receipt's merchant (only ``chroma.sqlite3`` changes)."""

    def __init__(self, world: CompactionWorld) -> None:
        self.world = world
        world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
        settings = SnapshotSettings(
            dimension=world.dimension, lock_duration_seconds=30, hnsw=HnswPolicy(flush_records=0)
        )
        self.cycle: CompactionCycle = world.cycle("words", snapshot_settings=settings)
        self.first = self._publish()
        self.cycle.snapshots.settings = replace(settings, hnsw=HnswPolicy(flush_records=1_000))

    def _publish(self) -> str:
        result = self.cycle.run(self.world.pump()["words"])
        assert result.failures == [], result.failures
        assert result.published_version is not None
        return result.published_version

    def merchant(self, name: str) -> str:
        self.world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name=name))
        return self._publish()


class ObjectGets:
    """The snapshot objects a client GETs (sha256 of each), and an optional gate that
    holds the first object GET until the test releases it."""

    def __init__(self, s3: Any) -> None:
        self.keys: list[str] = []
        self.gate: threading.Event | None = None
        self.reached = threading.Event()
        s3.meta.events.register("before-parameter-build.s3.GetObject", self._record)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        if "/snapshot/objects/" not in params["Key"]:
            return
        self.keys.append(params["Key"].rsplit("/", 1)[1].removesuffix(".zst"))
        self.reached.set()
        if self.gate is not None:
            assert self.gate.wait(30), "the test never released the download"


def manifest(world: CompactionWorld, version: str) -> dict[str, Any]:
    key = f"words/snapshot/versions/{version}/manifest.json"
    body: dict[str, Any] = json.loads(
        world.s3.get_object(Bucket=world.bucket, Key=key)["Body"].read()
    )
    return body


def shas(world: CompactionWorld, version: str) -> dict[str, str]:
    return {f["path"]: f["sha256"] for f in manifest(world, version)["files"]}


def merchant_answered(reader: SnapshotReader) -> tuple[str, str]:
    """(version, merchant_name of the nearest record) of one query."""
    answer = reader.query(query_embeddings=[PROBE], n_results=1, include=["metadatas"])
    return answer.version, answer.result["metadatas"][0][0]["merchant_name"]


def copies(directory: Path) -> list[str]:
    """The versions of the copies on disk (and any other entry but the lock)."""
    return sorted(p.name.split(".")[0] for p in directory.iterdir() if p.name != ".lock")


@pytest.fixture
def reader_s3() -> Any:
    return boto3.client("s3")


@pytest.fixture
def reader(world: CompactionWorld, reader_s3: Any, tmp_path: Path) -> Iterator[SnapshotReader]:
    with SnapshotReader(
        collection="words",
        store=S3SnapshotStore(reader_s3, world.bucket, "words"),
        dynamo=world.dynamo,
        directory=tmp_path / "reader",
    ) as opened:
        yield opened


def test_queries_are_answered_by_the_old_version_while_a_refresh_runs_then_by_the_new(
    world: CompactionWorld, reader: SnapshotReader, reader_s3: Any
) -> None:
    publisher = Publisher(world)
    one = publisher.merchant("One")
    assert reader.refresh().version == one
    two = publisher.merchant("Two")
    gets = ObjectGets(reader_s3)
    gets.gate = threading.Event()
    outcomes: list[Any] = []
    refresh = threading.Thread(target=lambda: outcomes.append(reader.refresh()))
    refresh.start()
    try:
        assert gets.reached.wait(30), "the refresh never downloaded an object"
        during = []
        for _ in range(5):  # the refresh is held inside its download meanwhile
            started = time.perf_counter()
            during.append(merchant_answered(reader))
            assert time.perf_counter() - started < 5
        assert during == [(one, "One")] * 5
        assert refresh.is_alive()
    finally:
        gets.gate.set()
        refresh.join(60)
    assert outcomes[0].error is None, outcomes[0].reason
    assert (outcomes[0].version, outcomes[0].serving) == (two, two)
    assert merchant_answered(reader) == (two, "Two")


def test_catch_up_downloads_only_the_objects_of_files_that_differ(
    world: CompactionWorld, reader: SnapshotReader, reader_s3: Any
) -> None:
    publisher = Publisher(world)
    first = reader.refresh()
    assert first.kind is RefreshKind.DOWNLOAD
    assert first.version == publisher.first
    changed = publisher.merchant("Changed")
    gets = ObjectGets(reader_s3)
    outcome = reader.refresh()

    old, new = shas(world, publisher.first), shas(world, changed)
    differing = {sha for sha in new.values() if sha not in set(old.values())}
    assert differing
    assert len(differing) < len(set(new.values()))
    assert set(gets.keys) == differing
    assert outcome.kind is RefreshKind.CATCH_UP
    assert outcome.stats.files_reused == sum(1 for sha in new.values() if sha not in differing)
    with reader.use() as served:
        found = served.collection.get(include=["metadatas"])
    assert served.version == changed
    assert sorted(found["ids"]) == sorted(world.snapshot_from_s3("words", changed))
    assert {m["merchant_name"] for m in found["metadatas"]} == {"Changed"}


def test_old_copies_are_pruned_but_never_under_a_query(
    world: CompactionWorld, reader: SnapshotReader, tmp_path: Path
) -> None:
    publisher = Publisher(world)
    directory = tmp_path / "reader"
    reader.refresh()
    second = publisher.merchant("Second")
    reader.refresh()
    assert copies(directory) == [second]
    with reader.use() as pinned:
        third = publisher.merchant("Third")
        assert reader.refresh().version == third
        assert reader.version == third
        assert copies(directory) == sorted([second, third])  # in use: not deleted under it
        assert pinned.version == second
        assert pinned.collection.count() == manifest(world, second)["record_count"]
        assert merchant_answered(reader) == (third, "Third")
    assert reader.refresh().kind is RefreshKind.CURRENT
    assert copies(directory) == [third]
    # Back to an older version (a rollback): built again from the serving copy's files.
    back = reader.refresh(second)
    assert (back.kind, back.serving) == (RefreshKind.CATCH_UP, second)
    assert merchant_answered(reader) == (second, "Second")
    assert copies(directory) == [second]


def test_a_new_reader_of_the_directory_starts_from_the_copy_the_last_one_served(
    world: CompactionWorld, reader_s3: Any, tmp_path: Path
) -> None:
    publisher = Publisher(world)
    store = S3SnapshotStore(reader_s3, world.bucket, "words")
    directory = tmp_path / "reader"
    kwargs: dict[str, Any] = {"collection": "words", "dynamo": world.dynamo}
    with SnapshotReader(store=store, directory=directory, **kwargs) as first:
        first.refresh()
        with pytest.raises(ReaderBusyError, match="in use by another process"):
            SnapshotReader(store=store, directory=directory, **kwargs)
    later = publisher.merchant("Later")
    gets = ObjectGets(reader_s3)
    with SnapshotReader(store=store, directory=directory, **kwargs) as second:
        outcome = second.refresh()
        assert outcome.version == later
        assert merchant_answered(second) == (later, "Later")
    old, new = shas(world, publisher.first), shas(world, later)
    assert set(gets.keys) == {sha for sha in new.values() if sha not in set(old.values())}
    assert copies(directory) == [later]
    # The same version again: the copy was opened (chromadb rewrote some of its files),
    # so it is not served in place; a fresh copy reuses every file that still verifies.
    gets.keys.clear()
    with SnapshotReader(store=store, directory=directory, **kwargs) as third:
        again = third.refresh()
        assert again.kind is RefreshKind.CATCH_UP
        assert again.stats.files_reused > 0
        assert merchant_answered(third) == (later, "Later")
    assert set(gets.keys) < set(new.values())
    assert copies(directory) == [later]


def _tamper(world: CompactionWorld, sha: str) -> bytes:
    """Replace an object with one that decompresses to other bytes of the same size."""
    key = f"words/snapshot/objects/{sha}.zst"
    original: bytes = world.s3.get_object(Bucket=world.bucket, Key=key)["Body"].read()
    plain = bytearray(zstandard.ZstdDecompressor().decompressobj().decompress(original))
    plain[len(plain) // 2] ^= 0xFF
    world.s3.put_object(Bucket=world.bucket, Key=key, Body=zstandard.compress(bytes(plain)))
    return original


def test_a_tampered_object_is_refused_and_the_old_version_keeps_serving(
    world: CompactionWorld, reader: SnapshotReader, tmp_path: Path
) -> None:
    publisher = Publisher(world)
    good = publisher.merchant("Good")
    reader.refresh()
    bad = publisher.merchant("Bad")
    old, new = shas(world, good), shas(world, bad)
    target = next(sha for sha in new.values() if sha not in set(old.values()))
    original = _tamper(world, target)

    outcome = reader.refresh()
    assert outcome.kind is RefreshKind.FAILED
    assert (outcome.version, outcome.serving) == (bad, good)
    assert isinstance(outcome.error, SnapshotVersionCorruptError)
    assert f"objects/{target}.zst" in str(outcome.error)
    assert "does not match its manifest" in str(outcome.error)
    assert reader.last_refresh is outcome
    assert merchant_answered(reader) == (good, "Good")
    assert copies(tmp_path / "reader") == [good]  # nothing partial left beside it

    key = f"words/snapshot/objects/{target}.zst"
    world.s3.put_object(Bucket=world.bucket, Key=key, Body=original)  # repaired
    assert reader.refresh().kind is RefreshKind.CATCH_UP
    assert merchant_answered(reader) == (bad, "Bad")


def test_a_manifest_that_does_not_match_its_hash_is_refused(
    world: CompactionWorld, reader: SnapshotReader
) -> None:
    publisher = Publisher(world)
    reader.refresh()
    forged = publisher.merchant("Forged")
    key = f"words/snapshot/versions/{forged}/manifest.json"
    body = manifest(world, forged)
    body["record_count"] += 1
    world.s3.put_object(Bucket=world.bucket, Key=key, Body=json.dumps(body).encode())

    outcome = reader.refresh()
    assert outcome.kind is RefreshKind.FAILED
    assert isinstance(outcome.error, SnapshotVersionCorruptError)
    assert ".manifest_hash" in str(outcome.error)
    assert reader.version == publisher.first


def test_a_verified_copy_that_does_not_open_as_its_manifest_says_is_never_served(
    world: CompactionWorld, reader: SnapshotReader, tmp_path: Path
) -> None:
    """A manifest whose hash is right but whose record count is not what its files hold
    (a publisher bug): every object verifies, the open check refuses it."""
    publisher = Publisher(world)
    reader.refresh()
    body = manifest(world, publisher.first)
    lying = publisher.first[:-8] + "0badf00d"
    body["version_id"], body["record_count"] = lying, body["record_count"] + 1
    data = json.dumps(body).encode()
    prefix = f"words/snapshot/versions/{lying}/"
    world.s3.put_object(Bucket=world.bucket, Key=prefix + "manifest.json", Body=data)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}".encode()
    world.s3.put_object(Bucket=world.bucket, Key=prefix + ".manifest_hash", Body=digest)

    outcome = reader.refresh(lying)
    assert outcome.kind is RefreshKind.FAILED
    assert isinstance(outcome.error, VersionCheckError)
    assert f"its manifest records {body['record_count']}" in str(outcome.error)
    assert reader.version == publisher.first
    assert copies(tmp_path / "reader") == [publisher.first]


def test_nothing_is_served_before_a_pointer_exists(reader: SnapshotReader) -> None:
    outcome = reader.refresh()
    assert outcome.kind is RefreshKind.FAILED
    assert isinstance(outcome.error, NoPointerError)
    with pytest.raises(NothingServedError, match="words has no pointer item"):
        reader.query(query_embeddings=[PROBE], n_results=1)


def test_following_the_pointer_serves_what_is_published(
    world: CompactionWorld, reader: SnapshotReader
) -> None:
    publisher = Publisher(world)
    reader.follow(0.05)
    newer = publisher.merchant("Followed")
    deadline = time.monotonic() + 30
    while reader.version != newer and time.monotonic() < deadline:
        time.sleep(0.05)
    assert merchant_answered(reader) == (newer, "Followed")


def test_a_failed_prune_neither_loses_the_refresh_nor_stops_the_follower(
    world: CompactionWorld, reader: SnapshotReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher = Publisher(world)
    failures: list[str] = []

    def unprunable(*_: Any, **__: Any) -> list[str]:
        failures.append("prune")
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(snapshot_reader_module, "remove_unkept", unprunable)
    outcome = reader.refresh()
    assert (outcome.kind, reader.last_refresh) == (RefreshKind.DOWNLOAD, outcome)

    reader.follow(0.05)
    newer = publisher.merchant("Served despite the disk")
    deadline = time.monotonic() + 30
    while reader.version != newer and time.monotonic() < deadline:
        time.sleep(0.05)
    assert merchant_answered(reader) == (newer, "Served despite the disk")
    assert len(failures) >= 2  # every refresh tried to prune, and the follower went on
    monkeypatch.undo()  # the disk recovers before the reader closes
