"""A complete local compaction setup for tests and benchmarks.

A table (with its real stream), a bucket, an EFS directory and a work directory, all on
whatever AWS endpoint the environment names (a moto server in integration tests), plus
helpers that turn the table's real stream records into queue messages and read back
what a published snapshot — or, with a Chroma server as the sink, the server — holds.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3

from receipt_chroma.chroma_client import ChromaClient, ClientCollection
from receipt_chroma.chroma_server import ChromaServer
from receipt_chroma.compaction import (
    CompactionConfig,
    CompactionCycle,
    CycleResult,
    produce_compaction_run,
)
from receipt_chroma.snapshots import S3SnapshotStore
from receipt_compaction_tools.aws.streams import StreamReader
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_dynamo import DynamoClient, create_table
from receipt_dynamo.aws_clients import ClientTimeouts, aws_client
from receipt_dynamo_stream import StreamMessage, build_messages
from receipt_dynamo_stream.compactor_defaults import SinkKind

LOCAL_TIMEOUTS = ClientTimeouts(connect_seconds=1, read_seconds=5, max_attempts=2)
SnapshotContents = dict[str, tuple[dict[str, Any], list[float]]]


@dataclass
class CompactionWorld:
    root: Path
    dimension: int = 8
    name: str = field(default_factory=lambda: f"w{uuid.uuid4().hex[:8]}")
    message_count: int = 0

    def __post_init__(self) -> None:
        self.table = f"receipts-{self.name}"
        self.bucket = f"chroma-{self.name}"
        self.stream_arn = create_table(self.table)
        self.dynamo = DynamoClient(self.table)
        # Bounded waits short enough for the world's 30 s lease: retention deletes only
        # when a call's worst case ends before the lease deadline (contract §6 rev 3).
        self.s3 = aws_client("s3", timeouts=LOCAL_TIMEOUTS)
        self.s3.create_bucket(Bucket=self.bucket)
        self.reader = StreamReader(self.stream_arn, client=boto3.client("dynamodbstreams"))
        self.config = CompactionConfig(
            table_name=self.table,
            bucket=self.bucket,
            chroma_root=self.root / "efs",
            work_dir=self.root / "work",
            dimension=self.dimension,
            lock_duration_seconds=30,
            heartbeat_interval_seconds=5,
            lock_wait_seconds=5,
            lock_backoff_seconds=(0.05, 0.2),
        )

    # --- producing data ---------------------------------------------------------------------

    def add_receipt(self, receipt: SyntheticReceipt, run_id: str | None = None) -> None:
        """Write the receipt's rows, then (as a producer would) its deltas and run row."""
        self.dynamo.put_entities(receipt.rows)
        produce_compaction_run(
            self.dynamo,
            image_id=receipt.image_id,
            receipt_id=receipt.receipt_id,
            run_id=run_id or str(uuid.uuid4()),
            lines=receipt.line_records(),
            words=receipt.word_records(),
            bucket=self.bucket,
            s3_client=self.s3,
        )

    def pump(self) -> dict[str, list[tuple[str, StreamMessage]]]:
        """Messages per collection from the stream records appended since the last pump."""
        built = build_messages(self.reader.read())
        assert not built.unparseable, built.unparseable
        by_collection: dict[str, list[tuple[str, StreamMessage]]] = {"lines": [], "words": []}
        for _, message in built.messages:
            self.message_count += 1
            by_collection[message.collection.value].append((f"msg-{self.message_count}", message))
        return by_collection

    def use_sink(self, sink: SinkKind, server: ChromaServer | None = None) -> None:
        """Cycles built from now on write to ``sink`` (contract §12)."""
        self.config = replace(self.config, sink=sink, server=server)

    # --- compacting -------------------------------------------------------------------------

    def cycle(self, collection: str, *, work: str = "work", **kwargs: Any) -> CompactionCycle:
        config = replace(self.config, work_dir=self.root / work)
        return CompactionCycle(config, collection, dynamo=self.dynamo, s3_client=self.s3, **kwargs)

    def compact(self, messages: dict[str, list[tuple[str, StreamMessage]]]) -> list[CycleResult]:
        return [self.cycle(c).run(pairs) for c, pairs in messages.items() if pairs]

    # --- reading back -----------------------------------------------------------------------

    def published_version(self, collection: str) -> str | None:
        pointer = self.dynamo.get_snapshot_pointer(collection)
        return None if pointer is None else pointer.version

    def snapshot_from_s3(self, collection: str, version: str | None = None) -> SnapshotContents:
        name = version or self.published_version(collection)
        assert name is not None, f"no published {collection} snapshot"
        with tempfile.TemporaryDirectory(dir=self.root) as tmp:
            S3SnapshotStore(self.s3, self.bucket, collection).download(name, Path(tmp) / "s")
            return read_snapshot(Path(tmp) / "s", collection)

    def server_records(self, collection: str) -> SnapshotContents:
        """What the Chroma server's collection holds (empty when it does not exist)."""
        assert self.config.server is not None, "no Chroma server configured"
        with self.config.server.connect(mode="read") as client:
            if collection not in client.list_collection_names():
                return {}
            return read_collection(client.get_collection(collection))


def read_snapshot(path: Path, collection: str) -> SnapshotContents:
    """Every record of a closed persist directory: id → (metadata, embedding)."""
    with ChromaClient(path, mode="read") as client:
        return read_collection(client.get_collection(collection))


def read_collection(collection: ClientCollection) -> SnapshotContents:
    """Every record of a collection: id → (metadata, embedding rounded to 5 places)."""
    found = collection.get(include=["metadatas", "embeddings"])
    embeddings = found["embeddings"] if found["embeddings"] is not None else []
    metadatas = found["metadatas"] or []
    return {
        record_id: (dict(metadata or {}), [round(float(x), 5) for x in embedding])
        for record_id, metadata, embedding in zip(found["ids"], metadatas, embeddings, strict=True)
    }
