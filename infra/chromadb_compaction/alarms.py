"""Alarms to an SNS topic: dead letters, stream lag, function errors, the age of each
queue's oldest message, and every failure metric of contract §9 (from the functions' EMF
metrics)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from chromadb_compaction import settings
from chromadb_compaction.queues import CompactionQueues

FIVE_MINUTES = 300
MAX_ITERATOR_AGE_MS = 10 * 60 * 1000
# A message older than this has waited through retries: the compactor is stuck or behind.
MAX_OLDEST_MESSAGE_SECONDS = 30 * 60
# Per collection, from the compactor.
COMPACTOR_ALARM_METRICS = (
    "LeaseAcquisitionFailures",
    "LeaseLost",
    "SnapshotPublishFailures",
    "SnapshotUnavailable",
    "InvalidTableRows",
)
# Per collection, from a compactor that writes to a Chroma server (contract §12).
SERVER_SINK_ALARM_METRICS = ("SinkUnavailable",)
# From the stream processor (dimension service only).
STREAM_ALARM_METRICS = ("StreamParseFailures", "StreamPublishFailures")


class PipelineAlarms(pulumi.ComponentResource):
    def __init__(
        self,
        resource_name: str,
        *,
        queues: CompactionQueues,
        stream_function_name: pulumi.Input[str],
        compactor_function_name: pulumi.Input[str],
        email: str | None,
        server_sink: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("receipt:compaction:Alarms", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.topic = aws.sns.Topic(resource_name, opts=child)
        if email:
            aws.sns.TopicSubscription(
                f"{resource_name}-email",
                topic=self.topic.arn,
                protocol="email",
                endpoint=email,
                opts=child,
            )
        self.alarms: list[aws.cloudwatch.MetricAlarm] = []
        self._dead_letter_alarms(resource_name, queues)
        self._function_alarms(resource_name, stream_function_name, compactor_function_name)
        self._oldest_message_alarms(resource_name, queues)
        self._metric_alarms(resource_name, server_sink=server_sink)
        self.register_outputs({"topic": self.topic.arn})

    def _dead_letter_alarms(self, resource_name: str, queues: CompactionQueues) -> None:
        """Any message in a dead-letter or parking queue."""
        dead_letters = {
            **{f"{c}-dlq": q for c, q in queues.dead_letters.items()},
            "stream-unparseable": queues.stream_parking,
            "stream-mapping-failures": queues.stream_failures,
        }
        for name, queue in dead_letters.items():
            self._alarm(
                f"{resource_name}-{name}-not-empty",
                namespace="AWS/SQS",
                metric_name="ApproximateNumberOfMessagesVisible",
                dimensions={"QueueName": queue.name},
                statistic="Maximum",
                threshold=0,
            )

    def _function_alarms(
        self,
        resource_name: str,
        stream_function_name: pulumi.Input[str],
        compactor_function_name: pulumi.Input[str],
    ) -> None:
        """The stream mapping falling behind, and either function's errors."""
        self._alarm(
            f"{resource_name}-stream-iterator-age",
            namespace="AWS/Lambda",
            metric_name="IteratorAge",
            dimensions={"FunctionName": stream_function_name},
            statistic="Maximum",
            threshold=MAX_ITERATOR_AGE_MS,
        )
        for name, function in (
            ("stream", stream_function_name),
            ("compactor", compactor_function_name),
        ):
            self._alarm(
                f"{resource_name}-{name}-errors",
                namespace="AWS/Lambda",
                metric_name="Errors",
                dimensions={"FunctionName": function},
                statistic="Sum",
                threshold=0,
            )

    def _oldest_message_alarms(self, resource_name: str, queues: CompactionQueues) -> None:
        for collection, queue in queues.collections.items():
            self._alarm(
                f"{resource_name}-{collection}-oldest-message",
                namespace="AWS/SQS",
                metric_name="ApproximateAgeOfOldestMessage",
                dimensions={"QueueName": queue.name},
                statistic="Maximum",
                threshold=MAX_OLDEST_MESSAGE_SECONDS,
            )

    def _metric_alarms(self, resource_name: str, *, server_sink: bool) -> None:
        """Every failure metric of contract §9 the functions emit."""
        for metric in STREAM_ALARM_METRICS:
            self._alarm(
                f"{resource_name}-{metric}",
                namespace=settings.METRICS_NAMESPACE,
                metric_name=metric,
                dimensions={"service": settings.SERVICE_STREAM},
                statistic="Sum",
                threshold=0,
            )
        compactor_metrics = COMPACTOR_ALARM_METRICS + (
            SERVER_SINK_ALARM_METRICS if server_sink else ()
        )
        for metric in compactor_metrics:
            for collection in ("lines", "words"):
                self._alarm(
                    f"{resource_name}-{metric}-{collection}",
                    namespace=settings.METRICS_NAMESPACE,
                    metric_name=metric,
                    dimensions={"service": settings.SERVICE_COMPACTOR, "collection": collection},
                    statistic="Sum",
                    threshold=0,
                )

    def _alarm(
        self,
        name: str,
        *,
        namespace: str,
        metric_name: str,
        dimensions: dict[str, pulumi.Input[str]],
        statistic: str,
        threshold: float,
    ) -> None:
        self.alarms.append(
            aws.cloudwatch.MetricAlarm(
                name,
                namespace=namespace,
                metric_name=metric_name,
                dimensions=dimensions,
                statistic=statistic,
                period=FIVE_MINUTES,
                evaluation_periods=1,
                comparison_operator="GreaterThanThreshold",
                threshold=threshold,
                treat_missing_data="notBreaching",
                alarm_actions=[self.topic.arn],
                ok_actions=[self.topic.arn],
                opts=pulumi.ResourceOptions(parent=self),
            )
        )
