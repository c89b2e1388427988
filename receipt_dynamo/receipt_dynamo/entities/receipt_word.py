"""ReceiptWord: one OCR'd word of a receipt line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from receipt_dynamo.constants import EntityType
from receipt_dynamo.entities.base import Attributes, check_key_parts, readable, set_field
from receipt_dynamo.entities.key_parsing import parse_key
from receipt_dynamo.entities.text_element import TextElement, read_text_element_fields
from receipt_dynamo.keys import SK_PATTERNS, image_pk, parse_id, word_sk


@dataclass(frozen=True, kw_only=True, slots=True)
class ReceiptWord(TextElement):
    TYPE: ClassVar[str] = EntityType.RECEIPT_WORD.value

    word_id: int
    extracted_data: Mapping[str, str | None] | None = None

    def __post_init__(self) -> None:
        check_key_parts(
            self.image_id,
            receipt_id=self.receipt_id,
            line_id=self.line_id,
            word_id=self.word_id,
        )
        self._check_text_element()
        if self.extracted_data is not None:
            set_field(self, "extracted_data", _check_extracted_data(self.extracted_data))

    @property
    def pk(self) -> str:
        return image_pk(self.image_id)

    @property
    def sk(self) -> str:
        return word_sk(self.receipt_id, self.line_id, self.word_id)

    def attributes(self) -> dict[str, Any]:
        return {
            **self._text_element_attributes(),
            # Null entries are dropped: the pipeline never writes the NULL type.
            "extracted_data": None
            if self.extracted_data is None
            else {k: v for k, v in self.extracted_data.items() if v is not None},
            "GSI1PK": f"EMBEDDING_STATUS#{self.embedding_status.value}",
            "GSI1SK": f"WORD#{self.pk}#{self.sk}",
            "GSI2PK": "RECEIPT",
            "GSI2SK": f"{self.pk}#{self.sk}",
            "GSI3PK": f"{self.pk}#RECEIPT#{self.receipt_id:05d}",
            "GSI3SK": "WORD",
        }

    @classmethod
    def from_attributes(cls, attributes: Attributes) -> Self:
        image_id, (receipt_id, line_id, word_id) = parse_key(
            attributes, SK_PATTERNS[EntityType.RECEIPT_WORD]
        )
        return cls(
            image_id=image_id,
            receipt_id=parse_id(receipt_id, "receipt_id"),
            line_id=parse_id(line_id, "line_id"),
            word_id=parse_id(word_id, "word_id"),
            extracted_data=attributes.get("extracted_data"),
            **read_text_element_fields(attributes),
        )


def _check_extracted_data(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(f"extracted_data must be a map of strings, got {readable(value)}")
    for key, item in value.items():
        if not isinstance(key, str) or (item is not None and not isinstance(item, str)):
            raise ValueError(f"extracted_data must be a map of strings, got {readable(value)}")
    return {k: v for k, v in value.items() if v is not None}
