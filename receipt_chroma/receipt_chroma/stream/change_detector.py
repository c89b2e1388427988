"""Re-export of the change-detection API owned by ``receipt_dynamo_stream``.

One definition, two import paths: the user's code imports it from here.
"""

from receipt_dynamo_stream.change_detection.detector import (
    CHROMADB_RELEVANT_FIELDS,
    get_chromadb_relevant_changes,
)

__all__ = ["CHROMADB_RELEVANT_FIELDS", "get_chromadb_relevant_changes"]
