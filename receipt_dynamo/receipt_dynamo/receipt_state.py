"""Aggregates read from the table (as opposed to single entities)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

from receipt_dynamo.entities import CompactionRun, ReceiptMetadata, ReceiptWordLabel
from receipt_dynamo.entities.base import Attributes, check_str, check_timestamp


@dataclass(frozen=True, slots=True)
class MerchantFields:
    """What the vector store copies from a ReceiptMetadata row: the merchant identity and
    its ``timestamp``. Only these attributes are validated when it is read from an item,
    so a row with an odd attribute nobody copies still counts."""

    merchant_name: str
    place_id: str
    timestamp: str
    canonical_merchant_name: str | None = None
    merchant_category: str | None = None
    address: str | None = None
    phone_number: str | None = None

    def __post_init__(self) -> None:
        check_str(self.merchant_name, "merchant_name")
        check_str(self.place_id, "place_id")
        check_timestamp(self.timestamp, "timestamp")
        for name in ("canonical_merchant_name", "merchant_category", "address", "phone_number"):
            check_str(getattr(self, name), name, optional=True)

    @classmethod
    def from_attributes(cls, attributes: Attributes) -> Self:
        """From deserialised attributes; ValueError names the field that fails."""
        values: dict[str, Any] = {name: attributes.get(name) for name in cls.__dataclass_fields__}
        return cls(**values)

    @classmethod
    def of(cls, metadata: ReceiptMetadata) -> Self:
        return cls(**{name: getattr(metadata, name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class InvalidRow:
    """A row whose attributes the compactor uses fail validation; it is left out."""

    pk: str
    sk: str
    entity_type: str
    reason: str


@dataclass(frozen=True)
class ReceiptState:
    """What the compactor needs of one receipt, from one strongly consistent query.

    Lines and words are known by their ids only (their existence is what matters);
    labels and runs are entities, the metadata is its merchant fields. Rows whose used
    attributes are invalid are in ``invalid_rows`` instead.
    """

    image_id: str
    receipt_id: int
    exists: bool = False
    metadata: MerchantFields | None = None
    line_ids: frozenset[int] = frozenset()
    word_ids: frozenset[tuple[int, int]] = frozenset()  # (line_id, word_id)
    labels: list[ReceiptWordLabel] = field(default_factory=list)
    runs: list[CompactionRun] = field(default_factory=list)
    invalid_rows: list[InvalidRow] = field(default_factory=list)
