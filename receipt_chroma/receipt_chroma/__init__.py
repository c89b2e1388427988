"""receipt_chroma: ChromaDB client, compaction operations, delta merging, snapshots, lease.

The public API is what ``__all__`` lists: the client, the operations and merge functions
of the contract (§5.5, §11), the compaction cycle the Lambda runs, its results, record ids
and the errors. Names are imported on first use, so ``import receipt_chroma.settings``
(the Pulumi program, the tools) does not load chromadb.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from receipt_chroma.chroma_client import ChromaClient
    from receipt_chroma.compaction import (
        CollectionUpdateResult,
        CompactionConfig,
        CompactionCycle,
        CycleResult,
        FailureCause,
        MessageFailure,
        RunMergeResult,
        get_efs_snapshot_manager,
        merge_compaction_deltas,
        process_collection_updates,
        produce_compaction_run,
        reconstruct_label_metadata,
        remove_receipt_metadata,
        remove_word_labels,
        update_receipt_metadata,
        update_word_labels,
        write_delta,
    )
    from receipt_chroma.exceptions import (
        ChromaClientError,
        DeltaError,
        DeltaFetchError,
        OperationError,
        ReceiptChromaError,
        SnapshotCorruptError,
        SnapshotError,
        SnapshotUnavailableError,
        UnsafeArchiveError,
    )
    from receipt_chroma.ids import line_vector_id, parse_vector_id, word_vector_id
    from receipt_chroma.reader import RefreshKind, RefreshOutcome, SnapshotReader
    from receipt_chroma.snapshots import CacheTier

_COMPACTION = "receipt_chroma.compaction"
_EXCEPTIONS = "receipt_chroma.exceptions"
_SOURCES: dict[str, str] = {
    "ChromaClient": "receipt_chroma.chroma_client",
    **dict.fromkeys(
        (
            "CollectionUpdateResult",
            "CompactionConfig",
            "CompactionCycle",
            "CycleResult",
            "FailureCause",
            "MessageFailure",
            "RunMergeResult",
            "get_efs_snapshot_manager",
            "merge_compaction_deltas",
            "process_collection_updates",
            "produce_compaction_run",
            "reconstruct_label_metadata",
            "remove_receipt_metadata",
            "remove_word_labels",
            "update_receipt_metadata",
            "update_word_labels",
            "write_delta",
        ),
        _COMPACTION,
    ),
    **dict.fromkeys(
        (
            "ChromaClientError",
            "DeltaError",
            "DeltaFetchError",
            "OperationError",
            "ReceiptChromaError",
            "SnapshotCorruptError",
            "SnapshotError",
            "SnapshotUnavailableError",
            "UnsafeArchiveError",
        ),
        _EXCEPTIONS,
    ),
    **dict.fromkeys(("line_vector_id", "parse_vector_id", "word_vector_id"), "receipt_chroma.ids"),
    **dict.fromkeys(("RefreshKind", "RefreshOutcome", "SnapshotReader"), "receipt_chroma.reader"),
    "CacheTier": "receipt_chroma.snapshots",
}

__all__ = [
    "CacheTier",
    "ChromaClient",
    "ChromaClientError",
    "CollectionUpdateResult",
    "CompactionConfig",
    "CompactionCycle",
    "CycleResult",
    "DeltaError",
    "DeltaFetchError",
    "FailureCause",
    "MessageFailure",
    "OperationError",
    "ReceiptChromaError",
    "RefreshKind",
    "RefreshOutcome",
    "RunMergeResult",
    "SnapshotCorruptError",
    "SnapshotError",
    "SnapshotReader",
    "SnapshotUnavailableError",
    "UnsafeArchiveError",
    "get_efs_snapshot_manager",
    "line_vector_id",
    "merge_compaction_deltas",
    "parse_vector_id",
    "process_collection_updates",
    "produce_compaction_run",
    "reconstruct_label_metadata",
    "remove_receipt_metadata",
    "remove_word_labels",
    "update_receipt_metadata",
    "update_word_labels",
    "word_vector_id",
    "write_delta",
]


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'receipt_chroma' has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
