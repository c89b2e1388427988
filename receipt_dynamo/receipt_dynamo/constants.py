"""Enumerations shared by every package of the pipeline (defined once, here)."""

from __future__ import annotations

from enum import StrEnum


class ValidationStatus(StrEnum):
    """Validation state of a word label (``validation_status``; absent means NONE)."""

    NONE = "NONE"
    PENDING = "PENDING"
    VALID = "VALID"
    INVALID = "INVALID"
    NEEDS_REVIEW = "NEEDS_REVIEW"


class EmbeddingStatus(StrEnum):
    """Embedding state of a line or word."""

    NONE = "NONE"
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    NOISE = "NOISE"


class CompactionState(StrEnum):
    """State of one collection's half of a compaction run."""

    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class ChromaDBCollection(StrEnum):
    """The two vector collections that follow the table."""

    LINES = "lines"
    WORDS = "words"


class EntityType(StrEnum):
    """``TYPE`` attribute of the rows the pipeline reads or writes."""

    RECEIPT = "RECEIPT"
    RECEIPT_LINE = "RECEIPT_LINE"
    RECEIPT_WORD = "RECEIPT_WORD"
    RECEIPT_WORD_LABEL = "RECEIPT_WORD_LABEL"
    RECEIPT_METADATA = "RECEIPT_METADATA"
    COMPACTION_RUN = "COMPACTION_RUN"
    COMPACTION_LOCK = "COMPACTION_LOCK"
    SNAPSHOT_POINTER = "SNAPSHOT_POINTER"
