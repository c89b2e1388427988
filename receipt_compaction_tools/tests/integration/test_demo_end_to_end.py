"""The demo, in process, on a small dataset: the published snapshots equal what the table
says, and the CLI's user errors print one line and exit non-zero."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from receipt_compaction_tools.cli.demo import run_demo
from receipt_compaction_tools.cli.main import main
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


def test_cli_prints_one_line_for_a_malformed_replay_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"dynamodb": {}}\nnot json\n')
    code = main(["replay", str(events), "--table", "t", "--bucket", "b"])
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert error.startswith("error:")
    assert "events.jsonl:2: not a JSON record" in error
    assert "Traceback" not in error


def test_cli_reports_an_unreachable_endpoint_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "snapshot",
            "list",
            "--table",
            "t",
            "--bucket",
            "b",
            "--endpoint-url",
            "http://127.0.0.1:9",
        ]
    )
    error = capsys.readouterr().err
    assert code == 1
    assert "cannot reach AWS" in error
    assert "Traceback" not in error


def test_cli_reports_a_missing_bucket(
    aws_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from receipt_dynamo import create_table

    create_table("cli-table")
    code = main(
        [
            "snapshot",
            "inspect",
            "v1",
            "--table",
            "cli-table",
            "--bucket",
            "no-such-bucket",
            "--json",
        ]
    )
    assert code == 1
    assert "NoSuchBucket" in capsys.readouterr().err


def test_cli_demo_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--receipts", "2"])
    assert "must be at least 3" in capsys.readouterr().err
    assert main(["demo", "--receipts", "3", "--dim", "8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["records"]["words"] > 0
    assert "snapshot" not in result
