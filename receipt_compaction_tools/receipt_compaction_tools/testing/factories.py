"""Entity factories: receipt_dynamo.testing owns them (the lightest package whose tests use
them); named here for the tools, infra, benchmarks and the heavier packages' tests."""

from receipt_dynamo.testing.factories import (
    FIXED_TIME,
    IMAGE_ID,
    OTHER_IMAGE_ID,
    make_compaction_run,
    make_label,
    make_line,
    make_metadata,
    make_receipt,
    make_word,
)

__all__ = [
    "FIXED_TIME",
    "IMAGE_ID",
    "OTHER_IMAGE_ID",
    "make_compaction_run",
    "make_label",
    "make_line",
    "make_metadata",
    "make_receipt",
    "make_word",
]
