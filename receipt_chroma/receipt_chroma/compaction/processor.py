"""Applying one batch of messages to one collection (SPEC §5.2 step 3 and §5.4).

Messages are only triggers. For every receipt they name, the current rows are read with
one strongly consistent query, and the receipt's records are brought to the state those
rows define: merge the newest eligible run's delta, write merchant and label keys, delete
records whose rows are gone. Any permutation of the messages, with duplicates, therefore
gives the same collection. An error for one receipt fails that receipt's messages only.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from receipt_chroma.compaction.compaction_run import (
    MergeTarget,
    live_record_ids,
    merge_compaction_deltas,
)
from receipt_chroma.compaction.models import (
    CollectionUpdateResult,
    MessageFailure,
    ReceiptKey,
    RunMergeResult,
)
from receipt_chroma.compaction.operations import (
    OperationLogger,
    delete_embeddings,
    existing_ids,
    receipt_record_ids,
    write_receipt_state,
)
from receipt_chroma.constants import DEFAULT_EMBEDDING_DIMENSION
from receipt_chroma.data.chroma_client import ChromaClient
from receipt_chroma.ids import line_vector_id, word_vector_id
from receipt_dynamo.constants import ChromaDBCollection, CompactionState, EntityType
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.entities import CompactionRun
from receipt_dynamo.models import ReceiptRows
from receipt_dynamo_stream.models import MessageSource, StreamMessage

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

_LOGGER = logging.getLogger(__name__)
_STATE_TYPES = {EntityType.RECEIPT_METADATA, EntityType.RECEIPT_WORD_LABEL}


@dataclass
class _ReceiptWork:
    key: ReceiptKey
    message_ids: list[str] = field(default_factory=list)
    runs: dict[str, list[tuple[str, StreamMessage]]] = field(default_factory=dict)
    writes_state: bool = False
    removed_ids: set[str] = field(default_factory=set)
    rows: ReceiptRows | None = None


def _receipt_key(message: StreamMessage) -> ReceiptKey:
    data = message.entity_data
    image_id, receipt_id = data.get("image_id"), data.get("receipt_id")
    if (
        not isinstance(image_id, str)
        or isinstance(receipt_id, bool)
        or not isinstance(receipt_id, int)
    ):
        raise ValueError(f"entity_data needs image_id and receipt_id, got {data!r}")
    return image_id, receipt_id


def _removed_record_id(message: StreamMessage, kind: ChromaDBCollection) -> str | None:
    """The record id a line/word REMOVE names in this collection, if any."""
    data = message.entity_data
    if message.entity_type is EntityType.RECEIPT_LINE and kind is ChromaDBCollection.LINES:
        return line_vector_id(data["image_id"], data["receipt_id"], int(data["line_id"]))
    if message.entity_type is EntityType.RECEIPT_WORD and kind is ChromaDBCollection.WORDS:
        return word_vector_id(
            data["image_id"], data["receipt_id"], int(data["line_id"]), int(data["word_id"])
        )
    return None


def plan_runs(
    work: _ReceiptWork, rows: ReceiptRows, collection: ChromaDBCollection
) -> tuple[MergeTarget | None, list[RunMergeResult]]:
    """Choose the run to merge for one receipt; the others are skipped with a reason.

    A run superseded by a newer COMPLETED run (or by a newer run merged now) is completed
    without merging; a COMPLETED run is merged again only for a backfill message.
    """
    by_id = {run.run_id: run for run in rows.runs}
    completed = [r for r in rows.runs if r.state(collection) is CompactionState.COMPLETED]
    newest_completed = max(completed, key=lambda r: r.order_key, default=None)
    skipped: list[RunMergeResult] = []
    eligible: list[CompactionRun] = []
    for run_id, messages in work.runs.items():
        run = by_id.get(run_id)
        result = RunMergeResult(run_id, work.key[0], work.key[1], collection)
        if run is None:
            result.skipped_reason = "run row no longer exists"
        elif newest_completed is not None and newest_completed.order_key > run.order_key:
            result.superseded_by = newest_completed.run_id
            result.skipped_reason = f"superseded by completed run {newest_completed.run_id}"
        elif run.state(collection) is CompactionState.COMPLETED and not any(
            m.source is MessageSource.BACKFILL for _, m in messages
        ):
            result.skipped_reason = "already completed"
        else:
            eligible.append(run)
            continue
        skipped.append(result)
    if not eligible:
        return None, skipped
    newest = max(eligible, key=lambda r: r.order_key)
    for run in eligible:
        if run is not newest:
            result = RunMergeResult(run.run_id, work.key[0], work.key[1], collection)
            result.superseded_by = newest.run_id
            result.skipped_reason = f"superseded by run {newest.run_id} merged in this batch"
            skipped.append(result)
    return MergeTarget(newest, rows), skipped


def process_collection_updates(
    messages: Sequence[tuple[str, StreamMessage]],
    collection: ChromaDBCollection | str,
    client: ChromaClient,
    dynamo_client: DynamoClient,
    *,
    bucket: str | None = None,
    s3_client: S3Client | None = None,
    dimension: int = DEFAULT_EMBEDDING_DIMENSION,
    work_dir: Path | None = None,
    logger: OperationLogger = _LOGGER,
) -> CollectionUpdateResult:
    """Apply ``(message_id, message)`` pairs to ``collection``: merges, metadata, labels,
    deletions, in that order. Returns which messages failed and why."""
    kind = ChromaDBCollection(collection)
    result = CollectionUpdateResult(collection=kind)
    snapshot = client.get_or_create_collection(kind.value)
    works: dict[ReceiptKey, _ReceiptWork] = {}
    for message_id, message in messages:
        if message.collection is not kind:
            result.failures.append(
                MessageFailure(
                    message_id, f"message for {message.collection.value} sent to {kind.value}"
                )
            )
            continue
        try:
            key = _receipt_key(message)
            removed = _removed_record_id(message, kind)
        except (KeyError, TypeError, ValueError) as error:
            result.failures.append(MessageFailure(message_id, f"invalid entity_data: {error}"))
            continue
        work = works.setdefault(key, _ReceiptWork(key))
        work.message_ids.append(message_id)
        if message.entity_type is EntityType.COMPACTION_RUN:
            run_id = message.entity_data.get("run_id")
            if not isinstance(run_id, str) or not run_id:
                work.message_ids.pop()
                result.failures.append(MessageFailure(message_id, "COMPACTION_RUN without run_id"))
                continue
            work.runs.setdefault(run_id, []).append((message_id, message))
        if message.entity_type in _STATE_TYPES:
            work.writes_state = True
        if removed is not None:
            work.removed_ids.add(removed)

    failed_receipts: dict[ReceiptKey, str] = {}
    targets: list[MergeTarget] = []
    run_messages: dict[str, list[str]] = defaultdict(list)
    for key, work in sorted(works.items()):
        try:
            work.rows = dynamo_client.get_receipt_rows(*key)
        except Exception as error:
            failed_receipts[key] = f"reading rows failed: {type(error).__name__}: {error}"
            continue
        for run_id, pairs in work.runs.items():
            run_messages[run_id] += [message_id for message_id, _ in pairs]
        if work.runs:
            target, skipped = plan_runs(work, work.rows, kind)
            result.runs += skipped
            if target is not None:
                targets.append(target)

    if targets:
        if bucket is None:
            raise ValueError("bucket is required to merge deltas")
        try:
            merged = merge_compaction_deltas(
                client,
                kind,
                targets,
                bucket=bucket,
                logger=logger,
                s3_client=s3_client,
                dimension=dimension,
                work_dir=work_dir,
            )
        except Exception as error:
            reason = f"merge failed: {type(error).__name__}: {error}"
            merged = [
                RunMergeResult(t.run.run_id, t.run.image_id, t.run.receipt_id, kind, error=reason)
                for t in targets
            ]
        result.runs += merged
        for run_result in merged:
            if run_result.error is not None:
                result.failures += [
                    MessageFailure(m, f"run {run_result.run_id}: {run_result.error}")
                    for m in run_messages[run_result.run_id]
                ]

    for key, work in sorted(works.items()):
        if key in failed_receipts or work.rows is None:
            continue
        try:
            _reconcile(
                snapshot,
                work,
                work.rows,
                result=result,
                logger=logger,
            )
        except Exception as error:
            failed_receipts[key] = f"{type(error).__name__}: {error}"
    for key, reason in failed_receipts.items():
        result.failures += [MessageFailure(m, reason) for m in works[key].message_ids]
    result.receipts = len(works)
    return result


def _reconcile(
    snapshot: Any,
    work: _ReceiptWork,
    rows: ReceiptRows,
    *,
    result: CollectionUpdateResult,
    logger: OperationLogger,
) -> None:
    """Delete records whose rows are gone; write the receipt's keys onto the rest.

    Without the receipt row every record of the receipt goes (found by a metadata query).
    Otherwise only ids are looked up: the live ones and those named by removals, so the
    cost does not grow with the snapshot.
    """
    image_id, receipt_id = work.key
    kind = result.collection
    live = live_record_ids(rows, kind)
    if rows.exists:
        current = existing_ids(snapshot, live | work.removed_ids)
    else:
        current = receipt_record_ids(snapshot, image_id, receipt_id)
    gone = [i for i in current if i not in live]
    kept = [i for i in current if i in live]
    if work.writes_state and kept:
        labels = rows.labels if kind is ChromaDBCollection.WORDS else None
        written = write_receipt_state(
            snapshot,
            image_id,
            receipt_id,
            kept,
            metadata=rows.metadata,
            labels=labels,
            logger=logger,
        )
        result.records_updated += written
        result.metadata_updates += written
        if labels is not None:
            result.label_updates += written
    if gone:
        result.records_deleted += delete_embeddings(
            snapshot, gone, logger, image_id=image_id, receipt_id=receipt_id
        )


def record_run_outcomes(dynamo_client: DynamoClient, result: CollectionUpdateResult) -> None:
    """Mark merged and superseded runs COMPLETED and failed runs FAILED (after publishing)."""
    for run in result.runs:
        if run.error is not None:
            dynamo_client.mark_compaction_run_failed(
                run.image_id, run.receipt_id, run.run_id, run.collection, run.error
            )
        elif run.completes:
            dynamo_client.mark_compaction_run_completed(
                run.image_id, run.receipt_id, run.run_id, run.collection, run.merged_vectors
            )
