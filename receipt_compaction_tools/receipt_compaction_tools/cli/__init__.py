"""The ``receipt-compaction`` command line."""
