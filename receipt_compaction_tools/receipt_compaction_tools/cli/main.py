"""``receipt-compaction``: run the pipeline locally, replay captured records, inspect and
roll back snapshots, backfill. Errors a user can cause print one line and exit non-zero."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from receipt_chroma.exceptions import ReceiptChromaError
from receipt_compaction_tools.cli import snapshots
from receipt_compaction_tools.cli.demo import run_demo
from receipt_compaction_tools.local.pump import LambdaPump
from receipt_compaction_tools.local.resources import PipelineResources
from receipt_dynamo import DynamoClient, ReceiptDynamoError

console = Console(stderr=True)


class UsageError(Exception):
    """A mistake in what the user asked for."""


def _progress(enabled: bool) -> Callable[[str, int], Callable[[int], None]]:
    def factory(description: str, total: int) -> Callable[[int], None]:
        if not enabled:
            return lambda _: None
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
        )
        bar.start()
        task = bar.add_task(description, total=total)

        def advance(n: int) -> None:
            bar.advance(task, n)
            if bar.tasks[0].completed >= total:
                bar.stop()

        return advance

    return factory


def _print(result: dict[str, Any], as_json: bool, render: Callable[[dict[str, Any]], None]) -> None:
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        render(result)


def _render_mapping(result: dict[str, Any]) -> None:
    table = Table(show_header=False)
    for key, value in result.items():
        table.add_row(
            str(key), json.dumps(value, default=str) if not isinstance(value, str) else value
        )
    Console().print(table)


def _render_demo(summary: dict[str, Any]) -> None:
    out = Console()
    out.print("[bold]Receipt compaction demo[/bold]")
    overview = Table(show_header=False)
    for key in (
        "receipts",
        "rows_written",
        "stream_records",
        "stream_invocations",
        "messages_per_queue",
        "messages_failed",
        "records",
        "queue_depths",
    ):
        overview.add_row(key.replace("_", " "), json.dumps(summary[key]))
    out.print(overview)
    cycles = Table(
        "collection",
        "cache tier",
        "published",
        "vectors merged",
        "failures",
        title="compaction cycles",
    )
    for cycle in summary["cycles"]:
        cycles.add_row(
            cycle["collection"],
            str(cycle["tier"]),
            str(cycle["published"]),
            str(cycle["vectors_merged"]),
            str(cycle["failures"]),
        )
    out.print(cycles)
    out.print(f"snapshot versions: {json.dumps(summary['versions'])}")
    query = Table(
        "text",
        "merchant",
        "valid labels",
        "label status",
        "distance",
        title="nearest words to a labelled word (published snapshot)",
    )
    for row in summary["sample_query"]:
        query.add_row(
            str(row["text"]),
            str(row["merchant"]),
            str(row["labels"]),
            str(row["label_status"]),
            str(row["distance"]),
        )
    out.print(query)
    out.print(f"timings: {json.dumps(summary['timings'])}")


def _dynamo(args: argparse.Namespace) -> DynamoClient:
    if not args.table:
        raise UsageError("--table (or DYNAMODB_TABLE_NAME) is required")
    return DynamoClient(args.table)


def _bucket(args: argparse.Namespace) -> str:
    if not args.bucket:
        raise UsageError("--bucket (or CHROMADB_BUCKET) is required")
    return str(args.bucket)


def command_demo(args: argparse.Namespace) -> None:
    summary = run_demo(
        receipts=args.receipts,
        dimension=args.dim,
        seed=args.seed,
        endpoint_url=args.endpoint_url,
        progress=_progress(not args.json),
    )
    summary.pop("snapshot", None)
    _print(summary, args.json, _render_demo)


def _resources(args: argparse.Namespace) -> PipelineResources:
    dynamo = _dynamo(args)
    stream_arn = dynamo.client.describe_table(TableName=args.table)["Table"].get("LatestStreamArn")
    if not stream_arn:
        raise UsageError(f"table {args.table} has no stream")
    missing = [name for name in ("lines_queue_url", "words_queue_url") if not getattr(args, name)]
    if missing:
        raise UsageError(f"--{missing[0].replace('_', '-')} is required")
    return PipelineResources(
        table=args.table,
        stream_arn=stream_arn,
        bucket=_bucket(args),
        lines_queue_url=args.lines_queue_url,
        words_queue_url=args.words_queue_url,
        lines_dlq_url=args.lines_dlq_url or args.lines_queue_url,
        words_dlq_url=args.words_dlq_url or args.words_queue_url,
        stream_dlq_url=args.stream_dlq_url or args.lines_queue_url,
    )


def command_run(args: argparse.Namespace) -> None:
    pump = LambdaPump(_resources(args))
    while pump.pump_stream():
        pump.drain_queues()
    pump.drain_queues()
    _print(
        {
            "stream_records": pump.stats.stream_records,
            "cycles": pump.stats.cycles,
            "messages": dict(pump.stats.messages_received),
        },
        args.json,
        _render_mapping,
    )


def read_replay_file(path: Path) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UsageError(f"{path}:{number}: not a JSON record ({error.msg})") from None
        if not isinstance(record, dict) or "dynamodb" not in record:
            raise UsageError(f"{path}:{number}: not a Lambda-style stream record")
        records.append(record)
    return records


def command_replay(args: argparse.Namespace) -> None:
    records = read_replay_file(Path(args.events))
    pump = LambdaPump(_resources(args))
    pump.deliver_records(records)
    pump.drain_queues()
    _print(
        {
            "records": len(records),
            "cycles": pump.stats.cycles,
            "messages": dict(pump.stats.messages_received),
        },
        args.json,
        _render_mapping,
    )


def command_snapshot(args: argparse.Namespace) -> None:
    if args.action == "list":
        root = Path(args.chroma_root) if args.chroma_root else None
        result = snapshots.list_versions(_dynamo(args), _bucket(args), args.collection, root)
    elif args.action == "inspect":
        result = snapshots.inspect(_bucket(args), args.collection, args.version)
    elif args.action == "verify":
        result = snapshots.verify(_bucket(args), args.collection, args.version, args.dim)
    elif args.action == "download":
        result = snapshots.download(_bucket(args), args.collection, args.version, Path(args.to))
    else:
        result = snapshots.rollback(_dynamo(args), _bucket(args), args.collection, args.version)
    _print(result, args.json, _render_mapping)


def command_backfill(args: argparse.Namespace) -> None:
    result = snapshots.backfill(
        _dynamo(args), lines_queue_url=args.lines_queue_url, words_queue_url=args.words_queue_url
    )
    _print(result, args.json, _render_mapping)


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="receipt-compaction", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help="AWS-compatible endpoint (default: AWS_ENDPOINT_URL)",
    )
    deployment = argparse.ArgumentParser(add_help=False)
    deployment.add_argument("--table", default=os.environ.get("DYNAMODB_TABLE_NAME"))
    deployment.add_argument("--bucket", default=os.environ.get("CHROMADB_BUCKET"))
    queues = argparse.ArgumentParser(add_help=False)
    for name in (
        "lines-queue-url",
        "words-queue-url",
        "lines-dlq-url",
        "words-dlq-url",
        "stream-dlq-url",
    ):
        queues.add_argument(f"--{name}", default=os.environ.get(name.upper().replace("-", "_")))
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", parents=[common], help="the pipeline on synthetic data")
    demo.add_argument(
        "--receipts",
        type=_at_least(3),
        default=25,
        help="receipts to generate (at least 3: the edits need them)",
    )
    demo.add_argument("--dim", type=int, default=1536, help="embedding dimension")
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(handler=command_demo)

    run = commands.add_parser(
        "run",
        parents=[common, deployment, queues],
        help="pump a deployment's stream and queues until they drain",
    )
    run.set_defaults(handler=command_run)

    replay = commands.add_parser(
        "replay",
        parents=[common, deployment, queues],
        help="feed captured stream records (JSONL) through the pipeline",
    )
    replay.add_argument("events", help="file with one Lambda-style stream record per line")
    replay.set_defaults(handler=command_replay)

    snapshot = commands.add_parser("snapshot", help="list, inspect, verify, download, roll back")
    actions = snapshot.add_subparsers(dest="action", required=True)
    for action in ("list", "inspect", "verify", "download", "rollback"):
        sub = actions.add_parser(action, parents=[common, deployment])
        sub.add_argument("--collection", choices=["lines", "words"], default="words")
        if action != "list":
            sub.add_argument("version")
        if action == "list":
            sub.add_argument("--chroma-root", default=os.environ.get("CHROMA_ROOT"))
        if action == "verify":
            sub.add_argument(
                "--dim", type=int, default=int(os.environ.get("EMBEDDING_DIMENSION", "1536"))
            )
        if action == "download":
            sub.add_argument("--to", required=True, help="destination directory")
        sub.set_defaults(handler=command_snapshot)

    backfill = commands.add_parser(
        "backfill",
        parents=[common, deployment, queues],
        help="messages for existing rows (source: backfill)",
    )
    backfill.set_defaults(handler=command_backfill)
    return parser


def _error(text: str) -> None:
    """One plain line on stderr (no wrapping, no traceback)."""
    print(f"error: {' '.join(text.split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "endpoint_url", None):
        os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
    try:
        args.handler(args)
    except (UsageError, FileNotFoundError) as error:
        _error(str(error))
        return 2
    except (ReceiptChromaError, ReceiptDynamoError) as error:
        _error(str(error))
        return 1
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "error")
        _error(f"AWS refused the request ({code}): {error}")
        return 1
    except BotoCoreError as error:
        _error(f"cannot reach AWS: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
