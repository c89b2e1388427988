"""``receipt-compaction query`` serves snapshots through the collection's reader: one copy
per collection in the cache (not one per version ever queried), the next version caught
up from it, and a version that does not verify refused with its reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import zstandard

from receipt_chroma.ids import word_vector_id
from receipt_compaction_tools.testing.cli import run_cli
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo.testing import IMAGE_ID, make_metadata

pytestmark = pytest.mark.integration


def test_query_keeps_one_copy_per_collection_and_refuses_a_corrupt_version(
    aws_endpoint: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = CompactionWorld(tmp_path / "world")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cache = tmp_path / "cache" / "receipt-compaction" / "snapshots" / world.bucket / "words"
    legacy = cache / "20260101_000000_000000_00000000"  # a whole copy an older CLI kept
    legacy.mkdir(parents=True)
    (legacy / "chroma.sqlite3").write_bytes(b"old")
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
    cycle = world.cycle("words")

    def publish(merchant: str) -> str:
        world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name=merchant))
        result = cycle.run(world.pump()["words"])
        assert result.failures == [], result.failures
        assert result.published_version is not None
        return result.published_version

    def query() -> Any:
        argv = ["query", "--id", word_vector_id(IMAGE_ID, 1, 1, 1), "-n", "1", "--json"]
        result = run_cli(capsys, *argv, "--table", world.table, "--bucket", world.bucket)
        assert result.code == 0, result.err
        return result.json

    def copies() -> list[str]:
        return sorted(p.name.split(".")[0] for p in cache.iterdir() if p.name != ".lock")

    first = publish("First")
    answer = query()
    assert answer["version"] == first
    assert answer["neighbours"][0]["metadata"]["merchant_name"] == "First"
    assert copies() == [first]  # the older CLI's copy is gone

    second = publish("Second")
    answer = query()
    assert answer["version"] == second
    assert answer["neighbours"][0]["metadata"]["merchant_name"] == "Second"
    assert copies() == [second]

    third = publish("Third")
    changed = sorted(set(object_shas(world, third)) - set(object_shas(world, second)))
    key = f"words/snapshot/objects/{changed[0]}.zst"
    world.s3.put_object(Bucket=world.bucket, Key=key, Body=zstandard.compress(b"not the file"))
    argv = ["query", "--id", word_vector_id(IMAGE_ID, 1, 1, 1), "--json"]
    refused = run_cli(capsys, *argv, "--table", world.table, "--bucket", world.bucket)
    assert refused.code == 1
    assert key in refused.error_line
    assert copies() == [second]  # the copy served last is kept for the next query


def object_shas(world: CompactionWorld, version: str) -> list[str]:
    key = f"words/snapshot/versions/{version}/manifest.json"
    body = json.loads(world.s3.get_object(Bucket=world.bucket, Key=key)["Body"].read())
    return [entry["sha256"] for entry in body["files"]]
