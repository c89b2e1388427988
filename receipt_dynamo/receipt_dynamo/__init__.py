"""receipt_dynamo: entities, item (de)serialisation and table access for receipts."""

from receipt_dynamo.aws_clients import COMPACTOR_TIMEOUTS, ClientTimeouts, aws_client
from receipt_dynamo.constants import (
    ChromaDBCollection,
    CompactionState,
    EmbeddingStatus,
    EntityType,
    ValidationStatus,
)
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.entities import (
    BoundingBox,
    CompactionLock,
    CompactionRun,
    DynamoEntity,
    Item,
    Point,
    Receipt,
    ReceiptLine,
    ReceiptMetadata,
    ReceiptWord,
    ReceiptWordLabel,
    SnapshotPointer,
)
from receipt_dynamo.exceptions import (
    EntityAlreadyExistsError,
    EntityNotFoundError,
    LeaseHeldError,
    LeaseLostError,
    PointerMovedError,
    ReceiptDynamoError,
)
from receipt_dynamo.receipt_state import InvalidRow, MerchantFields, ReceiptState
from receipt_dynamo.schema import create_table, table_definition

item_to_receipt = Receipt.from_item
item_to_receipt_line = ReceiptLine.from_item
item_to_receipt_word = ReceiptWord.from_item
item_to_receipt_word_label = ReceiptWordLabel.from_item
item_to_receipt_metadata = ReceiptMetadata.from_item
item_to_compaction_run = CompactionRun.from_item
item_to_compaction_lock = CompactionLock.from_item
item_to_snapshot_pointer = SnapshotPointer.from_item

__all__ = [
    "COMPACTOR_TIMEOUTS",
    "BoundingBox",
    "ChromaDBCollection",
    "ClientTimeouts",
    "CompactionLock",
    "CompactionRun",
    "CompactionState",
    "DynamoClient",
    "DynamoEntity",
    "EmbeddingStatus",
    "EntityAlreadyExistsError",
    "EntityNotFoundError",
    "EntityType",
    "Item",
    "LeaseHeldError",
    "LeaseLostError",
    "Point",
    "PointerMovedError",
    "Receipt",
    "ReceiptDynamoError",
    "ReceiptLine",
    "ReceiptMetadata",
    "ReceiptState",
    "InvalidRow",
    "MerchantFields",
    "ReceiptWord",
    "ReceiptWordLabel",
    "SnapshotPointer",
    "ValidationStatus",
    "aws_client",
    "create_table",
    "item_to_compaction_lock",
    "item_to_compaction_run",
    "item_to_receipt",
    "item_to_receipt_line",
    "item_to_receipt_metadata",
    "item_to_receipt_word",
    "item_to_receipt_word_label",
    "item_to_snapshot_pointer",
    "table_definition",
]
