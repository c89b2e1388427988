"""The CloudWatch dashboard under Pulumi's mocks: every contract §9 metric is graphed in
namespace ReceiptCompaction with the dimensions the handlers emit it with, every alarm's
state is shown, and so are what AWS measures itself — each queue's oldest message and
depth, the dead-letter depths and the stream's iterator age. The expected names are the
contract's, listed here, not read from the program."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pulumi
import pytest
from test_pulumi_program import ACCOUNT, RecordingMocks

from chromadb_compaction.chroma_sink import ChromaSinkConfig

NAMESPACE = "ReceiptCompaction"
STREAM = {"service": "receipt-stream"}
COMPACTOR = {"service": "receipt-compactor"}
# Contract §9, by who emits them and with which dimensions.
SPEC_STREAM_METRICS = (
    "StreamProcessorProcessedRecords",
    "StreamParseFailures",
    "StreamPublishFailures",
    "StreamLagSeconds",
)
# Per invocation: an invocation (and an invalid body) has no collection.
SPEC_INVOCATION_METRICS = ("CompactionLambdaSuccess", "CompactionLambdaError", "InvalidMessages")
SPEC_CYCLE_METRICS = (
    "CompactionMetadataUpdates",
    "CompactionLabelUpdates",
    "LeaseAcquisitionFailures",
    "LeaseLost",
    "SnapshotPublishFailures",
    "SnapshotUnavailable",
    "SnapshotPublished",
    "CacheTierWarm",
    "CacheTierCatchUp",
    "CacheTierEfs",
    "CacheTierS3",
    "DeltasMerged",
    "VectorsMerged",
    "InvalidTableRows",
    "VisibilityResetFailures",
    "SnapshotBytesUploaded",
    "SnapshotBytesDownloaded",
    "UnindexedRecords",
    "RetentionSkipped",
)
SPEC_ALARM_METRICS = (
    "LeaseAcquisitionFailures",
    "LeaseLost",
    "SnapshotPublishFailures",
    "SnapshotUnavailable",
    "StreamParseFailures",
    "StreamPublishFailures",
    "InvalidTableRows",
)
# Contract §12: a compactor writing to a Chroma server also reports the server unreachable.
SERVER_SINK_METRICS = ("SinkUnavailable",)
# Snapshot-only metrics that mean nothing without a snapshot sink.
SNAPSHOT_ONLY = {
    "SnapshotPublished",
    "CacheTierWarm",
    "CacheTierCatchUp",
    "CacheTierEfs",
    "CacheTierS3",
    "SnapshotBytesUploaded",
    "SnapshotBytesDownloaded",
    "UnindexedRecords",
}

GraphedMetric = tuple[str, str, frozenset[tuple[str, str]]]


def _deploy(tmp: Path, **config: Any) -> tuple[RecordingMocks, dict[str, Any]]:
    from chromadb_compaction.pipeline import PipelineConfig, ReceiptCompactionPipeline

    bundle = tmp / "stream_processor.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("stream_processor.py", "")
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="receipt-compaction", stack="test", preview=False)
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        pipeline = ReceiptCompactionPipeline(
            "test", PipelineConfig(stream_zip_path=str(bundle), **config)
        )
        keys = list(pipeline.outputs)
        return pulumi.Output.all(*pipeline.outputs.values()).apply(
            lambda values: outputs.update(zip(keys, values, strict=True))
        )

    program()
    return mocks, outputs


def _body(mocks: RecordingMocks) -> dict[str, Any]:
    (dashboard,) = mocks.of_type("aws:cloudwatch/dashboard:Dashboard")
    return dict(json.loads(dashboard.inputs["dashboardBody"]))


def _graphed(body: dict[str, Any]) -> dict[GraphedMetric, list[str]]:
    """(namespace, metric, dimensions) → the titles of the graphs showing it."""
    graphed: dict[GraphedMetric, list[str]] = {}
    for widget in body["widgets"]:
        if widget["type"] != "metric":
            continue
        for metric in widget["properties"]["metrics"]:
            namespace, name, *rest = metric
            pairs = [item for item in rest if not isinstance(item, dict)]
            dimensions = frozenset(zip(pairs[::2], pairs[1::2], strict=True))
            key = (namespace, name, dimensions)
            graphed.setdefault(key, []).append(widget["properties"]["title"])
    return graphed


def _dimensions(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


@pytest.fixture(scope="module")
def snapshot_stack(tmp_path_factory: pytest.TempPathFactory) -> tuple[RecordingMocks, Any]:
    return _deploy(tmp_path_factory.mktemp("snapshot"))


def test_every_contract_metric_is_graphed_with_its_emitted_dimensions(
    snapshot_stack: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    graphed = _graphed(_body(snapshot_stack[0]))
    expected = {(NAMESPACE, m, _dimensions(**STREAM)) for m in SPEC_STREAM_METRICS}
    expected |= {(NAMESPACE, m, _dimensions(**COMPACTOR)) for m in SPEC_INVOCATION_METRICS}
    expected |= {
        (NAMESPACE, m, _dimensions(**COMPACTOR, collection=collection))
        for m in SPEC_CYCLE_METRICS
        for collection in ("lines", "words")
    }
    missing = sorted((name, sorted(dims)) for _, name, dims in expected - set(graphed))
    assert missing == []
    # Nothing in the namespace is graphed with dimensions the handlers never emit.
    ours = [key for key in graphed if key[0] == NAMESPACE]
    allowed = {_dimensions(**STREAM), _dimensions(**COMPACTOR)} | {
        _dimensions(**COMPACTOR, collection=c) for c in ("lines", "words")
    }
    assert {dims for _, _, dims in ours} <= allowed
    # Each collection's graphs show only that collection.
    for (_, _, dims), titles in graphed.items():
        collection = dict(dims).get("collection")
        if collection:
            assert all(title.startswith(f"{collection}:") for title in titles), titles


def test_every_alarm_is_on_the_dashboard(
    snapshot_stack: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    mocks, _ = snapshot_stack
    (alarm_widget,) = [w for w in _body(mocks)["widgets"] if w["type"] == "alarm"]
    alarm_names = [r.name for r in mocks.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")]
    assert sorted(alarm_widget["properties"]["alarms"]) == sorted(
        f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:{name}" for name in alarm_names
    )
    alarmed = {
        r.inputs["metricName"] for r in mocks.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    }
    assert set(SPEC_ALARM_METRICS) <= alarmed


def test_queue_ages_depths_dead_letters_and_the_stream_iterator_age_are_graphed(
    snapshot_stack: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    graphed = _graphed(_body(snapshot_stack[0]))

    def queues(metric: str) -> set[str]:
        return {
            dict(dims)["QueueName"]
            for namespace, name, dims in graphed
            if (namespace, name) == ("AWS/SQS", metric)
        }

    assert queues("ApproximateAgeOfOldestMessage") == {"test-lines", "test-words"}
    assert queues("ApproximateNumberOfMessagesNotVisible") == {"test-lines", "test-words"}
    assert queues("ApproximateNumberOfMessagesVisible") == {
        "test-lines",
        "test-words",
        "test-lines-dlq",
        "test-words-dlq",
        "test-stream-unparseable",
        "test-stream-mapping-failures",
    }
    iterator_age = ("AWS/Lambda", "IteratorAge", _dimensions(FunctionName="test-stream-processor"))
    assert iterator_age in graphed


def test_graphs_use_statistics_that_fit_what_they_count(
    snapshot_stack: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    """Counts add up over a period; ages, lag, depths and durations are read at their
    worst (a sum of ages or depths over five minutes means nothing)."""
    for widget in _body(snapshot_stack[0])["widgets"]:
        if widget["type"] != "metric":
            continue
        properties = widget["properties"]
        names = {metric[1] for metric in properties["metrics"]}
        gauges = {
            "StreamLagSeconds",
            "IteratorAge",
            "ApproximateAgeOfOldestMessage",
            "ApproximateNumberOfMessagesVisible",
            "ApproximateNumberOfMessagesNotVisible",
            "UnindexedRecords",
            "Duration",
            "ConcurrentExecutions",
        }
        if names & gauges:
            assert properties["stat"] == "Maximum", properties["title"]
        assert properties["region"] == "us-east-1"
        assert properties["period"] >= 60


def test_widgets_fit_the_grid_without_overlapping(
    snapshot_stack: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    cells: set[tuple[int, int]] = set()
    for widget in _body(snapshot_stack[0])["widgets"]:
        assert widget["x"] >= 0, widget
        assert widget["x"] + widget["width"] <= 24, widget
        area = {
            (x, y)
            for x in range(widget["x"], widget["x"] + widget["width"])
            for y in range(widget["y"], widget["y"] + widget["height"])
        }
        assert not area & cells, widget
        cells |= area


def test_the_stack_outputs_the_dashboard(
    snapshot_stack: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    mocks, outputs = snapshot_stack
    (dashboard,) = mocks.of_type("aws:cloudwatch/dashboard:Dashboard")
    assert outputs["dashboard_name"] == dashboard.inputs["dashboardName"]
    assert outputs["dashboard_url"].startswith("https://us-east-1.console.aws.amazon.com/")
    assert outputs["dashboard_url"].endswith(f"/{dashboard.inputs['dashboardName']}")


def test_a_server_sink_graphs_sink_unavailable_and_no_snapshot_metrics(
    tmp_path: Path,
) -> None:
    sink = ChromaSinkConfig(kind="server", host="api.trychroma.com", port=443, ssl=True)
    mocks, _ = _deploy(tmp_path, chroma=sink)
    graphed = {name for namespace, name, _ in _graphed(_body(mocks)) if namespace == NAMESPACE}
    assert set(SERVER_SINK_METRICS) <= graphed
    assert not SNAPSHOT_ONLY & graphed
    for collection in ("lines", "words"):
        key = (NAMESPACE, "SinkUnavailable", _dimensions(**COMPACTOR, collection=collection))
        assert key in _graphed(_body(mocks))
