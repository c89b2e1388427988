"""The operator operations behind ``snapshot list / inspect / verify / download / flush``
(``receipt_chroma.snapshots.admin``); rollback is covered with format 1 in
test_snapshot_format2.py and with a concurrent publish in
test_snapshot_rollback_pointer_file.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from receipt_chroma.compaction import LockManager
from receipt_chroma.exceptions import SnapshotDestinationError, SnapshotVersionMissingError
from receipt_chroma.snapshots import HnswPolicy, SnapshotSettings, admin, index_state
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo.testing import IMAGE_ID, OTHER_IMAGE_ID

pytestmark = pytest.mark.integration


@pytest.fixture
def world(aws_endpoint: str, tmp_path: Path) -> CompactionWorld:
    return CompactionWorld(tmp_path)


def _settings(world: CompactionWorld) -> SnapshotSettings:
    return SnapshotSettings(dimension=world.dimension, lock_duration_seconds=30)


def _published(world: CompactionWorld) -> str:
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
    result = world.cycle("words", snapshot_settings=_settings(world)).run(world.pump()["words"])
    assert result.failures == []
    assert result.published_version is not None
    return result.published_version


def test_list_inspect_verify_and_download(world: CompactionWorld) -> None:
    version = _published(world)

    listed = admin.list_versions(world.dynamo, world.bucket, "words")
    assert (listed["pointer"], listed["pointer_file"], listed["history"]) == (
        version,
        version,
        [version],
    )
    assert [(v["version"], v["format"], v["records"]) for v in listed["versions"]] == [
        (version, 2, 6)
    ]
    inspected = admin.inspect(world.bucket, "words", version)
    assert (inspected["records"], inspected["format"]) == (6, 2)
    assert inspected["metadata_keys"]["embedding_run_id"] == 6
    verified = admin.verify(world.bucket, "words", version, world.dimension)
    assert (verified["ok"], verified["records"], verified["dimension"]) == (True, 6, 8)
    assert verified["hash"].startswith("sha256:")

    target = world.root / "download"
    downloaded = admin.download(world.bucket, "words", version, target)
    assert downloaded["path"] == str(target)
    assert downloaded["bytes_downloaded"] > 0
    assert (target / "chroma.sqlite3").is_file()
    with pytest.raises(SnapshotDestinationError, match="not empty"):
        admin.download(world.bucket, "words", version, target)
    (world.root / "file").write_text("x")
    with pytest.raises(SnapshotDestinationError, match="existing file"):
        admin.download(world.bucket, "words", version, world.root / "file")
    with pytest.raises(SnapshotVersionMissingError, match="does not exist"):
        admin.verify(world.bucket, "words", "20000101_000000_000000_00000000", 8)


def test_a_planned_flush_publishes_a_fully_indexed_version_under_the_lease(
    world: CompactionWorld,
) -> None:
    version = _published(world)
    world.add_receipt(SyntheticReceipt(OTHER_IMAGE_ID, 2, dimension=world.dimension))
    result = world.cycle("words", snapshot_settings=_settings(world)).run(world.pump()["words"])
    assert result.unindexed_records == 12  # below HNSW_FLUSH_RECORDS: nothing flushed yet
    assert not result.hnsw_flushed

    def flush() -> dict[str, object]:
        return admin.flush(
            world.dynamo,
            world.bucket,
            "words",
            lease=lambda: LockManager(world.dynamo, "words"),
            work_dir=world.root / "operator",
            settings=SnapshotSettings(dimension=world.dimension, hnsw=HnswPolicy()),
        )

    flushed = flush()
    assert (flushed["flushed"], flushed["published"], flushed["unindexed_before"]) == (
        True,
        True,
        12,
    )
    assert flushed["base_version"] == result.published_version != version
    assert world.published_version("words") == flushed["version"]
    target = world.root / "check"
    admin.download(world.bucket, "words", str(flushed["version"]), target)
    assert index_state(target, "words").unindexed_records == 0

    again = flush()  # nothing waits for the index any more
    assert (again["flushed"], again["published"], again["version"]) == (
        False,
        False,
        flushed["version"],
    )
