"""Receipt: one receipt cut from an image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from receipt_dynamo.constants import EntityType
from receipt_dynamo.entities.base import (
    Attributes,
    DynamoEntity,
    check_key_parts,
    check_str,
    check_timestamp,
    req_int,
    req_str,
)
from receipt_dynamo.entities.geometry import Point, check_point
from receipt_dynamo.entities.key_parsing import parse_key
from receipt_dynamo.entities.text_element import CORNERS
from receipt_dynamo.keys import SK_PATTERNS, image_pk, parse_id, receipt_sk


@dataclass(frozen=True, kw_only=True, slots=True)
class Receipt(DynamoEntity):
    TYPE: ClassVar[str] = EntityType.RECEIPT.value

    image_id: str
    receipt_id: int
    width: int
    height: int
    timestamp_added: str
    raw_s3_bucket: str
    raw_s3_key: str
    top_left: Point
    top_right: Point
    bottom_left: Point
    bottom_right: Point

    def __post_init__(self) -> None:
        check_key_parts(self.image_id, receipt_id=self.receipt_id)
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        check_timestamp(self.timestamp_added, "timestamp_added")
        check_str(self.raw_s3_bucket, "raw_s3_bucket")
        check_str(self.raw_s3_key, "raw_s3_key")
        for corner in CORNERS:
            check_point(getattr(self, corner), corner)

    @property
    def pk(self) -> str:
        return image_pk(self.image_id)

    @property
    def sk(self) -> str:
        return receipt_sk(self.receipt_id)

    def attributes(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "timestamp_added": self.timestamp_added,
            "raw_s3_bucket": self.raw_s3_bucket,
            "raw_s3_key": self.raw_s3_key,
            **{corner: getattr(self, corner).to_map() for corner in CORNERS},
            "GSI1PK": self.pk,
            "GSI1SK": self.sk,
            "GSI2PK": "RECEIPT",
            "GSI2SK": f"{self.pk}#{self.sk}",
        }

    @classmethod
    def from_attributes(cls, attributes: Attributes) -> Self:
        image_id, (receipt_id,) = parse_key(attributes, SK_PATTERNS[EntityType.RECEIPT])
        return cls(
            image_id=image_id,
            receipt_id=parse_id(receipt_id, "receipt_id"),
            width=req_int(attributes, "width"),
            height=req_int(attributes, "height"),
            timestamp_added=req_str(attributes, "timestamp_added"),
            raw_s3_bucket=req_str(attributes, "raw_s3_bucket"),
            raw_s3_key=req_str(attributes, "raw_s3_key"),
            **{corner: Point.from_map(attributes.get(corner), corner) for corner in CORNERS},
        )
