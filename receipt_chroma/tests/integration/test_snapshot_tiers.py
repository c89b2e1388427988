"""Cache tiers and retention of format 2 versions (contract §5.2, §6.2, §6.4, §6.5):
catch-up fetches only the files that differ, EFS versions share unchanged files by hard
links, and retention never deletes an object a retained version names."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from receipt_chroma.compaction import CompactionCycle, CycleResult
from receipt_chroma.snapshots import (
    CacheTier,
    DeleteFence,
    HnswPolicy,
    S3SnapshotStore,
    SnapshotSettings,
    apply_retention,
    new_version_id,
)
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld, read_snapshot
from receipt_dynamo.testing import IMAGE_ID, make_metadata

pytestmark = pytest.mark.integration


def held() -> DeleteFence:
    """The fence of a holder that has just confirmed its lease (minutes to its deadline)."""
    return DeleteFence(datetime.now(UTC) + timedelta(minutes=5))


@pytest.fixture
def world(aws_endpoint: str, tmp_path: Path) -> CompactionWorld:
    return CompactionWorld(tmp_path)


def _container(
    world: CompactionWorld, name: str, *, flush_records: int = 1_000, efs: str | None = None
) -> CompactionCycle:
    """A compactor container with its own work directory and (unless ``efs`` names
    another container's) its own EFS root."""
    config = replace(
        world.config, work_dir=world.root / name, chroma_root=world.root / f"efs-{efs or name}"
    )
    settings = SnapshotSettings(
        dimension=world.dimension,
        lock_duration_seconds=30,
        hnsw=HnswPolicy(flush_records=flush_records),
    )
    return CompactionCycle(
        config,
        "words",
        dynamo=world.dynamo,
        s3_client=boto3.client("s3"),
        snapshot_settings=settings,
    )


def _flush_records(cycle: CompactionCycle, value: int) -> None:
    settings = cycle.snapshots.settings
    cycle.snapshots.settings = replace(settings, hnsw=HnswPolicy(flush_records=value))


def _run(world: CompactionWorld, cycle: CompactionCycle, merchant: str) -> CycleResult:
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name=merchant))
    result = cycle.run(world.pump()["words"])
    assert result.failures == [], result.failures
    return result


def _files(world: CompactionWorld, version: str) -> dict[str, str]:
    key = f"words/snapshot/versions/{version}/manifest.json"
    manifest = json.loads(world.s3.get_object(Bucket=world.bucket, Key=key)["Body"].read())
    return {item["path"]: item["sha256"] for item in manifest["files"]}


def _object_gets(s3: Any) -> list[str]:
    keys: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        if "/snapshot/objects/" in params["Key"]:
            keys.append(params["Key"].rsplit("/", 1)[1].removesuffix(".zst"))

    s3.meta.events.register("before-parameter-build.s3.GetObject", record)
    return keys


def test_catch_up_from_two_versions_behind_fetches_only_the_files_that_differ(
    world: CompactionWorld,
) -> None:
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
    first = _container(world, "a", flush_records=0)  # a fully indexed first version
    v1 = first.run(world.pump()["words"]).published_version
    assert v1 is not None
    other = _container(world, "b")
    _run(world, other, "Two")
    v3 = _run(world, other, "Three").published_version
    assert v3 is not None

    behind = first  # container "a" again: its warm copy holds v1
    _flush_records(behind, 1_000)
    gets = _object_gets(behind.s3_client)
    result = _run(world, behind, "Four")

    assert result.tier is CacheTier.CATCH_UP
    old, new = _files(world, v1), _files(world, v3)
    differing = {sha for sha in new.values() if sha not in set(old.values())}
    assert differing
    assert set(gets) == differing  # only what differs came from S3
    assert any(path.endswith("data_level0.bin") and old[path] == sha for path, sha in new.items())
    assert result.snapshot_bytes_downloaded > 0
    assert read_snapshot(behind.working.path, "words") == world.snapshot_from_s3("words")


def test_efs_versions_hard_link_files_unchanged_since_their_predecessor(
    world: CompactionWorld,
) -> None:
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
    cycle = _container(world, "c", flush_records=0)
    v1 = cycle.run(world.pump()["words"]).published_version
    _flush_records(cycle, 1_000)
    v2 = _run(world, cycle, "Linked").published_version
    assert v1 is not None
    assert v2 is not None
    efs = world.root / "efs-c" / "snapshots" / "words"
    unchanged = [p for p, sha in _files(world, v2).items() if _files(world, v1).get(p) == sha]
    assert unchanged
    for path in unchanged:
        assert (efs / v1 / path).stat().st_ino == (efs / v2 / path).stat().st_ino
    assert (efs / v2 / "manifest.json").read_bytes() == world.s3.get_object(
        Bucket=world.bucket, Key=f"words/snapshot/versions/{v2}/manifest.json"
    )["Body"].read()
    # A new container copies the EFS version (verified file by file), without S3 objects.
    fresh = _container(world, "c-second", efs="c")
    gets = _object_gets(fresh.s3_client)
    assert _run(world, fresh, "From EFS").tier is CacheTier.EFS
    assert gets == []


def test_retention_never_deletes_an_object_a_retained_version_names(
    world: CompactionWorld,
) -> None:
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
    cycle = _container(world, "r", flush_records=0)
    assert cycle.run(world.pump()["words"]).failures == []
    _flush_records(cycle, 1_000)
    for n in range(5):
        _run(world, cycle, f"M{n}")
    pointer = world.dynamo.get_snapshot_pointer("words")
    assert pointer is not None
    store = S3SnapshotStore(world.s3, world.bucket, "words")
    # Much later: every orphan is old enough to go.
    later = datetime.now(UTC) + timedelta(days=1)
    apply_retention(
        store, keep=set(pointer.history), orphan_age=timedelta(seconds=60), fence=held(), now=later
    )

    assert set(store.list_versions()) == set(pointer.history)
    named = {sha for version in pointer.history for sha in _files(world, version).values()}
    assert set(store.list_all().objects) == named
    for version in pointer.history:
        assert world.snapshot_from_s3("words", version)


def _all_keys(world: CompactionWorld) -> set[str]:
    pages = world.s3.get_paginator("list_objects_v2").paginate(
        Bucket=world.bucket, Prefix="words/snapshot/"
    )
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def test_retention_deletes_nothing_while_a_retained_manifest_cannot_be_read(
    world: CompactionWorld,
) -> None:
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
    cycle = _container(world, "r")
    assert cycle.run(world.pump()["words"]).failures == []
    _run(world, cycle, "Second")
    pointer = world.dynamo.get_snapshot_pointer("words")
    assert pointer is not None
    oldest = pointer.history[-1]
    # An old orphan version (a copy of a retained manifest under another id) and an old
    # orphan object: both would go, were every retained manifest readable.
    orphan = new_version_id(datetime.now(UTC) - timedelta(hours=1))
    body = json.loads(
        world.s3.get_object(
            Bucket=world.bucket, Key=f"words/snapshot/versions/{oldest}/manifest.json"
        )["Body"].read()
    )
    data = json.dumps({**body, "version_id": orphan}, indent=1).encode()
    prefix = f"words/snapshot/versions/{orphan}/"
    world.s3.put_object(Bucket=world.bucket, Key=f"{prefix}manifest.json", Body=data)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}".encode()
    world.s3.put_object(Bucket=world.bucket, Key=f"{prefix}.manifest_hash", Body=digest)
    world.s3.put_object(
        Bucket=world.bucket, Key=f"words/snapshot/objects/{'e' * 64}.zst", Body=b"x"
    )
    world.s3.put_object(
        Bucket=world.bucket, Key=f"words/snapshot/versions/{oldest}/manifest.json", Body=b"{"
    )
    store = S3SnapshotStore(world.s3, world.bucket, "words")
    before = _all_keys(world)
    later = datetime.now(UTC) + timedelta(days=1)

    report = apply_retention(
        store, keep=set(pointer.history), orphan_age=timedelta(seconds=60), fence=held(), now=later
    )

    assert _all_keys(world) == before  # no version, no object
    assert report.deleted_versions == []
    assert report.deleted_objects == []
    assert report.objects_kept_because is not None
    assert oldest in report.objects_kept_because
