"""Drive the two real Lambda handlers as their event source mappings would.

Stream: the table's records in shard order, batches of ``stream_batch``; a response with
``batchItemFailures`` makes the batch retry from the lowest reported sequence number; the
position can be checkpointed to a file so a killed pump resumes (at least once).
Queues: Lambda-shaped SQS events of up to ``queue_batch`` messages; successes are
deleted, failures come back — made visible again at once, or, with
``release_failed=False``, when the handler's own visibility reset (contract §7) says — and
reach the DLQ after the queue's ``maxReceiveCount``. A ``DeliveryLedger`` records every
delivery, so the reliability suite can check when failed messages really came back.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from receipt_compaction_tools.aws.streams import StreamReader, lambda_record
from receipt_compaction_tools.local.delivery_ledger import DeliveryLedger
from receipt_compaction_tools.local.freshness import Freshness
from receipt_compaction_tools.local.handlers import load_handler
from receipt_compaction_tools.local.resources import PipelineResources
from receipt_dynamo.aws_clients import aws_client

STREAM_RETRIES = 5
TIERS = ("CacheTierWarm", "CacheTierCatchUp", "CacheTierEfs", "CacheTierS3", "CacheTierBootstrap")


@dataclass(frozen=True)
class LocalLambdaContext:
    """The attributes of a Lambda context that the handlers and Powertools read."""

    function_name: str = "local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:local"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@dataclass
class PumpStats:
    stream_records: int = 0
    stream_invocations: int = 0
    stream_retries: int = 0
    stream_records_given_up: int = 0
    queue_invocations: Counter[str] = field(default_factory=Counter)
    messages_received: Counter[str] = field(default_factory=Counter)
    messages_failed: Counter[str] = field(default_factory=Counter)  # failed deliveries
    # Per collection, the ids of the messages whose last delivery failed: messages, not
    # attempts (a message retried five times is one), and none that succeeded later.
    unapplied: dict[str, set[str]] = field(default_factory=dict)
    cycles: list[dict[str, Any]] = field(default_factory=list)
    duplicates_injected: int = 0
    redeliveries_injected: int = 0
    # What the stream handler reported in its metrics: messages per queue, records it
    # could not parse (and how many of those it parked), messages SQS refused.
    messages_published: Counter[str] = field(default_factory=Counter)
    stream_unparseable: int = 0
    stream_parked: int = 0
    stream_publish_failures: int = 0


def queue_arn(queue_url: str) -> str:
    """The ARN Lambda puts in ``eventSourceARN`` for a queue URL (``…/<account>/<name>``)."""
    account, name = queue_url.rstrip("/").split("/")[-2:]
    return f"arn:aws:sqs:{os.environ.get('AWS_DEFAULT_REGION', 'us-east-1')}:{account}:{name}"


def _sequence(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"])


def _metric_documents(output: str) -> Iterator[dict[str, Any]]:
    for line in output.splitlines():
        if line.startswith('{"_aws"'):
            yield json.loads(line)


def _total(document: dict[str, Any], name: str) -> int:
    value = document.get(name, 0)
    return int(sum(value) if isinstance(value, list) else value)


def count_stream_metrics(output: str, stats: PumpStats) -> None:
    """Add the stream handler's EMF counts (one document per invocation) to ``stats``."""
    for document in _metric_documents(output):
        stats.messages_published["lines"] += _total(document, "LinesMessagesPublished")
        stats.messages_published["words"] += _total(document, "WordsMessagesPublished")
        stats.stream_unparseable += _total(document, "StreamParseFailures")
        stats.stream_parked += _total(document, "StreamRecordsParked")
        stats.stream_publish_failures += _total(document, "StreamPublishFailures")


def cycles_from_metrics(output: str) -> list[dict[str, Any]]:
    """One entry per compaction cycle, read from the handler's EMF metric lines."""
    cycles = []
    for metrics in _metric_documents(output):
        if "collection" not in metrics:
            continue
        tier = next((t.removeprefix("CacheTier").lower() for t in TIERS if t in metrics), None)
        cycles.append(
            {
                "collection": metrics["collection"],
                "tier": tier,
                "published": "SnapshotPublished" in metrics,
                # Every write acknowledged by the Chroma server (contract §12).
                "server_applied": "ServerSinkApplied" in metrics,
                "vectors_merged": int(sum(metrics.get("VectorsMerged", [0]))),
                "failures": int(sum(metrics.get("MessageFailures", [0]))),
                # The cycle's messages failed because another compactor held the lease.
                "contended": "LeaseAcquisitionFailures" in metrics,
            }
        )
    return cycles


@dataclass(frozen=True)
class QueueChaos:
    """Standard-queue behaviour to inject: duplicates and deletes that never happened."""

    duplicate_rate: float = 0.0
    lost_delete_rate: float = 0.0
    seed: int | None = None


class QueueConsumer:
    """The compactor's SQS event source mappings: receive, invoke, delete or release."""

    def __init__(
        self,
        queues: dict[str, str],
        stats: PumpStats,
        *,
        batch: int = 100,
        chaos: QueueChaos | None = None,
        freshness: Freshness | None = None,
        ledger: DeliveryLedger | None = None,
        release_failed: bool = True,
    ) -> None:
        self.queues = queues
        self.ledger = ledger
        # False: failed messages come back when the handler's visibility reset says, as on
        # AWS (the reliability suite checks it); True: at once, to drain quickly.
        self.release_failed = release_failed
        self.stats = stats
        self.batch = batch
        self.chaos = chaos or QueueChaos()
        self.freshness = freshness
        self.rng = random.Random(self.chaos.seed)
        self.sqs = aws_client("sqs")
        self.context = LocalLambdaContext()
        self.handler = load_handler("enhanced_compaction_handler")
        # Received and not yet deleted or made visible again (queue URL, message).
        self.in_flight: list[tuple[str, dict[str, Any]]] = []

    def _receive(self, collection: str, url: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < self.batch:
            started = time.time()
            batch = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(10, self.batch - len(messages)),
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
            ).get("Messages", [])
            if self.ledger is not None:
                if batch:
                    self.ledger.received(collection, batch, started)
                else:
                    self.ledger.found_empty(collection, started, time.time())
            if not batch:
                break
            messages += [dict(m) for m in batch]
            self.in_flight += [(url, dict(m)) for m in batch]
        return messages

    def release_in_flight(self) -> int:
        """Make every received, unsettled message visible again at once (an interrupted
        invocation): they come back now instead of after the visibility timeout. Returns
        how many were handed back."""
        released = 0
        pending, self.in_flight = self.in_flight, []
        for url, message in pending:
            # An expired handle means the visibility timeout already put it back.
            with contextlib.suppress(self.sqs.exceptions.ReceiptHandleIsInvalid):
                self.sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
                released += 1
        return released

    def _event(self, collection: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {
                        name: {"stringValue": v["StringValue"], "dataType": v["DataType"]}
                        for name, v in m.get("MessageAttributes", {}).items()
                    },
                    "eventSource": "aws:sqs",
                    "eventSourceARN": queue_arn(self.queues[collection]),
                    "awsRegion": "us-east-1",
                }
                for m in messages
            ]
        }

    def _duplicate(self, url: str, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            if self.rng.random() < self.chaos.duplicate_rate:
                self.sqs.send_message(
                    QueueUrl=url,
                    MessageBody=message["Body"],
                    MessageAttributes={
                        k: {"DataType": v["DataType"], "StringValue": v["StringValue"]}
                        for k, v in message.get("MessageAttributes", {}).items()
                    },
                )
                self.stats.duplicates_injected += 1

    def poll_once(self) -> bool:
        """One invocation per queue with messages; returns whether any had messages."""
        busy = False
        for collection, url in self.queues.items():
            messages = self._receive(collection, url)
            if not messages:
                continue
            busy = True
            self.rng.shuffle(messages)  # Standard queues do not keep order
            self._duplicate(url, messages)
            self.stats.queue_invocations[collection] += 1
            self.stats.messages_received[collection] += len(messages)
            output = io.StringIO()
            with redirect_stdout(output):
                response = self.handler.lambda_handler(
                    self._event(collection, messages), self.context
                )
            returned = time.time()
            self.stats.cycles += cycles_from_metrics(output.getvalue())
            failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
            if self.freshness is not None:
                self.freshness.record_outcome(collection, messages, failed, returned)
            self.stats.messages_failed[collection] += len(failed)
            unapplied = self.stats.unapplied.setdefault(collection, set())
            unapplied.difference_update(m["MessageId"] for m in messages)
            unapplied.update(failed)
            self._settle(url, messages, failed, returned)
        return busy

    def close(self) -> None:
        """End this "container": release the working copies its cycles keep locked (an
        exclusive flock each), so a later consumer in the same process can use them."""
        for cycle in getattr(self.handler, "_cycles", {}).values():
            cycle.working.unlock()

    def drain(self, max_rounds: int = 50) -> None:
        """Invoke the compactor until the queues are empty (or ``max_rounds`` pass)."""
        for _ in range(max_rounds):
            if not self.poll_once():
                return

    def _settle(
        self, url: str, messages: list[dict[str, Any]], failed: set[str], returned: float
    ) -> None:
        done, lost_deletes = [], []
        reported = [m for m in messages if m["MessageId"] in failed]
        for message in messages:
            if message["MessageId"] in failed:
                continue
            if self.rng.random() < self.chaos.lost_delete_rate:
                self.stats.redeliveries_injected += 1
                lost_deletes.append(message)  # the delete "was lost": SQS redelivers it
            else:
                done.append(message)
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + 10])
                ],
            )
        released = lost_deletes + reported if self.release_failed else lost_deletes
        for message in released:  # visible again at once, as after a visibility timeout
            # An expired handle means the visibility timeout already put it back.
            with contextlib.suppress(self.sqs.exceptions.ReceiptHandleIsInvalid):
                self.sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
        if self.ledger is not None:
            self.ledger.settled("f", reported, returned)
            self.ledger.settled("d", done, time.time())
            self.ledger.settled("x", lost_deletes, time.time())
        settled = {m["ReceiptHandle"] for m in messages}
        self.in_flight = [(u, m) for u, m in self.in_flight if m["ReceiptHandle"] not in settled]


class StreamPump:
    """The stream's event source mapping: records in shard order, in batches, retried from
    the lowest failed sequence number. Its position per shard advances after each delivered
    batch and, with ``checkpoint``, is kept in that file (replaced atomically), so a pump
    that was killed resumes where the last delivered batch ended: the batch in flight is
    delivered again, as Lambda retries it."""

    def __init__(
        self,
        stream_arn: str,
        stats: PumpStats,
        *,
        batch: int = 100,
        checkpoint: Path | None = None,
        freshness: Freshness | None = None,
    ) -> None:
        self.stats = stats
        self.batch = batch
        self.checkpoint = checkpoint
        self.freshness = freshness
        self.context = LocalLambdaContext()
        self.reader = StreamReader(stream_arn, client=aws_client("dynamodbstreams"))
        self.handler = load_handler("stream_processor")
        self._positions: dict[str, str] = {}

    def _load_positions(self) -> dict[str, str]:
        if self.checkpoint is None:
            return self._positions
        try:
            positions: dict[str, str] = json.loads(self.checkpoint.read_text())
        except FileNotFoundError:
            return {}
        return positions

    def _save_positions(self, positions: dict[str, str]) -> None:
        self._positions = positions
        if self.checkpoint is not None:
            temporary = self.checkpoint.with_name(f".{self.checkpoint.name}.{os.getpid()}")
            temporary.write_text(json.dumps(positions))
            temporary.replace(self.checkpoint)

    def pump(
        self, limit: int | None = None, *, on_batch: Callable[[int], None] | None = None
    ) -> int:
        """Deliver the records after the saved positions, in whole batches, up to about
        ``limit`` records (all without one); returns how many were delivered.
        ``on_batch`` is told the size of each delivered batch (progress)."""
        positions = dict(self._load_positions())
        total = 0
        arn = self.reader.stream_arn
        # Read unshaped, so the freshness clock sees each write's full-precision time.
        for shard_id, raw in self.reader.read_after(positions, lambda_shape=False).items():
            if self.freshness is not None:
                for record in raw:
                    self.freshness.record_write(record)
            records = [lambda_record(record, arn) for record in raw]
            for start in range(0, len(records), self.batch):
                if limit is not None and total >= limit:
                    return total
                batch = records[start : start + self.batch]
                self.deliver(batch)
                positions[shard_id] = batch[-1]["dynamodb"]["SequenceNumber"]
                self._save_positions(positions)
                total += len(batch)
                if on_batch is not None:
                    on_batch(len(batch))
        return total

    @property
    def positions(self) -> dict[str, str]:
        """The last delivered sequence number of each shard."""
        return dict(self._load_positions())

    def deliver(self, records: list[Any]) -> None:
        """Invoke the stream handler on ``records`` as one batch, with the mapping's retries."""
        self.stats.stream_records += len(records)
        pending = records
        for attempt in range(STREAM_RETRIES + 1):
            self.stats.stream_invocations += 1
            output = io.StringIO()
            with redirect_stdout(output):
                response = self.handler.lambda_handler({"Records": pending}, self.context)
            count_stream_metrics(output.getvalue(), self.stats)
            failures = response["batchItemFailures"]
            if not failures:
                return
            if attempt == STREAM_RETRIES:
                self.stats.stream_records_given_up += len(pending)
                return
            self.stats.stream_retries += 1
            lowest = min(int(f["itemIdentifier"]) for f in failures)
            pending = [r for r in pending if _sequence(r) >= lowest]


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
