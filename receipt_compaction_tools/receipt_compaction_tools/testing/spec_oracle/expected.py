"""Deltas as a function of (run, record), and what each collection holds once every
message has been applied (§4, §5.4)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .contract import (
    COLLECTIONS,
    LABEL_KEYS,
    MERCHANT_KEYS,
    PROVENANCE_KEYS,
    greatest_timestamp,
    line_record_id,
    parse_instant,
    parse_record_id,
    word_record_id,
)
from .model import (
    LabelRow,
    MetadataRow,
    ReceiptState,
    RunRow,
    TableModel,
)

# --- deltas: deterministic vectors per (run, record) ---------------------------------------


def embedding(run_id: str, record_id: str, dimension: int) -> list[float]:
    """The vector run ``run_id`` produced for ``record_id``: multiples of 1/1024 in
    [-1, 1) (exact in float32), never the zero vector."""
    digest = hashlib.sha256(f"{run_id}|{record_id}".encode()).digest()
    while len(digest) < 2 * dimension:
        digest += hashlib.sha256(digest).digest()
    values = [
        (int.from_bytes(digest[2 * i : 2 * i + 2], "big") % 2048 - 1024) / 1024
        for i in range(dimension)
    ]
    if not any(values):
        values[0] = 1.0
    return values


def record_text(run_id: str, record_id: str) -> str:
    """The ``text`` (and document) run ``run_id`` produced for ``record_id``."""
    _, _, _, line_id, word_id = parse_record_id(record_id)
    where = f"L{line_id}" if word_id is None else f"L{line_id}W{word_id}"
    return f"{where}@{run_id[:8]}"


def run_record_ids(image_id: str, receipt_id: int, run: RunRow, collection: str) -> list[str]:
    if collection == "lines":
        return [line_record_id(image_id, receipt_id, n) for n in sorted(run.line_ids)]
    return [word_record_id(image_id, receipt_id, *k) for k in sorted(run.word_ids)]


def delta_records(
    image_id: str, receipt_id: int, run: RunRow, collection: str, dimension: int
) -> list[tuple[str, list[float], str, dict[str, Any]]]:
    """The (id, embedding, document, metadata) records of the run's delta."""
    records = []
    for record_id in run_record_ids(image_id, receipt_id, run, collection):
        text = record_text(run.run_id, record_id)
        records.append(
            (record_id, embedding(run.run_id, record_id, dimension), text, {"text": text})
        )
    return records


# --- expected metadata (§4) ----------------------------------------------------------------


def merchant_keys(metadata: MetadataRow | None) -> dict[str, Any]:
    """§4 merchant keys; an invalid row counts as absent; empty values are absent."""
    if metadata is None or not metadata.valid:
        return {}
    values = {key: getattr(metadata, key, None) for key in MERCHANT_KEYS}
    values["merchant_updated_at"] = metadata.timestamp
    return {key: value for key, value in values.items() if value not in (None, "")}


def label_keys(labels: Iterable[LabelRow]) -> dict[str, Any]:
    """§4 label keys of one word from its valid label rows; absent keys are left out."""
    rows = [row for row in labels if row.valid]
    if not rows:
        return {}
    statuses = {row.status for row in rows}
    keys: dict[str, Any] = {}
    if "VALID" in statuses:
        keys["label_status"] = "validated"
    elif "PENDING" in statuses:
        keys["label_status"] = "auto_suggested"
    else:
        keys["label_status"] = "unvalidated"
    valid = sorted({row.label for row in rows if row.status == "VALID"})
    invalid = sorted({row.label for row in rows if row.status == "INVALID"})
    if valid:
        keys["valid_labels_array"] = valid
    if invalid:
        keys["invalid_labels_array"] = invalid
    proposals = [row for row in rows if row.status == "PENDING" and row.label_proposed_by]
    if proposals:
        latest = max(proposals, key=lambda r: (parse_instant(r.timestamp_added), r.label))
        keys["label_proposed_by"] = latest.label_proposed_by
    validated_at = greatest_timestamp(r.timestamp_added for r in rows if r.status == "VALID")
    if validated_at is not None:
        keys["label_validated_at"] = validated_at
    updated_at = greatest_timestamp(r.timestamp_added for r in rows)
    if updated_at is not None:
        keys["labels_updated_at"] = updated_at
    assert set(keys) <= set(LABEL_KEYS), keys
    return keys


@dataclass(frozen=True)
class ExpectedRecord:
    run_id: str
    document: str
    metadata: dict[str, Any]


def newest_run_containing(receipt: ReceiptState, collection: str, record_id: str) -> RunRow | None:
    """§5.4: the newest run of the receipt whose delta holds ``record_id``."""
    image_id, receipt_id = receipt.key
    holding = [
        run
        for run in receipt.runs.values()
        if record_id in run_record_ids(image_id, receipt_id, run, collection)
    ]
    return max(holding, key=lambda run: run.order, default=None)


def expected_collection(model: TableModel, collection: str) -> dict[str, ExpectedRecord]:
    """What collection ``collection`` holds once every message has been applied (§5.4).

    A record exists iff the Receipt row and its line/word row exist and it is in the delta
    of at least one run of the receipt; vector, document and ``text`` come from the newest
    such run, whose id and ``created_at`` are its provenance keys; merchant and label keys
    are functions of the current rows.
    """
    if collection not in COLLECTIONS:
        raise ValueError(f"unknown collection {collection!r}")
    expected: dict[str, ExpectedRecord] = {}
    for receipt in model.receipts.values():
        if not receipt.exists:
            continue
        image_id, receipt_id = receipt.key
        merchant = merchant_keys(receipt.metadata)
        rows: list[tuple[str, int, int | None]] = (
            [(line_record_id(image_id, receipt_id, n), n, None) for n in receipt.lines]
            if collection == "lines"
            else [(word_record_id(image_id, receipt_id, *k), *k) for k in receipt.words]
        )
        for record_id, line_id, word_id in rows:
            run = newest_run_containing(receipt, collection, record_id)
            if run is None:
                continue
            text = record_text(run.run_id, record_id)
            metadata: dict[str, Any] = {
                "image_id": image_id,
                "receipt_id": receipt_id,
                "line_id": line_id,
                "text": text,
                **merchant,
                "embedding_run_id": run.run_id,
                "embedding_created_at": run.created_at,
            }
            if word_id is not None:
                metadata["word_id"] = word_id
                metadata.update(
                    label_keys(
                        row
                        for (label_line, label_word, _), row in receipt.labels.items()
                        if (label_line, label_word) == (line_id, word_id)
                    )
                )
            assert all(metadata[key] for key in PROVENANCE_KEYS), metadata
            expected[record_id] = ExpectedRecord(run.run_id, text, metadata)
    return expected
