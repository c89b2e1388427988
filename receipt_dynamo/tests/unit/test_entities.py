"""Entities: exact round trips, key formats, validation messages and legacy rows."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from receipt_dynamo import (
    CompactionLock,
    CompactionRun,
    DynamoEntity,
    EmbeddingStatus,
    Receipt,
    ReceiptLine,
    ReceiptMetadata,
    ReceiptWord,
    ReceiptWordLabel,
    SnapshotPointer,
    ValidationStatus,
    item_to_receipt_word_label,
)
from receipt_dynamo.testing import (
    FIXED_TIME,
    make_compaction_run,
    make_label,
    make_line,
    make_metadata,
    make_receipt,
    make_word,
)

IMAGE = "3f52804b-2fad-4e00-92c8-b593da3a8ed3"
PK = f"IMAGE#{IMAGE}"


def every_entity() -> list[DynamoEntity]:
    return [
        make_receipt(IMAGE, 1),
        make_line(IMAGE, 1, 2),
        make_word(IMAGE, 1, 2, 3, extracted_data={"type": "currency", "value": "4.50"}),
        make_label(IMAGE, 1, 2, 3, "GRAND_TOTAL", reasoning="bold, bottom right"),
        make_metadata(IMAGE, 1, canonical_merchant_name="Corner Market Inc"),
        make_compaction_run(IMAGE, 1, "6c1e0c7a-0d2b-4c55-b8f4-3f2a5d0b9a11"),
        CompactionLock(
            collection="lines",
            owner="a1b2",
            expires=FIXED_TIME,
            heartbeat=FIXED_TIME,
            fencing_token=7,
            time_to_live=1_800_000_000,
        ),
        SnapshotPointer(
            collection="words",
            version="20261128_101500_000000_deadbeef",
            previous_version="20261128_101400_000000_cafebabe",
            history=("20261128_101500_000000_deadbeef", "20261128_101400_000000_cafebabe"),
            fencing_token=7,
            updated_at=FIXED_TIME,
        ),
    ]


@pytest.mark.parametrize("entity", every_entity(), ids=lambda e: type(e).__name__)
def test_entity_round_trips_exactly(entity: DynamoEntity) -> None:
    item = entity.to_item()
    parsed = type(entity).from_item(item)
    assert parsed == entity
    assert parsed.to_item() == item
    assert item["TYPE"] == {"S": entity.TYPE}
    assert entity.key == {"PK": item["PK"], "SK": item["SK"]}


@pytest.mark.parametrize("entity", every_entity(), ids=lambda e: type(e).__name__)
def test_canonical_items_never_carry_null(entity: DynamoEntity) -> None:
    assert all("NULL" not in value for value in entity.to_item().values())


def test_keys_follow_the_single_table_design() -> None:
    assert make_receipt(IMAGE, 1).sk == "RECEIPT#00001"
    assert make_line(IMAGE, 1, 2).sk == "RECEIPT#00001#LINE#00002"
    assert make_word(IMAGE, 1, 2, 3).sk == "RECEIPT#00001#LINE#00002#WORD#00003"
    assert make_label(IMAGE, 1, 2, 3, "TOTAL").sk == (
        "RECEIPT#00001#LINE#00002#WORD#00003#LABEL#TOTAL"
    )
    assert make_metadata(IMAGE, 12).sk == "RECEIPT#00012#METADATA"
    assert make_compaction_run(IMAGE, 1, "r1").sk == "RECEIPT#00001#COMPACTION_RUN#r1"
    lock = every_entity()[6]
    assert (lock.pk, lock.sk) == ("LOCK#lines#chroma-lines-compaction", "LOCK")
    pointer = every_entity()[7]
    assert (pointer.pk, pointer.sk) == ("SNAPSHOT#words", "POINTER")


def test_secondary_index_attributes() -> None:
    word = make_word(IMAGE, 1, 2, 3, embedding_status=EmbeddingStatus.SUCCESS).to_item()
    assert word["GSI1PK"] == {"S": "EMBEDDING_STATUS#SUCCESS"}
    assert word["GSI1SK"] == {"S": f"WORD#{PK}#RECEIPT#00001#LINE#00002#WORD#00003"}
    assert word["GSI2SK"] == {"S": f"{PK}#RECEIPT#00001#LINE#00002#WORD#00003"}
    assert word["GSI3PK"] == {"S": f"{PK}#RECEIPT#00001"}
    assert word["GSI3SK"] == {"S": "WORD"}

    label = make_label(IMAGE, 1, 2, 3, "TOTAL", validation_status="VALID").to_item()
    assert label["GSI1PK"] == {"S": "LABEL#TOTAL" + "_" * 29}
    assert len(label["GSI1PK"]["S"]) == 40
    assert label["GSI3PK"] == {"S": "VALIDATION_STATUS#VALID"}
    assert label["GSI3SK"] == {"S": f"{PK}#RECEIPT#00001#LINE#00002#WORD#00003#LABEL#TOTAL"}
    assert "label" not in label  # the SK carries the label name

    metadata = make_metadata(IMAGE, 1, merchant_name="Corner Market").to_item()
    assert metadata["GSI1PK"] == {"S": "MERCHANT#CORNER_MARKET"}
    assert metadata["GSI2PK"] == {"S": "PLACE#ChIJ-test-place"}
    assert metadata["GSI3SK"] == {"S": "STATUS#MATCHED"}
    no_place = make_metadata(IMAGE, 1, place_id="", canonical_merchant_name="Big Co").to_item()
    assert "GSI2PK" not in no_place
    assert "GSI2SK" not in no_place
    assert no_place["GSI1PK"] == {"S": "MERCHANT#BIG_CO"}

    run = make_compaction_run(IMAGE, 1, "r1").to_item()
    assert run["GSI1PK"] == {"S": "RUNS"}
    assert run["GSI1SK"] == {"S": f"CREATED_AT#{FIXED_TIME}"}


def test_empty_matched_fields_are_omitted() -> None:
    item = make_metadata(IMAGE, 1, matched_fields=frozenset()).to_item()
    assert "matched_fields" not in item
    assert ReceiptMetadata.from_item(item).matched_fields == frozenset()


@pytest.mark.parametrize(
    ("build", "field", "bad"),
    [
        (lambda: make_receipt("NOT-A-UUID"), "image_id", "NOT-A-UUID"),
        (lambda: make_receipt(IMAGE, 0), "receipt_id", "0"),
        (lambda: make_line(IMAGE, 1, 100_000), "line_id", "100000"),
        (lambda: make_line(IMAGE, 1, 1, confidence=1.5), "confidence", "1.5"),
        (lambda: make_line(IMAGE, 1, 1, embedding_status="DONE"), "embedding_status", "DONE"),
        (lambda: make_label(IMAGE, 1, 1, 1, "total"), "label", "total"),
        (lambda: make_label(IMAGE, 1, 1, 1, validation_status="OK"), "validation_status", "OK"),
        (
            lambda: make_label(IMAGE, 1, 1, 1, timestamp_added="yesterday"),
            "timestamp_added",
            "yesterday",
        ),
        (lambda: make_metadata(IMAGE, 1, merchant_name=None), "merchant_name", "got null"),
        (
            lambda: make_metadata(IMAGE, 1, merchant_name={"a": "b"}),
            "merchant_name",
            'must be a string, got a map {"a": "b"}',
        ),
        (
            lambda: make_metadata(IMAGE, 1, merchant_name=["x", 1]),
            "merchant_name",
            'must be a string, got a list ["x", 1]',
        ),
        (lambda: make_compaction_run(IMAGE, 1, "r1", lines_state="DONE"), "lines_state", "DONE"),
        (lambda: make_word(IMAGE, 1, 1, 1, extracted_data={"v": 3}), "extracted_data", "3"),
    ],
)
def test_validation_names_field_and_value(build: Any, field: str, bad: str) -> None:
    with pytest.raises(ValueError, match=field) as caught:
        build()
    assert bad in str(caught.value)


def test_label_name_and_ids_come_from_the_sort_key() -> None:
    item = make_label(IMAGE, 1, 2, 3, "TOTAL").to_item()
    item["label"] = {"S": "SOMETHING_ELSE"}  # stale attribute must be ignored
    parsed = item_to_receipt_word_label(item)
    assert (parsed.line_id, parsed.word_id, parsed.label) == (2, 3, "TOTAL")


def test_legacy_label_with_null_reasoning_and_no_status_parses() -> None:
    item = make_label(IMAGE, 1, 2, 3).to_item()
    del item["validation_status"]
    item["reasoning"] = {"NULL": True}
    item["label_proposed_by"] = {"NULL": True}
    parsed = ReceiptWordLabel.from_item(item)
    assert parsed.validation_status is ValidationStatus.NONE
    assert parsed.reasoning is None
    assert parsed.label_proposed_by is None


def test_legacy_word_with_id_attributes_parses() -> None:
    item = make_word(IMAGE, 1, 2, 3).to_item()
    item.update(
        image_id={"S": IMAGE},
        receipt_id={"N": "1"},
        line_id={"N": "2"},
        word_id={"N": "3"},
        extracted_data={"M": {"type": {"S": "date"}, "value": {"NULL": True}}},
    )
    parsed = ReceiptWord.from_item(item)
    assert (parsed.receipt_id, parsed.line_id, parsed.word_id) == (1, 2, 3)
    assert parsed.extracted_data == {"type": "date"}


def test_legacy_line_with_null_optional_fields_parses() -> None:
    item = make_line(IMAGE, 1, 2).to_item()
    item.update(line_id={"N": "2"}, embedding_status={"NULL": True}, is_noise={"NULL": True})
    parsed = ReceiptLine.from_item(item)
    assert parsed.embedding_status is EmbeddingStatus.NONE
    assert parsed.is_noise is False


def test_legacy_metadata_without_validated_by_parses() -> None:
    item = make_metadata(IMAGE, 1).to_item()
    del item["validated_by"]
    item["canonical_address"] = {"NULL": True}
    parsed = ReceiptMetadata.from_item(item)
    assert parsed.validated_by is None
    assert parsed.canonical_address is None


def test_item_with_wrong_key_shape_is_rejected_with_the_key() -> None:
    item = make_receipt(IMAGE, 1).to_item()
    item["SK"] = {"S": "RECEIPT#1"}
    with pytest.raises(ValueError, match=r"SK .*'RECEIPT#1'"):
        Receipt.from_item(item)


def test_missing_required_attribute_is_named() -> None:
    item = make_metadata(IMAGE, 1).to_item()
    del item["merchant_name"]
    with pytest.raises(ValueError, match="merchant_name is required"):
        ReceiptMetadata.from_item(item)


def test_pointer_successor_keeps_the_last_four_versions() -> None:
    pointer = SnapshotPointer(
        collection="lines", version="v1", history=("v1",), fencing_token=1, updated_at=FIXED_TIME
    )
    for n in range(2, 7):
        pointer = pointer.successor(f"v{n}", n, FIXED_TIME)
    assert pointer.history == ("v6", "v5", "v4", "v3")
    assert pointer.previous_version == "v5"
    rolled_back = pointer.successor("v4", 7, FIXED_TIME)
    assert rolled_back.history == ("v4", "v6", "v5", "v3")


def test_run_accessors_per_collection() -> None:
    run = make_compaction_run(IMAGE, 1, "r1", words_state="COMPLETED")
    assert run.delta_prefix("lines") == "lines/delta/r1/"
    assert run.state("words").value == "COMPLETED"
    assert isinstance(run, CompactionRun)
    assert dataclasses.replace(run, created_at="2026-11-29T00:00:00.000000+00:00").order_key > (
        run.order_key
    )
