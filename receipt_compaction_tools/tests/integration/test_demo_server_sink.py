"""``make demo DEMO_ARGS="--sink server"``: the demo starts its own ``chroma run`` on a
free port, runs the whole pipeline against it (contract §12) and stops it."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from receipt_compaction_tools.cli.demo import run_demo
from receipt_compaction_tools.local.dataset import generate

pytestmark = pytest.mark.integration


def test_the_demo_runs_the_pipeline_against_a_local_chroma_server() -> None:
    summary: dict[str, Any] = run_demo(
        receipts=3,
        dimension=8,
        seed=3,
        endpoint_url=None,
        progress=lambda *_: lambda _: None,
        sink="server",
    )
    assert summary["sink"] == "server"
    assert summary["cycles"]
    assert all(c["server_applied"] and not c["published"] for c in summary["cycles"])
    assert all(c["failures"] == 0 for c in summary["cycles"])
    assert set(summary["queue_depths"].values()) == {0}
    assert summary["snapshot"] == {"lines": {}, "words": {}}  # no snapshot was published

    dataset = generate(3, dimension=8, seed=3)
    edits = summary["edits"]
    words = dict(
        zip(summary["server"]["words"]["ids"], summary["server"]["words"]["metadatas"], strict=True)
    )
    survivors = [r for r in dataset.receipts if r.image_id != edits["receipt_deleted"]]
    assert len(words) == sum(len(r.word_rows) for r in survivors)
    assert summary["records"]["lines"] == 12 * 3 - 12 - 1
    corrected = [m for m in words.values() if m["image_id"] == edits["merchant_corrected"]]
    assert corrected
    assert all(m["canonical_merchant_name"].endswith(" Inc") for m in corrected)
    assert summary["sample_query"]

    # The server is stopped once the demo is done.
    port = int(summary["chroma_server"].split(":")[2].split("/")[0])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
