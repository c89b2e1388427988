"""receipt_chroma: ChromaDB client, compaction operations, delta merging, snapshots, lease.

The root holds the names most callers need: the client (contract §11), the compaction
cycle the Lambda runs and its result, the collection operations and merges (§5.5), the
delta writer, the query-side reader and the root error. Each room's own API is its
package: ``receipt_chroma.compaction``, ``.snapshots``, ``.reader``, ``.lambda_support``,
``.exceptions``, ``.ids``, ``.stages``. Importing this package loads chromadb; the
settings the Pulumi program and the tools read without it live in the light package
(``receipt_dynamo_stream.compactor_defaults``).
"""

from receipt_chroma.chroma_client import ChromaClient
from receipt_chroma.compaction import (
    CompactionConfig,
    CompactionCycle,
    CycleResult,
    MessageFailure,
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
from receipt_chroma.exceptions import ReceiptChromaError
from receipt_chroma.reader import SnapshotReader

__all__ = [
    "ChromaClient",
    "CompactionConfig",
    "CompactionCycle",
    "CycleResult",
    "MessageFailure",
    "ReceiptChromaError",
    "SnapshotReader",
    "merge_compaction_deltas",
    "process_collection_updates",
    "produce_compaction_run",
    "reconstruct_label_metadata",
    "remove_receipt_metadata",
    "remove_word_labels",
    "update_receipt_metadata",
    "update_word_labels",
    "write_delta",
]
