"""``receipt-compaction status``: per collection the pointer (version, age, history) and
whether every retained version still verifies, the lease (holder, expiry, fencing token),
the queue and its dead-letter queue, the compaction runs not yet applied, and the records
not yet in the HNSW index; for the table, how far the stream mapping is behind; and the
stream parking queue.

Freshness: a version's age is its publish time; oldest-message ages are CloudWatch's
``ApproximateAgeOfOldestMessage`` (what the alarms watch; SQS itself does not report
them). Where CloudWatch has no datapoint (a new stack, an emulator) a dead-letter or
parking queue is sampled instead: up to ten messages received with a zero visibility
timeout (nothing consumes those queues, so the receive count that adds is harmless); a
work queue is never sampled, because every receive counts towards its
``maxReceiveCount``. Runs still PENDING or PROCESSING come from the table's ``RUNS``
index (``--runs-days``, 7). The stream's iterator age is the stream function's
``IteratorAge`` (its event source mapping found from the table's stream), else the
stream handler's ``StreamLagSeconds``; "unavailable" where CloudWatch has neither.

Versions: each retained version's manifest is checked against its hash and every object
it names must exist; an object whose ETag changed since this machine last read and
verified it is flagged too (objects are never rewritten, except by ``snapshot repair``).
``--deep`` reads every object of every retained version back and hashes it — it reports
per version and never stops at a damaged one — and measures ``UnindexedRecords`` on the
current version (else the compactor's metric is shown).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from receipt_compaction_tools.cli.exceptions import OperationFailed
from receipt_compaction_tools.cli.output import Output
from receipt_compaction_tools.cli.settings import (
    BUCKET,
    ENDPOINT,
    LINES_DLQ,
    LINES_QUEUE,
    REGION,
    STREAM_DLQ,
    TABLE,
    WORDS_DLQ,
    WORDS_QUEUE,
    add_settings,
    positive_float,
    positive_int,
)
from receipt_compaction_tools.cli.status_render import remedy, render_status
from receipt_compaction_tools.cli.status_report import collect, damaged_versions
from receipt_compaction_tools.cli.status_sources import COLLECTIONS


def command_status(args: argparse.Namespace, out: Output) -> None:
    if args.watch is None:
        result = collect(args)
        out.emit(result, render_status)
        damaged = damaged_versions(result)
        if damaged:
            names = ", ".join(f"{v['collection']} {v['version']}" for v in damaged)
            raise OperationFailed(
                f"{len(damaged)} retained version(s) do not verify: {names} ({remedy(damaged)})"
            )
        return
    # --watch: a new report every N seconds; with --json one JSON document per line.
    shown = 0
    while args.count is None or shown < args.count:
        if shown:
            time.sleep(args.watch)
        result = collect(args)
        if out.as_json:
            out.stream.write(json.dumps(result, default=str) + "\n")
            out.stream.flush()
        else:
            if out.stream.isatty():
                out.stream.write("\033[2J\033[H")  # clear the terminal between reports
            render_status(result, out.stream)
            out.stream.flush()
        shown += 1
    print(f"{shown} report(s)", file=sys.stderr)


def _interval(text: str) -> float:
    try:
        return positive_float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _count(text: str) -> int:
    try:
        return positive_int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(commands: Any) -> None:
    status = commands.add_parser(
        "status",
        help="freshness and health per collection: pointer and versions, lease, queues, "
        "runs not yet applied, stream lag",
        description=__doc__,
    )
    status.add_argument(
        "--collection", choices=COLLECTIONS, action="append", help="only this one (repeatable)"
    )
    status.add_argument(
        "--watch",
        type=_interval,
        nargs="?",
        const=5.0,
        metavar="SECONDS",
        help="report again every SECONDS (5) until interrupted",
    )
    status.add_argument("--count", type=_count, help="with --watch: stop after this many reports")
    status.add_argument(
        "--deep",
        action="store_true",
        help="read back and hash every object of every retained version (reported per "
        "version), and measure unindexed records on the current one",
    )
    status.add_argument(
        "--runs-days",
        type=_interval,
        default=7.0,
        metavar="DAYS",
        help="count runs not yet applied among those created in the last DAYS (7)",
    )
    add_settings(
        status,
        ENDPOINT,
        REGION,
        TABLE,
        BUCKET,
        LINES_QUEUE,
        WORDS_QUEUE,
        LINES_DLQ,
        WORDS_DLQ,
        STREAM_DLQ,
    )
    # One report without --deep only reads a few items: bounded as a whole by --timeout.
    status.set_defaults(
        handler=command_status,
        bounded_as_whole=lambda args: not args.deep and args.watch is None,
    )
