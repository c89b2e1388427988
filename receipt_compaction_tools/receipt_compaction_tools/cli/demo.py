"""``receipt-compaction demo``: the whole pipeline, locally, on a synthetic dataset."""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import boto3

from receipt_chroma.chroma_client import ChromaClient
from receipt_chroma.snapshots.s3_store import S3SnapshotStore
from receipt_compaction_tools.aws.local_aws import LocalAwsServer
from receipt_compaction_tools.local.dataset import DemoDataset, generate, write
from receipt_compaction_tools.local.environment import environment
from receipt_compaction_tools.local.pump import LambdaPump
from receipt_compaction_tools.local.resources import PipelineResources, create_resources
from receipt_dynamo import DynamoClient, ValidationStatus

Progress = Callable[[str, int | None], Callable[[int], None]]


def apply_edits(dataset: DemoDataset, dynamo: DynamoClient) -> dict[str, Any]:
    """A merchant correction, label validations and invalidations, a line removal and a
    receipt deletion — what a reviewer does after the first pass."""
    corrected = dataclasses.replace(
        dataset.metadata[0], canonical_merchant_name=f"{dataset.metadata[0].merchant_name} Inc"
    )
    dynamo.put_receipt_metadata(corrected)
    dataset.metadata[0] = corrected
    for index, label in enumerate(dataset.labels[:12]):
        status = ValidationStatus.VALID if index % 3 else ValidationStatus.INVALID
        dataset.labels[index] = dataclasses.replace(label, validation_status=status)
        dynamo.put_receipt_word_label(dataset.labels[index])
    removed_line = dataset.receipts[1].line_rows[2]
    dynamo.delete_entity(removed_line)
    deleted = dataset.receipts[2]
    doomed = [
        *deleted.rows,
        dataset.metadata[2],
        *[lab for lab in dataset.labels if lab.image_id == deleted.image_id],
        *dynamo.list_compaction_runs_for_receipt(deleted.image_id, 1),
    ]
    dynamo.delete_entities(doomed)
    return {
        "merchant_corrected": corrected.image_id,
        "labels_reviewed": 12,
        "line_removed": [removed_line.image_id, removed_line.receipt_id, removed_line.line_id],
        "receipt_deleted": deleted.image_id,
    }


def snapshot_records(resources: PipelineResources, collection: str, root: Path) -> dict[str, Any]:
    dynamo = DynamoClient(resources.table)
    pointer = dynamo.get_snapshot_pointer(collection)
    if pointer is None:
        return {}
    target = root / f"published-{collection}"
    S3SnapshotStore(boto3.client("s3"), resources.bucket, collection).download(
        pointer.version, target
    )
    with ChromaClient(target, mode="read") as client:
        found = client.get_collection(collection).get(include=["metadatas", "embeddings"])
    return {
        "version": pointer.version,
        "history": list(pointer.history),
        "ids": found["ids"],
        "metadatas": found["metadatas"],
        "embeddings": found["embeddings"],
        "path": str(target),
    }


def sample_query(words: dict[str, Any], collection_path: str) -> list[dict[str, Any]]:
    """The 3 nearest words to a labelled word, with their merchant and label metadata."""
    index = next(
        (i for i, m in enumerate(words["metadatas"]) if m and m.get("valid_labels_array")), 0
    )
    with ChromaClient(collection_path, mode="read") as client:
        result = client.get_collection("words").query(
            query_embeddings=[words["embeddings"][index]],
            n_results=3,
            include=["metadatas", "distances", "documents"],
        )
    metadatas: Any = result["metadatas"] or [[]]
    distances: Any = result["distances"] or [[]]
    return [
        {
            "text": m.get("text"),
            "merchant": m.get("canonical_merchant_name") or m.get("merchant_name"),
            "labels": m.get("valid_labels_array"),
            "label_status": m.get("label_status"),
            "distance": round(float(d), 4),
        }
        for m, d in zip(metadatas[0], distances[0], strict=True)
    ]


def run_demo(
    *, receipts: int, dimension: int, seed: int, endpoint_url: str | None, progress: Progress
) -> dict[str, Any]:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    server = None if endpoint_url else LocalAwsServer().start()
    try:
        aws = server.environment() if server else {"AWS_ENDPOINT_URL": endpoint_url or ""}
        with tempfile.TemporaryDirectory(prefix="receipt-demo-") as tmp, environment(aws):
            root = Path(tmp)
            resources = create_resources(f"demo-{int(time.time())}")
            env = {
                **resources.environment(root / "efs", root / "work", dimension),
                "LOG_LEVEL": "ERROR",
                "LOCK_WAIT_SECONDS": "10",
            }
            with environment(env):
                dynamo = DynamoClient(resources.table)
                dataset = generate(receipts, dimension=dimension, seed=seed)
                step = time.perf_counter()
                write(dataset, dynamo, resources.bucket, progress("writing receipts", receipts))
                timings["write_seconds"] = time.perf_counter() - step

                pump = LambdaPump(resources)
                step = time.perf_counter()
                pump.pump_stream()
                pump.drain_queues()
                timings["first_pass_seconds"] = time.perf_counter() - step

                edits = apply_edits(dataset, dynamo)
                step = time.perf_counter()
                pump.pump_stream()
                pump.drain_queues()
                timings["edit_pass_seconds"] = time.perf_counter() - step

                words = snapshot_records(resources, "words", root)
                lines = snapshot_records(resources, "lines", root)
                summary: dict[str, Any] = {
                    "rows_written": dataset.rows,
                    "receipts": receipts,
                    "dimension": dimension,
                    "stream_records": pump.stats.stream_records,
                    "stream_invocations": pump.stats.stream_invocations,
                    "messages_per_queue": dict(pump.stats.messages_received),
                    "messages_failed": dict(pump.stats.messages_failed),
                    "cycles": pump.stats.cycles,
                    "queue_depths": pump.queue_depths(),
                    "records": {
                        "lines": len(lines.get("ids", [])),
                        "words": len(words.get("ids", [])),
                    },
                    "versions": {"lines": lines.get("history"), "words": words.get("history")},
                    "edits": edits,
                    # Against --endpoint-url the resources stay: status, query and the
                    # snapshot commands can be tried on them.
                    "resources": dataclasses.asdict(resources),
                    "sample_query": sample_query(words, words["path"]) if words else [],
                    "timings": {k: round(v, 2) for k, v in timings.items()},
                }
                summary["snapshot"] = {"lines": lines, "words": words}
                summary["timings"]["total_seconds"] = round(time.perf_counter() - started, 2)
                return summary
    finally:
        if server is not None:
            server.stop()


def render_demo(summary: dict[str, Any], stream: IO[str]) -> None:
    from rich.table import Table

    from receipt_compaction_tools.cli.common import console

    out = console(stream)
    out.print("[bold]Receipt compaction demo[/bold]")
    overview = Table(show_header=False)
    for key in (
        "receipts",
        "rows_written",
        "stream_records",
        "stream_invocations",
        "messages_per_queue",
        "messages_failed",
        "records",
        "queue_depths",
    ):
        overview.add_row(key.replace("_", " "), json.dumps(summary[key]))
    out.print(overview)
    cycles = Table(
        "collection",
        "cache tier",
        "published",
        "vectors merged",
        "failures",
        title="compaction cycles",
    )
    for cycle in summary["cycles"]:
        cycles.add_row(
            cycle["collection"],
            str(cycle["tier"]),
            str(cycle["published"]),
            str(cycle["vectors_merged"]),
            str(cycle["failures"]),
        )
    out.print(cycles)
    out.print(f"snapshot versions: {json.dumps(summary['versions'])}")
    query = Table(
        "text",
        "merchant",
        "valid labels",
        "label status",
        "distance",
        title="nearest words to a labelled word (published snapshot)",
    )
    for row in summary["sample_query"]:
        query.add_row(
            str(row["text"]),
            str(row["merchant"]),
            str(row["labels"]),
            str(row["label_status"]),
            str(row["distance"]),
        )
    out.print(query)
    out.print(f"timings: {json.dumps(summary['timings'])}")
