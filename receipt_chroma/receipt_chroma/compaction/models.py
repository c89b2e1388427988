"""Results of compaction work, per run and per batch of messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from receipt_dynamo.constants import ChromaDBCollection

ReceiptKey = tuple[str, int]
"""(image_id, receipt_id)."""


@dataclass(frozen=True, slots=True)
class DeltaRecord:
    """One record of a delta: ``(id, embedding, document, metadata)``."""

    id: str
    embedding: Any  # a row of the float array Chroma returns
    document: str | None
    metadata: dict[str, Any]


@dataclass(slots=True)
class RunMergeResult:
    """What happened to one CompactionRun in one collection."""

    run_id: str
    image_id: str
    receipt_id: int
    collection: ChromaDBCollection
    merged_vectors: int = 0
    dropped_vectors: int = 0  # delta records whose line/word row is absent
    held_by_newer: int = 0  # delta records whose record holds a newer run's vector
    skipped_reason: str | None = None
    error: str | None = None
    # A backfill re-merge of a run already COMPLETED: a failure leaves it COMPLETED (the
    # published version still holds its merge).
    was_completed: bool = False

    @property
    def merged(self) -> bool:
        """The delta was merged in this batch (not skipped, not failed); the run is marked
        COMPLETED once the batch's version is published (or, when the merge needed no
        write, at the end of the cycle)."""
        return self.error is None and self.skipped_reason is None


@dataclass(frozen=True, slots=True)
class MessageFailure:
    message_id: str
    reason: str


@dataclass(slots=True)
class CollectionUpdateResult:
    """The outcome of applying one batch of messages to one collection."""

    collection: ChromaDBCollection
    failures: list[MessageFailure] = field(default_factory=list)
    runs: list[RunMergeResult] = field(default_factory=list)
    receipts: int = 0
    metadata_updates: int = 0
    label_updates: int = 0
    records_updated: int = 0
    records_deleted: int = 0
    invalid_rows: int = 0

    @property
    def failed_message_ids(self) -> set[str]:
        return {f.message_id for f in self.failures}

    @property
    def vectors_merged(self) -> int:
        return sum(r.merged_vectors for r in self.runs)
