"""Where a compaction cycle's effect goes (contract §12, ``CHROMA_SINK``): published
snapshot versions, a Chroma server's collection, or both while migrating. The cycle keeps
the lease; a ``Sink`` does everything between acquiring and releasing it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from receipt_chroma.compaction.config import CompactionConfig, SinkKind
from receipt_chroma.compaction.operations import OperationLogger
from receipt_chroma.compaction.sinks.base import Durable, Sink, Stage
from receipt_chroma.compaction.sinks.both import BothSink, combine
from receipt_chroma.compaction.sinks.server import ServerSink
from receipt_chroma.compaction.sinks.snapshot import SnapshotSink
from receipt_chroma.snapshots.service import CollectionSnapshots
from receipt_dynamo.constants import ChromaDBCollection
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo_stream.exceptions import ConfigurationError

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client


def sink_for(
    config: CompactionConfig,
    collection: ChromaDBCollection,
    snapshots: CollectionSnapshots,
    *,
    dynamo: DynamoClient,
    s3_client: S3Client,
    logger: OperationLogger,
    stage: Stage,
) -> Sink:
    """The sink ``config.sink`` names, built for one collection."""
    s3 = s3_client
    snapshot = SnapshotSink(
        config, collection, snapshots, dynamo=dynamo, s3_client=s3, logger=logger, stage=stage
    )
    if config.sink is SinkKind.SNAPSHOT:
        return snapshot
    if config.server is None:  # CompactionConfig refuses this; a hand-built one may not
        raise ConfigurationError(f"CHROMA_SINK={config.sink.value} needs the Chroma server")
    server = ServerSink(
        config, collection, config.server, dynamo=dynamo, s3_client=s3, logger=logger, stage=stage
    )
    return server if config.sink is SinkKind.SERVER else BothSink(server, snapshot)


__all__ = [
    "BothSink",
    "Durable",
    "ServerSink",
    "Sink",
    "SinkKind",
    "SnapshotSink",
    "Stage",
    "combine",
    "sink_for",
]
