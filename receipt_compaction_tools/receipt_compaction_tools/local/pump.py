"""Drive the two real Lambda handlers as their event source mappings would: the stream's
(``stream_pump``) and the two queues' (``queue_consumer``), in this process, sharing one
``PumpStats`` and one freshness clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from receipt_compaction_tools.local.delivery_ledger import DeliveryLedger
from receipt_compaction_tools.local.freshness import Freshness
from receipt_compaction_tools.local.pump_stats import PumpStats
from receipt_compaction_tools.local.queue_consumer import QueueChaos, QueueConsumer
from receipt_compaction_tools.local.resources import PipelineResources
from receipt_compaction_tools.local.stream_pump import StreamPump
from receipt_dynamo.aws_clients import aws_client


class LambdaPump:
    """Both event source mappings in this process: the stream's and the two queues'."""

    def __init__(
        self,
        resources: PipelineResources,
        *,
        stream_batch: int = 100,
        queue_batch: int = 100,
        chaos: QueueChaos | None = None,
        checkpoint: Path | None = None,
        ledger: DeliveryLedger | None = None,
        release_failed: bool = True,
    ) -> None:
        self.resources = resources
        self.stats = PumpStats()
        self.freshness = Freshness()
        self.sqs = aws_client("sqs")
        self.stream = StreamPump(
            resources.stream_arn,
            self.stats,
            batch=stream_batch,
            checkpoint=checkpoint,
            freshness=self.freshness,
        )
        self.consumer = QueueConsumer(
            resources.queues,
            self.stats,
            batch=queue_batch,
            chaos=chaos,
            freshness=self.freshness,
            ledger=ledger,
            release_failed=release_failed,
        )

    # --- stream ---------------------------------------------------------------------------

    def pump_stream(self, limit: int | None = None) -> int:
        """Deliver new stream records (up to about ``limit``); returns how many."""
        return self.stream.pump(limit)

    def deliver_records(self, records: list[Any]) -> None:
        """Deliver ``records`` (already read) in batches of the stream mapping's size."""
        for start in range(0, len(records), self.stream.batch):
            self.stream.deliver(records[start : start + self.stream.batch])

    def drain_queues(self, max_rounds: int = 50) -> None:
        self.consumer.drain(max_rounds)

    def queue_depths(self) -> dict[str, int]:
        urls = {
            "lines": self.resources.lines_queue_url,
            "words": self.resources.words_queue_url,
            "lines-dlq": self.resources.lines_dlq_url,
            "words-dlq": self.resources.words_dlq_url,
            "stream-unparseable": self.resources.stream_dlq_url,
        }
        depths = {}
        for name, url in urls.items():
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            depths[name] = int(attributes["ApproximateNumberOfMessages"]) + int(
                attributes["ApproximateNumberOfMessagesNotVisible"]
            )
        return depths
