"""ReceiptLine: one OCR'd line of a receipt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from receipt_dynamo.constants import EntityType
from receipt_dynamo.entities.base import Attributes, check_key_parts
from receipt_dynamo.entities.key_parsing import parse_key
from receipt_dynamo.entities.text_element import TextElement, read_text_element_fields
from receipt_dynamo.keys import SK_PATTERNS, image_pk, line_sk, parse_id


@dataclass(frozen=True, kw_only=True, slots=True)
class ReceiptLine(TextElement):
    TYPE: ClassVar[str] = EntityType.RECEIPT_LINE.value

    def __post_init__(self) -> None:
        check_key_parts(self.image_id, receipt_id=self.receipt_id, line_id=self.line_id)
        self._check_text_element()

    @property
    def pk(self) -> str:
        return image_pk(self.image_id)

    @property
    def sk(self) -> str:
        return line_sk(self.receipt_id, self.line_id)

    def attributes(self) -> dict[str, Any]:
        return {
            **self._text_element_attributes(),
            "GSI1PK": f"EMBEDDING_STATUS#{self.embedding_status.value}",
            "GSI1SK": f"LINE#{self.pk}#{self.sk}",
            "GSI3PK": f"{self.pk}#RECEIPT#{self.receipt_id:05d}",
            "GSI3SK": "LINE",
        }

    @classmethod
    def from_attributes(cls, attributes: Attributes) -> Self:
        image_id, (receipt_id, line_id) = parse_key(
            attributes, SK_PATTERNS[EntityType.RECEIPT_LINE]
        )
        return cls(
            image_id=image_id,
            receipt_id=parse_id(receipt_id, "receipt_id"),
            line_id=parse_id(line_id, "line_id"),
            **read_text_element_fields(attributes),
        )
