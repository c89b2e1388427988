"""Stream side throughput: everything before the SQS send vs. boto3's TypeDeserializer alone.

The stream side is what the stream Lambda does to a batch before it sends anything: parse
each record, detect the ChromaDB-relevant changes, build the messages (``build_messages``)
and their SQS bodies and attributes (``to_json``, ``message_attributes``: what the
publisher sends). The floor is ``TypeDeserializer`` decoding every image of the same
records. Two mixes of 20,000 Lambda stream records, each kind in exactly its share
(shuffled with a fixed seed):

- *realistic*: labels (INSERT/MODIFY/MODIFY/REMOVE), metadata, runs, removals and about
  half rows the pipeline ignores (OCR words and lines, skipped before any image is decoded);
- *relevance-heavy* (issue 24): 50 % label MODIFY (validation status changed), 15 % label
  INSERT, 10 % word REMOVE, 5 % run INSERT, 20 % irrelevant letters (INSERT).

Each round times the floor and then the stream side on the same records, so a load change
hits both; the report gives every round, the min and median of each side, the ratio of the
medians (the figure the targets apply to: ≤ 1.5 heavy, ≤ 0.6 realistic) and the load
average before and after. ``build_messages`` alone (no bodies, what earlier runs of this
benchmark timed) is timed in each round too and reported beside it. Figures count only
when taken on a quiet machine.

    python bench/stream_throughput.py [--rounds 7] [--records 20000] [--output FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from receipt_dynamo.testing import (
    make_compaction_run,
    make_label,
    make_line,
    make_metadata,
    make_receipt,
    make_word,
    stream_record,
)
from receipt_dynamo_stream import build_messages

RECORDS = 20_000
ROUNDS = 7
STATUSES = ["PENDING", "VALID", "INVALID", "NEEDS_REVIEW"]
LABELS = ["TOTAL", "SUBTOTAL", "TAX", "DATE", "MERCHANT_NAME", "PRODUCT_NAME", "LINE_TOTAL"]
TARGETS = {"realistic": 0.6, "relevance_heavy": 1.5}


@dataclasses.dataclass(frozen=True)
class Ids:
    image: str
    receipt: int
    line: int
    word: int


def _ids(rng: random.Random) -> Ids:
    return Ids(
        str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        rng.randint(1, 3),
        rng.randint(1, 40),
        rng.randint(1, 12),
    )


def _label(ids: Ids, rng: random.Random) -> Any:
    return make_label(
        ids.image,
        ids.receipt,
        ids.line,
        ids.word,
        rng.choice(LABELS),
        validation_status=rng.choice(STATUSES),
        reasoning="model said so",
    )


def label_any(rng: random.Random) -> dict[str, Any]:
    old = _label(_ids(rng), rng)
    new = dataclasses.replace(old, validation_status=rng.choice(STATUSES))
    event = rng.choice(["INSERT", "MODIFY", "MODIFY", "REMOVE"])
    return stream_record(
        event, old=None if event == "INSERT" else old, new=None if event == "REMOVE" else new
    )


def label_modify(rng: random.Random) -> dict[str, Any]:
    old = _label(_ids(rng), rng)
    status = rng.choice([s for s in STATUSES if s != old.validation_status])
    return stream_record("MODIFY", old=old, new=dataclasses.replace(old, validation_status=status))


def label_insert(rng: random.Random) -> dict[str, Any]:
    return stream_record("INSERT", new=_label(_ids(rng), rng))


def metadata(rng: random.Random) -> dict[str, Any]:
    ids = _ids(rng)
    old = make_metadata(ids.image, ids.receipt)
    new = dataclasses.replace(old, canonical_merchant_name=f"Merchant {rng.randint(1, 99)}")
    return stream_record(rng.choice(["INSERT", "MODIFY"]), old=old, new=new)


def run_insert(rng: random.Random) -> dict[str, Any]:
    ids = _ids(rng)
    run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return stream_record("INSERT", new=make_compaction_run(ids.image, ids.receipt, run_id))


def removal(rng: random.Random) -> dict[str, Any]:
    ids = _ids(rng)
    row = rng.choice(
        [
            make_word(ids.image, ids.receipt, ids.line, ids.word),
            make_line(ids.image, ids.receipt, ids.line),
            make_receipt(ids.image, ids.receipt),
        ]
    )
    return stream_record("REMOVE", old=row)


def word_remove(rng: random.Random) -> dict[str, Any]:
    ids = _ids(rng)
    return stream_record("REMOVE", old=make_word(ids.image, ids.receipt, ids.line, ids.word))


def ocr_row(rng: random.Random) -> dict[str, Any]:
    """A row the pipeline ignores: an OCR word or line written or edited."""
    ids = _ids(rng)
    row = rng.choice(
        [
            make_word(ids.image, ids.receipt, ids.line, ids.word),
            make_line(ids.image, ids.receipt, ids.line),
        ]
    )
    return stream_record(rng.choice(["INSERT", "MODIFY"]), old=row, new=row)


def letter_insert(rng: random.Random) -> dict[str, Any]:
    """An OCR letter row (``…#WORD#wwwww#LETTER#nnnnn``, contract §2): never relevant."""
    ids = _ids(rng)
    item = make_word(ids.image, ids.receipt, ids.line, ids.word).to_item()
    for name in [n for n in item if n.startswith("GSI")] + ["extracted_data", "embedding_status"]:
        item.pop(name, None)
    item["SK"] = {"S": f"{item['SK']['S']}#LETTER#{rng.randint(1, 9):05d}"}
    item["TYPE"] = {"S": "RECEIPT_LETTER"}
    item["text"] = {"S": rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")}
    return stream_record("INSERT", new=item)


Kind = Callable[[random.Random], dict[str, Any]]
REALISTIC: dict[Kind, float] = {
    label_any: 0.30,
    metadata: 0.10,
    run_insert: 0.05,
    removal: 0.10,
    ocr_row: 0.45,
}
RELEVANCE_HEAVY: dict[Kind, float] = {
    label_modify: 0.50,
    label_insert: 0.15,
    word_remove: 0.10,
    run_insert: 0.05,
    letter_insert: 0.20,
}


def stream_records(count: int, shares: dict[Kind, float], seed: int) -> list[dict[str, Any]]:
    """Exactly ``share * count`` records of each kind, in a seeded random order."""
    counts = {kind: round(share * count) for kind, share in shares.items()}
    if sum(counts.values()) != count:
        raise ValueError(f"shares {shares} do not split {count} records exactly")
    rng = random.Random(seed)
    kinds = [kind for kind, n in counts.items() for _ in range(n)]
    rng.shuffle(kinds)
    return [kind(rng) for kind in kinds]


def deserializer_floor(records: list[dict[str, Any]]) -> None:
    deserializer = TypeDeserializer()
    for record in records:
        dynamodb = record["dynamodb"]
        for name in ("OldImage", "NewImage"):
            image = dynamodb.get(name)
            if image is not None:
                {k: deserializer.deserialize(v) for k, v in image.items()}


def stream_side(records: list[dict[str, Any]]) -> None:
    """Parse, detect, build, and render each message as the publisher sends it."""
    built = build_messages(records)
    if built.unparseable:
        raise RuntimeError(f"unparseable records in the mix: {built.unparseable[0][1]}")
    for _, message in built.messages:
        message.to_json()
        message.message_attributes()


def _timed(work: Callable[[], None]) -> float:
    gc.collect()
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _side(values: list[float]) -> dict[str, Any]:
    return {
        "rounds_seconds": [round(v, 4) for v in values],
        "min_seconds": round(min(values), 4),
        "median_seconds": round(statistics.median(values), 4),
    }


def measure(records: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    """Floor and stream side alternating within each round, on the same records."""
    floor: list[float] = []
    ours: list[float] = []
    build_only: list[float] = []
    for _ in range(rounds):
        floor.append(_timed(lambda: deserializer_floor(records)))
        ours.append(_timed(lambda: stream_side(records)))
        build_only.append(_timed(lambda: build_messages(records)))
    built = build_messages(records)
    return {
        "records": len(records),
        "messages": len(built.messages),
        "not_relevant": built.irrelevant,
        "rounds": rounds,
        "floor": _side(floor),
        "stream_side": _side(ours),
        "ratio": round(statistics.median(ours) / statistics.median(floor), 3),
        "ratio_of_mins": round(min(ours) / min(floor), 3),
        "ratio_per_round": [round(o / f, 3) for o, f in zip(ours, floor, strict=True)],
        "stream_side_records_per_second": round(len(records) / statistics.median(ours)),
        # build_messages alone (no bodies): the measure of earlier runs of this benchmark.
        "build_messages_only": _side(build_only),
        "build_messages_only_ratio": round(
            statistics.median(build_only) / statistics.median(floor), 3
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--records", type=int, default=RECORDS)
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    if args.rounds < 5:
        parser.error("--rounds must be at least 5 (the median of >= 5 interleaved rounds)")
    load_before = [round(v, 2) for v in os.getloadavg()]
    mixes = {
        "realistic": measure(stream_records(args.records, REALISTIC, seed=7), args.rounds),
        "relevance_heavy": measure(
            stream_records(args.records, RELEVANCE_HEAVY, seed=11), args.rounds
        ),
    }
    report: dict[str, Any] = {
        "benchmark": "stream_throughput",
        "load_average_before": load_before,
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "mixes": mixes,
        "targets": {f"{mix}_ratio_max": limit for mix, limit in TARGETS.items()},
        "meets_targets": all(mixes[mix]["ratio"] <= limit for mix, limit in TARGETS.items()),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.output is not None:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
