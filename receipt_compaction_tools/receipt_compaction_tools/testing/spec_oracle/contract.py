"""The contract's constants, timestamps (§2, §4), keys and ids (§2, §4) and the DynamoDB
typed form, as the oracle reads them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
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


def check_image_id(image_id: str) -> str:
    if not IMAGE_ID_RE.fullmatch(image_id):
        raise ValueError(f"image_id must be a lower-case UUID v4/v5, got {image_id!r}")
    return image_id


def _check_id(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise ValueError(f"{name} must be an integer in 1..{MAX_ID}, got {value!r}")
    return value


def image_pk(image_id: str) -> str:
    return f"IMAGE#{check_image_id(image_id)}"


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


def point(x: float, y: float) -> dict[str, float]:
    return {"x": x, "y": y}
