"""Typed entities of the single-table design (contract §2)."""

from receipt_dynamo.entities.base import (
    DynamoEntity,
    Item,
    deserialize,
    readable,
    serialize,
)
from receipt_dynamo.entities.compaction_lock import CompactionLock
from receipt_dynamo.entities.compaction_run import CompactionRun
from receipt_dynamo.entities.geometry import BoundingBox, Point
from receipt_dynamo.entities.receipt import Receipt
from receipt_dynamo.entities.receipt_line import ReceiptLine
from receipt_dynamo.entities.receipt_metadata import ReceiptMetadata
from receipt_dynamo.entities.receipt_word import ReceiptWord
from receipt_dynamo.entities.receipt_word_label import ReceiptWordLabel
from receipt_dynamo.entities.snapshot_pointer import HISTORY_LENGTH, SnapshotPointer

__all__ = [
    "HISTORY_LENGTH",
    "BoundingBox",
    "CompactionLock",
    "CompactionRun",
    "DynamoEntity",
    "Item",
    "Point",
    "Receipt",
    "ReceiptLine",
    "ReceiptMetadata",
    "ReceiptWord",
    "ReceiptWordLabel",
    "SnapshotPointer",
    "deserialize",
    "readable",
    "serialize",
]
