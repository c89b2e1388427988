"""Queue messages written from contract §3.4 (not by the stream package): the explorer
builds the bodies a stream Lambda would send for its table changes, so no stream has to be
read back through moto; the compactor parses them as it parses any SQS body."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

COLLECTION = "words"  # the explorer compacts one collection; lines behave alike
CHANGE_TIME = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class QueuedMessage:
    """A message on the words queue: its id and its SQS body."""

    message_id: str
    body: str
    # What it asks of the compactor, for the acknowledgement check (I3): the entity type,
    # event and the entity's ids (``run_id`` for a run).
    entity_type: str
    event_name: str
    entity_data: dict[str, Any]


def stream_message(
    message_id: str,
    sequence: int,
    entity_type: str,
    event_name: str,
    entity_data: dict[str, Any],
    *,
    changes: dict[str, Any] | None = None,
) -> QueuedMessage:
    """A ``dynamodb_stream`` message (contract §3.4) for the words queue."""
    moment = CHANGE_TIME + timedelta(seconds=sequence)
    body = {
        "schema_version": 1,
        "source": "dynamodb_stream",
        "entity_type": entity_type,
        "event_name": event_name,
        "collection": COLLECTION,
        "entity_data": entity_data,
        "changes": changes or {},
        "sequence_number": str(4421584500000000000000000000 + sequence),
        "change_time": moment.isoformat(),
        "stream_record_id": f"event-{sequence}",
        "aws_region": "us-east-1",
        "timestamp": (moment + timedelta(milliseconds=250)).isoformat(),
    }
    return QueuedMessage(
        message_id,
        json.dumps(body, ensure_ascii=True, separators=(",", ":")),
        entity_type,
        event_name,
        entity_data,
    )
