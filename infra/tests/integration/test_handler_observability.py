"""Contract §9 signals of the two handlers beyond metrics names: a Powertools Tracer
subsegment per stage, every module's log records as the handler's JSON, and counted
derived-cache failures (EFS writes that fail never fail the cycle, but are counted)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from test_compaction_handler import _emf, _sqs_event

from receipt_compaction_tools.local.handlers import load_handler
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo.testing import IMAGE_ID, make_label, make_metadata, stream_record

pytestmark = pytest.mark.integration


class _Subsegment:
    """Accepts whatever the Tracer records on a subsegment (annotations, metadata)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class RecordingProvider:
    """A tracing provider that records the subsegments opened, in order."""

    def __init__(self) -> None:
        self.names: list[str] = []

    @contextmanager
    def in_subsegment(self, name: str | None = None, **_: Any) -> Iterator[Any]:
        self.names.append(str(name))
        yield _Subsegment()


def _traced(module: ModuleType) -> RecordingProvider:
    provider = RecordingProvider()
    module.tracer.provider = provider
    return provider


def _json_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def _log_to(module: ModuleType, buffer: io.StringIO) -> None:
    for handler in module.logger.handlers:
        handler.stream = buffer


def test_compactor_traces_every_cycle_stage_and_counts_efs_write_failures(
    aws_endpoint: str,
    tmp_path: Path,
    compactor_environment: Callable[..., None],
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = CompactionWorld(tmp_path)
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("EFS writes under a file fail")
    compactor_environment(world, CHROMA_ROOT=str(blocked / "efs"))
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1))
    event = _sqs_event(world.pump()["words"], [])
    provider = _traced(compaction_handler)
    logs = io.StringIO()
    _log_to(compaction_handler, logs)

    response = compaction_handler.lambda_handler(event, lambda_context)
    logging.getLogger("receipt_chroma.compaction.lease").warning("probe", extra={"token": 7})

    assert response == {"batchItemFailures": []}
    assert provider.names[:3] == ["## lambda_handler", "## compaction_cycle words", "## lease"]
    # One subsegment per stage of the cycle, in the contract's order (§5.2, §6.3).
    assert provider.names[3:] == [
        "## open",
        "## plan",
        "## apply",
        "## check",
        "## upload",
        "## manifest",
        "## commit",
        "## pointer_file",
        "## efs",
        "## mark",
        "## retain",
        "## release",
    ]
    (cycle,) = [m for m in _emf(capsys.readouterr().out) if m.get("collection") == "words"]
    assert "SnapshotPublished" in cycle  # EFS is a cache: its failure fails nothing
    assert cycle["EfsWriteFailures"] == [1.0]
    assert cycle["EfsFailures"] == [1.0]  # the EFS write after the publish
    assert cycle["SnapshotCacheRepairs"] == [0.0]
    assert cycle["CacheRepairFailures"] == [0.0]
    assert cycle["RetentionSkipped"] == [0.0]  # the holder confirmed its lease and deleted
    assert cycle["CacheTierBootstrap"] == [1.0]
    assert cycle["SnapshotBytesUploaded"][0] > 0
    assert cycle["SnapshotBytesDownloaded"] == [0.0]  # bootstrap: nothing to read
    assert cycle["UnindexedRecords"][0] >= 0
    records = _json_lines(logs)
    (probe,) = [r for r in records if r.get("message") == "probe"]
    assert probe["service"] == "receipt-compactor"
    assert probe["name"] == "receipt_chroma.compaction.lease"
    assert probe["token"] == 7
    assert probe["function_request_id"] == lambda_context.aws_request_id
    assert any(r.get("message") == "metadata update" for r in records)


def test_compactor_counts_a_damaged_warm_copy_it_repaired(
    aws_endpoint: str,
    tmp_path: Path,
    compactor_environment: Callable[..., None],
    compaction_handler: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = CompactionWorld(tmp_path)
    compactor_environment(world)
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
    compaction_handler.lambda_handler(_sqs_event(world.pump()["words"], []), lambda_context)
    warm = Path(world.config.work_dir) / "words" / "snapshot" / "chroma.sqlite3"
    with warm.open("ab") as damaged:
        damaged.write(b"\0" * 4096)
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Repaired"))
    capsys.readouterr()

    response = compaction_handler.lambda_handler(
        _sqs_event(world.pump()["words"], []), lambda_context
    )

    assert response == {"batchItemFailures": []}
    (cycle,) = [m for m in _emf(capsys.readouterr().out) if m.get("collection") == "words"]
    assert cycle["SnapshotCacheRepairs"] == [1.0]
    assert cycle["EfsFailures"] == [0.0]
    assert cycle["CacheTierEfs"] == [1.0]  # the damaged warm copy was not used
    assert "CacheTierWarm" not in cycle
    assert "SnapshotPublished" in cycle


def test_stream_processor_traces_its_stages_and_logs_every_module_as_json(
    aws_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    stream_processor: ModuleType,
    lambda_context: Any,
) -> None:
    import boto3

    sqs = boto3.client("sqs")
    for name in ("LINES_QUEUE_URL", "WORDS_QUEUE_URL"):
        monkeypatch.setenv(name, sqs.create_queue(QueueName=name.lower())["QueueUrl"])
    provider = _traced(stream_processor)
    logs = io.StringIO()
    _log_to(stream_processor, logs)
    label = make_label(IMAGE_ID, 1, 1, 1)
    event = {"Records": [stream_record("INSERT", new=label.to_item())]}

    assert stream_processor.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    # Package loggers are process-wide: in a suite, another handler module loaded later
    # rewires them, as it would not in a Lambda container (one handler per process).
    copy_config_to_registered_loggers(
        source_logger=stream_processor.logger, include=set(stream_processor.LOGGED_PACKAGES)
    )
    logging.getLogger("receipt_dynamo_stream.publisher").info("probe")

    assert provider.names == [
        "## lambda_handler",
        "## build_messages",
        "## park_unparseable",
        "## publish_messages",
    ]
    (probe,) = [r for r in _json_lines(logs) if r.get("message") == "probe"]
    assert probe["service"] == "receipt-stream"
    assert probe["name"] == "receipt_dynamo_stream.publisher"


@pytest.mark.parametrize("name", ["enhanced_compaction_handler", "stream_processor"])
def test_blank_powertools_names_mean_the_defaults(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Contract §8: a blank variable is an unset one. Both Lambdas emit under the
    ReceiptCompaction namespace whatever blank names the environment holds."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", " ")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "")
    module = load_handler(name)
    service = {"enhanced_compaction_handler": "receipt-compactor"}.get(name, "receipt-stream")
    assert (module.logger.service, module.metrics.namespace) == (service, "ReceiptCompaction")
