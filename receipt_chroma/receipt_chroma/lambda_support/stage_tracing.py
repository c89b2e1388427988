"""One tracing subsegment (X-Ray, through Powertools' Tracer) per stage of a cycle."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol


class SubsegmentProvider(Protocol):
    """A tracing provider (Powertools' ``BaseProvider``): opens a named subsegment."""

    def in_subsegment(self, name: Any = None, **kwargs: Any) -> AbstractContextManager[Any]: ...


class Tracing(Protocol):
    """A tracer (Powertools' ``Tracer``); its provider is looked up at each subsegment, so
    one swapped in later (a test's recording provider) is the one used."""

    @property
    def provider(self) -> SubsegmentProvider: ...


class StageSegments:
    """The cycle's subsegment, holding one subsegment per stage: ``## <segment>`` for each
    ``receipt_chroma.stages.Stage`` (``## plan``, ``## server_apply``, …). ``stage`` is
    the cycle's ``trace`` hook."""

    def __init__(self, tracer: Tracing) -> None:
        self._tracer = tracer

    def stage(self, segment: str) -> AbstractContextManager[Any]:
        """The subsegment of one stage, named by its segment name."""
        return self._tracer.provider.in_subsegment(f"## {segment}")

    @contextmanager
    def cycle(self, collection: str) -> Iterator[None]:
        """The cycle's own subsegment, holding its stages."""
        with self._tracer.provider.in_subsegment(f"## compaction_cycle {collection}"):
            yield
