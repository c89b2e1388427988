"""``receipt-compaction demo``: the whole pipeline, locally, on a synthetic dataset.

``--sink server`` (or ``both``) starts a local ``chroma run`` on a free port and points the
compactor at it (contract §12): the records are then read back, and queried, on the
server; with ``both`` the published snapshot is compared with it too (``sink verify``)."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from receipt_chroma.chroma_client import ChromaClient, ClientCollection
from receipt_chroma.chroma_server import ChromaServer
from receipt_chroma.compaction import chroma_server_from_env
from receipt_chroma.snapshots import S3SnapshotStore
from receipt_compaction_tools.aws.local_aws import LocalAwsServer
from receipt_compaction_tools.cli.settings import LOCAL_CREDENTIALS, is_local
from receipt_compaction_tools.local.chroma_server import LocalChromaServer
from receipt_compaction_tools.local.dataset import DemoDataset, generate, write
from receipt_compaction_tools.local.environment import environment
from receipt_compaction_tools.local.pump import LambdaPump
from receipt_compaction_tools.local.resources import PipelineResources, create_resources
from receipt_dynamo import DynamoClient, ValidationStatus, aws_client

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


def _records(collection: ClientCollection) -> dict[str, Any]:
    found = collection.get(include=["metadatas", "embeddings"])
    return {"ids": found["ids"], "metadatas": found["metadatas"], "embeddings": found["embeddings"]}


def snapshot_records(resources: PipelineResources, collection: str, root: Path) -> dict[str, Any]:
    dynamo = DynamoClient(resources.table)
    pointer = dynamo.get_snapshot_pointer(collection)
    if pointer is None:
        return {}
    target = root / f"published-{collection}"
    S3SnapshotStore(aws_client("s3"), resources.bucket, collection).download(
        pointer.version, target
    )
    with ChromaClient(target, mode="read") as client:
        found = _records(client.get_collection(collection))
    return {
        "version": pointer.version,
        "history": list(pointer.history),
        **found,
        "path": str(target),
    }


def server_records(server: ChromaServer, collection: str) -> dict[str, Any]:
    with server.connect(mode="read") as client:
        if collection not in client.list_collection_names():
            return {}
        return {**_records(client.get_collection(collection)), "server": server.describe()}


def sample_query(words: dict[str, Any], open_words: Callable[[], Any]) -> list[dict[str, Any]]:
    """The 3 nearest words to a labelled word, with their merchant and label metadata;
    ``open_words`` gives a client and its words collection (a snapshot or the server)."""
    index = next(
        (i for i, m in enumerate(words["metadatas"]) if m and m.get("valid_labels_array")), 0
    )
    client, collection = open_words()
    with client:
        result = collection.query(
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


def _open_snapshot(path: str) -> Callable[[], Any]:
    def open_words() -> Any:
        client = ChromaClient(path, mode="read")
        return client, client.get_collection("words")

    return open_words


def _open_server(server: ChromaServer) -> Callable[[], Any]:
    def open_words() -> Any:
        client = server.connect(mode="read")
        return client, client.get_collection("words")

    return open_words


def demo_environment(
    resources: PipelineResources, dimension: int, endpoint_url: str
) -> dict[str, str]:
    """The variables that point the other commands (and the handlers) at the demo's
    resources on ``endpoint_url``; throw-away credentials are included when in use."""
    environment = {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION")
        or os.environ.get("AWS_REGION", ""),
    }
    if is_local(endpoint_url) and all(
        os.environ.get(name) == value for name, value in LOCAL_CREDENTIALS.items()
    ):
        environment.update(LOCAL_CREDENTIALS)
    environment.update(
        DYNAMODB_TABLE_NAME=resources.table,
        CHROMADB_BUCKET=resources.bucket,
        LINES_QUEUE_URL=resources.lines_queue_url,
        WORDS_QUEUE_URL=resources.words_queue_url,
        LINES_DLQ_URL=resources.lines_dlq_url,
        WORDS_DLQ_URL=resources.words_dlq_url,
        STREAM_DLQ_URL=resources.stream_dlq_url,
        EMBEDDING_DIMENSION=str(dimension),
    )
    return environment


def run_demo(
    *,
    receipts: int,
    dimension: int,
    seed: int,
    endpoint_url: str | None,
    progress: Progress,
    sink: str = "snapshot",
    region: str | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    server = None if endpoint_url else LocalAwsServer().start()
    chroma = LocalChromaServer().start() if sink != "snapshot" else None
    try:
        aws = server.environment() if server else {"AWS_ENDPOINT_URL": endpoint_url or ""}
        if region:
            aws["AWS_DEFAULT_REGION"] = region
        with tempfile.TemporaryDirectory(prefix="receipt-demo-") as tmp, environment(aws):
            root = Path(tmp)
            resources = create_resources(f"demo-{int(time.time())}")
            env = {
                **resources.environment(root / "efs", root / "work", dimension),
                "LOG_LEVEL": "ERROR",
                "LOCK_WAIT_SECONDS": "10",
                "CHROMA_SINK": sink,
                **(chroma.environment() if chroma else {}),
            }
            with environment(env):
                summary = _demo_summary(
                    resources,
                    root,
                    generate(receipts, dimension=dimension, seed=seed),
                    dimension=dimension,
                    endpoint_url=endpoint_url,
                    sink=sink,
                    chroma=chroma,
                    progress=progress,
                )
                summary["timings"]["total_seconds"] = round(time.perf_counter() - started, 2)
                return summary
    finally:
        if chroma is not None:
            chroma.close()
        if server is not None:
            server.stop()


def _pipeline_pass(pump: LambdaPump) -> float:
    """Deliver the stream and drain the queues; returns the seconds it took."""
    step = time.perf_counter()
    pump.pump_stream()
    pump.drain_queues()
    return time.perf_counter() - step


def _pump_summary(pump: LambdaPump) -> dict[str, Any]:
    return {
        "stream_records": pump.stats.stream_records,
        "stream_invocations": pump.stats.stream_invocations,
        "messages_per_queue": dict(pump.stats.messages_received),
        # Messages whose last delivery failed (a retried message counts once).
        "messages_failed": {c: len(pump.stats.unapplied.get(c, ())) for c in ("lines", "words")},
        "failed_deliveries": dict(pump.stats.messages_failed),
        "cycles": pump.stats.cycles,
        "queue_depths": pump.queue_depths(),
    }


def _demo_summary(
    resources: PipelineResources,
    root: Path,
    dataset: DemoDataset,
    *,
    dimension: int,
    endpoint_url: str | None,
    sink: str,
    chroma: LocalChromaServer | None,
    progress: Progress,
) -> dict[str, Any]:
    """Write the receipts, run the pipeline, edit them, run it again, then read back what
    was published."""
    receipts = len(dataset.receipts)
    timings: dict[str, float] = {}
    dynamo = DynamoClient(resources.table)
    step = time.perf_counter()
    write(dataset, dynamo, resources.bucket, progress("writing receipts", receipts))
    timings["write_seconds"] = time.perf_counter() - step
    pump = LambdaPump(resources)
    timings["first_pass_seconds"] = _pipeline_pass(pump)
    edits = apply_edits(dataset, dynamo)
    timings["edit_pass_seconds"] = _pipeline_pass(pump)

    words = snapshot_records(resources, "words", root)
    lines = snapshot_records(resources, "lines", root)
    summary: dict[str, Any] = {
        "sink": sink,
        "rows_written": dataset.rows,
        "receipts": receipts,
        "dimension": dimension,
        **_pump_summary(pump),
        "versions": {"lines": lines.get("history"), "words": words.get("history")},
        "edits": edits,
        # Against --endpoint-url the resources stay: status, query and the snapshot
        # commands can be tried on them.
        "resources": dataclasses.asdict(resources),
        "environment": (
            demo_environment(resources, dimension, endpoint_url) if endpoint_url else None
        ),
    }
    summary["snapshot"] = {"lines": lines, "words": words}
    if chroma is not None:
        summary.update(_server_summary(chroma, sink, resources, dynamo, summary["snapshot"]))
    shown = summary.get("server") or summary["snapshot"]
    summary["records"] = {c: len(shown[c].get("ids", [])) for c in ("lines", "words")}
    if "server" not in summary:
        summary["sample_query"] = (
            sample_query(words, _open_snapshot(words["path"])) if words else []
        )
    summary["timings"] = {k: round(v, 2) for k, v in timings.items()}
    return summary


def _server_summary(
    chroma: LocalChromaServer,
    sink: str,
    resources: PipelineResources,
    dynamo: DynamoClient,
    snapshot: dict[str, Any],
) -> dict[str, Any]:
    """What the server holds, the sample query against it and, when both sinks were
    written, ``sink verify`` of each collection."""
    from receipt_chroma import server_migration as migration

    server = chroma_server_from_env(chroma.environment())
    records = {c: server_records(server, c) for c in ("lines", "words")}
    summary: dict[str, Any] = {
        "server": records,
        "chroma_server": server.describe(),
        "sample_query": sample_query(records["words"], _open_server(server))
        if records["words"]
        else [],
    }
    if sink == "both" and snapshot["words"]:
        summary["sink_verify"] = {
            c: {
                k: v
                for k, v in migration.verify(dynamo, resources.bucket, c, server).items()
                if k in ("ok", "compared", "total_differences", "differences")
            }
            for c in ("lines", "words")
        }
    return summary
