"""Freshness: a write counts once every collection it has a message for succeeded."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from receipt_compaction_tools.local.freshness import Freshness

T0 = datetime(2026, 12, 1, 6, 0, 0, 250000, tzinfo=UTC)


def _write(sequence: str, seconds_after: float) -> dict[str, object]:
    created = datetime.fromtimestamp(T0.timestamp() + seconds_after, tz=UTC)
    return {"dynamodb": {"SequenceNumber": sequence, "ApproximateCreationDateTime": created}}


def _message(message_id: str, sequence: str) -> dict[str, str]:
    return {"MessageId": message_id, "Body": json.dumps({"sequence_number": sequence})}


def test_a_write_is_fresh_when_its_last_collection_first_succeeds() -> None:
    freshness = Freshness()
    base = T0.timestamp()
    freshness.record_write(_write("1", 0.0))
    freshness.record_write(_write("2", 1.0))
    freshness.record_write(_write("1", 5.0))  # the same record read again keeps its time
    # "1" has a lines and a words message; words fails first and succeeds later.
    freshness.record_outcome("lines", [_message("a", "1")], set(), base + 3.0)
    freshness.record_outcome("words", [_message("b", "1")], {"b"}, base + 4.0)
    freshness.record_outcome("words", [_message("b", "1")], set(), base + 10.5)
    freshness.record_outcome("words", [_message("b", "1")], set(), base + 20.0)  # duplicate
    # "2" only ever fails: never reflected.
    freshness.record_outcome("words", [_message("c", "2")], {"c"}, base + 6.0)
    # A message for a write this clock never saw is ignored, and so is poison.
    freshness.record_outcome("words", [_message("d", "9")], set(), base + 7.0)
    poison = [{"MessageId": "e", "Body": body} for body in ("", "not json", "[1]", '{"a": 1}')]
    freshness.record_outcome("words", poison, set(), base + 8.0)

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
        freshness.record_outcome("words", [_message(f"m{n}", str(n))], set(), base + n + 1)
    summary = freshness.summary()
    # Latencies 1..100 s: the median is 50.5 and the inclusive 99th percentile 99.01.
    assert (summary["p50"], summary["p99"], summary["max"]) == (50.5, 99.01, 100.0)
    assert summary["mean"] == 50.5


def test_reset_forgets_everything_before_it() -> None:
    freshness = Freshness()
    freshness.record_write(_write("1", 0.0))
    freshness.record_outcome("words", [_message("a", "1")], set(), T0.timestamp() + 1)
    freshness.reset()
    assert freshness.summary() == {"writes": 0, "writes_never_reflected": 0}
