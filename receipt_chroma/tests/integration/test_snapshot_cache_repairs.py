"""Cache repair and EFS failures are counted per cycle (``SnapshotStats.cache_repairs`` /
``efs_failures``, the ``SnapshotCacheRepairs`` / ``EfsFailures`` metrics): a warm copy or
an EFS version whose files do not match what was recorded for them is discarded and read
again, and an EFS that cannot be written is a cache miss that fails nothing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import boto3
import pytest

from receipt_chroma.compaction import CompactionCycle
from receipt_chroma.compaction.cycle import CycleResult
from receipt_chroma.compaction.efs_snapshot_manager import EFSSnapshotManager
from receipt_chroma.snapshots.efs_tier import EfsCopy
from receipt_chroma.snapshots.service import SnapshotSettings
from receipt_chroma.snapshots.working_copy import CacheTier
from receipt_compaction_tools.testing.factories import IMAGE_ID, make_metadata
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld

pytestmark = pytest.mark.integration


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
    assert manager.copy_version(version, world.root / "probe-before") is EfsCopy.CORRUPT

    cold = _run(world, _container(world, "b", efs), "Second")

    assert cold.tier is CacheTier.S3
    assert (cold.snapshot_cache_repairs, cold.efs_failures) == (1, 0)
    assert _merchants(world) == {"Second"}
    # The version was written to EFS again from S3: it copies cleanly now.
    assert manager.copy_version(version, world.root / "probe-after") is EfsCopy.COPIED


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
