"""A compactor killed with SIGKILL at each stage leaves a complete published version, and
re-running the same messages reaches the state of an uninterrupted run."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld, SnapshotContents
from receipt_dynamo.testing import (
    IMAGE_ID,
    OTHER_IMAGE_ID,
    make_label,
    make_metadata,
)

pytestmark = pytest.mark.integration
WORKER = Path(__file__).with_name("crash_worker.py")
LEASE_SECONDS = 3


def _world(root: Path) -> tuple[CompactionWorld, list[tuple[str, str]]]:
    """A world with a published base and a pending batch of words messages."""
    world = CompactionWorld(root)
    world.config = replace(
        world.config,
        lock_duration_seconds=LEASE_SECONDS,
        heartbeat_interval_seconds=1,
        lock_wait_seconds=10,
    )
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension), run_id="run-1")
    assert all(r.failures == [] for r in world.compact(world.pump()))
    # The batch: a second receipt's delta, merchant metadata, a label, a removal.
    world.add_receipt(
        SyntheticReceipt(OTHER_IMAGE_ID, 2, dimension=world.dimension), run_id="run-2"
    )
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1))
    world.dynamo.put_receipt_word_label(make_label(IMAGE_ID, 1, 2, 1, "TAX"))
    world.dynamo.delete_receipt_word(IMAGE_ID, 1, 3, 2)
    batch = [(mid, m.to_json()) for mid, m in world.pump()["words"]]
    return world, batch


def _final(world: CompactionWorld, batch: list[tuple[str, str]]) -> SnapshotContents:
    from receipt_dynamo_stream import StreamMessage

    messages = [(mid, StreamMessage.from_json(body)) for mid, body in batch]
    result = world.cycle("words").run(messages)
    assert result.failures == [], result.failures
    # Runs are created at a different moment in each world: compare which run supplied
    # each vector (embedding_run_id), not when that run was created.
    return {
        record_id: ({k: v for k, v in metadata.items() if k != "embedding_created_at"}, vector)
        for record_id, (metadata, vector) in world.snapshot_from_s3("words").items()
    }


@pytest.fixture(scope="module")
def reference(moto_server: Any, tmp_path_factory: pytest.TempPathFactory) -> SnapshotContents:
    """The uninterrupted run's final words snapshot."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in moto_server.environment().items():
            patch.setenv(name, value)
        world, batch = _world(tmp_path_factory.mktemp("reference"))
        return _final(world, batch)


@pytest.mark.parametrize("kill_at", ["opened", "mid_apply", "manifest_written", "committed"])
def test_killed_compactor_leaves_a_complete_version_and_recovers(
    aws_endpoint: str, tmp_path: Path, kill_at: str, reference: SnapshotContents
) -> None:
    world, batch = _world(tmp_path)
    base = world.published_version("words")
    args = {
        "table": world.table,
        "bucket": world.bucket,
        "chroma_root": str(world.config.chroma_root),
        "work_dir": str(world.config.work_dir),
        "dimension": world.dimension,
        "lock_duration": LEASE_SECONDS,
        "collection": "words",
        "kill_at": kill_at,
        "messages": batch,
    }
    (tmp_path / "args.json").write_text(json.dumps(args))
    completed = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path / "args.json")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == -9, completed.stderr[-2000:]

    # Whatever the pointer names now is complete and opens.
    version = world.published_version("words")
    expected_version = {"committed": "new"}.get(kill_at, base)
    if expected_version == base:
        assert version == base
    else:
        assert version != base
    contents = world.snapshot_from_s3("words", version)
    assert contents

    assert _final(world, batch) == reference
