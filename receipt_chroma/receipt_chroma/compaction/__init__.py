"""Compaction: the cycle the Lambda runs, collection operations, delta merging and batch
processing. ``__all__`` is the public API; the modules' other names are internals."""

from receipt_chroma.compaction.apply_batch import process_collection_updates
from receipt_chroma.compaction.compaction_run import MergeTarget, merge_compaction_deltas
from receipt_chroma.compaction.config import (
    CompactionConfig,
    chroma_server_from_env,
    snapshot_settings_from_env,
)
from receipt_chroma.compaction.cycle import CompactionCycle
from receipt_chroma.compaction.deltas import (
    RecordTuple,
    produce_compaction_run,
    shared_delta_reader,
    write_delta,
)
from receipt_chroma.compaction.efs_snapshot_manager import (
    EFSSnapshotManager,
    get_efs_snapshot_manager,
)
from receipt_chroma.compaction.lease import LockManager
from receipt_chroma.compaction.models import (
    CollectionUpdateResult,
    CycleResult,
    FailureCause,
    MessageFailure,
    RunMergeResult,
)
from receipt_chroma.compaction.operations import (
    KeyUpdate,
    apply_receipt_keys,
    delete_embeddings,
    reconstruct_label_metadata,
    remove_receipt_metadata,
    remove_word_labels,
    update_receipt_metadata,
    update_word_labels,
)
from receipt_chroma.compaction.record_keys import label_metadata_by_record, merchant_metadata

__all__ = [
    "CollectionUpdateResult",
    "CompactionConfig",
    "CompactionCycle",
    "CycleResult",
    "EFSSnapshotManager",
    "FailureCause",
    "KeyUpdate",
    "LockManager",
    "MergeTarget",
    "MessageFailure",
    "RecordTuple",
    "RunMergeResult",
    "apply_receipt_keys",
    "chroma_server_from_env",
    "delete_embeddings",
    "get_efs_snapshot_manager",
    "label_metadata_by_record",
    "merchant_metadata",
    "merge_compaction_deltas",
    "process_collection_updates",
    "produce_compaction_run",
    "reconstruct_label_metadata",
    "remove_receipt_metadata",
    "remove_word_labels",
    "shared_delta_reader",
    "snapshot_settings_from_env",
    "update_receipt_metadata",
    "update_word_labels",
    "write_delta",
]
