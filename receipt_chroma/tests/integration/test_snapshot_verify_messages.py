"""``snapshot verify`` (``admin.verify``) tells the operator what is wrong in the terms of
the version — its id, the file's path in the manifest, the object key and hashes — and
never the temporary directory it read the version into."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import pytest
import zstandard

from receipt_chroma.exceptions import (
    SnapshotCheckError,
    SnapshotVersionCorruptError,
)
from receipt_chroma.snapshots import (
    FileEntry,
    Manifest,
    S3SnapshotStore,
    SnapshotSettings,
    admin,
    new_version_id,
)
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo.testing import IMAGE_ID

pytestmark = pytest.mark.integration

TEMP = tempfile.gettempdir()


@pytest.fixture
def world(aws_endpoint: str, tmp_path: Path) -> CompactionWorld:
    return CompactionWorld(tmp_path)


def _published(world: CompactionWorld) -> str:
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
    settings = SnapshotSettings(dimension=world.dimension, lock_duration_seconds=30)
    result = world.cycle("words", snapshot_settings=settings).run(world.pump()["words"])
    assert result.failures == []
    assert result.published_version is not None
    return result.published_version


def _assert_no_local_path(message: str) -> None:
    assert TEMP not in message, message
    assert "verify-" not in message, message
    assert ".build-" not in message, message


def test_a_wrong_dimension_names_the_version_not_the_temporary_directory(
    world: CompactionWorld,
) -> None:
    version = _published(world)

    with pytest.raises(SnapshotCheckError) as raised:
        admin.verify(world.bucket, "words", version, world.dimension * 2, s3_client=world.s3)

    message = str(raised.value)
    assert message == (
        f"words version {version}: collection 'words' has dimension {world.dimension}, "
        f"expected {world.dimension * 2}"
    )
    _assert_no_local_path(message)


def test_a_corrupt_object_names_the_version_the_file_and_the_object(
    world: CompactionWorld,
) -> None:
    version = _published(world)
    key = f"words/snapshot/versions/{version}/manifest.json"
    files = json.loads(world.s3.get_object(Bucket=world.bucket, Key=key)["Body"].read())["files"]
    damaged = next(f for f in files if f["path"] == "chroma.sqlite3")
    object_key = f"words/snapshot/objects/{damaged['sha256']}.zst"
    world.s3.put_object(Bucket=world.bucket, Key=object_key, Body=zstandard.compress(b"tampered"))

    with pytest.raises(SnapshotVersionCorruptError) as raised:
        admin.verify(world.bucket, "words", version, world.dimension, s3_client=world.s3)

    message = str(raised.value)
    assert message.startswith(f"words version {version}: object {object_key} for chroma.sqlite3 ")
    assert f"expected {damaged['sha256']}" in message
    _assert_no_local_path(message)


def test_a_path_that_is_both_a_file_and_a_directory_is_a_corrupt_manifest(
    world: CompactionWorld,
) -> None:
    # A manifest naming both a file "a" and a file under "a/" (hash-valid): refused by
    # manifest validation, before anything is written to local disk.
    store = S3SnapshotStore(world.s3, world.bucket, "words")
    entries = []
    for path, body in (("a", b"one"), ("a/b", b"two")):
        sha = hashlib.sha256(body).hexdigest()
        world.s3.put_object(
            Bucket=world.bucket,
            Key=f"words/snapshot/objects/{sha}.zst",
            Body=zstandard.compress(body),
        )
        entries.append(FileEntry(path, len(body), sha))
    version = new_version_id()
    store.put_manifest(
        Manifest(
            collection="words",
            version_id=version,
            base_version=None,
            created_at="2026-12-01T00:00:00+00:00",
            chromadb_version="1.0.0",
            dimension=world.dimension,
            record_count=0,
            files=tuple(entries),
        )
    )

    with pytest.raises(SnapshotVersionCorruptError) as raised:
        admin.verify(world.bucket, "words", version, world.dimension, s3_client=world.s3)

    message = str(raised.value)
    assert message == f"words version {version}: manifest path 'a' is both a file and a directory"
    _assert_no_local_path(message)
