"""``run`` and ``replay``: records into the pipeline's queues, and — only when no deployed
compactor consumes those queues, or when asked — a local compactor that drains them.

Safe by default against a live stack: each queue's Lambda event source mappings are
looked up first; when a deployed compactor is attached (or the lookup is not allowed),
messages are only published and the deployed compactor applies them (``--publish-only``).
``--local-compactor`` runs the real compactor handler in this process instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from receipt_compaction_tools.cli import common
from receipt_compaction_tools.cli.common import (
    BUCKET,
    CHROMA_ROOT,
    DIMENSION,
    LINES_DLQ,
    STREAM_DLQ,
    TABLE,
    WORDS_DLQ,
    WORK_DIR,
    OperationFailed,
    Output,
    UsageError,
)
from receipt_compaction_tools.cli.dlq import record_keys

if TYPE_CHECKING:
    from receipt_compaction_tools.local.pump import PumpStats, QueueConsumer
    from receipt_compaction_tools.local.resources import PipelineResources

COLLECTIONS = ("lines", "words")
ACTIVE_MAPPING_STATES = frozenset({"Enabled", "Enabling", "Creating", "Updating"})


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_settings(parser, common.ENDPOINT, common.REGION, TABLE, *common.QUEUES)
    STREAM_DLQ.add_to(parser, note="; unparseable records are parked there")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--publish-only",
        action="store_true",
        help="only publish messages; a deployed compactor applies them (the default when "
        "one consumes the queues)",
    )
    mode.add_argument(
        "--local-compactor",
        action="store_true",
        help="also run the compactor in this process until the queues drain (the default "
        "when no deployed compactor consumes the queues)",
    )
    local = parser.add_argument_group("local compactor")
    common.add_settings(local, BUCKET, CHROMA_ROOT, WORK_DIR, DIMENSION, LINES_DLQ, WORDS_DLQ)


# --- is a compactor deployed? ------------------------------------------------------------


def _queue_arn(sqs: Any, url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def deployed_consumers(
    args: argparse.Namespace, queue_urls: dict[str, str]
) -> tuple[list[str], str | None]:
    """UUIDs of active Lambda event source mappings on the queues, and why the lookup
    could not tell (None when it could)."""
    from botocore.exceptions import BotoCoreError, ClientError

    sqs = common.aws(args, "sqs")
    arns = [_queue_arn(sqs, url) for url in queue_urls.values()]  # errors: a bad queue URL
    try:
        lambda_client = common.aws(args, "lambda")
        found = []
        for arn in arns:
            pages = lambda_client.get_paginator("list_event_source_mappings").paginate(
                EventSourceArn=arn
            )
            for page in pages:
                found += [
                    m["UUID"]
                    for m in page.get("EventSourceMappings", [])
                    if m.get("State") in ACTIVE_MAPPING_STATES
                ]
    except (BotoCoreError, ClientError) as error:
        return [], f"{type(error).__name__}: {error}"
    return found, None


def choose_mode(args: argparse.Namespace, queue_urls: dict[str, str]) -> dict[str, Any]:
    """``publish-only`` or ``local-compactor``, and why."""
    if args.publish_only:
        return {"mode": "publish-only", "reason": "--publish-only"}
    if args.local_compactor:
        return {"mode": "local-compactor", "reason": "--local-compactor"}
    mappings, unknown = deployed_consumers(args, queue_urls)
    if unknown is not None:
        return {
            "mode": "publish-only",
            "reason": f"could not list the queues' event source mappings ({unknown})",
        }
    if mappings:
        return {"mode": "publish-only", "reason": "deployed compactor", "mappings": mappings}
    return {"mode": "local-compactor", "reason": "no event source mapping on the queues"}


# --- the local pipeline ------------------------------------------------------------------


def _resources(
    args: argparse.Namespace, queue_urls: dict[str, str], stream_arn: str, local: bool
) -> PipelineResources:
    from receipt_compaction_tools.local.resources import PipelineResources

    return PipelineResources(
        table=TABLE.value(args, required=True),
        stream_arn=stream_arn,
        bucket=BUCKET.value(args, required=local) or "",
        lines_queue_url=queue_urls["lines"],
        words_queue_url=queue_urls["words"],
        lines_dlq_url=LINES_DLQ.value(args) or "",
        words_dlq_url=WORDS_DLQ.value(args) or "",
        stream_dlq_url=STREAM_DLQ.value(args) or "",
    )


def handler_environment(args: argparse.Namespace, resources: PipelineResources) -> dict[str, str]:
    """The variables the two handlers read (contract §8), from the resolved settings: the
    flags reach the handlers through them."""
    environment = {
        "LINES_QUEUE_URL": resources.lines_queue_url,
        "WORDS_QUEUE_URL": resources.words_queue_url,
        "DYNAMODB_TABLE_NAME": resources.table,
        "LOG_LEVEL": "WARNING",
    }
    if resources.stream_dlq_url:
        environment["STREAM_DLQ_URL"] = resources.stream_dlq_url
    if resources.bucket:
        root = CHROMA_ROOT.value(args) or str(common.state_dir() / "efs")
        environment.update(
            CHROMADB_BUCKET=resources.bucket,
            CHROMA_ROOT=root,
            CHROMA_WORK_DIR=WORK_DIR.value(args),
            EMBEDDING_DIMENSION=str(DIMENSION.value(args)),
        )
    return environment


@contextmanager
def interrupts_stay_here() -> Iterator[None]:
    """Processes started meanwhile (the compactor's delta reader, started when its handler
    is loaded) inherit an ignored SIGINT: a Ctrl-C at the terminal reaches the whole
    process group, and it is this process's to handle — it hands the messages in flight
    back — never a helper's traceback."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def local_consumer(resources: PipelineResources, stats: PumpStats) -> QueueConsumer:
    from receipt_compaction_tools.local.pump import QueueConsumer

    with interrupts_stay_here():
        return QueueConsumer(resources.queues, stats)


def drain(consumer: QueueConsumer, stats: PumpStats, bars: common.ProgressFactory) -> None:
    """Invoke the local compactor until the queues stay empty. Interrupted (Ctrl-C) or
    failing, it first makes the messages it holds visible again, so they come back at
    once instead of after the queue's visibility timeout."""
    advance = bars("compaction passes", None)
    try:
        for _ in range(50):
            if not consumer.poll_once():
                return
            advance(1)
    except BaseException as error:
        released = consumer.release_in_flight()
        if isinstance(error, KeyboardInterrupt) and released:
            print(f"{released} message(s) in flight made visible again", file=sys.stderr)
        raise
    finally:
        consumer.close()
    raise OperationFailed(
        "queues not drained after 50 compaction passes; messages still failing: "
        + _per_collection(unapplied(stats))
    )


def unapplied(stats: PumpStats) -> dict[str, int]:
    """Messages (not deliveries) whose last delivery failed, per collection."""
    return {c: len(stats.unapplied.get(c, ())) for c in COLLECTIONS}


def _per_collection(counts: dict[str, int]) -> str:
    return ", ".join(f"{collection} {count}" for collection, count in counts.items())


def _unparseable_error(unparseable: int, parked: int, dlq_url: str | None) -> str:
    where = f"{parked} parked on {dlq_url}" if dlq_url else "pass --stream-dlq-url to park them"
    return f"{unparseable} record(s) could not be parsed ({where})"


# --- run ---------------------------------------------------------------------------------


def default_state_file(table: str, stream_arn: str) -> Path:
    """One position file per table stream: a re-created table has a new stream label, so
    it never resumes from a stale position."""
    label = stream_arn.rsplit("/", 1)[-1]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{table}-{label}")
    digest = hashlib.sha256(stream_arn.encode()).hexdigest()[:8]
    return common.state_dir() / f"stream-{safe}-{digest}.json"


def command_run(args: argparse.Namespace, out: Output) -> None:
    from receipt_compaction_tools.local.environment import environment
    from receipt_compaction_tools.local.pump import PumpStats, StreamPump

    table = TABLE.value(args, required=True)
    queue_urls = common.queue_urls(args, list(COLLECTIONS))
    description = common.dynamo(args).client.describe_table(TableName=table)["Table"]
    stream_arn = description.get("LatestStreamArn")
    if not stream_arn:
        raise UsageError(f"table {table} has no stream")
    mode = choose_mode(args, queue_urls)
    local = mode["mode"] == "local-compactor"
    resources = _resources(args, queue_urls, stream_arn, local)
    state_file = Path(args.state_file) if args.state_file else default_state_file(table, stream_arn)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    if args.from_start:
        state_file.unlink(missing_ok=True)
    stats = PumpStats()
    with environment(handler_environment(args, resources)), common.progress() as bars:
        stream = StreamPump(stream_arn, stats, checkpoint=state_file)
        stream.pump(on_batch=bars("stream records", None))
        if local:
            drain(local_consumer(resources, stats), stats, bars)
    result = {
        **mode,
        "stream_records": stats.stream_records,
        "stream_invocations": stats.stream_invocations,
        "messages_published": dict(stats.messages_published),
        "unparseable": stats.stream_unparseable,
        "parked": stats.stream_parked,
        "publish_failures": stats.stream_publish_failures,
        "records_given_up": stats.stream_records_given_up,
        "cycles": stats.cycles,
        "messages_failed": unapplied(stats),
        "failed_deliveries": dict(stats.messages_failed),
        "state_file": str(state_file),
        "positions": stream.positions,
    }
    out.emit(result, render_pipeline)
    _raise_for_failures(result, resources.stream_dlq_url)


# --- replay ------------------------------------------------------------------------------


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


def command_replay(args: argparse.Namespace, out: Output) -> None:
    from receipt_compaction_tools.local.environment import environment
    from receipt_compaction_tools.local.pump import PumpStats
    from receipt_dynamo_stream import (
        MessageSource,
        MessageValidationError,
        StreamMessage,
        build_messages,
        park_records,
        publish_messages,
    )

    entries = read_replay_file(Path(args.events))
    queue_urls = common.queue_urls(args, list(COLLECTIONS))
    mode = choose_mode(args, queue_urls)
    local = mode["mode"] == "local-compactor"
    resources = _resources(args, queue_urls, "", local)

    records = [e for e in entries if "dynamodb" in e]
    built = build_messages(records)
    # Replayed records are marked as such (contract §3.4); messages (a DLQ's export) are
    # sent again as they were.
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
        raise UsageError(f"{args.events}: {len(invalid)} invalid queue message(s): {invalid[0]}")
    dlq_url = resources.stream_dlq_url or None
    sqs = common.aws(args, "sqs")
    not_parked = (
        park_records(built.unparseable, dlq_url, sqs_client=sqs)
        if dlq_url and built.unparseable
        else []
    )
    for record, error in built.unparseable:
        print(f"unparseable record {record_keys(record)}: {error}", file=sys.stderr)
    stats = PumpStats()
    with common.progress() as bars:
        advance = bars("publishing messages", len(pairs))
        published = publish_messages(
            pairs,
            sqs_client=sqs,
            lines_queue_url=queue_urls["lines"],
            words_queue_url=queue_urls["words"],
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
    _raise_for_failures(result, dlq_url)


def _raise_for_failures(result: dict[str, Any], dlq_url: str | None) -> None:
    problems = []
    if result["unparseable"]:
        problems.append(_unparseable_error(result["unparseable"], result["parked"], dlq_url))
    if result["publish_failures"]:
        problems.append(f"{result['publish_failures']} message(s) not published")
    if result.get("records_given_up"):
        problems.append(f"{result['records_given_up']} record(s) given up after retries")
    if sum(result["messages_failed"].values()):
        problems.append(
            "messages the compactor did not apply: "
            + _per_collection(result["messages_failed"])
            + " (retried from their queues; after maxReceiveCount in the dead-letter queues)"
        )
    if problems:
        raise OperationFailed("; ".join(problems))


def render_pipeline(result: dict[str, Any], stream: IO[str]) -> None:
    common.render_mapping({k: v for k, v in result.items() if k != "cycles"}, stream)
    for cycle in result["cycles"]:
        stream.write(
            f"cycle  {cycle['collection']}: tier {cycle['tier']}, "
            f"{'published' if cycle['published'] else 'nothing published'}, "
            f"{cycle['vectors_merged']} vectors merged, {cycle['failures']} failed\n"
        )


def register(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="pump the table's stream into the queues (resuming where the last call ended)",
        description="Deliver the table's new stream records to the stream handler (in this "
        "process), which publishes messages to the queues; then, unless a deployed "
        "compactor consumes them, drain the queues with the compactor handler. The stream "
        "position is kept in a state file, so each call continues where the last ended.",
    )
    add_pipeline_arguments(run)
    run.add_argument(
        "--state-file",
        help="where the stream position is kept (default: a file per table stream under "
        "$RECEIPT_COMPACTION_STATE_DIR, $XDG_STATE_HOME/receipt-compaction or "
        "~/.local/state/receipt-compaction)",
    )
    run.add_argument(
        "--from-start",
        action="store_true",
        help="forget the saved position: read from TRIM_HORIZON",
    )
    run.set_defaults(handler=command_run)

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
