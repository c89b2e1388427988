"""Lambda-shaped DynamoDB stream records built from entities, for unit tests and benchmarks.

Integration tests read real records from the table's stream instead.
"""

from __future__ import annotations

import itertools
from typing import Any

from receipt_dynamo.entities import DynamoEntity, Item

_SEQUENCE = itertools.count(4_421_584_500_000_000_017_450_439_091)
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/receipts/stream/2026-11-28T00:00:00.000"


def stream_record(
    event_name: str,
    *,
    old: DynamoEntity | Item | None = None,
    new: DynamoEntity | Item | None = None,
    sequence_number: str | None = None,
    created: int = 1_795_860_900,
) -> dict[str, Any]:
    """A record as Lambda delivers it, with keys taken from whichever image is given."""
    images = {
        name: image.to_item() if isinstance(image, DynamoEntity) else image
        for name, image in (("OldImage", old), ("NewImage", new))
        if image is not None
    }
    if not images:
        raise ValueError("a stream record needs an old or a new image")
    any_image = next(iter(images.values()))
    sequence = sequence_number or str(next(_SEQUENCE))
    return {
        "eventID": f"evt-{sequence[-12:]}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": created,
            "Keys": {"PK": any_image["PK"], "SK": any_image["SK"]},
            **images,
            "SequenceNumber": sequence,
            "SizeBytes": 512,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": STREAM_ARN,
    }
