"""Reads of a collection's records: a receipt's records, the metadata or existence of given
ids. Counts in results come from these (what exists), never from the return value of a
Chroma ``update``/``delete`` (contract §4). Ids are read in chunks of ``WRITE_CHUNK``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from receipt_chroma.constants import WRITE_CHUNK

T = TypeVar("T")


def chunks(items: Sequence[T], size: int = WRITE_CHUNK) -> Iterable[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size`` (one Chroma call each)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def receipt_metadatas(collection: Any, image_id: str, receipt_id: int) -> dict[str, Any]:
    """Every record of the receipt with its metadata (found by a metadata query).

    The query filters on ``image_id`` alone and checks ``receipt_id`` here: an image has
    a handful of receipts, while ``receipt_id = 1`` matches most of a snapshot, and
    intersecting with it makes the query grow with the snapshot.
    """
    result = collection.get(where={"image_id": image_id}, include=["metadatas"])
    metadatas = result["metadatas"] or []
    return {
        record_id: metadata
        for record_id, metadata in zip(result["ids"], metadatas, strict=False)
        if metadata and metadata.get("receipt_id") == receipt_id
    }


def receipt_record_ids(collection: Any, image_id: str, receipt_id: int) -> list[str]:
    """Ids of every record of the receipt in ``collection``."""
    return sorted(receipt_metadatas(collection, image_id, receipt_id))


def metadatas_of(collection: Any, ids: Iterable[str]) -> dict[str, Any]:
    """The metadata of each of ``ids`` that exists in ``collection``."""
    found: dict[str, Any] = {}
    for chunk in chunks(sorted(set(ids))):
        result = collection.get(ids=list(chunk), include=["metadatas"])
        found.update(zip(result["ids"], result["metadatas"] or [], strict=False))
    return found


def existing_ids(collection: Any, ids: Iterable[str]) -> list[str]:
    """The subset of ``ids`` that exists in ``collection``."""
    unique = sorted(set(ids))
    found: list[str] = []
    for chunk in chunks(unique):
        found += collection.get(ids=list(chunk), include=[])["ids"]
    return sorted(set(found))
