"""What the contract says a published collection must hold, computed by the independent
``spec_oracle``: the effect of one acknowledged message (I3), and the whole collection
once every message was acknowledged (I2)."""

from __future__ import annotations

from typing import Any

from receipt_compaction_tools.testing import spec_oracle as oracle
from receipt_compaction_tools.testing.explorer.messages import COLLECTION, QueuedMessage
from receipt_compaction_tools.testing.explorer.scenario import DIMENSION, Scenario
from receipt_compaction_tools.testing.published import PublishedRecord

Records = dict[str, PublishedRecord]
ABSENT = "<absent>"


def _receipt_of(record_id: str) -> tuple[str, int]:
    _, image_id, receipt_id, _, _ = oracle.parse_record_id(record_id)
    return image_id, receipt_id


def _holder_problem(
    record_id: str, record: PublishedRecord, run: oracle.RunRow, scenario: Scenario
) -> str | None:
    """The record must hold the vector of ``run`` or of a newer run holding it (§5.4)."""
    holder_id = record.metadata.get("embedding_run_id")
    holder = scenario.runs.get(str(holder_id))
    if holder is None:
        return f"{record_id} names run {holder_id!r}, which made no delta here"
    image_id, receipt_id, holder_run = holder
    ids = oracle.run_record_ids(image_id, receipt_id, holder_run, COLLECTION)
    if (image_id, receipt_id) != _receipt_of(record_id) or record_id not in ids:
        return f"{record_id} names run {holder_id}, whose delta does not hold it"
    if holder_run.order < run.order:
        return f"{record_id} still holds older run {holder_id}, not {run.run_id}"
    expected = oracle.embedding(holder_run.run_id, record_id, DIMENSION)
    if max(abs(a - b) for a, b in zip(expected, record.embedding, strict=True)) > 1e-6:
        return f"{record_id} names run {holder_id} but holds another vector"
    return None


def effect_problems(
    message: QueuedMessage, records: Records, model: oracle.TableModel, scenario: Scenario
) -> list[str]:
    data: dict[str, Any] = message.entity_data
    if message.entity_type == "COMPACTION_RUN":
        image_id, receipt_id, run = scenario.runs[str(data["run_id"])]
        receipt = model.receipts.get((image_id, receipt_id))
        problems = []
        for line_id, word_id in sorted(run.word_ids):
            if receipt is None or not receipt.exists or (line_id, word_id) not in receipt.words:
                continue
            record_id = oracle.word_record_id(image_id, receipt_id, line_id, word_id)
            if record_id not in records:
                problems.append(f"{record_id} of run {run.run_id} is missing")
                continue
            problem = _holder_problem(record_id, records[record_id], run, scenario)
            if problem is not None:
                problems.append(problem)
        return problems
    key = (str(data["image_id"]), int(data["receipt_id"]))
    receipt = model.receipts[key]
    if message.entity_type == "RECEIPT_METADATA":
        want = oracle.merchant_keys(receipt.metadata)
        return [
            f"{record_id}: merchant keys {got} != {want}"
            for record_id, record in sorted(records.items())
            if _receipt_of(record_id) == key
            for got in [{k: v for k, v in record.metadata.items() if k in oracle.MERCHANT_KEYS}]
            if got != want
        ]
    word = (int(data["line_id"]), int(data["word_id"]))
    record_id = oracle.word_record_id(*key, *word)
    if message.entity_type == "RECEIPT_WORD_LABEL":
        if record_id not in records:
            return []
        want = oracle.label_keys(
            row for (line, word_no, _), row in receipt.labels.items() if (line, word_no) == word
        )
        metadata = records[record_id].metadata
        got = {k: v for k, v in metadata.items() if k in oracle.LABEL_KEYS}
        return [] if got == want else [f"{record_id}: label keys {got} != {want}"]
    if message.entity_type == "RECEIPT_WORD" and word not in receipt.words:
        return [f"{record_id} was removed but is still there"] if record_id in records else []
    return []


def collection_problems(
    records: Records, model: oracle.TableModel, scenario: Scenario
) -> list[str]:
    expected = oracle.expected_collection(model, COLLECTION)
    problems = [f"missing {record_id}" for record_id in sorted(set(expected) - set(records))]
    problems += [f"extra {record_id}" for record_id in sorted(set(records) - set(expected))]
    for record_id in sorted(set(expected) & set(records)):
        want, got = expected[record_id], records[record_id]
        vector = oracle.embedding(want.run_id, record_id, DIMENSION)
        if max(abs(a - b) for a, b in zip(vector, got.embedding, strict=True)) > 1e-6:
            problems.append(f"stale {record_id}: not the vector of run {want.run_id}")
        if got.document != want.document:
            problems.append(f"stale {record_id}: document {got.document!r} != {want.document!r}")
        if got.metadata != want.metadata:
            keys = sorted(
                k
                for k in set(got.metadata) | set(want.metadata)
                if got.metadata.get(k) != want.metadata.get(k)
            )
            detail = ", ".join(
                f"{k}={got.metadata.get(k, ABSENT)!r} (want {want.metadata.get(k, ABSENT)!r})"
                for k in keys
            )
            problems.append(f"stale {record_id}: {detail}")
    return problems
