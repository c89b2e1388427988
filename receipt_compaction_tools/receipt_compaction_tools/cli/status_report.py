"""One ``status`` report: per collection the pointer, lease, queues, runs, versions and
unindexed records; for the table the stream's lag; and the stream parking queue."""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from receipt_compaction_tools.cli import clients
from receipt_compaction_tools.cli.cloudwatch import CloudWatch
from receipt_compaction_tools.cli.settings import (
    BUCKET,
    LINES_DLQ,
    LINES_QUEUE,
    STREAM_DLQ,
    WORDS_DLQ,
    WORDS_QUEUE,
)
from receipt_compaction_tools.cli.status_sources import (
    COLLECTIONS,
    COMPACTOR_SERVICE,
    NAMESPACE,
    age_seconds,
    parse_time,
    queue_status,
    stream_lag,
    unapplied_runs,
    version_health,
    version_time,
)


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
        expires = parse_time(lock.expires) if lock else None
        entry: dict[str, Any] = {"pointer": None, "lease": None}
        if pointer is not None:
            entry["pointer"] = {
                "version": pointer.version,
                "updated_at": pointer.updated_at,
                "age_seconds": age_seconds(parse_time(pointer.updated_at), now),
                "fencing_token": pointer.fencing_token,
                "history": [
                    {"version": v, "age_seconds": age_seconds(version_time(v), now)}
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
    dynamo = clients.dynamo(args)
    sqs = clients.aws(args, "sqs")
    cloudwatch = CloudWatch(clients.aws(args, "cloudwatch"))
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


def damaged_versions(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every retained version that does not verify, with ``collection`` added."""
    return [
        {**version, "collection": name}
        for name, entry in result["collections"].items()
        for version in (entry.get("snapshot") or {}).get("versions", [])
        if not version["ok"]
    ]
