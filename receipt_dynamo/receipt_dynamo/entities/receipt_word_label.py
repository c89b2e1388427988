"""ReceiptWordLabel: a label proposed for, or validated on, one word."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from receipt_dynamo.constants import EntityType, ValidationStatus
from receipt_dynamo.entities.base import (
    Attributes,
    DynamoEntity,
    as_enum,
    check_key_parts,
    check_str,
    check_timestamp,
    opt_str,
    req_str,
    set_field,
)
from receipt_dynamo.entities.key_parsing import parse_key
from receipt_dynamo.keys import SK_PATTERNS, image_pk, label_sk, parse_id, validate_label, word_sk

GSI1PK_WIDTH = 40


@dataclass(frozen=True, kw_only=True, slots=True)
class ReceiptWordLabel(DynamoEntity):
    TYPE: ClassVar[str] = EntityType.RECEIPT_WORD_LABEL.value

    image_id: str
    receipt_id: int
    line_id: int
    word_id: int
    label: str
    timestamp_added: str
    reasoning: str | None = None
    validation_status: ValidationStatus = ValidationStatus.NONE
    label_proposed_by: str | None = None
    label_consolidated_from: str | None = None

    def __post_init__(self) -> None:
        check_key_parts(
            self.image_id,
            receipt_id=self.receipt_id,
            line_id=self.line_id,
            word_id=self.word_id,
        )
        validate_label(self.label)
        check_timestamp(self.timestamp_added, "timestamp_added")
        for name in ("reasoning", "label_proposed_by", "label_consolidated_from"):
            check_str(getattr(self, name), name, optional=True)
        set_field(
            self,
            "validation_status",
            as_enum(ValidationStatus, self.validation_status, "validation_status"),
        )

    @property
    def pk(self) -> str:
        return image_pk(self.image_id)

    @property
    def sk(self) -> str:
        return label_sk(self.receipt_id, self.line_id, self.word_id, self.label)

    @property
    def word_key(self) -> tuple[str, int, int, int]:
        """The word this label belongs to: (image_id, receipt_id, line_id, word_id)."""
        return (self.image_id, self.receipt_id, self.line_id, self.word_id)

    def attributes(self) -> dict[str, Any]:
        word_path = f"{self.pk}#{word_sk(self.receipt_id, self.line_id, self.word_id)}"
        return {
            "reasoning": self.reasoning,
            "timestamp_added": self.timestamp_added,
            "validation_status": self.validation_status.value,
            "label_proposed_by": self.label_proposed_by,
            "label_consolidated_from": self.label_consolidated_from,
            "GSI1PK": f"LABEL#{self.label}".ljust(GSI1PK_WIDTH, "_"),
            "GSI1SK": word_path,
            "GSI2PK": "RECEIPT",
            "GSI2SK": word_path,
            "GSI3PK": f"VALIDATION_STATUS#{self.validation_status.value}",
            "GSI3SK": f"{word_path}#LABEL#{self.label}",
        }

    @classmethod
    def from_attributes(cls, attributes: Attributes) -> Self:
        image_id, (receipt_id, line_id, word_id, label) = parse_key(
            attributes, SK_PATTERNS[EntityType.RECEIPT_WORD_LABEL]
        )
        return cls(
            image_id=image_id,
            receipt_id=parse_id(receipt_id, "receipt_id"),
            line_id=parse_id(line_id, "line_id"),
            word_id=parse_id(word_id, "word_id"),
            label=label,
            timestamp_added=req_str(attributes, "timestamp_added"),
            reasoning=opt_str(attributes, "reasoning"),
            validation_status=attributes.get("validation_status") or ValidationStatus.NONE,
            label_proposed_by=opt_str(attributes, "label_proposed_by"),
            label_consolidated_from=opt_str(attributes, "label_consolidated_from"),
        )
