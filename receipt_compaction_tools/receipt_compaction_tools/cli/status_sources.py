"""What ``status`` reads about one part of the pipeline: a queue's depth and oldest
message, the compaction runs not yet applied, how far the stream mapping is behind, and
whether each retained snapshot version verifies (see ``cli/status.py`` for the rules)."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from receipt_compaction_tools.cli import clients
from receipt_compaction_tools.cli.cloudwatch import CloudWatch
from receipt_compaction_tools.cli.local_state import remember_verified, verified_etags

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


def age_seconds(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else round((now - moment).total_seconds(), 1)


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
            created = parse_time(item.get("created_at", {}).get("S"))
            if created is not None and (oldest is None or created < oldest[0]):
                oldest = (
                    created,
                    {
                        "run_id": item.get("run_id", {}).get("S"),
                        "image_id": item.get("image_id", {}).get("S"),
                        "receipt_id": int(item.get("receipt_id", {}).get("N", "0")),
                        "state": state,
                        "age_seconds": age_seconds(created, now),
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
        mappings = clients.aws(args, "lambda").list_event_source_mappings(EventSourceArn=arn)
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
    from receipt_chroma.snapshots import audit_versions
    from receipt_compaction_tools.cli.snapshot_access import store

    snapshots = store(args, collection)
    retained = list(dict.fromkeys([pointer.version, *pointer.history]))
    checked = audit_versions(
        snapshots,
        retained,
        deep=args.deep,
        verified_etags=verified_etags(snapshots.bucket, collection),
        keep_dir=keep_dir,
    )
    remember_verified(snapshots.bucket, collection, checked.verified)
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
