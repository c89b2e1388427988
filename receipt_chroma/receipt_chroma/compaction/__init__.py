"""Compaction: collection operations, delta merging and batch processing."""

from receipt_chroma.compaction.compaction_run import MergeTarget, merge_compaction_deltas
from receipt_chroma.compaction.config import CompactionConfig
from receipt_chroma.compaction.cycle import CompactionCycle, CycleResult, FailureCause
from receipt_chroma.compaction.delta_reader import (
    DeltaReader,
    DeltaReaderProcess,
    DeltaReadRequest,
    InProcessDeltaReader,
    load_delta,
    shared_delta_reader,
)
from receipt_chroma.compaction.deltas import (
    DeltaLocation,
    publish_compaction_run,
    read_delta,
    write_delta,
)
from receipt_chroma.compaction.efs_snapshot_manager import (
    EFSSnapshotManager,
    get_efs_snapshot_manager,
)
from receipt_chroma.compaction.lease import LockManager
from receipt_chroma.compaction.models import (
    CollectionUpdateResult,
    DeltaRecord,
    MessageFailure,
    RunMergeResult,
)
from receipt_chroma.compaction.operations import (
    KeyUpdate,
    apply_receipt_keys,
    delete_embeddings,
    merchant_metadata,
    reconstruct_label_metadata,
    remove_receipt_metadata,
    remove_word_labels,
    update_receipt_metadata,
    update_word_labels,
)
from receipt_chroma.compaction.processor import process_collection_updates, record_run_outcomes

__all__ = [
    "CollectionUpdateResult",
    "CompactionConfig",
    "CompactionCycle",
    "CycleResult",
    "EFSSnapshotManager",
    "FailureCause",
    "LockManager",
    "DeltaLocation",
    "DeltaReadRequest",
    "DeltaReader",
    "DeltaReaderProcess",
    "DeltaRecord",
    "InProcessDeltaReader",
    "MergeTarget",
    "MessageFailure",
    "RunMergeResult",
    "KeyUpdate",
    "apply_receipt_keys",
    "delete_embeddings",
    "get_efs_snapshot_manager",
    "load_delta",
    "merchant_metadata",
    "merge_compaction_deltas",
    "process_collection_updates",
    "publish_compaction_run",
    "read_delta",
    "reconstruct_label_metadata",
    "record_run_outcomes",
    "remove_receipt_metadata",
    "remove_word_labels",
    "shared_delta_reader",
    "update_receipt_metadata",
    "update_word_labels",
    "write_delta",
]
