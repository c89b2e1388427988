"""The stages of a compaction cycle, in order, and what runs each one (contract §5.2, §6.3).

A cycle is lease → open → plan → apply → commit → mark → retain → release; the snapshot
sink's commit is check → upload → manifest → swap (``COMMIT``) → pointer file → EFS. Each
stage's value is the name the cycle announces when the stage has ended (``on_stage``): the
points tests and the interleaving explorer stop a compactor at, and the keys of
``CycleResult.timings_ms`` (``segment``). One enum serves tracing, metrics, logs and the
explorer, so a stage has one name everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from enum import StrEnum


class Stage(StrEnum):
    """A stage of the cycle; the value is announced when it ends."""

    LEASE = "lease_acquired"
    OPEN = "opened"  # the working copy of the pointer's version, or the server collection
    PLAN = "planned"  # the receipts' rows read, the runs to merge marked PROCESSING
    APPLY = "applied"  # merges, keys and deletions written (deltas fetched on the way)
    CHECK = "checked"  # the closed copy flushed per policy and checked
    UPLOAD = "objects_uploaded"  # the objects S3 lacks
    MANIFEST = "manifest_written"  # manifest.json and .manifest_hash
    # The pointer swapped (nothing written: the copy relabelled); the server: every write
    # acknowledged and the lease confirmed.
    COMMIT = "committed"
    POINTER_FILE = "pointer_file_synced"
    EFS = "efs_written"
    MARK = "runs_marked"
    RETAIN = "retained"
    RELEASE = "released"  # never announced: nothing of the cycle is left to stop at

    @property
    def segment(self) -> str:
        """The stage's name in traces, timings and logs: ``apply``, ``pointer_file``, …"""
        return self.name.lower()


OnStage = Callable[[Stage], None]
"""Called when a stage has ended, with that stage (tests and the explorer stop here)."""

Trace = Callable[[str], AbstractContextManager[object]]
"""Wraps one stage's work, given its segment name (a tracing subsegment)."""


def _untraced(_: str) -> AbstractContextManager[object]:
    return nullcontext()


class StageRunner:
    """Runs the stages of one cycle: each is timed into ``timings_ms``, traced, and
    announced once it ended without raising."""

    def __init__(self, on_stage: OnStage | None = None, trace: Trace | None = None) -> None:
        self._on_stage = on_stage
        self._trace = trace or _untraced
        self.timings_ms: dict[str, float] = {}

    @contextmanager
    def run(self, stage: Stage, prefix: str = "") -> Iterator[None]:
        """One stage; ``prefix`` tells two sinks' stages apart in one cycle (the server
        sink's are ``server_open``, ``server_apply``, …)."""
        name = f"{prefix}{stage.segment}"
        started = time.perf_counter()
        try:
            with self._trace(name):
                yield
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            self.timings_ms[name] = self.timings_ms.get(name, 0.0) + elapsed
        if self._on_stage is not None and stage is not Stage.RELEASE:
            self._on_stage(stage)
