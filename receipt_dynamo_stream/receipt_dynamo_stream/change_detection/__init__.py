"""Detection of ChromaDB-relevant field changes."""

from receipt_dynamo_stream.change_detection.detector import (
    CHROMADB_RELEVANT_FIELDS,
    get_chromadb_relevant_changes,
)

__all__ = ["CHROMADB_RELEVANT_FIELDS", "get_chromadb_relevant_changes"]
