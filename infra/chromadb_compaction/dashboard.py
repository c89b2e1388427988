"""One CloudWatch dashboard for the pipeline: the state of every alarm, the contract §9
metrics (namespace ``ReceiptCompaction``, with the dimensions the handlers emit them
with: ``service`` alone for the stream processor and for the compactor's per-invocation
counts, ``service`` and ``collection`` for everything a cycle emits), and what AWS
measures itself — each queue's oldest message and depth, the dead-letter queues' depths,
the stream's iterator age, the functions' errors, throttles, durations and concurrency."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from chromadb_compaction import settings
from chromadb_compaction.alarms import (
    COMPACTOR_ALARM_METRICS,
    SERVER_SINK_ALARM_METRICS,
    STREAM_ALARM_METRICS,
    PipelineAlarms,
)
from chromadb_compaction.chroma_sink import ChromaSinkConfig
from chromadb_compaction.queues import CompactionQueues

PERIOD_SECONDS = 300
GRID_WIDTH = 24  # CloudWatch's dashboard grid
GRAPH_WIDTH = 12
GRAPH_HEIGHT = 6
COLLECTIONS = ("lines", "words")

# The stream processor's metrics (dimension service).
STREAM_RECORDS = (
    "StreamProcessorProcessedRecords",
    "StreamRecordsRelevant",
    "StreamRecordsNotRelevant",
    "LinesMessagesPublished",
    "WordsMessagesPublished",
)
STREAM_FAILURES = (*STREAM_ALARM_METRICS, "StreamRecordsParked")
# The compactor's per-invocation counts (dimension service: an invocation, or an invalid
# body, has no collection).
INVOCATIONS = ("CompactionLambdaSuccess", "CompactionLambdaError", "InvalidMessages")
# What each cycle emits per collection (dimensions service and collection).
CHANGES_APPLIED = (
    "CompactionMetadataUpdates",
    "CompactionLabelUpdates",
    "RecordsDeleted",
    "DeltasMerged",
    "VectorsMerged",
)
CYCLE_FAILURES = (
    *COMPACTOR_ALARM_METRICS,
    "VisibilityResetFailures",
    "RetentionSkipped",
    "MessageFailures",
)
SNAPSHOTS_PUBLISHED = (
    "SnapshotPublished",
    "CacheTierWarm",
    "CacheTierCatchUp",
    "CacheTierEfs",
    "CacheTierS3",
    "CacheTierBootstrap",
)
SNAPSHOT_BYTES = ("SnapshotBytesUploaded", "SnapshotBytesDownloaded")
STAGE_TIMES = ("LeaseWaitTime", "WorkingCopyTime", "ApplyTime", "PublishTime")
SNAPSHOT_BACKLOG = ("UnindexedRecords",)
SERVER_APPLIED = ("ServerSinkApplied",)
SERVER_STAGE_TIMES = ("LeaseWaitTime", "ServerApplyTime")

Metric = list[Any]  # CloudWatch's form: namespace, name, dimension name/value pairs, options


@dataclass(frozen=True)
class Graph:
    title: str
    metrics: list[Metric]
    stat: str = "Sum"
    width: int = GRAPH_WIDTH


@dataclass(frozen=True)
class DashboardTargets:
    """The deployed names the dashboard's metrics point at."""

    region: str
    stream_function: str
    compactor_function: str
    queues: Mapping[str, str]  # collection → queue name
    dead_letters: Mapping[str, str]  # label → queue name
    alarm_arns: Sequence[str]


def _emitted(name: str, service: str, collection: str | None = None) -> Metric:
    dimensions = ["service", service] + (["collection", collection] if collection else [])
    return [settings.METRICS_NAMESPACE, name, *dimensions, {"label": name}]


def _lambda(name: str, function: str, label: str) -> Metric:
    return ["AWS/Lambda", name, "FunctionName", function, {"label": f"{label} {name}"}]


def _sqs(name: str, queue: str, label: str) -> Metric:
    return ["AWS/SQS", name, "QueueName", queue, {"label": label}]


def _collection_groups(sink: ChromaSinkConfig) -> list[tuple[str, tuple[str, ...], str]]:
    """(title, metrics, statistic) of the per-collection graphs for the configured sink."""
    failures = CYCLE_FAILURES + (SERVER_SINK_ALARM_METRICS if sink.server else ())
    groups = [("changes applied", CHANGES_APPLIED, "Sum"), ("failures", failures, "Sum")]
    if sink.snapshot:
        groups += [
            ("snapshots published, by working-copy tier", SNAPSHOTS_PUBLISHED, "Sum"),
            ("snapshot bytes moved", SNAPSHOT_BYTES, "Sum"),
            ("cycle stage times (ms)", STAGE_TIMES, "Maximum"),
            ("records not yet in the HNSW index", SNAPSHOT_BACKLOG, "Maximum"),
        ]
    if sink.server:
        groups += [
            ("Chroma server writes", SERVER_APPLIED, "Sum"),
            ("server cycle times (ms)", SERVER_STAGE_TIMES, "Maximum"),
        ]
    return groups


def graphs(targets: DashboardTargets, sink: ChromaSinkConfig) -> list[Graph]:
    compactor = settings.SERVICE_COMPACTOR
    result = _stream_and_queue_graphs(targets)
    for title, names, stat in _collection_groups(sink):
        result += [
            Graph(
                f"{collection}: {title}", [_emitted(m, compactor, collection) for m in names], stat
            )
            for collection in COLLECTIONS
        ]
    return result + _function_graphs(targets)


def _stream_and_queue_graphs(targets: DashboardTargets) -> list[Graph]:
    """The stream processor, the compactor's invocations and the queues."""
    stream, compactor = settings.SERVICE_STREAM, settings.SERVICE_COMPACTOR
    return [
        Graph("Stream processor: records", [_emitted(m, stream) for m in STREAM_RECORDS]),
        Graph("Stream processor: failures", [_emitted(m, stream) for m in STREAM_FAILURES]),
        Graph(
            "Stream lag behind the table (s)",
            [_emitted("StreamLagSeconds", stream)],
            stat="Maximum",
        ),
        Graph(
            "Stream iterator age (ms)",
            [_lambda("IteratorAge", targets.stream_function, "stream")],
            stat="Maximum",
        ),
        Graph("Compactor invocations", [_emitted(m, compactor) for m in INVOCATIONS]),
        Graph(
            "Queues: age of the oldest message (s)",
            [
                _sqs("ApproximateAgeOfOldestMessage", queue, collection)
                for collection, queue in targets.queues.items()
            ],
            stat="Maximum",
        ),
        Graph(
            "Queues: depth (waiting / in flight)",
            [
                _sqs(name, queue, f"{collection} {kind}")
                for collection, queue in targets.queues.items()
                for name, kind in (
                    ("ApproximateNumberOfMessagesVisible", "waiting"),
                    ("ApproximateNumberOfMessagesNotVisible", "in flight"),
                )
            ],
            stat="Maximum",
        ),
        Graph(
            "Dead-letter queues: depth",
            [
                _sqs("ApproximateNumberOfMessagesVisible", queue, label)
                for label, queue in targets.dead_letters.items()
            ],
            stat="Maximum",
        ),
    ]


def _function_graphs(targets: DashboardTargets) -> list[Graph]:
    """Both functions' errors, throttles and duration; the compactor's concurrency."""
    functions = {"stream": targets.stream_function, "compactor": targets.compactor_function}
    return [
        Graph(
            "Functions: errors and throttles",
            [
                _lambda(name, function, label)
                for label, function in functions.items()
                for name in ("Errors", "Throttles")
            ],
        ),
        Graph(
            "Functions: duration (ms)",
            [_lambda("Duration", function, label) for label, function in functions.items()],
            stat="Maximum",
        ),
        Graph(
            "Compactor: concurrent executions",
            [_lambda("ConcurrentExecutions", targets.compactor_function, "compactor")],
            stat="Maximum",
        ),
    ]


def dashboard_body(targets: DashboardTargets, sink: ChromaSinkConfig) -> dict[str, Any]:
    """The dashboard as CloudWatch's JSON body: the alarms across the top, then graphs
    two to a row."""
    alarm_rows = 1 + len(targets.alarm_arns) // 12  # the widget lists ~12 alarms per row
    widgets: list[dict[str, Any]] = [
        {
            "type": "alarm",
            "x": 0,
            "y": 0,
            "width": GRID_WIDTH,
            "height": 2 * alarm_rows,
            "properties": {"title": "Alarms", "alarms": sorted(targets.alarm_arns)},
        }
    ]
    x, y = 0, 2 * alarm_rows
    for graph in graphs(targets, sink):
        if x + graph.width > GRID_WIDTH:
            x, y = 0, y + GRAPH_HEIGHT
        widgets.append(
            {
                "type": "metric",
                "x": x,
                "y": y,
                "width": graph.width,
                "height": GRAPH_HEIGHT,
                "properties": {
                    "title": graph.title,
                    "region": targets.region,
                    "view": "timeSeries",
                    "stacked": False,
                    "stat": graph.stat,
                    "period": PERIOD_SECONDS,
                    "metrics": graph.metrics,
                },
            }
        )
        x += graph.width
    return {"widgets": widgets}


class PipelineDashboard(pulumi.ComponentResource):
    def __init__(
        self,
        resource_name: str,
        *,
        queues: CompactionQueues,
        alarms: PipelineAlarms,
        stream_function_name: pulumi.Input[str],
        compactor_function_name: pulumi.Input[str],
        sink: ChromaSinkConfig,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("receipt:compaction:Dashboard", resource_name, None, opts)
        region = aws.get_region().region
        collections = list(queues.collections)
        dead_letters = {
            **{f"{c} DLQ": q for c, q in queues.dead_letters.items()},
            "stream unparseable": queues.stream_parking,
            "stream mapping failures": queues.stream_failures,
        }
        labels = list(dead_letters)
        body = pulumi.Output.all(
            stream_function_name,
            compactor_function_name,
            pulumi.Output.all(*[queues.collections[c].name for c in collections]),
            pulumi.Output.all(*[q.name for q in dead_letters.values()]),
            pulumi.Output.all(*[alarm.arn for alarm in alarms.alarms]),
        ).apply(
            lambda args: json.dumps(
                dashboard_body(
                    DashboardTargets(
                        region=region,
                        stream_function=args[0],
                        compactor_function=args[1],
                        queues=dict(zip(collections, args[2], strict=True)),
                        dead_letters=dict(zip(labels, args[3], strict=True)),
                        alarm_arns=args[4],
                    ),
                    sink,
                )
            )
        )
        self.dashboard = aws.cloudwatch.Dashboard(
            resource_name,
            dashboard_name=resource_name,
            dashboard_body=body,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.url = pulumi.Output.concat(
            f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}",
            "#dashboards/dashboard/",
            self.dashboard.dashboard_name,
        )
        self.register_outputs({"name": self.dashboard.dashboard_name, "url": self.url})
