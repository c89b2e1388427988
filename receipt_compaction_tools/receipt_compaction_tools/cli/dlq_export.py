"""``receipt-compaction dlq export``: dead letters into a JSONL file that ``replay``
accepts; the messages are made visible again, or deleted with ``--delete``."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from receipt_compaction_tools.cli import clients
from receipt_compaction_tools.cli.dead_letters import (
    delete_messages,
    exportable,
    parked_reason,
    receive_all,
    record_keys,
    release,
    source_url,
    sqs_attributes,
)
from receipt_compaction_tools.cli.exceptions import OperationFailed, UsageError
from receipt_compaction_tools.cli.output import Output, progress, render_mapping


@dataclass
class Export:
    """What one export writes and reports: the file's lines, and per message its line
    (with SQS attributes), why it was skipped, or the error it was parked with."""

    lines: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    listed: list[dict[str, Any]] = field(default_factory=list)

    def add(self, message: dict[str, Any]) -> None:
        entry, reason = exportable(message["Body"])
        parked = parked_reason(message["Body"])
        if entry is None:
            self.skipped.append(
                {"message_id": message["MessageId"], "reason": reason, "error": parked}
            )
            return
        self.lines.append(json.dumps(entry, separators=(",", ":")))
        # The file stays what replay reads; the ids (to find the compactor's log line for
        # each message) and SQS attributes go to the output, by line of the file.
        self.listed.append(
            {"line": len(self.lines), "message_id": message["MessageId"], **sqs_attributes(message)}
        )
        if parked is not None:
            self.errors.append(
                {
                    "message_id": message["MessageId"],
                    "keys": record_keys(entry.get("record")),
                    "error": parked,
                }
            )


def command_export(args: argparse.Namespace, out: Output) -> None:
    url = source_url(args)
    destination = Path(args.output)
    if destination.exists() and not args.force:
        raise UsageError(f"{destination} exists; pass --force to overwrite")
    sqs = clients.aws(args, "sqs")
    with progress() as bars:
        advance = bars("receiving dead letters", args.limit)
        messages = receive_all(sqs, url, visibility=args.visibility_timeout, limit=args.limit)
        advance(len(messages))
    export = Export()
    for message in messages:
        export.add(message)
    lines, skipped = export.lines, export.skipped
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
        "messages": export.listed,
        "errors": export.errors,
    }
    out.emit(result, render_export)
    if skipped or not_deleted:
        raise OperationFailed(
            f"{len(skipped)} message(s) not exportable, {not_deleted} not deleted (see output)"
        )


def render_export(result: dict[str, Any], stream: IO[str]) -> None:
    render_mapping(
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
