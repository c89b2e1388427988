"""Aggregates read from the table (as opposed to single entities)."""

from __future__ import annotations

from dataclasses import dataclass, field

from receipt_dynamo.entities import (
    CompactionRun,
    Receipt,
    ReceiptLine,
    ReceiptMetadata,
    ReceiptWord,
    ReceiptWordLabel,
)


@dataclass(frozen=True)
class ReceiptRows:
    """Every row of one receipt that the compactor reads, from one consistent query."""

    image_id: str
    receipt_id: int
    receipt: Receipt | None = None
    metadata: ReceiptMetadata | None = None
    lines: list[ReceiptLine] = field(default_factory=list)
    words: list[ReceiptWord] = field(default_factory=list)
    labels: list[ReceiptWordLabel] = field(default_factory=list)
    runs: list[CompactionRun] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        return self.receipt is not None
