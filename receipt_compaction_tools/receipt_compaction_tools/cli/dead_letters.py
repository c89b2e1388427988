"""Dead letters: the queues they are in (by name or URL), receiving them all within one
visibility window, what a dead letter holds (a §3.4 message, or a parked stream record
with the error that stopped it), and deleting or releasing them in batches."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from receipt_compaction_tools.cli.exceptions import UsageError
from receipt_compaction_tools.cli.settings import (
    LINES_DLQ,
    LINES_QUEUE,
    STREAM_DLQ,
    WORDS_DLQ,
    WORDS_QUEUE,
)

PARKED_KIND = "unparseable_stream_record"
SOURCES = {"lines": LINES_DLQ, "words": WORDS_DLQ, "stream": STREAM_DLQ}
TARGETS = {"lines": LINES_QUEUE, "words": WORDS_QUEUE}
SQS_BATCH = 10


def source_url(args: argparse.Namespace) -> str:
    if args.queue in SOURCES:
        return str(SOURCES[args.queue].value(args, required=True))
    if args.queue.startswith(("https://", "http://")):
        return str(args.queue)
    raise UsageError(f"queue {args.queue!r}: expected lines, words, stream or a queue URL")


def receive_all(sqs: Any, url: str, *, visibility: int, limit: int | None) -> list[dict[str, Any]]:
    """Every message the queue hands out within one visibility window (up to ``limit``):
    each stays invisible for ``visibility`` seconds, so none is received twice."""
    messages: list[dict[str, Any]] = []
    seen: set[str] = set()
    while limit is None or len(messages) < limit:
        batch = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=SQS_BATCH
            if limit is None
            else min(SQS_BATCH, limit - len(messages)),
            VisibilityTimeout=visibility,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
            WaitTimeSeconds=1,
        ).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh:
            break
        seen.update(m["MessageId"] for m in fresh)
        messages += fresh
    return messages


def _body(text: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        return None, f"body is not JSON ({error.msg})"
    if not isinstance(parsed, dict):
        return None, "body is not a JSON object"
    return parsed, None


def unwrap(body: str) -> tuple[dict[str, Any] | None, str | None]:
    """The record (of a parked body) or message of a dead letter and, when there is
    none, why."""
    parsed, reason = _body(body)
    if parsed is None:
        return None, reason
    if parsed.get("kind") == PARKED_KIND:
        if parsed.get("record_truncated"):
            return None, "the parked record was truncated (too large for SQS); only its keys remain"
        record = parsed.get("record")
        if not isinstance(record, dict):
            return None, "the parked body holds no record"
        return record, None
    return parsed, None


def exportable(body: str) -> tuple[dict[str, Any] | None, str | None]:
    """What ``export`` writes for a dead letter — the message, or the parked body with its
    record and error (``replay`` takes the record) — and, when nothing, why."""
    record, reason = unwrap(body)
    if record is None:
        return None, reason
    parsed, _ = _body(body)
    return (parsed if parsed is not None and parsed.get("kind") == PARKED_KIND else record), None


def parked_reason(body: str) -> str | None:
    """The ``error`` a parked body records (``error_type: error``), if any."""
    parsed, _ = _body(body)
    if parsed is None or parsed.get("kind") != PARKED_KIND or not parsed.get("error"):
        return None
    kind = parsed.get("error_type")
    return f"{kind}: {parsed['error']}" if kind else str(parsed["error"])


def record_keys(record: Any) -> str:
    """A record's table keys as ``PK / SK`` (for one-line reasons)."""
    dynamodb = record.get("dynamodb") if isinstance(record, dict) else None
    keys = dynamodb.get("Keys") if isinstance(dynamodb, dict) else None
    if not isinstance(keys, dict):
        return "(no keys)"
    parts = [
        str(value.get("S")) if isinstance(value, dict) and "S" in value else str(value)
        for value in (keys.get("PK"), keys.get("SK"))
    ]
    return " / ".join(parts)


def delete_messages(sqs: Any, url: str, messages: list[dict[str, Any]]) -> int:
    """Delete ``messages``; returns how many could not be deleted."""
    failed = 0
    for start in range(0, len(messages), SQS_BATCH):
        chunk = messages[start : start + SQS_BATCH]
        response = sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
            ],
        )
        failed += len(response.get("Failed", []))
    return failed


def release(sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
    """Make received messages visible again at once (their receive window ends now)."""
    for start in range(0, len(messages), SQS_BATCH):
        chunk = messages[start : start + SQS_BATCH]
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(chunk)
            ],
        )


def sqs_attributes(message: dict[str, Any]) -> dict[str, Any]:
    """How often the message was received and when it was first sent and received."""
    attributes = message.get("Attributes", {})

    def at(name: str) -> str | None:
        millis = attributes.get(name)
        if millis is None:
            return None
        return datetime.fromtimestamp(int(millis) / 1000, UTC).isoformat(timespec="seconds")

    count = attributes.get("ApproximateReceiveCount")
    return {
        "receive_count": None if count is None else int(count),
        "sent_at": at("SentTimestamp"),
        "first_received_at": at("ApproximateFirstReceiveTimestamp"),
    }
