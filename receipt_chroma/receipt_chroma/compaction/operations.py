"""Operations on one collection: merchant metadata, word labels and deletions (SPEC §4, §5.5).

Each function touches only the collection it is given, writes in batched calls (one
update per receipt, chunked), counts what exists (a ``get`` of ids, never the return
value of ``update``/``delete``) and raises on failure — it never returns 0 for an error.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from receipt_chroma.constants import LABEL_KEYS, MERCHANT_KEYS, WRITE_CHUNK
from receipt_chroma.exceptions import OperationError
from receipt_chroma.ids import line_vector_id, word_vector_id
from receipt_dynamo.constants import ValidationStatus
from receipt_dynamo.entities import ReceiptMetadata, ReceiptWordLabel

MetadataValue = str | int | float | bool | list[str] | None
T = TypeVar("T")


class OperationLogger(Protocol):
    """Anything with ``info(msg, extra=...)``: a stdlib or Powertools logger."""

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None: ...


def receipt_where(image_id: str, receipt_id: int) -> dict[str, Any]:
    return {"$and": [{"image_id": image_id}, {"receipt_id": receipt_id}]}


def _chunks(items: Sequence[T], size: int = WRITE_CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _guard(action: str, image_id: str, receipt_id: int, work: Callable[[], T]) -> T:
    try:
        return work()
    except OperationError:
        raise
    except Exception as error:
        raise OperationError(
            f"{action} failed for image {image_id} receipt {receipt_id}: "
            f"{type(error).__name__}: {error}"
        ) from error


def _log(
    logger: OperationLogger,
    message: str,
    collection: Any,
    *,
    image_id: str,
    receipt_id: int,
    records: int,
    **extra: Any,
) -> None:
    """Structured log line of an operation (the runbook greps for its message)."""
    logger.info(
        message,
        extra={
            "image_id": image_id,
            "receipt_id": receipt_id,
            "collection": getattr(collection, "name", None),
            "records": records,
            **extra,
        },
    )


def receipt_record_ids(collection: Any, image_id: str, receipt_id: int) -> list[str]:
    """Ids of every record of the receipt in ``collection`` (found by a metadata query).

    The query filters on ``image_id`` alone and checks ``receipt_id`` here: an image has
    a handful of receipts, while ``receipt_id = 1`` matches most of a snapshot, and
    intersecting with it makes the query grow with the snapshot.
    """
    result = collection.get(where={"image_id": image_id}, include=["metadatas"])
    metadatas = result["metadatas"] or []
    return sorted(
        {
            record_id
            for record_id, metadata in zip(result["ids"], metadatas, strict=False)
            if metadata and metadata.get("receipt_id") == receipt_id
        }
    )


def existing_ids(collection: Any, ids: Iterable[str]) -> list[str]:
    """The subset of ``ids`` that exists in ``collection``."""
    unique = sorted(set(ids))
    found: list[str] = []
    for chunk in _chunks(unique):
        found += collection.get(ids=list(chunk), include=[])["ids"]
    return sorted(set(found))


def update_metadatas(
    collection: Any, metadatas_by_id: Mapping[str, Mapping[str, MetadataValue]]
) -> int:
    """Merge each mapping into its record (None deletes a key); one call per chunk."""
    ids = sorted(metadatas_by_id)
    for chunk in _chunks(ids):
        collection.update(ids=list(chunk), metadatas=[dict(metadatas_by_id[i]) for i in chunk])
    return len(ids)


# --- merchant metadata -------------------------------------------------------------------


def merchant_metadata(metadata: ReceiptMetadata | None) -> dict[str, MetadataValue]:
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


def _update_receipt_records(
    collection: Any,
    image_id: str,
    receipt_id: int,
    logger: OperationLogger,
    *,
    action: str,
    metadata_for: Callable[[str], Mapping[str, MetadataValue]],
) -> int:
    """One batched update of every record of the receipt (found by a metadata query)."""

    def work() -> int:
        ids = receipt_record_ids(collection, image_id, receipt_id)
        update_metadatas(collection, {i: metadata_for(i) for i in ids})
        return len(ids)

    updated = _guard(action, image_id, receipt_id, work)
    _log(logger, action, collection, image_id=image_id, receipt_id=receipt_id, records=updated)
    return updated


def update_receipt_metadata(
    collection: Any,
    image_id: str,
    receipt_id: int,
    changes: Mapping[str, MetadataValue],
    logger: OperationLogger,
) -> int:
    """Write ``changes`` (field → value; None deletes) onto every record of the receipt."""
    return _update_receipt_records(
        collection,
        image_id,
        receipt_id,
        logger,
        action="metadata update",
        metadata_for=lambda _: changes,
    )


def remove_receipt_metadata(
    collection: Any, image_id: str, receipt_id: int, logger: OperationLogger
) -> int:
    """Delete every merchant key from the receipt's records."""
    return update_receipt_metadata(
        collection, image_id, receipt_id, dict.fromkeys(MERCHANT_KEYS), logger
    )


# --- word labels -------------------------------------------------------------------------


def reconstruct_label_metadata(labels: Iterable[ReceiptWordLabel]) -> dict[str, MetadataValue]:
    """The label keys of one word from all of its label rows (SPEC §4); absent → None."""
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
        latest = max(proposals, key=lambda r: (r.timestamp_added, r.label))
        result["label_proposed_by"] = latest.label_proposed_by
    validated = [r.timestamp_added for r in rows if r.validation_status is ValidationStatus.VALID]
    result["label_validated_at"] = max(validated) if validated else None
    result["labels_updated_at"] = max(r.timestamp_added for r in rows)
    return result


def label_metadata_by_record(
    labels: Iterable[ReceiptWordLabel],
) -> dict[str, dict[str, MetadataValue]]:
    """Label keys per word record id, for words that have label rows."""
    grouped: dict[str, list[ReceiptWordLabel]] = defaultdict(list)
    for label in labels:
        grouped[word_vector_id(*label.word_key)].append(label)
    return {vector_id: reconstruct_label_metadata(rows) for vector_id, rows in grouped.items()}


def update_word_labels(
    collection: Any,
    image_id: str,
    receipt_id: int,
    labels: Iterable[ReceiptWordLabel],
    logger: OperationLogger,
) -> int:
    """Recompute the label keys of every word of the receipt from its label rows.

    ``labels`` are all current label rows of the receipt; a word without rows loses
    its label keys. One batched update for the receipt.
    """
    by_record = label_metadata_by_record(labels)
    empty = reconstruct_label_metadata([])
    return _update_receipt_records(
        collection,
        image_id,
        receipt_id,
        logger,
        action="label update",
        metadata_for=lambda record_id: by_record.get(record_id, empty),
    )


def remove_word_labels(
    collection: Any, image_id: str, receipt_id: int, logger: OperationLogger
) -> int:
    """Delete every label key from the receipt's word records."""
    return update_word_labels(collection, image_id, receipt_id, [], logger)


# --- combined state write (what the compactor uses: one update per receipt) -------------


def write_receipt_state(
    collection: Any,
    image_id: str,
    receipt_id: int,
    record_ids: Sequence[str],
    *,
    metadata: ReceiptMetadata | None,
    labels: Iterable[ReceiptWordLabel] | None,
    logger: OperationLogger,
) -> int:
    """Merchant keys (and, with ``labels``, label keys) onto ``record_ids`` in one update.

    Equivalent to ``update_receipt_metadata`` followed by ``update_word_labels`` with the
    full current field set, but with a single write per receipt.
    """
    merchant = merchant_metadata(metadata)
    by_record = label_metadata_by_record(labels) if labels is not None else None
    empty = reconstruct_label_metadata([])
    metadatas = {
        record_id: merchant
        if by_record is None
        else {**merchant, **by_record.get(record_id, empty)}
        for record_id in record_ids
    }
    updated = _guard(
        "metadata update", image_id, receipt_id, lambda: update_metadatas(collection, metadatas)
    )
    _log(
        logger,
        "metadata update",
        collection,
        image_id=image_id,
        receipt_id=receipt_id,
        records=updated,
        has_metadata=metadata is not None,
    )
    if by_record is not None:
        _log(
            logger,
            "label update",
            collection,
            image_id=image_id,
            receipt_id=receipt_id,
            records=updated,
            labelled_words=len(by_record),
        )
    return updated


# --- deletions ---------------------------------------------------------------------------


def delete_embeddings(
    collection: Any, ids: Iterable[str], logger: OperationLogger, *, image_id: str, receipt_id: int
) -> int:
    """Delete the given records; returns how many existed."""

    def work() -> int:
        present = existing_ids(collection, ids)
        for chunk in _chunks(present):
            collection.delete(ids=list(chunk))
        return len(present)

    deleted = _guard("deletion", image_id, receipt_id, work)
    _log(
        logger,
        "embeddings deleted",
        collection,
        image_id=image_id,
        receipt_id=receipt_id,
        records=deleted,
    )
    return deleted


def delete_receipt_embeddings(
    collection: Any, image_id: str, receipt_id: int, logger: OperationLogger
) -> int:
    """Delete every record of the receipt (found by a metadata query)."""
    ids = _guard(
        "deletion",
        image_id,
        receipt_id,
        lambda: receipt_record_ids(collection, image_id, receipt_id),
    )
    return delete_embeddings(collection, ids, logger, image_id=image_id, receipt_id=receipt_id)


def delete_line_embeddings(
    collection: Any,
    image_id: str,
    receipt_id: int,
    line_ids: Iterable[int],
    logger: OperationLogger,
) -> int:
    """Delete the records of the given lines (lines collection)."""
    ids = [line_vector_id(image_id, receipt_id, line_id) for line_id in line_ids]
    return delete_embeddings(collection, ids, logger, image_id=image_id, receipt_id=receipt_id)


def delete_word_embeddings(
    collection: Any,
    image_id: str,
    receipt_id: int,
    word_keys: Iterable[tuple[int, int]],
    logger: OperationLogger,
) -> int:
    """Delete the records of the given (line_id, word_id) words (words collection)."""
    ids = [word_vector_id(image_id, receipt_id, line, word) for line, word in word_keys]
    return delete_embeddings(collection, ids, logger, image_id=image_id, receipt_id=receipt_id)
