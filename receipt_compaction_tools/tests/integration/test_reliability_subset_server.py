"""The CI-sized subset of the reliability suite with a Chroma server as the sink (contract
§12): the sustained-load and crash scenarios against a real ``chroma run``. A file of its own,
apart from the snapshot-sink subset, so the two long tests can run on different workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from receipt_compaction_tools.local.reliability import run_suite

pytestmark = [pytest.mark.integration, pytest.mark.slow(seconds=60), pytest.mark.timeout(900)]


def test_reliability_subset_with_a_chroma_server_as_the_sink(tmp_path: Path) -> None:
    """Contract §12: the sustained-load and crash scenarios against a real ``chroma run``
    — the server's collections must converge to what the oracle derives from the table."""
    only = ["sustained_load", "crashes"]
    report = run_suite("ci", tmp_path, only, jobs=2, sink="server")
    assert report["sink"] == "server"
    assert set(report["scenarios"]) == set(only)
    for name, result in report["scenarios"].items():
        assert result["sink"] == "server", (name, result)
        assert (result.get("missing"), result.get("extra"), result.get("stale")) == (0, 0, 0), (
            name,
            result,
        )
        assert result["records"] > 0, (name, result)
        assert result["passed"], (name, result)
    assert report["scenarios"]["crashes"]["kills"]["compactor"] > 0
