"""``latest-pointer.txt`` (contract §6.1): it holds exactly the pointer item's version id
(ASCII, no newline), never goes backwards, and any other content is repaired."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from receipt_chroma.compaction import CompactionCycle
from receipt_chroma.snapshots import DeleteFence, SnapshotSettings, SnapshotStats
from receipt_chroma.snapshots.derived_caches import (
    holder_fence,
    refresh_pointer_file,
    repair_derived_caches,
)
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo import ChromaDBCollection, DynamoClient
from receipt_dynamo.entities import SnapshotPointer
from receipt_dynamo.testing import IMAGE_ID, make_metadata

pytestmark = pytest.mark.integration
POINTER_KEY = "words/snapshot/latest-pointer.txt"


@pytest.fixture
def world(aws_endpoint: str, tmp_path: Path) -> CompactionWorld:
    world = CompactionWorld(tmp_path)
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
    return world


def _container(world: CompactionWorld, name: str) -> CompactionCycle:
    config = replace(world.config, work_dir=world.root / name, chroma_root=world.root / "efs")
    return CompactionCycle(
        config,
        "words",
        dynamo=world.dynamo,
        s3_client=boto3.client("s3"),
        snapshot_settings=SnapshotSettings(dimension=world.dimension, lock_duration_seconds=30),
    )


def _publish(world: CompactionWorld, cycle: CompactionCycle, merchant: str) -> str:
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name=merchant))
    result = cycle.run(world.pump()["words"])
    assert result.failures == [], result.failures
    assert result.published_version is not None
    return result.published_version


def _pointer_file(world: CompactionWorld) -> bytes:
    return world.s3.get_object(Bucket=world.bucket, Key=POINTER_KEY)["Body"].read()


def _holding() -> DeleteFence:
    """A holder's fence a minute before its deadline."""
    return holder_fence(datetime.now(UTC) + timedelta(minutes=1))


def _item(world: CompactionWorld) -> SnapshotPointer:
    pointer = world.dynamo.get_snapshot_pointer("words")
    assert pointer is not None
    return pointer


class PublishAfterItemRead(DynamoClient):
    """Another container publishes right after the first pointer read returns."""

    def __init__(self, table_name: str, publish_meanwhile: Callable[[], object]) -> None:
        super().__init__(table_name)
        self.publish_meanwhile = publish_meanwhile
        self.fired = False

    def get_snapshot_pointer(self, collection: ChromaDBCollection | str) -> SnapshotPointer | None:
        pointer = super().get_snapshot_pointer(collection)
        if not self.fired:
            self.fired = True
            self.publish_meanwhile()
        return pointer


def test_a_publish_between_the_reads_never_puts_the_file_back(world: CompactionWorld) -> None:
    a, b = _container(world, "a"), _container(world, "b")
    older = _publish(world, a, "First")
    published: list[str] = []
    slow = PublishAfterItemRead(world.table, lambda: published.append(_publish(world, b, "Newer")))

    refresh_pointer_file(slow, a.snapshots.store, "words")

    assert published
    assert published[0] != older
    assert _item(world).version == published[0]
    assert _pointer_file(world) == published[0].encode("ascii")


@pytest.mark.parametrize(
    "content", [b"\n", b"\xff\xfe garbage", b""], ids=["newline", "undecodable", "empty"]
)
def test_a_pointer_file_that_is_not_exactly_the_version_is_repaired(
    world: CompactionWorld, content: bytes
) -> None:
    version = _publish(world, _container(world, "a"), "First")
    body = version.encode("ascii") + content if content == b"\n" else content
    world.s3.put_object(Bucket=world.bucket, Key=POINTER_KEY, Body=body)

    stats = SnapshotStats()
    repair_derived_caches(_container(world, "a").snapshots, _item(world), stats, _holding())

    assert _pointer_file(world) == version.encode("ascii")
    assert stats.cache_repair_failures == 0


def test_a_pointer_file_that_cannot_be_written_is_counted_and_repaired_next_time(
    world: CompactionWorld,
) -> None:
    version = _publish(world, _container(world, "a"), "First")
    world.s3.put_object(Bucket=world.bucket, Key=POINTER_KEY, Body=b"stale")
    snapshots = _container(world, "a").snapshots

    def refuse(**_: object) -> None:
        raise OSError("S3 refused the write")

    snapshots.store.s3.meta.events.register("before-call.s3.PutObject", refuse)
    stats = SnapshotStats()
    repair_derived_caches(snapshots, _item(world), stats, _holding())
    assert (stats.cache_repair_failures, _pointer_file(world)) == (1, b"stale")

    snapshots.store.s3.meta.events.unregister("before-call.s3.PutObject", refuse)
    again = SnapshotStats()
    repair_derived_caches(snapshots, _item(world), again, _holding())
    assert (again.cache_repair_failures, _pointer_file(world)) == (0, version.encode("ascii"))
