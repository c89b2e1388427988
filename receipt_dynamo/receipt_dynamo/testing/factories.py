"""Valid entities with sensible defaults, for tests and synthetic data.

Each factory takes the identifying ids plus keyword overrides for any other field.
"""

from __future__ import annotations

from typing import Any

from receipt_dynamo.constants import ValidationStatus
from receipt_dynamo.entities import (
    BoundingBox,
    CompactionRun,
    Point,
    Receipt,
    ReceiptLine,
    ReceiptMetadata,
    ReceiptWord,
    ReceiptWordLabel,
)

FIXED_TIME = "2026-11-28T10:15:00.000000+00:00"


def _corners() -> dict[str, Point]:
    return {
        "top_left": Point(0.1, 0.9),
        "top_right": Point(0.9, 0.9),
        "bottom_left": Point(0.1, 0.8),
        "bottom_right": Point(0.9, 0.8),
    }


def _text_geometry(text: str) -> dict[str, Any]:
    return {
        "text": text,
        "bounding_box": BoundingBox(0.1, 0.8, 0.8, 0.1),
        **_corners(),
        "angle_degrees": 0.5,
        "angle_radians": 0.008726646259971648,
        "confidence": 0.97,
    }


def make_receipt(image_id: str, receipt_id: int = 1, **overrides: Any) -> Receipt:
    fields: dict[str, Any] = {
        "image_id": image_id,
        "receipt_id": receipt_id,
        "width": 1000,
        "height": 2400,
        "timestamp_added": FIXED_TIME,
        "raw_s3_bucket": "raw-receipts",
        "raw_s3_key": f"raw/{image_id}/{receipt_id}.png",
        **_corners(),
    }
    return Receipt(**{**fields, **overrides})


def make_line(image_id: str, receipt_id: int, line_id: int, **overrides: Any) -> ReceiptLine:
    fields: dict[str, Any] = {
        "image_id": image_id,
        "receipt_id": receipt_id,
        "line_id": line_id,
        **_text_geometry(f"line {line_id}"),
    }
    return ReceiptLine(**{**fields, **overrides})


def make_word(
    image_id: str, receipt_id: int, line_id: int, word_id: int, **overrides: Any
) -> ReceiptWord:
    fields: dict[str, Any] = {
        "image_id": image_id,
        "receipt_id": receipt_id,
        "line_id": line_id,
        "word_id": word_id,
        **_text_geometry(f"w{line_id}-{word_id}"),
    }
    return ReceiptWord(**{**fields, **overrides})


def make_label(
    image_id: str,
    receipt_id: int,
    line_id: int,
    word_id: int,
    label: str = "TOTAL",
    **overrides: Any,
) -> ReceiptWordLabel:
    fields: dict[str, Any] = {
        "image_id": image_id,
        "receipt_id": receipt_id,
        "line_id": line_id,
        "word_id": word_id,
        "label": label,
        "timestamp_added": FIXED_TIME,
        "validation_status": ValidationStatus.PENDING,
        "label_proposed_by": "tests",
    }
    return ReceiptWordLabel(**{**fields, **overrides})


def make_metadata(image_id: str, receipt_id: int = 1, **overrides: Any) -> ReceiptMetadata:
    fields: dict[str, Any] = {
        "image_id": image_id,
        "receipt_id": receipt_id,
        "place_id": "ChIJ-test-place",
        "merchant_name": "Corner Market",
        "merchant_category": "grocery",
        "address": "1 Main St",
        "phone_number": "555-0100",
        "matched_fields": frozenset({"name", "phone"}),
        "validated_by": "tests",
        "timestamp": FIXED_TIME,
        "validation_status": "MATCHED",
    }
    return ReceiptMetadata(**{**fields, **overrides})


def make_compaction_run(
    image_id: str, receipt_id: int, run_id: str, **overrides: Any
) -> CompactionRun:
    fields: dict[str, Any] = {
        "run_id": run_id,
        "image_id": image_id,
        "receipt_id": receipt_id,
        "lines_delta_prefix": f"lines/delta/{run_id}/",
        "words_delta_prefix": f"words/delta/{run_id}/",
        "created_at": FIXED_TIME,
    }
    return CompactionRun(**{**fields, **overrides})


# Image ids for tests (lower-case UUID v4).
IMAGE_ID = "3f52804b-2fad-4e00-92c8-b593da3a8ed3"
OTHER_IMAGE_ID = "9a0e8f7d-1c2b-4a3e-9f00-112233445566"
