"""Deletes end before the lease's deadline (contract §6 rev 3, "Who may delete").

A delete call is allowed only while its worst case — every attempt's connect and read
timeouts plus the backoff between attempts — ends before the holder's deadline; a lease
that cannot be confirmed allows nothing. Checked on real botocore clients, a moto bucket
and a real EFS directory tree.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from receipt_chroma.compaction import EFSSnapshotManager
from receipt_chroma.snapshots import S3SnapshotStore
from receipt_chroma.snapshots.fence import DeleteFence, call_budget
from receipt_dynamo.exceptions import LeaseLostError

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def fence_at(deadline: datetime) -> DeleteFence:
    return DeleteFence(deadline, clock=lambda: NOW)


def test_a_call_budget_counts_every_attempt_and_the_backoff_between_them() -> None:
    bounded = boto3.client(
        "s3",
        region_name="us-east-1",
        config=Config(connect_timeout=1, read_timeout=5, retries={"total_max_attempts": 2}),
    )
    # 2 attempts of (1 + 5) s, and one backoff of at most 1 s.
    assert call_budget(bounded) == timedelta(seconds=13)
    # botocore's defaults: 60 s + 60 s per attempt; 5 attempts assumed (legacy mode's
    # count), backoffs of at most 1, 2, 4 and 8 s.
    assert call_budget(boto3.client("s3", region_name="us-east-1")) == timedelta(seconds=615)


def test_a_call_is_allowed_only_if_it_ends_before_the_deadline() -> None:
    fence = fence_at(NOW + timedelta(seconds=15))
    assert fence.allows(timedelta(seconds=14))
    assert fence.refused is None
    assert not fence.allows(timedelta(seconds=15))
    assert fence.refused is not None
    assert "lease deadline" in fence.refused


def test_a_lease_that_cannot_be_confirmed_allows_no_delete() -> None:
    confirmations: list[int] = []

    def lost() -> datetime:
        confirmations.append(1)
        raise LeaseLostError("lease on words is no longer held by a")

    fence = DeleteFence(confirm=lost, clock=lambda: NOW)
    assert not fence.allows()
    assert fence.refused is not None
    assert "no longer held" in fence.refused


def test_a_lazy_fence_confirms_once_at_its_first_delete() -> None:
    confirmations: list[int] = []

    def confirm() -> datetime:
        confirmations.append(1)
        return NOW + timedelta(minutes=2)

    fence = DeleteFence(confirm=confirm, clock=lambda: NOW)
    assert confirmations == []
    assert fence.allows(timedelta(seconds=30))
    assert fence.allows(timedelta(seconds=30))
    assert confirmations == [1]


def test_s3_deletes_stop_at_the_deadline(mocked_aws: None) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="snapshots")
    keys = [f"words/snapshot/objects/{n:064x}.zst" for n in range(3)]
    for key in keys:
        s3.put_object(Bucket="snapshots", Key=key, Body=b"x")
    store = S3SnapshotStore(s3, "snapshots", "words")

    left = store.delete_keys(keys, fence_at(NOW + timedelta(seconds=60)))  # default client

    assert left == 3  # its worst case (615 s) does not fit: no call made
    listed = s3.list_objects_v2(Bucket="snapshots")["Contents"]
    assert sorted(item["Key"] for item in listed) == keys
    assert store.delete_keys(keys, fence_at(NOW + timedelta(hours=1))) == 0
    assert s3.list_objects_v2(Bucket="snapshots").get("KeyCount") == 0


@pytest.mark.parametrize("confirmed", [True, False])
def test_efs_cleanup_deletes_only_under_a_confirmed_lease(tmp_path: Path, confirmed: bool) -> None:
    manager = EFSSnapshotManager(tmp_path, "words")
    versions = ["20261207_100000_000000_aaaaaaaa", "20261207_110000_000000_bbbbbbbb"]
    for version in versions:
        (tmp_path / "snapshots" / "words" / version).mkdir(parents=True)
        (tmp_path / "snapshots" / "words" / version / "chroma.sqlite3").write_bytes(b"db")
    deadline = NOW + (timedelta(minutes=2) if confirmed else -timedelta(seconds=1))

    deleted = manager.cleanup({versions[1]}, fence_at(deadline))

    assert deleted == ([versions[0]] if confirmed else [])
    left = sorted(p.name for p in (tmp_path / "snapshots" / "words").iterdir())
    assert left == (versions[1:] if confirmed else versions)


def test_a_delete_paused_before_it_is_sent_is_not_sent_late(mocked_aws: None) -> None:
    """The fence allows the call, then the request waits (a stalled thread) until the
    deadline has passed: the client's last step before sending checks again."""
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="snapshots")
    key = "words/snapshot/objects/" + "0" * 64 + ".zst"
    s3.put_object(Bucket="snapshots", Key=key, Body=b"x")
    moments = iter([NOW, NOW + timedelta(hours=2)])  # the check, then the send
    fence = DeleteFence(NOW + timedelta(hours=1), clock=lambda: next(moments))

    left = S3SnapshotStore(s3, "snapshots", "words").delete_keys([key], fence)

    assert left == 1
    assert s3.list_objects_v2(Bucket="snapshots")["KeyCount"] == 1
    assert fence.refused is not None
