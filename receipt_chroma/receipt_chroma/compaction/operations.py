"""Operations on one collection: merchant metadata, word labels and deletions (contract §4, §5.5).

Each function touches only the collection it is given and raises on failure — it never
returns 0 for an error. Key writes have one path, ``receipt_key_writes``: it reads the
records' current metadata and works out only the keys whose values differ, counting what
actually changes. ``apply_receipt_keys`` writes them at once (one batched update per
receipt, chunked), and ``update_receipt_metadata`` and ``update_word_labels`` are thin
wrappers of it; the apply stage writes a whole batch's in one update (``apply_batch``).
Counts come from what exists (a ``get``), never from the return value of
``update``/``delete``. The keys are derived from the rows in
``record_keys``; the reads of records are in ``collection_reads``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from receipt_chroma.chroma_client import ClientCollection
from receipt_chroma.compaction.collection_reads import (
    chunks,
    existing_ids,
    metadatas_of,
    receipt_metadatas,
)
from receipt_chroma.compaction.record_keys import (
    MetadataValue,
    label_metadata_by_record,
    reconstruct_label_metadata,
)
from receipt_chroma.constants import MERCHANT_KEYS
from receipt_chroma.exceptions import OperationError
from receipt_dynamo.entities import ReceiptWordLabel

# The operations and their types. Contract §5.5 names ``reconstruct_label_metadata`` in
# this module: it is defined with the other key derivations in ``record_keys`` and
# re-exported here.
__all__ = [
    "KeyUpdate",
    "OperationLogger",
    "apply_receipt_keys",
    "delete_embeddings",
    "reconstruct_label_metadata",
    "remove_receipt_metadata",
    "remove_word_labels",
    "update_receipt_metadata",
    "update_word_labels",
]

T = TypeVar("T")


class OperationLogger(Protocol):
    """Anything with ``info(msg, extra=...)``: a stdlib or Powertools logger."""

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None: ...


def guard_receipt(action: str, image_id: str, receipt_id: int, work: Callable[[], T]) -> T:
    """Run ``work``; any error becomes an OperationError naming the action and receipt."""
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


def _write_chunks(collection: Any, ids: Sequence[str]) -> Iterable[Sequence[str]]:
    """A ``ChromaClient`` collection splits each write call within its client's batch
    size itself, so it gets one call (chromadb re-reads its unpersisted log on every
    write call); any other collection gets chunks of ``WRITE_CHUNK``."""
    if not ids:
        return []
    return [ids] if isinstance(collection, ClientCollection) else chunks(ids)


def update_metadatas(
    collection: Any, metadatas_by_id: Mapping[str, Mapping[str, MetadataValue]]
) -> int:
    """Merge each mapping into its record (None deletes a key); one call (per chunk)."""
    ids = sorted(metadatas_by_id)
    for chunk in _write_chunks(collection, ids):
        collection.update(ids=list(chunk), metadatas=[dict(metadatas_by_id[i]) for i in chunk])
    return len(ids)


@dataclass(frozen=True, slots=True)
class KeyUpdate:
    """What ``apply_receipt_keys`` did: records it covered, and how many of them had
    merchant / label key values that actually changed."""

    records: int
    merchant_changed: int = 0
    labels_changed: int = 0


def _differing(stored: Mapping[str, Any], wanted: Mapping[str, MetadataValue]) -> dict[str, Any]:
    return {key: value for key, value in wanted.items() if stored.get(key) != value}


@dataclass(frozen=True, slots=True)
class ReceiptKeyWrites:
    """The key writes one receipt needs (``receipt_key_writes``): per record, the keys
    whose stored values differ, and what they change."""

    image_id: str
    receipt_id: int
    writes: dict[str, dict[str, Any]]
    done: KeyUpdate
    merchant: bool  # merchant keys were asked for
    labels: bool  # label keys were asked for

    def log(self, logger: OperationLogger, collection: Any) -> None:
        """The operation's log lines, once its writes are done."""
        for event, written, changed in (
            ("metadata update", self.merchant, self.done.merchant_changed),
            ("label update", self.labels, self.done.labels_changed),
        ):
            if written:
                _log(
                    logger,
                    event,
                    collection,
                    image_id=self.image_id,
                    receipt_id=self.receipt_id,
                    records=self.done.records,
                    changed=changed,
                )


def receipt_key_writes(
    collection: Any,
    image_id: str,
    receipt_id: int,
    *,
    merchant: Mapping[str, MetadataValue] | None,
    labels: Iterable[ReceiptWordLabel] | None,
    record_ids: Iterable[str] | None = None,
) -> ReceiptKeyWrites:
    """Read the receipt's records — those of ``record_ids`` that exist, else every
    record of the receipt — and work out the merchant keys (a flat ``field → value``
    mapping; None deletes) and, with ``labels`` (all current label rows of the receipt),
    the label keys each must be written. Writes nothing."""

    def work() -> ReceiptKeyWrites:
        current = (
            receipt_metadatas(collection, image_id, receipt_id)
            if record_ids is None
            else metadatas_of(collection, record_ids)
        )
        by_record = label_metadata_by_record(labels) if labels is not None else None
        writes, done = _key_writes(current, merchant or {}, by_record)
        return ReceiptKeyWrites(
            image_id, receipt_id, writes, done, merchant is not None, labels is not None
        )

    return guard_receipt("metadata update", image_id, receipt_id, work)


def apply_receipt_keys(
    collection: Any,
    image_id: str,
    receipt_id: int,
    *,
    merchant: Mapping[str, MetadataValue] | None,
    labels: Iterable[ReceiptWordLabel] | None,
    logger: OperationLogger,
    record_ids: Iterable[str] | None = None,
) -> KeyUpdate:
    """``receipt_key_writes``, then one batched update carrying only the keys whose values
    differ; a record already holding every value is not written at all."""
    planned = receipt_key_writes(
        collection, image_id, receipt_id, merchant=merchant, labels=labels, record_ids=record_ids
    )
    guard_receipt(
        "metadata update",
        image_id,
        receipt_id,
        lambda: update_metadatas(collection, planned.writes),
    )
    planned.log(logger, collection)
    return planned.done


def _key_writes(
    current: Mapping[str, Mapping[str, Any] | None],
    merchant: Mapping[str, MetadataValue],
    by_record: Mapping[str, Mapping[str, MetadataValue]] | None,
) -> tuple[dict[str, dict[str, Any]], KeyUpdate]:
    """Per record, the merchant and label keys whose stored values differ, and the counts
    of records whose merchant or label values change."""
    no_labels = reconstruct_label_metadata([])
    writes: dict[str, dict[str, Any]] = {}
    merchant_changed = labels_changed = 0
    for record_id, metadata in current.items():
        stored = metadata or {}
        merchant_diff = _differing(stored, merchant)
        label_diff = (
            {} if by_record is None else _differing(stored, by_record.get(record_id, no_labels))
        )
        merchant_changed += bool(merchant_diff)
        labels_changed += bool(label_diff)
        if merchant_diff or label_diff:
            writes[record_id] = {**merchant_diff, **label_diff}
    return writes, KeyUpdate(len(current), merchant_changed, labels_changed)


def update_receipt_metadata(
    collection: Any,
    image_id: str,
    receipt_id: int,
    changes: Mapping[str, MetadataValue],
    logger: OperationLogger,
) -> int:
    """Write ``changes`` (field → value; None deletes) onto every record of the receipt;
    returns how many records the receipt has (each now holds the values)."""
    return apply_receipt_keys(
        collection, image_id, receipt_id, merchant=changes, labels=None, logger=logger
    ).records


def remove_receipt_metadata(
    collection: Any, image_id: str, receipt_id: int, logger: OperationLogger
) -> int:
    """Delete every merchant key from the receipt's records."""
    return update_receipt_metadata(
        collection, image_id, receipt_id, dict.fromkeys(MERCHANT_KEYS), logger
    )


def update_word_labels(
    collection: Any,
    image_id: str,
    receipt_id: int,
    labels: Iterable[ReceiptWordLabel],
    logger: OperationLogger,
) -> int:
    """Recompute the label keys of every word of the receipt from its label rows.

    ``labels`` are all current label rows of the receipt; a word without rows loses
    its label keys. Returns how many records the receipt has.
    """
    return apply_receipt_keys(
        collection, image_id, receipt_id, merchant=None, labels=labels, logger=logger
    ).records


def remove_word_labels(
    collection: Any, image_id: str, receipt_id: int, logger: OperationLogger
) -> int:
    """Delete every label key from the receipt's word records."""
    return update_word_labels(collection, image_id, receipt_id, [], logger)


# --- deletions ---------------------------------------------------------------------------


def delete_records(collection: Any, ids: Sequence[str]) -> None:
    """Delete ``ids`` (records known to exist); one call (per chunk)."""
    for chunk in _write_chunks(collection, ids):
        collection.delete(ids=list(chunk))


def log_deletion(
    logger: OperationLogger, collection: Any, *, image_id: str, receipt_id: int, records: int
) -> None:
    _log(
        logger,
        "embeddings deleted",
        collection,
        image_id=image_id,
        receipt_id=receipt_id,
        records=records,
    )


def delete_embeddings(
    collection: Any, ids: Iterable[str], logger: OperationLogger, *, image_id: str, receipt_id: int
) -> int:
    """Delete those of the given records that exist; returns how many existed."""

    def work() -> int:
        present = existing_ids(collection, ids)
        delete_records(collection, present)
        return len(present)

    deleted = guard_receipt("deletion", image_id, receipt_id, work)
    log_deletion(logger, collection, image_id=image_id, receipt_id=receipt_id, records=deleted)
    return deleted
