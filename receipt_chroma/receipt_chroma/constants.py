"""Names and defaults of the vector store contract (contract §4)."""

from __future__ import annotations

from typing import Final

COLLECTION_CONFIGURATION: Final = {"hnsw": {"space": "cosine"}}

# Copied from the receipt's ReceiptMetadata onto every line and word record.
MERCHANT_KEYS: Final = (
    "merchant_name",
    "canonical_merchant_name",
    "merchant_category",
    "address",
    "phone_number",
    "place_id",
    "merchant_updated_at",
)

# Derived from the word's label rows (words collection only).
LABEL_KEYS: Final = (
    "label_status",
    "valid_labels_array",
    "invalid_labels_array",
    "label_proposed_by",
    "label_validated_at",
    "labels_updated_at",
)

# The CompactionRun whose delta supplied a record's vector, document and text: its run_id
# and created_at. Only merges write them; a merge never replaces a newer run's vector.
EMBEDDING_RUN_ID: Final = "embedding_run_id"
EMBEDDING_CREATED_AT: Final = "embedding_created_at"
PROVENANCE_KEYS: Final = (EMBEDDING_RUN_ID, EMBEDDING_CREATED_AT)

# Writes are chunked well below Chroma's maximum batch size (5461 here).
WRITE_CHUNK: Final = 1000
