"""DynamoClient against moto in-process: listings, runs, the lease and the pointer CAS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from receipt_dynamo import (
    CompactionState,
    EntityAlreadyExistsError,
    EntityNotFoundError,
    LeaseHeldError,
    LeaseLostError,
    PointerMovedError,
)
from receipt_dynamo.receipt_state import MerchantFields
from receipt_dynamo.testing import (
    TableFixture,
    make_compaction_run,
    make_label,
    make_line,
    make_metadata,
    make_receipt,
    make_word,
)

IMAGE = "3f52804b-2fad-4e00-92c8-b593da3a8ed3"
OTHER_IMAGE = "9a0e8f7d-1c2b-4a3e-9f00-112233445566"


def test_listings_paginate_to_the_end_and_filter_by_type(mocked_table: TableFixture) -> None:
    client = mocked_table.client
    lines = [make_line(IMAGE, 1, n) for n in range(1, 8)]
    words = [make_word(IMAGE, 1, n, w) for n in range(1, 8) for w in range(1, 4)]
    labels = [make_label(IMAGE, 1, 1, 1, name) for name in ("TOTAL", "DATE", "TAX")]
    client.put_entities([make_receipt(IMAGE, 1), make_metadata(IMAGE, 1), *lines, *words, *labels])
    # Rows of another receipt and another image must not leak into the listing.
    client.put_entities([make_line(IMAGE, 2, 1), make_line(OTHER_IMAGE, 1, 1)])

    listed = client.list_receipt_lines_from_receipt(IMAGE, 1, page_size=2)
    assert sorted(line.line_id for line in listed) == list(range(1, 8))
    assert len(client.list_receipt_words_from_receipt(IMAGE, 1, page_size=3)) == 21
    assert {lab.label for lab in client.list_receipt_word_labels_for_word(IMAGE, 1, 1, 1)} == {
        "TOTAL",
        "DATE",
        "TAX",
    }
    assert client.list_receipt_word_labels_for_word(IMAGE, 1, 1, 2) == []
    assert len(client.list_receipt_word_labels_for_receipt(IMAGE, 1, page_size=1)) == 3


def test_receipt_rows_come_from_one_query_of_the_receipt_only(
    mocked_table: TableFixture,
) -> None:
    client = mocked_table.client
    client.put_entities(
        [
            make_receipt(IMAGE, 1),
            make_metadata(IMAGE, 1),
            make_line(IMAGE, 1, 1),
            make_word(IMAGE, 1, 1, 1),
            make_word(IMAGE, 1, 1, 2),
            make_label(IMAGE, 1, 1, 1, "TOTAL"),
            make_compaction_run(IMAGE, 1, "run-1"),
            make_receipt(IMAGE, 10),  # RECEIPT#00010 must not match RECEIPT#00001
            make_line(IMAGE, 10, 1),
        ]
    )
    rows = client.get_receipt_state(IMAGE, 1, page_size=2)
    assert rows.exists
    assert rows.metadata == MerchantFields(
        merchant_name="Corner Market",
        place_id="ChIJ-test-place",
        timestamp="2026-11-28T10:15:00.000000+00:00",
        merchant_category="grocery",
        address="1 Main St",
        phone_number="555-0100",
    )
    assert rows.line_ids == {1}
    assert rows.word_ids == {(1, 1), (1, 2)}
    assert [label.label for label in rows.labels] == ["TOTAL"]
    assert [run.run_id for run in rows.runs] == ["run-1"]
    assert not client.get_receipt_state(IMAGE, 2).exists


def test_receipt_rows_leave_out_rows_whose_used_attributes_are_invalid(
    mocked_table: TableFixture,
) -> None:
    """Only what the compactor uses is validated; a bad row is reported, not raised."""
    client = mocked_table.client
    client.put_entities(
        [make_receipt(IMAGE, 1), make_line(IMAGE, 1, 1), make_label(IMAGE, 1, 1, 1, "TOTAL")]
    )
    put = client.client.put_item
    pk = {"S": f"IMAGE#{IMAGE}"}
    bad_time = {
        "PK": pk,
        "SK": {"S": "RECEIPT#00001#LINE#00001#WORD#00001#LABEL#TAX"},
        "TYPE": {"S": "RECEIPT_WORD_LABEL"},
        "timestamp_added": {"S": "not-a-time"},
        "validation_status": {"S": "VALID"},
    }
    odd_unused = {  # reasoning is not used: a number there spoils nothing
        "PK": pk,
        "SK": {"S": "RECEIPT#00001#METADATA"},
        "TYPE": {"S": "RECEIPT_METADATA"},
        "merchant_name": {"S": "Shop"},
        "place_id": {"S": "p1"},
        "timestamp": {"S": "2026-11-28T10:15:00-05:00"},
        "reasoning": {"N": "5"},
    }
    for item in (bad_time, odd_unused):
        put(TableName=mocked_table.name, Item=item)
    rows = client.get_receipt_state(IMAGE, 1)
    assert rows.exists
    assert rows.line_ids == {1}
    assert [label.label for label in rows.labels] == ["TOTAL"]
    assert rows.metadata == MerchantFields(
        merchant_name="Shop", place_id="p1", timestamp="2026-11-28T10:15:00-05:00"
    )
    assert [(row.sk, row.entity_type) for row in rows.invalid_rows] == [
        ("RECEIPT#00001#LINE#00001#WORD#00001#LABEL#TAX", "RECEIPT_WORD_LABEL")
    ]
    assert "timestamp_added" in rows.invalid_rows[0].reason


def test_get_put_delete_and_not_found(mocked_table: TableFixture) -> None:
    client = mocked_table.client
    receipt = make_receipt(IMAGE, 1)
    client.put_receipt(receipt)
    assert client.get_receipt(IMAGE, 1) == receipt
    client.delete_receipt(IMAGE, 1)
    with pytest.raises(
        EntityNotFoundError, match=r"Receipt not found: PK='IMAGE#3f52.*RECEIPT#00001"
    ):
        client.get_receipt(IMAGE, 1)
    assert client.find_receipt(IMAGE, 1) is None
    assert client.find_receipt_metadata(IMAGE, 1) is None


def test_compaction_run_transitions_touch_one_collection(mocked_table: TableFixture) -> None:
    client = mocked_table.client
    run = make_compaction_run(IMAGE, 1, "run-1")
    client.add_compaction_run(run)
    with pytest.raises(EntityAlreadyExistsError, match="COMPACTION_RUN#run-1"):
        client.add_compaction_run(run)

    started = client.mark_compaction_run_started(IMAGE, 1, "run-1", "lines")
    assert started.lines_state is CompactionState.PROCESSING
    assert started.lines_started_at is not None
    assert started.words_state is CompactionState.PENDING

    failed = client.mark_compaction_run_failed(IMAGE, 1, "run-1", "words", "delta missing")
    assert (failed.words_state, failed.words_error) == (CompactionState.FAILED, "delta missing")
    assert failed.lines_state is CompactionState.PROCESSING

    done = client.mark_compaction_run_completed(IMAGE, 1, "run-1", "lines", 42)
    assert (done.lines_state, done.lines_merged_vectors) == (CompactionState.COMPLETED, 42)
    assert done.words_state is CompactionState.FAILED
    assert done.words_error == "delta missing"
    assert done.updated_at is not None
    assert client.get_compaction_run(IMAGE, 1, "run-1") == done
    assert client.list_compaction_runs_for_receipt(IMAGE, 1) == [done]

    with pytest.raises(EntityNotFoundError, match="run-2"):
        client.mark_compaction_run_started(IMAGE, 1, "run-2", "lines")


def test_lease_is_exclusive_until_expiry(mocked_table: TableFixture) -> None:
    client = mocked_table.client
    now = datetime.now(UTC)
    first = client.acquire_lease("words", owner="a", duration_seconds=60, now=now)
    assert first.owner == "a"
    with pytest.raises(LeaseHeldError, match="held by a"):
        client.acquire_lease("words", owner="b", duration_seconds=60, now=now)
    # The other collection has its own lease.
    client.acquire_lease("lines", owner="b", duration_seconds=60, now=now)

    later = now + timedelta(seconds=61)
    second = client.acquire_lease("words", owner="b", duration_seconds=60, now=later)
    assert second.owner == "b"
    assert second.fencing_token > first.fencing_token

    # The stale holder can neither extend nor release the new owner's lease.
    with pytest.raises(LeaseLostError):
        client.heartbeat_lease(
            "words", owner="a", fencing_token=first.fencing_token, duration_seconds=60
        )
    with pytest.raises(LeaseLostError):
        client.release_lease("words", owner="a")
    extended = client.heartbeat_lease(
        "words", owner="b", fencing_token=second.fencing_token, duration_seconds=120, now=later
    )
    assert extended.expires > second.expires

    client.release_lease("words", owner="b")
    row = client.get_compaction_lock("words")
    assert row is not None
    assert row.owner is None
    assert row.fencing_token == second.fencing_token  # the token survives release
    third = client.acquire_lease("words", owner="c", duration_seconds=60)
    assert third.fencing_token == second.fencing_token + 1


def test_fencing_token_continues_from_pointer_after_row_removal(
    mocked_table: TableFixture,
) -> None:
    client = mocked_table.client
    lease = client.acquire_lease("lines", owner="a", duration_seconds=60)
    client.swap_snapshot_pointer(
        "lines", "v1", base=None, owner="a", fencing_token=lease.fencing_token
    )
    boto3.client("dynamodb").delete_item(
        TableName=mocked_table.name,
        Key={"PK": {"S": "LOCK#lines#chroma-lines-compaction"}, "SK": {"S": "LOCK"}},
    )
    pointer = client.get_snapshot_pointer("lines")
    assert pointer is not None
    again = client.acquire_lease(
        "lines", owner="b", duration_seconds=60, pointer_token=pointer.fencing_token
    )
    assert again.fencing_token > lease.fencing_token


def test_pointer_compare_and_swap_has_one_winner(mocked_table: TableFixture) -> None:
    client = mocked_table.client
    lease = client.acquire_lease("lines", owner="a", duration_seconds=60)
    token = lease.fencing_token
    v1 = client.swap_snapshot_pointer("lines", "v1", base=None, owner="a", fencing_token=token)

    # Two publishes from the same base version: the first moves the pointer...
    v2 = client.swap_snapshot_pointer("lines", "v2", base=v1, owner="a", fencing_token=token)
    assert (v2.version, v2.previous_version, v2.history) == ("v2", "v1", ("v2", "v1"))
    # ...and the second, still based on v1, is refused.
    with pytest.raises(PointerMovedError, match="moved away from v1"):
        client.swap_snapshot_pointer("lines", "v3", base=v1, owner="a", fencing_token=token)
    # Creating a pointer that already exists is refused the same way.
    with pytest.raises(PointerMovedError):
        client.swap_snapshot_pointer("lines", "v3", base=None, owner="a", fencing_token=token)
    assert client.get_snapshot_pointer("lines") == v2


def test_publish_without_the_lease_is_refused(mocked_table: TableFixture) -> None:
    client = mocked_table.client
    now = datetime.now(UTC)
    old = client.acquire_lease("words", owner="a", duration_seconds=1, now=now - timedelta(5))
    new = client.acquire_lease("words", owner="b", duration_seconds=60)
    with pytest.raises(LeaseLostError, match="no longer held by a"):
        client.swap_snapshot_pointer(
            "words", "v1", base=None, owner="a", fencing_token=old.fencing_token
        )
    assert client.get_snapshot_pointer("words") is None
    published = client.swap_snapshot_pointer(
        "words", "v1", base=None, owner="b", fencing_token=new.fencing_token
    )
    assert published.fencing_token == new.fencing_token


def test_adopting_a_pointer_happens_once_and_only_under_the_lease(
    mocked_table: TableFixture,
) -> None:
    """Contract §6 rev 3: adoption is the publish transaction — lock check included."""
    client = mocked_table.client
    lease = client.acquire_lease("words", owner="a", duration_seconds=60)
    with pytest.raises(LeaseLostError):
        client.adopt_snapshot_pointer("words", "v0", owner="b", fencing_token=lease.fencing_token)
    assert client.get_snapshot_pointer("words") is None
    adopted = client.adopt_snapshot_pointer(
        "words", "v0", owner="a", fencing_token=lease.fencing_token
    )
    assert (adopted.version, adopted.fencing_token, adopted.history) == ("v0", 0, ("v0",))
    stored = client.get_snapshot_pointer("words")
    assert stored is not None
    assert (stored.version, stored.fencing_token) == ("v0", 0)
    with pytest.raises(PointerMovedError):
        client.adopt_snapshot_pointer("words", "v9", owner="a", fencing_token=lease.fencing_token)
