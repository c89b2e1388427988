"""Cache repair and EFS failures are counted per cycle (``SnapshotStats.cache_repairs`` /
``efs_failures``, the ``SnapshotCacheRepairs`` / ``EfsFailures`` metrics): a warm copy or
an EFS version whose files do not match what was recorded for them is discarded and read
again, and an EFS that cannot be written is a cache miss that fails nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from receipt_chroma.archive import create_tarball
from receipt_chroma.compaction import CompactionCycle, CycleResult, EFSSnapshotManager
from receipt_chroma.snapshots import (
    CacheTier,
    DeleteFence,
    SnapshotSettings,
    SnapshotStats,
    admin,
    new_version_id,
)
from receipt_chroma.snapshots.models import EfsCopy
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo.testing import IMAGE_ID, make_metadata

pytestmark = pytest.mark.integration


def held() -> DeleteFence:
    """The fence of a holder that has just confirmed its lease (minutes to its deadline)."""
    return DeleteFence(datetime.now(UTC) + timedelta(minutes=5))


@pytest.fixture
def world(aws_endpoint: str, tmp_path: Path) -> CompactionWorld:
    world = CompactionWorld(tmp_path)
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
    return world


def _container(world: CompactionWorld, name: str, efs_root: Path) -> CompactionCycle:
    """A compactor container with its own work directory on the EFS root given."""
    config = replace(world.config, work_dir=world.root / name, chroma_root=efs_root)
    return CompactionCycle(
        config,
        "words",
        dynamo=world.dynamo,
        s3_client=boto3.client("s3"),
        snapshot_settings=SnapshotSettings(dimension=world.dimension, lock_duration_seconds=30),
    )


def _run(world: CompactionWorld, cycle: CompactionCycle, merchant: str) -> CycleResult:
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name=merchant))
    result = cycle.run(world.pump()["words"])
    assert result.failures == [], result.failures
    assert result.published_version is not None
    return result


def _merchants(world: CompactionWorld) -> set[str]:
    return {str(meta.get("merchant_name")) for meta, _ in world.snapshot_from_s3("words").values()}


def test_a_warm_copy_with_a_damaged_file_is_discarded_and_read_again(
    world: CompactionWorld,
) -> None:
    efs = world.root / "efs"
    cycle = _container(world, "a", efs)
    first = _run(world, cycle, "First")
    assert (first.snapshot_cache_repairs, first.efs_failures) == (0, 0)
    with (cycle.working.path / "chroma.sqlite3").open("ab") as damaged:
        damaged.write(b"\0" * 4096)  # e.g. a write that landed after the label

    second = _run(world, cycle, "Second")

    assert second.tier is CacheTier.EFS  # not the damaged warm copy
    assert (second.snapshot_cache_repairs, second.efs_failures) == (1, 0)
    assert _merchants(world) == {"Second"}
    third = _run(world, cycle, "Third")
    assert (third.tier, third.snapshot_cache_repairs) == (CacheTier.WARM, 0)


def test_an_efs_version_that_does_not_match_its_manifest_is_replaced_from_s3(
    world: CompactionWorld,
) -> None:
    efs = world.root / "efs"
    version = _run(world, _container(world, "a", efs), "First").published_version
    assert version is not None
    stored = efs / "snapshots" / "words" / version / "chroma.sqlite3"
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    stored.write_bytes(bytes(data))
    manager = EFSSnapshotManager(efs, "words")
    assert manager.copy_version(version, world.root / "probe-before", held()) is EfsCopy.CORRUPT

    cold = _run(world, _container(world, "b", efs), "Second")

    assert cold.tier is CacheTier.S3
    assert (cold.snapshot_cache_repairs, cold.efs_failures) == (1, 0)
    assert _merchants(world) == {"Second"}
    # The version was written to EFS again from S3: it copies cleanly now.
    assert manager.copy_version(version, world.root / "probe-after", held()) is EfsCopy.COPIED


def test_an_efs_that_cannot_be_written_counts_each_failed_write_and_fails_nothing(
    world: CompactionWorld,
) -> None:
    blocked = world.root / "not-a-directory"
    blocked.write_text("EFS writes under a file fail")
    efs = blocked / "efs"

    bootstrap = _run(world, _container(world, "a", efs), "First")
    assert bootstrap.tier is CacheTier.BOOTSTRAP
    assert (bootstrap.efs_failures, bootstrap.snapshot_cache_repairs) == (1, 0)  # publish

    cold = _run(world, _container(world, "b", efs), "Second")

    assert cold.tier is CacheTier.S3
    # The write after the S3 read and the write after the publish.
    assert (cold.efs_failures, cold.snapshot_cache_repairs) == (2, 0)
    assert _merchants(world) == {"Second"}


def _manifest_files(world: CompactionWorld, version: str) -> dict[str, str]:
    """path → sha256 of a version's files, read from the contract's S3 layout (§6)."""
    key = f"words/snapshot/versions/{version}/manifest.json"
    manifest = json.loads(world.s3.get_object(Bucket=world.bucket, Key=key)["Body"].read())
    return {item["path"]: item["sha256"] for item in manifest["files"]}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_catch_up_fetches_a_local_file_whose_sha256_changed_since_its_label(
    world: CompactionWorld,
) -> None:
    efs = world.root / "efs"
    behind = _container(world, "a", efs)
    first = _run(world, behind, "First").published_version
    second = _run(world, _container(world, "b", efs), "Second").published_version
    assert first is not None
    assert second is not None
    old, new = _manifest_files(world, first), _manifest_files(world, second)
    name, sha = sorted(old.items() & new.items())[0]
    local = behind.working.path / name
    data = bytearray(local.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: the label's size check cannot see it
    local.write_bytes(bytes(data))
    stats = SnapshotStats()

    tier = behind.working.prepare(second, behind.store, behind.efs, stats, fence=held())

    assert tier is CacheTier.CATCH_UP
    assert _sha256(behind.working.path / name) == sha
    assert all(_sha256(behind.working.path / path) == digest for path, digest in new.items())
    assert stats.cache_repairs == 1


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.unlink()  # a new file under the same name, same size
    path.write_bytes(bytes(data))


def test_an_efs_version_linked_from_a_damaged_predecessor_is_rejected_when_read(
    world: CompactionWorld,
) -> None:
    """Publishing links unchanged files from the previous EFS version after a size check
    only (hashing them would read the index over NFS every publish); the read from EFS
    verifies every file, so the damage is found there and repaired from S3."""
    efs = world.root / "efs"
    warm = _container(world, "a", efs)
    first = _run(world, warm, "First").published_version
    assert first is not None
    for stored in (efs / "snapshots" / "words" / first).rglob("*"):
        if stored.is_file() and stored.name != "manifest.json" and stored.stat().st_size:
            _flip_last_byte(stored)

    second = _run(world, warm, "Second")  # warm: it never reads EFS, publishes to it

    assert second.tier is CacheTier.WARM
    version = second.published_version
    assert version is not None
    linked = efs / "snapshots" / "words" / version
    files = _manifest_files(world, version)
    assert any(_sha256(linked / path) != digest for path, digest in files.items())
    manager = EFSSnapshotManager(efs, "words")
    assert manager.copy_version(version, world.root / "probe-before", held()) is EfsCopy.CORRUPT

    cold = _run(world, _container(world, "b", efs), "Third")

    assert cold.tier is CacheTier.S3
    assert cold.snapshot_cache_repairs == 1
    assert _merchants(world) == {"Third"}
    assert manager.copy_version(version, world.root / "probe-after", held()) is EfsCopy.COPIED


def test_a_format1_version_on_efs_is_a_cache_miss(world: CompactionWorld) -> None:
    """A format 1 directory on EFS has no per-file hashes: it is never copied from EFS (the
    verified tarball is read from S3), and a format 1 read from S3 is not written to EFS."""
    efs = world.root / "efs"
    first = _run(world, _container(world, "a", efs), "First").published_version
    assert first is not None
    legacy = new_version_id()
    directory = world.root / "f1"
    admin.download(world.bucket, "words", first, directory, s3_client=world.s3)
    tarball = create_tarball(directory, world.root / "f1.tar.gz")
    prefix = f"words/snapshot/timestamped/{legacy}/"
    world.s3.upload_file(str(tarball), world.bucket, f"{prefix}snapshot.tar.gz")
    digest = f"sha256:{hashlib.sha256(tarball.read_bytes()).hexdigest()}"
    world.s3.put_object(Bucket=world.bucket, Key=f"{prefix}.snapshot_hash", Body=digest.encode())
    pointer = world.dynamo.get_snapshot_pointer("words")
    assert pointer is not None
    at_legacy = replace(
        pointer,
        version=legacy,
        previous_version=pointer.version,
        history=(legacy, *pointer.history),
    )
    # A format 1 directory on EFS (as an earlier release wrote them), damaged in place.
    manager = EFSSnapshotManager(efs, "words")
    stored = manager.version_path(legacy)
    shutil.copytree(directory, stored)
    for path in stored.rglob("*.bin"):
        if path.stat().st_size:
            _flip_last_byte(path)
    manager.set_current_version(legacy)
    assert manager.copy_version(legacy, world.root / "probe", held()) is EfsCopy.ABSENT
    world.dynamo.client.put_item(TableName=world.table, Item=at_legacy.to_item())

    cold = _run(world, _container(world, "b", efs), "Second")

    assert cold.tier is CacheTier.S3
    assert _merchants(world) == {"Second"}
    manager.delete_version(legacy)
    world.dynamo.client.put_item(TableName=world.table, Item=at_legacy.to_item())
    again = _run(world, _container(world, "c", efs), "Third")
    assert again.tier is CacheTier.S3
    assert not manager.has_version(legacy)  # a format 1 read is not cached on EFS
