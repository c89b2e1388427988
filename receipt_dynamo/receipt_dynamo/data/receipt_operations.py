"""Reads and writes of receipts and the rows below them."""

from __future__ import annotations

from receipt_dynamo.constants import EntityType
from receipt_dynamo.data.base import DynamoBase
from receipt_dynamo.entities import (
    CompactionRun,
    Receipt,
    ReceiptLine,
    ReceiptMetadata,
    ReceiptWord,
    ReceiptWordLabel,
)
from receipt_dynamo.entities.compaction_run import PER_COLLECTION_SUFFIXES
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
from receipt_dynamo.models import ReceiptRows

_ROW_TYPES = {
    EntityType.RECEIPT.value,
    EntityType.RECEIPT_LINE.value,
    EntityType.RECEIPT_WORD.value,
    EntityType.RECEIPT_WORD_LABEL.value,
    EntityType.RECEIPT_METADATA.value,
    EntityType.COMPACTION_RUN.value,
}
# Lines and words are read for their keys alone; the rest whole.
_ROW_ATTRIBUTES = sorted(
    {"PK", "SK", "TYPE"}
    | {
        name
        for entity in (ReceiptMetadata, ReceiptWordLabel, CompactionRun)
        for name in entity.__dataclass_fields__
    }
    | {f"{c}_{suffix}" for c in ("lines", "words") for suffix in PER_COLLECTION_SUFFIXES}
)


class ReceiptOperations(DynamoBase):
    """put/get/delete of each receipt entity and consistent listings per receipt."""

    def get_receipt_rows(
        self, image_id: str, receipt_id: int, *, page_size: int | None = None
    ) -> ReceiptRows:
        """The receipt's existence, line and word ids, metadata, labels and runs.

        One strongly consistent query of the base table (``begins_with(SK, "RECEIPT#rrrrr")``
        covers the receipt row itself; ids are fixed-width so no other receipt matches),
        projected to the attributes the compactor reads.
        """
        exists = False
        metadata: ReceiptMetadata | None = None
        line_ids: set[int] = set()
        word_ids: set[tuple[int, int]] = set()
        labels: list[ReceiptWordLabel] = []
        runs: list[CompactionRun] = []
        items = self._query_prefix(
            image_pk(image_id),
            receipt_sk(receipt_id),
            _ROW_TYPES,
            page_size=page_size,
            attributes=_ROW_ATTRIBUTES,
        )
        for item in items:
            kind, sk = item["TYPE"]["S"], item["SK"]["S"]
            if kind == EntityType.RECEIPT:
                exists = True
            elif kind == EntityType.RECEIPT_LINE:
                line_ids.add(_ids(sk, EntityType.RECEIPT_LINE)[1])
            elif kind == EntityType.RECEIPT_WORD:
                _, line_id, word_id = _ids(sk, EntityType.RECEIPT_WORD)
                word_ids.add((line_id, word_id))
            elif kind == EntityType.RECEIPT_WORD_LABEL:
                labels.append(ReceiptWordLabel.from_item(item))
            elif kind == EntityType.RECEIPT_METADATA:
                metadata = ReceiptMetadata.from_item(item)
            else:
                runs.append(CompactionRun.from_item(item))
        return ReceiptRows(
            image_id=image_id,
            receipt_id=receipt_id,
            exists=exists,
            metadata=metadata,
            line_ids=frozenset(line_ids),
            word_ids=frozenset(word_ids),
            labels=labels,
            runs=runs,
        )

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


def _ids(sk: str, entity_type: EntityType) -> tuple[int, ...]:
    match = SK_PATTERNS[entity_type].fullmatch(sk)
    if match is None:
        raise ValueError(f"SK does not match {entity_type.value}: {sk!r}")
    return tuple(int(group) for group in match.groups())
