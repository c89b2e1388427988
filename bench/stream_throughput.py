"""Stream processor throughput: parse + detect + build vs. boto3's TypeDeserializer alone.

20,000 realistic Lambda stream records (metadata, labels, compaction runs, removals and
rows the pipeline ignores) go through ``build_messages`` with no network. The floor is
``TypeDeserializer`` decoding every image of the same records. Both are timed in this
process, best of several rounds, and printed as JSON with their ratio.

Targets: ≤ 1.5 times the deserializer-only time, ≥ 25,000 records/s on one core.
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


def realistic_records(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    while len(records) < count:
        image = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        receipt, line, word = rng.randint(1, 3), rng.randint(1, 40), rng.randint(1, 12)
        roll = rng.random()
        if roll < 0.30:  # label churn
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
            records.append(
                stream_record(
                    event,
                    old=None if event == "INSERT" else old,
                    new=None if event == "REMOVE" else new,
                )
            )
        elif roll < 0.40:  # merchant corrections
            old = make_metadata(image, receipt)
            new = dataclasses.replace(old, canonical_merchant_name=f"Merchant {rng.randint(1, 99)}")
            records.append(stream_record(rng.choice(["INSERT", "MODIFY"]), old=old, new=new))
        elif roll < 0.45:
            records.append(
                stream_record("INSERT", new=make_compaction_run(image, receipt, str(uuid.uuid4())))
            )
        elif roll < 0.55:  # removals
            row = rng.choice(
                [
                    make_word(image, receipt, line, word),
                    make_line(image, receipt, line),
                    make_receipt(image, receipt),
                ]
            )
            records.append(stream_record("REMOVE", old=row))
        else:  # rows the pipeline ignores: OCR inserts and edits
            row = rng.choice(
                [make_word(image, receipt, line, word), make_line(image, receipt, line)]
            )
            records.append(stream_record(rng.choice(["INSERT", "MODIFY"]), old=row, new=row))
    return records


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


def best_of(rounds: int, work: Callable[[], None]) -> float:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    records = realistic_records(RECORDS)
    floor = best_of(ROUNDS, lambda: deserializer_floor(records))
    ours = best_of(ROUNDS, lambda: pipeline(records))
    built = build_messages(records)
    report = {
        "benchmark": "stream_throughput",
        "records": RECORDS,
        "messages": len(built.messages),
        "not_relevant": built.irrelevant,
        "deserializer_only_seconds": round(floor, 4),
        "pipeline_seconds": round(ours, 4),
        "pipeline_records_per_second": round(RECORDS / ours),
        "deserializer_records_per_second": round(RECORDS / floor),
        "ratio_to_deserializer": round(ours / floor, 3),
        "targets": {"ratio_to_deserializer_max": 1.5, "records_per_second_min": 25_000},
    }
    report["meets_targets"] = (
        report["ratio_to_deserializer"] <= 1.5 and report["pipeline_records_per_second"] >= 25_000
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
