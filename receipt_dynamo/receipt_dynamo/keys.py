"""Key formats of the single-table design (contract §2) and the patterns that recognise them.

Every module that builds or parses a key uses these helpers, so there is exactly one
definition of each format.
"""

from __future__ import annotations

import re
from typing import Final

from receipt_dynamo.constants import EntityType

IMAGE_ID_PATTERN: Final = r"[0-9a-f]{8}-[0-9a-f]{4}-[45][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
LABEL_PATTERN: Final = r"[A-Z0-9_]{1,34}"
MAX_ID: Final = 99_999

_IMAGE_ID_RE: Final = re.compile(IMAGE_ID_PATTERN, re.ASCII)
_LABEL_RE: Final = re.compile(LABEL_PATTERN, re.ASCII)

IMAGE_PK_RE: Final = re.compile(rf"IMAGE#({IMAGE_ID_PATTERN})", re.ASCII)

# SK shapes of the entities the pipeline follows (contract §3.1). Groups capture the ids;
# a match with invalid parts (id 00000, a bad label) is a parse failure, not "irrelevant".
SK_PATTERNS: Final[dict[EntityType, re.Pattern[str]]] = {
    EntityType.RECEIPT: re.compile(r"RECEIPT#(\d{5})", re.ASCII),
    EntityType.RECEIPT_LINE: re.compile(r"RECEIPT#(\d{5})#LINE#(\d{5})", re.ASCII),
    EntityType.RECEIPT_WORD: re.compile(r"RECEIPT#(\d{5})#LINE#(\d{5})#WORD#(\d{5})", re.ASCII),
    EntityType.RECEIPT_WORD_LABEL: re.compile(
        r"RECEIPT#(\d{5})#LINE#(\d{5})#WORD#(\d{5})#LABEL#([^#]+)", re.ASCII
    ),
    EntityType.RECEIPT_METADATA: re.compile(r"RECEIPT#(\d{5})#METADATA", re.ASCII),
    EntityType.COMPACTION_RUN: re.compile(r"RECEIPT#(\d{5})#COMPACTION_RUN#([^#]+)", re.ASCII),
}


def validate_image_id(value: object, field: str = "image_id") -> str:
    """Return ``value`` if it is a lower-case UUID (version 4 or 5), else raise."""
    if not isinstance(value, str) or not _IMAGE_ID_RE.fullmatch(value):
        raise ValueError(f"{field} must be a lower-case UUID v4/v5 string, got {value!r}")
    return value


def validate_id(value: object, field: str) -> int:
    """Return ``value`` if it is an integer id in 1..99999, else raise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise ValueError(f"{field} must be an integer in 1..{MAX_ID}, got {value!r}")
    return value


def validate_label(value: object, field: str = "label") -> str:
    """Return ``value`` if it is a label name ``[A-Z0-9_]{1,34}``, else raise."""
    if not isinstance(value, str) or not _LABEL_RE.fullmatch(value):
        raise ValueError(f"{field} must match {LABEL_PATTERN}, got {value!r}")
    return value


def parse_id(text: str, field: str) -> int:
    """Parse a zero-padded id taken from a key; ``00000`` is rejected."""
    return validate_id(int(text), field)


def image_pk(image_id: str) -> str:
    return f"IMAGE#{image_id}"


def receipt_sk(receipt_id: int) -> str:
    return f"RECEIPT#{receipt_id:05d}"


def line_sk(receipt_id: int, line_id: int) -> str:
    return f"RECEIPT#{receipt_id:05d}#LINE#{line_id:05d}"


def word_sk(receipt_id: int, line_id: int, word_id: int) -> str:
    return f"RECEIPT#{receipt_id:05d}#LINE#{line_id:05d}#WORD#{word_id:05d}"


def label_sk(receipt_id: int, line_id: int, word_id: int, label: str) -> str:
    return f"{word_sk(receipt_id, line_id, word_id)}#LABEL#{label}"


def metadata_sk(receipt_id: int) -> str:
    return f"RECEIPT#{receipt_id:05d}#METADATA"


def compaction_run_sk(receipt_id: int, run_id: str) -> str:
    return f"RECEIPT#{receipt_id:05d}#COMPACTION_RUN#{run_id}"


def lock_pk(collection: str, lock_id: str) -> str:
    return f"LOCK#{collection}#{lock_id}"


def compaction_lock_id(collection: str) -> str:
    """The lock id of a collection's compaction lease (contract §2)."""
    return f"chroma-{collection}-compaction"


def snapshot_pointer_pk(collection: str) -> str:
    return f"SNAPSHOT#{collection}"


def receipt_prefix(receipt_id: int) -> str:
    """SK prefix shared by a receipt's row and every row below it."""
    return f"RECEIPT#{receipt_id:05d}#"
