"""Convergence (SPEC §5.4): any permutation of a message stream, with duplicates, gives
the same collections as applying it once in order — and both equal the state the final
table defines (computed independently here)."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import random
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receipt_chroma import ChromaClient, publish_compaction_run
from receipt_chroma.compaction import process_collection_updates, record_run_outcomes
from receipt_chroma.compaction.operations import merchant_metadata, reconstruct_label_metadata
from receipt_chroma.ids import line_vector_id, word_vector_id
from receipt_chroma.testing.synthetic import SyntheticReceipt, embedding_for
from receipt_dynamo import CompactionRun, DynamoClient, DynamoEntity, ReceiptWordLabel, create_table
from receipt_dynamo.testing.factories import IMAGE_ID, make_label, make_metadata
from receipt_dynamo.testing.records import stream_record
from receipt_dynamo_stream import StreamMessage, build_messages

DIM = 4
BUCKET = "convergence"
RECEIPTS = {
    1: SyntheticReceipt(IMAGE_ID, 1, lines=2, words_per_line=2, dimension=DIM),
    2: SyntheticReceipt(IMAGE_ID, 2, lines=2, words_per_line=1, dimension=DIM),
}
LOGGER = logging.getLogger("convergence")
TABLE_NUMBERS = itertools.count()
T0 = "2026-11-28T10:00:00.000000+00:00"
T1 = "2026-11-28T11:00:00.000000+00:00"


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """A pre-uploaded run: its row, and the delta ids per collection."""

    run: CompactionRun
    ids: dict[str, list[str]]


def _upload_runs(dynamo: DynamoClient) -> dict[str, RunSpec]:
    """Runs per receipt: an older complete one and, for receipt 1, a newer partial one."""
    specs = {}
    for name, receipt_id, created, drop in (("a1", 1, T0, 0), ("b1", 1, T1, 1), ("a2", 2, T0, 0)):
        receipt = RECEIPTS[receipt_id]
        lines = receipt.line_records()[: len(receipt.line_records()) - drop]
        words = receipt.word_records()[: len(receipt.word_records()) - drop]
        run = publish_compaction_run(
            dynamo,
            image_id=IMAGE_ID,
            receipt_id=receipt_id,
            run_id=name,
            lines=lines,
            words=words,
            bucket=BUCKET,
        )
        run = dataclasses.replace(run, created_at=created)
        specs[name] = RunSpec(run, {"lines": [r[0] for r in lines], "words": [r[0] for r in words]})
    return specs


class TableModel:
    """The table as a dict, producing the stream record of every change."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], DynamoEntity] = {}
        for receipt in RECEIPTS.values():
            for row in receipt.rows:
                self.rows[(row.pk, row.sk)] = row
        self.records: list[dict[str, Any]] = []

    def put(self, entity: DynamoEntity) -> None:
        old = self.rows.get((entity.pk, entity.sk))
        self.rows[(entity.pk, entity.sk)] = entity
        self.records.append(stream_record("MODIFY" if old else "INSERT", old=old, new=entity))

    def delete(self, entity: DynamoEntity) -> None:
        old = self.rows.pop((entity.pk, entity.sk), None)
        if old is not None:
            self.records.append(stream_record("REMOVE", old=old))

    def of_type(self, kind: type) -> list[Any]:
        return [row for row in self.rows.values() if isinstance(row, kind)]


WORDS = [(r, w.line_id, w.word_id) for r, rec in RECEIPTS.items() for w in rec.word_rows]
LINES = [(r, line.line_id) for r, rec in RECEIPTS.items() for line in rec.line_rows]

operations = st.one_of(
    st.tuples(st.just("run"), st.sampled_from(["a1", "b1", "a2"])),
    st.tuples(
        st.just("metadata"), st.sampled_from([1, 2]), st.sampled_from(["Shop A", "Shop B", ""])
    ),
    st.tuples(st.just("drop_metadata"), st.sampled_from([1, 2])),
    st.tuples(
        st.just("label"),
        st.sampled_from(WORDS),
        st.sampled_from(["TOTAL", "TAX"]),
        st.sampled_from(["PENDING", "VALID", "INVALID"]),
        st.sampled_from([T0, T1]),
    ),
    st.tuples(st.just("drop_label"), st.sampled_from(WORDS), st.sampled_from(["TOTAL", "TAX"])),
    st.tuples(st.just("drop_word"), st.sampled_from(WORDS)),
    st.tuples(st.just("drop_line"), st.sampled_from(LINES)),
    st.tuples(st.just("drop_receipt"), st.sampled_from([1, 2])),
)


def apply(model: TableModel, op: tuple[Any, ...], runs: dict[str, RunSpec]) -> None:
    kind = op[0]
    if kind == "run":
        model.put(runs[op[1]].run)
    elif kind == "metadata":
        model.put(
            make_metadata(IMAGE_ID, op[1], merchant_name=op[2], timestamp=T1 if op[2] else T0)
        )
    elif kind == "drop_metadata":
        model.delete(make_metadata(IMAGE_ID, op[1]))
    elif kind == "label":
        (r, line, word), name, status, when = op[1:]
        model.put(
            make_label(
                IMAGE_ID, r, line, word, name, validation_status=status, timestamp_added=when
            )
        )
    elif kind == "drop_label":
        (r, line, word), name = op[1:]
        model.delete(make_label(IMAGE_ID, r, line, word, name))
    elif kind == "drop_word":
        r, line, word = op[1]
        model.delete(
            next(w for w in RECEIPTS[r].word_rows if (w.line_id, w.word_id) == (line, word))
        )
    elif kind == "drop_line":
        r, line = op[1]
        model.delete(next(x for x in RECEIPTS[r].line_rows if x.line_id == line))
    else:
        model.delete(RECEIPTS[op[1]].receipt)


def expected_state(model: TableModel, runs: dict[str, RunSpec], collection: str) -> dict[str, Any]:
    """The invariant of SPEC §5.4, from the final table alone."""
    state: dict[str, Any] = {}
    for receipt_id, receipt in RECEIPTS.items():
        if (receipt.receipt.pk, receipt.receipt.sk) not in model.rows:
            continue
        added = [
            s
            for s in runs.values()
            if s.run.receipt_id == receipt_id and (s.run.pk, s.run.sk) in model.rows
        ]
        if not added:
            continue
        newest = max(added, key=lambda s: s.run.order_key)
        metadata_row = model.rows.get((receipt.receipt.pk, f"RECEIPT#{receipt_id:05d}#METADATA"))
        labels = [lab for lab in model.of_type(ReceiptWordLabel) if lab.receipt_id == receipt_id]
        if collection == "words":
            live = {
                word_vector_id(IMAGE_ID, receipt_id, w.line_id, w.word_id): w
                for w in receipt.word_rows
                if (w.pk, w.sk) in model.rows
            }
        else:
            live = {
                line_vector_id(IMAGE_ID, receipt_id, x.line_id): x
                for x in receipt.line_rows
                if (x.pk, x.sk) in model.rows
            }
        for vector_id in newest.ids[collection]:
            if vector_id not in live:
                continue
            row = live[vector_id]
            metadata = {
                "image_id": IMAGE_ID,
                "receipt_id": receipt_id,
                "line_id": row.line_id,
                "text": row.text,
                **merchant_metadata(metadata_row),
            }  # type: ignore[arg-type]
            if collection == "words":
                metadata["word_id"] = row.word_id
                metadata.update(
                    reconstruct_label_metadata(
                        [
                            lab
                            for lab in labels
                            if (lab.line_id, lab.word_id) == (row.line_id, row.word_id)
                        ]
                    )
                )
            state[vector_id] = {k: v for k, v in metadata.items() if v is not None}
    return state


def run_delivery(
    model: TableModel, batches: list[list[tuple[str, StreamMessage]]], collection: str
) -> dict[str, Any]:
    """A fresh table holding the final rows, a fresh Chroma, and the batches applied."""
    name = f"t{next(TABLE_NUMBERS)}"
    create_table(name)
    dynamo = DynamoClient(name)
    dynamo.put_entities(model.rows.values())
    with ChromaClient(mode="write") as chroma:
        for batch in batches:
            result = process_collection_updates(
                batch, collection, chroma, dynamo, bucket=BUCKET, dimension=DIM, logger=LOGGER
            )
            assert result.failures == []
            record_run_outcomes(dynamo, result)
        found = chroma.get_or_create_collection(collection).get(include=["metadatas", "embeddings"])
        for vector_id, embedding in zip(found["ids"], found["embeddings"], strict=True):
            assert list(embedding) == pytest.approx(embedding_for(vector_id, DIM), abs=1e-6)
        return dict(zip(found["ids"], found["metadatas"], strict=True))


@pytest.fixture
def uploaded_runs(mocked_aws: None) -> dict[str, RunSpec]:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    create_table("producer")
    return _upload_runs(DynamoClient("producer"))


# ~3 minutes on an idle 2-core machine: room above the suite's 300 s default for a busy one.
@pytest.mark.timeout(900)
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=st.lists(operations, min_size=1, max_size=8),
    order=st.randoms(use_true_random=False),
    collection=st.sampled_from(["lines", "words"]),
)
def test_any_permutation_with_duplicates_converges(
    uploaded_runs: dict[str, RunSpec],
    ops: list[tuple[Any, ...]],
    order: random.Random,
    collection: str,
) -> None:
    model = TableModel()
    for op in ops:
        apply(model, op, uploaded_runs)
    messages = [
        (f"m{n}", message)
        for n, (_, message) in enumerate(build_messages(model.records).messages)
        if message.collection.value == collection
    ]
    in_order = run_delivery(model, [[m] for m in messages], collection)

    shuffled = messages + order.sample(messages, k=len(messages) // 2)  # ~50 % duplicates
    order.shuffle(shuffled)
    batches, start = [], 0
    while start < len(shuffled):
        size = order.randint(1, 4)
        batches.append(shuffled[start : start + size])
        start += size
    permuted = run_delivery(model, batches, collection)

    assert permuted == in_order
    assert in_order == expected_state(model, uploaded_runs, collection)
