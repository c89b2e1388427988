"""Fixtures for the Lambda entry points: a fresh handler module, a Lambda context, the
compactor's environment for a test world, and real SQS queues whose messages become Lambda's
SQS event records."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from receipt_compaction_tools.local.handlers import load_handler
from receipt_compaction_tools.local.lambda_context import LocalLambdaContext
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo_stream import StreamMessage, publish_messages

if TYPE_CHECKING:
    from types_boto3_sqs.client import SQSClient

# "6 x the function timeout": far beyond any wait in a test, so a message that comes back
# within a test had its visibility shortened by the handler.
QUEUE_VISIBILITY_SECONDS = 600


def _fresh_handler(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # The handler copies its logger's level to every package logger at import. Powertools
    # reads that level from LOG_LEVEL only when a service's logger is first made in the
    # process; later imports keep the first one (an earlier local run here may have set
    # WARNING, the demo ERROR), so the handler's and the packages' are set again here.
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    module = load_handler(name)
    module.logger.setLevel("INFO")
    for package in module.LOGGED_PACKAGES:
        logging.getLogger(package).setLevel("INFO")
    return module


@pytest.fixture
def lambda_context() -> LocalLambdaContext:
    return LocalLambdaContext()


@pytest.fixture
def stream_processor(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _fresh_handler("stream_processor", monkeypatch)


@pytest.fixture
def compaction_handler(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _fresh_handler("enhanced_compaction_handler", monkeypatch)


@pytest.fixture
def compactor_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., None]:
    """Point the compaction handler at a test world (contract §8 variables); keyword
    arguments override or add variables."""

    def apply(world: CompactionWorld, **overrides: str) -> None:
        values = {
            "DYNAMODB_TABLE_NAME": world.table,
            "CHROMADB_BUCKET": world.bucket,
            "CHROMA_ROOT": str(world.config.chroma_root),
            "CHROMA_WORK_DIR": str(world.config.work_dir),
            "EMBEDDING_DIMENSION": str(world.dimension),
            "LOCK_WAIT_SECONDS": "5",
            **overrides,
        }
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return apply


@dataclass
class LambdaQueue:
    """A real queue on the moto server; what is received from it is shaped as the records of
    Lambda's SQS event (kept in flight until the handler's response is settled)."""

    sqs: SQSClient
    url: str
    arn: str
    collection: str

    @classmethod
    def create(cls, collection: str = "words") -> LambdaQueue:
        sqs = boto3.client("sqs")
        url = sqs.create_queue(
            QueueName=collection, Attributes={"VisibilityTimeout": str(QUEUE_VISIBILITY_SECONDS)}
        )["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return cls(sqs, url, arn, collection)

    def publish(self, messages: list[tuple[str, StreamMessage]]) -> None:
        """Send through the stream side's real publisher."""
        urls = {f"{self.collection}_queue_url": self.url}
        assert publish_messages(messages, sqs_client=self.sqs, **urls).failed == []

    def send_bodies(self, bodies: Iterable[str]) -> None:
        """Send raw bodies with the attribute a publisher gives this queue's messages."""
        for body in bodies:
            self.sqs.send_message(
                QueueUrl=self.url,
                MessageBody=body,
                MessageAttributes={
                    "collection": {"DataType": "String", "StringValue": self.collection}
                },
            )

    def receive(self) -> list[dict[str, Any]]:
        """Every visible message, received (kept in flight) as Lambda's SQS records."""
        records: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", []):
            records += [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": {},
                    "messageAttributes": {
                        name: {"stringValue": v["StringValue"], "dataType": v["DataType"]}
                        for name, v in m.get("MessageAttributes", {}).items()
                    },
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn,
                    "awsRegion": self.arn.split(":")[3],
                }
                for m in batch
            ]
        return records

    def deliver(self, messages: list[tuple[str, StreamMessage]]) -> list[dict[str, Any]]:
        """Publish, then receive every message as Lambda's SQS records."""
        self.publish(messages)
        records = self.receive()
        assert len(records) == len(messages)
        return records

    def delete(self, records: list[dict[str, Any]], failed: set[str]) -> None:
        """What the event source mapping does with a response: delete the successes."""
        for record in records:
            if record["messageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=record["receiptHandle"])

    def visible_ids(self) -> set[str]:
        """Ids of the messages receivable right now (received again, then released)."""
        found: dict[str, str] = {}
        while batch := self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, VisibilityTimeout=60
        ).get("Messages", []):
            found.update((m["MessageId"], m["ReceiptHandle"]) for m in batch)
        for handle in found.values():
            self.sqs.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=handle, VisibilityTimeout=0
            )
        return set(found)

    def wait_until_visible(self, expected: set[str], timeout: float) -> tuple[float, set[str]]:
        """Receive until every ``expected`` id came back (fails after ``timeout`` s): the
        seconds it took and every id received meanwhile."""
        started = time.monotonic()
        seen: set[str] = set()
        while time.monotonic() - started < timeout:
            seen |= {
                m["MessageId"]
                for m in self.sqs.receive_message(
                    QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                ).get("Messages", [])
            }
            if expected <= seen:
                return time.monotonic() - started, seen
        raise AssertionError(f"{len(expected - seen)} messages not visible after {timeout} s")


@pytest.fixture
def words_queue(aws_endpoint: str) -> LambdaQueue:
    """The words queue, with a long visibility timeout."""
    return LambdaQueue.create("words")


@pytest.fixture
def lines_queue(aws_endpoint: str) -> LambdaQueue:
    """The lines queue, with a long visibility timeout."""
    return LambdaQueue.create("lines")
