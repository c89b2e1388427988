"""What the local event source mappings counted, and what the handlers reported in their
EMF metric lines (one document per invocation): messages published, records not parsed or
parked, and one entry per compaction cycle."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

TIERS = ("CacheTierWarm", "CacheTierCatchUp", "CacheTierEfs", "CacheTierS3", "CacheTierBootstrap")


@dataclass
class PumpStats:
    stream_records: int = 0
    stream_invocations: int = 0
    stream_retries: int = 0
    stream_records_given_up: int = 0
    queue_invocations: Counter[str] = field(default_factory=Counter)
    messages_received: Counter[str] = field(default_factory=Counter)
    messages_failed: Counter[str] = field(default_factory=Counter)  # failed deliveries
    # Per collection, the ids of the messages whose last delivery failed: messages, not
    # attempts (a message retried five times is one), and none that succeeded later.
    unapplied: dict[str, set[str]] = field(default_factory=dict)
    cycles: list[dict[str, Any]] = field(default_factory=list)
    duplicates_injected: int = 0
    redeliveries_injected: int = 0
    # What the stream handler reported in its metrics: messages per queue, records it
    # could not parse (and how many of those it parked), messages SQS refused.
    messages_published: Counter[str] = field(default_factory=Counter)
    stream_unparseable: int = 0
    stream_parked: int = 0
    stream_publish_failures: int = 0


def _metric_documents(output: str) -> Iterator[dict[str, Any]]:
    for line in output.splitlines():
        if line.startswith('{"_aws"'):
            yield json.loads(line)


def _total(document: dict[str, Any], name: str) -> int:
    value = document.get(name, 0)
    return int(sum(value) if isinstance(value, list) else value)


def count_stream_metrics(output: str, stats: PumpStats) -> None:
    """Add the stream handler's EMF counts (one document per invocation) to ``stats``."""
    for document in _metric_documents(output):
        stats.messages_published["lines"] += _total(document, "LinesMessagesPublished")
        stats.messages_published["words"] += _total(document, "WordsMessagesPublished")
        stats.stream_unparseable += _total(document, "StreamParseFailures")
        stats.stream_parked += _total(document, "StreamRecordsParked")
        stats.stream_publish_failures += _total(document, "StreamPublishFailures")


def cycles_from_metrics(output: str) -> list[dict[str, Any]]:
    """One entry per compaction cycle, read from the handler's EMF metric lines."""
    cycles = []
    for metrics in _metric_documents(output):
        if "collection" not in metrics:
            continue
        tier = next((t.removeprefix("CacheTier").lower() for t in TIERS if t in metrics), None)
        cycles.append(
            {
                "collection": metrics["collection"],
                "tier": tier,
                "published": "SnapshotPublished" in metrics,
                # Every write acknowledged by the Chroma server (contract §12).
                "server_applied": "ServerSinkApplied" in metrics,
                "vectors_merged": int(sum(metrics.get("VectorsMerged", [0]))),
                "failures": int(sum(metrics.get("MessageFailures", [0]))),
                # The cycle's messages failed because another compactor held the lease.
                "contended": "LeaseAcquisitionFailures" in metrics,
            }
        )
    return cycles
