"""One tracing subsegment (X-Ray, through Powertools' Tracer) per stage of a cycle."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar, Protocol


class SubsegmentProvider(Protocol):
    """A tracing provider (Powertools' ``BaseProvider``): opens a named subsegment."""

    def in_subsegment(self, name: Any = None, **kwargs: Any) -> AbstractContextManager[Any]: ...


class Tracing(Protocol):
    """A tracer (Powertools' ``Tracer``); its provider is looked up at each subsegment, so
    one swapped in later (a test's recording provider) is the one used."""

    @property
    def provider(self) -> SubsegmentProvider: ...


class StageSegments:
    """The cycle marks the end of each stage (``on_stage``); the mark closes the running
    subsegment and opens the next stage's. A mark this table does not know opens
    ``after_<mark>``."""

    NEXT: ClassVar[dict[str, str]] = {
        "lease_acquired": "working_copy",
        "working_copy_ready": "apply",
        "applied": "publish_check",
        "checked": "publish_upload",
        "objects_uploaded": "publish_manifest",
        "uploaded": "publish_swap",
        "committed": "publish_derived_caches",
        "pointer_file_synced": "publish_efs",
        "efs_written": "publish_run_marks",
        "runs_marked": "publish_retention",
        "retained": "release",
        "server_applied": "run_marks_and_release",
    }

    def __init__(self, tracer: Tracing) -> None:
        self._tracer = tracer
        self._open: AbstractContextManager[Any] | None = None

    def _begin(self, stage: str) -> None:
        self._end()
        self._open = self._tracer.provider.in_subsegment(f"## {stage}")
        self._open.__enter__()

    def _end(self) -> None:
        if self._open is not None:
            self._open.__exit__(None, None, None)
            self._open = None

    def mark(self, name: str) -> None:
        """The end of the stage ``name``: the next stage's subsegment opens."""
        self._begin(self.NEXT.get(name, f"after_{name}"))

    @contextmanager
    def cycle(self, collection: str) -> Iterator[None]:
        """The cycle's own subsegment, holding its stages; the first is the lease."""
        with self._tracer.provider.in_subsegment(f"## compaction_cycle {collection}"):
            self._begin("lease")
            try:
                yield
            finally:
                self._end()
