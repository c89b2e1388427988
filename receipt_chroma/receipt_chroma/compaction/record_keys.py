"""The merchant and label keys of a receipt's records, derived from its table rows
(contract §4). Pure functions of the rows: nothing here reads or writes a collection.

"Empty" means absent: every key a receipt's rows do not give a value is None, which a
Chroma update turns into a deletion of that key.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Protocol

from receipt_chroma.constants import LABEL_KEYS, MERCHANT_KEYS
from receipt_chroma.ids import word_vector_id
from receipt_dynamo.constants import ValidationStatus
from receipt_dynamo.entities import ReceiptWordLabel
from receipt_dynamo.timestamps import instant

MetadataValue = str | int | float | bool | list[str] | None


class MerchantIdentity(Protocol):
    """A receipt's merchant fields: a ReceiptMetadata row, or what was read of one."""

    @property
    def merchant_name(self) -> str: ...
    @property
    def canonical_merchant_name(self) -> str | None: ...
    @property
    def merchant_category(self) -> str | None: ...
    @property
    def address(self) -> str | None: ...
    @property
    def phone_number(self) -> str | None: ...
    @property
    def place_id(self) -> str: ...
    @property
    def timestamp(self) -> str: ...


def merchant_metadata(metadata: MerchantIdentity | None) -> dict[str, MetadataValue]:
    """The merchant keys for a receipt's records; every key None without metadata."""
    if metadata is None:
        return dict.fromkeys(MERCHANT_KEYS)
    values = {
        "merchant_name": metadata.merchant_name,
        "canonical_merchant_name": metadata.canonical_merchant_name,
        "merchant_category": metadata.merchant_category,
        "address": metadata.address,
        "phone_number": metadata.phone_number,
        "place_id": metadata.place_id,
        "merchant_updated_at": metadata.timestamp,
    }
    # "Empty" means absent: an empty string is deleted like None.
    return {key: values[key] or None for key in MERCHANT_KEYS}


def _latest(timestamps: Iterable[str]) -> str | None:
    """The timestamp of the greatest instant (ties: the greater string), or None."""
    return max(timestamps, key=lambda value: (instant(value), value), default=None)


def reconstruct_label_metadata(labels: Iterable[ReceiptWordLabel]) -> dict[str, MetadataValue]:
    """The label keys of one word from all of its label rows (contract §4); absent → None."""
    rows = list(labels)
    result: dict[str, MetadataValue] = dict.fromkeys(LABEL_KEYS)
    if not rows:
        return result
    statuses = {row.validation_status for row in rows}
    if ValidationStatus.VALID in statuses:
        result["label_status"] = "validated"
    elif ValidationStatus.PENDING in statuses:
        result["label_status"] = "auto_suggested"
    else:
        result["label_status"] = "unvalidated"
    valid = sorted({r.label for r in rows if r.validation_status is ValidationStatus.VALID})
    invalid = sorted({r.label for r in rows if r.validation_status is ValidationStatus.INVALID})
    result["valid_labels_array"] = valid or None
    result["invalid_labels_array"] = invalid or None
    proposals = [
        r for r in rows if r.validation_status is ValidationStatus.PENDING and r.label_proposed_by
    ]
    if proposals:
        latest = max(proposals, key=lambda r: (instant(r.timestamp_added), r.label))
        result["label_proposed_by"] = latest.label_proposed_by
    result["label_validated_at"] = _latest(
        r.timestamp_added for r in rows if r.validation_status is ValidationStatus.VALID
    )
    result["labels_updated_at"] = _latest(r.timestamp_added for r in rows)
    return result


def label_metadata_by_record(
    labels: Iterable[ReceiptWordLabel],
) -> dict[str, dict[str, MetadataValue]]:
    """Label keys per word record id, for words that have label rows."""
    grouped: dict[str, list[ReceiptWordLabel]] = defaultdict(list)
    for label in labels:
        grouped[word_vector_id(*label.word_key)].append(label)
    return {vector_id: reconstruct_label_metadata(rows) for vector_id, rows in grouped.items()}
