"""Reads and writes of receipts and the rows below them."""

from __future__ import annotations

from receipt_dynamo.constants import ChromaDBCollection, EntityType
from receipt_dynamo.data.base import DynamoBase
from receipt_dynamo.entities import (
    CompactionRun,
    Receipt,
    ReceiptLine,
    ReceiptMetadata,
    ReceiptWord,
    ReceiptWordLabel,
)
from receipt_dynamo.entities.base import Item, deserialize
from receipt_dynamo.keys import (
    SK_PATTERNS,
    image_pk,
    label_sk,
    line_sk,
    metadata_sk,
    receipt_prefix,
    receipt_sk,
    word_sk,
)
from receipt_dynamo.receipt_state import InvalidRow, MerchantFields, ReceiptState

_ROW_TYPES = {
    EntityType.RECEIPT.value,
    EntityType.RECEIPT_LINE.value,
    EntityType.RECEIPT_WORD.value,
    EntityType.RECEIPT_WORD_LABEL.value,
    EntityType.RECEIPT_METADATA.value,
    EntityType.COMPACTION_RUN.value,
}
# Only what the compactor uses is read (and so validated): keys for receipts, lines and
# words; status, proposer and time of labels; the merchant fields; a run's ordering,
# delta prefixes and states.
_ROW_ATTRIBUTES = sorted(
    {"PK", "SK", "TYPE", "timestamp_added", "validation_status", "label_proposed_by"}
    | set(MerchantFields.__dataclass_fields__)
    | {"created_at"}
    | {f"{c.value}_{suffix}" for c in ChromaDBCollection for suffix in ("delta_prefix", "state")}
)


class ReceiptOperations(DynamoBase):
    """put/get/delete of each receipt entity and consistent listings per receipt."""

    def get_receipt_state(
        self, image_id: str, receipt_id: int, *, page_size: int | None = None
    ) -> ReceiptState:
        """The receipt's existence, line and word ids, merchant fields, labels and runs.

        One strongly consistent query of the base table (``begins_with(SK, "RECEIPT#rrrrr")``
        covers the receipt row itself; ids are fixed-width so no other receipt matches),
        projected to the attributes the compactor reads. Existence depends on keys alone;
        a label, metadata or run row whose used attributes fail validation goes to
        ``invalid_rows`` and not into the aggregate, so one bad row spoils nothing else.
        """
        reader = _RowCollector(image_id, receipt_id)
        items = self._query_prefix(
            image_pk(image_id),
            receipt_sk(receipt_id),
            _ROW_TYPES,
            page_size=page_size,
            attributes=_ROW_ATTRIBUTES,
        )
        for item in items:
            reader.add(item)
        return reader.rows()

    # --- Receipt --------------------------------------------------------------------------

    def put_receipt(self, receipt: Receipt) -> None:
        self.put_entity(receipt)

    def get_receipt(self, image_id: str, receipt_id: int) -> Receipt:
        return self._get_required(
            image_pk(image_id), receipt_sk(receipt_id), "Receipt", Receipt.from_item
        )

    def find_receipt(self, image_id: str, receipt_id: int) -> Receipt | None:
        """The receipt, or None when its row is absent (strongly consistent)."""
        item = self._get_item(image_pk(image_id), receipt_sk(receipt_id))
        return None if item is None else Receipt.from_item(item)

    def delete_receipt(self, image_id: str, receipt_id: int) -> None:
        self._delete_key(image_pk(image_id), receipt_sk(receipt_id))

    # --- ReceiptLine ----------------------------------------------------------------------

    def put_receipt_line(self, line: ReceiptLine) -> None:
        self.put_entity(line)

    def get_receipt_line(self, image_id: str, receipt_id: int, line_id: int) -> ReceiptLine:
        return self._get_required(
            image_pk(image_id), line_sk(receipt_id, line_id), "ReceiptLine", ReceiptLine.from_item
        )

    def delete_receipt_line(self, image_id: str, receipt_id: int, line_id: int) -> None:
        self._delete_key(image_pk(image_id), line_sk(receipt_id, line_id))

    def list_receipt_lines_from_receipt(
        self, image_id: str, receipt_id: int, *, page_size: int | None = None
    ) -> list[ReceiptLine]:
        items = self._query_prefix(
            image_pk(image_id),
            receipt_prefix(receipt_id),
            EntityType.RECEIPT_LINE,
            page_size=page_size,
        )
        return [ReceiptLine.from_item(item) for item in items]

    # --- ReceiptWord ----------------------------------------------------------------------

    def put_receipt_word(self, word: ReceiptWord) -> None:
        self.put_entity(word)

    def get_receipt_word(
        self, image_id: str, receipt_id: int, line_id: int, word_id: int
    ) -> ReceiptWord:
        return self._get_required(
            image_pk(image_id),
            word_sk(receipt_id, line_id, word_id),
            "ReceiptWord",
            ReceiptWord.from_item,
        )

    def delete_receipt_word(
        self, image_id: str, receipt_id: int, line_id: int, word_id: int
    ) -> None:
        self._delete_key(image_pk(image_id), word_sk(receipt_id, line_id, word_id))

    def list_receipt_words_from_receipt(
        self, image_id: str, receipt_id: int, *, page_size: int | None = None
    ) -> list[ReceiptWord]:
        items = self._query_prefix(
            image_pk(image_id),
            receipt_prefix(receipt_id),
            EntityType.RECEIPT_WORD,
            page_size=page_size,
        )
        return [ReceiptWord.from_item(item) for item in items]

    # --- ReceiptWordLabel -----------------------------------------------------------------

    def put_receipt_word_label(self, label: ReceiptWordLabel) -> None:
        self.put_entity(label)

    def get_receipt_word_label(
        self, image_id: str, receipt_id: int, line_id: int, word_id: int, label: str
    ) -> ReceiptWordLabel:
        return self._get_required(
            image_pk(image_id),
            label_sk(receipt_id, line_id, word_id, label),
            "ReceiptWordLabel",
            ReceiptWordLabel.from_item,
        )

    def delete_receipt_word_label(
        self, image_id: str, receipt_id: int, line_id: int, word_id: int, label: str
    ) -> None:
        self._delete_key(image_pk(image_id), label_sk(receipt_id, line_id, word_id, label))

    def list_receipt_word_labels_for_word(
        self,
        image_id: str,
        receipt_id: int,
        line_id: int,
        word_id: int,
        *,
        page_size: int | None = None,
    ) -> list[ReceiptWordLabel]:
        items = self._query_prefix(
            image_pk(image_id),
            f"{word_sk(receipt_id, line_id, word_id)}#LABEL#",
            EntityType.RECEIPT_WORD_LABEL,
            page_size=page_size,
        )
        return [ReceiptWordLabel.from_item(item) for item in items]

    def list_receipt_word_labels_for_receipt(
        self, image_id: str, receipt_id: int, *, page_size: int | None = None
    ) -> list[ReceiptWordLabel]:
        items = self._query_prefix(
            image_pk(image_id),
            receipt_prefix(receipt_id),
            EntityType.RECEIPT_WORD_LABEL,
            page_size=page_size,
        )
        return [ReceiptWordLabel.from_item(item) for item in items]

    # --- ReceiptMetadata ------------------------------------------------------------------

    def put_receipt_metadata(self, metadata: ReceiptMetadata) -> None:
        self.put_entity(metadata)

    def get_receipt_metadata(self, image_id: str, receipt_id: int) -> ReceiptMetadata:
        return self._get_required(
            image_pk(image_id),
            metadata_sk(receipt_id),
            "ReceiptMetadata",
            ReceiptMetadata.from_item,
        )

    def find_receipt_metadata(self, image_id: str, receipt_id: int) -> ReceiptMetadata | None:
        """The receipt's metadata, or None when it has none (strongly consistent)."""
        item = self._get_item(image_pk(image_id), metadata_sk(receipt_id))
        return None if item is None else ReceiptMetadata.from_item(item)

    def delete_receipt_metadata(self, image_id: str, receipt_id: int) -> None:
        self._delete_key(image_pk(image_id), metadata_sk(receipt_id))


class _RowCollector:
    """Sorts the items of one receipt query into a ReceiptState."""

    def __init__(self, image_id: str, receipt_id: int) -> None:
        self.image_id, self.receipt_id = image_id, receipt_id
        self.exists = False
        self.metadata: MerchantFields | None = None
        self.line_ids: set[int] = set()
        self.word_ids: set[tuple[int, int]] = set()
        self.labels: list[ReceiptWordLabel] = []
        self.runs: list[CompactionRun] = []
        self.invalid: list[InvalidRow] = []

    def add(self, item: Item) -> None:
        kind, sk = item["TYPE"]["S"], item["SK"]["S"]
        try:
            self._add(kind, sk, item)
        except ValueError as error:
            self.invalid.append(InvalidRow(item["PK"]["S"], sk, kind, str(error)))

    def _add(self, kind: str, sk: str, item: Item) -> None:
        if kind == EntityType.RECEIPT:
            self.exists = True
        elif kind == EntityType.RECEIPT_LINE:
            self.line_ids.add(_ids(sk, EntityType.RECEIPT_LINE)[1])
        elif kind == EntityType.RECEIPT_WORD:
            _, line_id, word_id = _ids(sk, EntityType.RECEIPT_WORD)
            self.word_ids.add((line_id, word_id))
        elif kind == EntityType.RECEIPT_WORD_LABEL:
            self.labels.append(ReceiptWordLabel.from_item(item))
        elif kind == EntityType.RECEIPT_METADATA:
            self.metadata = MerchantFields.from_attributes(deserialize(item))
        else:
            self.runs.append(CompactionRun.from_item(item))

    def rows(self) -> ReceiptState:
        return ReceiptState(
            image_id=self.image_id,
            receipt_id=self.receipt_id,
            exists=self.exists,
            metadata=self.metadata,
            line_ids=frozenset(self.line_ids),
            word_ids=frozenset(self.word_ids),
            labels=self.labels,
            runs=self.runs,
            invalid_rows=self.invalid,
        )


def _ids(sk: str, entity_type: EntityType) -> tuple[int, ...]:
    match = SK_PATTERNS[entity_type].fullmatch(sk)
    if match is None:
        raise ValueError(f"SK does not match {entity_type.value}: {sk!r}")
    ids = tuple(int(group) for group in match.groups())
    if 0 in ids:
        raise ValueError(f"SK has an id of 00000: {sk!r}")
    return ids
