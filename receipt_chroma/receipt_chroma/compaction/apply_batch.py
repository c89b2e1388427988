"""The apply stage (contract §5.2 step 3 and §5.4): a batch's plan applied to one sink's
collection, and the run marks once its effect is durable.

The records the messages name are brought to the state the rows read by the plan define
(``compaction.plan``): merge each planned run's delta (provenance decides which vector a
record keeps), write the merchant and label keys, delete records whose rows are gone. Any
permutation of the messages, with duplicates, therefore gives the same collection. An
error for one receipt fails that receipt's messages only; a failed merge fails that run's
messages only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from receipt_chroma.chroma_client import ChromaClient, ClientCollection
from receipt_chroma.compaction.collection_reads import existing_ids, receipt_record_ids
from receipt_chroma.compaction.compaction_run import (
    MergeTarget,
    fetch_deltas,
    live_record_ids,
    merge_fetched,
)
from receipt_chroma.compaction.concurrency import read_concurrently
from receipt_chroma.compaction.deltas.fetch import FetchedDeltas
from receipt_chroma.compaction.models import CollectionUpdateResult, MessageFailure
from receipt_chroma.compaction.operations import (
    OperationLogger,
    ReceiptKeyWrites,
    delete_records,
    guard_receipt,
    log_deletion,
    receipt_key_writes,
    update_metadatas,
)
from receipt_chroma.compaction.plan import BatchPlan, ReceiptWork, plan_batch
from receipt_chroma.compaction.record_keys import merchant_metadata
from receipt_chroma.exceptions import OperationError
from receipt_dynamo.constants import ChromaDBCollection
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.exceptions import EntityNotFoundError, LeaseLostError
from receipt_dynamo_stream.compactor_defaults import EMBEDDING_DIMENSION
from receipt_dynamo_stream.models import StreamMessage

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

_LOGGER = logging.getLogger(__name__)


@dataclass
class _ReceiptWrites:
    """What one receipt's messages need written, read before anything is written."""

    work: ReceiptWork
    keys: ReceiptKeyWrites | None = None
    deletes: list[str] = field(default_factory=list)

    def write(self, collection: Any) -> None:
        image_id, receipt_id = self.work.key
        if self.keys is not None:
            writes = self.keys.writes
            guard_receipt(
                "metadata update",
                image_id,
                receipt_id,
                lambda: update_metadatas(collection, writes),
            )
        guard_receipt(
            "deletion", image_id, receipt_id, lambda: delete_records(collection, self.deletes)
        )


def _receipt_writes(
    snapshot: ClientCollection, work: ReceiptWork, kind: ChromaDBCollection
) -> _ReceiptWrites:
    """The receipt's keys onto its live records, and the deletion of what REMOVEs name
    whose rows are gone — never a record whose rows exist. Reads only."""
    rows = work.rows
    assert rows is not None
    image_id, receipt_id = work.key
    live = live_record_ids(rows, kind)
    planned = _ReceiptWrites(work)
    if work.writes_state and live:
        planned.keys = receipt_key_writes(
            snapshot,
            image_id,
            receipt_id,
            merchant=merchant_metadata(rows.metadata),
            labels=rows.labels if kind is ChromaDBCollection.WORDS else None,
            record_ids=live,
        )
    named = (
        set(
            guard_receipt(
                "deletion",
                image_id,
                receipt_id,
                lambda: receipt_record_ids(snapshot, image_id, receipt_id),
            )
        )
        if work.receipt_removed
        else work.removed_ids
    )
    gone = sorted(named - live)
    if gone:
        planned.deletes = guard_receipt(
            "deletion", image_id, receipt_id, lambda: existing_ids(snapshot, gone)
        )
    return planned


def _write_combined(snapshot: ClientCollection, planned: list[_ReceiptWrites]) -> bool:
    """Every receipt's keys in one update and every deletion in one delete; False when a
    call failed, or when two receipts name one record (§4 ids name their receipt, but one
    update would keep only the last receipt's keys), so each receipt is written alone."""
    keys: dict[str, dict[str, Any]] = {}
    for receipt in planned:
        if receipt.keys is not None:
            if keys.keys() & receipt.keys.writes.keys():
                return False
            keys.update(receipt.keys.writes)
    try:
        update_metadatas(snapshot, keys)
        delete_records(snapshot, [i for receipt in planned for i in receipt.deletes])
    except Exception:  # each receipt is written again alone, its error then reported
        return False
    return True


def _write_receipts(
    snapshot: ClientCollection,
    planned: list[_ReceiptWrites],
    result: CollectionUpdateResult,
    logger: OperationLogger,
) -> None:
    """Every receipt's key writes in one chunked update, then every deletion in one
    chunked delete. chromadb re-reads its log back to the last HNSW persist on every write
    call — with the flush policy's raised threshold, thousands of entries — so the calls
    per batch, not per receipt, set the apply's cost (docs/architecture.md). The receipts'
    record sets are disjoint, so the order within the batch changes nothing. When a
    combined call fails, each receipt is written alone (the writes are idempotent), so an
    error fails only the messages of the receipt it belongs to."""
    if _write_combined(snapshot, planned):
        written = planned
    else:
        written = []
        for receipt in planned:
            try:
                receipt.write(snapshot)
                written.append(receipt)
            except Exception as error:
                reason = f"{type(error).__name__}: {error}"
                result.failures += [MessageFailure(m, reason) for m in receipt.work.message_ids]
    for receipt in written:
        image_id, receipt_id = receipt.work.key
        if receipt.keys is not None:
            done = receipt.keys.done
            result.metadata_updates += done.merchant_changed
            result.label_updates += done.labels_changed
            result.records_updated += done.records
            receipt.keys.log(logger, snapshot)
        if receipt.deletes:
            result.records_deleted += len(receipt.deletes)
            log_deletion(
                logger,
                snapshot,
                image_id=image_id,
                receipt_id=receipt_id,
                records=len(receipt.deletes),
            )


def apply_plan(
    plan: BatchPlan,
    client: ChromaClient,
    deltas: FetchedDeltas[MergeTarget] | None,
    logger: OperationLogger = _LOGGER,
) -> CollectionUpdateResult:
    """The apply stage: bring the plan's records to the state its rows define, in one
    sink's collection — merges, then merchant and label keys, then deletions. Returns
    which messages failed and why. ``deltas`` (the fetch stage's result) is needed when
    the plan merges runs."""
    result = plan.new_result()
    snapshot = client.get_or_create_collection(plan.collection.value)
    if plan.targets:
        if deltas is None:
            raise ValueError("the plan merges runs: their fetched deltas are needed")
        try:
            merged = merge_fetched(client, plan.collection, deltas, logger)
        except LeaseLostError:
            raise  # the cycle fails as lease_lost: nothing more is written, nothing marked
        except Exception as error:
            # A write into the collection failed mid-merge: it may hold part of runs that
            # did not merge, whose provenance would then hold back older runs. Nothing of
            # this batch may be published; every message is retried.
            runs = ", ".join(sorted({t.run.run_id for t in plan.targets}))
            raise OperationError(
                f"merge of runs {runs} failed: {type(error).__name__}: {error}"
            ) from error
        result.runs += merged
        for run in merged:
            if run.error is not None:
                work = plan.receipts[(run.image_id, run.receipt_id)]
                result.failures += work.run_failures(run.run_id, run.error)
    planned: list[_ReceiptWrites] = []
    for work, outcome in _every_receipts_writes(snapshot, plan):
        if isinstance(outcome, _ReceiptWrites):
            planned.append(outcome)
        else:
            reason = f"{type(outcome).__name__}: {outcome}"
            result.failures += [MessageFailure(m, reason) for m in work.message_ids]
    _write_receipts(snapshot, planned, result, logger)
    return result


def _every_receipts_writes(
    snapshot: ClientCollection, plan: BatchPlan
) -> list[tuple[ReceiptWork, _ReceiptWrites | Exception]]:
    """``_receipt_writes`` of every receipt of the plan, in the plan's order, with the
    error of each that failed; ``READ_CONCURRENCY`` at a time (they only read)."""
    works = list(plan.receipts.values())

    def read(work: ReceiptWork) -> _ReceiptWrites | Exception:
        try:
            return _receipt_writes(snapshot, work, plan.collection)
        except Exception as error:
            return error

    outcomes = read_concurrently(read, works, thread_name_prefix="apply-read")
    return list(zip(works, outcomes, strict=True))


def process_collection_updates(
    messages: Sequence[tuple[str, StreamMessage]],
    collection: ChromaDBCollection | str,
    client: ChromaClient,
    dynamo_client: DynamoClient,
    *,
    bucket: str | None = None,
    s3_client: S3Client | None = None,
    dimension: int = EMBEDDING_DIMENSION,
    work_dir: Path | None = None,
    logger: OperationLogger = _LOGGER,
) -> CollectionUpdateResult:
    """Plan, fetch and apply ``(message_id, message)`` pairs to one collection outside a
    cycle (tools, benchmarks): merges, metadata, labels, deletions, in that order.
    Returns which messages failed and why."""
    plan = plan_batch(messages, collection, dynamo_client, logger)
    if not plan.targets:
        return apply_plan(plan, client, None, logger)
    if bucket is None:
        raise ValueError("bucket is required to merge deltas")
    with fetch_deltas(
        plan.targets,
        plan.collection,
        bucket=bucket,
        s3_client=s3_client,
        dimension=dimension,
        work_dir=work_dir,
    ) as deltas:
        return apply_plan(plan, client, deltas, logger)


def record_run_outcomes(
    dynamo_client: DynamoClient, result: CollectionUpdateResult
) -> dict[str, str]:
    """Mark merged runs COMPLETED and failed runs FAILED — only once the batch's effect
    is published (or, for a cycle that wrote nothing, is already in the published
    version). Each run is marked on its own: a run whose row was deleted meanwhile is
    skipped, and an error marking one run never leaves the others unmarked. Returns the
    runs that could not be marked, with why (their messages are retried, and the retry
    marks them: a re-merge of a merged run writes nothing)."""
    unmarked: dict[str, str] = {}
    for run in result.runs:
        try:
            if run.error is not None and run.was_completed:
                continue  # a failed backfill re-merge: the published version still has it
            if run.error is not None:
                dynamo_client.mark_compaction_run_failed(
                    run.image_id, run.receipt_id, run.run_id, run.collection, run.error
                )
            elif run.merged:
                dynamo_client.mark_compaction_run_completed(
                    run.image_id, run.receipt_id, run.run_id, run.collection, run.merged_vectors
                )
        except EntityNotFoundError:
            continue  # the run's row is gone (its receipt was deleted): nothing to mark
        except Exception as error:
            unmarked[run.run_id] = f"{type(error).__name__}: {error}"
    return unmarked
