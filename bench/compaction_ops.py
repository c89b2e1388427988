"""Compaction operations against raw Chroma calls, measured side by side in one run.

1. Delta merge, measured alone: runs whose deltas total N 1536-dimension vectors go
   through ``merge_compaction_deltas`` (S3 download, safe extraction, delta read and id
   checks, provenance read, row filter, upsert, verification that every id is present),
   against a raw ``collection.upsert`` of the records the merge leaves in the snapshot
   (same ids, float32 vectors, documents and metadata, in calls of the client's maximum
   batch size), both into fresh copies of one snapshot of 10,000 other words. Rounds
   alternate raw, merge, raw, merge, ... (at least 5 of each); min and median of each;
   ``merge_throughput_ratio`` = median raw / median merge (target >= 0.9). Both copies
   carry chromadb's default HNSW settings (the base is written by ``ChromaClient`` with
   the contract's space only; no sink applies the product's raised ``sync_threshold``),
   which the JSON states. Deltas are read by the compactor's helper process, started
   beforehand as a warm compactor keeps it. S3 is a moto server in its own process, so
   downloads cost this process what a remote service would. The rows are read
   beforehand (moto's DynamoDB is far slower than a real table; its time is reported
   separately). Load averages before and after say whether the machine was quiet.
2. Merchant change on a 100-word receipt: the compactor's Chroma work
   (``apply_receipt_keys`` on the receipt's live ids: one read of their metadata, then
   one update carrying the merchant keys that differ) against a raw
   ``collection.update`` of the same keys onto those ids, in a 20,000-word and a
   2,000-word snapshot.
   Targets: <= 2x raw; the 20,000-word cost <= 1.5x the 2,000-word cost.

Part 2 uses moto in-process; Chroma is real, on temporary directories. Prints JSON.
``--quick``: development sizes (5 deltas into 2,000 words; 4,000/400-word snapshots),
under two minutes, for checking the script, not for figures.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import pstats
import resource
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from moto import mock_aws

from receipt_chroma import ChromaClient, produce_compaction_run
from receipt_chroma.compaction import (
    MergeTarget,
    apply_receipt_keys,
    merchant_metadata,
    merge_compaction_deltas,
)
from receipt_chroma.compaction.deltas import (
    DeltaReader,
    DeltaReaderProcess,
)
from receipt_chroma.ids import VectorKey, parse_vector_id
from receipt_compaction_tools.aws.local_aws import LocalAwsServer
from receipt_compaction_tools.local.environment import environment
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt, embedding_for
from receipt_dynamo import DynamoClient, create_table
from receipt_dynamo.testing import make_metadata

MERGE_DIMENSION = 1536
SNAPSHOT_DIMENSION = 64  # metadata updates do not touch vectors; keeps set-up short
MERGE_TARGET = 0.9
BUCKET = "bench"
LOGGER = logging.getLogger("bench")
LOGGER.addHandler(logging.NullHandler())
LOGGER.propagate = False


@dataclass(frozen=True, slots=True)
class Scale:
    merge_runs: int
    words_per_run: int
    # Both sides write into copies of one snapshot already holding this many words, as a
    # merge in production does (HNSW inserts cost more in a larger graph).
    merge_base_words: int
    merge_rounds: int  # of each side, alternating
    merchant_snapshots: tuple[int, int]  # (large, small) word counts
    merchant_rounds: int


FULL = Scale(20, 200, 10_000, 5, (20_000, 2_000), 15)  # 20 receipts x 200 words = 4,000
QUICK = Scale(5, 200, 2_000, 5, (4_000, 400), 5)


def _image(n: int) -> str:
    return str(uuid.UUID(int=n + 1, version=4))


def bench_merge(workdir: Path, scale: Scale) -> dict[str, Any]:
    """Delta merge against a raw upsert of the records it writes, alone, in alternating
    rounds."""
    with LocalAwsServer(own_process=True) as server, environment(server.environment()):
        create_table("bench")
        dynamo = DynamoClient("bench")
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        receipts = [
            SyntheticReceipt(
                _image(n),
                1,
                lines=scale.words_per_run // 4,
                words_per_line=4,
                dimension=MERGE_DIMENSION,
            )
            for n in range(scale.merge_runs)
        ]
        runs = []
        for n, receipt in enumerate(receipts):
            dynamo.put_entities(receipt.rows)
            runs.append(
                produce_compaction_run(
                    dynamo,
                    image_id=receipt.image_id,
                    receipt_id=1,
                    run_id=f"run-{n}",
                    lines=[],
                    words=receipt.word_records(),
                    bucket=BUCKET,
                )
            )
        # The rows are read first: the comparison is about the work done on Chroma and S3.
        started = time.perf_counter()
        targets = [
            MergeTarget(run, dynamo.get_receipt_state(run.image_id, run.receipt_id)) for run in runs
        ]
        read_seconds = time.perf_counter() - started
        # Raw writes exactly the records the merge leaves in the snapshot.
        records = [
            (
                vector_id,
                embedding,
                text,
                {
                    **parse_vector_id(vector_id, "words").base_metadata(),
                    **meta,
                    "embedding_run_id": run.run_id,
                    "embedding_created_at": run.created_at,
                },
            )
            for receipt, run in zip(receipts, runs, strict=True)
            for vector_id, embedding, text, meta in receipt.word_records()
        ]
        base = _merge_base(workdir / "merge-base", scale.merge_base_words)
        expected_count = scale.merge_base_words + len(records)
        started = time.perf_counter()
        helper = DeltaReaderProcess()
        helper.wait_ready()
        helper_start_seconds = time.perf_counter() - started
        timings: dict[str, list[float]] = {"raw": [], "merge": []}
        cpu: dict[str, list[float]] = {"raw": [], "merge": [], "merge_helper_process": []}
        hnsw: dict[str, Any] = {}
        load_before = _load_average()
        for n in range(scale.merge_rounds):
            copy = _copy(base, workdir / f"raw-{n}")
            own = _cpu_seconds()
            seconds, hnsw["raw"] = _raw_upsert(copy, records)
            timings["raw"].append(seconds)
            cpu["raw"].append(_cpu_seconds() - own)
            shutil.rmtree(copy)
            copy = _copy(base, workdir / f"merge-{n}")
            own, helper_cpu = _cpu_seconds(), _process_cpu_seconds(helper.pid)
            seconds, hnsw["merge"] = _merge(copy, targets, records, helper, expected_count)
            timings["merge"].append(seconds)
            cpu["merge"].append(_cpu_seconds() - own)
            cpu["merge_helper_process"].append(_process_cpu_seconds(helper.pid) - helper_cpu)
            shutil.rmtree(copy)
        load_after = _load_average()
        profile = _profiled_merge(
            _copy(base, workdir / "merge-profiled"), targets, records, helper, expected_count
        )
        helper.close()
    raw, merge = (statistics.median(timings[k]) for k in ("raw", "merge"))
    raw_min, merge_min = (min(timings[k]) for k in ("raw", "merge"))
    defaults = _chromadb_default_hnsw()
    return {
        "vectors": len(records),
        "runs": scale.merge_runs,
        "dimension": MERGE_DIMENSION,
        "rounds_each": scale.merge_rounds,
        "round_order": "raw, merge, raw, merge, ... (each on a fresh copy of the base)",
        "snapshot_words_before_merge": scale.merge_base_words,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "raw_upsert_seconds": {"min": round(raw_min, 3), "median": round(raw, 3)},
        "merge_seconds": {"min": round(merge_min, 3), "median": round(merge, 3)},
        "seconds_per_round": {k: [round(t, 3) for t in v] for k, v in timings.items()},
        "merge_throughput_ratio": round(raw / merge, 3),
        "merge_throughput_ratio_of_minimums": round(raw_min / merge_min, 3),
        "raw_vectors_per_second": round(len(records) / raw),
        "merge_vectors_per_second": round(len(records) / merge),
        # The reference is chromadb at its defaults, never the product's own tuning.
        "hnsw_settings": {
            "raw_copy": hnsw["raw"],
            "merge_copy": hnsw["merge"],
            "chromadb_defaults": defaults,
            "raw_copy_has_chromadb_defaults": _same_but_space(hnsw["raw"], defaults),
        },
        # Where the merge's own thread spends its time, from one more merge profiled after
        # the measured rounds (not in the ratio): Chroma's native upserts and reads, and
        # waiting for deltas (the helper process reads them meanwhile).
        "merge_profile_one_extra_round": profile,
        "delta_reader_start_seconds": round(helper_start_seconds, 3),
        # CPU seconds (this process / the helper): on a machine with C cores the merge can
        # at best take (its CPU seconds) / C, while raw already keeps most cores busy.
        "cpu_seconds_median": {k: round(statistics.median(v), 3) for k, v in cpu.items()},
        "cores": os.cpu_count(),
        "row_reads_seconds_moto": round(read_seconds, 3),
    }


def _load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def _chromadb_default_hnsw() -> dict[str, Any]:
    """The HNSW settings chromadb gives a collection created without a configuration."""
    with ChromaClient(mode="write") as client:
        plain = client.client.create_collection("defaults", embedding_function=None)
        return dict(plain.configuration.get("hnsw") or {})


def _same_but_space(settings: dict[str, Any], defaults: dict[str, Any]) -> bool:
    """Equal apart from the distance space (cosine, as contract §4 requires)."""
    return {k: v for k, v in settings.items() if k != "space"} == {
        k: v for k, v in defaults.items() if k != "space"
    }


def _merge_base(path: Path, words: int) -> Path:
    """A closed snapshot of ``words`` words of other receipts, chromadb's default settings."""
    rng = np.random.default_rng(3)
    with ChromaClient(path, mode="write") as client:
        collection = client.get_or_create_collection("words")
        for start in range(0, words, 2000):
            keys = [
                VectorKey(_image(1000 + n // 200), 1, 1 + (n % 200) // 10, 1 + n % 10)
                for n in range(start, min(start + 2000, words))
            ]
            client.upsert(
                collection,
                [k.vector_id for k in keys],
                rng.standard_normal((len(keys), MERGE_DIMENSION), dtype=np.float32),
                documents=["w"] * len(keys),
                metadatas=[{**k.base_metadata(), "text": "w"} for k in keys],
            )
    return path


def _copy(base: Path, path: Path) -> Path:
    shutil.copytree(base, path)
    return path


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of another process (Linux ``/proc``), 0 if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _merge(
    path: Path,
    targets: list[MergeTarget],
    records: list[Any],
    reader: DeltaReader,
    expected_count: int,
) -> tuple[float, dict[str, Any]]:
    """Seconds for ``merge_compaction_deltas`` of every target into the snapshot at
    ``path``, and the collection's HNSW settings."""
    with ChromaClient(path, mode="write") as merge_client:
        started = time.perf_counter()
        results = merge_compaction_deltas(
            merge_client,
            "words",
            targets,
            bucket=BUCKET,
            logger=LOGGER,
            dimension=MERGE_DIMENSION,
            work_dir=path.parent,
            reader=reader,
        )
        seconds = time.perf_counter() - started
        assert all(r.error is None for r in results), results
        collection = merge_client.get_collection("words")
        merged = collection.get(ids=[records[0][0]])
        assert merged["metadatas"], merged
        assert merged["metadatas"][0] == records[0][3], merged
        assert collection.count() == expected_count
        return seconds, dict(collection.configuration["hnsw"])


# Native calls in the merge thread's profile, by what they are.
_PROFILED_CALLS = {
    "<method 'upsert' of 'builtins.Bindings' objects>": "chroma_upsert",
    "<method 'get' of 'builtins.Bindings' objects>": "chroma_reads",
    "<method 'acquire' of '_thread.lock' objects>": "waiting_for_deltas",
}


def _profiled_merge(
    path: Path,
    targets: list[MergeTarget],
    records: list[Any],
    reader: DeltaReader,
    expected_count: int,
) -> dict[str, Any]:
    """Seconds and calls of the merge thread's native Chroma calls and waits, and the rest."""
    profiler = cProfile.Profile()
    profiler.enable()
    seconds, _ = _merge(path, targets, records, reader, expected_count)
    profiler.disable()
    shutil.rmtree(path)
    found: dict[str, dict[str, float]] = {}
    for (_, _, name), (_, calls, own, _, _) in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        if name in _PROFILED_CALLS:
            found[_PROFILED_CALLS[name]] = {"seconds": round(own, 3), "calls": calls}
    accounted = sum(part["seconds"] for part in found.values())
    return {
        "merge_seconds": round(seconds, 3),
        **found,
        "rest_seconds": round(seconds - accounted, 3),
    }


def _raw_upsert(path: Path, records: list[Any]) -> tuple[float, dict[str, Any]]:
    """Seconds for ``collection.upsert`` of ``records`` (float32 arrays) into the snapshot
    at ``path``, and the collection's HNSW settings."""
    with ChromaClient(path, mode="write") as client:
        collection = client.get_or_create_collection("words")
        step = client.max_batch_size
        started = time.perf_counter()
        for start in range(0, len(records), step):
            chunk = records[start : start + step]
            collection.upsert(
                ids=[r[0] for r in chunk],
                embeddings=np.asarray([r[1] for r in chunk], dtype=np.float32),
                documents=[r[2] or "" for r in chunk],
                metadatas=[r[3] for r in chunk],
            )
        return time.perf_counter() - started, dict(collection.configuration["hnsw"])


def _snapshot(path: Path, words: int) -> ChromaClient:
    client = ChromaClient(path, mode="write")
    collection = client.get_or_create_collection("words")
    keys = [VectorKey(_image(n // 100), 1 + (n % 100) // 10, 1 + n % 10, 1) for n in range(words)]
    keys = [VectorKey(k.image_id, 1, k.receipt_id, k.line_id) for k in keys]  # 100 words/receipt
    ids = [k.vector_id for k in keys]
    client.upsert(
        collection,
        ids,
        [embedding_for(i, SNAPSHOT_DIMENSION) for i in ids],
        metadatas=[{**k.base_metadata(), "text": "w"} for k in keys],
    )
    return client


def _median_time(rounds: int, work: Callable[[int], None]) -> float:
    timings = []
    for n in range(rounds):
        started = time.perf_counter()
        work(n)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def bench_merchant_change(workdir: Path, words: int, rounds: int = 15) -> dict[str, Any]:
    client = _snapshot(workdir / f"snap-{words}", words)
    collection = client.get_collection("words")
    image_id = _image(words // 200)  # a receipt in the middle of the snapshot
    ids = collection.get(where={"$and": [{"image_id": image_id}, {"receipt_id": 1}]}, include=[])[
        "ids"
    ]
    assert len(ids) == 100

    def raw(n: int) -> None:
        # The same final merchant keys, written straight onto the known ids.
        keys = merchant_metadata(make_metadata(image_id, 1, merchant_name=f"Raw {n}"))
        collection.update(ids=ids, metadatas=[keys] * len(ids))

    def ours(n: int) -> None:
        # The compactor's Chroma work for a merchant change: the live ids (from the
        # table) read with their metadata, then one update of the keys that differ.
        metadata = make_metadata(image_id, 1, merchant_name=f"Ours {n}")
        apply_receipt_keys(
            collection,
            image_id,
            1,
            merchant=merchant_metadata(metadata),
            labels=None,
            logger=LOGGER,
            record_ids=ids,
        )

    raw_seconds = _median_time(rounds, raw)
    our_seconds = _median_time(rounds, ours)
    client.close()
    return {
        "snapshot_words": words,
        "receipt_words": len(ids),
        "raw_update_ms": round(raw_seconds * 1000, 2),
        "compactor_merchant_change_ms": round(our_seconds * 1000, 2),
        "ratio_to_raw": round(our_seconds / raw_seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="development sizes (< 2 min)")
    scale = QUICK if parser.parse_args().quick else FULL
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    large_words, small_words = scale.merchant_snapshots
    with tempfile.TemporaryDirectory(prefix="bench-ops-") as tmp:
        workdir = Path(tmp)
        merge = bench_merge(workdir, scale)
        with mock_aws():
            large = bench_merchant_change(workdir, large_words, scale.merchant_rounds)
            small = bench_merchant_change(workdir, small_words, scale.merchant_rounds)
    growth = large["compactor_merchant_change_ms"] / small["compactor_merchant_change_ms"]
    report = {
        "benchmark": "compaction_ops",
        "scale": "quick (development, not for figures)" if scale is QUICK else "full",
        "delta_merge": merge,
        "merchant_change": {
            f"snapshot_{large_words}": large,
            f"snapshot_{small_words}": small,
            f"cost_growth_{large_words}_vs_{small_words}": round(growth, 3),
        },
        "targets": {
            "merge_throughput_ratio_min": MERGE_TARGET,
            "merchant_change_ratio_max": 2.0,
            "cost_growth_max": 1.5,
        },
    }
    report["meets_targets"] = (
        merge["merge_throughput_ratio"] >= MERGE_TARGET
        and large["ratio_to_raw"] <= 2.0
        and small["ratio_to_raw"] <= 2.0
        and growth <= 1.5
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
