"""An independent oracle for SPEC revision 2, §2 (rows), §3.2 (relevant fields), §4 (ids and
metadata) and §5.4 (convergence).

Everything here is derived from the SPEC text alone: it imports nothing but the standard
library (``test_oracle_is_independent.py`` enforces that), so a misreading of the SPEC in
the product cannot leak into the expectation. It holds

- a model of the table: receipts with their lines, words, word labels, merchant metadata
  and compaction runs, as plain dataclasses (:class:`TableModel`);
- the serialisation of the model's rows to raw DynamoDB items (``{"S": ...}`` typed form)
  with the keys, ``TYPE``, attributes and index keys of §2 (:meth:`TableModel.items`);
- the Chroma ids of §4, and the contents of an embedding delta of a run: a vector, document
  and ``text`` that are a deterministic function of (run_id, record id), so the vector a
  record holds tells which run supplied it;
- the expected contents of each collection once every message has been applied
  (:func:`expected_collection`): id -> the run whose vector it holds, its document and its
  complete metadata.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

COLLECTIONS = ("lines", "words")
VALIDATION_STATUSES = ("NONE", "PENDING", "VALID", "INVALID", "NEEDS_REVIEW")

IMAGE_ID_RE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[45][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.ASCII
)
LABEL_RE = re.compile(r"[A-Z0-9_]{1,34}", re.ASCII)
MAX_ID = 99_999
GSI1PK_LABEL_WIDTH = 40

# §3.2: the fields whose change makes a MODIFY produce a message.
RELEVANT_METADATA_FIELDS = (
    "canonical_merchant_name",
    "merchant_name",
    "merchant_category",
    "address",
    "phone_number",
    "place_id",
)
RELEVANT_LABEL_FIELDS = (
    "label",
    "reasoning",
    "validation_status",
    "label_proposed_by",
    "label_consolidated_from",
)
# §4: metadata keys.
MERCHANT_KEYS = (
    "merchant_name",
    "canonical_merchant_name",
    "merchant_category",
    "address",
    "phone_number",
    "place_id",
    "merchant_updated_at",
)
LABEL_KEYS = (
    "label_status",
    "valid_labels_array",
    "invalid_labels_array",
    "label_proposed_by",
    "label_validated_at",
    "labels_updated_at",
)
PROVENANCE_KEYS = ("embedding_run_id", "embedding_created_at")


# --- timestamps (§2, §4 rev 2) -------------------------------------------------------------


def parse_instant(value: object) -> datetime | None:
    """A row's timestamp as an instant: ``datetime.fromisoformat``, naive taken as UTC.

    None when the value is not a string ``fromisoformat`` accepts (an invalid row).
    """
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def greatest_timestamp(values: Iterable[str]) -> str | None:
    """The string of the greatest instant; ties between instants: the greater string."""
    best: tuple[datetime, str] | None = None
    for value in values:
        moment = parse_instant(value)
        if moment is None:
            raise ValueError(f"not a timestamp: {value!r}")
        if best is None or (moment, value) > best:
            best = (moment, value)
    return None if best is None else best[1]


# --- keys and ids (§2, §4) -----------------------------------------------------------------


def _check_image_id(image_id: str) -> str:
    if not IMAGE_ID_RE.fullmatch(image_id):
        raise ValueError(f"image_id must be a lower-case UUID v4/v5, got {image_id!r}")
    return image_id


def _check_id(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise ValueError(f"{name} must be an integer in 1..{MAX_ID}, got {value!r}")
    return value


def image_pk(image_id: str) -> str:
    return f"IMAGE#{_check_image_id(image_id)}"


def receipt_sk(receipt_id: int) -> str:
    return f"RECEIPT#{_check_id(receipt_id, 'receipt_id'):05d}"


def line_sk(receipt_id: int, line_id: int) -> str:
    return f"{receipt_sk(receipt_id)}#LINE#{_check_id(line_id, 'line_id'):05d}"


def word_sk(receipt_id: int, line_id: int, word_id: int) -> str:
    return f"{line_sk(receipt_id, line_id)}#WORD#{_check_id(word_id, 'word_id'):05d}"


def label_sk(receipt_id: int, line_id: int, word_id: int, label: str) -> str:
    if not LABEL_RE.fullmatch(label):
        raise ValueError(f"label must match [A-Z0-9_]{{1,34}}, got {label!r}")
    return f"{word_sk(receipt_id, line_id, word_id)}#LABEL#{label}"


def metadata_sk(receipt_id: int) -> str:
    return f"{receipt_sk(receipt_id)}#METADATA"


def run_sk(receipt_id: int, run_id: str) -> str:
    if not run_id or "#" in run_id:
        raise ValueError(f"run_id must be a non-empty string without '#', got {run_id!r}")
    return f"{receipt_sk(receipt_id)}#COMPACTION_RUN#{run_id}"


def line_record_id(image_id: str, receipt_id: int, line_id: int) -> str:
    """§4: ``IMAGE#<image_id>#RECEIPT#rrrrr#LINE#lllll``."""
    return f"{image_pk(image_id)}#{line_sk(receipt_id, line_id)}"


def word_record_id(image_id: str, receipt_id: int, line_id: int, word_id: int) -> str:
    """§4: ``IMAGE#<image_id>#RECEIPT#rrrrr#LINE#lllll#WORD#wwwww``."""
    return f"{image_pk(image_id)}#{word_sk(receipt_id, line_id, word_id)}"


_RECORD_ID_RE = re.compile(
    r"IMAGE#([0-9a-f-]{36})#RECEIPT#(\d{5})#LINE#(\d{5})(?:#WORD#(\d{5}))?", re.ASCII
)


def parse_record_id(record_id: str) -> tuple[str, str, int, int, int | None]:
    """(collection, image_id, receipt_id, line_id, word_id or None) of a §4 id."""
    match = _RECORD_ID_RE.fullmatch(record_id)
    if match is None or not IMAGE_ID_RE.fullmatch(match.group(1)):
        raise ValueError(f"not a SPEC §4 record id: {record_id!r}")
    receipt_id, line_id = int(match.group(2)), int(match.group(3))
    word_id = None if match.group(4) is None else int(match.group(4))
    for value, name in ((receipt_id, "receipt_id"), (line_id, "line_id"), (word_id, "word_id")):
        if value is not None:
            _check_id(value, name)
    collection = "lines" if word_id is None else "words"
    return collection, match.group(1), receipt_id, line_id, word_id


# --- the DynamoDB typed form ---------------------------------------------------------------


def typed(value: Any) -> dict[str, Any]:
    """A Python value as a DynamoDB attribute value (``{"S": ...}``, ``{"N": ...}``, ...)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int | float):
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    if isinstance(value, Mapping):
        return {"M": {str(k): typed(v) for k, v in value.items() if v is not None}}
    if isinstance(value, set | frozenset):
        if not value or not all(isinstance(v, str) for v in value):
            raise ValueError(f"only non-empty string sets are written, got {value!r}")
        return {"SS": sorted(value)}
    if isinstance(value, list | tuple):
        return {"L": [typed(v) for v in value]}
    raise TypeError(f"cannot write {value!r} as a DynamoDB attribute")


def typed_item(attributes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Canonical items omit attributes whose value is None (§2)."""
    return {name: typed(value) for name, value in attributes.items() if value is not None}


def _point(x: float, y: float) -> dict[str, float]:
    return {"x": x, "y": y}


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
        "top_left": _point(x, y + 0.04),
        "top_right": _point(x + 0.5, y + 0.04),
        "bottom_left": _point(x, y),
        "bottom_right": _point(x + 0.5, y),
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
            "top_left": _point(0.0, 1.0),
            "top_right": _point(1.0, 1.0),
            "bottom_left": _point(0.0, 0.0),
            "bottom_right": _point(1.0, 0.0),
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


# --- reading a table back into a model (§2) ------------------------------------------------

_IMAGE_PK_RE = re.compile(r"IMAGE#(.+)", re.ASCII)
_ROW_SK_RE = re.compile(
    r"RECEIPT#(?P<receipt>\d{5})(?:"
    r"#LINE#(?P<line>\d{5})(?:#WORD#(?P<word>\d{5})(?:#LABEL#(?P<label>[A-Z0-9_]{1,34}))?)?"
    r"|#METADATA(?P<metadata>)"
    r"|#COMPACTION_RUN#(?P<run>[^#]+)"
    r")?",
    re.ASCII,
)
RunContents = tuple[frozenset[int], frozenset[tuple[int, int]]]


def plain(value: Mapping[str, Any]) -> Any:
    """A DynamoDB attribute value (``{"S": ...}`` form) as a Python value."""
    (kind, data), *rest = value.items()
    if rest:
        raise ValueError(f"an attribute value has one type, got {sorted(value)}")
    if kind == "S":
        return data
    if kind == "N":
        number = float(data)
        return int(number) if number.is_integer() and "." not in data else number
    if kind in ("BOOL", "NULL"):
        return None if kind == "NULL" else bool(data)
    if kind == "M":
        return {name: plain(inner) for name, inner in data.items()}
    if kind == "L":
        return [plain(inner) for inner in data]
    if kind == "SS":
        return frozenset(data)
    raise ValueError(f"attribute type {kind!r} is not used by the rows of §2")


def model_from_items(
    items: Iterable[Mapping[str, Mapping[str, Any]]], run_contents: Mapping[str, RunContents]
) -> TableModel:
    """The receipts that the table's ``IMAGE#`` rows describe, read by their keys (§2).

    A CompactionRun row names its deltas but not what they hold, so ``run_contents``
    gives, per run id, the line ids and (line, word) ids its deltas hold — what the
    producer wrote. Rows of other partitions (locks, pointers) are ignored.
    """
    model = TableModel()
    for item in items:
        pk_match = _IMAGE_PK_RE.fullmatch(plain(item["PK"]))
        if pk_match is None:
            continue
        image_id = _check_image_id(pk_match.group(1))
        sk = plain(item["SK"])
        match = _ROW_SK_RE.fullmatch(sk)
        if match is None:
            raise ValueError(f"IMAGE row with a sort key §2 does not define: {sk!r}")
        attributes = {name: plain(value) for name, value in item.items()}
        receipt = model.receipt(image_id, int(match["receipt"]))
        _add_row(receipt, match, attributes, run_contents)
    return model


def _add_row(
    receipt: ReceiptState,
    key: re.Match[str],
    attributes: Mapping[str, Any],
    run_contents: Mapping[str, RunContents],
) -> None:
    text = attributes.get("text", "")
    if key["label"] is not None:
        line_id, word_id = int(key["line"]), int(key["word"])
        receipt.labels[(line_id, word_id, key["label"])] = LabelRow(
            line_id=line_id,
            word_id=word_id,
            label=key["label"],
            timestamp_added=attributes.get("timestamp_added", ""),
            validation_status=attributes.get("validation_status"),
            label_proposed_by=attributes.get("label_proposed_by"),
            reasoning=attributes.get("reasoning"),
            label_consolidated_from=attributes.get("label_consolidated_from"),
        )
    elif key["word"] is not None:
        word = WordRow(int(key["line"]), int(key["word"]), text)
        receipt.words[(word.line_id, word.word_id)] = word
    elif key["line"] is not None:
        receipt.lines[int(key["line"])] = LineRow(int(key["line"]), text)
    elif key["metadata"] is not None:
        receipt.metadata = MetadataRow(
            merchant_name=attributes.get("merchant_name", ""),
            place_id=attributes.get("place_id", ""),
            timestamp=attributes.get("timestamp", ""),
            canonical_merchant_name=attributes.get("canonical_merchant_name"),
            merchant_category=attributes.get("merchant_category"),
            address=attributes.get("address"),
            phone_number=attributes.get("phone_number"),
        )
    elif key["run"] is not None:
        run_id = key["run"]
        if run_id not in run_contents:
            raise KeyError(f"run {run_id}: what its deltas hold was not given")
        line_ids, word_ids = run_contents[run_id]
        receipt.runs[run_id] = RunRow(
            run_id=run_id,
            created_at=attributes["created_at"],
            line_ids=line_ids,
            word_ids=word_ids,
            lines_delta_prefix=attributes.get("lines_delta_prefix", ""),
            words_delta_prefix=attributes.get("words_delta_prefix", ""),
        )
    else:
        receipt.exists = True
