"""``replay``: captured stream records, parked records or exported messages (JSONL) into
the pipeline's queues, and — as for ``run`` — a local compactor only when no deployed one
consumes them, or when asked."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from receipt_compaction_tools.cli import clients
from receipt_compaction_tools.cli.compactor_mode import add_pipeline_arguments, choose_mode
from receipt_compaction_tools.cli.dead_letters import record_keys
from receipt_compaction_tools.cli.exceptions import UsageError
from receipt_compaction_tools.cli.local_compactor import (
    COLLECTIONS,
    drain,
    handler_environment,
    local_consumer,
    pipeline_resources,
    unapplied,
)
from receipt_compaction_tools.cli.output import Output, progress
from receipt_compaction_tools.cli.pipeline_result import raise_for_failures, render_pipeline
from receipt_compaction_tools.cli.settings import queue_urls

if TYPE_CHECKING:
    from receipt_dynamo_stream import BuildResult, StreamMessage


def read_replay_file(path: Path) -> list[dict[str, Any]]:
    """Lambda-style stream records, parked bodies (their record is taken) and §3.4
    messages, one JSON object per line; UsageError naming the line of anything else."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: cannot be read ({error})") from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise UsageError(f"{path}:{number}: not a JSON record ({error.msg})") from None
        if isinstance(entry, dict) and entry.get("kind") == "unparseable_stream_record":
            entry = entry.get("record")
        if not isinstance(entry, dict) or not ("dynamodb" in entry or "entity_type" in entry):
            raise UsageError(
                f"{path}:{number}: neither a Lambda-style stream record nor a queue message"
            )
        entries.append(entry)
    return entries


def messages_to_send(
    events: str, entries: list[dict[str, Any]], built: BuildResult
) -> list[tuple[str | None, StreamMessage]]:
    """The messages built from the file's records, marked as replayed (contract §3.4),
    then the file's messages (a DLQ's export) as they were; UsageError when any of those
    is not a valid queue message."""
    from receipt_dynamo_stream import MessageSource, MessageValidationError, StreamMessage

    pairs: list[tuple[str | None, StreamMessage]] = [
        (sequence, dataclasses.replace(message, source=MessageSource.REPLAY))
        for sequence, message in built.messages
    ]
    invalid: list[str] = []
    for entry in entries:
        if "dynamodb" not in entry:
            try:
                pairs.append((None, StreamMessage.from_json(json.dumps(entry))))
            except MessageValidationError as invalid_message:
                invalid.append(str(invalid_message))
    if invalid:
        raise UsageError(f"{events}: {len(invalid)} invalid queue message(s): {invalid[0]}")
    return pairs


def command_replay(args: argparse.Namespace, out: Output) -> None:
    from receipt_compaction_tools.local.environment import environment
    from receipt_compaction_tools.local.pump_stats import PumpStats
    from receipt_dynamo_stream import build_messages, park_records, publish_messages

    entries = read_replay_file(Path(args.events))
    urls = queue_urls(args, list(COLLECTIONS))
    mode = choose_mode(args, urls)
    local = mode["mode"] == "local-compactor"
    resources = pipeline_resources(args, urls, "", local)
    records = [e for e in entries if "dynamodb" in e]
    built = build_messages(records)
    pairs = messages_to_send(args.events, entries, built)
    dlq_url = resources.stream_dlq_url or None
    sqs = clients.aws(args, "sqs")
    not_parked = (
        park_records(built.unparseable, dlq_url, sqs_client=sqs)
        if dlq_url and built.unparseable
        else []
    )
    for record, error in built.unparseable:
        print(f"unparseable record {record_keys(record)}: {error}", file=sys.stderr)
    stats = PumpStats()
    with progress() as bars:
        advance = bars("publishing messages", len(pairs))
        published = publish_messages(
            pairs,
            sqs_client=sqs,
            lines_queue_url=urls["lines"],
            words_queue_url=urls["words"],
        )
        advance(len(pairs))
        if local:
            with environment(handler_environment(args, resources)):
                drain(local_consumer(resources, stats), stats, bars)
    parked = len(built.unparseable) - len(not_parked) if dlq_url else 0
    result = {
        **mode,
        "records": len(records),
        "messages_in_file": len(entries) - len(records),
        "irrelevant": built.irrelevant,
        "messages_published": dict(Counter(m.collection.value for _, m in published.published)),
        "unparseable": len(built.unparseable),
        "parked": parked,
        "publish_failures": len(published.failed),
        "cycles": stats.cycles,
        "messages_failed": unapplied(stats),
        "failed_deliveries": dict(stats.messages_failed),
    }
    out.emit(result, render_pipeline)
    raise_for_failures(result, dlq_url)


def register(commands: Any) -> None:

    replay = commands.add_parser(
        "replay",
        help="publish captured stream records or exported messages (JSONL) to the queues",
        description="Each line: a Lambda-style stream record, a parked record (as `dlq "
        "export` writes it) or a queue message. Records become messages (source: replay); "
        "unparseable ones are parked on --stream-dlq-url and make the command fail.",
    )
    replay.add_argument("events", help="JSONL file")
    add_pipeline_arguments(replay)
    replay.set_defaults(handler=command_replay)
