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
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
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
    OperationFailed,
    Output,
)

COLLECTIONS = ("lines", "words")
COMPACTOR_SERVICE = "receipt-compactor"
STREAM_SERVICE = "receipt-stream"
NAMESPACE = "ReceiptCompaction"
UNAPPLIED_STATES = ("PENDING", "PROCESSING")


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


class CloudWatch:
    """Latest datapoints; once CloudWatch cannot be asked (no permission, no service, no
    answer) the report stops asking, so one unreachable service costs one timeout."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.unavailable: str | None = None

    def latest(
        self, namespace: str, name: str, dimensions: dict[str, str], statistic: str
    ) -> float | None:
        from botocore.exceptions import BotoCoreError, ClientError

        if self.unavailable is not None:
            return None
        now = datetime.now(UTC)
        try:
            points = self.client.get_metric_statistics(
                Namespace=namespace,
                MetricName=name,
                Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
                StartTime=now - timedelta(minutes=15),
                EndTime=now,
                Period=60,
                Statistics=[statistic],
            ).get("Datapoints", [])
        except (BotoCoreError, ClientError) as error:
            self.unavailable = f"{type(error).__name__}: {error}"
            return None
        if not points:
            return None
        return float(max(points, key=lambda p: p["Timestamp"])[statistic])


def queue_status(sqs: Any, cloudwatch: CloudWatch, url: str, *, sample: bool) -> dict[str, Any]:
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
    oldest = cloudwatch.latest(
        "AWS/SQS", "ApproximateAgeOfOldestMessage", {"QueueName": name}, "Maximum"
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
    in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
    delayed = int(attributes.get("ApproximateNumberOfMessagesDelayed", 0))
    return {
        "queue": name,
        "visible": visible,
        "in_flight": in_flight,
        "delayed": delayed,
        "depth": visible + in_flight + delayed,
        "oldest_age_seconds": oldest,
        "oldest_age_source": source,
    }


def unapplied_runs(dynamo: Any, collection: str, now: datetime, days: float) -> dict[str, Any]:
    """Runs created in the last ``days`` whose ``<collection>_state`` is still PENDING or
    PROCESSING (read from the ``RUNS`` index), with the oldest one's age."""
    since = (now - timedelta(days=days)).isoformat(timespec="microseconds")
    pages = dynamo.client.get_paginator("query").paginate(
        TableName=dynamo.table_name,
        IndexName="GSI1",
        KeyConditionExpression="GSI1PK = :runs AND GSI1SK >= :since",
        FilterExpression="#state IN (:pending, :processing)",
        ProjectionExpression="run_id, image_id, receipt_id, created_at, #state",
        ExpressionAttributeNames={"#state": f"{collection}_state"},
        ExpressionAttributeValues={
            ":runs": {"S": "RUNS"},
            ":since": {"S": f"CREATED_AT#{since}"},
            ":pending": {"S": "PENDING"},
            ":processing": {"S": "PROCESSING"},
        },
    )
    counts = dict.fromkeys(UNAPPLIED_STATES, 0)
    oldest: tuple[datetime, dict[str, Any]] | None = None
    for page in pages:
        for item in page.get("Items", []):
            state = item.get(f"{collection}_state", {}).get("S", "")
            counts[state] = counts.get(state, 0) + 1
            created = _parse_time(item.get("created_at", {}).get("S"))
            if created is not None and (oldest is None or created < oldest[0]):
                oldest = (
                    created,
                    {
                        "run_id": item.get("run_id", {}).get("S"),
                        "image_id": item.get("image_id", {}).get("S"),
                        "receipt_id": int(item.get("receipt_id", {}).get("N", "0")),
                        "state": state,
                        "age_seconds": _age(created, now),
                    },
                )
    return {
        "pending": counts["PENDING"],
        "processing": counts["PROCESSING"],
        "oldest": None if oldest is None else oldest[1],
        "window_days": days,
    }


def stream_lag(args: argparse.Namespace, dynamo: Any, cloudwatch: CloudWatch) -> dict[str, Any]:
    """How far the stream mapping is behind: the stream function's ``IteratorAge``."""
    from botocore.exceptions import BotoCoreError, ClientError

    description = dynamo.client.describe_table(TableName=dynamo.table_name)["Table"]
    arn = description.get("LatestStreamArn")
    if not arn:
        return {"iterator_age_seconds": None, "source": None, "unavailable": "no stream"}
    try:
        mappings = common.aws(args, "lambda").list_event_source_mappings(EventSourceArn=arn)
    except (BotoCoreError, ClientError) as error:
        reason = f"the stream's event source mapping cannot be listed ({type(error).__name__})"
        return {"iterator_age_seconds": None, "source": None, "unavailable": reason}
    functions = [
        m["FunctionArn"].rsplit(":", 1)[-1] for m in mappings.get("EventSourceMappings", [])
    ]
    if not functions:
        reason = "no event source mapping reads the table's stream"
        return {"iterator_age_seconds": None, "source": None, "unavailable": reason}
    age = cloudwatch.latest("AWS/Lambda", "IteratorAge", {"FunctionName": functions[0]}, "Maximum")
    if age is not None:
        return {
            "iterator_age_seconds": round(age / 1000, 1),  # IteratorAge is in milliseconds
            "source": f"IteratorAge of {functions[0]}",
            "unavailable": None,
        }
    lag = cloudwatch.latest(NAMESPACE, "StreamLagSeconds", {"service": STREAM_SERVICE}, "Maximum")
    if lag is not None:
        return {"iterator_age_seconds": lag, "source": "StreamLagSeconds", "unavailable": None}
    reason = cloudwatch.unavailable or "no IteratorAge or StreamLagSeconds datapoint"
    return {"iterator_age_seconds": None, "source": None, "unavailable": reason}


def version_health(
    args: argparse.Namespace, collection: str, pointer: Any, keep_dir: Path | None
) -> dict[str, Any]:
    """Whether each retained version verifies (see the module's docstring)."""
    from receipt_chroma.snapshots.repair import audit
    from receipt_compaction_tools.cli.snapshots import store

    snapshots = store(args, collection)
    retained = list(dict.fromkeys([pointer.version, *pointer.history]))
    checked = audit(
        snapshots,
        retained,
        deep=args.deep,
        verified_etags=common.verified_etags(snapshots.bucket, collection),
        keep_dir=keep_dir,
    )
    common.remember_verified(snapshots.bucket, collection, checked.verified)
    return {
        "checked": "bytes read back" if args.deep else "manifest hashes, objects listed",
        "ok": checked.ok,
        "versions": [
            {
                "version": v.version,
                "role": "current" if v.version == pointer.version else "retained",
                "format": v.format,
                "ok": v.ok,
                # Only damaged objects are restored; a manifest or tarball never is.
                "repairable": bool(v.damaged) and len(v.problems) == len(v.damaged),
                "problems": v.problems,
                "objects": v.objects,
            }
            for v in checked.versions
        ],
    }


@dataclass
class StatusReport:
    """One report: the command's settings and clients, and the moment it describes."""

    args: argparse.Namespace
    dynamo: Any
    sqs: Any
    cloudwatch: CloudWatch
    now: datetime

    def unindexed(
        self,
        collection: str,
        pointer: Any,
        health: dict[str, Any] | None,
        reuse_dir: Path | None,
    ) -> dict[str, Any]:
        if self.args.deep:
            versions = (health or {}).get("versions", [])
            current = next((v for v in versions if v["role"] == "current"), None)
            if current is None or not current["ok"]:
                return {
                    "records": None,
                    "source": "not measured: the current version does not verify",
                }
            from receipt_chroma.snapshots import index_state
            from receipt_compaction_tools.cli.query import private_copy

            try:
                version = pointer.version
                with private_copy(self.args, collection, version, reuse_dir=reuse_dir) as path:
                    records = index_state(path, collection).unindexed_records
            except Exception as error:  # reported in its place: --deep goes on
                return {"records": None, "source": f"not measured: {type(error).__name__}: {error}"}
            return {"records": records, "source": version}
        value = self.cloudwatch.latest(
            NAMESPACE,
            "UnindexedRecords",
            {"service": COMPACTOR_SERVICE, "collection": collection},
            "Maximum",
        )
        return {"records": None if value is None else int(value), "source": "cloudwatch"}

    def collection(self, collection: str) -> dict[str, Any]:
        args, now = self.args, self.now
        queues = {"lines": (LINES_QUEUE, LINES_DLQ), "words": (WORDS_QUEUE, WORDS_DLQ)}
        pointer = self.dynamo.get_snapshot_pointer(collection)
        lock = self.dynamo.get_compaction_lock(collection)
        expires = _parse_time(lock.expires) if lock else None
        entry: dict[str, Any] = {"pointer": None, "lease": None}
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
            entry[key] = (
                queue_status(self.sqs, self.cloudwatch, url, sample=sample) if url else None
            )
        entry["runs"] = unapplied_runs(self.dynamo, collection, now, args.runs_days)
        entry["snapshot"] = None
        entry["unindexed"] = None
        if pointer is not None and BUCKET.value(args):
            with tempfile.TemporaryDirectory(prefix="status-") as tmp:
                keep = Path(tmp) if args.deep else None
                entry["snapshot"] = version_health(args, collection, pointer, keep)
                entry["unindexed"] = self.unindexed(collection, pointer, entry["snapshot"], keep)
        elif pointer is not None:
            entry["unindexed"] = self.unindexed(collection, pointer, None, None)
        return entry


def collect(args: argparse.Namespace) -> dict[str, Any]:
    dynamo = common.dynamo(args)
    sqs = common.aws(args, "sqs")
    cloudwatch = CloudWatch(common.aws(args, "cloudwatch"))
    report = StatusReport(args, dynamo, sqs, cloudwatch, datetime.now(UTC))
    collections = {c: report.collection(c) for c in args.collection or COLLECTIONS}
    parking = STREAM_DLQ.value(args)
    return {
        "table": dynamo.table_name,
        "checked_at": report.now.isoformat(timespec="seconds"),
        "stream": stream_lag(args, dynamo, cloudwatch),
        "collections": collections,
        "stream_parking": queue_status(sqs, cloudwatch, parking, sample=True) if parking else None,
        "cloudwatch": cloudwatch.unavailable,
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
    elif queue["oldest_age_source"] is None and queue["visible"]:
        oldest = "unavailable (no CloudWatch datapoint)"
    return (
        f"{queue['queue']}: {queue['visible']} visible, {queue['in_flight']} in flight, "
        f"{queue['delayed']} delayed, oldest {oldest}"
    )


def _runs_line(runs: dict[str, Any]) -> str:
    text = f"{runs['pending']} pending, {runs['processing']} processing"
    oldest = runs["oldest"]
    if oldest is not None:
        text += (
            f"; oldest {oldest['run_id']} ({oldest['state']}, {_seconds(oldest['age_seconds'])}"
            f", image {oldest['image_id']} receipt {oldest['receipt_id']})"
        )
    return f"{text} (created in the last {runs['window_days']:g} days)"


def _snapshot_lines(snapshot: dict[str, Any] | None) -> list[str]:
    if snapshot is None:
        return ["  versions      not checked (no bucket: --bucket or CHROMADB_BUCKET)"]
    damaged = [v for v in snapshot["versions"] if not v["ok"]]
    if not damaged:
        count = len(snapshot["versions"])
        return [f"  versions      {count} retained, all verify ({snapshot['checked']})"]
    lines = [
        f"  versions      {len(damaged)} of {len(snapshot['versions'])} retained DO NOT VERIFY "
        f"({snapshot['checked']}; {remedy(damaged)})"
    ]
    for version in damaged:
        for problem in version["problems"]:
            lines.append(f"    {version['version']} ({version['role']}): {problem}")
    return lines


def render_status(result: dict[str, Any], stream: IO[str]) -> None:
    """Plain lines (one fact per line, greppable, never cut to the terminal's width)."""
    lines = [f"{result['table']} at {result['checked_at']}"]
    lag = result["stream"]
    lines.append(
        "stream         "
        + (
            f"iterator age {_seconds(lag['iterator_age_seconds'])} ({lag['source']})"
            if lag["iterator_age_seconds"] is not None
            else f"iterator age unavailable ({lag['unavailable']})"
        )
    )
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
            lines += _snapshot_lines(entry["snapshot"])
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
        lines.append(f"  runs          {_runs_line(entry['runs'])}")
        unindexed = entry["unindexed"] or {}
        count = unindexed.get("records")
        if count is not None:
            lines.append(f"  unindexed     {count} ({unindexed['source']})")
        elif unindexed.get("source", "cloudwatch") != "cloudwatch":
            lines.append(f"  unindexed     {unindexed['source']}")
        else:
            lines.append(
                "  unindexed     unknown (no UnindexedRecords datapoint; --deep measures it)"
            )
    lines.append(f"stream parking {_queue_line(result['stream_parking'])}")
    if result["cloudwatch"]:
        lines.append(f"cloudwatch     unavailable ({result['cloudwatch']})")
    stream.write("\n".join(lines) + "\n")


def remedy(damaged: list[dict[str, Any]]) -> str:
    """What to do about versions that do not verify: repair restores objects only."""
    fixable = [v["version"] for v in damaged if v["repairable"]]
    if len(fixable) == len(damaged):
        return "snapshot repair restores their objects"
    unfixable = "; ".join(v["version"] for v in damaged if not v["repairable"])
    text = (
        f"{unfixable}: a manifest or version that does not verify cannot be repaired — "
        "snapshot rollback to a version that verifies, or restore its keys from a backup"
    )
    return f"{text}; snapshot repair restores the objects of the others" if fixable else text


def damaged_versions(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every retained version that does not verify, with ``collection`` added."""
    return [
        {**version, "collection": name}
        for name, entry in result["collections"].items()
        for version in (entry.get("snapshot") or {}).get("versions", [])
        if not version["ok"]
    ]


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
    # One report without --deep only reads a few items: bounded as a whole by --timeout.
    status.set_defaults(
        handler=command_status,
        bounded_as_whole=lambda args: not args.deep and args.watch is None,
    )
