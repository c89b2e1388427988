"""Chroma record ids (contract §4) and the metadata derived from them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from receipt_dynamo.constants import ChromaDBCollection
from receipt_dynamo.keys import IMAGE_ID_PATTERN

_LINE_ID_RE: Final = re.compile(
    rf"IMAGE#({IMAGE_ID_PATTERN})#RECEIPT#(\d{{5}})#LINE#(\d{{5}})", re.ASCII
)
_WORD_ID_RE: Final = re.compile(
    rf"IMAGE#({IMAGE_ID_PATTERN})#RECEIPT#(\d{{5}})#LINE#(\d{{5}})#WORD#(\d{{5}})", re.ASCII
)


@dataclass(frozen=True, slots=True)
class VectorKey:
    """The row a record belongs to: a line (word_id None) or a word."""

    image_id: str
    receipt_id: int
    line_id: int
    word_id: int | None = None

    @property
    def vector_id(self) -> str:
        base = f"IMAGE#{self.image_id}#RECEIPT#{self.receipt_id:05d}#LINE#{self.line_id:05d}"
        return base if self.word_id is None else f"{base}#WORD#{self.word_id:05d}"

    def base_metadata(self) -> dict[str, Any]:
        """``image_id``, ``receipt_id``, ``line_id`` (and ``word_id``) for the record."""
        metadata: dict[str, Any] = {
            "image_id": self.image_id,
            "receipt_id": self.receipt_id,
            "line_id": self.line_id,
        }
        if self.word_id is not None:
            metadata["word_id"] = self.word_id
        return metadata


def line_vector_id(image_id: str, receipt_id: int, line_id: int) -> str:
    return VectorKey(image_id, receipt_id, line_id).vector_id


def word_vector_id(image_id: str, receipt_id: int, line_id: int, word_id: int) -> str:
    return VectorKey(image_id, receipt_id, line_id, word_id).vector_id


def parse_vector_id(vector_id: str, collection: ChromaDBCollection | str) -> VectorKey:
    """The key of a record id of ``collection``; ValueError if it is not one."""
    kind = ChromaDBCollection(collection)
    pattern = _WORD_ID_RE if kind is ChromaDBCollection.WORDS else _LINE_ID_RE
    match = pattern.fullmatch(vector_id)
    if match is None:
        raise ValueError(f"{vector_id!r} is not a {kind.value} record id")
    groups = match.groups()
    ids = [int(g) for g in groups[1:]]
    if any(i == 0 for i in ids):
        raise ValueError(f"{vector_id!r} has an id of 00000")
    return VectorKey(groups[0], *ids)
