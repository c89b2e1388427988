"""Freshness: a write counts once every collection it has a message for succeeded."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from receipt_compaction_tools.local.freshness import Freshness

T0 = datetime(2026, 12, 1, 6, 0, 0, 250000, tzinfo=UTC)


def _write(sequence: str, seconds_after: float) -> dict[str, object]:
    created = datetime.fromtimestamp(T0.timestamp() + seconds_after, tz=UTC)
    return {"dynamodb": {"SequenceNumber": sequence, "ApproximateCreationDateTime": created}}


def _message(message_id: str, sequence: str, sent: float | None = None) -> dict[str, Any]:
    """An SQS message as received; ``sent``: seconds after T0 of its SentTimestamp."""
    message: dict[str, Any] = {
        "MessageId": message_id,
        "Body": json.dumps({"sequence_number": sequence}),
    }
    if sent is not None:
        message["Attributes"] = {"SentTimestamp": str(round((T0.timestamp() + sent) * 1000))}
    return message


def test_a_write_is_fresh_when_its_last_collection_first_succeeds() -> None:
    freshness = Freshness()
    base = T0.timestamp()
    freshness.record_write(_write("1", 0.0))
    freshness.record_write(_write("2", 1.0))
    freshness.record_write(_write("1", 5.0))  # the same record read again keeps its time
    # "1" has a lines and a words message; words fails first and succeeds later.
    freshness.record_outcome(
        "lines", [_message("a", "1")], set(), invoked=base + 3.0 - 1, returned=base + 3.0
    )
    freshness.record_outcome(
        "words", [_message("b", "1")], {"b"}, invoked=base + 4.0 - 1, returned=base + 4.0
    )
    freshness.record_outcome(
        "words", [_message("b", "1")], set(), invoked=base + 10.5 - 1, returned=base + 10.5
    )
    freshness.record_outcome(
        "words", [_message("b", "1")], set(), invoked=base + 20.0 - 1, returned=base + 20.0
    )  # duplicate
    # "2" only ever fails: never reflected.
    freshness.record_outcome(
        "words", [_message("c", "2")], {"c"}, invoked=base + 6.0 - 1, returned=base + 6.0
    )
    # A message for a write this clock never saw is ignored, and so is poison.
    freshness.record_outcome(
        "words", [_message("d", "9")], set(), invoked=base + 7.0 - 1, returned=base + 7.0
    )
    poison = [{"MessageId": "e", "Body": body} for body in ("", "not json", "[1]", '{"a": 1}')]
    freshness.record_outcome("words", poison, set(), invoked=base + 8.0 - 1, returned=base + 8.0)

    assert freshness.seconds() == [10.5]
    summary = freshness.summary()
    assert summary["writes"] == 1
    assert summary["writes_never_reflected"] == 1
    assert summary["p50"] == summary["p99"] == summary["max"] == 10.5


def test_quantiles_over_many_writes() -> None:
    freshness = Freshness()
    base = T0.timestamp()
    for n in range(100):
        freshness.record_write(_write(str(n), 0.0))
        freshness.record_outcome(
            "words",
            [_message(f"m{n}", str(n))],
            set(),
            invoked=base + n + 1 - 1,
            returned=base + n + 1,
        )
    summary = freshness.summary()
    # Latencies 1..100 s: the median is 50.5 and the inclusive 99th percentile 99.01.
    assert (summary["p50"], summary["p99"], summary["max"]) == (50.5, 99.01, 100.0)
    assert summary["mean"] == 50.5


def test_reset_forgets_everything_before_it() -> None:
    freshness = Freshness()
    freshness.record_write(_write("1", 0.0))
    freshness.record_outcome(
        "words",
        [_message("a", "1")],
        set(),
        invoked=T0.timestamp() + 1 - 1,
        returned=T0.timestamp() + 1,
    )
    freshness.reset()
    assert freshness.summary() == {"writes": 0, "writes_never_reflected": 0}


def test_each_writes_latency_splits_into_stream_wait_queue_wait_and_cycle() -> None:
    freshness = Freshness()
    base = T0.timestamp()
    freshness.record_write(_write("1", 0.0))
    freshness.record_write(_write("2", 2.0))
    # "1": lines sent at 1.5 s, published by the invocation of 3-5 s; words sent at 1.25 s,
    # failed once (4-6 s), then published by the invocation of 9-10.5 s, the later one.
    freshness.record_outcome(
        "lines", [_message("a", "1", sent=1.5)], set(), invoked=base + 3, returned=base + 5
    )
    freshness.record_outcome(
        "words", [_message("b", "1", sent=1.25)], {"b"}, invoked=base + 4, returned=base + 6
    )
    freshness.record_outcome(
        "words", [_message("b", "1", sent=1.25)], set(), invoked=base + 9, returned=base + 10.5
    )
    # "2": one message sent at 2.5 s, published by the invocation of 3-7 s.
    freshness.record_outcome(
        "words", [_message("c", "2", sent=2.5)], set(), invoked=base + 3, returned=base + 7
    )

    assert sorted(freshness.seconds()) == [5.0, 10.5]
    stages = freshness.stage_seconds()
    by_write = sorted(zip(freshness.seconds(), *stages.values(), strict=True))
    # (latency, stream wait, queue wait, cycle): written 0 → sent 1.25 → started 9 → 10.5;
    # written 2 → sent 2.5 → started 3 → 7.
    assert by_write == [(5.0, 0.5, 0.5, 4.0), (10.5, 1.25, 7.75, 1.5)]
    summary = freshness.summary()
    assert summary["stages"]["cycle"]["max"] == 4.0
    assert summary["stages"]["queue_wait"]["p50"] == round((0.5 + 7.75) / 2, 2)
    assert summary["cycle_share"] == round((4.0 + 1.5) / (5.0 + 10.5), 3)
