"""The server sink (contract §12): the batch applied straight to a Chroma server's
collection through ``ChromaClient(http_host=…)`` — no working copy, snapshot or pointer.

The same plan and apply stages as the snapshot sink write the same §4 ids and metadata
under the same §5.4 rules: the provenance keys each record carries make a merge
order-proof without a local copy (the record the server holds says which run's vector it
has), a merge never deletes, and a REMOVE deletes only ids whose rows are gone. Every call
is synchronous, so when the apply stage returns, each write the runs depend on has been
acknowledged (and a merge has read its ids back). The commit is then the lease confirmed
in DynamoDB; the cycle marks the runs only after it.

Chroma has no conditional writes, so the lease cannot fence the server the way the pointer
transaction fences a publish. Instead the lease is checked before every write call and
every retry of one (``write_guard``): once the lease is lost — refused heartbeat, or local
time within the safety margin of its last confirmed expiry — no further write is sent.
"""

from __future__ import annotations

from pathlib import Path

from receipt_chroma.chroma_server import ChromaServer
from receipt_chroma.compaction.lease import LockManager
from receipt_chroma.compaction.sinks.base import Commit, OpenedCollection
from receipt_chroma.exceptions import SinkUnavailableError
from receipt_chroma.stages import Stage, StageRunner
from receipt_dynamo_stream.compactor_defaults import SinkKind

SERVER_STAGES = "server_"
"""The prefix of the server sink's stages in timings and traces (``server_apply``)."""


class ServerSink:
    kind = SinkKind.SERVER

    def __init__(self, server: ChromaServer, collection: str, work_dir: Path) -> None:
        self.server = server
        self.collection = collection
        self.work_dir = work_dir

    def open(self, lease: LockManager) -> OpenedCollection:
        """The server's client, once the collection is there in the §4 configuration (an
        unreachable server or a collection in another space fails before the plan)."""
        # Deltas are still downloaded and read on local disk (nothing else is kept there).
        self.work_dir.mkdir(parents=True, exist_ok=True)
        client = self.server.connect(mode="write", write_guard=lease.ensure_held)
        try:
            client.get_or_create_collection(self.collection)
        except BaseException:
            client.close()
            raise
        return OpenedCollection(client)

    def commit(self, opened: OpenedCollection, lease: LockManager, stages: StageRunner) -> Commit:
        with stages.run(Stage.COMMIT, SERVER_STAGES):
            if opened.client.unavailable is not None:
                # The server went away mid-batch: what reached it stays (every write is
                # idempotent, and a run merged in part still counts as its receipt's run,
                # so its retry completes it), and the whole batch is retried.
                raise SinkUnavailableError(opened.client.unavailable)
            # The runs are marked by the lease's holder only: a heartbeat is a conditional
            # write on owner and token, so a lease taken over meanwhile is seen here.
            lease.heartbeat()
            lease.ensure_held()
        return Commit()

    def abandon(self, opened: OpenedCollection) -> None:
        opened.client.close()
