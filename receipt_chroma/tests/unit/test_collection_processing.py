"""process_collection_updates on real Chroma with moto (DynamoDB + S3) in-process."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from receipt_chroma import ChromaClient, produce_compaction_run
from receipt_chroma.chroma_client import ClientCollection
from receipt_chroma.compaction import CollectionUpdateResult, process_collection_updates
from receipt_chroma.compaction.apply_batch import record_run_outcomes
from receipt_chroma.ids import word_vector_id
from receipt_compaction_tools.testing.pytest_plugin import TableFixture
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_dynamo import CompactionState, DynamoEntity
from receipt_dynamo.testing import (
    IMAGE_ID,
    OTHER_IMAGE_ID,
    make_label,
    make_metadata,
    stream_record,
)
from receipt_dynamo_stream import StreamMessage, build_messages
from receipt_dynamo_stream.models import MessageSource

DIM = 8
BUCKET = "chroma-test"


@dataclass
class Env:
    table: TableFixture
    chroma: ChromaClient
    counter: int = 0

    def messages(
        self,
        event: str,
        collection: str,
        *,
        old: DynamoEntity | None = None,
        new: DynamoEntity | None = None,
    ) -> list[tuple[str, StreamMessage]]:
        built = build_messages([stream_record(event, old=old, new=new)])
        pairs = []
        for _, message in built.messages:
            if message.collection.value == collection:
                self.counter += 1
                pairs.append((f"m{self.counter}", message))
        return pairs

    def process(
        self, collection: str, messages: list[tuple[str, StreamMessage]]
    ) -> CollectionUpdateResult:
        result = process_collection_updates(
            messages,
            collection,
            self.chroma,
            self.table.client,
            bucket=BUCKET,
            dimension=DIM,
            logger=logging.getLogger("test"),
        )
        record_run_outcomes(self.table.client, result)
        return result

    def records(self, collection: str) -> dict[str, dict[str, Any]]:
        found = self.chroma.get_collection(collection).get(include=["metadatas"])
        return dict(zip(found["ids"], found["metadatas"], strict=True))

    def add_receipt(self, receipt: SyntheticReceipt, run_id: str, *, words: Any = None) -> Any:
        self.table.client.put_entities(receipt.rows)
        return produce_compaction_run(
            self.table.client,
            image_id=receipt.image_id,
            receipt_id=receipt.receipt_id,
            run_id=run_id,
            lines=receipt.line_records(),
            words=receipt.word_records() if words is None else words,
            bucket=BUCKET,
        )


@pytest.fixture
def env(mocked_table: TableFixture, chroma: ChromaClient) -> Env:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return Env(mocked_table, chroma)


def test_merge_writes_records_with_current_metadata_and_labels(env: Env) -> None:
    receipt = SyntheticReceipt(IMAGE_ID, 1, dimension=DIM)
    env.table.client.put_receipt_metadata(make_metadata(IMAGE_ID, 1))
    env.table.client.put_receipt_word_label(
        make_label(IMAGE_ID, 1, 1, 1, "TOTAL", validation_status="VALID")
    )
    run = env.add_receipt(receipt, "run-1")

    result = env.process("words", env.messages("INSERT", "words", new=run))

    assert result.failures == []
    assert [(r.run_id, r.merged_vectors) for r in result.runs] == [("run-1", 6)]
    records = env.records("words")
    assert len(records) == 6
    first = records[word_vector_id(IMAGE_ID, 1, 1, 1)]
    assert first["text"] == "w1.1"
    assert (first["image_id"], first["receipt_id"], first["line_id"], first["word_id"]) == (
        IMAGE_ID,
        1,
        1,
        1,
    )
    assert first["merchant_name"] == "Corner Market"
    assert first["merchant_updated_at"] == make_metadata(IMAGE_ID, 1).timestamp
    assert first["valid_labels_array"] == ["TOTAL"]
    assert "label_status" not in records[word_vector_id(IMAGE_ID, 1, 1, 2)]
    stored = env.table.client.get_compaction_run(IMAGE_ID, 1, "run-1")
    assert (stored.words_state, stored.words_merged_vectors) == (CompactionState.COMPLETED, 6)
    assert stored.lines_state is CompactionState.PENDING  # the other collection is untouched
    assert env.chroma.get_or_create_collection("lines").count() == 0


def test_merge_upserts_only_ids_whose_rows_exist(env: Env) -> None:
    receipt = SyntheticReceipt(IMAGE_ID, 1, dimension=DIM)
    run = env.add_receipt(receipt, "run-1")
    env.table.client.delete_receipt_word(IMAGE_ID, 1, 2, 2)

    result = env.process("words", env.messages("INSERT", "words", new=run))

    assert (result.runs[0].merged_vectors, result.runs[0].dropped_vectors) == (5, 1)
    assert word_vector_id(IMAGE_ID, 1, 2, 2) not in env.records("words")


def test_completed_runs_are_not_merged_again_except_by_backfill(env: Env) -> None:
    run = env.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=DIM), "run-1")
    message = env.messages("INSERT", "lines", new=run)
    env.process("lines", message)
    lines = env.chroma.get_collection("lines")
    lost = lines.get(include=[])["ids"][0]
    lines.delete(ids=[lost])

    again = env.process("lines", message)
    assert again.runs[0].skipped_reason == "already completed"
    assert lost not in env.records("lines")

    backfill = [(mid, dataclasses.replace(m, source=MessageSource.BACKFILL)) for mid, m in message]
    rebuilt = env.process("lines", backfill)
    # Only the lost record is written: the other two already hold this run's vector, and
    # rewriting them would publish a version that changes nothing.
    assert rebuilt.runs[0].merged_vectors == 1
    assert lost in env.records("lines")


@pytest.mark.parametrize("order", ["in_order", "reversed"])
def test_newer_run_wins_the_ids_it_holds_in_either_order(env: Env, order: str) -> None:
    """A partial newer delta replaces only the records it holds; the rest keep the
    older run's vectors (their rows exist), whichever run is merged first."""
    receipt = SyntheticReceipt(IMAGE_ID, 1, dimension=DIM)
    older = env.add_receipt(receipt, "run-a")
    newer_words = receipt.word_records()[:-1]  # the re-embedding lacks the last word
    newer = produce_compaction_run(
        env.table.client,
        image_id=IMAGE_ID,
        receipt_id=1,
        run_id="run-b",
        lines=receipt.line_records(),
        words=newer_words,
        bucket=BUCKET,
    )
    sequence = [older, newer] if order == "in_order" else [newer, older]
    for run in sequence:
        env.process("words", env.messages("INSERT", "words", new=run))

    records = env.records("words")
    all_ids = [r[0] for r in receipt.word_records()]
    assert sorted(records) == sorted(all_ids)
    assert {i: records[i]["embedding_run_id"] for i in all_ids} == {
        **{r[0]: "run-b" for r in newer_words},
        all_ids[-1]: "run-a",
    }
    for run_id in ("run-a", "run-b"):
        stored = env.table.client.get_compaction_run(IMAGE_ID, 1, run_id)
        assert stored.words_state is CompactionState.COMPLETED


def test_a_merge_onto_existing_records_removes_keys_the_rows_no_longer_give(env: Env) -> None:
    """A record merged again (a newer run) holds exactly the keys of the current rows: the
    merchant and label keys it held are deleted once their rows are gone, while new
    records never carry empty keys."""
    receipt = SyntheticReceipt(IMAGE_ID, 1, dimension=DIM)
    env.table.client.put_receipt_metadata(make_metadata(IMAGE_ID, 1))
    env.table.client.put_receipt_word_label(
        make_label(IMAGE_ID, 1, 1, 1, "TOTAL", validation_status="VALID")
    )
    first = env.add_receipt(receipt, "run-1")
    env.process("words", env.messages("INSERT", "words", new=first))
    labelled = word_vector_id(IMAGE_ID, 1, 1, 1)
    assert env.records("words")[labelled]["valid_labels_array"] == ["TOTAL"]
    env.table.client.delete_receipt_metadata(IMAGE_ID, 1)
    env.table.client.delete_receipt_word_label(IMAGE_ID, 1, 1, 1, "TOTAL")
    second = produce_compaction_run(
        env.table.client,
        image_id=IMAGE_ID,
        receipt_id=1,
        run_id="run-2",
        lines=receipt.line_records(),
        words=receipt.word_records()[:3],  # a partial delta: the other records stay run-1's
        bucket=BUCKET,
    )

    result = env.process("words", env.messages("INSERT", "words", new=second))

    assert [(r.run_id, r.merged_vectors) for r in result.runs] == [("run-2", 3)]
    records = env.records("words")
    base = {"image_id", "receipt_id", "line_id", "word_id", "text"}
    provenance = {"embedding_run_id", "embedding_created_at"}
    for record_id, _, _, _ in receipt.word_records()[:3]:
        assert set(records[record_id]) == base | provenance
        assert records[record_id]["embedding_run_id"] == "run-2"
    held = records[receipt.word_records()[3][0]]
    assert held["embedding_run_id"] == "run-1"
    assert "merchant_name" in held  # not merged again: metadata messages rewrite it


def test_metadata_messages_rewrite_merchant_keys_from_the_current_row(env: Env) -> None:
    run = env.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=DIM), "run-1")
    env.process("lines", env.messages("INSERT", "lines", new=run))
    old = make_metadata(IMAGE_ID, 1)
    new = dataclasses.replace(old, canonical_merchant_name="Corner Market Inc", address="")
    env.table.client.put_receipt_metadata(new)
    # A stale message (its "changes" say something else) still applies the current row.
    stale = env.messages("INSERT", "lines", new=old)

    result = env.process("lines", stale)

    assert result.records_updated == 3
    for metadata in env.records("lines").values():
        assert metadata["canonical_merchant_name"] == "Corner Market Inc"
        assert "address" not in metadata

    env.table.client.delete_receipt_metadata(IMAGE_ID, 1)
    env.process("lines", env.messages("REMOVE", "lines", old=new))
    assert all("merchant_name" not in m for m in env.records("lines").values())


def test_label_messages_recompute_the_receipts_word_labels(env: Env) -> None:
    run = env.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=DIM), "run-1")
    env.process("words", env.messages("INSERT", "words", new=run))
    label = make_label(
        IMAGE_ID, 1, 2, 1, "TAX", validation_status="PENDING", label_proposed_by="llm"
    )
    env.table.client.put_receipt_word_label(label)

    result = env.process("words", env.messages("INSERT", "words", new=label))

    assert result.label_updates == 1  # one word's label keys changed
    record = env.records("words")[word_vector_id(IMAGE_ID, 1, 2, 1)]
    assert (record["label_status"], record["label_proposed_by"]) == ("auto_suggested", "llm")


def test_removals_delete_only_records_whose_rows_are_gone(env: Env) -> None:
    receipt = SyntheticReceipt(IMAGE_ID, 1, dimension=DIM)
    run = env.add_receipt(receipt, "run-1")
    env.process("words", env.messages("INSERT", "words", new=run))
    removed, recreated = receipt.word_rows[0], receipt.word_rows[1]
    env.table.client.delete_receipt_word(IMAGE_ID, 1, removed.line_id, removed.word_id)
    # The second word was removed and written again: its REMOVE must not delete it.
    messages = env.messages("REMOVE", "words", old=removed) + env.messages(
        "REMOVE", "words", old=recreated
    )

    result = env.process("words", messages)

    assert result.records_deleted == 1
    records = env.records("words")
    assert word_vector_id(IMAGE_ID, 1, 1, 1) not in records
    assert word_vector_id(IMAGE_ID, 1, 1, 2) in records


def test_receipt_removal_deletes_all_its_records_once_the_row_is_gone(env: Env) -> None:
    first = SyntheticReceipt(IMAGE_ID, 1, dimension=DIM)
    second = SyntheticReceipt(OTHER_IMAGE_ID, 1, dimension=DIM)
    for n, receipt in enumerate((first, second)):
        run = env.add_receipt(receipt, f"run-{n}")
        env.process("lines", env.messages("INSERT", "lines", new=run))
    message = env.messages("REMOVE", "lines", old=first.receipt)

    kept = env.process("lines", message)  # the receipt row still exists
    assert kept.records_deleted == 0
    env.table.client.delete_receipt(IMAGE_ID, 1)
    gone = env.process("lines", message)

    assert gone.records_deleted == 3
    assert {m["image_id"] for m in env.records("lines").values()} == {OTHER_IMAGE_ID}


def test_a_bad_delta_fails_only_its_receipts_run_messages(env: Env) -> None:
    good = env.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=DIM), "run-good")
    broken = env.add_receipt(SyntheticReceipt(OTHER_IMAGE_ID, 1, dimension=DIM), "run-broken")
    boto3.client("s3").delete_object(Bucket=BUCKET, Key="words/delta/run-broken/delta.tar.gz")
    messages = env.messages("INSERT", "words", new=good) + env.messages(
        "INSERT", "words", new=broken
    )

    result = env.process("words", messages)

    (failure,) = result.failures
    assert failure.message_id == messages[1][0]
    assert "run-broken" in failure.reason
    assert "no delta" in failure.reason
    assert {m["image_id"] for m in env.records("words").values()} == {IMAGE_ID}
    stored = env.table.client.get_compaction_run(OTHER_IMAGE_ID, 1, "run-broken")
    assert stored.words_state is CompactionState.FAILED
    assert "no delta" in (stored.words_error or "")


def test_messages_for_another_collection_fail(env: Env) -> None:
    messages = env.messages("REMOVE", "lines", old=SyntheticReceipt(IMAGE_ID, 1).receipt)
    result = env.process("words", messages)
    assert result.failures[0].reason == "message for lines sent to words"


def test_a_run_row_deleted_before_marking_leaves_the_other_runs_marked(env: Env) -> None:
    gone = env.add_receipt(SyntheticReceipt(OTHER_IMAGE_ID, 1, dimension=DIM), "run-gone")
    kept = env.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=DIM), "run-kept")
    messages = env.messages("INSERT", "words", new=gone) + env.messages("INSERT", "words", new=kept)
    result = process_collection_updates(
        messages,
        "words",
        env.chroma,
        env.table.client,
        bucket=BUCKET,
        dimension=DIM,
        logger=logging.getLogger("test"),
    )
    # The first receipt is deleted (its run row with it) before the runs are marked.
    env.table.client.delete_compaction_run(OTHER_IMAGE_ID, 1, "run-gone")

    assert record_run_outcomes(env.table.client, result) == {}
    stored = env.table.client.get_compaction_run(IMAGE_ID, 1, "run-kept")
    assert stored.words_state is CompactionState.COMPLETED


class _RefusesOneReceipt:
    """The real client, whose collections refuse any update (or, with ``call="get"``,
    any read) that touches one receipt's records inside chromadb's own collection (as a
    store refusing a call would), behind the product's real ``ClientCollection``: the
    batch writes all receipts in one call."""

    def __init__(self, client: ChromaClient, refused_image_id: str, call: str = "update") -> None:
        self._client = client
        self._refused = refused_image_id
        self._call = call

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_or_create_collection(self, name: str) -> ClientCollection:
        inner = self._client.get_or_create_collection(name).collection
        refused, call = self._refused, self._call

        class Refusing:
            def __getattr__(self, attribute: str) -> Any:
                if attribute != call:
                    return getattr(inner, attribute)

                def refusing(**arguments: Any) -> Any:  # by ids or by a where filter
                    named = [*(arguments.get("ids") or []), str(arguments.get("where"))]
                    if any(refused in i for i in named):
                        raise RuntimeError(f"{call} refused")
                    return getattr(inner, call)(**arguments)

                return refusing

        return ClientCollection(Refusing(), self._client)  # type: ignore[arg-type]


def _merged_receipts(env: Env, images: list[str]) -> list[SyntheticReceipt]:
    """A receipt per image, each merged into the words collection."""
    receipts = [SyntheticReceipt(image, 1, dimension=DIM) for image in images]
    for n, receipt in enumerate(receipts):
        env.process("words", env.messages("INSERT", "words", new=env.add_receipt(receipt, f"r{n}")))
    return receipts


def _validated_label(env: Env, image_id: str) -> list[tuple[str, StreamMessage]]:
    """A VALID label on the receipt's first word, written; its message."""
    label = make_label(image_id, 1, 1, 1, "TOTAL", validation_status="VALID")
    env.table.client.put_receipt_word_label(label)
    return env.messages("INSERT", "words", new=label)


def _process_refusing(
    env: Env, messages: list[tuple[str, StreamMessage]], call: str
) -> CollectionUpdateResult:
    """The messages applied through a client refusing ``call`` on OTHER_IMAGE_ID's records."""
    return process_collection_updates(
        messages,
        "words",
        _RefusesOneReceipt(env.chroma, OTHER_IMAGE_ID, call),  # type: ignore[arg-type]
        env.table.client,
        bucket=BUCKET,
        dimension=DIM,
        logger=logging.getLogger("test"),
    )


def test_one_receipt_whose_write_fails_fails_only_its_messages(env: Env) -> None:
    """The apply writes every receipt's keys in one update; when that call fails, each
    receipt is written alone, so only the refused receipt's messages fail."""
    _merged_receipts(env, [IMAGE_ID, OTHER_IMAGE_ID])
    messages = [*_validated_label(env, IMAGE_ID), *_validated_label(env, OTHER_IMAGE_ID)]

    result = _process_refusing(env, messages, "update")

    assert [f.message_id for f in result.failures] == [messages[1][0]]
    assert "update refused" in result.failures[0].reason
    assert result.label_updates == 1
    records = env.records("words")
    assert records[word_vector_id(IMAGE_ID, 1, 1, 1)]["label_status"] == "validated"
    assert "label_status" not in records[word_vector_id(OTHER_IMAGE_ID, 1, 1, 1)]


def test_one_receipt_whose_records_cannot_be_read_fails_only_its_messages(env: Env) -> None:
    """The apply reads the receipts' records a few at a time; a receipt whose read fails
    (here a removed receipt's listing of its records) fails its own messages with an error
    naming it, and every other receipt's keys are written."""
    images = [IMAGE_ID, OTHER_IMAGE_ID, *(str(uuid.UUID(int=n, version=4)) for n in (7, 8))]
    messages = []
    for receipt in _merged_receipts(env, images):
        if receipt.image_id == OTHER_IMAGE_ID:  # removed: its read lists its records
            env.table.client.delete_receipt(OTHER_IMAGE_ID, 1)
            messages += env.messages("REMOVE", "words", old=receipt.receipt)
        else:
            messages += _validated_label(env, receipt.image_id)

    result = _process_refusing(env, messages, "get")

    assert [f.message_id for f in result.failures] == [messages[1][0]]
    reason = result.failures[0].reason
    assert f"deletion failed for image {OTHER_IMAGE_ID} receipt 1" in reason
    assert "get refused" in reason
    assert result.label_updates == 3
    assert result.records_deleted == 0
    records = env.records("words")
    for image in images:
        record = records[word_vector_id(image, 1, 1, 1)]  # the removed receipt's is kept
        assert record.get("label_status") == (None if image == OTHER_IMAGE_ID else "validated")
