"""The messages of Lambda's SQS records (contract §5.1): each body parsed and checked
against its queue's ``collection`` attribute, grouped by collection, invalid ones kept
with the rule they broke so they are reported failed, never acknowledged."""

from __future__ import annotations

from collections.abc import Iterable

from receipt_chroma.lambda_support.models import QueueBatch, QueueRecord, RecordT
from receipt_dynamo_stream.exceptions import MessageValidationError
from receipt_dynamo_stream.models import StreamMessage


def queue_collection(record: QueueRecord) -> str | None:
    """The record's ``collection`` message attribute (set by the publisher for its queue);
    None when the record has none, or none as a string."""
    try:
        attribute = record.message_attributes["collection"]
        return None if attribute is None else attribute.string_value
    except (KeyError, TypeError):  # no messageAttributes (absent or null), or binary
        return None


def parse_queue_record(record: QueueRecord) -> StreamMessage:
    """The message of one SQS record; MessageValidationError when it is not a valid one."""
    try:
        body = record.body
    except KeyError:
        raise MessageValidationError("the SQS record has no body") from None
    message = StreamMessage.from_json(body)
    attribute = queue_collection(record)
    if attribute != message.collection.value:
        raise MessageValidationError(
            f"collection {message.collection.value!r} does not match the queue's collection "
            f"attribute {attribute!r}"
        )
    return message


def split_by_collection(records: Iterable[RecordT]) -> QueueBatch[RecordT]:
    """The event's records by message id, its valid messages by collection and the
    error of each invalid one."""
    batch: QueueBatch[RecordT] = QueueBatch()
    for record in records:
        message_id = record.message_id  # always present in SQS events
        batch.records[message_id] = record
        try:
            message = parse_queue_record(record)
        except MessageValidationError as error:
            batch.invalid[message_id] = error
            continue
        batch.messages.setdefault(message.collection, []).append((message_id, message))
    return batch
