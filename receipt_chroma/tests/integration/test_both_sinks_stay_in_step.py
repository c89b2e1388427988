"""``CHROMA_SINK=both`` (contract §12, the migration from snapshots to a server): one plan
and one delta fetch serve both sinks, which hold the same records, and an unreachable
server fails the cycle before the snapshot or the table is touched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from server_sink_support import IMPATIENT, patient_server, populate, run_states

from receipt_chroma import server_migration as migration
from receipt_chroma.chroma_server import ChromaServer
from receipt_chroma.compaction import FailureCause
from receipt_compaction_tools.local.chroma_server import LocalChromaServer, _free_port
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo.testing import IMAGE_ID, make_label
from receipt_dynamo_stream.compactor_defaults import SinkKind

pytestmark = pytest.mark.integration


def assert_same_records(server: dict[str, Any], snapshot: dict[str, Any]) -> None:
    """The two sinks' records are equal; when not, the message names each differing id
    with the metadata keys (and whether the vector) that differ."""
    differences = {}
    for record_id in sorted(server.keys() | snapshot.keys()):
        if record_id not in server or record_id not in snapshot:
            differences[record_id] = "server only" if record_id in server else "snapshot only"
            continue
        (server_metadata, server_vector), (snapshot_metadata, snapshot_vector) = (
            server[record_id],
            snapshot[record_id],
        )
        keys = server_metadata.keys() | snapshot_metadata.keys()
        differing = {
            key: (server_metadata.get(key), snapshot_metadata.get(key))
            for key in sorted(keys)
            if server_metadata.get(key) != snapshot_metadata.get(key)
        }
        if differing or server_vector != snapshot_vector:
            differences[record_id] = {
                "metadata (server, snapshot)": differing,
                "vector differs": server_vector != snapshot_vector,
            }
    assert differences == {}


@pytest.fixture
def world(
    aws_endpoint: str, tmp_path: Path, chroma_server: LocalChromaServer, chroma_database: str
) -> CompactionWorld:
    """A world whose cycles write the snapshot and a fresh database of the server."""
    world = CompactionWorld(tmp_path)
    world.use_sink(SinkKind.BOTH, patient_server(chroma_server, chroma_database))
    return world


def _server(world: CompactionWorld) -> ChromaServer:
    assert world.config.server is not None
    return world.config.server


def test_both_sinks_hold_the_same_records(world: CompactionWorld) -> None:
    populate(world)
    results = world.compact(world.pump())
    assert all(r.failures == [] for r in results), [r.failures for r in results]
    assert all(r.server_applied and r.published_version for r in results)
    world.dynamo.delete_receipt_word(IMAGE_ID, 1, 2, 1)
    world.dynamo.put_receipt_word_label(make_label(IMAGE_ID, 1, 1, 2, "TAX"))
    results = world.compact(world.pump())
    assert all(r.failures == [] for r in results)
    assert run_states(world, IMAGE_ID) == {("COMPLETED", "COMPLETED")}
    for collection in ("lines", "words"):
        assert_same_records(world.server_records(collection), world.snapshot_from_s3(collection))
        report = migration.verify(world.dynamo, world.bucket, collection, _server(world))
        assert report["ok"], report
        assert report["compared"] == len(world.server_records(collection))


def test_both_sinks_read_each_receipt_and_fetch_each_delta_once(world: CompactionWorld) -> None:
    """One plan and one fetch serve both sinks: each receipt's rows are queried once and
    each delta is requested once (a presigned URL or a GetObject), not once per sink."""
    populate(world)
    messages = world.pump()["words"]
    queries: list[str] = []
    delta_gets: list[str] = []

    def query(params: dict[str, Any], **_: Any) -> None:
        queries.append(json.dumps(params.get("ExpressionAttributeValues"), sort_keys=True))

    def get(params: dict[str, Any], **_: Any) -> None:
        if "/snapshot/" not in params.get("Key", ""):
            delta_gets.append(params["Key"])

    world.dynamo.client.meta.events.register("before-parameter-build.dynamodb.Query", query)
    world.s3.meta.events.register("before-parameter-build.s3.GetObject", get)

    result = world.cycle("words").run(messages)

    assert result.failures == [], result.failures
    assert result.server_applied
    assert result.published_version is not None
    receipt_queries = [q for q in queries if "RECEIPT#" in q]
    assert len(receipt_queries) == 2 == len(set(receipt_queries))  # two receipts
    assert len(delta_gets) == 2 == len(set(delta_gets))  # one run per receipt
    assert_same_records(world.server_records("words"), world.snapshot_from_s3("words"))


def test_both_sinks_fail_together_when_the_server_is_unreachable(
    world: CompactionWorld,
) -> None:
    world.use_sink(
        SinkKind.BOTH, ChromaServer(host="127.0.0.1", port=_free_port(), retry=IMPATIENT)
    )
    populate(world)
    messages = world.pump()["words"]
    result = world.cycle("words").run(messages)
    assert result.cause is FailureCause.SINK_UNAVAILABLE
    assert result.failed_message_ids == {m for m, _ in messages}
    assert world.dynamo.get_snapshot_pointer("words") is None  # the snapshot waits too
    assert run_states(world, IMAGE_ID) == {("PENDING", "PENDING")}
