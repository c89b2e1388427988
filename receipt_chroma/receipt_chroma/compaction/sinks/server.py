"""The server sink (contract §12): the batch applied straight to a Chroma server's
collection through ``ChromaClient(http_host=…)`` — no working copy, snapshot or pointer.

The same ``process_collection_updates`` as the snapshot sink writes the same §4 ids and
metadata under the same §5.4 rules: the provenance keys each record carries make a merge
order-proof without a local copy (the record the server holds says which run's vector it
has), a merge never deletes, and a REMOVE deletes only ids whose rows are gone. Every call
is synchronous, so when the batch returns, each write the runs depend on has been
acknowledged (and a merge has read its ids back); the runs are marked COMPLETED only then,
and only after the lease is confirmed in DynamoDB.

Chroma has no conditional writes, so the lease cannot fence the server the way the pointer
transaction fences a publish. Instead the lease is checked before every write call and
every retry of one (``write_guard``): once the lease is lost — refused heartbeat, or local
time within the safety margin of its last confirmed expiry — no further write is sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from receipt_chroma.chroma_server import ChromaServer
from receipt_chroma.compaction.apply_batch import process_collection_updates
from receipt_chroma.compaction.config import CompactionConfig
from receipt_chroma.compaction.lease import LockManager
from receipt_chroma.compaction.models import CollectionUpdateResult, CycleResult
from receipt_chroma.compaction.operations import OperationLogger
from receipt_chroma.compaction.sinks.base import Durable, Stage
from receipt_chroma.exceptions import SinkUnavailableError
from receipt_dynamo.constants import ChromaDBCollection
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo_stream.models import StreamMessage

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

_LOGGER = logging.getLogger(__name__)


class ServerSink:
    name = "server"

    def __init__(
        self,
        config: CompactionConfig,
        collection: ChromaDBCollection,
        server: ChromaServer,
        *,
        dynamo: DynamoClient,
        s3_client: S3Client,
        logger: OperationLogger = _LOGGER,
        stage: Stage,
    ) -> None:
        self.config = config
        self.collection = collection
        self.server = server
        self.dynamo = dynamo
        self.s3_client = s3_client
        self.logger = logger
        self.stage = stage

    def apply(
        self,
        messages: Sequence[tuple[str, StreamMessage]],
        lease: LockManager,
        result: CycleResult,
        durable: Durable,
    ) -> CollectionUpdateResult:
        started = time.perf_counter()
        # Deltas are still downloaded and read on local disk (nothing else is kept there).
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        with self.server.connect(mode="write", write_guard=lease.ensure_held) as client:
            try:
                update = process_collection_updates(
                    messages,
                    self.collection,
                    client,
                    self.dynamo,
                    bucket=self.config.bucket,
                    s3_client=self.s3_client,
                    dimension=self.config.dimension,
                    work_dir=self.config.work_dir,
                    logger=self.logger,
                )
            except Exception as error:
                if client.unavailable is None:
                    raise
                raise SinkUnavailableError(client.unavailable) from error
            finally:
                result.timings_ms["server_apply"] = (time.perf_counter() - started) * 1000
        result.update = update
        if client.unavailable is not None:
            # The server went away mid-batch: what reached it stays (every write is
            # idempotent, and a run merged in part still counts as its receipt's run, so
            # its retry completes it), and the whole batch is retried.
            raise SinkUnavailableError(client.unavailable)
        self.stage("server_applied")
        # The runs are marked by the lease's holder only: a heartbeat is a conditional
        # write on owner and token, so a lease taken over meanwhile is seen here.
        lease.heartbeat()
        lease.ensure_held()
        result.server_applied = True
        durable(update)
        return update
