"""``run``: the table's new stream records into the pipeline's queues, resuming where the
last call ended, and — only when no deployed compactor consumes those queues, or when
asked — a local compactor that drains them.

Safe by default against a live stack: each queue's Lambda event source mappings are
looked up first; when a deployed compactor is attached (or the lookup is not allowed),
messages are only published and the deployed compactor applies them (``--publish-only``).
``--local-compactor`` runs the real compactor handler in this process instead.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path
from typing import Any

from receipt_compaction_tools.cli import clients
from receipt_compaction_tools.cli.compactor_mode import add_pipeline_arguments, choose_mode
from receipt_compaction_tools.cli.exceptions import UsageError
from receipt_compaction_tools.cli.local_compactor import (
    COLLECTIONS,
    drain,
    handler_environment,
    local_consumer,
    pipeline_resources,
    unapplied,
)
from receipt_compaction_tools.cli.local_state import state_dir
from receipt_compaction_tools.cli.output import Output, progress
from receipt_compaction_tools.cli.pipeline_result import raise_for_failures, render_pipeline
from receipt_compaction_tools.cli.settings import TABLE, queue_urls


def default_state_file(table: str, stream_arn: str) -> Path:
    """One position file per table stream: a re-created table has a new stream label, so
    it never resumes from a stale position."""
    label = stream_arn.rsplit("/", 1)[-1]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{table}-{label}")
    digest = hashlib.sha256(stream_arn.encode()).hexdigest()[:8]
    return state_dir() / f"stream-{safe}-{digest}.json"


def command_run(args: argparse.Namespace, out: Output) -> None:
    from receipt_compaction_tools.local.environment import environment
    from receipt_compaction_tools.local.pump_stats import PumpStats
    from receipt_compaction_tools.local.stream_pump import StreamPump

    table = TABLE.value(args, required=True)
    urls = queue_urls(args, list(COLLECTIONS))
    description = clients.dynamo(args).client.describe_table(TableName=table)["Table"]
    stream_arn = description.get("LatestStreamArn")
    if not stream_arn:
        raise UsageError(f"table {table} has no stream")
    mode = choose_mode(args, urls)
    local = mode["mode"] == "local-compactor"
    resources = pipeline_resources(args, urls, stream_arn, local)
    state_file = Path(args.state_file) if args.state_file else default_state_file(table, stream_arn)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    if args.from_start:
        state_file.unlink(missing_ok=True)
    stats = PumpStats()
    with environment(handler_environment(args, resources)), progress() as bars:
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
    raise_for_failures(result, resources.stream_dlq_url)


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
