"""Each stage of a cycle is its own tracing subsegment inside the cycle's: the cycle marks
the end of a stage, which closes its subsegment and opens the next stage's."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from receipt_chroma.lambda_support import StageSegments


class RecordingProvider:
    """A tracing provider that records when each subsegment opens and closes."""

    def __init__(self) -> None:
        self.events: list[str] = []

    @contextmanager
    def in_subsegment(self, name: Any = None, **_: Any) -> Iterator[None]:
        self.events.append(f"open {name}")
        try:
            yield
        finally:
            self.events.append(f"close {name}")


class RecordingTracer:
    def __init__(self) -> None:
        self.provider = RecordingProvider()


def test_a_published_cycle_has_one_subsegment_per_stage_in_order() -> None:
    tracer = RecordingTracer()
    stages = StageSegments(tracer)

    with stages.cycle("words"):
        for mark in (
            "lease_acquired",
            "working_copy_ready",
            "applied",
            "checked",
            "objects_uploaded",
            "uploaded",
            "committed",
            "pointer_file_synced",
            "efs_written",
            "runs_marked",
            "retained",
        ):
            stages.mark(mark)

    names = [e.removeprefix("open ") for e in tracer.provider.events if e.startswith("open")]
    assert names == [
        "## compaction_cycle words",
        "## lease",
        "## working_copy",
        "## apply",
        "## publish_check",
        "## publish_upload",
        "## publish_manifest",
        "## publish_swap",
        "## publish_derived_caches",
        "## publish_efs",
        "## publish_run_marks",
        "## publish_retention",
        "## release",
    ]
    # One stage at a time, each inside the cycle's subsegment, all closed with it.
    events = tracer.provider.events
    assert events[-2:] == ["close ## release", "close ## compaction_cycle words"]
    for before, after in itertools.pairwise(names[1:]):
        assert events.index(f"close {before}") < events.index(f"open {after}")


def test_a_server_cycle_and_an_unknown_mark_are_traced() -> None:
    tracer = RecordingTracer()
    stages = StageSegments(tracer)

    with stages.cycle("lines"):
        stages.mark("server_applied")
        stages.mark("something_new")

    assert tracer.provider.events == [
        "open ## compaction_cycle lines",
        "open ## lease",
        "close ## lease",
        "open ## run_marks_and_release",
        "close ## run_marks_and_release",
        "open ## after_something_new",
        "close ## after_something_new",
        "close ## compaction_cycle lines",
    ]


def test_a_cycle_that_raises_closes_its_open_stage() -> None:
    tracer = RecordingTracer()
    stages = StageSegments(tracer)

    def cycle_that_raises() -> None:
        with stages.cycle("words"):
            stages.mark("lease_acquired")
            raise RuntimeError("S3 down")

    with pytest.raises(RuntimeError, match="S3 down"):
        cycle_that_raises()

    assert tracer.provider.events[-2:] == [
        "close ## working_copy",
        "close ## compaction_cycle words",
    ]
    # The next cycle starts afresh with its lease.
    with stages.cycle("words"):
        pass
    assert tracer.provider.events[-3:] == [
        "open ## lease",
        "close ## lease",
        "close ## compaction_cycle words",
    ]


def test_the_tracer_provider_is_found_at_each_stage() -> None:
    tracer = RecordingTracer()
    stages = StageSegments(tracer)
    first = tracer.provider
    tracer.provider = RecordingProvider()  # e.g. swapped after the handler was imported

    with stages.cycle("words"):
        stages.mark("lease_acquired")

    assert first.events == []
    assert tracer.provider.events[0] == "open ## compaction_cycle words"
