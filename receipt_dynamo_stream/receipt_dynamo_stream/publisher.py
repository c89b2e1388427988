"""Publishing messages to the lines/words queues with SQS batches (contract §3.5).

Batches hold at most 10 entries and 256 KiB. Entries SQS reports as ``Failed`` are
retried, batches refused as a whole are split and retried, both with backoff; whatever
still fails is returned with its source SequenceNumber. Nothing is dropped silently.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from receipt_dynamo.aws_clients import aws_client
from receipt_dynamo.constants import ChromaDBCollection
from receipt_dynamo_stream.exceptions import ConfigurationError
from receipt_dynamo_stream.models import (
    FailedMessage,
    PublishResult,
    QueueAttributes,
    StreamMessage,
)
from receipt_dynamo_stream.settings import QUEUE_URL_VARIABLES

if TYPE_CHECKING:
    from types_boto3_sqs.client import SQSClient

MAX_BATCH_ENTRIES: Final = 10
MAX_BATCH_BYTES: Final = 256 * 1024


@dataclass
class _Entry:
    sequence_number: str | None
    message: StreamMessage
    body: str
    attributes: QueueAttributes
    size: int
    error: str = ""

    @classmethod
    def of(cls, sequence_number: str | None, message: StreamMessage) -> _Entry:
        body = message.to_json()
        attributes = message.message_attributes()
        size = len(body) + sum(
            len(name) + len(value["DataType"]) + len(value["StringValue"])
            for name, value in attributes.items()
        )
        return cls(sequence_number, message, body, attributes, size)


def _batches(entries: Sequence[_Entry]) -> list[list[_Entry]]:
    batches: list[list[_Entry]] = []
    current: list[_Entry] = []
    current_size = 0
    for entry in entries:
        if current and (
            len(current) == MAX_BATCH_ENTRIES or current_size + entry.size > MAX_BATCH_BYTES
        ):
            batches.append(current)
            current, current_size = [], 0
        current.append(entry)
        current_size += entry.size
    if current:
        batches.append(current)
    return batches


def _queue_url(collection: ChromaDBCollection, url: str | None) -> str:
    if not url:
        raise ConfigurationError(
            f"{QUEUE_URL_VARIABLES[collection]} is not set: no queue for "
            f"{collection.value} messages (publish_messages' {collection.value}_queue_url)"
        )
    return url


class _QueueSender:
    """Sends entries to one queue until they succeed or run out of attempts."""

    def __init__(
        self, sqs: SQSClient, queue_url: str, max_attempts: int, backoff_seconds: float
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.requests = 0

    def send(self, entries: list[_Entry]) -> tuple[list[_Entry], list[_Entry]]:
        """Returns (published, failed)."""
        published: list[_Entry] = []
        pending = entries
        for attempt in range(1, self.max_attempts + 1):
            retry: list[_Entry] = []
            for batch in _batches(pending):
                sent, again = self._send_batch(batch)
                published += sent
                retry += again
            pending = retry
            if not pending:
                break
            if attempt < self.max_attempts:
                delay = self.backoff_seconds * 2 ** (attempt - 1)
                time.sleep(min(delay, 5.0) * random.uniform(0.5, 1.0))
        return published, pending

    def _send_batch(self, batch: list[_Entry]) -> tuple[list[_Entry], list[_Entry]]:
        self.requests += 1
        try:
            response = self.sqs.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {
                        "Id": str(index),
                        "MessageBody": entry.body,
                        "MessageAttributes": entry.attributes,  # type: ignore[typeddict-item]
                    }
                    for index, entry in enumerate(batch)
                ],
            )
        except (ClientError, BotoCoreError) as error:
            # Refused as a whole: split so one bad entry cannot sink the others.
            for entry in batch:
                entry.error = f"{type(error).__name__}: {error}"
            if len(batch) == 1:
                return [], batch
            middle = len(batch) // 2
            first_ok, first_bad = self._send_batch(batch[:middle])
            second_ok, second_bad = self._send_batch(batch[middle:])
            return first_ok + second_ok, first_bad + second_bad
        failures = {failure["Id"]: failure for failure in response.get("Failed", [])}
        sent: list[_Entry] = []
        retry: list[_Entry] = []
        for index, entry in enumerate(batch):
            failure = failures.get(str(index))
            if failure is None:
                sent.append(entry)
            else:
                entry.error = f"{failure.get('Code')}: {failure.get('Message', '')}"
                retry.append(entry)
        return sent, retry


def publish_messages(
    messages: Sequence[tuple[str | None, StreamMessage]],
    *,
    sqs_client: SQSClient | None = None,
    lines_queue_url: str | None = None,
    words_queue_url: str | None = None,
    max_attempts: int = 5,
    backoff_seconds: float = 0.1,
) -> PublishResult:
    """Send each message to its collection's queue; report what could not be sent.

    The queue URLs are the caller's (the stream Lambda's ``StreamSettings``: contract §8
    ``LINES_QUEUE_URL`` / ``WORDS_QUEUE_URL``); one that messages need but is missing
    raises ConfigurationError naming the variable, before anything is sent.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    explicit = {
        ChromaDBCollection.LINES: lines_queue_url,
        ChromaDBCollection.WORDS: words_queue_url,
    }
    by_collection: dict[ChromaDBCollection, list[_Entry]] = {}
    for sequence_number, message in messages:
        by_collection.setdefault(message.collection, []).append(_Entry.of(sequence_number, message))
    urls = {c: _queue_url(c, explicit[c]) for c in by_collection}
    sqs = sqs_client or aws_client("sqs")
    published: list[tuple[str | None, StreamMessage]] = []
    failed: list[FailedMessage] = []
    requests = 0
    for collection, entries in by_collection.items():
        sender = _QueueSender(sqs, urls[collection], max_attempts, backoff_seconds)
        sent, unsent = sender.send(entries)
        requests += sender.requests
        published += [(e.sequence_number, e.message) for e in sent]
        failed += [FailedMessage(e.sequence_number, e.message, e.error) for e in unsent]
    return PublishResult(published=published, failed=failed, attempts=requests)
