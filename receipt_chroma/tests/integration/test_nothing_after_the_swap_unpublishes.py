"""Once the pointer swap committed a version, what fails afterwards never reports its
messages failed (contract §5.2 step 5: exactly the messages whose effect is not
published), and a run that could not be marked is not acknowledged until a retry marks it.
Faults are injected where a user meets them: a full disk, a DynamoDB call that fails."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from receipt_chroma.snapshots import CacheTier, WorkingCopy
from receipt_chroma.stages import Stage
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo.testing import IMAGE_ID, make_metadata

pytestmark = pytest.mark.integration


@pytest.fixture
def world(aws_endpoint: str, tmp_path: Path) -> CompactionWorld:
    world = CompactionWorld(tmp_path)
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, lines=2, words_per_line=2, dimension=8))
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1))
    return world


def _fail_next(world: CompactionWorld, operation: str, key_part: str) -> Callable[[], None]:
    """Arm: the next DynamoDB ``operation`` whose key names ``key_part`` fails once."""
    armed: list[bool] = []

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if armed and key_part in str(params.get("Key")):
            armed.clear()
            raise ClientError(
                {"Error": {"Code": "InternalError", "Message": "injected"}}, operation
            )

    world.dynamo.client.meta.events.register(f"before-parameter-build.dynamodb.{operation}", refuse)
    return lambda: armed.append(True)


def _merchants(world: CompactionWorld) -> set[str]:
    return {meta["merchant_name"] for meta, _ in world.snapshot_from_s3("words").values()}


def test_a_copy_that_cannot_be_labelled_after_the_swap_keeps_the_version_published(
    world: CompactionWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    cycle = world.cycle("words")
    assert cycle.run(world.pump()["words"]).failures == []
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Corner Mkt"))
    messages = world.pump()["words"]

    def disk_full(self: WorkingCopy, version: str, manifest: Any = None) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(WorkingCopy, "relabel", disk_full)
        result = cycle.run(messages)

    assert result.failures == []
    assert result.published_version == world.published_version("words")
    assert _merchants(world) == {"Corner Mkt"}
    assert any("No space left" in e for e in result.derived_cache_errors)
    # The unlabelled copy is read again from a cache tier by the next cycle.
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Later"))
    later = cycle.run(world.pump()["words"])
    assert later.failures == []
    assert later.tier is not CacheTier.WARM
    assert _merchants(world) == {"Later"}


def test_a_lease_that_cannot_be_released_loses_nothing_the_cycle_did(
    world: CompactionWorld,
) -> None:
    arm = _fail_next(world, "UpdateItem", "LOCK")
    cycle = world.cycle("words", on_stage=lambda s: arm() if s is Stage.RETAIN else None)

    result = cycle.run(world.pump()["words"])

    assert result.failures == []
    assert result.published_version == world.published_version("words")


def test_a_run_that_cannot_be_marked_is_not_acknowledged_and_its_retry_marks_it(
    world: CompactionWorld,
) -> None:
    arm = _fail_next(world, "UpdateItem", "COMPACTION_RUN")
    cycle = world.cycle("words", on_stage=lambda s: arm() if s is Stage.EFS else None)
    messages = world.pump()["words"]
    run_messages = {m for m, message in messages if message.entity_type == "COMPACTION_RUN"}
    assert run_messages

    result = cycle.run(messages)

    assert result.published_version is not None
    assert result.failed_message_ids == run_messages
    assert all("not marked" in f.reason for f in result.failures)
    (run,) = world.dynamo.list_compaction_runs_for_receipt(IMAGE_ID, 1)
    assert run.words_state.value == "PROCESSING"

    retry = cycle.run([(m, message) for m, message in messages if m in run_messages])

    assert retry.failures == []
    (run,) = world.dynamo.list_compaction_runs_for_receipt(IMAGE_ID, 1)
    assert run.words_state.value == "COMPLETED"
