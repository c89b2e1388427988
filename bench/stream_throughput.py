"""Stream processor throughput: parse + detect + build vs. boto3's TypeDeserializer alone.

Two mixes of 20,000 Lambda stream records go through ``build_messages`` with no network:
the *realistic* mix (labels, metadata, runs, removals and about half rows the pipeline
ignores, which are skipped before any image is decoded) and a *relevance-heavy* mix
(95 % label and metadata changes, each decoded and compared). The floor is
``TypeDeserializer`` decoding every image of the same records. Both sides are timed in
this process on the same records, best of several rounds, and printed as JSON with
their ratios.

Targets, on both mixes: ≤ 1.5 times the deserializer-only time, ≥ 25,000 records/s on
one core.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from receipt_compaction_tools.testing.factories import (
    make_compaction_run,
    make_label,
    make_line,
    make_metadata,
    make_receipt,
    make_word,
)
from receipt_compaction_tools.testing.records import stream_record
from receipt_dynamo_stream import build_messages

RECORDS = 20_000
ROUNDS = 5
STATUSES = ["PENDING", "VALID", "INVALID", "NEEDS_REVIEW"]
LABELS = ["TOTAL", "SUBTOTAL", "TAX", "DATE", "MERCHANT_NAME", "PRODUCT_NAME", "LINE_TOTAL"]


# Shares of each kind of record: a production stream, and one made almost entirely of
# relevant label and metadata changes (each is decoded and compared).
REALISTIC = {"label": 0.30, "metadata": 0.10, "run": 0.05, "removal": 0.10, "ignored": 0.45}
RELEVANCE_HEAVY = {"label": 0.70, "metadata": 0.25, "run": 0.02, "removal": 0.02, "ignored": 0.01}


def _record(kind: str, rng: random.Random) -> dict[str, Any]:
    image = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    receipt, line, word = rng.randint(1, 3), rng.randint(1, 40), rng.randint(1, 12)
    if kind == "label":
        old = make_label(
            image,
            receipt,
            line,
            word,
            rng.choice(LABELS),
            validation_status=rng.choice(STATUSES),
            reasoning="model said so",
        )
        new = dataclasses.replace(old, validation_status=rng.choice(STATUSES))
        event = rng.choice(["INSERT", "MODIFY", "MODIFY", "REMOVE"])
        return stream_record(
            event, old=None if event == "INSERT" else old, new=None if event == "REMOVE" else new
        )
    if kind == "metadata":
        old = make_metadata(image, receipt)
        new = dataclasses.replace(old, canonical_merchant_name=f"Merchant {rng.randint(1, 99)}")
        return stream_record(rng.choice(["INSERT", "MODIFY"]), old=old, new=new)
    if kind == "run":
        return stream_record("INSERT", new=make_compaction_run(image, receipt, str(uuid.uuid4())))
    if kind == "removal":
        row = rng.choice(
            [
                make_word(image, receipt, line, word),
                make_line(image, receipt, line),
                make_receipt(image, receipt),
            ]
        )
        return stream_record("REMOVE", old=row)
    # Rows the pipeline ignores: OCR inserts and edits.
    row = rng.choice([make_word(image, receipt, line, word), make_line(image, receipt, line)])
    return stream_record(rng.choice(["INSERT", "MODIFY"]), old=row, new=row)


def stream_records(count: int, shares: dict[str, float], seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    kinds = rng.choices(list(shares), weights=list(shares.values()), k=count)
    return [_record(kind, rng) for kind in kinds]


def deserializer_floor(records: list[dict[str, Any]]) -> None:
    deserializer = TypeDeserializer()
    for record in records:
        dynamodb = record["dynamodb"]
        for name in ("OldImage", "NewImage"):
            image = dynamodb.get(name)
            if image is not None:
                {k: deserializer.deserialize(v) for k, v in image.items()}


def pipeline(records: list[dict[str, Any]]) -> None:
    result = build_messages(records)
    assert not result.unparseable


def best_of_interleaved(
    rounds: int, floor: Callable[[], None], ours: Callable[[], None]
) -> tuple[float, float]:
    """Best time of each side, the sides alternating round by round (a load change on the
    machine then hits both)."""
    timings: dict[str, list[float]] = {"floor": [], "ours": []}
    for _ in range(rounds):
        for name, work in (("floor", floor), ("ours", ours)):
            started = time.perf_counter()
            work()
            timings[name].append(time.perf_counter() - started)
    return min(timings["floor"]), min(timings["ours"])


def measure(records: list[dict[str, Any]]) -> dict[str, Any]:
    floor, ours = best_of_interleaved(
        ROUNDS, lambda: deserializer_floor(records), lambda: pipeline(records)
    )
    built = build_messages(records)
    return {
        "records": len(records),
        "messages": len(built.messages),
        "not_relevant": built.irrelevant,
        "deserializer_only_seconds": round(floor, 4),
        "pipeline_seconds": round(ours, 4),
        "pipeline_records_per_second": round(len(records) / ours),
        "deserializer_records_per_second": round(len(records) / floor),
        "ratio_to_deserializer": round(ours / floor, 3),
    }


def main() -> None:
    mixes = {
        "realistic": measure(stream_records(RECORDS, REALISTIC)),
        "relevance_heavy": measure(stream_records(RECORDS, RELEVANCE_HEAVY, seed=11)),
    }
    report: dict[str, Any] = {
        "benchmark": "stream_throughput",
        "mixes": mixes,
        "targets": {"ratio_to_deserializer_max": 1.5, "records_per_second_min": 25_000},
    }
    report["meets_targets"] = all(
        mix["ratio_to_deserializer"] <= 1.5 and mix["pipeline_records_per_second"] >= 25_000
        for mix in mixes.values()
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
