"""Applying one batch of messages to one collection (contract §5.2 step 3 and §5.4).

Messages are only triggers. For every receipt they name, the current rows are read with
one strongly consistent query, and the records the messages name are brought to the
state those rows define: merge each named run's delta (provenance decides which vector
a record keeps), write the merchant and label keys, delete records whose rows are gone.
Any permutation of the messages, with duplicates, therefore gives the same collection.
An error for one receipt fails that receipt's messages only; a failed merge fails that
run's messages only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from receipt_chroma.chroma_client import ChromaClient, ClientCollection
from receipt_chroma.compaction.collection_reads import receipt_record_ids
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
    apply_receipt_keys,
    delete_embeddings,
)
from receipt_chroma.compaction.record_keys import merchant_metadata
from receipt_chroma.exceptions import OperationError
from receipt_chroma.ids import line_vector_id, word_vector_id
from receipt_chroma.settings import EMBEDDING_DIMENSION
from receipt_dynamo.constants import ChromaDBCollection, CompactionState, EntityType
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.exceptions import EntityNotFoundError, LeaseLostError
from receipt_dynamo.keys import compaction_run_sk
from receipt_dynamo.receipt_state import ReceiptState
from receipt_dynamo_stream.change_rules import STATE_TYPES
from receipt_dynamo_stream.models import MessageSource, StreamMessage

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

_LOGGER = logging.getLogger(__name__)


@dataclass
class _ReceiptWork:
    """What the batch asks of one receipt."""

    key: ReceiptKey
    message_ids: list[str] = field(default_factory=list)
    runs: dict[str, list[StreamMessage]] = field(default_factory=dict)
    run_message_ids: dict[str, list[str]] = field(default_factory=dict)
    writes_state: bool = False
    receipt_removed: bool = False
    removed_ids: set[str] = field(default_factory=set)
    rows: ReceiptState | None = None
    error: str | None = None


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


def _group(
    messages: Sequence[tuple[str, StreamMessage]],
    kind: ChromaDBCollection,
    result: CollectionUpdateResult,
) -> dict[ReceiptKey, _ReceiptWork]:
    """The batch per receipt; messages that cannot be read fail here."""
    works: dict[ReceiptKey, _ReceiptWork] = {}
    for message_id, message in messages:
        if message.collection is not kind:
            reason = f"message for {message.collection.value} sent to {kind.value}"
            result.failures.append(MessageFailure(message_id, reason))
            continue
        run_id = message.entity_data.get("run_id")
        try:
            key = _receipt_key(message)
            removed = _removed_record_id(message, kind)
            if message.entity_type is EntityType.COMPACTION_RUN and (
                not isinstance(run_id, str) or not run_id
            ):
                raise ValueError("COMPACTION_RUN without run_id")
        except (KeyError, TypeError, ValueError) as error:
            result.failures.append(MessageFailure(message_id, f"invalid entity_data: {error}"))
            continue
        work = works.setdefault(key, _ReceiptWork(key))
        work.message_ids.append(message_id)
        if message.entity_type is EntityType.COMPACTION_RUN:
            assert isinstance(run_id, str)
            work.runs.setdefault(run_id, []).append(message)
            work.run_message_ids.setdefault(run_id, []).append(message_id)
        work.writes_state |= message.entity_type in STATE_TYPES
        work.receipt_removed |= message.entity_type is EntityType.RECEIPT
        if removed is not None:
            work.removed_ids.add(removed)
    return works


def _read_rows(
    works: dict[ReceiptKey, _ReceiptWork],
    dynamo_client: DynamoClient,
    result: CollectionUpdateResult,
    logger: OperationLogger,
) -> None:
    """One strongly consistent read per receipt; invalid rows are logged and counted."""
    for key, work in sorted(works.items()):
        try:
            work.rows = dynamo_client.get_receipt_state(*key)
        except Exception as error:
            work.error = f"reading rows failed: {type(error).__name__}: {error}"
            continue
        for row in work.rows.invalid_rows:
            logger.info(
                "invalid table row",
                extra={"pk": row.pk, "sk": row.sk, "type": row.entity_type, "reason": row.reason},
            )
        result.invalid_rows += len(work.rows.invalid_rows)


def _fail_run(result: CollectionUpdateResult, work: _ReceiptWork, run_id: str, why: str) -> None:
    result.failures += [
        MessageFailure(m, f"run {run_id}: {why}") for m in work.run_message_ids[run_id]
    ]


def _plan_runs(
    work: _ReceiptWork,
    kind: ChromaDBCollection,
    result: CollectionUpdateResult,
    dynamo_client: DynamoClient,
) -> list[MergeTarget]:
    """The runs of one receipt to merge now, each marked PROCESSING.

    Every named run is merged on its own merits — none is skipped on account of another —
    except one whose row is gone (nothing to merge) and one already COMPLETED in a
    published version (merged again only for a backfill message).
    """
    rows = work.rows
    assert rows is not None
    by_id = {run.run_id: run for run in rows.runs}
    invalid = {row.sk: row.reason for row in rows.invalid_rows}
    targets: list[MergeTarget] = []
    for run_id, messages in work.runs.items():
        run = by_id.get(run_id)
        skipped = RunMergeResult(run_id, work.key[0], work.key[1], kind)
        if run is None:
            reason = invalid.get(compaction_run_sk(work.key[1], run_id))
            if reason is not None:
                _fail_run(result, work, run_id, f"invalid run row: {reason}")
                continue
            skipped.skipped_reason = "run row no longer exists"
        elif run.state(kind) is CompactionState.COMPLETED:
            if any(m.source is MessageSource.BACKFILL for m in messages):
                targets.append(MergeTarget(run, rows))
                continue
            skipped.skipped_reason = "already completed"
        else:
            try:
                dynamo_client.mark_compaction_run_started(*work.key, run_id, kind)
            except Exception as error:
                _fail_run(result, work, run_id, f"marking PROCESSING failed: {error}")
                continue
            targets.append(MergeTarget(run, rows))
            continue
        result.runs.append(skipped)
    return targets


def _reconcile(
    snapshot: ClientCollection,
    work: _ReceiptWork,
    result: CollectionUpdateResult,
    logger: OperationLogger,
) -> None:
    """Write the receipt's keys onto its live records; delete what REMOVEs name whose rows
    are gone — never a record whose rows exist."""
    rows = work.rows
    assert rows is not None
    image_id, receipt_id = work.key
    kind = result.collection
    live = live_record_ids(rows, kind)
    if work.writes_state and live:
        done = apply_receipt_keys(
            snapshot,
            image_id,
            receipt_id,
            merchant=merchant_metadata(rows.metadata),
            labels=rows.labels if kind is ChromaDBCollection.WORDS else None,
            logger=logger,
            record_ids=live,
        )
        result.metadata_updates += done.merchant_changed
        result.label_updates += done.labels_changed
        result.records_updated += done.records
    named = (
        set(receipt_record_ids(snapshot, image_id, receipt_id))
        if work.receipt_removed
        else work.removed_ids
    )
    gone = sorted(named - live)
    if gone:
        result.records_deleted += delete_embeddings(
            snapshot, gone, logger, image_id=image_id, receipt_id=receipt_id
        )


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
    """Apply ``(message_id, message)`` pairs to ``collection``: merges, metadata, labels,
    deletions, in that order. Returns which messages failed and why."""
    kind = ChromaDBCollection(collection)
    result = CollectionUpdateResult(collection=kind)
    snapshot = client.get_or_create_collection(kind.value)
    works = _group(messages, kind, result)
    _read_rows(works, dynamo_client, result, logger)
    ready = [work for _, work in sorted(works.items()) if work.error is None]
    targets = [t for work in ready for t in _plan_runs(work, kind, result, dynamo_client)]
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
        except LeaseLostError:
            raise  # the cycle fails as lease_lost: nothing more is written, nothing marked
        except Exception as error:
            # A write into the collection failed mid-merge: it may hold part of runs that
            # did not merge, whose provenance would then hold back older runs. Nothing of
            # this batch may be published; every message is retried.
            runs = ", ".join(sorted({t.run.run_id for t in targets}))
            raise OperationError(
                f"merge of runs {runs} failed: {type(error).__name__}: {error}"
            ) from error
        result.runs += merged
        for run_result in merged:
            if run_result.error is not None:
                work = works[(run_result.image_id, run_result.receipt_id)]
                _fail_run(result, work, run_result.run_id, run_result.error)
    for work in ready:
        try:
            _reconcile(snapshot, work, result, logger)
        except Exception as error:
            work.error = f"{type(error).__name__}: {error}"
    for work in works.values():
        if work.error is not None:
            result.failures += [MessageFailure(m, work.error) for m in work.message_ids]
    result.receipts = len(works)
    return result


def record_run_outcomes(dynamo_client: DynamoClient, result: CollectionUpdateResult) -> list[str]:
    """Mark merged runs COMPLETED and failed runs FAILED — only once the batch's effect
    is published (or, for a cycle that wrote nothing, is already in the published
    version). Each run is marked on its own: a run whose row was deleted meanwhile is
    skipped, and an error marking one run never leaves the others unmarked. Returns the
    errors, one line per run that could not be marked."""
    errors: list[str] = []
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
            errors.append(f"run {run.run_id}: {type(error).__name__}: {error}")
    return errors
