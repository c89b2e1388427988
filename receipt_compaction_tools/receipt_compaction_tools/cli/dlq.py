"""``receipt-compaction dlq export|redrive``: the dead letters of the pipeline.

Queues by name: ``lines`` / ``words`` (the compactor's dead-letter queues, holding §3.4
messages) and ``stream`` (the parking queue of unparseable stream records, whose bodies
wrap the record: ``{"kind": "unparseable_stream_record", "record": …}``), or any URL.

``export`` writes one JSON object per line, which ``replay`` accepts: the message, or the
parked body as it was parked — the record with the ``error_type`` and ``error`` that
stopped it. Messages are received under a visibility timeout (so none is read twice) and
made visible again once the file is written, or deleted with ``--delete``. ``redrive``
sends dead letters back: a DLQ's messages to their collection's queue, the parking
queue's records through message building again; a record that still does not parse
stays parked, and its reason is printed.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from receipt_compaction_tools.cli import common
from receipt_compaction_tools.cli.common import (
    LINES_DLQ,
    LINES_QUEUE,
    STREAM_DLQ,
    WORDS_DLQ,
    WORDS_QUEUE,
    OperationFailed,
    Output,
    UsageError,
)

PARKED_KIND = "unparseable_stream_record"
SOURCES = {"lines": LINES_DLQ, "words": WORDS_DLQ, "stream": STREAM_DLQ}
TARGETS = {"lines": LINES_QUEUE, "words": WORDS_QUEUE}
SQS_BATCH = 10


def _source_url(args: argparse.Namespace) -> str:
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


def command_export(args: argparse.Namespace, out: Output) -> None:
    url = _source_url(args)
    destination = Path(args.output)
    if destination.exists() and not args.force:
        raise UsageError(f"{destination} exists; pass --force to overwrite")
    sqs = common.aws(args, "sqs")
    with common.progress() as bars:
        advance = bars("receiving dead letters", args.limit)
        messages = receive_all(sqs, url, visibility=args.visibility_timeout, limit=args.limit)
        advance(len(messages))
    lines, skipped, errors, listed = [], [], [], []
    for message in messages:
        entry, reason = exportable(message["Body"])
        parked = parked_reason(message["Body"])
        if entry is None:
            skipped.append({"message_id": message["MessageId"], "reason": reason, "error": parked})
            continue
        lines.append(json.dumps(entry, separators=(",", ":")))
        # The file stays what replay reads; the ids (to find the compactor's log line for
        # each message) and SQS attributes go to the output, by line of the file.
        listed.append(
            {"line": len(lines), "message_id": message["MessageId"], **sqs_attributes(message)}
        )
        if parked is not None:
            errors.append(
                {
                    "message_id": message["MessageId"],
                    "keys": record_keys(entry.get("record")),
                    "error": parked,
                }
            )
    temporary = destination.with_name(f".{destination.name}.{os.getpid()}.tmp")
    temporary.write_text("".join(f"{line}\n" for line in lines))
    temporary.replace(destination)
    not_deleted = 0
    if args.delete:
        exported = [m for m in messages if m["MessageId"] not in {s["message_id"] for s in skipped}]
        not_deleted = delete_messages(sqs, url, exported)
    else:
        release(sqs, url, messages)  # the queue as it was: every message visible again
    result = {
        "queue": url,
        "received": len(messages),
        "exported": len(lines),
        "skipped": skipped,
        "deleted": (len(lines) - not_deleted) if args.delete else 0,
        "file": str(destination),
        "messages": listed,
        "errors": errors,
    }
    out.emit(result, render_export)
    if skipped or not_deleted:
        raise OperationFailed(
            f"{len(skipped)} message(s) not exportable, {not_deleted} not deleted (see output)"
        )


def command_redrive(args: argparse.Namespace, out: Output) -> None:
    source = _source_url(args)
    sqs = common.aws(args, "sqs")
    with common.progress() as bars:
        advance = bars("redriving", args.limit)
        messages = receive_all(sqs, source, visibility=args.visibility_timeout, limit=args.limit)
        if args.queue == "stream":
            outcome = _redrive_parked(args, sqs, source, messages)
        else:
            outcome = _redrive_messages(args, sqs, source, messages)
        advance(len(messages))
    out.emit({"queue": source, "received": len(messages), **outcome}, render_redrive)
    if outcome["failed"]:
        raise OperationFailed(f"{outcome['failed']} dead letter(s) not redriven; they stay queued")


def _redrive_messages(
    args: argparse.Namespace, sqs: Any, source: str, messages: list[dict[str, Any]]
) -> dict[str, Any]:
    """A DLQ's messages to their collection's queue (sent, then deleted from the DLQ)."""
    if args.queue in TARGETS:
        target = str(TARGETS[args.queue].value(args, required=True))
    elif args.to:
        target = args.to
    else:
        raise UsageError("redriving a queue given by URL needs --to <queue url>")
    sent: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    failed = 0
    for start in range(0, len(messages), SQS_BATCH):
        chunk = messages[start : start + SQS_BATCH]
        response = sqs.send_message_batch(
            QueueUrl=target,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": m["Body"],
                    "MessageAttributes": {
                        k: {"DataType": v["DataType"], "StringValue": v["StringValue"]}
                        for k, v in m.get("MessageAttributes", {}).items()
                        if "StringValue" in v
                    },
                }
                for i, m in enumerate(chunk)
            ],
        )
        new_ids = {int(s["Id"]): s["MessageId"] for s in response.get("Successful", [])}
        failed += len(chunk) - len(new_ids)
        for i, m in enumerate(chunk):
            if i in new_ids:
                sent.append(m)
                moved.append({"message_id": m["MessageId"], "new_message_id": new_ids[i]})
    not_deleted = delete_messages(sqs, source, sent)
    release(sqs, source, [m for m in messages if m not in sent])
    return {
        "target": target,
        "sent": len(sent),
        "failed": failed,
        "not_deleted": not_deleted,
        "moved": moved,
    }


def _redrive_parked(
    args: argparse.Namespace, sqs: Any, source: str, messages: list[dict[str, Any]]
) -> dict[str, Any]:
    """Parked records through message building again; each record whose messages were all
    published is deleted from the parking queue, the others stay."""
    from receipt_dynamo_stream import MessageSource, build_messages, publish_messages

    urls = common.queue_urls(args, ["lines", "words"])
    published = failed = 0
    done: list[dict[str, Any]] = []
    reasons: list[dict[str, Any]] = []  # why each record stays parked
    for message in messages:
        record, reason = unwrap(message["Body"])
        keys = record_keys(record)
        if record is None:
            reasons.append({"message_id": message["MessageId"], "keys": keys, "reason": reason})
            continue
        built = build_messages([record])
        if built.unparseable:
            error = built.unparseable[0][1]
            reasons.append(
                {
                    "message_id": message["MessageId"],
                    "keys": keys,
                    "reason": f"{type(error).__name__}: {error}",
                }
            )
            continue
        pairs = [(s, _as_replay(m, MessageSource.REPLAY)) for s, m in built.messages]
        result = publish_messages(
            pairs,
            sqs_client=sqs,
            lines_queue_url=urls["lines"],
            words_queue_url=urls["words"],
        )
        published += len(result.published)
        if result.failed:
            failed += 1
            reasons.append(
                {
                    "message_id": message["MessageId"],
                    "keys": keys,
                    "reason": f"not published: {result.failed[0].error}",
                }
            )
        else:
            done.append(message)
    not_deleted = delete_messages(sqs, source, done)
    release(sqs, source, [m for m in messages if m not in done])  # they stay parked, visible
    return {
        "records_redriven": len(done),
        "messages_published": published,
        "still_unparseable": len(reasons) - failed,
        "failed": failed + not_deleted,
        "still_parked": reasons,
    }


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


def render_export(result: dict[str, Any], stream: IO[str]) -> None:
    common.render_mapping(
        {k: v for k, v in result.items() if k not in ("skipped", "errors", "messages")}, stream
    )
    for entry in result["messages"]:
        stream.write(
            f"line {entry['line']}  message_id {entry['message_id']}  received "
            f"{entry['receive_count']} times  sent {entry['sent_at']}\n"
        )
    for entry in result["skipped"]:
        stream.write(f"skipped  {entry['message_id']}: {entry['reason']}\n")
    for entry in result["errors"]:
        stream.write(f"parked   {entry['keys']}: {entry['error']}\n")


def render_redrive(result: dict[str, Any], stream: IO[str]) -> None:
    common.render_mapping(
        {k: v for k, v in result.items() if k not in ("still_parked", "moved")}, stream
    )
    for entry in result.get("moved", []):
        stream.write(
            f"moved  {entry['message_id']} -> {result['target']} as {entry['new_message_id']}\n"
        )
    for entry in result.get("still_parked", []):
        stream.write(f"still parked  {entry['keys']}: {entry['reason']}\n")


def _as_replay(message: Any, source: Any) -> Any:
    import dataclasses

    return dataclasses.replace(message, source=source)


def _seconds(text: str) -> int:
    try:
        value = common.positive_int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if value > 43200:
        raise argparse.ArgumentTypeError(f"must be at most 43200 (12 h), got {value}")
    return value


def _limit(text: str) -> int:
    try:
        return common.positive_int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(commands: Any) -> None:
    dlq = commands.add_parser("dlq", help="export or redrive dead letters", description=__doc__)
    actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export", help="dead letters → JSONL that replay accepts (parked records unwrapped)"
    )
    redrive = actions.add_parser(
        "redrive", help="dead letters back into the pipeline (deleted once sent)"
    )
    for sub in (export, redrive):
        sub.add_argument("queue", help="lines, words, stream or a queue URL")
        sub.add_argument("--limit", type=_limit, help="at most this many messages")
        sub.add_argument(
            "--visibility-timeout",
            type=_seconds,
            default=300,
            help="seconds the received messages stay hidden while this runs (300)",
        )
        common.add_settings(sub, common.ENDPOINT, common.REGION, *SOURCES.values())
    export.add_argument("-o", "--output", required=True, help="the JSONL file to write")
    export.add_argument("--force", action="store_true", help="overwrite an existing file")
    export.add_argument(
        "--delete", action="store_true", help="delete the exported messages from the queue"
    )
    export.set_defaults(handler=command_export)
    common.add_settings(redrive, *TARGETS.values())
    redrive.add_argument("--to", help="target queue URL when the source is given by URL")
    redrive.set_defaults(handler=command_redrive)
