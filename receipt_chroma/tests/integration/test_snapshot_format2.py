"""Format 2 snapshot versions end to end (contract §6): damaged objects, racing publishers,
crashes between the steps of a publish, format 1 adoption and rollback, and a reader that
knows nothing but the contract's layout."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import chromadb
import pytest
import zstandard
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings

from receipt_chroma import ChromaClient
from receipt_chroma.archive import create_tarball
from receipt_chroma.compaction import CycleResult, FailureCause, LockManager
from receipt_chroma.exceptions import SnapshotUnavailableError
from receipt_chroma.ids import word_vector_id
from receipt_chroma.snapshots import (
    CollectionSnapshots,
    DeleteFence,
    S3SnapshotStore,
    SnapshotSettings,
    SnapshotStats,
    admin,
    apply_retention,
    new_version_id,
    open_base,
    prepare_directory,
    swap_pointer,
    write_version,
)
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo.exceptions import LeaseLostError, PointerMovedError
from receipt_dynamo.testing import IMAGE_ID, OTHER_IMAGE_ID, make_metadata

pytestmark = pytest.mark.integration
WORKER = Path(__file__).with_name("crash_worker.py")


# --- a reader that knows only the contract's layout (no product code) --------------------


def spec_read(s3: Any, bucket: str, collection: str, version: str, target: Path) -> int:
    """latest-pointer.txt/version → manifest (hash checked) → objects (hashes checked);
    then open the directory with plain chromadb and return the record count."""
    prefix = f"{collection}/snapshot/"
    data = s3.get_object(Bucket=bucket, Key=f"{prefix}versions/{version}/manifest.json")
    data = data["Body"].read()
    recorded = s3.get_object(Bucket=bucket, Key=f"{prefix}versions/{version}/.manifest_hash")
    assert recorded["Body"].read().decode() == f"sha256:{hashlib.sha256(data).hexdigest()}"
    manifest = json.loads(data.decode("utf-8"))
    assert (manifest["format"], manifest["collection"], manifest["version_id"]) == (
        2,
        collection,
        version,
    )
    paths = [f["path"] for f in manifest["files"]]
    assert paths == sorted(paths)
    for item in manifest["files"]:
        assert not item["path"].startswith("/")
        assert ".." not in item["path"].split("/")
        body = s3.get_object(Bucket=bucket, Key=f"{prefix}objects/{item['sha256']}.zst")
        raw = zstandard.ZstdDecompressor().decompress(body["Body"].read())
        assert (len(raw), hashlib.sha256(raw).hexdigest()) == (item["size"], item["sha256"])
        (target / item["path"]).parent.mkdir(parents=True, exist_ok=True)
        (target / item["path"]).write_bytes(raw)
    client = chromadb.PersistentClient(
        path=str(target), settings=Settings(anonymized_telemetry=False)
    )
    try:
        count = client.get_collection(collection, embedding_function=None).count()
        assert count == manifest["record_count"]
    finally:
        client.close()  # type: ignore[attr-defined]
        SharedSystemClient.clear_system_cache()
    return int(count)


def spec_read_latest(s3: Any, bucket: str, collection: str, target: Path) -> int:
    pointer = s3.get_object(Bucket=bucket, Key=f"{collection}/snapshot/latest-pointer.txt")
    return spec_read(s3, bucket, collection, pointer["Body"].read().decode("ascii"), target)


# --- helpers -------------------------------------------------------------------------------


@pytest.fixture
def world(aws_endpoint: str, tmp_path: Path) -> CompactionWorld:
    return CompactionWorld(tmp_path)


def _settings(world: CompactionWorld, flush_records: int = 1_000) -> SnapshotSettings:
    policy = replace(SnapshotSettings(dimension=world.dimension).hnsw, flush_records=flush_records)
    return SnapshotSettings(
        dimension=world.dimension, lock_duration_seconds=30, hnsw=policy, workers=2
    )


def _cycle(
    world: CompactionWorld, merchant: str, *, work: str = "work", **kwargs: Any
) -> CycleResult:
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name=merchant))
    kwargs.setdefault("snapshot_settings", _settings(world))
    return world.cycle("words", work=work, **kwargs).run(world.pump()["words"])


def _seed(world: CompactionWorld) -> str:
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
    world.add_receipt(SyntheticReceipt(OTHER_IMAGE_ID, 2, dimension=world.dimension))
    messages = world.pump()["words"]
    result = world.cycle("words", snapshot_settings=_settings(world, 0)).run(messages)
    assert result.failures == [], result.failures
    assert result.published_version is not None
    return result.published_version


def _manifest(world: CompactionWorld, version: str) -> dict[str, Any]:
    key = f"words/snapshot/versions/{version}/manifest.json"
    body: dict[str, Any] = json.loads(
        world.s3.get_object(Bucket=world.bucket, Key=key)["Body"].read()
    )
    return body


def _object_keys(world: CompactionWorld) -> set[str]:
    pages = world.s3.get_paginator("list_objects_v2").paginate(
        Bucket=world.bucket, Prefix="words/snapshot/objects/"
    )
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


# --- damaged versions ------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_damaged_object_refuses_that_version_and_the_previous_one_still_opens(
    world: CompactionWorld, damage: str
) -> None:
    first = _seed(world)
    second = _cycle(world, "Second").published_version
    assert second is not None
    old = {f["sha256"] for f in _manifest(world, first)["files"]}
    changed = next(f for f in _manifest(world, second)["files"] if f["sha256"] not in old)
    key = f"words/snapshot/objects/{changed['sha256']}.zst"
    if damage == "corrupt":
        world.s3.put_object(Bucket=world.bucket, Key=key, Body=zstandard.compress(b"tampered"))
    else:
        world.s3.delete_object(Bucket=world.bucket, Key=key)
    shutil.rmtree(world.config.chroma_root)  # no EFS copy to fall back on

    result = _cycle(world, "Never", work="cold")

    assert result.cause is FailureCause.SNAPSHOT_UNAVAILABLE
    assert second in result.failures[0].reason
    assert ("does not match" if damage == "corrupt" else "is missing") in result.failures[0].reason
    assert world.published_version("words") == second
    assert not (world.root / "cold" / "words" / "snapshot").exists()  # never opened
    with pytest.raises(SnapshotUnavailableError):
        admin.verify(world.bucket, "words", second, world.dimension, s3_client=world.s3)
    assert spec_read(world.s3, world.bucket, "words", first, world.root / "first") == 12
    assert admin.verify(world.bucket, "words", first, world.dimension)["ok"]


def _point_at_crafted_version(world: CompactionWorld, body: dict[str, Any]) -> str:
    """Write ``body`` as a new hash-valid version and move the pointer item to it."""
    version = new_version_id()
    body = {**body, "version_id": version}
    body["files"] = sorted(body["files"], key=lambda e: e["path"])
    data = json.dumps(body, indent=1).encode()
    prefix = f"words/snapshot/versions/{version}/"
    world.s3.put_object(Bucket=world.bucket, Key=f"{prefix}manifest.json", Body=data)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}".encode()
    world.s3.put_object(Bucket=world.bucket, Key=f"{prefix}.manifest_hash", Body=digest)
    pointer = world.dynamo.get_snapshot_pointer("words")
    assert pointer is not None
    moved = replace(
        pointer,
        version=version,
        previous_version=pointer.version,
        history=(version, *pointer.history),
    )
    world.dynamo.client.put_item(TableName=world.table, Item=moved.to_item())
    return version


BOMB_BYTES = 32 << 20


@pytest.mark.parametrize(
    ("attack", "problem"),
    [
        ("nul_path", "safe relative path"),
        ("control_path", "safe relative path"),
        ("file_and_directory", "is both a file and a directory"),
        ("zstd_bomb", "decompresses to more than the 2 bytes"),
    ],
)
def test_a_hash_valid_hostile_manifest_is_an_unavailable_snapshot(
    world: CompactionWorld, attack: str, problem: str
) -> None:
    """Manifest validation and the object reader reject what the file system or the disk
    would otherwise fail on: the cycle reports snapshot_unavailable, never publish_failed;
    a zstd bomb is stopped one byte past the entry's size (not decompressed in full)."""
    first = _seed(world)
    body = _manifest(world, first)
    files = body["files"]
    if attack == "nul_path":
        files[0]["path"] = "a\x00b"
    elif attack == "control_path":
        files[0]["path"] = "a\x1bb"
    elif attack == "file_and_directory":
        files += [dict(files[0], path="zz"), dict(files[0], path="zz/b")]
    else:
        sha = hashlib.sha256(b"xy").hexdigest()
        bomb = zstandard.ZstdCompressor(level=3).compress(b"\0" * BOMB_BYTES)
        key = f"words/snapshot/objects/{sha}.zst"
        world.s3.put_object(Bucket=world.bucket, Key=key, Body=bomb)
        files[0].update(sha256=sha, size=2)
    crafted = _point_at_crafted_version(world, body)
    shutil.rmtree(world.config.chroma_root)  # no EFS copy to fall back on

    result = _cycle(world, "Never", work="cold")

    assert result.cause is FailureCause.SNAPSHOT_UNAVAILABLE, result.failures
    assert crafted in result.failures[0].reason
    assert problem in result.failures[0].reason
    assert world.published_version("words") == crafted  # nothing published over it
    assert not (world.root / "cold" / "words" / "snapshot").exists()


# --- racing publishers -------------------------------------------------------------------------


def _prepared(world: CompactionWorld, work: str) -> CollectionSnapshots:
    snapshots = CollectionSnapshots.create(
        collection="words",
        dynamo=world.dynamo,
        s3_client=boto3.client("s3"),
        bucket=world.bucket,
        work_dir=world.root / work,
        efs=None,
        settings=_settings(world),
    )
    with LockManager(world.dynamo, "words", duration_seconds=30) as lease:
        open_base(snapshots, SnapshotStats(), lease)
    snapshots.working.mark_dirty()
    return snapshots


def test_two_publishers_race_on_the_same_objects_and_exactly_one_swap_wins(
    world: CompactionWorld,
) -> None:
    base_version = _seed(world)
    a, b = _prepared(world, "a"), _prepared(world, "b")
    with ChromaClient(a.working.path, mode="write") as client:
        words = client.get_collection("words")
        words.update(ids=words.peek(1)["ids"][:1], metadatas=[{"merchant_name": "Raced"}])
    check = prepare_directory(a, SnapshotStats())
    shutil.rmtree(b.working.path)
    shutil.copytree(a.working.path, b.working.path)  # byte-identical: the same objects
    base = world.dynamo.get_snapshot_pointer("words")
    lease_a = LockManager(world.dynamo, "words", duration_seconds=30)
    lease_a.acquire()
    boto3.client("dynamodb").update_item(  # A stalls past its lease; B takes it over
        TableName=world.table,
        Key={"PK": {"S": "LOCK#words#chroma-words-compaction"}, "SK": {"S": "LOCK"}},
        UpdateExpression="SET expires = :past",
        ExpressionAttributeValues={":past": {"S": "2000-01-01T00:00:00.000000+00:00"}},
    )
    lease_b = LockManager(world.dynamo, "words", duration_seconds=30)
    lease_b.acquire()
    barrier = threading.Barrier(2, timeout=20)
    puts: dict[str, list[str]] = {"a": [], "b": []}

    def hold_first_object_put(name: str) -> Any:
        def hook(params: dict[str, Any], **_: Any) -> None:
            if "/objects/" in params["Key"]:
                puts[name].append(params["Key"])
                if len(puts[name]) == 1:
                    barrier.wait()  # both have seen the object missing; both now PUT it

        return hook

    outcome: dict[str, Any] = {}
    swaps = threading.Lock()

    def run(name: str, snapshots: CollectionSnapshots, lease: LockManager) -> None:
        snapshots.store.s3.meta.events.register(
            "before-parameter-build.s3.PutObject", hold_first_object_put(name)
        )
        stats = SnapshotStats()
        manifest, _, _ = write_version(
            snapshots, snapshots.working.path, check, base_version=base_version, stats=stats
        )
        outcome[f"{name}_stats"] = stats
        # The uploads race; the swaps are serialised because moto's TransactWriteItems is
        # not isolated from a concurrent one (a cancelled transaction restores the table
        # as it found it, undoing the other). DynamoDB itself serialises them.
        with swaps:
            try:
                outcome[name] = swap_pointer(
                    world.dynamo, "words", manifest.version_id, base=base, lease=lease
                )
            except (LeaseLostError, PointerMovedError) as error:
                outcome[name] = error

    threads = [
        threading.Thread(target=run, args=("a", a, lease_a), name="a"),
        threading.Thread(target=run, args=("b", b, lease_b), name="b"),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    lease_b.release()
    lease_a.release()

    assert isinstance(outcome["a"], LeaseLostError)
    pointer = world.dynamo.get_snapshot_pointer("words")
    assert pointer is not None
    assert pointer.version == outcome["b"].version
    assert pointer.previous_version == base_version
    raced = set(puts["a"]) & set(puts["b"])
    assert raced  # both really tried to write the same objects
    written = outcome["a_stats"].objects_uploaded + outcome["b_stats"].objects_uploaded
    assert written == len(raced)  # … and each was written exactly once
    assert spec_read(world.s3, world.bucket, "words", pointer.version, world.root / "won") == 12


# --- crashes between the steps of a publish ----------------------------------------------------


@pytest.mark.parametrize("kill_at", ["objects_uploaded", "manifest_written"])
def test_a_crash_mid_publish_leaves_orphans_that_retention_removes_later(
    world: CompactionWorld, kill_at: str
) -> None:
    base = _seed(world)
    objects_before = _object_keys(world)
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Crashed"))
    batch = [(mid, m.to_json()) for mid, m in world.pump()["words"]]
    args = {
        "table": world.table,
        "bucket": world.bucket,
        "chroma_root": str(world.config.chroma_root),
        "work_dir": str(world.root / "crashing"),
        "dimension": world.dimension,
        "lock_duration": 3,
        "collection": "words",
        "kill_at": kill_at,
        "messages": batch,
    }
    (world.root / "args.json").write_text(json.dumps(args))
    completed = subprocess.run(
        [sys.executable, str(WORKER), str(world.root / "args.json")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == -9, completed.stderr[-2000:]

    assert world.published_version("words") == base  # never a broken pointer
    assert spec_read_latest(world.s3, world.bucket, "words", world.root / "latest") == 12
    orphans = _object_keys(world) - objects_before
    assert orphans  # the crashed publish had uploaded its new objects
    store = S3SnapshotStore(world.s3, world.bucket, "words")
    orphan_versions = set(store.list_versions()) - {base}
    assert len(orphan_versions) == (1 if kill_at == "manifest_written" else 0)  # the manifest

    # Young orphans survive (a concurrent publisher's uploads look exactly like them) …
    fence = DeleteFence(datetime.now(UTC) + timedelta(minutes=5))  # a confirmed holder's
    report = apply_retention(store, keep={base}, orphan_age=timedelta(seconds=60), fence=fence)
    assert (report.deleted_versions, report.deleted_objects) == ([], [])
    # … and are removed once older than twice the lease.
    later = datetime.now(UTC) + timedelta(seconds=61)
    report = apply_retention(
        store, keep={base}, orphan_age=timedelta(seconds=60), fence=fence, now=later
    )
    assert set(store.list_versions()) == {base}
    assert _object_keys(world) == objects_before
    assert spec_read(world.s3, world.bucket, "words", base, world.root / "base") == 12


# --- format 1 --------------------------------------------------------------------------------


def _write_format1(world: CompactionWorld, source_version: str) -> str:
    """A format 1 version (revision 1 layout) holding the same data as ``source_version``."""
    version = new_version_id()
    directory = world.root / "f1"
    admin.download(world.bucket, "words", source_version, directory, s3_client=world.s3)
    tarball = create_tarball(directory, world.root / "f1.tar.gz")
    prefix = f"words/snapshot/timestamped/{version}/"
    world.s3.upload_file(str(tarball), world.bucket, f"{prefix}snapshot.tar.gz")
    digest = f"sha256:{hashlib.sha256(tarball.read_bytes()).hexdigest()}"
    world.s3.put_object(Bucket=world.bucket, Key=f"{prefix}.snapshot_hash", Body=digest.encode())
    return version


def test_a_format1_version_is_adopted_published_over_in_format2_and_rolled_back_to(
    world: CompactionWorld,
) -> None:
    seeded = _seed(world)
    legacy = _write_format1(world, seeded)
    # The deployment before this change: only the format 1 version and its pointer file.
    world.s3.put_object(
        Bucket=world.bucket, Key="words/snapshot/latest-pointer.txt", Body=legacy.encode()
    )
    boto3.client("dynamodb").delete_item(
        TableName=world.table, Key={"PK": {"S": "SNAPSHOT#words"}, "SK": {"S": "POINTER"}}
    )
    shutil.rmtree(world.config.chroma_root)

    adopted = _cycle(world, "After upgrade", work="upgraded")

    assert adopted.failures == []
    pointer = world.dynamo.get_snapshot_pointer("words")
    assert pointer is not None
    assert (pointer.previous_version, pointer.version) == (legacy, adopted.published_version)
    assert _manifest(world, pointer.version)["base_version"] == legacy  # format 2 on top
    listing = {
        v["version"]: v["format"]
        for v in admin.list_versions(world.dynamo, world.bucket, "words")["versions"]
    }
    assert listing[legacy] == 1
    assert listing[pointer.version] == 2

    rolled = admin.rollback(
        world.dynamo,
        world.bucket,
        "words",
        legacy,
        lease=lambda: LockManager(world.dynamo, "words"),
    )
    assert (rolled["version"], rolled["format"], rolled["pointer_file"]) == (legacy, 1, legacy)
    assert admin.verify(world.bucket, "words", legacy, world.dimension)["format"] == 1
    # A container whose warm copy is the format 2 version reads the format 1 one back.
    again = _cycle(world, "After rollback", work="upgraded")
    assert again.failures == []
    assert _manifest(world, again.published_version or "")["base_version"] == legacy
    words = world.snapshot_from_s3("words")
    assert words[word_vector_id(IMAGE_ID, 1, 1, 1)][0]["merchant_name"] == "After rollback"


def test_the_contract_reader_opens_every_published_version(world: CompactionWorld) -> None:
    _seed(world)
    for n in range(3):
        assert _cycle(world, f"M{n}").failures == []
    flushed = _cycle(world, "Flushed", snapshot_settings=_settings(world, 0))
    assert flushed.unindexed_records == 0
    pointer = world.dynamo.get_snapshot_pointer("words")
    assert pointer is not None
    assert len(pointer.history) == 4
    for version in pointer.history:
        assert spec_read(world.s3, world.bucket, "words", version, world.root / version) == 12
    assert spec_read_latest(world.s3, world.bucket, "words", world.root / "latest") == 12
