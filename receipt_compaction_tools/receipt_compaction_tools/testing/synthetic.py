"""Synthetic receipts: table rows plus delta records with deterministic embeddings.

Embeddings are derived from the record id (a seeded generator), so the same receipt
always has the same vectors; dimensions can be kept small for fast tests.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from receipt_chroma.compaction import RecordTuple
from receipt_chroma.ids import line_vector_id, word_vector_id
from receipt_dynamo.entities import DynamoEntity, Receipt, ReceiptLine, ReceiptWord
from receipt_dynamo.testing import make_line, make_receipt, make_word


def embedding_for(vector_id: str, dimension: int) -> list[float]:
    """A deterministic unit vector for ``vector_id``."""
    seed = int.from_bytes(hashlib.sha256(vector_id.encode()).digest()[:8], "big")
    vector = np.random.default_rng(seed).standard_normal(dimension)
    return [float(x) for x in vector / np.linalg.norm(vector)]


@dataclass
class SyntheticReceipt:
    image_id: str
    receipt_id: int
    lines: int = 3
    words_per_line: int = 2
    dimension: int = 8
    vocabulary: tuple[str, ...] | list[str] = ()
    receipt: Receipt = field(init=False)
    line_rows: list[ReceiptLine] = field(init=False)
    word_rows: list[ReceiptWord] = field(init=False)

    def __post_init__(self) -> None:
        self.receipt = make_receipt(self.image_id, self.receipt_id)
        self.line_rows = [
            make_line(self.image_id, self.receipt_id, line, text=f"line {line} text")
            for line in range(1, self.lines + 1)
        ]
        self.word_rows = [
            make_word(self.image_id, self.receipt_id, line, word, text=self._word_text(line, word))
            for line in range(1, self.lines + 1)
            for word in range(1, self.words_per_line + 1)
        ]

    def _word_text(self, line: int, word: int) -> str:
        if not self.vocabulary:
            return f"w{line}.{word}"
        return self.vocabulary[(self.receipt_id * 31 + line * 7 + word) % len(self.vocabulary)]

    @property
    def rows(self) -> list[DynamoEntity]:
        return [self.receipt, *self.line_rows, *self.word_rows]

    def line_records(self) -> list[RecordTuple]:
        return [
            (
                vector_id := line_vector_id(self.image_id, self.receipt_id, line.line_id),
                embedding_for(vector_id, self.dimension),
                line.text,
                {"text": line.text},
            )
            for line in self.line_rows
        ]

    def word_records(self) -> list[RecordTuple]:
        return [
            (
                vector_id := word_vector_id(
                    self.image_id, self.receipt_id, word.line_id, word.word_id
                ),
                embedding_for(vector_id, self.dimension),
                word.text,
                {"text": word.text},
            )
            for word in self.word_rows
        ]
