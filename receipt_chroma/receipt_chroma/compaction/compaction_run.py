"""Delta merging: a CompactionRun's embeddings into the snapshot collection (contract §5.3).

A delta may hold any part of a receipt. Merging run R upserts each delta record whose
line/word row exists, unless the record already holds a vector of a newer run — every
record names the run that supplied its vector (``embedding_run_id``,
``embedding_created_at``), runs ordered by (created_at as an instant, run_id), and a
record without them is older than every run. So merges commute: any order, with
repeats, leaves each record with the newest run's vector. A merge never deletes.
Upserted records carry the receipt's current merchant and label keys. All runs of a
batch go into the snapshot in as few chunked upserts as possible.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from receipt_chroma.chroma_client import ChromaClient, ClientCollection
from receipt_chroma.compaction.collection_reads import existing_ids, metadatas_of
from receipt_chroma.compaction.deltas.fetch import DeltaFetcher, FetchedDeltas
from receipt_chroma.compaction.deltas.reader import DeltaReader, shared_delta_reader
from receipt_chroma.compaction.models import DeltaRecord, RunMergeResult
from receipt_chroma.compaction.operations import OperationLogger
from receipt_chroma.compaction.record_keys import (
    label_metadata_by_record,
    merchant_metadata,
    reconstruct_label_metadata,
)
from receipt_chroma.constants import EMBEDDING_CREATED_AT, EMBEDDING_RUN_ID
from receipt_chroma.exceptions import DeltaError
from receipt_chroma.ids import VectorKey, line_vector_id, parse_vector_id, word_vector_id
from receipt_dynamo.aws_clients import aws_client
from receipt_dynamo.constants import ChromaDBCollection, CompactionState
from receipt_dynamo.entities import CompactionRun
from receipt_dynamo.entities.compaction_run import RunOrder, run_order
from receipt_dynamo.receipt_state import ReceiptState
from receipt_dynamo_stream.compactor_defaults import EMBEDDING_DIMENSION

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MergeTarget:
    """A run chosen for merging, with its receipt's rows read for this batch."""

    run: CompactionRun
    rows: ReceiptState


def live_record_ids(rows: ReceiptState, collection: ChromaDBCollection | str) -> set[str]:
    """Ids that may exist now: the receipt row exists and so does the line/word row."""
    if not rows.exists:
        return set()
    if ChromaDBCollection(collection) is ChromaDBCollection.WORDS:
        return {
            word_vector_id(rows.image_id, rows.receipt_id, line_id, word_id)
            for line_id, word_id in rows.word_ids
        }
    return {line_vector_id(rows.image_id, rows.receipt_id, line_id) for line_id in rows.line_ids}


def held_run_order(metadata: dict[str, Any] | None) -> RunOrder | None:
    """The order of the run whose vector a record holds; None (older than every run)
    for a record written before provenance existed."""
    run_id = (metadata or {}).get(EMBEDDING_RUN_ID)
    created_at = (metadata or {}).get(EMBEDDING_CREATED_AT)
    if not isinstance(run_id, str) or not isinstance(created_at, str):
        return None
    try:
        return run_order(created_at, run_id)
    except ValueError:
        return None


def record_metadata(
    key: VectorKey,
    text: str,
    rows: ReceiptState,
    labels: dict[str, dict[str, Any]] | None,
    run: CompactionRun,
) -> dict[str, Any]:
    """The complete metadata of a merged record: ids, text, provenance, merchant keys and
    label keys (absent ones as None, since Chroma merges the metadata of an upsert)."""
    metadata: dict[str, Any] = {
        **key.base_metadata(),
        "text": text,
        EMBEDDING_RUN_ID: run.run_id,
        EMBEDDING_CREATED_AT: run.created_at,
    }
    metadata.update(merchant_metadata(rows.metadata))
    if labels is not None:
        metadata.update(labels.get(key.vector_id) or reconstruct_label_metadata([]))
    return metadata


class _UpsertBatch:
    """Records waiting to be upserted, one per id (a newer run's record replaces an older
    one's in the same batch); every id written is verified at the end."""

    def __init__(self, client: ChromaClient, snapshot: ClientCollection) -> None:
        self.client = client
        self.snapshot = snapshot
        self.pending: dict[str, tuple[Any, str, dict[str, Any]]] = {}
        self.written: set[str] = set()

    @property
    def size(self) -> int:
        return len(self.pending)

    def add(self, record: DeltaRecord, text: str, metadata: dict[str, Any]) -> None:
        self.pending[record.id] = (record.embedding, record.document or text, metadata)

    def flush(self) -> None:
        if self.pending:
            ids = list(self.pending)
            embeddings = np.asarray([self.pending[i][0] for i in ids], dtype=np.float32)
            documents = [self.pending[i][1] for i in ids]
            metadatas = [self.pending[i][2] for i in ids]
            self.client.upsert(self.snapshot, ids, embeddings, documents, metadatas)
            self.written.update(ids)
            self.pending = {}

    def verify(self) -> None:
        missing = self.written - set(existing_ids(self.snapshot, self.written))
        if missing:
            raise DeltaError(f"{len(missing)} merged records are missing after upsert")


class _HeldRuns:
    """Which run's vector each record holds, and which metadata keys it may hold: read
    from the snapshot once per id (the provenance read), then kept up to date with what
    this merge adds."""

    def __init__(
        self, snapshot: ClientCollection, collection: str, merging: frozenset[str]
    ) -> None:
        self.snapshot = snapshot
        self.collection = collection
        self.merging = merging  # the runs this merge writes
        self.orders: dict[str, RunOrder | None] = {}
        # Keys each record held when read, plus every key this merge gave it a value.
        self.keys: dict[str, set[str]] = {}

    def holders(self, runs: Sequence[CompactionRun]) -> dict[str, bool]:
        """Whether each of a receipt's runs counts when its vector is newer. A run counts
        while it is a run of the receipt (its row exists: a receipt deleted and re-created
        forgets its old runs) and has not failed (a failed merge never counts as merged),
        or when this merge writes it."""
        return {
            run.run_id: run.run_id in self.merging
            or run.state(self.collection) is not CompactionState.FAILED
            for run in runs
        }

    def load(self, ids: list[str]) -> None:
        unknown = [i for i in ids if i not in self.orders]
        if unknown:
            found = metadatas_of(self.snapshot, unknown)
            for record_id in unknown:
                metadata = found.get(record_id) or {}
                self.orders[record_id] = held_run_order(metadata)
                self.keys[record_id] = {k for k, v in metadata.items() if v is not None}

    def accepts(self, record_id: str, order: RunOrder, holders: Mapping[str, bool]) -> bool:
        """Whether a run of ``order`` may write the record: it holds no vector, or one of
        an older or the same run (an idempotent re-merge), or one of a run that no longer
        counts — ``holders`` maps the receipt's run ids to whether each counts."""
        held = self.orders[record_id]
        return held is None or held <= order or not holders.get(held[1], False)

    def take(self, record_id: str, order: RunOrder, metadata: dict[str, Any]) -> dict[str, Any]:
        """Record that a run of ``order`` writes ``metadata`` onto the record; returns the
        metadata to send. An absent key is sent as None only when the record may hold it:
        for any other key it is a no-op that Chroma still validates and stores per record
        (a new record would carry every merchant and label key as None)."""
        self.orders[record_id] = order
        held = self.keys[record_id]
        sent = {k: v for k, v in metadata.items() if v is not None or k in held}
        held.update(k for k, v in sent.items() if v is not None)
        return sent


# Upsert once this many records wait and the next delta is not read yet: the first write
# starts early instead of idling until several deltas are read, and while a write runs the
# reader gets ahead, so later writes absorb every delta ready by then (fewer, larger
# upserts: each call has a fixed cost, measured ~10 % for 200-record calls).
FLUSH_RECORDS = 200


def merge_compaction_deltas(
    client: ChromaClient,
    collection: ChromaDBCollection | str,
    targets: Sequence[MergeTarget],
    *,
    bucket: str,
    logger: OperationLogger,
    s3_client: S3Client | None = None,
    dimension: int = EMBEDDING_DIMENSION,
    work_dir: Path | None = None,
    reader: DeltaReader | None = None,
) -> list[RunMergeResult]:
    """Merge each target run's delta; one result per run (merged count or the error).

    A run whose delta is missing, unsafe or malformed fails alone; the others merge. The
    deltas are fetched here, read by ``reader`` (default: this process's helper process);
    a cycle fetches once for all its sinks instead (``fetch_deltas``, ``merge_fetched``).
    """
    with fetch_deltas(
        targets,
        collection,
        bucket=bucket,
        s3_client=s3_client,
        dimension=dimension,
        work_dir=work_dir,
        reader=reader,
    ) as fetched:
        return merge_fetched(client, ChromaDBCollection(collection), fetched, logger)


@contextmanager
def fetch_deltas(
    targets: Sequence[MergeTarget],
    collection: ChromaDBCollection | str,
    *,
    bucket: str,
    s3_client: S3Client | None = None,
    dimension: int = EMBEDDING_DIMENSION,
    work_dir: Path | None = None,
    reader: DeltaReader | None = None,
    keep: bool = False,
) -> Iterator[FetchedDeltas[MergeTarget]]:
    """The fetch stage: the targets' deltas, downloaded into a temporary directory under
    ``work_dir`` (deleted at exit) and read as they are merged; ``keep`` them for a second
    sink (``FetchedDeltas``)."""
    with tempfile.TemporaryDirectory(prefix="merge-", dir=work_dir) as tmp:
        fetch = DeltaFetcher(
            ChromaDBCollection(collection).value,
            bucket=bucket,
            s3_client=s3_client or aws_client("s3"),
            dimension=dimension,
            work_dir=Path(tmp),
            reader=reader or shared_delta_reader(),
        )
        yield FetchedDeltas(targets, fetch, keep=keep)


def merge_fetched(
    client: ChromaClient,
    collection: ChromaDBCollection,
    deltas: FetchedDeltas[MergeTarget],
    logger: OperationLogger,
) -> list[RunMergeResult]:
    """Merge the runs of ``deltas`` (fetched by ``fetch_deltas``) into ``client``'s
    collection, all in as few chunked upserts as possible; every id written is read back."""
    name = collection.value
    snapshot = client.get_or_create_collection(name)
    results: list[RunMergeResult] = []
    batch = _UpsertBatch(client, snapshot)
    held = _HeldRuns(snapshot, name, frozenset(t.run.run_id for t in deltas.targets))
    for target, fetched, next_ready in deltas:
        run = target.run
        result = RunMergeResult(
            run.run_id,
            run.image_id,
            run.receipt_id,
            collection,
            was_completed=run.state(name) is CompactionState.COMPLETED,
        )
        results.append(result)
        if isinstance(fetched, Exception):
            detail = f"{type(fetched).__name__}: {fetched}"
            result.error = detail if run.run_id in detail else f"run {run.run_id}: {detail}"
            logger.info("delta rejected", extra={"run_id": run.run_id, "error": result.error})
            continue
        _add_run(batch, held, result, target, fetched)
        if batch.size >= client.max_batch_size or (batch.size >= FLUSH_RECORDS and not next_ready):
            batch.flush()
    batch.flush()
    batch.verify()
    _log_merged(logger, results)
    return results


def _log_merged(logger: OperationLogger, results: list[RunMergeResult]) -> None:
    for result in results:
        if result.error is None:
            logger.info(
                "delta merged",
                extra={
                    "run_id": result.run_id,
                    "image_id": result.image_id,
                    "receipt_id": result.receipt_id,
                    "collection": result.collection.value,
                    "merged_vectors": result.merged_vectors,
                    "dropped_vectors": result.dropped_vectors,
                    "held_by_newer_runs": result.held_by_newer,
                },
            )


def _add_run(
    batch: _UpsertBatch,
    held: _HeldRuns,
    result: RunMergeResult,
    target: MergeTarget,
    records: list[DeltaRecord],
) -> None:
    """Queue the run's records whose rows exist and that no newer run's vector holds."""
    run, rows, collection = target.run, target.rows, result.collection.value
    live = live_record_ids(rows, collection)
    wanted = [record for record in records if record.id in live]
    result.dropped_vectors = len(records) - len(wanted)
    held.load([record.id for record in wanted])
    labels = label_metadata_by_record(rows.labels) if collection == "words" else None
    order = run.order_key
    holders = held.holders(rows.runs)
    for record in wanted:
        if not held.accepts(record.id, order, holders):
            result.held_by_newer += 1
            continue
        if held.orders[record.id] == order:
            # Already holds this run's vector (a redelivery, a backfill re-merge): writing
            # it again changes nothing, but any write makes the cycle publish a version,
            # and a few such versions would push the rollback targets out of retention.
            continue
        key = parse_vector_id(record.id, collection)
        text = record.metadata.get("text")
        text = text if isinstance(text, str) else (record.document or "")
        metadata = record_metadata(key, text, rows, labels, run)
        batch.add(record, text, held.take(record.id, order, metadata))
        result.merged_vectors += 1
