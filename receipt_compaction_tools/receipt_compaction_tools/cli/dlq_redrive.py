"""``receipt-compaction dlq redrive``: dead letters back into the pipeline — a DLQ's
messages to their collection's queue, the parking queue's records through message
building again (a record that still does not parse stays parked, with its reason)."""

from __future__ import annotations

import argparse
from typing import IO, Any

from receipt_compaction_tools.cli import clients
from receipt_compaction_tools.cli.dead_letters import (
    SQS_BATCH,
    TARGETS,
    delete_messages,
    receive_all,
    record_keys,
    release,
    source_url,
    unwrap,
)
from receipt_compaction_tools.cli.exceptions import OperationFailed, UsageError
from receipt_compaction_tools.cli.output import Output, progress, render_mapping
from receipt_compaction_tools.cli.settings import queue_urls


def command_redrive(args: argparse.Namespace, out: Output) -> None:
    source = source_url(args)
    sqs = clients.aws(args, "sqs")
    with progress() as bars:
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

    urls = queue_urls(args, ["lines", "words"])
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


def render_redrive(result: dict[str, Any], stream: IO[str]) -> None:
    render_mapping({k: v for k, v in result.items() if k not in ("still_parked", "moved")}, stream)
    for entry in result.get("moved", []):
        stream.write(
            f"moved  {entry['message_id']} -> {result['target']} as {entry['new_message_id']}\n"
        )
    for entry in result.get("still_parked", []):
        stream.write(f"still parked  {entry['keys']}: {entry['reason']}\n")


def _as_replay(message: Any, source: Any) -> Any:
    import dataclasses

    return dataclasses.replace(message, source=source)
