"""The model of the table (receipts and their rows) and its rows as raw items (§2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .contract import (
    GSI1PK_LABEL_WIDTH,
    RELEVANT_LABEL_FIELDS,
    RELEVANT_METADATA_FIELDS,
    VALIDATION_STATUSES,
    image_pk,
    label_sk,
    line_sk,
    metadata_sk,
    parse_instant,
    point,
    receipt_sk,
    run_sk,
    typed_item,
    word_sk,
)

# --- the table model -----------------------------------------------------------------------


@dataclass(frozen=True)
class LineRow:
    line_id: int
    text: str


@dataclass(frozen=True)
class WordRow:
    line_id: int
    word_id: int
    text: str


@dataclass(frozen=True)
class LabelRow:
    """A ReceiptWordLabel; ``validation_status`` None means the attribute is absent (NONE)."""

    line_id: int
    word_id: int
    label: str
    timestamp_added: str
    validation_status: str | None = "NONE"
    label_proposed_by: str | None = None
    reasoning: str | None = None
    label_consolidated_from: str | None = None

    @property
    def status(self) -> str:
        return self.validation_status or "NONE"

    def relevant(self) -> dict[str, str | None]:
        """§3.2 values after normalisation ("" and None are both empty; a missing
        ``validation_status`` is NONE)."""
        values = {name: getattr(self, name) or None for name in RELEVANT_LABEL_FIELDS}
        values["validation_status"] = self.status
        return values

    @property
    def valid(self) -> bool:
        """Whether the attributes the compactor uses validate (§5.4 invalid rows)."""
        return parse_instant(self.timestamp_added) is not None and (
            self.status in VALIDATION_STATUSES
        )


@dataclass(frozen=True)
class MetadataRow:
    merchant_name: str
    place_id: str
    timestamp: str
    validation_status: str = "MATCHED"
    canonical_merchant_name: str | None = None
    merchant_category: str | None = None
    address: str | None = None
    phone_number: str | None = None
    validated_by: str | None = None
    matched_fields: frozenset[str] = frozenset()

    def relevant(self) -> dict[str, str | None]:
        return {name: getattr(self, name) or None for name in RELEVANT_METADATA_FIELDS}

    @property
    def valid(self) -> bool:
        return parse_instant(self.timestamp) is not None


@dataclass(frozen=True)
class RunRow:
    """A CompactionRun and the content of its two deltas (which ids each holds)."""

    run_id: str
    created_at: str
    line_ids: frozenset[int]
    word_ids: frozenset[tuple[int, int]]
    lines_delta_prefix: str
    words_delta_prefix: str

    @property
    def order(self) -> tuple[datetime, str]:
        """§5.4: runs are ordered by (created_at as an instant, run_id)."""
        moment = parse_instant(self.created_at)
        if moment is None:
            raise ValueError(f"run {self.run_id} has no valid created_at: {self.created_at!r}")
        return (moment, self.run_id)

    def delta_prefix(self, collection: str) -> str:
        return self.lines_delta_prefix if collection == "lines" else self.words_delta_prefix


@dataclass
class ReceiptState:
    """One receipt's rows. ``exists`` is the Receipt row itself; the other rows may exist
    without it (they are still rows of the table)."""

    image_id: str
    receipt_id: int
    exists: bool = True
    lines: dict[int, LineRow] = field(default_factory=dict)
    words: dict[tuple[int, int], WordRow] = field(default_factory=dict)
    labels: dict[tuple[int, int, str], LabelRow] = field(default_factory=dict)
    metadata: MetadataRow | None = None
    runs: dict[str, RunRow] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        return (self.image_id, self.receipt_id)


@dataclass
class TableModel:
    receipts: dict[tuple[str, int], ReceiptState] = field(default_factory=dict)

    def receipt(self, image_id: str, receipt_id: int) -> ReceiptState:
        return self.receipts.setdefault(
            (image_id, receipt_id), ReceiptState(image_id, receipt_id, exists=False)
        )

    def items(self) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
        """Every row of the model as a raw DynamoDB item, by (PK, SK)."""
        items: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        for receipt in self.receipts.values():
            for item in receipt_items(receipt):
                items[(item["PK"]["S"], item["SK"]["S"])] = item
        return items


# --- rows as items (§2) --------------------------------------------------------------------


def _geometry(index: int) -> dict[str, Any]:
    x, y = 0.1, round(0.05 * index, 2)
    return {
        "bounding_box": {"x": x, "y": y, "width": 0.5, "height": 0.04},
        "top_left": point(x, y + 0.04),
        "top_right": point(x + 0.5, y + 0.04),
        "bottom_left": point(x, y),
        "bottom_right": point(x + 0.5, y),
        "angle_degrees": 0.0,
        "angle_radians": 0.0,
        "confidence": 0.98,
    }


def receipt_item(image_id: str, receipt_id: int) -> dict[str, dict[str, Any]]:
    pk, sk = image_pk(image_id), receipt_sk(receipt_id)
    return typed_item(
        {
            "PK": pk,
            "SK": sk,
            "TYPE": "RECEIPT",
            "width": 800,
            "height": 1200,
            "timestamp_added": "2026-11-28T09:00:00.000000+00:00",
            "raw_s3_bucket": "raw-receipts",
            "raw_s3_key": f"raw/{image_id}/{receipt_id}.png",
            "top_left": point(0.0, 1.0),
            "top_right": point(1.0, 1.0),
            "bottom_left": point(0.0, 0.0),
            "bottom_right": point(1.0, 0.0),
            "GSI1PK": pk,
            "GSI1SK": sk,
            "GSI2PK": "RECEIPT",
            "GSI2SK": f"{pk}#{sk}",
        }
    )


def line_item(image_id: str, receipt_id: int, line: LineRow) -> dict[str, dict[str, Any]]:
    pk, sk = image_pk(image_id), line_sk(receipt_id, line.line_id)
    return typed_item(
        {
            "PK": pk,
            "SK": sk,
            "TYPE": "RECEIPT_LINE",
            "text": line.text,
            **_geometry(line.line_id),
            "embedding_status": "SUCCESS",
            "is_noise": False,
            "GSI1PK": "EMBEDDING_STATUS#SUCCESS",
            "GSI1SK": f"LINE#{pk}#{sk}",
            "GSI3PK": f"{pk}#{receipt_sk(receipt_id)}",
            "GSI3SK": "LINE",
        }
    )


def word_item(image_id: str, receipt_id: int, word: WordRow) -> dict[str, dict[str, Any]]:
    pk, sk = image_pk(image_id), word_sk(receipt_id, word.line_id, word.word_id)
    return typed_item(
        {
            "PK": pk,
            "SK": sk,
            "TYPE": "RECEIPT_WORD",
            "text": word.text,
            **_geometry(word.line_id * 10 + word.word_id),
            "embedding_status": "SUCCESS",
            "is_noise": False,
            "GSI1PK": "EMBEDDING_STATUS#SUCCESS",
            "GSI1SK": f"WORD#{pk}#{sk}",
            "GSI2PK": "RECEIPT",
            "GSI2SK": f"{pk}#{sk}",
            "GSI3PK": f"{pk}#{receipt_sk(receipt_id)}",
            "GSI3SK": "WORD",
        }
    )


def label_item(image_id: str, receipt_id: int, label: LabelRow) -> dict[str, dict[str, Any]]:
    pk = image_pk(image_id)
    sk = label_sk(receipt_id, label.line_id, label.word_id, label.label)
    word_path = f"{pk}#{word_sk(receipt_id, label.line_id, label.word_id)}"
    return typed_item(
        {
            "PK": pk,
            "SK": sk,
            "TYPE": "RECEIPT_WORD_LABEL",
            "reasoning": label.reasoning,
            "timestamp_added": label.timestamp_added,
            "validation_status": label.validation_status,
            "label_proposed_by": label.label_proposed_by,
            "label_consolidated_from": label.label_consolidated_from,
            "GSI1PK": f"LABEL#{label.label}".ljust(GSI1PK_LABEL_WIDTH, "_"),
            "GSI1SK": word_path,
            "GSI2PK": "RECEIPT",
            "GSI2SK": word_path,
            "GSI3PK": f"VALIDATION_STATUS#{label.status}",
            "GSI3SK": f"{word_path}#LABEL#{label.label}",
        }
    )


def metadata_item(
    image_id: str, receipt_id: int, metadata: MetadataRow
) -> dict[str, dict[str, Any]]:
    pk, sk = image_pk(image_id), metadata_sk(receipt_id)
    path = f"{pk}#{sk}"
    index_name = (metadata.canonical_merchant_name or metadata.merchant_name).upper()
    return typed_item(
        {
            "PK": pk,
            "SK": sk,
            "TYPE": "RECEIPT_METADATA",
            "place_id": metadata.place_id,
            "merchant_name": metadata.merchant_name,
            "merchant_category": metadata.merchant_category,
            "address": metadata.address,
            "phone_number": metadata.phone_number,
            "matched_fields": set(metadata.matched_fields) if metadata.matched_fields else None,
            "validated_by": metadata.validated_by,
            "timestamp": metadata.timestamp,
            "validation_status": metadata.validation_status,
            "canonical_merchant_name": metadata.canonical_merchant_name,
            "GSI1PK": f"MERCHANT#{index_name.replace(' ', '_')}",
            "GSI1SK": path,
            "GSI2PK": f"PLACE#{metadata.place_id}" if metadata.place_id else None,
            "GSI2SK": path if metadata.place_id else None,
            "GSI3PK": "MERCHANT_VALIDATION",
            "GSI3SK": f"STATUS#{metadata.validation_status}",
        }
    )


def run_item(image_id: str, receipt_id: int, run: RunRow) -> dict[str, dict[str, Any]]:
    """A new CompactionRun as a producer writes it: both collections PENDING."""
    return typed_item(
        {
            "PK": image_pk(image_id),
            "SK": run_sk(receipt_id, run.run_id),
            "TYPE": "COMPACTION_RUN",
            "run_id": run.run_id,
            "image_id": image_id,
            "receipt_id": receipt_id,
            "lines_delta_prefix": run.lines_delta_prefix,
            "words_delta_prefix": run.words_delta_prefix,
            "lines_state": "PENDING",
            "words_state": "PENDING",
            "lines_merged_vectors": 0,
            "words_merged_vectors": 0,
            "created_at": run.created_at,
            "GSI1PK": "RUNS",
            "GSI1SK": f"CREATED_AT#{run.created_at}",
        }
    )


def receipt_items(receipt: ReceiptState) -> list[dict[str, dict[str, Any]]]:
    """The receipt's rows in the order a producer writes them (runs last)."""
    image_id, receipt_id = receipt.key
    items = [receipt_item(image_id, receipt_id)] if receipt.exists else []
    items += [line_item(image_id, receipt_id, line) for line in receipt.lines.values()]
    items += [word_item(image_id, receipt_id, word) for word in receipt.words.values()]
    if receipt.metadata is not None:
        items.append(metadata_item(image_id, receipt_id, receipt.metadata))
    items += [label_item(image_id, receipt_id, label) for label in receipt.labels.values()]
    items += [run_item(image_id, receipt_id, run) for run in receipt.runs.values()]
    return items
