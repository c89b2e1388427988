"""The plan stage of a cycle (contract §5.2 step 3, §5.4): what a batch asks of each
receipt, the receipt's rows, and the runs to merge.

Messages are only triggers. For every receipt they name, the current rows are read with
one strongly consistent query (``READ_CONCURRENCY`` receipts at a time, ``concurrency``:
the reads are independent round trips, and a batch can name ~60 receipts); the runs the
messages name are then chosen for merging (each marked PROCESSING, on the cycle's own
thread, one receipt after another) or skipped. A plan is read once and applied to every
sink of the cycle (``apply_plan``): with two sinks, the rows are read and the runs marked
once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from receipt_chroma.compaction.compaction_run import MergeTarget
from receipt_chroma.compaction.concurrency import read_concurrently
from receipt_chroma.compaction.models import (
    CollectionUpdateResult,
    MessageFailure,
    ReceiptKey,
    RunMergeResult,
)
from receipt_chroma.compaction.operations import OperationLogger
from receipt_chroma.ids import line_vector_id, word_vector_id
from receipt_dynamo.constants import ChromaDBCollection, CompactionState, EntityType
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.keys import compaction_run_sk
from receipt_dynamo.receipt_state import ReceiptState
from receipt_dynamo_stream.change_rules import STATE_TYPES
from receipt_dynamo_stream.models import MessageSource, StreamMessage

_LOGGER = logging.getLogger(__name__)


@dataclass
class ReceiptWork:
    """What the batch asks of one receipt, and its rows as read for this batch."""

    key: ReceiptKey
    message_ids: list[str] = field(default_factory=list)
    runs: dict[str, list[StreamMessage]] = field(default_factory=dict)
    run_message_ids: dict[str, list[str]] = field(default_factory=dict)
    writes_state: bool = False
    receipt_removed: bool = False
    removed_ids: set[str] = field(default_factory=set)
    rows: ReceiptState | None = None

    def run_failures(self, run_id: str, why: str) -> list[MessageFailure]:
        """The failures of the messages that name ``run_id``."""
        return [MessageFailure(m, f"run {run_id}: {why}") for m in self.run_message_ids[run_id]]


@dataclass(frozen=True)
class BatchPlan:
    """The plan stage's result: the receipts whose rows were read, the runs to merge (each
    marked PROCESSING), and what the plan already knows failed or was skipped."""

    collection: ChromaDBCollection
    receipts: dict[ReceiptKey, ReceiptWork]
    targets: tuple[MergeTarget, ...]
    failures: tuple[MessageFailure, ...]
    skipped_runs: tuple[RunMergeResult, ...]
    invalid_rows: int
    receipt_count: int

    def run_failures(self, run_id: str, why: str) -> list[MessageFailure]:
        """The failures of every message of the batch that names ``run_id``."""
        return [
            failure
            for work in self.receipts.values()
            if run_id in work.run_message_ids
            for failure in work.run_failures(run_id, why)
        ]

    def new_result(self) -> CollectionUpdateResult:
        """A sink's result before anything is applied: the plan's failures and skips."""
        return CollectionUpdateResult(
            collection=self.collection,
            failures=list(self.failures),
            runs=[replace(run) for run in self.skipped_runs],
            receipts=self.receipt_count,
            invalid_rows=self.invalid_rows,
        )


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
    failures: list[MessageFailure],
) -> dict[ReceiptKey, ReceiptWork]:
    """The batch per receipt; messages that cannot be read fail here."""
    works: dict[ReceiptKey, ReceiptWork] = {}
    for message_id, message in messages:
        if message.collection is not kind:
            reason = f"message for {message.collection.value} sent to {kind.value}"
            failures.append(MessageFailure(message_id, reason))
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
            failures.append(MessageFailure(message_id, f"invalid entity_data: {error}"))
            continue
        work = works.setdefault(key, ReceiptWork(key))
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
    work: ReceiptWork, dynamo_client: DynamoClient, logger: OperationLogger
) -> str | None:
    """One strongly consistent read of the receipt's rows; the error, if it failed.
    Invalid rows are logged."""
    try:
        work.rows = dynamo_client.get_receipt_state(*work.key)
    except Exception as error:
        return f"reading rows failed: {type(error).__name__}: {error}"
    for row in work.rows.invalid_rows:
        logger.info(
            "invalid table row",
            extra={"pk": row.pk, "sk": row.sk, "type": row.entity_type, "reason": row.reason},
        )
    return None


def _read_every_receipt(
    works: Mapping[ReceiptKey, ReceiptWork], dynamo_client: DynamoClient, logger: OperationLogger
) -> dict[ReceiptKey, str | None]:
    """``_read_rows`` of every receipt, ``READ_CONCURRENCY`` at a time."""
    keys = sorted(works)
    errors = read_concurrently(
        lambda key: _read_rows(works[key], dynamo_client, logger),
        keys,
        thread_name_prefix="plan-read",
    )
    return dict(zip(keys, errors, strict=True))


def _plan_runs(
    work: ReceiptWork,
    kind: ChromaDBCollection,
    dynamo_client: DynamoClient,
    failures: list[MessageFailure],
    skipped: list[RunMergeResult],
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
        skip = RunMergeResult(run_id, work.key[0], work.key[1], kind)
        if run is None:
            reason = invalid.get(compaction_run_sk(work.key[1], run_id))
            if reason is not None:
                failures += work.run_failures(run_id, f"invalid run row: {reason}")
                continue
            skip.skipped_reason = "run row no longer exists"
        elif run.state(kind) is CompactionState.COMPLETED:
            if any(m.source is MessageSource.BACKFILL for m in messages):
                targets.append(MergeTarget(run, rows))
                continue
            skip.skipped_reason = "already completed"
        else:
            try:
                dynamo_client.mark_compaction_run_started(*work.key, run_id, kind)
            except Exception as error:
                failures += work.run_failures(run_id, f"marking PROCESSING failed: {error}")
                continue
            targets.append(MergeTarget(run, rows))
            continue
        skipped.append(skip)
    return targets


def plan_batch(
    messages: Sequence[tuple[str, StreamMessage]],
    collection: ChromaDBCollection | str,
    dynamo_client: DynamoClient,
    logger: OperationLogger = _LOGGER,
) -> BatchPlan:
    """Group ``(message_id, message)`` pairs by receipt, read each receipt's rows and
    choose the runs to merge. A receipt whose rows cannot be read fails its messages."""
    kind = ChromaDBCollection(collection)
    failures: list[MessageFailure] = []
    skipped: list[RunMergeResult] = []
    works = _group(messages, kind, failures)
    receipts: dict[ReceiptKey, ReceiptWork] = {}
    targets: list[MergeTarget] = []
    read_errors = _read_every_receipt(works, dynamo_client, logger)
    for key, work in sorted(works.items()):
        error = read_errors[key]
        if error is not None:
            failures += [MessageFailure(m, error) for m in work.message_ids]
            continue
        receipts[key] = work
        targets += _plan_runs(work, kind, dynamo_client, failures, skipped)
    return BatchPlan(
        collection=kind,
        receipts=receipts,
        targets=tuple(targets),
        failures=tuple(failures),
        skipped_runs=tuple(skipped),
        invalid_rows=sum(
            len(work.rows.invalid_rows) for work in receipts.values() if work.rows is not None
        ),
        receipt_count=len(works),
    )
