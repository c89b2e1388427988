"""Fields and rules shared by ReceiptLine and ReceiptWord (OCR'd text with geometry)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from receipt_dynamo.constants import EmbeddingStatus
from receipt_dynamo.entities.base import (
    Attributes,
    DynamoEntity,
    as_enum,
    check_str,
    readable,
    req_float,
    req_str,
    set_field,
)
from receipt_dynamo.entities.geometry import BoundingBox, Point, check_point

CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")


@dataclass(frozen=True, kw_only=True, slots=True)
class TextElement(DynamoEntity):
    """Text, geometry, OCR confidence and embedding state of a line or word."""

    image_id: str
    receipt_id: int
    line_id: int
    text: str
    bounding_box: BoundingBox
    top_left: Point
    top_right: Point
    bottom_left: Point
    bottom_right: Point
    angle_degrees: float
    angle_radians: float
    confidence: float
    embedding_status: EmbeddingStatus = EmbeddingStatus.NONE
    is_noise: bool = False

    def _check_text_element(self) -> None:
        check_str(self.text, "text")
        if not isinstance(self.bounding_box, BoundingBox):
            raise ValueError(f"bounding_box must be a BoundingBox, got {self.bounding_box!r}")
        for corner in CORNERS:
            check_point(getattr(self, corner), corner)
        for name in ("angle_degrees", "angle_radians", "confidence"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, got {readable(value)}")
            set_field(self, name, float(value))
        if not 0 < self.confidence <= 1:
            raise ValueError(f"confidence must be in (0, 1], got {self.confidence!r}")
        set_field(
            self,
            "embedding_status",
            as_enum(EmbeddingStatus, self.embedding_status, "embedding_status"),
        )
        if not isinstance(self.is_noise, bool):
            raise ValueError(f"is_noise must be a boolean, got {self.is_noise!r}")

    def _text_element_attributes(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "bounding_box": self.bounding_box.to_map(),
            **{corner: getattr(self, corner).to_map() for corner in CORNERS},
            "angle_degrees": self.angle_degrees,
            "angle_radians": self.angle_radians,
            "confidence": self.confidence,
            "embedding_status": self.embedding_status.value,
            "is_noise": self.is_noise,
        }


def read_text_element_fields(attributes: Attributes) -> dict[str, Any]:
    """Constructor arguments shared by lines and words, read from plain attributes."""
    is_noise = attributes.get("is_noise", False)
    return {
        "text": req_str(attributes, "text"),
        "bounding_box": BoundingBox.from_map(attributes.get("bounding_box"), "bounding_box"),
        **{corner: Point.from_map(attributes.get(corner), corner) for corner in CORNERS},
        "angle_degrees": req_float(attributes, "angle_degrees"),
        "angle_radians": req_float(attributes, "angle_radians"),
        "confidence": req_float(attributes, "confidence"),
        "embedding_status": attributes.get("embedding_status") or EmbeddingStatus.NONE,
        "is_noise": False if is_noise is None else is_noise,
    }
