"""``snapshot rollback`` and ``latest-pointer.txt`` (contract §6): after moving the pointer the
rollback refreshes the file from the pointer item's *current* value, so a cycle that
publishes between the move and the refresh is never overwritten by the older version."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from receipt_chroma.compaction import LockManager
from receipt_chroma.snapshots import S3SnapshotStore
from receipt_chroma.snapshots.admin import rollback
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo import ChromaDBCollection, DynamoClient
from receipt_dynamo.entities import SnapshotPointer
from receipt_dynamo.testing import IMAGE_ID, make_metadata

pytestmark = pytest.mark.integration


class PublishAfterMove(DynamoClient):
    """A DynamoClient that runs ``concurrent`` once, right after the rollback's pointer
    move: at the first lease release or pointer read that follows it, whichever the
    rollback does first — i.e. before it refreshes the pointer file."""

    def __init__(self, table_name: str, concurrent: Callable[[], None]) -> None:
        super().__init__(table_name)
        self.concurrent = concurrent
        self.moved_to: str | None = None
        self.fired = False

    def _after_move(self) -> None:
        if self.moved_to is not None and not self.fired:
            self.fired = True
            self.concurrent()

    def swap_snapshot_pointer(
        self,
        collection: ChromaDBCollection | str,
        version: str,
        *,
        base: SnapshotPointer | None,
        owner: str,
        fencing_token: int,
    ) -> SnapshotPointer:
        moved = super().swap_snapshot_pointer(
            collection, version, base=base, owner=owner, fencing_token=fencing_token
        )
        self.moved_to = moved.version
        return moved

    def release_lease(
        self, collection: ChromaDBCollection | str, *, owner: str, now: datetime | None = None
    ) -> None:
        super().release_lease(collection, owner=owner, now=now)
        self._after_move()

    def get_snapshot_pointer(self, collection: ChromaDBCollection | str) -> SnapshotPointer | None:
        self._after_move()
        return super().get_snapshot_pointer(collection)


@pytest.fixture
def world(aws_endpoint: str, tmp_path: Path) -> CompactionWorld:
    return CompactionWorld(tmp_path)


def _publish_two_versions(world: CompactionWorld) -> tuple[str, str]:
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
    assert all(not r.failures for r in world.compact(world.pump()))
    first = world.published_version("words")
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Second"))
    assert all(not r.failures for r in world.compact(world.pump()))
    second = world.published_version("words")
    assert first is not None
    assert second is not None
    assert first != second
    return first, second


def _pointer_file(world: CompactionWorld) -> str | None:
    found = S3SnapshotStore(world.s3, world.bucket, "words").read_pointer_file()
    return None if found is None else found.version


def test_rollback_moves_the_pointer_and_the_pointer_file(world: CompactionWorld) -> None:
    first, second = _publish_two_versions(world)

    result = rollback(
        world.dynamo, world.bucket, "words", first, lease=lambda: LockManager(world.dynamo, "words")
    )

    assert (result["version"], result["previous_version"]) == (first, second)
    assert world.published_version("words") == first
    assert _pointer_file(world) == first
    assert result["pointer_file"] == first


def test_rollback_refreshes_pointer_file_from_current_item(world: CompactionWorld) -> None:
    first, _ = _publish_two_versions(world)
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Concurrent"))
    pending = world.pump()["words"]
    assert pending
    concurrent: dict[str, Any] = {}

    def publish_concurrently() -> None:
        # A whole cycle on another working copy: lease, publish from the rolled-back
        # version, and its own refresh of latest-pointer.txt.
        result = world.cycle("words", work="concurrent").run(pending)
        assert not result.failures, result.failures
        concurrent["version"] = result.published_version
        assert _pointer_file(world) == result.published_version

    dynamo = PublishAfterMove(world.table, publish_concurrently)
    result = rollback(
        dynamo, world.bucket, "words", first, lease=lambda: LockManager(dynamo, "words")
    )

    assert dynamo.fired, "the concurrent publish did not run between move and refresh"
    assert result["version"] == first  # what the rollback moved the pointer to
    current = world.published_version("words")
    assert current == concurrent["version"]
    assert current != first
    assert _pointer_file(world) == current
    assert result["pointer_file"] == current


class PublishDuringRefreshRead(DynamoClient):
    """Runs ``concurrent`` once, inside the refresh's first read of the pointer item (after
    the rollback released its lease): the read returns the value from *before* the
    concurrent publish, as a read that lost the race would."""

    def __init__(self, table_name: str, concurrent: Callable[[], None]) -> None:
        super().__init__(table_name)
        self.concurrent = concurrent
        self.released = False
        self.fired = False

    def release_lease(
        self, collection: ChromaDBCollection | str, *, owner: str, now: datetime | None = None
    ) -> None:
        super().release_lease(collection, owner=owner, now=now)
        self.released = True

    def get_snapshot_pointer(self, collection: ChromaDBCollection | str) -> SnapshotPointer | None:
        pointer = super().get_snapshot_pointer(collection)
        if self.released and not self.fired:
            self.fired = True
            self.concurrent()
        return pointer


def test_a_publish_during_the_refresh_item_read_is_not_overwritten(
    world: CompactionWorld,
) -> None:
    first, _ = _publish_two_versions(world)
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Concurrent"))
    pending = world.pump()["words"]
    concurrent: dict[str, Any] = {}

    def publish_concurrently() -> None:
        result = world.cycle("words", work="concurrent").run(pending)
        assert not result.failures, result.failures
        concurrent["version"] = result.published_version

    dynamo = PublishDuringRefreshRead(world.table, publish_concurrently)
    result = rollback(
        dynamo, world.bucket, "words", first, lease=lambda: LockManager(dynamo, "words")
    )

    assert dynamo.fired
    current = world.published_version("words")
    assert current == concurrent["version"] != first
    assert _pointer_file(world) == current  # the file follows the item: never backwards
    assert result["pointer_file"] == current
