"""Queues: lines and words (each with a DLQ), the stream's parking queue for unparseable
records, and — separately — the stream mapping's on-failure destination."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from chromadb_compaction import settings
from chromadb_compaction.iam import queue_policy


class CompactionQueues(pulumi.ComponentResource):
    def __init__(self, resource_name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("receipt:compaction:Queues", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.dead_letters: dict[str, aws.sqs.Queue] = {}
        self.collections: dict[str, aws.sqs.Queue] = {}
        for collection in ("lines", "words"):
            dlq = self._queue(f"{resource_name}-{collection}-dlq", child)
            self.dead_letters[collection] = dlq
            self.collections[collection] = self._queue(
                f"{resource_name}-{collection}",
                child,
                visibility_timeout_seconds=settings.VISIBILITY_TIMEOUT_SECONDS,
                redrive_policy=dlq.arn.apply(
                    lambda arn: json.dumps(
                        {"deadLetterTargetArn": arn, "maxReceiveCount": settings.MAX_RECEIVE_COUNT}
                    )
                ),
            )
        self.stream_parking = self._queue(f"{resource_name}-stream-unparseable", child)
        self.stream_failures = self._queue(f"{resource_name}-stream-mapping-failures", child)
        self.resource_name = resource_name
        self.register_outputs({})

    @staticmethod
    def _queue(
        name: str,
        opts: pulumi.ResourceOptions,
        *,
        visibility_timeout_seconds: int | None = None,
        redrive_policy: pulumi.Input[str] | None = None,
    ) -> aws.sqs.Queue:
        return aws.sqs.Queue(
            name,
            name=name,
            max_message_size=settings.MAX_MESSAGE_SIZE,
            message_retention_seconds=settings.RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            visibility_timeout_seconds=visibility_timeout_seconds,
            redrive_policy=redrive_policy,
            opts=opts,
        )

    def restrict_access(
        self, *, producer_role_arn: pulumi.Input[str], consumer_role_arn: pulumi.Input[str]
    ) -> None:
        """Queue policies: the stream function sends, the compactor consumes, nothing else.

        Dead-letter queues are filled by SQS's redrive and read by operators only.
        """
        grants: list[tuple[str, aws.sqs.Queue, pulumi.Input[str] | None, pulumi.Input[str] | None]]
        grants = [(c, q, producer_role_arn, consumer_role_arn) for c, q in self.collections.items()]
        grants += [
            ("stream-unparseable", self.stream_parking, producer_role_arn, None),
            ("stream-mapping-failures", self.stream_failures, producer_role_arn, None),
        ]
        grants += [(f"{c}-dlq", q, None, None) for c, q in self.dead_letters.items()]
        for name, queue, producer, consumer in grants:
            aws.sqs.QueuePolicy(
                f"{self.resource_name}-{name}-policy",
                queue_url=queue.url,
                policy=pulumi.Output.all(queue.arn, producer, consumer).apply(
                    lambda args: json.dumps(queue_policy(args[0], args[1], args[2]))
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
