"""``receipt-compaction status``: per collection the pointer (version, age, history), the
lease (holder, expiry, fencing token), the queue and its dead-letter queue, plus the stream
parking queue — depth and oldest-message age — and the records not yet in the HNSW index.

Oldest-message ages are CloudWatch's ``ApproximateAgeOfOldestMessage`` (what the alarms
watch); SQS itself does not report them. Where CloudWatch has no datapoint (a new stack,
an emulator) a dead-letter or parking queue is sampled instead: up to ten messages
received with a zero visibility timeout (nothing consumes those queues, so the receive
count that adds is harmless); a work queue is never sampled, because every receive counts
towards its ``maxReceiveCount``. ``UnindexedRecords`` is the compactor's metric; with
``--deep`` it is measured on a downloaded copy of the published version instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from receipt_compaction_tools.cli import common
from receipt_compaction_tools.cli.common import (
    BUCKET,
    LINES_DLQ,
    LINES_QUEUE,
    STREAM_DLQ,
    TABLE,
    WORDS_DLQ,
    WORDS_QUEUE,
    Output,
)

COLLECTIONS = ("lines", "words")
COMPACTOR_SERVICE = "receipt-compactor"
NAMESPACE = "ReceiptCompaction"


def version_time(version: str) -> datetime | None:
    """When a version id (contract §6: ``YYYYMMDD_HHMMSS_ffffff_<8 hex>``, UTC) was minted.
    Read here rather than through ``receipt_chroma.snapshots``, whose package imports
    chromadb (seconds) — status stays a light command."""
    try:
        return datetime.strptime(version[:22], "%Y%m%d_%H%M%S_%f").replace(tzinfo=UTC)
    except ValueError:
        return None


def _age(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else round((now - moment).total_seconds(), 1)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _latest_metric(
    cloudwatch: Any, namespace: str, name: str, dimensions: dict[str, str], statistic: str
) -> float | None:
    now = datetime.now(UTC)
    try:
        points = cloudwatch.get_metric_statistics(
            Namespace=namespace,
            MetricName=name,
            Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
            StartTime=now - timedelta(minutes=15),
            EndTime=now,
            Period=60,
            Statistics=[statistic],
        ).get("Datapoints", [])
    except Exception:  # no CloudWatch permission or service: the value is just unknown
        return None
    if not points:
        return None
    return float(max(points, key=lambda p: p["Timestamp"])[statistic])


def queue_status(sqs: Any, cloudwatch: Any, url: str, *, sample: bool) -> dict[str, Any]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    name = url.rstrip("/").rsplit("/", 1)[-1]
    visible = int(attributes.get("ApproximateNumberOfMessages", 0))
    oldest = _latest_metric(
        cloudwatch, "AWS/SQS", "ApproximateAgeOfOldestMessage", {"QueueName": name}, "Maximum"
    )
    source = "cloudwatch" if oldest is not None else None
    if oldest is None and sample and visible:
        sent = [
            int(m["Attributes"]["SentTimestamp"]) / 1000
            for m in sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=0,
                AttributeNames=["SentTimestamp"],
            ).get("Messages", [])
        ]
        if sent:
            oldest, source = round(time.time() - min(sent), 1), "sample"
    return {
        "queue": name,
        "visible": visible,
        "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        "delayed": int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
        "oldest_age_seconds": oldest,
        "oldest_age_source": source,
    }


def _unindexed(args: argparse.Namespace, cloudwatch: Any, collection: str) -> dict[str, Any]:
    if args.deep:
        from receipt_chroma.snapshots import index_state
        from receipt_compaction_tools.cli.query import published_copy

        version, path = published_copy(args, collection)
        return {"records": index_state(path, collection).unindexed_records, "source": version}
    value = _latest_metric(
        cloudwatch,
        NAMESPACE,
        "UnindexedRecords",
        {"service": COMPACTOR_SERVICE, "collection": collection},
        "Maximum",
    )
    return {"records": None if value is None else int(value), "source": "cloudwatch"}


def collect(args: argparse.Namespace) -> dict[str, Any]:
    import boto3

    dynamo = common.dynamo(args)
    sqs, cloudwatch = boto3.client("sqs"), boto3.client("cloudwatch")
    now = datetime.now(UTC)
    queues = {"lines": (LINES_QUEUE, LINES_DLQ), "words": (WORDS_QUEUE, WORDS_DLQ)}
    collections: dict[str, Any] = {}
    for collection in args.collection or COLLECTIONS:
        pointer = dynamo.get_snapshot_pointer(collection)
        lock = dynamo.get_compaction_lock(collection)
        expires = _parse_time(lock.expires) if lock else None
        entry: dict[str, Any] = {
            "pointer": None,
            "lease": None,
        }
        if pointer is not None:
            entry["pointer"] = {
                "version": pointer.version,
                "updated_at": pointer.updated_at,
                "age_seconds": _age(_parse_time(pointer.updated_at), now),
                "fencing_token": pointer.fencing_token,
                "history": [
                    {"version": v, "age_seconds": _age(version_time(v), now)}
                    for v in pointer.history
                ],
            }
        if lock is not None:
            held = bool(lock.owner) and expires is not None and expires > now
            entry["lease"] = {
                "held": held,
                "owner": lock.owner,
                "expires": lock.expires,
                "expires_in_seconds": (
                    round((expires - now).total_seconds(), 1) if held and expires else None
                ),
                "heartbeat": lock.heartbeat,
                "fencing_token": lock.fencing_token,
            }
        queue, dead_letters = queues[collection]
        for key, setting, sample in (("queue", queue, False), ("dlq", dead_letters, True)):
            url = setting.value(args)
            entry[key] = queue_status(sqs, cloudwatch, url, sample=sample) if url else None
        entry["unindexed"] = _unindexed(args, cloudwatch, collection) if pointer else None
        collections[collection] = entry
    parking = STREAM_DLQ.value(args)
    return {
        "table": dynamo.table_name,
        "checked_at": now.isoformat(timespec="seconds"),
        "collections": collections,
        "stream_parking": queue_status(sqs, cloudwatch, parking, sample=True) if parking else None,
    }


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    value = float(value)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}s"


def _queue_line(queue: dict[str, Any] | None) -> str:
    if queue is None:
        return "not configured"
    oldest = _seconds(queue["oldest_age_seconds"])
    if queue["oldest_age_source"] == "sample":
        oldest += " (sampled)"
    return (
        f"{queue['queue']}: {queue['visible']} visible, {queue['in_flight']} in flight, "
        f"{queue['delayed']} delayed, oldest {oldest}"
    )


def render_status(result: dict[str, Any], stream: IO[str]) -> None:
    """Plain lines (one fact per line, greppable, never cut to the terminal's width)."""
    lines = [f"{result['table']} at {result['checked_at']}"]
    for name, entry in result["collections"].items():
        pointer, lease = entry["pointer"], entry["lease"]
        lines.append(f"{name}:")
        if pointer is None:
            lines.append("  pointer       none (nothing published yet)")
        else:
            lines.append(
                f"  pointer       {pointer['version']} (published "
                f"{_seconds(pointer['age_seconds'])} ago, token {pointer['fencing_token']})"
            )
            history = ", ".join(
                f"{h['version']} ({_seconds(h['age_seconds'])})" for h in pointer["history"]
            )
            lines.append(f"  history       {history}")
        if lease is None:
            lines.append("  lease         never taken")
        elif lease["held"]:
            lines.append(
                f"  lease         held by {lease['owner']}, expires in "
                f"{_seconds(lease['expires_in_seconds'])} ({lease['expires']}), "
                f"token {lease['fencing_token']}"
            )
        else:
            lines.append(f"  lease         free (token {lease['fencing_token']})")
        lines.append(f"  queue         {_queue_line(entry['queue'])}")
        lines.append(f"  dead letters  {_queue_line(entry['dlq'])}")
        unindexed = entry["unindexed"] or {}
        count = unindexed.get("records")
        lines.append(
            "  unindexed     "
            + (
                "unknown (no UnindexedRecords datapoint; --deep measures it)"
                if count is None
                else f"{count} ({unindexed['source']})"
            )
        )
    lines.append(f"stream parking {_queue_line(result['stream_parking'])}")
    stream.write("\n".join(lines) + "\n")


def command_status(args: argparse.Namespace, out: Output) -> None:
    if args.watch is None:
        out.emit(collect(args), render_status)
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
        return common.positive_float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _count(text: str) -> int:
    try:
        return common.positive_int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(commands: Any) -> None:
    status = commands.add_parser(
        "status", help="pointer, lease, queues and index state per collection", description=__doc__
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
        help="measure unindexed records on a downloaded copy of each published version",
    )
    common.add_settings(
        status,
        common.ENDPOINT,
        common.REGION,
        TABLE,
        BUCKET,
        LINES_QUEUE,
        WORDS_QUEUE,
        LINES_DLQ,
        WORDS_DLQ,
        STREAM_DLQ,
    )
    status.set_defaults(handler=command_status)
