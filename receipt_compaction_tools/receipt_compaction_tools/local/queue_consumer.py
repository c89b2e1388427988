"""The compactor's SQS event source mappings, in this process: Lambda-shaped SQS events
of up to ``batch`` messages; successes are deleted, failures come back — made visible
again at once, or, with ``release_failed=False``, when the handler's own visibility reset
(contract §7) says — and reach the DLQ after the queue's ``maxReceiveCount``. A
``DeliveryLedger`` records every delivery, so the reliability suite can check when failed
messages really came back; ``QueueChaos`` injects a standard queue's duplicates and lost
deletes."""

from __future__ import annotations

import contextlib
import io
import os
import random
import time
from contextlib import redirect_stdout
from dataclasses import dataclass
from typing import Any

from receipt_compaction_tools.local.delivery_ledger import DeliveryLedger
from receipt_compaction_tools.local.freshness import Freshness
from receipt_compaction_tools.local.handlers import load_handler
from receipt_compaction_tools.local.lambda_context import LocalLambdaContext
from receipt_compaction_tools.local.pump_stats import PumpStats, cycles_from_metrics
from receipt_dynamo.aws_clients import aws_client


def queue_arn(queue_url: str) -> str:
    """The ARN Lambda puts in ``eventSourceARN`` for a queue URL (``…/<account>/<name>``)."""
    account, name = queue_url.rstrip("/").split("/")[-2:]
    return f"arn:aws:sqs:{os.environ.get('AWS_DEFAULT_REGION', 'us-east-1')}:{account}:{name}"


def lambda_record(message: dict[str, Any], queue_url: str) -> dict[str, Any]:
    """A message received from SQS, shaped as Lambda's event source mapping hands it on."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            name: {"stringValue": v["StringValue"], "dataType": v["DataType"]}
            for name, v in message.get("MessageAttributes", {}).items()
        },
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn(queue_url),
        "awsRegion": "us-east-1",
    }


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
        url = self.queues[collection]
        return {"Records": [lambda_record(m, url) for m in messages]}

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
            invoked = time.time()
            with redirect_stdout(output):
                response = self.handler.lambda_handler(
                    self._event(collection, messages), self.context
                )
            returned = time.time()
            self.stats.cycles += cycles_from_metrics(output.getvalue())
            failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
            if self.freshness is not None:
                self.freshness.record_outcome(
                    collection, messages, failed, invoked=invoked, returned=returned
                )
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
