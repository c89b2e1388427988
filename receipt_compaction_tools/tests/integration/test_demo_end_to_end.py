"""The demo, in process, on a small dataset: the published snapshots equal what the table
says. (The CLI itself is tested in test_cli.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from receipt_compaction_tools.cli.demo import run_demo
from receipt_compaction_tools.local.dataset import generate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def summary() -> dict[str, Any]:
    return run_demo(
        receipts=5, dimension=16, seed=3, endpoint_url=None, progress=lambda *_: lambda _: None
    )


def test_every_surviving_word_carries_its_merchant_and_labels(summary: dict[str, Any]) -> None:
    dataset = generate(5, dimension=16, seed=3)
    edits = summary["edits"]
    words = summary["snapshot"]["words"]
    by_id = dict(zip(words["ids"], words["metadatas"], strict=True))
    merchants = {m.image_id: m for m in dataset.metadata}
    survivors = [r for r in dataset.receipts if r.image_id != edits["receipt_deleted"]]
    assert len(by_id) == sum(len(r.word_rows) for r in survivors)
    for receipt in survivors:
        for word in receipt.word_rows:
            metadata = by_id[
                f"IMAGE#{receipt.image_id}#RECEIPT#00001#LINE#{word.line_id:05d}#WORD#{word.word_id:05d}"
            ]
            assert metadata["merchant_name"] == merchants[receipt.image_id].merchant_name
            assert metadata["text"] == word.text
    corrected = [m for m in by_id.values() if m["image_id"] == edits["merchant_corrected"]]
    assert corrected
    assert all(m["canonical_merchant_name"].endswith(" Inc") for m in corrected)
    statuses = {m.get("label_status") for m in by_id.values()}
    assert {"validated", "auto_suggested"} <= statuses
    assert any(m.get("invalid_labels_array") for m in by_id.values())


def test_deleted_receipt_and_line_have_no_records(summary: dict[str, Any]) -> None:
    edits = summary["edits"]
    for collection in ("lines", "words"):
        metadatas = summary["snapshot"][collection]["metadatas"]
        assert all(m["image_id"] != edits["receipt_deleted"] for m in metadatas)
    image_id, receipt_id, line_id = edits["line_removed"]
    assert (
        f"IMAGE#{image_id}#RECEIPT#{receipt_id:05d}#LINE#{line_id:05d}"
        not in summary["snapshot"]["lines"]["ids"]
    )
    assert summary["records"]["lines"] == 12 * 5 - 12 - 1


def test_queues_drained_and_every_cycle_published(summary: dict[str, Any]) -> None:
    assert set(summary["queue_depths"].values()) == {0}
    assert all(c["failures"] == 0 for c in summary["cycles"])
    assert {c["tier"] for c in summary["cycles"]} == {"bootstrap", "warm"}
    assert summary["sample_query"]
