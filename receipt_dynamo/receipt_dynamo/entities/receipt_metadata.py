"""ReceiptMetadata: the merchant identity of a receipt."""

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
    opt_str,
    readable,
    req_str,
    set_field,
)
from receipt_dynamo.entities.key_parsing import parse_key
from receipt_dynamo.keys import SK_PATTERNS, image_pk, metadata_sk, parse_id

OPTIONAL_TEXT_FIELDS = (
    "merchant_category",
    "address",
    "phone_number",
    "validated_by",
    "reasoning",
    "canonical_place_id",
    "canonical_merchant_name",
    "canonical_address",
    "canonical_phone_number",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class ReceiptMetadata(DynamoEntity):
    TYPE: ClassVar[str] = EntityType.RECEIPT_METADATA.value

    image_id: str
    receipt_id: int
    place_id: str
    merchant_name: str
    timestamp: str
    validation_status: str
    merchant_category: str | None = None
    address: str | None = None
    phone_number: str | None = None
    matched_fields: frozenset[str] = frozenset()
    validated_by: str | None = None
    reasoning: str | None = None
    canonical_place_id: str | None = None
    canonical_merchant_name: str | None = None
    canonical_address: str | None = None
    canonical_phone_number: str | None = None

    def __post_init__(self) -> None:
        check_key_parts(self.image_id, receipt_id=self.receipt_id)
        check_str(self.place_id, "place_id")
        check_str(self.merchant_name, "merchant_name")
        check_str(self.validation_status, "validation_status")
        check_timestamp(self.timestamp, "timestamp")
        for name in OPTIONAL_TEXT_FIELDS:
            check_str(getattr(self, name), name, optional=True)
        fields: object = self.matched_fields
        if (
            isinstance(fields, str)
            or not isinstance(fields, set | frozenset | list | tuple)
            or not all(isinstance(f, str) for f in fields)
        ):
            raise ValueError(f"matched_fields must be a set of strings, got {readable(fields)}")
        set_field(self, "matched_fields", frozenset(fields))

    @property
    def pk(self) -> str:
        return image_pk(self.image_id)

    @property
    def sk(self) -> str:
        return metadata_sk(self.receipt_id)

    @property
    def merchant_index_name(self) -> str:
        """Canonical name if set, else merchant name; upper-case, spaces as ``_``."""
        name = self.canonical_merchant_name or self.merchant_name
        return name.upper().replace(" ", "_")

    def attributes(self) -> dict[str, Any]:
        path = f"{self.pk}#{self.sk}"
        return {
            "place_id": self.place_id,
            "merchant_name": self.merchant_name,
            "matched_fields": set(self.matched_fields) if self.matched_fields else None,
            "timestamp": self.timestamp,
            "validation_status": self.validation_status,
            **{name: getattr(self, name) for name in OPTIONAL_TEXT_FIELDS},
            "GSI1PK": f"MERCHANT#{self.merchant_index_name}",
            "GSI1SK": path,
            "GSI2PK": f"PLACE#{self.place_id}" if self.place_id else None,
            "GSI2SK": path if self.place_id else None,
            "GSI3PK": "MERCHANT_VALIDATION",
            "GSI3SK": f"STATUS#{self.validation_status}",
        }

    @classmethod
    def from_attributes(cls, attributes: Attributes) -> Self:
        image_id, (receipt_id,) = parse_key(attributes, SK_PATTERNS[EntityType.RECEIPT_METADATA])
        matched = attributes.get("matched_fields")
        return cls(
            image_id=image_id,
            receipt_id=parse_id(receipt_id, "receipt_id"),
            place_id=req_str(attributes, "place_id"),
            merchant_name=req_str(attributes, "merchant_name"),
            timestamp=req_str(attributes, "timestamp"),
            validation_status=req_str(attributes, "validation_status"),
            matched_fields=frozenset() if matched is None else matched,
            **{name: opt_str(attributes, name) for name in OPTIONAL_TEXT_FIELDS},
        )
