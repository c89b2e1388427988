"""Runs merge and are marked correctly when merges fail, deltas are partial, rows are
invalid, leases are lost and copies are left dirty — each test one behaviour that was once
broken (before contract revision 2). Real cycles: moto server, real Chroma.

Expected values are written out from the contract (docs/contract.md) here, never
computed by product code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from receipt_chroma.compaction import FailureCause, write_delta
from receipt_chroma.snapshots import WorkingCopy
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo import CompactionRun, CompactionState
from receipt_dynamo.testing import IMAGE_ID, make_label, make_metadata
from receipt_dynamo_stream import MessageValidationError, StreamMessage

pytestmark = pytest.mark.integration

T0 = "2026-11-28T10:00:00.000000+00:00"
T1 = "2026-11-28T11:00:00.000000+00:00"
WORD = "IMAGE#{image}#RECEIPT#00001#LINE#{line:05d}#WORD#{word:05d}"


def word_id(line: int, word: int) -> str:
    return WORD.format(image=IMAGE_ID, line=line, word=word)


@pytest.fixture
def world(aws_endpoint: str, tmp_path: Path) -> CompactionWorld:
    return CompactionWorld(tmp_path)


def add_run(
    world: CompactionWorld,
    run_id: str,
    created_at: str,
    words: list[Any],
    *,
    upload: bool = True,
) -> CompactionRun:
    """A producer's run row; its words delta is uploaded now or (upload=False) later."""
    prefix = f"words/delta/{run_id}/"
    if upload:
        write_delta(words, "words", bucket=world.bucket, run_id=run_id, s3_client=world.s3)
    run = CompactionRun(
        run_id=run_id,
        image_id=IMAGE_ID,
        receipt_id=1,
        lines_delta_prefix=f"lines/delta/{run_id}/",
        words_delta_prefix=prefix,
        created_at=created_at,
    )
    world.dynamo.add_compaction_run(run)
    return run


def receipt_with_rows(world: CompactionWorld) -> SyntheticReceipt:
    receipt = SyntheticReceipt(IMAGE_ID, 1, lines=2, words_per_line=2, dimension=world.dimension)
    world.dynamo.put_entities(receipt.rows)
    return receipt


def provenance(world: CompactionWorld) -> dict[str, str]:
    return {i: m["embedding_run_id"] for i, (m, _) in world.snapshot_from_s3("words").items()}


def test_a_valid_run_is_not_lost_to_a_newer_run_whose_merge_fails(
    world: CompactionWorld,
) -> None:
    receipt = receipt_with_rows(world)
    add_run(world, "run-a", T0, receipt.word_records())
    add_run(world, "run-b", T1, receipt.word_records(), upload=False)
    words = world.pump()["words"]
    by_run = {m.entity_data.get("run_id"): mid for mid, m in words}

    result = world.cycle("words").run(words)

    assert result.failed_message_ids == {by_run["run-b"]}
    all_ids = {word_id(line, word) for line in (1, 2) for word in (1, 2)}
    assert provenance(world) == dict.fromkeys(all_ids, "run-a")
    runs = {r.run_id: r for r in world.dynamo.list_compaction_runs_for_receipt(IMAGE_ID, 1)}
    assert runs["run-a"].words_state is CompactionState.COMPLETED
    assert runs["run-b"].words_state is CompactionState.FAILED

    # The delta appears; the retried message merges it.
    write_delta(receipt.word_records(), "words", bucket=world.bucket, run_id="run-b")
    retry = [(mid, m) for mid, m in words if mid == by_run["run-b"]]
    assert world.cycle("words").run(retry).failures == []
    assert provenance(world) == dict.fromkeys(all_ids, "run-b")


def test_writes_never_published_do_not_survive_in_the_warm_copy(
    world: CompactionWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    receipt = receipt_with_rows(world)
    add_run(world, "run-a", T0, receipt.word_records())
    cycle = world.cycle("words")
    assert cycle.run(world.pump()["words"]).failures == []
    published = world.published_version("words")

    # A second run whose merge raises after its upsert reached Chroma, alone in a batch.
    add_run(world, "run-b", T1, receipt.word_records())
    import chromadb.api.models.Collection as chroma_collection

    real_upsert = chroma_collection.Collection.upsert

    def upsert_then_fail(self: Any, *args: Any, **kwargs: Any) -> None:
        real_upsert(self, *args, **kwargs)
        raise RuntimeError("injected failure after the write")

    monkeypatch.setattr(chroma_collection.Collection, "upsert", upsert_then_fail)
    messages = world.pump()["words"]
    failed = cycle.run(messages)
    monkeypatch.undo()
    assert failed.failures  # the run's message is retried later

    # The write call made the copy dirty and the merge failed: nothing of the batch is
    # published (a failed run's vectors must not hold back older runs), and the copy is
    # deleted, never relabelled as the published version.
    assert world.published_version("words") == published
    assert WorkingCopy(world.config.work_dir, "words").version is None
    assert set(provenance(world).values()) == {"run-a"}
    run_b = world.dynamo.get_compaction_run(IMAGE_ID, 1, "run-b")
    assert run_b.words_state is not CompactionState.COMPLETED

    # Retried without the fault, run-b merges.
    retry = [(mid, m) for mid, m in messages if mid in failed.failed_message_ids]
    assert cycle.run(retry).failures == []
    assert set(provenance(world).values()) == {"run-b"}


def test_a_partial_newer_delta_keeps_the_other_records(world: CompactionWorld) -> None:
    receipt = receipt_with_rows(world)
    records = receipt.word_records()
    add_run(world, "run-a", T0, records)
    add_run(world, "run-b", T1, records[:1])  # 1 of the receipt's 4 words

    assert world.cycle("words").run(world.pump()["words"]).failures == []

    assert provenance(world) == {
        word_id(1, 1): "run-b",
        word_id(1, 2): "run-a",
        word_id(2, 1): "run-a",
        word_id(2, 2): "run-a",
    }


def test_one_invalid_label_row_fails_nothing_else(world: CompactionWorld) -> None:
    receipt = receipt_with_rows(world)
    add_run(world, "run-a", T0, receipt.word_records())
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Corner"))
    world.dynamo.put_receipt_word_label(
        make_label(IMAGE_ID, 1, 1, 2, "TOTAL", validation_status="VALID", timestamp_added=T0)
    )
    bad = {
        "PK": {"S": f"IMAGE#{IMAGE_ID}"},
        "SK": {"S": "RECEIPT#00001#LINE#00001#WORD#00001#LABEL#TAX"},
        "TYPE": {"S": "RECEIPT_WORD_LABEL"},
        "timestamp_added": {"S": "not-a-time"},
        "validation_status": {"S": "VALID"},
    }
    world.dynamo.client.put_item(TableName=world.table, Item=bad)
    messages = world.pump()["words"]

    result = world.cycle("words").run(messages)

    assert result.failures == []
    assert result.update is not None
    assert result.update.invalid_rows >= 1
    words = world.snapshot_from_s3("words")
    assert set(words) == {word_id(line, word) for line in (1, 2) for word in (1, 2)}
    assert all(m["merchant_name"] == "Corner" for m, _ in words.values())
    assert "label_status" not in words[word_id(1, 1)][0]  # only the bad row names it
    assert words[word_id(1, 2)][0]["valid_labels_array"] == ["TOTAL"]


def test_timestamps_compare_as_instants(world: CompactionWorld) -> None:
    receipt = receipt_with_rows(world)
    records = receipt.word_records()
    # 08:00-05:00 is 13:00 UTC: run-early-text is the newer run despite its text.
    add_run(world, "run-early-text", "2026-11-28T08:00:00-05:00", records)
    add_run(world, "run-late-text", "2026-11-28T12:00:00+00:00", records)
    world.dynamo.put_receipt_word_label(
        make_label(
            IMAGE_ID,
            1,
            1,
            1,
            "TOTAL",
            validation_status="VALID",
            timestamp_added="2026-11-28T12:00:00+00:00",
        )
    )
    world.dynamo.put_receipt_word_label(
        make_label(
            IMAGE_ID,
            1,
            1,
            1,
            "TAX",
            validation_status="VALID",
            timestamp_added="2026-11-28T08:00:00-05:00",
        )
    )

    assert world.cycle("words").run(world.pump()["words"]).failures == []

    words = world.snapshot_from_s3("words")
    assert {m["embedding_run_id"] for m, _ in words.values()} == {"run-early-text"}
    assert {m["embedding_created_at"] for m, _ in words.values()} == {"2026-11-28T08:00:00-05:00"}
    assert words[word_id(1, 1)][0]["labels_updated_at"] == "2026-11-28T08:00:00-05:00"


def _body(**overrides: Any) -> str:
    body = {
        "schema_version": 1,
        "source": "dynamodb_stream",
        "entity_type": "RECEIPT_LINE",
        "event_name": "REMOVE",
        "collection": "lines",
        "entity_data": {"image_id": IMAGE_ID, "receipt_id": 1, "line_id": 2},
        "changes": {},
        "sequence_number": "17",
        "change_time": T0,
        "timestamp": T0,
    }
    return json.dumps({**body, **overrides})


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"collection": "words"}, "RECEIPT_LINE REMOVE message goes to the words"),
        ({"event_name": "INSERT"}, "RECEIPT_LINE INSERT"),
        (
            {"entity_type": "COMPACTION_RUN", "event_name": "MODIFY"},
            "COMPACTION_RUN MODIFY",
        ),
        ({"entity_data": {"image_id": IMAGE_ID, "receipt_id": 1}}, "entity_data.line_id"),
    ],
)
def test_messages_the_stream_never_produces_are_refused(
    overrides: dict[str, Any], named: str
) -> None:
    assert StreamMessage.from_json(_body()).entity_type.value == "RECEIPT_LINE"
    with pytest.raises(MessageValidationError, match=named):
        StreamMessage.from_json(_body(**overrides))


def test_runs_enter_processing_while_merged(world: CompactionWorld) -> None:
    receipt = receipt_with_rows(world)
    add_run(world, "run-a", T0, receipt.word_records())
    seen: dict[str, CompactionState] = {}

    def look(stage: str) -> None:
        if stage == "applied":
            seen[stage] = world.dynamo.get_compaction_run(IMAGE_ID, 1, "run-a").words_state

    cycle = world.cycle("words", on_stage=look)
    assert cycle.run(world.pump()["words"]).failures == []
    assert seen == {"applied": CompactionState.PROCESSING}
    final = world.dynamo.get_compaction_run(IMAGE_ID, 1, "run-a")
    assert (final.words_state, final.words_merged_vectors) == (CompactionState.COMPLETED, 4)


def test_a_lease_lost_before_publish_completes_no_run(world: CompactionWorld) -> None:
    receipt = receipt_with_rows(world)
    add_run(world, "run-a", T0, receipt.word_records())
    table = boto3.client("dynamodb")

    messages = world.pump()["words"]
    result = world.cycle("words", on_stage=steal_lease_at_applied(world)).run(messages)

    assert result.cause is FailureCause.LEASE_LOST
    assert world.published_version("words") is None
    run = world.dynamo.get_compaction_run(IMAGE_ID, 1, "run-a")
    assert run.words_state is not CompactionState.COMPLETED
    # The refused first publish left no version behind, so the retry may bootstrap.
    table.update_item(
        TableName=world.table,
        Key={"PK": {"S": "LOCK#words#chroma-words-compaction"}, "SK": {"S": "LOCK"}},
        UpdateExpression="REMOVE #owner",
        ExpressionAttributeNames={"#owner": "owner"},
    )
    retry = world.cycle("words").run(messages)
    assert retry.failures == []
    assert set(provenance(world).values()) == {"run-a"}


# --- found by the adversarial review of the provenance rule ------------------------------


def fail_upserts_after_writing(monkeypatch: pytest.MonkeyPatch) -> None:
    import chromadb.api.models.Collection as chroma_collection

    real_upsert = chroma_collection.Collection.upsert

    def upsert_then_fail(self: Any, *args: Any, **kwargs: Any) -> None:
        real_upsert(self, *args, **kwargs)
        raise RuntimeError("injected failure after the write")

    monkeypatch.setattr(chroma_collection.Collection, "upsert", upsert_then_fail)


def test_a_failed_merge_never_holds_back_an_older_run(
    world: CompactionWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newer run whose merge failed after writing, and whose delta then disappears for
    good, leaves the records with the older run's vectors — whatever the fault's timing."""
    receipt = receipt_with_rows(world)
    add_run(world, "run-b", T1, receipt.word_records())
    cycle = world.cycle("words")
    fail_upserts_after_writing(monkeypatch)
    assert cycle.run(world.pump()["words"]).failures
    monkeypatch.undo()
    world.s3.delete_object(Bucket=world.bucket, Key="words/delta/run-b/delta.tar.gz")

    add_run(world, "run-a", T0, receipt.word_records())
    older = [(mid, m) for mid, m in world.pump()["words"] if m.entity_data["run_id"] == "run-a"]
    assert cycle.run(older).failures == []

    all_ids = {word_id(line, word) for line in (1, 2) for word in (1, 2)}
    assert provenance(world) == dict.fromkeys(all_ids, "run-a")
    run_a = world.dynamo.get_compaction_run(IMAGE_ID, 1, "run-a")
    assert run_a.words_state is CompactionState.COMPLETED


def test_a_receipt_recreated_by_an_older_run_takes_that_runs_vectors(
    world: CompactionWorld,
) -> None:
    """The newest run is the newest run of the receipt as it is now: once a receipt is
    deleted (rows and runs) and re-created by a run with an earlier created_at, the
    records take that run's vectors, even when its messages come after all the changes."""
    receipt = receipt_with_rows(world)
    add_run(world, "run-new", T1, receipt.word_records())
    cycle = world.cycle("words")
    assert cycle.run(world.pump()["words"]).failures == []

    for row in receipt.rows:
        world.dynamo.delete_entity(row)
    world.dynamo.delete_compaction_run(IMAGE_ID, 1, "run-new")
    world.dynamo.put_entities(receipt.rows)
    add_run(world, "run-old", T0, receipt.word_records())
    assert cycle.run(world.pump()["words"]).failures == []

    all_ids = {word_id(line, word) for line in (1, 2) for word in (1, 2)}
    assert provenance(world) == dict.fromkeys(all_ids, "run-old")


def test_a_failed_backfill_leaves_a_completed_run_completed(world: CompactionWorld) -> None:
    receipt = receipt_with_rows(world)
    add_run(world, "run-a", T0, receipt.word_records())
    messages = world.pump()["words"]
    cycle = world.cycle("words")
    assert cycle.run(messages).failures == []
    world.s3.delete_object(Bucket=world.bucket, Key="words/delta/run-a/delta.tar.gz")

    run_message = next(m for _, m in messages if m.entity_data.get("run_id") == "run-a")
    stream_fields = {"sequence_number": None, "change_time": None, "stream_record_id": None}
    backfill = StreamMessage.from_json(
        json.dumps({**json.loads(run_message.to_json()), "source": "backfill", **stream_fields})
    )
    assert cycle.run([("backfill-1", backfill)]).failed_message_ids == {"backfill-1"}

    run_a = world.dynamo.get_compaction_run(IMAGE_ID, 1, "run-a")
    assert run_a.words_state is CompactionState.COMPLETED
    # An ordinary redelivery is still recognised as done.
    assert cycle.run(messages).failures == []


def steal_lease_at_applied(world: CompactionWorld) -> Any:
    table = boto3.client("dynamodb")

    def steal(stage: str) -> None:
        if stage == "applied":
            table.update_item(
                TableName=world.table,
                Key={"PK": {"S": "LOCK#words#chroma-words-compaction"}, "SK": {"S": "LOCK"}},
                UpdateExpression="SET #owner = :thief",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":thief": {"S": "another-owner"}},
            )

    return steal


def held_by_newer_run(world: CompactionWorld) -> list[tuple[str, StreamMessage]]:
    """run-new merged and published; then run-old, every id of which run-new holds: a
    merge that needs no write."""
    receipt = receipt_with_rows(world)
    add_run(world, "run-new", T1, receipt.word_records())
    assert world.cycle("words").run(world.pump()["words"]).failures == []
    add_run(world, "run-old", T0, receipt.word_records())
    return world.pump()["words"]


def test_a_merge_needing_no_write_marks_its_run_only_under_the_lease(
    world: CompactionWorld,
) -> None:
    messages = held_by_newer_run(world)
    result = world.cycle("words", on_stage=steal_lease_at_applied(world)).run(messages)

    assert result.cause is FailureCause.LEASE_LOST
    run_old = world.dynamo.get_compaction_run(IMAGE_ID, 1, "run-old")
    assert run_old.words_state is not CompactionState.COMPLETED


def test_a_copy_that_got_no_write_is_labelled_with_its_true_file_hashes(
    world: CompactionWorld,
) -> None:
    messages = held_by_newer_run(world)
    published = world.published_version("words")
    assert world.cycle("words").run(messages).failures == []
    assert world.published_version("words") == published  # nothing to publish

    copy = WorkingCopy(world.config.work_dir, "words")
    assert copy.version == published
    manifest = copy.manifest()
    assert manifest is not None
    on_disk = {
        path.relative_to(copy.path).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in copy.path.rglob("*")
        if path.is_file()
    }
    assert {entry.path: entry.sha256 for entry in manifest.files} == on_disk
