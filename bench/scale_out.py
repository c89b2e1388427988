"""When one Lambda stops holding the snapshot: the figures behind docs/scale-out.md
(contract §12), measured.

For 10,000 and 20,000 words of 1536-d vectors with their §4 metadata: the published
snapshot (a fully indexed, closed persist directory: bytes on disk, and its format 2
zstd objects in S3) and a cold start as a new compactor container or query service has it
— download and verify the version from S3 (a moto server in its own process), then, in a
fresh process, import chromadb, open the directory and answer a first query (its wall time
and peak RSS). Per 10,000 records, and extrapolated to one Lambda's limits (10 GB of /tmp,
10 GB of memory, 900 s). The same 10,000 records upserted into a local ``chroma run``: the
write rate and a query's latency there. Prints JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import numpy as np

from receipt_chroma import ChromaClient
from receipt_chroma.chroma_server import ChromaServer
from receipt_chroma.ids import VectorKey
from receipt_chroma.snapshots import (
    CollectionSnapshots,
    SnapshotSettings,
    SnapshotStats,
    prepare_directory,
    read_version,
    write_version,
)
from receipt_compaction_tools.aws.local_aws import LocalAwsServer
from receipt_compaction_tools.local.chroma_server import LocalChromaServer
from receipt_compaction_tools.local.environment import environment
from receipt_dynamo import DynamoClient

DIMENSION = int(os.environ.get("BENCH_DIMENSION", "1536"))
SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "10000,20000").split(",")]
CHUNK = 1000
BUCKET = "bench-scale-out"
GB = 1024**3
LAMBDA_TMP_BYTES = 10 * GB
LAMBDA_MEMORY_BYTES = 10 * GB
LAMBDA_TIMEOUT_SECONDS = 900

# A cold process: import chromadb, open the published directory, answer a first query
# (which loads the HNSW index), answer a second; then its peak RSS.
COLD_OPEN = r"""
import resource, sys, time
started = time.perf_counter()
import chromadb
import numpy as np
from chromadb.config import Settings
imported = time.perf_counter()
client = chromadb.PersistentClient(path=sys.argv[1], settings=Settings(anonymized_telemetry=False))
words = client.get_collection("words", embedding_function=None)
opened = time.perf_counter()
query = np.random.default_rng(5).standard_normal((1, int(sys.argv[2]))).astype(np.float32)
words.query(query_embeddings=query, n_results=10)
first = time.perf_counter()
words.query(query_embeddings=query, n_results=10)
second = time.perf_counter()
rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(imported - started, opened - imported, first - opened, second - first, rss_kib * 1024)
"""


def _metadata(key: VectorKey, n: int) -> dict[str, Any]:
    """What a merged word record carries (§4): ids, text, provenance, merchant and label
    keys — so the metadata share of the snapshot is realistic."""
    return {
        **key.base_metadata(),
        "text": f"WORD{n % 997}",
        "embedding_run_id": str(uuid.UUID(int=key.receipt_id + 7, version=4)),
        "embedding_created_at": "2026-11-28T10:15:00.000000+00:00",
        "merchant_name": "Corner Market",
        "canonical_merchant_name": "Corner Market Inc",
        "merchant_category": "grocery",
        "address": "1 Main St, Springfield",
        "phone_number": "555-0100",
        "place_id": "ChIJ-place-000001",
        "merchant_updated_at": "2026-11-28T10:15:00.000000+00:00",
        **(
            {
                "label_status": "validated",
                "valid_labels_array": ["TOTAL"],
                "label_validated_at": "2026-11-28T10:16:00.000000+00:00",
                "labels_updated_at": "2026-11-28T10:16:00.000000+00:00",
            }
            if n % 4 == 0
            else {}
        ),
    }


def _records(count: int) -> tuple[list[str], np.ndarray[Any, Any], list[dict[str, Any]]]:
    rng = np.random.default_rng(count)
    keys = [
        VectorKey(str(uuid.UUID(int=n // 200 + 1, version=4)), 1, 1 + (n % 200) // 10, 1 + n % 10)
        for n in range(count)
    ]
    vectors = rng.standard_normal((count, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [k.vector_id for k in keys], vectors, [_metadata(k, n) for n, k in enumerate(keys)]


def _write(client: ChromaClient, ids: list[str], vectors: Any, metadatas: list[Any]) -> float:
    words = client.get_or_create_collection("words")
    started = time.perf_counter()
    for start in range(0, len(ids), CHUNK):
        end = start + CHUNK
        client.upsert(
            words,
            ids[start:end],
            vectors[start:end],
            documents=[m["text"] for m in metadatas[start:end]],
            metadatas=metadatas[start:end],
        )
    return time.perf_counter() - started


def snapshot_figures(root: Path, count: int) -> dict[str, Any]:
    """Build, publish (fully indexed) and cold-open a ``count``-record snapshot."""
    ids, vectors, metadatas = _records(count)
    snapshots = CollectionSnapshots.create(
        collection="words",
        dynamo=DynamoClient("unused"),  # publishing objects and a manifest reads no table
        s3_client=boto3.client("s3"),
        bucket=BUCKET,
        work_dir=root / f"work-{count}",
        efs=None,
        settings=SnapshotSettings(dimension=DIMENSION),
    )
    with ChromaClient(snapshots.working.path, mode="write") as client:
        build_seconds = _write(client, ids, vectors, metadatas)
    published = SnapshotStats()
    check = prepare_directory(snapshots, published, force_flush=True)
    manifest, _, _ = write_version(
        snapshots, snapshots.working.path, check, base_version=None, stats=published
    )
    target = root / f"cold-{count}"
    downloaded = SnapshotStats()
    started = time.perf_counter()
    read_version(snapshots.store, manifest.version_id, target, stats=downloaded)
    download_seconds = time.perf_counter() - started
    started = time.perf_counter()
    output = subprocess.run(
        [sys.executable, "-c", COLD_OPEN, str(target), str(DIMENSION)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    open_seconds = time.perf_counter() - started
    imported, opened, first, second, rss = (float(x) for x in output)
    return {
        "records": count,
        "build_seconds": round(build_seconds, 1),
        "directory_bytes": manifest.total_size,
        "files": {f.path.rsplit("/", 1)[-1]: f.size for f in manifest.files if f.size > 1 << 20},
        "s3_object_bytes": published.bytes_uploaded,
        "unindexed_records": published.unindexed_records,
        "cold_start": {
            "download_seconds": round(download_seconds, 2),
            "bytes_downloaded": downloaded.bytes_downloaded,
            "process_seconds": round(open_seconds, 2),
            "import_chromadb_seconds": round(imported, 2),
            "open_seconds": round(opened, 2),
            "first_query_seconds": round(first, 3),
            "second_query_seconds": round(second, 4),
            # What grows with the snapshot: fetching it, opening it, loading its index.
            "data_seconds": round(download_seconds + opened + first, 2),
            "total_seconds": round(download_seconds + open_seconds, 2),
            "peak_rss_bytes": int(rss),
        },
    }


def server_figures(count: int) -> dict[str, Any]:
    """The same records upserted into a local ``chroma run``, and a query there."""
    ids, vectors, metadatas = _records(count)
    with LocalChromaServer() as local:
        server = ChromaServer(local.host, local.port)
        with server.connect() as client:
            seconds = _write(client, ids, vectors, metadatas)
            words = client.get_collection("words")
            query = np.random.default_rng(5).standard_normal((1, DIMENSION)).astype(np.float32)
            started = time.perf_counter()
            words.query(query_embeddings=query, n_results=10)
            first = time.perf_counter() - started
            started = time.perf_counter()
            words.query(query_embeddings=query, n_results=10)
            second = time.perf_counter() - started
    return {
        "records": count,
        "upsert_seconds": round(seconds, 1),
        "upserts_per_second": round(count / seconds),
        "first_query_seconds": round(first, 3),
        "second_query_seconds": round(second, 4),
    }


def per_10k(figures: list[dict[str, Any]]) -> dict[str, Any]:
    """Per 10,000 records, from the slope between the two sizes (what each further 10k
    adds; process start and imports do not grow)."""
    low, high = figures[0], figures[-1]
    span = (high["records"] - low["records"]) / 10_000

    def slope(get: Any) -> float:
        return float((get(high) - get(low)) / span)

    directory = slope(lambda f: f["directory_bytes"])
    objects = slope(lambda f: f["s3_object_bytes"])
    cold = slope(lambda f: f["cold_start"]["data_seconds"])
    rss = slope(lambda f: f["cold_start"]["peak_rss_bytes"])
    # What does not grow: starting a process and importing chromadb (the smaller of the
    # two runs, as the machine's load only ever adds to it).
    fixed_cold = min(
        f["cold_start"]["total_seconds"] - f["cold_start"]["data_seconds"] for f in figures
    )
    fixed_rss = low["cold_start"]["peak_rss_bytes"] - rss * low["records"] / 10_000
    records_in_tmp = LAMBDA_TMP_BYTES / directory * 10_000
    records_in_memory = (LAMBDA_MEMORY_BYTES - fixed_rss) / rss * 10_000
    records_in_timeout = (LAMBDA_TIMEOUT_SECONDS - fixed_cold) / cold * 10_000
    return {
        "snapshot_directory_mb": round(directory / 1e6, 1),
        "s3_objects_mb": round(objects / 1e6, 1),
        "cold_start_seconds": round(cold, 2),
        "peak_rss_mb": round(rss / 1e6, 1),
        "cold_start_fixed_seconds": round(fixed_cold, 2),
        "limits": {
            "records_before_10gb_tmp": int(records_in_tmp),
            "records_before_10gb_memory": int(records_in_memory),
            "records_before_900s_cold_start": int(records_in_timeout),
        },
    }


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-scale-out-") as tmp,
        LocalAwsServer(own_process=True) as aws,
        environment(aws.environment()),
    ):
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        snapshots = [snapshot_figures(Path(tmp), count) for count in SIZES]
    report = {
        "benchmark": "scale_out",
        "dimension": DIMENSION,
        "snapshots": snapshots,
        "per_10k_records": per_10k(snapshots),
        "server": server_figures(SIZES[0]),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
