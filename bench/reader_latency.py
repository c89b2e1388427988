"""Query latency on a snapshot reader across version switches (issue 24 item 2).

A words snapshot of ``--records`` x ``--dimension`` is built and published fully indexed
(a planned flush), then ``--switches`` later versions, each adding ``--new-vectors``
vectors the way a small cycle's delta does (they stay unindexed under the raised
``hnsw.sync_threshold``, as in production), through the snapshot publisher
(``prepare_directory`` + ``write_version``) against a moto server in its own process.
All versions are uploaded before anything is timed; publishing one is then the commit
alone — the pointer item moving to it — so the timed part measures the reader, not the
publisher sharing its cores.

Each round, in alternating order:

- **indexed**: the same paced queries on an already-indexed copy (the base version,
  downloaded, opened and warmed once): the reference;
- **reader**: a ``SnapshotReader`` on a fresh directory serves the base version and
  follows the pointer (``--poll`` seconds) on its own thread, while the main thread
  queries every ``--interval`` seconds. Before each phase but the first the pointer moves
  to the next version; a phase ends once it has had its share of the ``--queries`` and
  the reader serves the phase's version, so the queries span every switch, downloads and
  warms included.

Reported: p99 latency of each side and their ratio ``reader_p99_ratio`` (target <= 2),
the switch lag (pointer moved -> first moment the reader serves the version; target
<= 30 s at 20k x 1536-d), the versions that answered, load average before and after, every
round and its min and median. Prints JSON. Run at a small size for correctness only; the
figures need a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from benchlib import create_bench_table, set_words_pointer, spread, use_local_credentials

from receipt_chroma import ChromaClient, SnapshotReader
from receipt_chroma.snapshots import (
    CollectionSnapshots,
    SnapshotSettings,
    SnapshotStats,
    prepare_directory,
    read_version,
    write_version,
)
from receipt_compaction_tools.aws.local_aws import LocalAwsServer
from receipt_compaction_tools.local.environment import environment
from receipt_dynamo import DynamoClient

SWITCH_TIMEOUT_SECONDS = 300
CHUNK = 2_000


def _vectors(rng: np.random.Generator, count: int, dimension: int) -> np.ndarray[Any, Any]:
    vectors = rng.standard_normal((count, dimension)).astype(np.float32)
    normalised: np.ndarray[Any, Any] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


class Versions:
    """The base version and the later ones, uploaded; the pointer at the base."""

    def __init__(self, root: Path, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = np.random.default_rng(7)
        self.bucket = "bench-reader"
        create_bench_table(self.bucket)
        self.dynamo = DynamoClient(self.bucket)
        self.s3 = boto3.client("s3")
        self.s3.create_bucket(Bucket=self.bucket)
        self.snapshots = CollectionSnapshots.create(
            collection="words",
            dynamo=self.dynamo,
            s3_client=self.s3,
            bucket=self.bucket,
            work_dir=root / "publisher",
            efs=None,
            settings=SnapshotSettings(dimension=args.dimension),
        )
        self.ids: list[str] = []
        self.ids_added = 0

    def _add(self, count: int) -> None:
        path = self.snapshots.working.path
        with ChromaClient(path, mode="write") as client:
            collection = client.get_or_create_collection("words")
            for start in range(0, count, CHUNK):
                size = min(CHUNK, count - start)
                ids = [f"w{self.ids_added + i}" for i in range(size)]
                self.ids_added += size
                client.upsert(
                    collection,
                    ids,
                    _vectors(self.rng, size, self.args.dimension),
                    documents=["w"] * size,
                    metadatas=[{"text": "w"}] * size,
                )

    def _publish(self, *, base: str | None, flush: bool) -> str:
        stats = SnapshotStats()
        check = prepare_directory(self.snapshots, stats, force_flush=flush)
        manifest, _, _ = write_version(
            self.snapshots, self.snapshots.working.path, check, base_version=base, stats=stats
        )
        return manifest.version_id

    def build(self) -> list[str]:
        """The base (fully indexed) and ``--switches`` versions after it."""
        self._add(self.args.records)
        versions = [self._publish(base=None, flush=True)]
        for _ in range(self.args.switches):
            self._add(self.args.new_vectors)
            versions.append(self._publish(base=versions[-1], flush=False))
        set_words_pointer(self.dynamo, versions[0])
        return versions


class Pacer:
    """Queries every ``interval`` seconds, each timed, with the version that answered."""

    def __init__(self, queries: np.ndarray[Any, Any], interval: float) -> None:
        self.queries = queries
        self.interval = interval
        self.latencies: list[float] = []
        self.answered: list[str] = []
        self._next = time.perf_counter()

    def one(self, ask: Callable[[list[float]], str], watch: Callable[[], None]) -> None:
        """One query at its time; ``watch`` runs every 10 ms while waiting for it."""
        while (now := time.perf_counter()) < self._next:
            watch()
            time.sleep(min(0.01, self._next - now))
        self._next = max(self._next + self.interval, time.perf_counter())
        vector = self.queries[len(self.latencies) % len(self.queries)].tolist()
        started = time.perf_counter()
        self.answered.append(ask(vector))
        self.latencies.append(time.perf_counter() - started)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def indexed_side(versions: Versions, base: str, root: Path, queries: Any) -> dict[str, Any]:
    copy = root / "indexed"
    if not copy.exists():
        read_version(versions.snapshots.store, base, copy)
    pacer = Pacer(queries, versions.args.interval)
    with ChromaClient(copy, mode="read") as client:
        collection = client.get_collection("words")

        def ask(vector: list[float]) -> str:
            collection.query(query_embeddings=[vector], n_results=10)
            return base

        ask(queries[0].tolist())  # warm: an already-indexed copy, opened and loaded
        for _ in range(versions.args.queries):
            pacer.one(ask, lambda: None)
    return {"p99_seconds": p99(pacer.latencies), "queries": len(pacer.latencies)}


def reader_side(
    versions: Versions, names: list[str], root: Path, queries: Any, round_: int
) -> dict[str, Any]:
    args = versions.args
    set_words_pointer(versions.dynamo, names[0])
    pacer = Pacer(queries, args.interval)
    lags: list[float | None] = []
    with SnapshotReader(
        collection="words",
        store=versions.snapshots.store,
        dynamo=versions.dynamo,
        directory=root / f"reader-{round_}",
    ) as reader:
        first = reader.refresh()
        assert first.error is None, first.reason
        reader.follow(args.poll)

        def ask(vector: list[float]) -> str:
            return reader.query(query_embeddings=[vector], n_results=10).version

        for phase, version in enumerate(names):
            if phase:
                set_words_pointer(versions.dynamo, version)  # the commit of a publish
            moved = time.perf_counter()
            served_at: list[float] = []

            def watch(version: str = version, served_at: list[float] = served_at) -> None:
                if not served_at and reader.version == version:
                    served_at.append(time.perf_counter())

            # The phase's share of the queries (they add up to --queries).
            share = max(
                1, args.queries * (phase + 1) // len(names) - args.queries * phase // len(names)
            )
            asked = 0
            while asked < share or not served_at:
                pacer.one(ask, watch)
                asked += 1
                watch()
                if time.perf_counter() - moved > SWITCH_TIMEOUT_SECONDS:
                    break
            if phase:
                lags.append(served_at[0] - moved if served_at else None)
        last = reader.last_refresh
    order = [v for i, v in enumerate(pacer.answered) if i == 0 or v != pacer.answered[i - 1]]
    return {
        "p99_seconds": p99(pacer.latencies),
        "queries": len(pacer.latencies),
        "max_seconds": max(pacer.latencies),
        "switch_lag_seconds": [None if lag is None else round(lag, 3) for lag in lags],
        "versions_in_answer_order": [names.index(v) for v in order],
        "last_refresh": None if last is None else last.kind.value,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--dimension", type=int, default=1536)
    parser.add_argument("--switches", type=int, default=5)
    parser.add_argument("--new-vectors", type=int, default=100, help="added by each version")
    parser.add_argument("--queries", type=int, default=100, help="per side and round")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between queries")
    parser.add_argument("--poll", type=float, default=1.0, help="reader's pointer poll (s)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    use_local_credentials()
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    rounds = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-reader-") as tmp,
        LocalAwsServer(own_process=True) as server,
        environment(server.environment()),
    ):
        root = Path(tmp)
        versions = Versions(root, args)
        built = time.perf_counter()
        names = versions.build()
        build_seconds = time.perf_counter() - built
        queries = _vectors(np.random.default_rng(3), 64, args.dimension)
        for round_ in range(args.rounds):
            sides = ["indexed", "reader"] if round_ % 2 == 0 else ["reader", "indexed"]
            measured: dict[str, dict[str, Any]] = {}
            for side in sides:
                measured[side] = (
                    indexed_side(versions, names[0], root, queries)
                    if side == "indexed"
                    else reader_side(versions, names, root, queries, round_)
                )
            ratio = measured["reader"]["p99_seconds"] / measured["indexed"]["p99_seconds"]
            rounds.append({"order": sides, **measured, "reader_p99_ratio": round(ratio, 3)})
    lags = [lag for r in rounds for lag in r["reader"]["switch_lag_seconds"]]
    served = [lag for lag in lags if lag is not None]
    ratio = spread([r["reader_p99_ratio"] for r in rounds])
    report = {
        "benchmark": "reader_latency",
        "records": args.records,
        "dimension": args.dimension,
        "switches": args.switches,
        "new_vectors_per_version": args.new_vectors,
        "queries_per_side": args.queries,
        "interval_seconds": args.interval,
        "poll_seconds": args.poll,
        "build_seconds": round(build_seconds, 1),
        "reader_p99_ratio": ratio["median"],
        "reader_p99_ratio_rounds": ratio,
        "reader_p99_seconds": spread([r["reader"]["p99_seconds"] for r in rounds]),
        "indexed_p99_seconds": spread([r["indexed"]["p99_seconds"] for r in rounds]),
        "switch_lag_seconds": {
            "max": max(served, default=None),
            "median": statistics.median(served) if served else None,
            "min": min(served, default=None),
            "not_served": len(lags) - len(served),
        },
        "targets": {
            "reader_p99_ratio_max": 2.0,
            "reader_p99_ratio_met": ratio["median"] <= 2.0,
            "switch_lag_seconds_max": 30.0,
            "switch_lag_met": len(served) == len(lags) and max(served, default=0.0) <= 30.0,
        },
        "rounds": rounds,
        "load_average": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
        "seconds": round(time.perf_counter() - started),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
