"""Freshness: seconds from a row write to the first published version that reflects it.

A write is its stream record (``SequenceNumber``), timed by the record's
``ApproximateCreationDateTime`` at full precision (Lambda's events carry whole seconds).
It is reflected once every collection it has a message for has had one of those messages
succeed: the compactor reports a message successful only after the version holding its
effect was published (or the sink already held it). A write that produced no message is
not counted.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Freshness:
    written: dict[str, float] = field(default_factory=dict)
    reflected: dict[str, dict[str, float]] = field(default_factory=dict)
    pending: dict[str, set[str]] = field(default_factory=dict)

    def reset(self) -> None:
        self.written.clear()
        self.reflected.clear()
        self.pending.clear()

    def record_write(self, record: dict[str, Any]) -> None:
        """A raw (not Lambda-shaped) stream record."""
        created = record.get("dynamodb", {}).get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            self.written.setdefault(record["dynamodb"]["SequenceNumber"], created.timestamp())

    def record_outcome(
        self, collection: str, messages: list[dict[str, Any]], failed: set[str], at: float
    ) -> None:
        """One compactor invocation's messages and the ids it reported failed."""
        for message in messages:
            sequence = _sequence_number(message["Body"])
            if sequence is None or sequence not in self.written:
                continue
            self.pending.setdefault(sequence, set()).add(collection)
            if message["MessageId"] not in failed:
                self.reflected.setdefault(sequence, {}).setdefault(collection, at)

    def seconds(self) -> list[float]:
        """Per write whose every collection was reflected: the latest of those instants
        minus the write's."""
        return [
            max(self.reflected[sequence].values()) - self.written[sequence]
            for sequence, collections in self.pending.items()
            if sequence in self.reflected and collections <= self.reflected[sequence].keys()
        ]

    def summary(self) -> dict[str, Any]:
        values = sorted(self.seconds())
        if not values:
            return {"writes": 0, "writes_never_reflected": len(self.pending)}
        # quantiles() needs two points; one value is every quantile of itself.
        quantiles = (
            statistics.quantiles(values, n=100, method="inclusive")
            if len(values) > 1
            else values * 99
        )
        return {
            "writes": len(values),
            "writes_never_reflected": len(self.pending) - len(values),
            "p50": round(statistics.median(values), 2),
            "p90": round(quantiles[89], 2),
            "p99": round(quantiles[98], 2),
            "max": round(values[-1], 2),
            "mean": round(statistics.fmean(values), 2),
        }


def _sequence_number(body: str) -> str | None:
    """The stream record a message came from; None for a body that is not a message
    (the reliability suite also sends poison)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    sequence = parsed.get("sequence_number") if isinstance(parsed, dict) else None
    return sequence if isinstance(sequence, str) else None
