"""Backfill: messages for rows that already exist (contract §3.4 ``source: backfill``).

Used to bring a new, rolled-back or repaired snapshot up to date: each existing metadata,
label and compaction-run row yields the messages its INSERT would have, marked as a
backfill (no sequence number, change time or stream record id).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from receipt_dynamo.timestamps import now_iso
from receipt_dynamo_stream.message_builder import messages_for_record
from receipt_dynamo_stream.models import EventName, MessageSource, ParsedStreamRecord, StreamMessage
from receipt_dynamo_stream.parsing.parsers import detect_entity_type


def backfill_messages(items: Iterable[Mapping[str, Any]]) -> list[StreamMessage]:
    """Messages for typed items (as read from the table); irrelevant rows yield none."""
    timestamp = now_iso()
    messages: list[StreamMessage] = []
    for item in items:
        pk, sk = item["PK"]["S"], item["SK"]["S"]
        detected = detect_entity_type(pk, sk)
        if detected is None:
            continue
        entity_type, ids = detected
        parsed = ParsedStreamRecord(
            event_name=EventName.INSERT,
            entity_type=entity_type,
            pk=pk,
            sk=sk,
            image_id=ids.pop("image_id"),
            ids=ids,
            sequence_number="0",
            old_image=None,
            new_image=dict(item),
            change_time=None,
            event_id=None,
            aws_region=None,
        )
        messages += [
            dataclasses.replace(
                message,
                source=MessageSource.BACKFILL,
                sequence_number=None,
                change_time=None,
                stream_record_id=None,
            )
            for message in messages_for_record(parsed, timestamp)
        ]
    return messages
