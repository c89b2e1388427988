"""The compaction Lambda with a Chroma server as the sink (contract §12), end to end: real
queue messages from a moto server reach the handler, which writes to a real ``chroma run``
server (``CHROMA_SINK=server``) or to it and a published snapshot (``both``); an
unreachable server fails every message, which stays on its queue."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from test_compaction_handler import _emf, _invocation, _sqs_event

from receipt_chroma import server_migration as migration
from receipt_chroma.chroma_server import ChromaServer
from receipt_chroma.ids import word_vector_id
from receipt_compaction_tools.local.chroma_server import LocalChromaServer, _free_port
from receipt_compaction_tools.local.queue_consumer import lambda_record
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo.testing import IMAGE_ID, make_label, make_metadata
from receipt_dynamo_stream import publish_messages
from receipt_dynamo_stream.compactor_defaults import SinkKind

pytestmark = pytest.mark.integration


@pytest.fixture
def world(
    aws_endpoint: str,
    tmp_path: Path,
    chroma_server: LocalChromaServer,
    chroma_database: str,
    compactor_environment: Callable[..., None],
) -> CompactionWorld:
    """A world whose handler environment names the session's Chroma server and a fresh
    database (``chroma_database`` set CHROMA_HOST, CHROMA_PORT, CHROMA_DATABASE)."""
    world = CompactionWorld(tmp_path)
    world.use_sink(
        SinkKind.SERVER,
        ChromaServer(host=chroma_server.host, port=chroma_server.port, database=chroma_database),
    )
    compactor_environment(world)
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1))
    world.dynamo.put_receipt_word_label(make_label(IMAGE_ID, 1, 1, 1, "TOTAL"))
    return world


def _cycle_metrics(output: str) -> dict[str, Any]:
    (cycle,) = [m for m in _emf(output) if m.get("collection") == "words"]
    return cycle


def test_server_mode_end_to_end(
    world: CompactionWorld,
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHROMA_SINK", "server")
    response = compaction_handler.lambda_handler(
        _sqs_event(world.pump()["words"], []), lambda_context
    )
    assert response == {"batchItemFailures": []}
    output = capsys.readouterr().out
    cycle = _cycle_metrics(output)
    assert cycle["ServerSinkApplied"] == [1.0]
    assert cycle["VectorsMerged"] == [6.0]
    assert "ServerApplyTime" in cycle
    assert not {"SnapshotPublished", "CacheTierBootstrap", "SinkUnavailable"} & set(cycle)
    assert _invocation(_emf(output))["CompactionLambdaSuccess"] == [1.0]
    words = world.server_records("words")
    assert len(words) == 6
    assert words[word_vector_id(IMAGE_ID, 1, 1, 1)][0]["label_status"] == "auto_suggested"
    assert world.dynamo.get_snapshot_pointer("words") is None
    (finished,) = [r for r in caplog.records if r.getMessage() == "compaction cycle finished"]
    assert finished.__dict__["sink"] == "server"


def test_both_mode_end_to_end(
    world: CompactionWorld,
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHROMA_SINK", "both")
    response = compaction_handler.lambda_handler(
        _sqs_event(world.pump()["words"], []), lambda_context
    )
    assert response == {"batchItemFailures": []}
    capsys.readouterr()
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Both"))
    response = compaction_handler.lambda_handler(
        _sqs_event(world.pump()["words"], []), lambda_context
    )
    assert response == {"batchItemFailures": []}
    cycle = _cycle_metrics(capsys.readouterr().out)
    assert cycle["ServerSinkApplied"] == [1.0]
    assert cycle["SnapshotPublished"] == [1.0]
    assert "CacheTierWarm" in cycle
    assert world.server_records("words") == world.snapshot_from_s3("words")
    assert {m["merchant_name"] for m, _ in world.server_records("words").values()} == {"Both"}
    assert world.config.server is not None
    report = migration.verify(world.dynamo, world.bucket, "words", world.config.server)
    assert report["ok"], report


def test_an_unreachable_server_fails_the_messages_which_stay_queued(
    world: CompactionWorld,
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHROMA_SINK", "server")
    monkeypatch.setenv("CHROMA_PORT", str(_free_port()))
    monkeypatch.setenv("CHROMA_RETRY_ATTEMPTS", "2")
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="words-sink")["QueueUrl"]
    messages = world.pump()["words"]
    assert publish_messages(messages, sqs_client=sqs, words_queue_url=url).failed == []
    received = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    # Received but not deleted: the messages stay on the queue, as under Lambda's mapping.
    event = {"Records": [lambda_record(dict(m), url) for m in received]}

    response = compaction_handler.lambda_handler(event, lambda_context)

    # Every message is reported, so the event source mapping deletes none of them: after
    # the short retry visibility (contract §7 rev 3) they are on the queue again (made
    # visible at once here), to be retried when the server is back.
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(
        m["MessageId"] for m in received
    )
    for message in received:
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert int(attributes["ApproximateNumberOfMessages"]) == len(messages)
    output = capsys.readouterr().out
    cycle = _cycle_metrics(output)
    assert cycle["SinkUnavailable"] == [1.0]
    assert cycle["MessageFailures"] == [float(len(messages))]
    assert cycle["VisibilityResets"] == [float(len(messages))]  # retried early like any failure
    assert _invocation(_emf(output))["CompactionLambdaError"] == [1.0]
    reasons = {
        r.__dict__.get("reason") for r in caplog.records if r.getMessage() == "message not applied"
    }
    (reason,) = reasons  # one clear error for the whole cycle
    assert reason.startswith("sink_unavailable: Chroma server http://127.0.0.1:")
    assert "unreachable after 2 attempts" in reason
