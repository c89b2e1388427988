"""Where a compaction cycle's effect goes (contract §12, ``CHROMA_SINK``): published
snapshot versions, a Chroma server's collection, or both while migrating. The cycle keeps
the lease and runs the stages; a ``Sink`` opens its collection and commits it."""

from __future__ import annotations

from receipt_chroma.compaction.config import CompactionConfig
from receipt_chroma.compaction.sinks.base import Commit, OpenedCollection, Sink
from receipt_chroma.compaction.sinks.both import combine
from receipt_chroma.compaction.sinks.server import SERVER_STAGES, ServerSink
from receipt_chroma.compaction.sinks.snapshot import SnapshotSink
from receipt_chroma.snapshots.service import CollectionSnapshots
from receipt_dynamo_stream.compactor_defaults import SinkKind
from receipt_dynamo_stream.exceptions import ConfigurationError


def sinks_for(config: CompactionConfig, snapshots: CollectionSnapshots) -> tuple[Sink, ...]:
    """The sinks ``config.sink`` names, in the order a cycle commits them: the server
    before the snapshot (an unreachable server fails the cycle before the snapshot is
    touched)."""
    if config.sink is SinkKind.SNAPSHOT:
        return (SnapshotSink(snapshots),)
    if config.server is None:  # CompactionConfig refuses this; a hand-built one may not
        raise ConfigurationError(f"CHROMA_SINK={config.sink.value} needs the Chroma server")
    server = ServerSink(config.server, snapshots.collection, config.work_dir)
    if config.sink is SinkKind.SERVER:
        return (server,)
    return (server, SnapshotSink(snapshots))


__all__ = [
    "SERVER_STAGES",
    "Commit",
    "OpenedCollection",
    "ServerSink",
    "Sink",
    "SinkKind",
    "SnapshotSink",
    "combine",
    "sinks_for",
]
