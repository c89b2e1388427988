"""An independent oracle for SPEC revision 2, §2 (rows), §3.2 (relevant fields), §4 (ids and
metadata) and §5.4 (convergence).

Everything here is derived from the SPEC text alone: it imports nothing but the standard
library (``test_oracle_is_independent.py`` enforces that), so a misreading of the SPEC in
the product cannot leak into the expectation. It holds

- a model of the table: receipts with their lines, words, word labels, merchant metadata
  and compaction runs, as plain dataclasses (:class:`TableModel`);
- the serialisation of the model's rows to raw DynamoDB items (``{"S": ...}`` typed form)
  with the keys, ``TYPE``, attributes and index keys of §2 (:meth:`TableModel.items`);
- the Chroma ids of §4, and the contents of an embedding delta of a run: a vector, document
  and ``text`` that are a deterministic function of (run_id, record id), so the vector a
  record holds tells which run supplied it;
- the expected contents of each collection once every message has been applied
  (:func:`expected_collection`): id -> the run whose vector it holds, its document and its
  complete metadata.
"""

from .contract import (
    COLLECTIONS,
    GSI1PK_LABEL_WIDTH,
    IMAGE_ID_RE,
    LABEL_KEYS,
    LABEL_RE,
    MAX_ID,
    MERCHANT_KEYS,
    PROVENANCE_KEYS,
    RELEVANT_LABEL_FIELDS,
    RELEVANT_METADATA_FIELDS,
    VALIDATION_STATUSES,
    check_image_id,
    greatest_timestamp,
    image_pk,
    label_sk,
    line_record_id,
    line_sk,
    metadata_sk,
    parse_instant,
    parse_record_id,
    point,
    receipt_sk,
    run_sk,
    typed,
    typed_item,
    word_record_id,
    word_sk,
)
from .expected import (
    ExpectedRecord,
    delta_records,
    embedding,
    expected_collection,
    label_keys,
    merchant_keys,
    newest_run_containing,
    record_text,
    run_record_ids,
)
from .model import (
    LabelRow,
    LineRow,
    MetadataRow,
    ReceiptState,
    RunRow,
    TableModel,
    WordRow,
    label_item,
    line_item,
    metadata_item,
    receipt_item,
    receipt_items,
    run_item,
    word_item,
)
from .readback import (
    RunContents,
    model_from_items,
    plain,
)

__all__ = [
    "COLLECTIONS",
    "ExpectedRecord",
    "GSI1PK_LABEL_WIDTH",
    "IMAGE_ID_RE",
    "LABEL_KEYS",
    "LABEL_RE",
    "LabelRow",
    "LineRow",
    "MAX_ID",
    "MERCHANT_KEYS",
    "MetadataRow",
    "PROVENANCE_KEYS",
    "RELEVANT_LABEL_FIELDS",
    "RELEVANT_METADATA_FIELDS",
    "ReceiptState",
    "RunContents",
    "RunRow",
    "TableModel",
    "VALIDATION_STATUSES",
    "WordRow",
    "check_image_id",
    "delta_records",
    "embedding",
    "expected_collection",
    "greatest_timestamp",
    "image_pk",
    "label_item",
    "label_keys",
    "label_sk",
    "line_item",
    "line_record_id",
    "line_sk",
    "merchant_keys",
    "metadata_item",
    "metadata_sk",
    "model_from_items",
    "newest_run_containing",
    "parse_instant",
    "parse_record_id",
    "plain",
    "point",
    "receipt_item",
    "receipt_items",
    "receipt_sk",
    "record_text",
    "run_item",
    "run_record_ids",
    "run_sk",
    "typed",
    "typed_item",
    "word_item",
    "word_record_id",
    "word_sk",
]
