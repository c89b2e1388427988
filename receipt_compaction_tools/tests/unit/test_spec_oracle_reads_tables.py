"""The oracle reads a table back into the model it writes: what the reliability suite
(which has only the table) expects equals what the model that wrote the table expects."""

from __future__ import annotations

import pytest

from receipt_compaction_tools.testing import spec_oracle as oracle

IMAGE_ID = "3f2a8c1e-5b7d-4e09-9c3a-6d1f0b2e4a58"
RUN_OLD = "0b6a4d52-1111-4c1e-9a51-3f2e1d0c9b8a"
RUN_NEW = "0b6a4d52-2222-4c1e-9a51-3f2e1d0c9b8a"


def written_model() -> oracle.TableModel:
    model = oracle.TableModel()
    receipt = model.receipt(IMAGE_ID, 7)
    receipt.exists = True
    for line_id in (1, 2):
        receipt.lines[line_id] = oracle.LineRow(line_id, f"line {line_id}")
        for word_id in (1, 2):
            receipt.words[(line_id, word_id)] = oracle.WordRow(line_id, word_id, "w")
    receipt.labels[(1, 1, "TOTAL")] = oracle.LabelRow(
        1, 1, "TOTAL", "2026-11-28T10:00:00-05:00", "VALID", "gpt", "seen"
    )
    receipt.labels[(1, 1, "TAX")] = oracle.LabelRow(
        1, 1, "TAX", "2026-11-28T12:00:00+00:00", "PENDING", "human"
    )
    receipt.labels[(2, 2, "DATE")] = oracle.LabelRow(2, 2, "DATE", "not-a-time", "INVALID")
    receipt.metadata = oracle.MetadataRow(
        "Corner Mkt", "ChIJ-1", "2026-11-28T09:00:00Z", phone_number="555-0100"
    )
    receipt.runs[RUN_OLD] = oracle.RunRow(
        RUN_OLD,
        "2026-11-28T08:00:00+00:00",
        frozenset({1, 2}),
        frozenset({(1, 1), (2, 2)}),
        f"lines/delta/{RUN_OLD}/",
        f"words/delta/{RUN_OLD}/",
    )
    receipt.runs[RUN_NEW] = oracle.RunRow(
        RUN_NEW,
        "2026-11-28T04:00:00-05:00",
        frozenset({2}),
        frozenset({(1, 1), (1, 2)}),
        f"lines/delta/{RUN_NEW}/",
        f"words/delta/{RUN_NEW}/",
    )
    other = model.receipt(IMAGE_ID, 8)  # rows without their Receipt row: no records
    other.lines[1] = oracle.LineRow(1, "orphan")
    return model


def contents(model: oracle.TableModel) -> dict[str, oracle.RunContents]:
    return {
        run.run_id: (run.line_ids, run.word_ids)
        for receipt in model.receipts.values()
        for run in receipt.runs.values()
    }


@pytest.mark.parametrize("collection", oracle.COLLECTIONS)
def test_a_table_read_back_expects_what_its_model_expects(collection: str) -> None:
    model = written_model()
    items = [*model.items().values()]
    items.append({"PK": {"S": "LOCK#words#x"}, "SK": {"S": "LOCK"}, "owner": {"S": "a"}})
    read_back = oracle.model_from_items(items, contents(model))
    expected = oracle.expected_collection(model, collection)
    assert expected, "the example must expect records"
    assert oracle.expected_collection(read_back, collection) == expected


def test_a_run_whose_contents_are_unknown_is_refused() -> None:
    model = written_model()
    with pytest.raises(KeyError, match=RUN_NEW):
        oracle.model_from_items(model.items().values(), {RUN_OLD: (frozenset(), frozenset())})


def test_an_image_row_with_an_unknown_sort_key_is_refused() -> None:
    item = {"PK": {"S": f"IMAGE#{IMAGE_ID}"}, "SK": {"S": "RECEIPT#00001#NOTE#1"}}
    with pytest.raises(ValueError, match="NOTE"):
        oracle.model_from_items([item], {})
