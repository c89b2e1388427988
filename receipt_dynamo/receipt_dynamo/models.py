"""Aggregates read from the table (as opposed to single entities)."""

from __future__ import annotations

from dataclasses import dataclass, field

from receipt_dynamo.entities import CompactionRun, ReceiptMetadata, ReceiptWordLabel


@dataclass(frozen=True)
class ReceiptRows:
    """What the compactor needs of one receipt, from one strongly consistent query.

    Lines and words are known by their ids only (their existence is what matters);
    metadata, labels and runs are whole entities.
    """

    image_id: str
    receipt_id: int
    exists: bool = False
    metadata: ReceiptMetadata | None = None
    line_ids: frozenset[int] = frozenset()
    word_ids: frozenset[tuple[int, int]] = frozenset()  # (line_id, word_id)
    labels: list[ReceiptWordLabel] = field(default_factory=list)
    runs: list[CompactionRun] = field(default_factory=list)
