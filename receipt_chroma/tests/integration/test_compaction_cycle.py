"""Full compaction cycles on a moto server, real Chroma and a temporary EFS directory."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import zstandard

from receipt_chroma.compaction import FailureCause
from receipt_chroma.ids import line_vector_id, word_vector_id
from receipt_chroma.snapshots import CacheTier
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld, read_snapshot
from receipt_dynamo import ValidationStatus
from receipt_dynamo.testing import (
    IMAGE_ID,
    OTHER_IMAGE_ID,
    make_label,
    make_metadata,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def world(aws_endpoint: str, tmp_path: Path) -> CompactionWorld:
    return CompactionWorld(tmp_path)


def _populate(world: CompactionWorld) -> tuple[SyntheticReceipt, SyntheticReceipt]:
    first = SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension)
    second = SyntheticReceipt(OTHER_IMAGE_ID, 1, dimension=world.dimension)
    for receipt in (first, second):
        world.add_receipt(receipt)
        world.dynamo.put_receipt_metadata(make_metadata(receipt.image_id, 1))
    label = make_label(IMAGE_ID, 1, 1, 1, "TOTAL")
    world.dynamo.put_receipt_word_label(label)
    world.dynamo.put_receipt_word_label(
        dataclasses.replace(label, validation_status=ValidationStatus.VALID)
    )
    return first, second


def _count_snapshot_gets(s3: Any) -> list[str]:
    """Downloads of snapshot data (objects or format 1 tarballs)."""
    keys: list[str] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        key = params.get("Key", "")
        if "/snapshot/objects/" in key or "/snapshot/timestamped/" in key:
            keys.append(key)

    s3.meta.events.register("before-parameter-build.s3.GetObject", count)
    return keys


def test_full_cycle_publishes_a_snapshot_readable_from_s3_and_efs(world: CompactionWorld) -> None:
    first, _ = _populate(world)
    results = world.compact(world.pump())
    assert all(r.failures == [] for r in results), [r.failures for r in results]
    assert {r.tier for r in results} == {CacheTier.BOOTSTRAP}

    # Edits: a merchant correction, a line removal, a receipt deletion.
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Corner Mkt"))
    world.dynamo.delete_receipt_line(IMAGE_ID, 1, 3)
    for row in SyntheticReceipt(OTHER_IMAGE_ID, 1).rows:
        world.dynamo.delete_entity(row)
    results = world.compact(world.pump())
    assert all(r.failures == [] for r in results)
    assert {r.tier for r in results} == {CacheTier.WARM}

    words = world.snapshot_from_s3("words")
    assert set(words) == {r[0] for r in first.word_records()}
    total = words[word_vector_id(IMAGE_ID, 1, 1, 1)][0]
    assert total["merchant_name"] == "Corner Mkt"
    assert total["valid_labels_array"] == ["TOTAL"]
    assert total["label_status"] == "validated"
    lines = world.snapshot_from_s3("lines")
    assert set(lines) == {line_vector_id(IMAGE_ID, 1, n) for n in (1, 2)}

    # EFS alone holds the same published version.
    version = world.published_version("words")
    assert version is not None
    efs_copy = world.root / "efs-copy"
    import shutil

    shutil.copytree(world.config.chroma_root / "snapshots" / "words" / version, efs_copy)
    assert read_snapshot(efs_copy, "words") == words
    assert (world.config.chroma_root / "snapshots" / "words" / ".version").read_text() == version
    pointer_file = world.s3.get_object(
        Bucket=world.bucket, Key="words/snapshot/latest-pointer.txt"
    )["Body"].read()
    assert pointer_file == version.encode()
    # Runs are marked once published.
    run = world.dynamo.list_compaction_runs_for_receipt(IMAGE_ID, 1)[0]
    assert (run.words_state.value, run.words_merged_vectors) == ("COMPLETED", 6)


def test_warm_cycle_reads_no_snapshot_from_s3(world: CompactionWorld) -> None:
    _populate(world)
    cycle = world.cycle("words")
    assert cycle.run(world.pump()["words"]).failures == []
    gets = _count_snapshot_gets(world.s3)
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Again"))
    result = cycle.run(world.pump()["words"])
    assert (result.tier, result.failures) == (CacheTier.WARM, [])
    assert result.published_version is not None
    assert gets == []

    # A new container (cold work dir) takes the EFS copy, still without S3 snapshot reads.
    cold = world.cycle("words", work="other-container")
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Third"))
    assert cold.run(world.pump()["words"]).tier is CacheTier.EFS
    assert gets == []


def test_cold_start_from_s3_when_efs_is_empty(world: CompactionWorld) -> None:
    _populate(world)
    world.compact(world.pump())
    import shutil

    shutil.rmtree(world.config.chroma_root)
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Cold"))
    result = world.cycle("words", work="fresh").run(world.pump()["words"])
    assert (result.tier, result.failures) == (CacheTier.S3, [])
    assert (
        world.snapshot_from_s3("words")[word_vector_id(IMAGE_ID, 1, 1, 1)][0]["merchant_name"]
        == "Cold"
    )


def _expire_lease(world: CompactionWorld, collection: str) -> None:
    boto3.client("dynamodb").update_item(
        TableName=world.table,
        Key={"PK": {"S": f"LOCK#{collection}#chroma-{collection}-compaction"}, "SK": {"S": "LOCK"}},
        UpdateExpression="SET expires = :past",
        ExpressionAttributeValues={":past": {"S": "2000-01-01T00:00:00.000000+00:00"}},
    )


def test_two_compactors_from_the_same_base_exactly_one_publishes(
    world: CompactionWorld,
) -> None:
    _populate(world)
    world.compact(world.pump())
    base = world.published_version("words")
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="From A"))
    messages_a = world.pump()["words"]
    world.dynamo.put_receipt_metadata(make_metadata(OTHER_IMAGE_ID, 1, merchant_name="From B"))
    messages_b = world.pump()["words"]
    outcome: dict[str, Any] = {}

    def paused_past_its_lease(stage: str) -> None:
        if stage == "applied":
            # A stalls past its lease; B takes over from the same base and publishes.
            _expire_lease(world, "words")
            outcome["b"] = world.cycle("words", work="compactor-b").run(messages_b)

    result_a = world.cycle("words", on_stage=paused_past_its_lease).run(messages_a)

    assert outcome["b"].failures == []
    assert outcome["b"].published_version is not None
    assert result_a.cause is FailureCause.LEASE_LOST
    assert result_a.failed_message_ids == {m for m, _ in messages_a}
    pointer = world.dynamo.get_snapshot_pointer("words")
    assert pointer is not None
    assert (pointer.version, pointer.previous_version) == (outcome["b"].published_version, base)
    words = world.snapshot_from_s3("words")
    assert words[word_vector_id(OTHER_IMAGE_ID, 1, 1, 1)][0]["merchant_name"] == "From B"
    # A's change is not lost: redelivered, it applies on top of B's version.
    retry = world.cycle("words").run(messages_a)
    assert retry.failures == []
    assert (
        world.snapshot_from_s3("words")[word_vector_id(IMAGE_ID, 1, 1, 1)][0]["merchant_name"]
        == "From A"
    )


def _sqlite_object_key(world: CompactionWorld, version: str) -> str:
    manifest = json.loads(
        world.s3.get_object(
            Bucket=world.bucket, Key=f"words/snapshot/versions/{version}/manifest.json"
        )["Body"].read()
    )
    sha = next(f["sha256"] for f in manifest["files"] if f["path"] == "chroma.sqlite3")
    return f"words/snapshot/objects/{sha}.zst"


def _malicious_manifest(world: CompactionWorld, version: str) -> None:
    """A manifest naming ``../../escaped.txt``, with a matching ``.manifest_hash``."""
    prefix = f"words/snapshot/versions/{version}/"
    manifest = json.loads(
        world.s3.get_object(Bucket=world.bucket, Key=f"{prefix}manifest.json")["Body"].read()
    )
    manifest["files"].insert(0, {**manifest["files"][0], "path": "../../escaped.txt"})
    body = json.dumps(manifest).encode()
    world.s3.put_object(Bucket=world.bucket, Key=f"{prefix}manifest.json", Body=body)
    digest = f"sha256:{hashlib.sha256(body).hexdigest()}".encode()
    world.s3.put_object(Bucket=world.bucket, Key=f"{prefix}.manifest_hash", Body=digest)


@pytest.mark.parametrize("damage", ["corrupt", "missing", "malicious"])
def test_unusable_versions_fail_clearly_and_publish_nothing(
    world: CompactionWorld, damage: str
) -> None:
    _populate(world)
    world.compact(world.pump())
    version = world.published_version("words")
    assert version is not None
    import shutil

    shutil.rmtree(world.config.chroma_root)  # no EFS copy to fall back on
    if damage == "corrupt":
        key = _sqlite_object_key(world, version)
        world.s3.put_object(Bucket=world.bucket, Key=key, Body=zstandard.compress(b"not it"))
    elif damage == "missing":
        world.s3.delete_object(Bucket=world.bucket, Key=_sqlite_object_key(world, version))
    else:
        _malicious_manifest(world, version)
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Never"))

    result = world.cycle("words", work="fresh").run(world.pump()["words"])

    assert result.cause is FailureCause.SNAPSHOT_UNAVAILABLE
    assert version in result.failures[0].reason
    expected = {
        "corrupt": "does not match its manifest",
        "missing": "is missing",
        "malicious": "not a safe relative path",
    }
    assert expected[damage] in result.failures[0].reason
    assert world.published_version("words") == version
    assert not (world.root / "escaped.txt").exists()
    assert not (world.root.parent / "escaped.txt").exists()


def test_existing_s3_snapshot_is_adopted_not_bootstrapped_over(world: CompactionWorld) -> None:
    _populate(world)
    world.compact(world.pump())
    version = world.published_version("lines")
    boto3.client("dynamodb").delete_item(
        TableName=world.table, Key={"PK": {"S": "SNAPSHOT#lines"}, "SK": {"S": "POINTER"}}
    )
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Adopted"))
    result = world.cycle("lines", work="fresh").run(world.pump()["lines"])
    assert result.failures == []
    pointer = world.dynamo.get_snapshot_pointer("lines")
    assert pointer is not None
    assert pointer.previous_version == version  # adopted, then published on top
    assert len(world.snapshot_from_s3("lines")) == 6

    # Versions with neither an item nor a pointer file are uncommitted publishes (§6 rev 3):
    # the newest one that verifies is adopted, never bootstrapped over.
    world.s3.delete_object(Bucket=world.bucket, Key="lines/snapshot/latest-pointer.txt")
    boto3.client("dynamodb").delete_item(
        TableName=world.table, Key={"PK": {"S": "SNAPSHOT#lines"}, "SK": {"S": "POINTER"}}
    )
    listed = world.s3.list_objects_v2(Bucket=world.bucket, Prefix="lines/snapshot/versions/")
    newest = max(item["Key"].split("/")[3] for item in listed.get("Contents", []))
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Recovered"))
    recovered = world.cycle("lines", work="fresher").run(world.pump()["lines"])
    assert recovered.failures == [], recovered
    pointer = world.dynamo.get_snapshot_pointer("lines")
    assert pointer is not None
    assert pointer.previous_version == newest
    records = world.snapshot_from_s3("lines").values()
    names = {m.get("merchant_name") for m, _ in records if m["image_id"] == IMAGE_ID}
    assert names == {"Recovered"}


def test_retention_keeps_the_pointer_history(world: CompactionWorld) -> None:
    _populate(world)
    cycle = world.cycle("lines")
    cycle.run(world.pump()["lines"])
    for n in range(5):
        world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name=f"M{n}"))
        assert cycle.run(world.pump()["lines"]).failures == []
    pointer = world.dynamo.get_snapshot_pointer("lines")
    assert pointer is not None
    assert len(pointer.history) == 4
    from receipt_chroma.snapshots import S3SnapshotStore

    assert set(S3SnapshotStore(world.s3, world.bucket, "lines").list_versions()) == set(
        pointer.history
    )
    efs_versions = sorted(
        p.name
        for p in (world.config.chroma_root / "snapshots" / "lines").iterdir()
        if not p.name.startswith(".")
    )
    assert efs_versions == sorted([pointer.version, pointer.previous_version or ""])


def _pointer_reads(world: CompactionWorld, collection: str) -> list[str]:
    """Reads of the collection's SnapshotPointer item (contract §2: ``SNAPSHOT#<c>`` /
    ``POINTER``), by operation."""
    reads: list[str] = []

    def count(params: dict[str, Any], event_name: str, **_: Any) -> None:
        key = params.get("Key") or {}
        if key.get("PK") == {"S": f"SNAPSHOT#{collection}"} and key.get("SK") == {"S": "POINTER"}:
            reads.append(event_name.rsplit(".", 1)[-1])

    world.dynamo.client.meta.events.register("before-parameter-build.dynamodb.GetItem", count)
    return reads


def test_a_cycle_reads_the_commit_once_plus_the_reads_the_contract_requires(
    world: CompactionWorld,
) -> None:
    """The pointer item is the commit. A publishing cycle reads it four times: for the
    lease's fencing token (§7), once as the version it builds on (§6.3 step 2), for
    ``latest-pointer.txt`` from the item's current value (step 4), and right before
    retention (§6 rev 3). Caches that already agree are not repaired with another read."""
    _populate(world)
    assert all(r.failures == [] for r in world.compact(world.pump()))
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Corner Mkt"))
    messages = world.pump()["words"]
    reads = _pointer_reads(world, "words")

    result = world.cycle("words").run(messages)

    assert result.failures == []
    assert result.published_version is not None
    assert reads == ["GetItem"] * 4
    pointer_file = world.s3.get_object(
        Bucket=world.bucket, Key="words/snapshot/latest-pointer.txt"
    )["Body"].read()
    assert pointer_file == result.published_version.encode("ascii")
    efs_version = world.root / "efs" / "snapshots" / "words" / ".version"
    assert efs_version.read_text() == result.published_version
