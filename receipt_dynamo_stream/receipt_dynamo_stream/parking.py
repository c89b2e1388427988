"""Parking unparseable stream records on the stream DLQ (contract §3.5)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from receipt_dynamo.aws_clients import aws_client
from receipt_dynamo.timestamps import now_iso
from receipt_dynamo_stream.models import SCHEMA_VERSION

if TYPE_CHECKING:
    from types_boto3_sqs.client import SQSClient

PARKED_KIND: Final = "unparseable_stream_record"


MAX_PARKED_BYTES: Final = 256 * 1024 - 1024  # leave room for the message attribute


def parked_body(record: Any, error: Exception) -> str:
    """The DLQ body: the record as received, with the error that stopped it.

    A record too large for SQS keeps only its event name, id, keys and sequence number.
    """
    body = {
        "schema_version": SCHEMA_VERSION,
        "kind": PARKED_KIND,
        "error_type": type(error).__name__,
        "error": str(error),
        "record": record,
        "parked_at": now_iso(),
    }
    text = _dumps(body)
    if len(text) <= MAX_PARKED_BYTES:
        return text
    body["record"] = _record_summary(record)
    body["record_truncated"] = True
    return _dumps(body)


def _dumps(body: dict[str, Any]) -> str:
    # default=repr: whatever the record holds, the DLQ gets a readable copy.
    return json.dumps(body, ensure_ascii=True, separators=(",", ":"), default=repr)


def _record_summary(record: Any) -> Any:
    if not isinstance(record, dict):
        return repr(record)[:1024]
    dynamodb = record.get("dynamodb")
    dynamodb = dynamodb if isinstance(dynamodb, dict) else {}
    return {
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "dynamodb": {
            "Keys": dynamodb.get("Keys"),
            "SequenceNumber": dynamodb.get("SequenceNumber"),
        },
    }


def park_records(
    unparseable: Sequence[tuple[Any, Exception]],
    dlq_url: str,
    *,
    sqs_client: SQSClient | None = None,
) -> list[tuple[Any, Exception]]:
    """Send each record to the DLQ; returns the ones that could not be parked."""
    sqs = sqs_client or aws_client("sqs")
    not_parked: list[tuple[Any, Exception]] = []
    for record, error in unparseable:
        try:
            sqs.send_message(
                QueueUrl=dlq_url,
                MessageBody=parked_body(record, error),
                MessageAttributes={"kind": {"DataType": "String", "StringValue": PARKED_KIND}},
            )
        except Exception as send_error:  # reported to the caller, which retries the record
            not_parked.append((record, send_error))
    return not_parked
