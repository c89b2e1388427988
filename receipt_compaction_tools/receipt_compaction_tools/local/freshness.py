"""Freshness: seconds from a row write to the first published version that reflects it.

A write is its stream record (``SequenceNumber``), timed by the record's
``ApproximateCreationDateTime`` at full precision (Lambda's events carry whole seconds).
It is reflected once every collection it has a message for has had one of those messages
succeed: the compactor reports a message successful only after the version holding its
effect was published (or the sink already held it). A write that produced no message is
not counted.

Each write's latency splits into three stages that add up to it, taken from the collection
reflected last: **stream wait** (write → its message was sent to SQS, the message's
``SentTimestamp``), **queue wait** (sent → the compactor invocation that published it
started, failed attempts included) and **cycle** (that invocation's run).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

STAGES = ("stream_wait", "queue_wait", "cycle")


@dataclass(frozen=True)
class Reflection:
    """When one collection's message of a write was sent, and when the invocation that
    reported it successful started and returned (epoch seconds)."""

    sent: float
    invoked: float
    returned: float


@dataclass
class Freshness:
    written: dict[str, float] = field(default_factory=dict)
    reflected: dict[str, dict[str, Reflection]] = field(default_factory=dict)
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
        self,
        collection: str,
        messages: list[dict[str, Any]],
        failed: set[str],
        *,
        invoked: float,
        returned: float,
    ) -> None:
        """One compactor invocation's messages (received with their ``SentTimestamp``
        attribute), the ids it reported failed, and when it started and returned."""
        for message in messages:
            sequence = _sequence_number(message["Body"])
            if sequence is None or sequence not in self.written:
                continue
            self.pending.setdefault(sequence, set()).add(collection)
            if message["MessageId"] not in failed:
                sent = _sent_at(message, self.written[sequence])
                reflection = Reflection(sent=sent, invoked=invoked, returned=returned)
                self.reflected.setdefault(sequence, {}).setdefault(collection, reflection)

    def _last_reflections(self) -> list[tuple[float, Reflection]]:
        """Per write whose every collection was reflected: its write time and the
        reflection of the collection reflected last."""
        return [
            (
                self.written[sequence],
                max(self.reflected[sequence].values(), key=lambda r: r.returned),
            )
            for sequence, collections in self.pending.items()
            if sequence in self.reflected and collections <= self.reflected[sequence].keys()
        ]

    def seconds(self) -> list[float]:
        """Per reflected write: seconds from the write to its last collection's reflection."""
        return [last.returned - written for written, last in self._last_reflections()]

    def stage_seconds(self) -> dict[str, list[float]]:
        """Per reflected write, its latency split into the three stages (same order as
        ``seconds``); each write's three add up to its latency."""
        split: dict[str, list[float]] = {stage: [] for stage in STAGES}
        for written, last in self._last_reflections():
            split["stream_wait"].append(last.sent - written)
            split["queue_wait"].append(last.invoked - last.sent)
            split["cycle"].append(last.returned - last.invoked)
        return split

    def summary(self) -> dict[str, Any]:
        values = self.seconds()
        if not values:
            return {"writes": 0, "writes_never_reflected": len(self.pending)}
        stages = self.stage_seconds()
        return {
            "writes": len(values),
            "writes_never_reflected": len(self.pending) - len(values),
            **_distribution(values),
            "stages": {stage: _distribution(stages[stage]) for stage in STAGES},
            # The cycle's share of the mean latency (the rest is waiting for batches).
            "cycle_share": round(statistics.fmean(stages["cycle"]) / statistics.fmean(values), 3),
        }


def _distribution(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    # quantiles() needs two points; one value is every quantile of itself.
    quantiles = (
        statistics.quantiles(ordered, n=100, method="inclusive")
        if len(ordered) > 1
        else list(ordered) * 99
    )
    return {
        "p50": round(statistics.median(ordered), 2),
        "p90": round(quantiles[89], 2),
        "p99": round(quantiles[98], 2),
        "max": round(ordered[-1], 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


def _sent_at(message: dict[str, Any], written: float) -> float:
    """The message's SentTimestamp (SQS, milliseconds); without one (a message not read
    from a queue) the write time, so the whole wait counts as queue wait."""
    sent = message.get("Attributes", {}).get("SentTimestamp")
    return int(sent) / 1000 if sent is not None else written


def _sequence_number(body: str) -> str | None:
    """The stream record a message came from; None for a body that is not a message
    (the reliability suite also sends poison)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    sequence = parsed.get("sequence_number") if isinstance(parsed, dict) else None
    return sequence if isinstance(sequence, str) else None
