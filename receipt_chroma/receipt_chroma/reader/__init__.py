"""A query-side reader of published snapshots: follows the pointer, catches up by the
files that differ, opens and warms each new version beside the serving one and swaps it
in, so queries never wait for a download or an index build (``SnapshotReader``)."""

from receipt_chroma.reader.exceptions import (
    NoPointerError,
    NothingServedError,
    ReaderBusyError,
    ReaderClosedError,
    VersionCheckError,
)
from receipt_chroma.reader.models import ReaderAnswer, RefreshKind, RefreshOutcome, ServedVersion
from receipt_chroma.reader.snapshot_reader import SnapshotReader

__all__ = [
    "NoPointerError",
    "NothingServedError",
    "ReaderAnswer",
    "ReaderBusyError",
    "ReaderClosedError",
    "RefreshKind",
    "RefreshOutcome",
    "ServedVersion",
    "SnapshotReader",
    "VersionCheckError",
]
