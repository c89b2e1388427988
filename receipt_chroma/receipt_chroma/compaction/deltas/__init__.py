"""Embedding deltas: their format (``files``), how producers write them (``producer``),
and how the compactor fetches (``fetch``) and reads them (``reader``, with its helper
process ``worker``). Merging them is ``compaction.compaction_run``."""

from receipt_chroma.compaction.deltas.fetch import DeltaLocation, download_delta
from receipt_chroma.compaction.deltas.files import (
    DELTA_TARBALL,
    RecordTuple,
    delta_prefix,
    read_delta,
    write_delta,
)
from receipt_chroma.compaction.deltas.producer import produce_compaction_run
from receipt_chroma.compaction.deltas.reader import (
    DeltaReader,
    DeltaReaderProcess,
    DeltaReadRequest,
    InProcessDeltaReader,
    shared_delta_reader,
)

__all__ = [
    "DELTA_TARBALL",
    "DeltaLocation",
    "DeltaReadRequest",
    "DeltaReader",
    "DeltaReaderProcess",
    "InProcessDeltaReader",
    "RecordTuple",
    "delta_prefix",
    "download_delta",
    "produce_compaction_run",
    "read_delta",
    "shared_delta_reader",
    "write_delta",
]
