"""Each stage of a cycle is its own tracing subsegment inside the cycle's, named by the
stage (``## plan``, ``## server_apply``, …), closed when the stage ends or raises."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from receipt_chroma.lambda_support import StageSegments
from receipt_chroma.stages import Stage, StageRunner


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


def test_each_stage_is_a_subsegment_inside_the_cycle_and_is_announced_when_it_ends() -> None:
    tracer = RecordingTracer()
    segments = StageSegments(tracer)
    announced: list[Stage] = []
    runner = StageRunner(announced.append, segments.stage)

    with segments.cycle("words"):
        for stage in (Stage.LEASE, Stage.PLAN):
            with runner.run(stage):
                pass
        with runner.run(Stage.APPLY, "server_"):
            pass
        with runner.run(Stage.RELEASE):
            pass

    assert tracer.provider.events == [
        "open ## compaction_cycle words",
        "open ## lease",
        "close ## lease",
        "open ## plan",
        "close ## plan",
        "open ## server_apply",
        "close ## server_apply",
        "open ## release",
        "close ## release",
        "close ## compaction_cycle words",
    ]
    # The release is never announced: nothing of the cycle is left to stop at.
    assert announced == [Stage.LEASE, Stage.PLAN, Stage.APPLY]
    assert set(runner.timings_ms) == {"lease", "plan", "server_apply", "release"}


def test_a_stage_that_raises_closes_its_subsegment_and_is_not_announced() -> None:
    tracer = RecordingTracer()
    segments = StageSegments(tracer)
    announced: list[Stage] = []
    runner = StageRunner(announced.append, segments.stage)

    def cycle_that_fails_to_upload() -> None:
        with segments.cycle("words"):
            with runner.run(Stage.LEASE):
                pass
            with runner.run(Stage.UPLOAD):
                raise RuntimeError("S3 down")

    with pytest.raises(RuntimeError, match="S3 down"):
        cycle_that_fails_to_upload()

    assert tracer.provider.events[-3:] == [
        "open ## upload",
        "close ## upload",
        "close ## compaction_cycle words",
    ]
    assert announced == [Stage.LEASE]
    assert "upload" in runner.timings_ms  # a failed stage's time is still reported


def test_the_tracer_provider_is_found_at_each_stage() -> None:
    tracer = RecordingTracer()
    segments = StageSegments(tracer)
    first = tracer.provider
    tracer.provider = RecordingProvider()  # e.g. swapped after the handler was imported

    with segments.cycle("words"), StageRunner(trace=segments.stage).run(Stage.LEASE):
        pass

    assert first.events == []
    assert tracer.provider.events[:2] == ["open ## compaction_cycle words", "open ## lease"]
