"""Early retry of the messages a compactor reports failed (contract §7 rev 3).

Before the handler reports a message failed, whatever the cause, its visibility timeout is
set to a jittered ``RETRY_VISIBILITY_SECONDS`` with ``ChangeMessageVisibilityBatch``, so it
comes back within minutes instead of after the queue's visibility timeout; one that keeps
failing reaches the DLQ after ``maxReceiveCount`` quick receives. Nothing here raises: a
message whose visibility could not be changed is logged and counted, and is still reported
failed (it then returns after the queue's visibility timeout).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from receipt_chroma.lambda_support.exceptions import QueueArnError
from receipt_chroma.lambda_support.models import EventLogger, QueueRecord, VisibilityReset

if TYPE_CHECKING:
    from types_boto3_sqs.client import SQSClient
    from types_boto3_sqs.type_defs import ChangeMessageVisibilityBatchRequestEntryTypeDef

_LOGGER = logging.getLogger(__name__)
SQS_BATCH_LIMIT = 10  # entries per ChangeMessageVisibilityBatch call
NOT_RESET = "visibility not reset"

# The SQS client of a region (the caller keeps one per region for its container).
SqsClientFor = Callable[[str], "SQSClient"]
# (message id, receipt handle) of one message to reset.
Pending = tuple[str, str]


def queue_url(event_source_arn: str, sqs_client: SqsClientFor) -> tuple[SQSClient, str]:
    """The client and URL of the queue ``arn:<partition>:sqs:<region>:<account>:<name>``.

    The URL is ``<the regional client's endpoint>/<account>/<name>`` — the form SQS itself
    returns — so no ``GetQueueUrl`` call (and no permission for one) is needed.
    """
    parts = event_source_arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not all(parts[3:]):
        raise QueueArnError(f"not an SQS queue ARN: {event_source_arn!r}")
    region, account, name = parts[3:]
    client = sqs_client(region)
    return client, f"{client.meta.endpoint_url.rstrip('/')}/{account}/{name}"


def schedule_retry(
    records: Sequence[QueueRecord],
    window: tuple[int, int],
    *,
    reason: str,
    collection: str | None = None,
    sqs_client: SqsClientFor,
    logger: EventLogger = _LOGGER,
) -> VisibilityReset:
    """Shorten the visibility of messages about to be reported failed, and log the
    outcome with the ``reason`` they failed for."""
    reset = reset_visibility(records, window, sqs_client=sqs_client, logger=logger)
    logger.info(
        "failed messages scheduled for early retry",
        extra={
            "collection": collection,
            "cause": reason,
            "visibility_timeout_seconds": reset.timeout_seconds,
            "reset": reset.reset,
            "failed": reset.failed,
        },
    )
    return reset


def reset_visibility(
    records: Sequence[QueueRecord],
    window: tuple[int, int],
    *,
    sqs_client: SqsClientFor,
    logger: EventLogger = _LOGGER,
) -> VisibilityReset:
    """Make the messages of ``records`` visible again after a jittered ``window``.

    One timeout for the whole batch: its messages come back together and are batched
    together again, while the jitter keeps competing invocations apart.
    """
    outcome = VisibilityReset(timeout_seconds=random.randint(*window))
    for arn, pending in _pending_by_queue(records, outcome, logger).items():
        _reset_queue(arn, pending, outcome, sqs_client, logger)
    return outcome


def _pending_by_queue(
    records: Sequence[QueueRecord], outcome: VisibilityReset, logger: EventLogger
) -> dict[str, list[Pending]]:
    """The (message id, receipt handle) of each record by its queue's ARN; a record
    without a handle or an ARN is logged and counted failed."""
    by_queue: dict[str, list[Pending]] = {}
    for record in records:
        try:
            handle, arn = record.receipt_handle, record.event_source_arn
        except KeyError:
            handle = arn = ""
        if not handle or not arn:
            logger.error(
                NOT_RESET,
                extra={
                    "message_id": record.message_id,
                    "error": "record has no receiptHandle or eventSourceARN",
                },
            )
            outcome.failed += 1
            continue
        by_queue.setdefault(arn, []).append((record.message_id, handle))
    return by_queue


def _reset_queue(
    arn: str,
    pending: list[Pending],
    outcome: VisibilityReset,
    sqs_client: SqsClientFor,
    logger: EventLogger,
) -> None:
    """Reset the messages of one queue, ``SQS_BATCH_LIMIT`` per call."""
    try:
        client, url = queue_url(arn, sqs_client)
    except Exception as error:  # a malformed ARN, or no client for its region
        logger.error(
            NOT_RESET,
            extra={
                "message_ids": [m for m, _ in pending],
                "error": f"{type(error).__name__}: {error}",
            },
        )
        outcome.failed += len(pending)
        return
    for start in range(0, len(pending), SQS_BATCH_LIMIT):
        batch = pending[start : start + SQS_BATCH_LIMIT]
        _reset_batch(client, url, batch, outcome, logger)


def _reset_batch(
    client: SQSClient,
    url: str,
    batch: list[Pending],
    outcome: VisibilityReset,
    logger: EventLogger,
) -> None:
    """One ChangeMessageVisibilityBatch call; counts the entries it reset and failed."""
    entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
        {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": outcome.timeout_seconds}
        for index, (_, handle) in enumerate(batch)
    ]
    try:
        response = client.change_message_visibility_batch(QueueUrl=url, Entries=entries)
    except Exception as error:
        logger.error(
            NOT_RESET,
            extra={
                "queue_url": url,
                "message_ids": [m for m, _ in batch],
                "error": f"{type(error).__name__}: {error}",
            },
        )
        outcome.failed += len(batch)
        return
    ids = {str(index): message_id for index, (message_id, _) in enumerate(batch)}
    for failure in response.get("Failed", []):
        logger.error(
            NOT_RESET,
            extra={
                "queue_url": url,
                "message_id": ids.get(failure.get("Id", "")),
                "code": failure.get("Code"),
                "sender_fault": failure.get("SenderFault"),
                "error": failure.get("Message"),
            },
        )
    outcome.failed += len(response.get("Failed", []))
    outcome.reset += len(response.get("Successful", []))
