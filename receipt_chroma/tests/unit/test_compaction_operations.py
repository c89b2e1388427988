"""Collection operations: merchant metadata, labels and deletions, on real Chroma.

Includes the user's unit and integration test templates, as written.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any
from unittest.mock import MagicMock, Mock

import pytest

from receipt_chroma import ChromaClient
from receipt_chroma.compaction import (
    apply_receipt_keys,
    delete_embeddings,
    reconstruct_label_metadata,
    remove_receipt_metadata,
    remove_word_labels,
    update_receipt_metadata,
    update_word_labels,
)
from receipt_chroma.exceptions import OperationError
from receipt_chroma.ids import VectorKey
from receipt_compaction_tools.testing.synthetic import embedding_for
from receipt_dynamo.testing import IMAGE_ID as IMAGE
from receipt_dynamo.testing import OTHER_IMAGE_ID as OTHER_IMAGE
from receipt_dynamo.testing import make_label


def seed_words(collection: Any, image_id: str, receipt_id: int, words: int = 4) -> list[str]:
    keys = [VectorKey(image_id, receipt_id, 1 + n // 2, 1 + n % 2) for n in range(words)]
    ids = [k.vector_id for k in keys]
    collection.upsert(
        ids=ids,
        embeddings=[embedding_for(i, 4) for i in ids],
        metadatas=[{**k.base_metadata(), "text": "t"} for k in keys],
    )
    return ids


def metadatas(collection: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    found = collection.get(ids=ids, include=["metadatas"])
    return dict(zip(found["ids"], found["metadatas"], strict=True))


# --- the user's templates ----------------------------------------------------------------


def test_update_metadata_basic() -> None:
    # Arrange
    mock_collection = MagicMock()
    mock_collection.name = "words"
    mock_logger = Mock()

    # Act
    result = update_receipt_metadata(
        collection=mock_collection,
        image_id="test",
        receipt_id=1,
        changes={"merchant_name": "Test"},
        logger=mock_logger,
    )

    # Assert
    assert result >= 0


@pytest.fixture
def temp_chroma() -> Any:
    temp_dir = tempfile.mkdtemp()
    client = ChromaClient(persist_directory=temp_dir, mode="delta")
    yield client
    client.close()


def test_update_with_real_chromadb(temp_chroma: ChromaClient) -> None:
    # Setup
    collection = temp_chroma.get_or_create_collection("words")
    ids = seed_words(collection, IMAGE, 1)

    # Test
    updated = update_receipt_metadata(
        collection, IMAGE, 1, {"merchant_name": "Corner Market"}, logging.getLogger(__name__)
    )
    assert updated == len(ids)
    assert {m["merchant_name"] for m in metadatas(collection, ids).values()} == {"Corner Market"}


# --- merchant metadata -------------------------------------------------------------------


class TestUpdateReceiptMetadata:
    def test_update_metadata_for_words_collection(
        self, chroma: ChromaClient, test_logger: logging.Logger, caplog: pytest.LogCaptureFixture
    ) -> None:
        words = chroma.get_or_create_collection("words")
        ids = seed_words(words, IMAGE, 1)
        other = seed_words(words, IMAGE, 2)
        caplog.set_level(logging.INFO)

        updated = update_receipt_metadata(
            words,
            IMAGE,
            1,
            {"merchant_name": "Corner Market", "place_id": "p1", "address": None},
            test_logger,
        )

        assert updated == 4
        for metadata in metadatas(words, ids).values():
            assert metadata["merchant_name"] == "Corner Market"
            assert metadata["place_id"] == "p1"
            assert "address" not in metadata
            assert metadata["text"] == "t"  # update merges, other keys stay
        assert all("merchant_name" not in m for m in metadatas(words, other).values())
        record = next(r for r in caplog.records if r.getMessage() == "metadata update")
        assert (record.image_id, record.receipt_id) == (IMAGE, 1)  # type: ignore[attr-defined]

    def test_none_deletes_a_key(self, chroma: ChromaClient, test_logger: logging.Logger) -> None:
        words = chroma.get_or_create_collection("words")
        ids = seed_words(words, IMAGE, 1)
        update_receipt_metadata(
            words, IMAGE, 1, {"merchant_name": "A", "address": "x"}, test_logger
        )
        assert remove_receipt_metadata(words, IMAGE, 1, test_logger) == 4
        assert all("merchant_name" not in m for m in metadatas(words, ids).values())

    def test_receipt_without_records_updates_nothing(
        self, chroma: ChromaClient, test_logger: logging.Logger
    ) -> None:
        lines = chroma.get_or_create_collection("lines")
        assert update_receipt_metadata(lines, IMAGE, 9, {"merchant_name": "A"}, test_logger) == 0

    def test_failure_raises_instead_of_returning_zero(self, test_logger: logging.Logger) -> None:
        broken = MagicMock()
        broken.get.side_effect = RuntimeError("disk gone")
        with pytest.raises(
            OperationError, match=r"metadata update failed .* receipt 1: .*disk gone"
        ):
            update_receipt_metadata(broken, IMAGE, 1, {"merchant_name": "A"}, test_logger)


# --- labels ------------------------------------------------------------------------------


def test_reconstruct_label_metadata_follows_the_rules() -> None:
    labels = [
        make_label(
            IMAGE,
            1,
            1,
            1,
            "TOTAL",
            validation_status="VALID",
            timestamp_added="2026-11-28T10:00:00.000000+00:00",
        ),
        make_label(
            IMAGE,
            1,
            1,
            1,
            "TAX",
            validation_status="INVALID",
            timestamp_added="2026-11-28T11:00:00.000000+00:00",
        ),
        make_label(
            IMAGE,
            1,
            1,
            1,
            "DATE",
            validation_status="PENDING",
            label_proposed_by="gpt",
            timestamp_added="2026-11-28T09:00:00.000000+00:00",
        ),
        make_label(
            IMAGE,
            1,
            1,
            1,
            "SUBTOTAL",
            validation_status="PENDING",
            label_proposed_by="",
            timestamp_added="2026-11-28T12:00:00.000000+00:00",
        ),
    ]
    assert reconstruct_label_metadata(labels) == {
        "label_status": "validated",
        "valid_labels_array": ["TOTAL"],
        "invalid_labels_array": ["TAX"],
        "label_proposed_by": "gpt",
        "label_validated_at": "2026-11-28T10:00:00.000000+00:00",
        "labels_updated_at": "2026-11-28T12:00:00.000000+00:00",
    }
    pending = reconstruct_label_metadata([labels[2]])
    assert pending["label_status"] == "auto_suggested"
    assert pending["valid_labels_array"] is None
    unvalidated = reconstruct_label_metadata(
        [make_label(IMAGE, 1, 1, 1, "TAX", validation_status="NEEDS_REVIEW")]
    )
    assert unvalidated["label_status"] == "unvalidated"
    assert set(reconstruct_label_metadata([]).values()) == {None}


def test_update_word_labels_writes_each_word_from_its_rows(
    chroma: ChromaClient, test_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    words = chroma.get_or_create_collection("words")
    ids = seed_words(words, IMAGE, 1)
    caplog.set_level(logging.INFO)
    labels = [
        make_label(IMAGE, 1, 1, 1, "TOTAL", validation_status="VALID"),
        make_label(IMAGE, 1, 1, 2, "TAX", validation_status="INVALID"),
    ]
    assert update_word_labels(words, IMAGE, 1, labels, test_logger) == 4
    found = metadatas(words, ids)
    assert found[ids[0]]["valid_labels_array"] == ["TOTAL"]
    assert found[ids[0]]["label_status"] == "validated"
    assert found[ids[1]]["invalid_labels_array"] == ["TAX"]
    assert "label_status" not in found[ids[2]]
    assert any(r.getMessage() == "label update" for r in caplog.records)

    assert remove_word_labels(words, IMAGE, 1, test_logger) == 4
    assert all("label_status" not in m for m in metadatas(words, ids).values())


# --- deletions ---------------------------------------------------------------------------


def test_deletions_count_what_existed(chroma: ChromaClient, test_logger: logging.Logger) -> None:
    words = chroma.get_or_create_collection("words")
    ids = seed_words(words, IMAGE, 1)
    other = seed_words(words, OTHER_IMAGE, 1)
    absent = VectorKey(IMAGE, 1, 9, 9).vector_id
    assert (
        delete_embeddings(words, [ids[0], absent], test_logger, image_id=IMAGE, receipt_id=1) == 1
    )
    assert delete_embeddings(words, [ids[0]], test_logger, image_id=IMAGE, receipt_id=1) == 0
    assert delete_embeddings(words, ids, test_logger, image_id=IMAGE, receipt_id=1) == 3
    assert words.get(ids=ids, include=[])["ids"] == []
    assert sorted(words.get(ids=other, include=[])["ids"]) == sorted(other)


def test_label_times_compare_as_instants() -> None:
    """08:00-05:00 (13:00 UTC) is later than 12:00+00:00; a naive time is UTC."""
    labels = [
        make_label(
            IMAGE,
            1,
            1,
            1,
            "TOTAL",
            validation_status="VALID",
            timestamp_added="2026-11-28T12:00:00+00:00",
        ),
        make_label(
            IMAGE,
            1,
            1,
            1,
            "TAX",
            validation_status="VALID",
            timestamp_added="2026-11-28T08:00:00-05:00",
        ),
        make_label(
            IMAGE,
            1,
            1,
            1,
            "DATE",
            validation_status="PENDING",
            label_proposed_by="late",
            timestamp_added="2026-11-28T12:30:00",
        ),
        make_label(
            IMAGE,
            1,
            1,
            1,
            "ZIP",
            validation_status="PENDING",
            label_proposed_by="early",
            timestamp_added="2026-11-28T13:00:00+02:00",
        ),
    ]
    keys = reconstruct_label_metadata(labels)
    assert keys["label_validated_at"] == "2026-11-28T08:00:00-05:00"
    assert keys["labels_updated_at"] == "2026-11-28T08:00:00-05:00"
    assert keys["label_proposed_by"] == "late"


def test_key_writes_skip_records_that_already_hold_the_values(
    tmp_path: Any, test_logger: logging.Logger
) -> None:
    """Unchanged keys are not written: no write call reaches the collection."""
    with ChromaClient(tmp_path / "s", mode="write") as client:
        words = client.get_or_create_collection("words")
        seed_words(words, IMAGE, 1)
    with ChromaClient(tmp_path / "s", mode="write") as client:
        words = client.get_or_create_collection("words")
        first = apply_receipt_keys(
            words, IMAGE, 1, merchant={"merchant_name": "A"}, labels=None, logger=test_logger
        )
        assert (first.records, first.merchant_changed) == (4, 4)
        assert client.wrote
    with ChromaClient(tmp_path / "s", mode="write") as client:
        words = client.get_or_create_collection("words")
        again = apply_receipt_keys(
            words, IMAGE, 1, merchant={"merchant_name": "A"}, labels=[], logger=test_logger
        )
        assert (again.records, again.merchant_changed, again.labels_changed) == (4, 0, 0)
        assert not client.wrote
