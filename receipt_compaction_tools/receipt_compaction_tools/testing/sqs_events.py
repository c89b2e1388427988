"""An SQS event as the compactor's Lambda receives it: messages published by the real
publisher to a words queue, received, deleted and shaped as Lambda's event source mapping
hands them on (``queue_consumer.lambda_record``)."""

from __future__ import annotations

from typing import Any

import boto3

from receipt_compaction_tools.local.queue_consumer import lambda_record
from receipt_dynamo_stream import StreamMessage, publish_messages


def published_sqs_event(messages: list[tuple[str, StreamMessage]]) -> dict[str, Any]:
    """Publish ``messages`` (source sequence number, message) through ``publish_messages``,
    take them off the queue and return them as one Lambda SQS event."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="words")["QueueUrl"]
    assert publish_messages(messages, sqs_client=sqs, words_queue_url=url).failed == []
    records = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", []):
        for message in batch:
            records.append(lambda_record(dict(message), url))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return {"Records": records}
