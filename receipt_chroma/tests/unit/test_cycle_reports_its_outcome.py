"""Contract §9: the metrics a finished cycle reports under its collection (names, units
and values written out here from the contract) and the fields of its log line."""

from __future__ import annotations

import json

from receipt_chroma import CycleResult, MessageFailure
from receipt_chroma.compaction import CollectionUpdateResult, FailureCause, RunMergeResult
from receipt_chroma.lambda_support import (
    CycleMetric,
    VisibilityReset,
    cycle_log_fields,
    cycle_metrics,
)
from receipt_chroma.snapshots import CacheTier
from receipt_dynamo import ChromaDBCollection
from receipt_dynamo_stream import StreamMessage

WORDS = ChromaDBCollection.WORDS
IMAGE_ID = "3f52804b-2fad-4e00-92c8-b593da3a8ed3"


def _message(entity_type: str, **entity_data: object) -> StreamMessage:
    return StreamMessage.from_json(
        json.dumps(
            {
                "schema_version": 1,
                "source": "backfill",
                "entity_type": entity_type,
                "event_name": "INSERT",
                "collection": "words",
                "entity_data": {"image_id": IMAGE_ID, "receipt_id": 1, **entity_data},
                "changes": {},
                "sequence_number": None,
                "change_time": None,
                "stream_record_id": None,
                "aws_region": None,
                "timestamp": "2026-11-28T10:15:01+00:00",
            }
        )
    )


def _run(run_id: str, merged: int, error: str | None = None) -> RunMergeResult:
    return RunMergeResult(run_id, IMAGE_ID, 1, WORDS, merged_vectors=merged, error=error)


def _reported(metrics: list[CycleMetric]) -> dict[str, object]:
    names = [m.name for m in metrics]
    assert len(names) == len(set(names)), names  # each name once per cycle
    return {m.name: (m.unit, m.value) for m in metrics}


def test_a_published_cycle_reports_what_it_merged_updated_and_moved() -> None:
    update = CollectionUpdateResult(
        WORDS,
        runs=[_run("run-1", 6), _run("run-2", 4), _run("run-3", 0, error="delta missing")],
        metadata_updates=6,
        label_updates=2,
        records_deleted=1,
        invalid_rows=0,
    )
    result = CycleResult(
        WORDS,
        ["m1", "m2", "m3", "m4"],
        tier=CacheTier.CATCH_UP,
        published_version="v2",
        base_version="v1",
        update=update,
        # The snapshot commit's stages make PublishTime; retention is not publishing.
        timings_ms={
            "lease_wait": 12.0,
            "apply": 40.5,
            "check": 100.0,
            "upload": 150.0,
            "commit": 50.25,
            "retain": 999.0,
        },
        snapshot_bytes_uploaded=2048,
        snapshot_bytes_downloaded=512,
        unindexed_records=7,
    )
    messages = [
        _message("COMPACTION_RUN", run_id="run-1", delta_s3_prefix="words/delta/run-1/"),
        _message("RECEIPT_METADATA"),
        _message("RECEIPT_WORD_LABEL", line_id=1, word_id=1, label="TOTAL"),
        _message("RECEIPT_WORD_LABEL", line_id=1, word_id=2, label="DATE"),
    ]

    reported = _reported(cycle_metrics(result, messages))

    assert reported == {
        "MessagesCompactionRun": ("Count", 1),
        "MessagesReceiptMetadata": ("Count", 1),
        "MessagesReceiptWordLabel": ("Count", 2),
        "CacheTierCatchUp": ("Count", 1),
        "DeltasMerged": ("Count", 2),  # run-3 failed
        "VectorsMerged": ("Count", 10),
        "CompactionMetadataUpdates": ("Count", 6),
        "CompactionLabelUpdates": ("Count", 2),
        "RecordsDeleted": ("Count", 1),
        "InvalidTableRows": ("Count", 0),
        "SnapshotPublished": ("Count", 1),
        "LeaseWaitTime": ("Milliseconds", 12.0),
        "ApplyTime": ("Milliseconds", 40.5),
        "PublishTime": ("Milliseconds", 300.25),
        "MessageFailures": ("Count", 0),
        "SnapshotBytesUploaded": ("Bytes", 2048),
        "SnapshotBytesDownloaded": ("Bytes", 512),
        "UnindexedRecords": ("Count", 7),
        "SnapshotCacheRepairs": ("Count", 0),
        "EfsFailures": ("Count", 0),
        "CacheRepairFailures": ("Count", 0),
        "RetentionSkipped": ("Count", 0),
        "EfsWriteFailures": ("Count", 0),
    }


def test_a_cycle_that_published_nothing_reports_no_publish_time() -> None:
    """A cycle with nothing to write still runs the commit stage (its copy relabelled)."""
    result = CycleResult(
        WORDS, ["m1"], tier=CacheTier.WARM, base_version="v1", timings_ms={"commit": 3.0}
    )
    reported = _reported(cycle_metrics(result, [_message("RECEIPT_METADATA")]))
    assert "PublishTime" not in reported
    assert "SnapshotPublished" not in reported


def test_each_failure_cause_has_its_alarm_metric() -> None:
    alarms = {
        FailureCause.LEASE_ACQUISITION: "LeaseAcquisitionFailures",
        FailureCause.LEASE_LOST: "LeaseLost",
        FailureCause.POINTER_MOVED: "SnapshotPublishFailures",
        FailureCause.PUBLISH_FAILED: "SnapshotPublishFailures",
        FailureCause.SNAPSHOT_UNAVAILABLE: "SnapshotUnavailable",
        FailureCause.SINK_UNAVAILABLE: "SinkUnavailable",
    }
    assert set(alarms) == set(FailureCause)
    for cause, alarm in alarms.items():
        result = CycleResult(WORDS, ["m1", "m2"]).fail_all(cause, "why")
        reset = VisibilityReset(timeout_seconds=40, reset=1, failed=1)

        reported = _reported(cycle_metrics(result, [], reset))

        assert reported[alarm] == ("Count", 1)
        assert reported["MessageFailures"] == ("Count", 2)
        assert reported["VisibilityResets"] == ("Count", 1)
        assert reported["VisibilityResetFailures"] == ("Count", 1)
        # Nothing was applied or published: no counts of an update, no publish.
        assert not {"VectorsMerged", "SnapshotPublished", "UnindexedRecords"} & set(reported)


def test_a_server_cycle_reports_its_acknowledged_writes_and_cache_errors() -> None:
    result = CycleResult(
        WORDS,
        ["m1"],
        sink="server",
        server_applied=True,
        derived_cache_errors=["run marks: throttled", "pointer file: denied"],
        timings_ms={"server_apply": 9.0},
    )

    reported = _reported(cycle_metrics(result, []))

    assert reported["ServerSinkApplied"] == ("Count", 1)
    assert reported["DerivedCacheErrors"] == ("Count", 2)
    assert reported["ServerApplyTime"] == ("Milliseconds", 9.0)
    assert "VisibilityResets" not in reported  # nothing was retried early


def test_the_log_line_names_the_outcome() -> None:
    result = CycleResult(
        WORDS,
        ["m1", "m2"],
        failures=[MessageFailure("m2", "publish_failed: boom")],
        cause=FailureCause.PUBLISH_FAILED,
        tier=CacheTier.WARM,
        base_version="v1",
        timings_ms={"lease_wait": 1.04, "apply": 2.25},
    )

    assert cycle_log_fields(result, 2) == {
        "collection": "words",
        "messages": 2,
        "failed": 1,
        "cause": "publish_failed",
        "sink": "snapshot",
        "tier": "warm",
        "version": None,
        "base_version": "v1",
        "timings_ms": {"lease_wait": 1.0, "apply": 2.2},
        "derived_cache_errors": [],
    }
